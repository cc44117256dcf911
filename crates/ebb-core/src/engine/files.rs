//! File operations of Complete and Cancel.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::model::JobFile;

/// What Complete did with the files.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    pub kept: usize,
    pub dropped: usize,
    pub undeleted: usize,
}

/// Rename every transferred file into place and delete the rest. If a rename fails, nothing
/// after it is touched and the error is returned: the job stays as it was, and Complete can be
/// called again (a file already renamed by an earlier attempt counts as done).
pub(crate) fn complete(files: &[JobFile]) -> Result<Tally> {
    let mut tally = Tally::default();
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

/// Remove every temporary file of the job; final names are never touched.
pub(crate) fn cancel(files: &[JobFile]) -> usize {
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
