//! Running the engine until a job settles, with a progress bar on a terminal.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use ebb::{JobId, JobInfo, JobState};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::EngineArgs;
use crate::conn::Conn;

/// Ctrl-C and, on Unix, SIGTERM: listened for from creation on (a signal is delivered only to
/// listeners that exist).
struct Stop {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(windows)]
    int: tokio::signal::windows::CtrlC,
}

impl Stop {
    fn listen() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(windows)]
        {
            Ok(Self {
                int: tokio::signal::windows::ctrl_c()?,
            })
        }
    }

    /// Wait for one; the exit code a shell gives for it (130 Ctrl-C, 143 SIGTERM).
    async fn recv(&mut self) -> u8 {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.int.recv() => 130,
                _ = self.term.recv() => 143,
            }
        }
        #[cfg(windows)]
        {
            self.int.recv().await;
            130
        }
    }
}

fn bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {msg:<14} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn show(bar: &ProgressBar, j: &JobInfo) {
    bar.set_length(j.bytes_total.unwrap_or(j.bytes_transferred));
    bar.set_position(j.bytes_transferred);
    bar.set_message(format!(
        "{} {}/{}",
        j.state.bits_name().to_ascii_lowercase(),
        j.files_transferred,
        j.files_total
    ));
}

/// Wait until job `id` leaves the active states (or `timeout` passes); an embedded engine runs
/// meanwhile. With `transfer`, a Transferred job is completed and a job in Error is cancelled.
pub async fn until_settled(
    conn: &Conn,
    id: JobId,
    timeout: Option<Duration>,
    transfer: bool,
) -> anyhow::Result<ExitCode> {
    let e = conn.backend();
    let bar = bar();
    let mut events = e.subscribe();
    let mut stop = Stop::listen()?;
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut last_transient = None;
    let info = loop {
        let info = e.job(id).await?;
        show(&bar, &info);
        if !info.state.is_active() {
            break info;
        }
        if info.state == JobState::TransientError && last_transient != Some(info.error_count) {
            last_transient = Some(info.error_count);
            if let Some(err) = &info.error {
                bar.suspend(|| {
                    eprintln!(
                        "ebb: transient error {} - {}; retrying",
                        err.code, err.description
                    );
                });
            }
        }
        let until =
            deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        // Refresh the bar five times a second when it is shown, else look only on state changes
        // (and once a second, in case the engine is quiet).
        let tick = if bar.is_hidden() {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(200)
        };
        let interrupted = tokio::select! {
            () = ebb::state_changed(&mut events, id) => None,
            () = tokio::time::sleep(tick) => None,
            code = stop.recv() => Some(code),
            () = tokio::time::sleep_until(until) => {
                bar.abandon();
                conn.close().await;
                eprintln!("ebb: timed out; job {id} is {}", info.state.bits_name());
                return Ok(ExitCode::FAILURE);
            }
        };
        if let Some(code) = interrupted {
            bar.abandon();
            conn.close().await;
            if conn.is_daemon() {
                eprintln!("ebb: interrupted; job {id} goes on in ebbd: `ebb wait {id}` watches it");
            } else {
                eprintln!(
                    "ebb: interrupted; job {id} stays queued: continue with `ebb resume {id} --wait`"
                );
            }
            return Ok(ExitCode::from(code));
        }
    };
    bar.finish_and_clear();
    let code = settled(e, &info, transfer).await?;
    conn.close().await;
    Ok(code)
}

/// What a settled job means for `transfer` (which completes or cancels it) and `wait`.
async fn settled(e: &dyn ebb::Backend, info: &JobInfo, transfer: bool) -> anyhow::Result<ExitCode> {
    let id = info.id;
    Ok(match info.state {
        JobState::Transferred if transfer => {
            let done = e.complete(id).await?;
            tracing::info!(kept = done.files_kept, "transfer complete");
            if let Some(path) = info.reply_file_name.as_ref().filter(|p| p.exists()) {
                eprintln!("ebb: the server's reply is in {}", path.display());
            }
            ExitCode::SUCCESS
        }
        JobState::Transferred | JobState::Acknowledged => ExitCode::SUCCESS,
        JobState::Error => {
            if let Some(err) = &info.error {
                eprint!("ebb: job {id} failed\n{}", crate::output::error(err));
            }
            if transfer {
                e.cancel(id).await?;
            }
            ExitCode::FAILURE
        }
        other => {
            eprintln!("ebb: job {id} is {}", other.bits_name());
            ExitCode::FAILURE
        }
    })
}

/// A table of jobs, redrawn every `refresh` until Ctrl-C.
pub async fn monitor(args: &EngineArgs, refresh: Duration) -> anyhow::Result<ExitCode> {
    let tty = std::io::stdout().is_terminal();
    let mut stop = Stop::listen()?;
    let reader = Conn::reader(args).await?;
    loop {
        let jobs = reader.backend().list(ebb::JobFilter::ALL).await?;
        if tty {
            print!("\x1b[H\x1b[2J");
        }
        println!(
            "MONITORING BACKGROUND COPY MANAGER({} refresh)",
            humantime::format_duration(refresh)
        );
        for j in jobs.iter().filter(|j| !j.state.is_final()) {
            println!("{}", crate::output::list_line(j));
        }
        tokio::select! {
            () = tokio::time::sleep(refresh) => {}
            _ = stop.recv() => return Ok(ExitCode::SUCCESS),
        }
    }
}
