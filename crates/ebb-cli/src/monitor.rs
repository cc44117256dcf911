//! `ebb monitor`: a live table of jobs with rate, percentage, ETA and why each waits; and
//! `bitsadmin /monitor` in BITSAdmin's own format.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ebb::{JobId, JobInfo};

use crate::args::EngineArgs;
use crate::conn::Conn;
use crate::output::{rate_of, word};
use crate::watch::Stop;

/// Whose format the monitor speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Ebb,
    Bitsadmin,
}

/// Redraw the table every `refresh` until Ctrl-C (or SIGTERM); on a terminal the screen is
/// cleared first, in a pipe each refresh follows the last.
pub async fn run(args: &EngineArgs, refresh: Duration, style: Style) -> anyhow::Result<ExitCode> {
    let tty = std::io::stdout().is_terminal();
    let mut stop = Stop::listen()?;
    let reader = Conn::reader(args).await?;
    let mut rates = Rates::default();
    loop {
        let every_users_live = ebb::JobFilter {
            final_jobs: false,
            all_users: true,
        };
        let jobs = reader.backend().list(every_users_live).await?;
        let live: Vec<&JobInfo> = jobs.iter().filter(|j| !j.state.is_final()).collect();
        let mut screen = String::new();
        if tty {
            screen.push_str("\x1b[H\x1b[2J");
        }
        match style {
            Style::Ebb => table(&mut screen, &live, &mut rates, refresh),
            Style::Bitsadmin => bitsadmin(&mut screen, &live, refresh),
        }
        say!("{screen}")?;
        tokio::select! {
            () = tokio::time::sleep(refresh) => {}
            _ = stop.recv() => return Ok(ExitCode::SUCCESS),
        }
    }
}

/// BITSAdmin's lines: the banner with the refresh, then `{GUID} 'name' STATE n / N b / B`.
fn bitsadmin(screen: &mut String, jobs: &[&JobInfo], refresh: Duration) {
    let _ = writeln!(
        screen,
        "MONITORING BACKGROUND COPY MANAGER({} second refresh)",
        refresh.as_secs().max(1)
    );
    for j in jobs {
        let _ = writeln!(screen, "{}", crate::bitsadmin::list_line(j));
    }
}

/// Each job's bytes at the last refresh, for its rate since.
#[derive(Default)]
struct Rates(HashMap<JobId, (Instant, u64)>);

impl Rates {
    /// Bytes per second since the last look (`None` the first time).
    fn update(&mut self, j: &JobInfo, now: Instant) -> Option<f64> {
        let before = self.0.insert(j.id, (now, j.bytes_transferred));
        let (then, bytes) = before?;
        let secs = now.saturating_duration_since(then).as_secs_f64();
        (secs > 0.0).then(|| j.bytes_transferred.saturating_sub(bytes) as f64 / secs)
    }
}

fn table(screen: &mut String, jobs: &[&JobInfo], rates: &mut Rates, refresh: Duration) {
    let now = Instant::now();
    let clock = chrono::Local::now().format("%H:%M:%S");
    let _ = writeln!(
        screen,
        "ebb monitor: {} job{} at {clock}, every {} (Ctrl-C ends)\n",
        jobs.len(),
        if jobs.len() == 1 { "" } else { "s" },
        humantime::format_duration(refresh)
    );
    let _ = writeln!(
        screen,
        "{:<36}  {:<16} {:<10} {:>6}  {:<21} {:>11} {:>8}  NAME (WHY IT WAITS)",
        "ID", "STATE", "PRIORITY", "DONE", "BYTES", "RATE", "ETA"
    );
    for j in jobs {
        let rate = rates.update(j, now);
        let _ = writeln!(screen, "{}", row(j, rate));
    }
    rates.0.retain(|id, _| jobs.iter().any(|j| j.id == *id));
}

/// One job's row: percentage and ETA only where the size is known and bytes move.
fn row(j: &JobInfo, rate: Option<f64>) -> String {
    let done = match j.bytes_total {
        Some(0) | None => "-".to_owned(),
        Some(t) => format!("{:.1}%", j.bytes_transferred as f64 * 100.0 / t as f64),
    };
    let bytes = format!(
        "{}/{}",
        indicatif::HumanBytes(j.bytes_transferred),
        j.bytes_total
            .map_or_else(|| "?".to_owned(), |t| indicatif::HumanBytes(t).to_string())
    );
    let moving = rate.filter(|r| *r >= 1.0 && j.state.is_running());
    let eta = match (moving, j.bytes_total) {
        (Some(r), Some(t)) => {
            let left = (t.saturating_sub(j.bytes_transferred) as f64 / r).min(1e9);
            format!(
                "{:#}",
                indicatif::HumanDuration(Duration::from_secs_f64(left))
            )
        }
        _ => "-".to_owned(),
    };
    let mut line = format!(
        "{}  {:<16} {:<10} {done:>6}  {bytes:<21} {:>11} {eta:>8}  {:?}",
        j.id,
        word(&j.state),
        word(&j.properties.priority),
        moving.map_or_else(|| "-".to_owned(), rate_of),
        j.display_name
    );
    if let Some(r) = &j.reason {
        let _ = write!(line, "  ({r})");
    }
    line
}
