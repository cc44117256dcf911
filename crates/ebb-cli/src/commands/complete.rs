//! `ebb complete JOB`: says so when files were dropped.

use super::on_job;
use crate::args::EngineArgs;

pub async fn run(args: &EngineArgs, job: &str) -> anyhow::Result<()> {
    let done = on_job(args, job, |c, id| async move {
        let done = c.backend().complete(id).await?;
        Ok((c, done))
    })
    .await?;
    if done.files_dropped > 0 {
        eprintln!(
            "partial complete ({}): kept {} file(s), dropped {} not transferred",
            done.code, done.files_kept, done.files_dropped
        );
    }
    Ok(())
}
