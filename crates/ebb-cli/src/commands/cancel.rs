//! `ebb cancel JOB`.

use super::on_job;
use crate::args::EngineArgs;

pub async fn run(args: &EngineArgs, job: &str) -> anyhow::Result<()> {
    on_job(args, job, |c, id| async move {
        c.backend().cancel(id).await?;
        Ok((c, ()))
    })
    .await
}
