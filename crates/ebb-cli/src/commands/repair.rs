//! `ebb replace-remote-prefix JOB OLD NEW` and `ebb set-remote-name JOB INDEX URL`.

use super::on_job;
use crate::args::EngineArgs;

pub async fn replace_remote_prefix(
    args: &EngineArgs,
    job: &str,
    old: &str,
    new: &str,
) -> anyhow::Result<()> {
    let n = on_job(args, job, |c, id| async move {
        let n = c.backend().replace_remote_prefix(id, old, new).await?;
        Ok((c, n))
    })
    .await?;
    eprintln!("{n} file(s) changed");
    Ok(())
}

pub async fn set_remote_name(
    args: &EngineArgs,
    job: &str,
    index: usize,
    url: &str,
) -> anyhow::Result<()> {
    on_job(args, job, |c, id| async move {
        c.backend().set_remote_name(id, index, url).await?;
        Ok((c, ()))
    })
    .await
}
