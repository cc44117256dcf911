//! `ebb transfer [--priority P] URL PATH [URL PATH ...]` and `ebb transfer --upload URL FILE`:
//! create, add, resume, wait, complete.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ebb::{JobType, PropertyChange};

use crate::args::EngineArgs;
use crate::conn::Conn;
use crate::watch;

/// What kind of transfer, and how.
#[derive(Debug)]
pub struct How {
    pub job_type: JobType,
    pub priority: Option<ebb::Priority>,
    /// Upload-reply: where the reply goes.
    pub reply_file: Option<PathBuf>,
}

pub async fn run(
    args: &EngineArgs,
    how: How,
    name: &str,
    pairs: &[String],
) -> anyhow::Result<ExitCode> {
    let How {
        job_type,
        priority,
        reply_file,
    } = how;
    if job_type != JobType::Download && pairs.len() != 2 {
        eprintln!(
            "ebb transfer: an upload sends one FILE to one URL ({} arguments given)",
            pairs.len()
        );
        return Ok(ExitCode::from(2));
    }
    if !pairs.len().is_multiple_of(2) {
        eprintln!(
            "ebb transfer: URL and PATH come in pairs ({} arguments given)",
            pairs.len()
        );
        return Ok(ExitCode::from(2));
    }
    let files = pairs
        .chunks(2)
        .map(|p| crate::new_file(&p[0], Path::new(&p[1])))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let conn = Conn::open(args, true).await?;
    let b = conn.backend();
    let id = b.create_job(name, job_type).await?;
    let setup = async {
        if let Some(p) = priority {
            b.set_property(id, PropertyChange::Priority(p)).await?;
        }
        if reply_file.is_some() {
            b.set_reply_file_name(id, reply_file).await?;
        }
        b.add_files(id, files).await?;
        b.resume(id).await?;
        Ok::<(), ebb::Error>(())
    };
    if let Err(err) = setup.await {
        // Nothing was transferred: leave no job behind.
        let _ = b.cancel(id).await;
        conn.close().await;
        return Err(anyhow::Error::from(err));
    }
    watch::until_settled(&conn, id, None, true).await
}
