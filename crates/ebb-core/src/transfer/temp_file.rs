//! The hidden temporary file a download writes into until Complete renames it.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::Failure;

/// An open temporary file positioned at its end.
#[derive(Debug)]
pub(crate) struct TempFile {
    file: File,
    path: PathBuf,
    len: u64,
}

fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Never follow a symlink planted at our name.
        o.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    }
    o
}

impl TempFile {
    /// Start the file afresh, created exclusively. Whatever sits at our name (a stale temp of
    /// ours, a planted link) is unlinked first; a directory there is an error.
    pub(crate) fn create(path: &Path) -> Result<Self, Failure> {
        let file = match options().create_new(true).open(path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let meta =
                    std::fs::symlink_metadata(path).map_err(|e| Failure::local_io(path, &e))?;
                if meta.is_dir() {
                    let e = std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory");
                    return Err(Failure::local_io(path, &e));
                }
                std::fs::remove_file(path).map_err(|e| Failure::local_io(path, &e))?;
                options().create_new(true).open(path)
            }
            other => other,
        }
        .map_err(|e| Failure::local_io(path, &e))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            len: 0,
        })
    }

    /// Reopen a temp file to continue at `offset`; `None` if it is gone, not a regular file, or
    /// shorter than the durable progress says (then the file starts over).
    pub(crate) fn reopen(path: &Path, offset: u64) -> Result<Option<Self>, Failure> {
        let file = match options().open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            #[cfg(unix)]
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(None),
            Err(e) => return Err(Failure::local_io(path, &e)),
        };
        let meta = file.metadata().map_err(|e| Failure::local_io(path, &e))?;
        if !meta.is_file() || meta.len() < offset {
            return Ok(None);
        }
        let mut t = Self {
            file,
            path: path.to_path_buf(),
            len: meta.len(),
        };
        // Bytes past the checkpoint were never claimed: drop them.
        t.truncate_to(offset)?;
        Ok(Some(t))
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn truncate_to(&mut self, len: u64) -> Result<(), Failure> {
        self.file
            .set_len(len)
            .and_then(|()| self.file.seek(SeekFrom::Start(len)))
            .map_err(|e| Failure::local_io(&self.path, &e))?;
        self.len = len;
        Ok(())
    }

    /// Append bytes. Writes go to the page cache; durability comes at checkpoints.
    pub(crate) fn write(&mut self, buf: &[u8]) -> Result<(), Failure> {
        self.file
            .write_all(buf)
            .map_err(|e| Failure::local_io(&self.path, &e))?;
        self.len += buf.len() as u64;
        Ok(())
    }

    /// A second handle for syncing on another thread while writing goes on.
    pub(crate) fn sync_handle(&self) -> Result<File, Failure> {
        self.file
            .try_clone()
            .map_err(|e| Failure::local_io(&self.path, &e))
    }
}
