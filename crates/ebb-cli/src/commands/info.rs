//! `ebb info JOB`, `ebb files JOB` and `ebb error JOB`: one job, read.

use crate::args::EngineArgs;
use crate::{conn, output};

pub async fn info(args: &EngineArgs, job: &str, json: bool) -> anyhow::Result<()> {
    let j = conn::read_one(args, job).await?;
    if json {
        say!("{}\n", output::json(&j)?)?;
    } else {
        say!("{}", output::info(&j))?;
    }
    Ok(())
}

pub async fn files(args: &EngineArgs, job: &str, json: bool) -> anyhow::Result<()> {
    let j = conn::read_one(args, job).await?;
    if json {
        say!("{}\n", output::json(&j.files)?)?;
    } else {
        say!("{}", output::files(&j.files))?;
    }
    Ok(())
}

pub async fn error(args: &EngineArgs, job: &str, json: bool) -> anyhow::Result<()> {
    let j = conn::read_one(args, job).await?;
    if json {
        say!("{}\n", output::json(&j.error)?)?;
    } else {
        match &j.error {
            Some(err) => say!("{}", output::error(err))?,
            None => say!("no error\n")?,
        }
    }
    Ok(())
}
