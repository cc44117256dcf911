//! Running the engine until a job settles, with a progress bar on a terminal.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ebb::{JobId, JobInfo, JobState};
use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressStyle};

use crate::conn::Conn;

/// Ctrl-C and, on Unix, SIGTERM: listened for from creation on (a signal is delivered only to
/// listeners that exist).
pub struct Stop {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(windows)]
    int: tokio::signal::windows::CtrlC,
}

impl Stop {
    pub fn listen() -> std::io::Result<Self> {
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
    pub async fn recv(&mut self) -> u8 {
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

fn bar(quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::no_length();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix:<18} [{bar:30}] {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// The job's rate over the last few seconds, from the counts the bar is shown: 0 once nothing
/// has moved for two seconds (a stall shows no ETA, never `5424y`).
#[derive(Default)]
struct Speed(VecDeque<(Instant, u64)>);

impl Speed {
    const WINDOW: Duration = Duration::from_secs(5);
    const STALL: Duration = Duration::from_secs(2);

    fn update(&mut self, bytes: u64) -> f64 {
        let now = Instant::now();
        if self.0.back().is_none_or(|&(_, b)| b != bytes) {
            self.0.push_back((now, bytes));
        }
        while self
            .0
            .front()
            .is_some_and(|&(t, _)| now.duration_since(t) > Self::WINDOW && self.0.len() > 2)
        {
            self.0.pop_front();
        }
        let (Some(&(t0, b0)), Some(&(t1, b1))) = (self.0.front(), self.0.back()) else {
            return 0.0;
        };
        let span = t1.duration_since(t0).as_secs_f64();
        if now.duration_since(t1) >= Self::STALL || span < 0.2 {
            return 0.0;
        }
        b1.saturating_sub(b0) as f64 / span
    }
}

/// `48.8 KiB/195.3 KiB 1.2 MiB/s eta 2m 5s`: a size not known yet is `?`, a rate of 0 `-`.
fn progress_text(j: &JobInfo, rate: f64) -> String {
    let total = j
        .bytes_total
        .map_or_else(|| "?".to_owned(), |t| HumanBytes(t).to_string());
    let done = HumanBytes(j.bytes_transferred);
    let eta = match j.bytes_total {
        Some(t) if rate >= 1.0 => {
            let left = t.saturating_sub(j.bytes_transferred) as f64 / rate;
            format!(
                "{:#}",
                HumanDuration(Duration::from_secs_f64(left.min(1e9)))
            )
        }
        _ => "-".to_owned(),
    };
    let rate = if rate >= 1.0 {
        crate::output::rate_of(rate)
    } else {
        "-".to_owned()
    };
    format!("{done}/{total} {rate} eta {eta}")
}

fn show(bar: &ProgressBar, speed: &mut Speed, j: &JobInfo) {
    if bar.is_hidden() {
        return;
    }
    // A size still unknown (a job queued, or connecting) is no full bar.
    match j.bytes_total {
        Some(total) if total > 0 || j.state == JobState::Transferred => bar.set_length(total),
        _ => bar.unset_length(),
    }
    bar.set_position(j.bytes_transferred);
    let what = j
        .reason
        .as_ref()
        .map_or_else(|| crate::output::word(&j.state), |r| r.as_str().to_owned());
    bar.set_prefix(format!("{what} {}/{}", j.files_transferred, j.files_total));
    bar.set_message(progress_text(j, speed.update(j.bytes_transferred)));
}

/// How to watch a job: for how long, and whether it is `transfer`'s own (completed once
/// Transferred, cancelled in Error or at the timeout).
#[derive(Clone, Copy, Debug)]
pub struct Watch {
    pub timeout: Option<Duration>,
    pub transfer: bool,
    /// No bar and no notes: only errors (and what an interruption leaves).
    pub quiet: bool,
    /// `transfer` made this job in this run (else it goes on with an earlier run's job, whose
    /// progress a timeout keeps).
    pub created: bool,
}

impl Watch {
    /// `wait` and `resume --wait`: watch a job, and leave it be.
    pub fn plain(timeout: Option<Duration>) -> Self {
        Self {
            timeout,
            transfer: false,
            quiet: false,
            created: false,
        }
    }
}

/// Wait until job `id` leaves the active states (or the timeout passes); an embedded engine
/// runs meanwhile. Each transient error is said once, with when the job tries again. `stop`
/// has listened since before the job was made, so that a Ctrl-C then is not lost.
pub async fn until_settled(
    conn: &Conn,
    id: JobId,
    how: Watch,
    mut stop: Stop,
) -> anyhow::Result<ExitCode> {
    let e = conn.backend();
    let bar = bar(how.quiet);
    let mut speed = Speed::default();
    let mut events = e.subscribe();
    let deadline = how.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut last_transient = None;
    let info = loop {
        let info = e.job(id).await?;
        show(&bar, &mut speed, &info);
        if !info.state.is_active() {
            break info;
        }
        if info.state == JobState::TransientError && last_transient != Some(info.error_count) {
            last_transient = Some(info.error_count);
            if let Some(r) = info.reason.as_ref().filter(|_| !how.quiet) {
                bar.suspend(|| eprintln!("ebb: job {id}: {r}"));
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
                return timed_out(conn, &info, how).await;
            }
        };
        if let Some(code) = interrupted {
            bar.abandon();
            conn.close().await;
            eprintln!("{}", interrupted_note(conn.is_daemon(), id, how.transfer));
            return Ok(ExitCode::from(code));
        }
    };
    bar.finish_and_clear();
    let code = settled(e, &info, how.transfer).await?;
    conn.close().await;
    Ok(code)
}

/// The timeout passed. `wait` leaves the job as it is; `transfer` gives up: a job it made is
/// cancelled (its temporary files go with it), an earlier run's job is suspended with its
/// progress. A job that became Transferred meanwhile is completed. Exit 124.
async fn timed_out(conn: &Conn, info: &JobInfo, how: Watch) -> anyhow::Result<ExitCode> {
    let id = info.id;
    let b = conn.backend();
    let info = b.job(id).await?;
    if !info.state.is_active() {
        let code = settled(b, &info, how.transfer).await?;
        conn.close().await;
        return Ok(code);
    }
    let after = how
        .timeout
        .map(|t| humantime::format_duration(t).to_string())
        .unwrap_or_default();
    let why = info
        .reason
        .as_ref()
        .map_or_else(|| crate::output::word(&info.state), ToString::to_string);
    if !how.transfer {
        eprintln!("ebb: timed out after {after}; job {id} goes on: {why}");
    } else if how.created {
        b.cancel(id).await?;
        eprintln!("ebb: gave up after {after} ({why}); job {id} cancelled, nothing left behind");
    } else {
        b.suspend(id).await?;
        eprintln!(
            "ebb: gave up after {after} ({why}); job {id} suspended with its progress: run the \
             same `ebb transfer` again to go on, `ebb cancel {id}` drops it"
        );
    }
    conn.close().await;
    Ok(ExitCode::from(crate::exit::TIMED_OUT))
}

/// What Ctrl-C leaves, and exactly how to finish or drop it.
fn interrupted_note(daemon: bool, id: JobId, transfer: bool) -> String {
    let finish = if transfer {
        "run the same `ebb transfer` again to finish it".to_owned()
    } else if daemon {
        format!("`ebb wait {id}` then `ebb complete {id}` finish it")
    } else {
        format!("`ebb resume {id} --wait` then `ebb complete {id}` finish it")
    };
    let state = if daemon {
        "goes on in ebbd"
    } else {
        "stays queued with its progress"
    };
    format!(
        "ebb: interrupted; job {id} {state}: {finish} (its files appear only then), \
         `ebb cancel {id}` drops it"
    )
}

/// What a settled job means for `transfer` (which completes or cancels it) and `wait`.
async fn settled(e: &dyn ebb::Backend, info: &JobInfo, transfer: bool) -> anyhow::Result<ExitCode> {
    let id = info.id;
    Ok(match info.state {
        JobState::Transferred if transfer => {
            match e.complete(id).await {
                Ok(done) => tracing::info!(kept = done.files_kept, "transfer complete"),
                // Another run of the same command completed it first.
                Err(_) if e.job(id).await?.state == JobState::Acknowledged => {}
                Err(err) => return Err(err.into()),
            }
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
            // Another run of the same command may have cancelled it first.
            if transfer && !e.job(id).await?.state.is_final() {
                e.cancel(id).await?;
            }
            ExitCode::FAILURE
        }
        other => {
            eprintln!("ebb: job {id} is {}", crate::output::word(&other));
            ExitCode::FAILURE
        }
    })
}
