//! `ebb wait JOB [--timeout T]`: runs until the job settles; exit 0 if it is Transferred.

use std::process::ExitCode;
use std::time::Duration;

use crate::args::EngineArgs;
use crate::conn::Conn;
use crate::watch;

pub async fn run(
    args: &EngineArgs,
    job: &str,
    timeout: Option<Duration>,
) -> anyhow::Result<ExitCode> {
    let mut stop = watch::Stop::listen()?;
    let conn = tokio::select! {
        conn = Conn::open(args, true) => conn?,
        code = stop.recv() => return Ok(ExitCode::from(code)),
    };
    let id = conn.backend().find(job).await?;
    watch::until_settled(&conn, id, watch::Watch::plain(timeout), stop).await
}
