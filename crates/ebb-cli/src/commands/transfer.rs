//! `ebb transfer [OPTIONS] URL [PATH] ...` and `ebb transfer --upload URL FILE`: create, add,
//! resume, wait, complete. Run again after an interruption, the same command goes
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
    // Listening from here: a Ctrl-C while connecting ends the command (130); one while the
    // job is made is seen once it is, never a job half made (files missing) that the next run
    // cannot recognise.
    let mut stop = watch::Stop::listen()?;
    let conn = tokio::select! {
        conn = Conn::open(args, true) => conn?,
        code = stop.recv() => return Ok(ExitCode::from(code)),
    };
    let b = conn.backend();
    let found = match earlier_job(b, job_type, &files).await {
        Ok(Some(job)) => go_on(b, &job, &t).await.map(|()| (job.id, false)),
        Ok(None) => start(b, job_type, &t, files).await.map(|id| (id, true)),
        Err(e) => Err(e),
    };
    let (id, created) = match found {
        Ok(found) => found,
        Err(e) => {
            conn.close().await;
            return Err(e);
        }
    };
    let watch = Watch {
        timeout: t.timeout,
        transfer: true,
        quiet: t.quiet,
        created,
    };
    watch::until_settled(&conn, id, watch, stop).await
}

/// The certificate settings of this run, set on a new job and on an earlier run's job alike:
/// `--insecure` sets BITS's ignore bits and its absence clears them (the same command without
/// it asks for a checked certificate); `--ca-file` sets the job's CA file.
fn tls_changes(
    t: &TransferArgs,
    current: ebb::SecurityFlags,
) -> anyhow::Result<Vec<PropertyChange>> {
    let mut out = Vec::new();
    let bits = ebb::SecurityFlags::INSECURE;
    let flags = if t.insecure {
        current.0 | bits
    } else {
        current.0 & !bits
    };
    if flags != current.0 {
        out.push(PropertyChange::SecurityFlags(ebb::SecurityFlags::new(
            flags,
        )?));
    }
    if let Some(path) = &t.ca_file {
        out.push(PropertyChange::CaFile(super::set::ca_file(path)?));
    }
    Ok(out)
}

/// The priority this run asks for: `--connections` above one makes the job foreground (only
/// foreground jobs use several connections), and refuses a background priority.
fn priority(t: &TransferArgs) -> anyhow::Result<Option<ebb::Priority>> {
    if t.connections.is_none_or(|n| n <= 1) {
        return Ok(t.priority);
    }
    match t.priority {
        None | Some(ebb::Priority::Foreground) => Ok(Some(ebb::Priority::Foreground)),
        Some(p) => Err(usage(format!(
            "--connections is for foreground jobs; a {} job splits a file only when one connection is short of an idle link",
            crate::output::word(&p)
        ))),
    }
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
    let tls = tls_changes(t, ebb::SecurityFlags::default())?;
    let priority = priority(t)?;
    let id = b.create_job(&t.name, job_type).await?;
    let setup = async {
        if let Some(p) = priority {
            b.set_property(id, PropertyChange::Priority(p)).await?;
        }
        if let Some(n) = t.connections {
            b.set_property(id, PropertyChange::Connections(n)).await?;
        }
        for change in tls {
            b.set_property(id, change).await?;
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
    // A page at a time: a queue of any size is read without holding all of it.
    let mut after = None;
    loop {
        let page = b.list_page(JobFilter::default(), after, 500).await?;
        after = page.next;
        if let Some(j) = clash_or_same(page.jobs, job_type, files, same)? {
            return Ok(Some(j));
        }
        if after.is_none() {
            return Ok(None);
        }
    }
}

/// The first of `jobs` that is the same transfer; a download to a path one of them writes is
/// refused.
fn clash_or_same(
    jobs: Vec<JobInfo>,
    job_type: JobType,
    files: &[NewFile],
    same: impl Fn(&JobInfo) -> bool,
) -> anyhow::Result<Option<JobInfo>> {
    for j in jobs {
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
/// needs only its Complete), with this run's priority, certificate settings and reply file.
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
    if let Some(p) = priority(t)?.filter(|p| *p != job.properties.priority) {
        b.set_property(job.id, PropertyChange::Priority(p)).await?;
    }
    if let Some(n) = t.connections.filter(|n| *n != job.properties.connections) {
        b.set_property(job.id, PropertyChange::Connections(n))
            .await?;
    }
    for change in tls_changes(t, job.properties.security_flags)? {
        b.set_property(job.id, change).await?;
    }
    if let Some(path) = &t.reply_file {
        let path = crate::absolute(path)?;
        if job.reply_file_name.as_ref() != Some(&path) {
            b.set_reply_file_name(job.id, Some(path)).await?;
        }
    }
    if job.state != JobState::Transferred {
        b.resume(job.id).await?;
    }
    Ok(())
}
