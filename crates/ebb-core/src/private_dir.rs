//! The data directory is private: mode 0700, and every file in it 0600, created so and fixed
//! when an engine opens it. It holds the queue, whose rows name URLs and user names, and the
//! daemon's log; another local user reads none of it.
//!
//! On Windows the directory lives in the user's profile, whose ACL already keeps other users
//! out: nothing to do there.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::error::{Error, Result};

/// Create `dir` (and its parents) as 0700, or make an existing one 0700.
pub fn create(dir: &Path) -> Result<()> {
    create_missing(dir)?;
    restrict(dir, 0o700)
}

/// Create `dir` (and missing parents) as 0700, leaving an existing directory as it is: for a
/// directory ebb does not own, such as the one a configured key file sits in.
pub fn create_missing(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| Error::io(dir, e))
}

/// Open (creating if needed) a file in the private directory for appending or updating; a new
/// file is 0600 from the start, an old one is made so. Never blocks on a FIFO put in its place,
/// and refuses anything that is not a regular file.
pub fn open_file(path: &Path, append: bool) -> Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).read(!append).write(true).append(append);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC);
    }
    let file = o.open(path).map_err(|e| Error::io(path, e))?;
    if !file.metadata().map_err(|e| Error::io(path, e))?.is_file() {
        return Err(Error::io(path, std::io::Error::other("not a regular file")));
    }
    restrict(path, 0o600)?;
    Ok(file)
}

/// Make every file directly in `dir` 0600 and `dir` itself 0700 (files an older ebb, or SQLite
/// under a loose umask, left readable).
pub fn fix(dir: &Path) -> Result<()> {
    restrict(dir, 0o700)?;
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            restrict(&entry.path(), 0o600)?;
        }
    }
    Ok(())
}

/// Take away group and other permissions from `path` if it has any.
fn restrict(path: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io(path, e))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn everything_becomes_owner_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let loose = dir.join("ebb.db");
        std::fs::write(&loose, b"x").unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        fix(&dir).unwrap();
        assert_eq!((mode(&dir), mode(&loose)), (0o700, 0o600));
        let log = dir.join("ebbd.log");
        open_file(&log, true).unwrap();
        assert_eq!(mode(&log), 0o600);
    }
}
