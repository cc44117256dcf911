//! File operations of Complete and Cancel.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::model::{JobFile, JobType};

/// What Complete did with the files.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    pub kept: usize,
    pub dropped: usize,
    pub undeleted: usize,
}

/// Rename every transferred file into place and delete the rest. If a rename fails, nothing
/// after it is touched and the error is returned: the job stays as it was, and Complete can be
/// called again (a file already renamed by an earlier attempt counts as done). An upload's file
/// is the app's own: nothing is renamed or deleted.
pub(crate) fn complete(job_type: JobType, files: &[JobFile]) -> Result<Tally> {
    let mut tally = Tally::default();
    if job_type != JobType::Download {
        tally.kept = files.iter().filter(|f| f.completed).count();
        tally.dropped = files.len() - tally.kept;
        return Ok(tally);
    }
    let mut dirs = BTreeSet::new();
    for f in files.iter().filter(|f| f.completed) {
        match std::fs::rename(&f.temp_path, &f.local_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && f.local_path.exists() => {
                tracing::debug!(path = %f.local_path.display(), "already in place");
            }
            Err(e) => {
                return Err(Error::io(
                    &f.local_path,
                    std::io::Error::new(
                        e.kind(),
                        format!("cannot rename {} into place: {e}", f.temp_path.display()),
                    ),
                ));
            }
        }
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
    sync_dirs(dirs)?;
    Ok(tally)
}

/// Remove every temporary file of the job; final names (and an upload's source) are never
/// touched.
pub(crate) fn cancel(job_type: JobType, files: &[JobFile]) -> usize {
    if job_type != JobType::Download {
        return 0;
    }
    files.iter().filter(|f| !remove_temp(f)).count()
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

/// Make renames durable before the store records Acknowledged.
fn sync_dirs(dirs: BTreeSet<PathBuf>) -> Result<()> {
    for dir in dirs {
        crate::transfer::sync_directory(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    Ok(())
}
