//! The hidden temporary file a download writes into until Complete renames it.
//!
//! Opening never blocks: a FIFO or a device planted at our name (say after a crash) would hang
//! `open()` for writing until a reader came, and with it the job, the scheduler and shutdown.
//! Files are opened with `O_NONBLOCK` and refused unless they are regular files, checked before
//! opening (without following links) and again on the open descriptor.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::Failure;
use crate::error::{ErrorCode, ErrorContext, Status};

/// An open temporary file positioned at its end.
#[derive(Debug)]
pub(crate) struct TempFile {
    file: File,
    path: PathBuf,
    len: u64,
    identity: Identity,
}

/// Which file a path names: a checkpoint makes sure the path still names the file being written
/// (a deleted or replaced temporary file would otherwise take the bytes with it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    #[cfg(unix)]
    dev: u64,
    #[cfg(unix)]
    ino: u64,
}

impl Identity {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Self {
                dev: meta.dev(),
                ino: meta.ino(),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            Self {}
        }
    }

    /// The file system the file lives on (0 where that is not known).
    pub(crate) fn device(self) -> u64 {
        #[cfg(unix)]
        {
            self.dev
        }
        #[cfg(not(unix))]
        {
            0
        }
    }

    /// Fail unless `path` still names this file, as a regular file.
    pub(crate) fn check(self, path: &Path) -> Result<(), Failure> {
        let gone = |why: &str| {
            Failure::new(
                Status::Permanent,
                ErrorContext::LocalFile,
                ErrorCode::E_FILE_NOT_FOUND,
                format!(
                    "({}: the temporary file {why}; was its directory deleted? resume starts the file over)",
                    path.display()
                ),
            )
        };
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_file() && Self::of(&meta) == self => Ok(()),
            Ok(_) => Err(gone("was replaced by another file")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(gone("was removed")),
            Err(e) => Err(Failure::local_io(path, &e)),
        }
    }
}

/// Options for opening a local file without blocking and without following a symlink.
pub(crate) fn nonblocking(o: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK);
    }
    o
}

fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    nonblocking(o.write(true));
    o
}

impl TempFile {
    /// Start the file afresh, created exclusively. Whatever sits at our name (a stale temp of
    /// ours, a planted link or FIFO) is unlinked first; a directory there is an error.
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
        let meta = file.metadata().map_err(|e| Failure::local_io(path, &e))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            len: 0,
            identity: Identity::of(&meta),
        })
    }

    /// Reopen a temp file to continue at `offset`; `None` if it is gone, not a regular file, or
    /// shorter than the durable progress says (then the file starts over).
    pub(crate) fn reopen(path: &Path, offset: u64) -> Result<Option<Self>, Failure> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Failure::local_io(path, &e)),
        }
        let file = match options().open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            // Swapped for a link or a FIFO between the check and the open.
            #[cfg(unix)]
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENXIO)) => {
                return Ok(None);
            }
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
            identity: Identity::of(&meta),
        };
        // Bytes past the checkpoint were never claimed: drop them.
        t.truncate_to(offset)?;
        Ok(Some(t))
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn identity(&self) -> Identity {
        self.identity
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

    /// Write bytes at `offset` (a split of the file, fetched beside others), leaving the
    /// position of appends alone.
    pub(crate) fn write_at(&mut self, offset: u64, buf: &[u8]) -> Result<(), Failure> {
        #[cfg(unix)]
        let written = std::os::unix::fs::FileExt::write_all_at(&self.file, buf, offset);
        #[cfg(windows)]
        let written = write_all_at(&self.file, buf, offset);
        written.map_err(|e| Failure::local_io(&self.path, &e))?;
        self.len = self.len.max(offset + buf.len() as u64);
        Ok(())
    }

    /// Ask the kernel to start writing bytes `[from, from + len)` (`len` 0: to the end) to
    /// disk now, without waiting: the next checkpoint's sync then finds them written, and the
    /// disk works while the download goes on. Only a hint (Linux; nothing elsewhere); a failure
    /// is left for the sync to report.
    pub(crate) fn start_writeback(&self, from: u64, len: u64) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let (Ok(from), Ok(len)) = (libc::off64_t::try_from(from), libc::off64_t::try_from(len))
            else {
                return;
            };
            // SAFETY: the descriptor is open for the whole call; the kernel only reads it.
            #[allow(unsafe_code)]
            let _ = unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    from,
                    len,
                    libc::SYNC_FILE_RANGE_WRITE,
                )
            };
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (from, len);
    }

    /// A second handle for syncing on another thread while writing goes on.
    pub(crate) fn sync_handle(&self) -> Result<File, Failure> {
        self.file
            .try_clone()
            .map_err(|e| Failure::local_io(&self.path, &e))
    }
}

#[cfg(windows)]
fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_write(buf, offset)? {
            0 => return Err(std::io::ErrorKind::WriteZero.into()),
            n => {
                buf = &buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("mkfifo runs");
        assert!(status.success());
    }

    #[test]
    fn a_fifo_at_our_name_never_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".ebb-x-0.tmp");
        mkfifo(&path);
        // Without O_NONBLOCK and the checks, this open waits for a reader forever.
        assert!(TempFile::reopen(&path, 10).unwrap().is_none());
        let mut t = TempFile::create(&path).unwrap();
        t.write(b"abc").unwrap();
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
        t.identity().check(&path).unwrap();
    }

    #[test]
    fn identity_notices_removal_and_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let t = TempFile::create(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let e = t.identity().check(&path).unwrap_err();
        assert!(e.error.description.contains("was removed"), "{e:?}");
        assert_eq!(e.error.context, ErrorContext::LocalFile);
        std::fs::write(&path, b"other").unwrap();
        let e = t.identity().check(&path).unwrap_err();
        assert!(e.error.description.contains("replaced"), "{e:?}");
    }
}
