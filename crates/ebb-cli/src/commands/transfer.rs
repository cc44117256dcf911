//! `ebb transfer [--priority P] URL PATH [URL PATH ...]` and `ebb transfer --upload URL FILE`:
//! create, add, resume, wait, complete. Run again after an interruption, the same command goes
//! on with the job it started (found by its files), from its last checkpoint.

mod targets;

use std::path::Path;
use std::process::ExitCode;

use ebb::{Backend, JobFilter, JobId, JobInfo, JobState, JobType, NewFile, PropertyChange};

use crate::args::{EngineArgs, TransferArgs};
use crate::conn::Conn;
use crate::exit::usage;
use crate::watch::{self, Watch};

pub async fn run(args: &EngineArgs, t: TransferArgs) -> anyhow::Result<ExitCode> {
    let job_type = match (t.upload, t.upload_reply) {
        (_, true) => JobType::UploadReply,
        (true, false) => JobType::Upload,
        (false, false) => JobType::Download,
    };
    let files = targets::pairs(&t, job_type != JobType::Download)?
        .iter()
        .map(|(url, path)| crate::new_file(url, path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let conn = Conn::open(args, true).await?;
    let b = conn.backend();
    let id = match earlier_job(b, job_type, &files).await {
        Ok(Some(job)) => go_on(b, &job, &t).await.map(|()| job.id),
        Ok(None) => start(b, job_type, &t, files).await,
        Err(e) => Err(e),
    };
    let id = match id {
        Ok(id) => id,
        Err(e) => {
            conn.close().await;
            return Err(e);
        }
    };
    let watch = Watch {
        timeout: t.timeout,
        transfer: true,
        quiet: t.quiet,
    };
    watch::until_settled(&conn, id, watch).await
}

/// A new job: its destinations made ready, created, its files added, resumed. If any step
/// fails, no job is left behind.
async fn start(
    b: &dyn Backend,
    job_type: JobType,
    t: &TransferArgs,
    files: Vec<NewFile>,
) -> anyhow::Result<JobId> {
    if job_type == JobType::Download {
        let paths: Vec<&Path> = files.iter().map(|f| f.local_path.as_path()).collect();
        targets::prepare(&paths, t.create_dirs, t.overwrite)?;
    }
    let reply_file = t.reply_file.as_deref().map(crate::absolute).transpose()?;
    let ca_file = match &t.ca_file {
        Some(path) => super::set::ca_file(path)?,
        None => None,
    };
    let id = b.create_job(&t.name, job_type).await?;
    let setup = async {
        if let Some(p) = t.priority {
            b.set_property(id, PropertyChange::Priority(p)).await?;
        }
        if t.insecure {
            let flags = ebb::SecurityFlags::new(ebb::SecurityFlags::INSECURE)?;
            b.set_property(id, PropertyChange::SecurityFlags(flags))
                .await?;
        }
        if ca_file.is_some() {
            b.set_property(id, PropertyChange::CaFile(ca_file)).await?;
        }
        if reply_file.is_some() {
            b.set_reply_file_name(id, reply_file).await?;
        }
        b.add_files(id, files).await?;
        b.resume(id).await?;
        Ok::<(), ebb::Error>(())
    };
    if let Err(err) = setup.await {
        let _ = b.cancel(id).await;
        return Err(err.into());
    }
    Ok(id)
}

/// The unfinished job an earlier run of this same command left (interrupted, timed out in
/// the daemon's hands, or queued by an embedded run): same type, same files. A download to a
/// path another unfinished job writes is refused, naming that job.
async fn earlier_job(
    b: &dyn Backend,
    job_type: JobType,
    files: &[NewFile],
) -> anyhow::Result<Option<JobInfo>> {
    let same = |j: &JobInfo| {
        j.job_type == job_type
            && j.files.len() == files.len()
            && j.files
                .iter()
                .zip(files)
                .all(|(a, b)| a.remote_url == b.remote_url && a.local_path == b.local_path)
    };
    for j in b.list(JobFilter::default()).await? {
        if same(&j) {
            return Ok(Some(j));
        }
        if job_type != JobType::Download || j.job_type != JobType::Download {
            continue;
        }
        let clash = j
            .files
            .iter()
            .find(|f| files.iter().any(|n| n.local_path == f.local_path));
        if let Some(f) = clash {
            return Err(usage(format!(
                "{} is already the destination of job {} ({}, from {}): run that job's own \
                 `ebb transfer` to finish it, or `ebb cancel {}` to drop it",
                f.local_path.display(),
                j.id,
                crate::output::word(&j.state),
                f.remote_url,
                j.id
            )));
        }
    }
    Ok(None)
}

/// Go on with an earlier run's job: queued again from its last checkpoint (a Transferred job
/// needs only its Complete).
async fn go_on(b: &dyn Backend, job: &JobInfo, t: &TransferArgs) -> anyhow::Result<()> {
    if !t.quiet {
        let total = job
            .bytes_total
            .map_or_else(|| "unknown".to_owned(), |n| n.to_string());
        eprintln!(
            "ebb: going on with job {} ({}, {} of {total} bytes already here)",
            job.id,
            crate::output::word(&job.state),
            job.bytes_transferred,
        );
    }
    if let Some(p) = t.priority.filter(|p| *p != job.properties.priority) {
        b.set_property(job.id, PropertyChange::Priority(p)).await?;
    }
    if job.state != JobState::Transferred {
        b.resume(job.id).await?;
    }
    Ok(())
}
