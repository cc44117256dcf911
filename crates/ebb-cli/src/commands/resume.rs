//! `ebb resume JOB [--wait]`.

use std::process::ExitCode;

use crate::args::EngineArgs;
use crate::conn::Conn;
use crate::watch;

pub async fn run(args: &EngineArgs, job: &str, wait: bool) -> anyhow::Result<ExitCode> {
    let conn = Conn::open(args, wait).await?;
    let id = conn.backend().find(job).await?;
    let outcome = conn.backend().resume(id).await?;
    if wait {
        return watch::until_settled(&conn, id, watch::Watch::plain(None), watch::Stop::listen()?)
            .await;
    }
    if outcome == ebb::ResumeOutcome::Queued && !conn.is_daemon() {
        eprintln!(
            "job {id} is queued; `ebb wait {id}` (or `ebb resume {id} --wait`) runs the transfer"
        );
    }
    conn.close().await;
    Ok(ExitCode::SUCCESS)
}
