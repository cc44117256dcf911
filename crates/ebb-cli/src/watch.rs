//! Running the engine until a job settles, with a progress bar on a terminal.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use ebb::{Engine, JobId, JobInfo, JobState};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::signal::unix::{SignalKind, signal};

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

/// Run the engine until job `id` leaves the active states (or `timeout` passes). With
/// `transfer`, a Transferred job is completed and a job in Error is cancelled.
pub async fn until_settled(
    e: &Engine,
    id: JobId,
    timeout: Option<Duration>,
    transfer: bool,
) -> anyhow::Result<ExitCode> {
    let bar = bar();
    let mut events = e.subscribe();
    let mut term = signal(SignalKind::terminate())?;
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
            _ = tokio::signal::ctrl_c() => Some(130),
            _ = term.recv() => Some(143),
            () = tokio::time::sleep_until(until) => {
                bar.abandon();
                e.shutdown().await;
                eprintln!("ebb: timed out; job {id} is {}", info.state.bits_name());
                return Ok(ExitCode::FAILURE);
            }
        };
        if let Some(code) = interrupted {
            bar.abandon();
            e.shutdown().await;
            eprintln!(
                "ebb: interrupted; job {id} stays queued: continue with `ebb resume {id} --wait`"
            );
            return Ok(ExitCode::from(code));
        }
    };
    bar.finish_and_clear();
    let code = match info.state {
        JobState::Transferred if transfer => {
            let done = e.complete(id).await?;
            tracing::info!(kept = done.files_kept, "transfer complete");
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
    };
    e.shutdown().await;
    Ok(code)
}
