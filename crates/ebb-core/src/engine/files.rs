//! File operations of Complete and Cancel.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::error::{Error, ErrorCode, Result};
use crate::model::{Job, JobFile, JobInfo, JobState, JobType, temp_path_for};

/// What Complete did with the files.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    pub kept: usize,
    pub dropped: usize,
    pub undeleted: usize,
}

/// A job to complete: its type, its files and an upload-reply's reply.
pub(crate) type Completing = (JobType, Vec<JobFile>, Option<JobFile>);

/// Complete several jobs at once (see [`put_in_place`]), with one sync of each directory their
/// files went to, however many jobs share it; one answer per job, in order. A job whose renames
/// failed, or one of whose directories could not be synced, gets that error.
pub(crate) fn complete_all(jobs: &[Completing]) -> Vec<Result<Tally>> {
    let placed: Vec<_> = jobs
        .iter()
        .map(|(job_type, files, reply)| {
            let mut dirs = BTreeSet::new();
            put_in_place(*job_type, files, reply.as_ref(), &mut dirs).map(|t| (t, dirs))
        })
        .collect();
    let every_dir: BTreeSet<PathBuf> = placed
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .flat_map(|(_, dirs)| dirs.iter().cloned())
        .collect();
    let failed: BTreeMap<PathBuf, std::io::Error> = every_dir
        .into_iter()
        .filter_map(|dir| {
            crate::transfer::sync_directory(&dir)
                .err()
                .map(|e| (dir, e))
        })
        .collect();
    placed
        .into_iter()
        .map(|p| {
            let (tally, dirs) = p?;
            match dirs.iter().find_map(|d| failed.get(d).map(|e| (d, e))) {
                Some((dir, e)) => Err(Error::io(
                    dir,
                    std::io::Error::new(e.kind(), format!("cannot sync the directory: {e}")),
                )),
                None => Ok(tally),
            }
        })
        .collect()
}

/// Rename every transferred file into place and delete the rest, noting in `dirs` where the
/// renames went (to be synced before the store records Acknowledged). If a rename fails,
/// nothing after it is touched and the error is returned: the job stays as it was, and
/// Complete can be called again (a file already renamed by an earlier attempt counts as done).
/// An upload's file is the app's own: nothing of it is renamed or deleted; an upload-reply's
/// reply is put in place like a download.
fn put_in_place(
    job_type: JobType,
    files: &[JobFile],
    reply: Option<&JobFile>,
    dirs: &mut BTreeSet<PathBuf>,
) -> Result<Tally> {
    if job_type != JobType::Download {
        let mut tally = Tally::default();
        tally.kept = files.iter().filter(|f| f.completed).count();
        tally.dropped = files.len() - tally.kept;
        if let Some(reply) = reply {
            let reply = put_in_place(JobType::Download, std::slice::from_ref(reply), None, dirs)?;
            tally.undeleted = reply.undeleted;
        }
        return Ok(tally);
    }
    let mut tally = Tally::default();
    for f in files.iter().filter(|f| f.completed) {
        rename_into_place(f)?;
        tally.kept += 1;
        if let Some(dir) = f.local_path.parent() {
            dirs.insert(dir.to_path_buf());
        }
    }
    for f in files.iter().filter(|f| !f.completed) {
        tally.dropped += 1;
        if !remove_temp(f) {
            tally.undeleted += 1;
        }
    }
    Ok(tally)
}

fn rename_into_place(f: &JobFile) -> Result<()> {
    match std::fs::rename(&f.temp_path, &f.local_path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && f.local_path.exists() => {
            tracing::debug!(path = %f.local_path.display(), "already in place");
            Ok(())
        }
        Err(e) => Err(Error::io(
            &f.local_path,
            std::io::Error::new(
                e.kind(),
                format!("cannot rename {} into place: {e}", f.temp_path.display()),
            ),
        )),
    }
}

/// Remove every temporary file of the job (an upload-reply's reply's too); final names (and an
/// upload's source) are never touched.
pub(crate) fn cancel(job_type: JobType, files: &[JobFile], reply: Option<&JobFile>) -> usize {
    if job_type != JobType::Download {
        return reply.map_or(0, |r| usize::from(!remove_temp(r)));
    }
    files.iter().filter(|f| !remove_temp(f)).count()
}

/// `GetReplyData`'s limit.
pub(crate) const MAX_REPLY_DATA: u64 = 1024 * 1024;

/// `GetReplyData`: the reply of an upload-reply job in Transferred or Acknowledged, read from
/// its temporary file or, after Complete, its name; empty when the server sent none. Blocking.
pub(crate) fn read_reply(info: &JobInfo) -> Result<Vec<u8>> {
    let progress = info.reply_progress()?;
    if !matches!(info.state, JobState::Transferred | JobState::Acknowledged) {
        return Err(Error::InvalidState {
            job: info.id,
            state: info.state,
            action: "read the reply of (it comes once the job is Transferred)".into(),
        });
    }
    let (Some(name), Some(size)) = (&info.reply_file_name, progress.bytes_total) else {
        return Ok(Vec::new());
    };
    if size > MAX_REPLY_DATA {
        return Err(Error::TooLarge {
            code: ErrorCode::BG_E_TOO_LARGE,
            message: format!(
                "the reply is {size} bytes; reply data holds at most {MAX_REPLY_DATA}: read the \
                 reply file {} instead",
                name.display()
            ),
        });
    }
    let path = if info.state == JobState::Acknowledged {
        name.clone()
    } else {
        temp_path_for(info.id, Job::REPLY_INDEX, name)
    };
    let mut data = Vec::new();
    std::fs::File::open(&path)
        .and_then(|f| {
            std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_REPLY_DATA + 1), &mut data)
        })
        .map_err(|e| Error::io(&path, e))?;
    Ok(data)
}

fn remove_temp(f: &JobFile) -> bool {
    match std::fs::remove_file(&f.temp_path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            tracing::warn!(path = %f.temp_path.display(), error = %e, "cannot delete temporary file");
            false
        }
    }
}
