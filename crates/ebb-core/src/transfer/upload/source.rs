//! The local file an upload sends: opened once per run without blocking, read a fragment at a
//! time on a blocking thread, and checked against its stamp after every read, so that a file
//! that changes while it uploads is an error and never a mix of two versions.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::bandwidth::Gate;
use crate::error::{ErrorCode, ErrorContext, Status};
use crate::model::SourceStamp;
use crate::transfer::Failure;

const LOCAL_FILE_CHANGED: ErrorCode = ErrorCode::BG_E_LOCAL_FILE_CHANGED;
/// How much of a fragment is read at a time.
const READ_PIECE: u64 = 1024 * 1024;

/// An open source file and the stamp it had when opened.
#[derive(Debug, Clone)]
pub(super) struct Source {
    file: Arc<File>,
    path: PathBuf,
    pub stamp: SourceStamp,
}

impl Source {
    /// Open `path` for reading (blocking: call on a blocking thread). Only a regular file is
    /// read: a FIFO or a device would block forever.
    pub(super) fn open(path: &Path) -> Result<Self, Failure> {
        let io = |e: &std::io::Error| Failure::local_io(path, e);
        let before = std::fs::metadata(path).map_err(|e| io(&e))?;
        if !before.is_file() {
            return Err(not_regular(path));
        }
        let mut o = std::fs::OpenOptions::new();
        o.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC);
        }
        let file = o.open(path).map_err(|e| io(&e))?;
        let meta = file.metadata().map_err(|e| io(&e))?;
        if !meta.is_file() {
            return Err(not_regular(path));
        }
        Ok(Self {
            file: Arc::new(file),
            path: path.to_path_buf(),
            stamp: stamp(&meta),
        })
    }

    /// Fail with `BG_E_LOCAL_FILE_CHANGED` unless the file is as `stamp` says.
    pub(super) fn check(&self, stamp: &SourceStamp) -> Result<(), Failure> {
        if same_content(&self.stamp, stamp) {
            Ok(())
        } else {
            Err(changed(&self.path, "since its upload began"))
        }
    }

    /// Read `len` bytes at `offset`, then make sure neither the open file nor the file at the
    /// path changed: the bytes read are the version the upload began with.
    pub(super) async fn read(&self, offset: u64, len: usize) -> Result<bytes::Bytes, Failure> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.read_blocking(offset, len))
            .await
            .map_err(|e| Failure::local_io(&self.path, &std::io::Error::other(e)))?
    }

    /// Bytes `first..first + len` as a request body: read a piece at a time on blocking
    /// threads, one piece ahead of the socket (so that reading overlaps sending), each checked
    /// against the stamp and admitted by the job's buckets. A change fails the body: the server
    /// never counts a fragment it did not get whole.
    pub(super) fn body(&self, (first, len): (u64, u64), gate: Gate, piece: usize) -> reqwest::Body {
        use futures_util::StreamExt;
        let piece = (piece as u64).clamp(1, READ_PIECE);
        let me = self.clone();
        let pieces = (0..len.div_ceil(piece)).map(move |i| {
            let at = i * piece;
            (first + at, piece.min(len - at))
        });
        let stream = futures_util::stream::iter(pieces)
            .map(move |(offset, n)| {
                let me = me.clone();
                async move { me.read(offset, n as usize).await }
            })
            .buffered(2)
            .then(move |read| {
                let gate = gate.clone();
                async move {
                    let bytes = read.map_err(|f| std::io::Error::other(f.error.description))?;
                    gate.admit(bytes.len()).await;
                    Ok::<_, std::io::Error>(bytes)
                }
            });
        reqwest::Body::wrap_stream(stream)
    }

    /// Fail with `BG_E_LOCAL_FILE_CHANGED` if the file changed since it was opened (after a
    /// fragment's body broke off: the change may be why).
    pub(super) async fn verify(&self) -> Result<(), Failure> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.read_blocking(0, 0).map(drop))
            .await
            .map_err(|e| Failure::local_io(&self.path, &std::io::Error::other(e)))?
    }

    fn read_blocking(&self, offset: u64, len: usize) -> Result<bytes::Bytes, Failure> {
        let mut buf = vec![0u8; len];
        if let Err(e) = read_exact_at(&self.file, &mut buf, offset) {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                return Err(changed(&self.path, "(it became shorter) while it uploads"));
            }
            return Err(Failure::local_io(&self.path, &e));
        }
        let now = self
            .file
            .metadata()
            .map_err(|e| Failure::local_io(&self.path, &e))?;
        if !same_content(&stamp(&now), &self.stamp) {
            return Err(changed(&self.path, "while it uploads"));
        }
        match std::fs::metadata(&self.path) {
            Ok(m)
                if same_content(&stamp(&m), &self.stamp) && stamp(&m).inode == self.stamp.inode =>
            {
                Ok(bytes::Bytes::from(buf))
            }
            Ok(_) => Err(changed(&self.path, "(it was replaced) while it uploads")),
            Err(e) => Err(Failure::local_io(&self.path, &e)),
        }
    }
}

/// Whether two stamps say the same content, as BITS judges it: size and modification time.
/// (The change time and inode are not compared across runs: a `chmod`, a backup tool's hard
/// link or a remount changes them, not the bytes. Within a run the inode tells a file replaced
/// at the path.)
fn same_content(a: &SourceStamp, b: &SourceStamp) -> bool {
    a.len == b.len && a.modified_ns == b.modified_ns
}

fn not_regular(path: &Path) -> Failure {
    Failure::new(
        Status::Permanent,
        ErrorContext::LocalFile,
        ErrorCode::E_INVALIDARG,
        format!("({} is not a regular file)", path.display()),
    )
}

fn changed(path: &Path, when: &str) -> Failure {
    Failure::new(
        Status::Permanent,
        ErrorContext::LocalFile,
        LOCAL_FILE_CHANGED,
        format!(
            "({} changed {when}; cancel the job and upload the file anew)",
            path.display()
        ),
    )
}

fn nanos(t: std::io::Result<std::time::SystemTime>) -> i64 {
    t.ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .unwrap_or(0)
}

fn stamp(meta: &std::fs::Metadata) -> SourceStamp {
    #[cfg(unix)]
    let (changed_ns, inode) = {
        use std::os::unix::fs::MetadataExt;
        (
            Some(meta.ctime().saturating_mul(1_000_000_000) + meta.ctime_nsec()),
            Some(meta.ino()),
        )
    };
    #[cfg(not(unix))]
    let (changed_ns, inode) = (None, None);
    SourceStamp {
        len: meta.len(),
        modified_ns: nanos(meta.modified()),
        changed_ns,
        inode,
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_is_caught_after_the_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("src.bin");
        std::fs::write(&path, b"0123456789").unwrap();
        let source = Source::open(&path).unwrap();
        assert_eq!(source.stamp.len, 10);
        assert_eq!(&source.read(2, 3).await.unwrap()[..], b"234");
        // A chmod is no change of content (its change time moves, its bytes do not).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            assert_eq!(&source.read(0, 2).await.unwrap()[..], b"01");
        }
        // Same length, new bytes. (File times tick coarsely: the change must come a tick later
        // to be seen, as with BITS's size-and-time check.)
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::fs::write(&path, b"abcdefghij").unwrap();
        let f = source.read(0, 3).await.unwrap_err();
        assert_eq!(f.error.code, LOCAL_FILE_CHANGED);
        assert_eq!(f.status, Status::Permanent);
        // Shorter: the read itself fails, as a change.
        let source = Source::open(&path).unwrap();
        std::fs::write(&path, b"ab").unwrap();
        assert_eq!(
            source.read(0, 10).await.unwrap_err().error.code,
            LOCAL_FILE_CHANGED
        );
        // Replaced by rename: the path's file is another.
        let source = Source::open(&path).unwrap();
        let other = dir.path().join("other.bin");
        std::fs::write(&other, b"ab").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert_eq!(
            source.read(0, 2).await.unwrap_err().error.code,
            LOCAL_FILE_CHANGED
        );
        assert!(Source::open(dir.path()).is_err());
    }
}
