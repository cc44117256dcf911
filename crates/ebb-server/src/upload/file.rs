//! A session written to a local file: a hidden temporary file beside its destination, each
//! fragment at its offset and made durable before the session's row counts it; renamed to its
//! name at Close-Session.

use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::body::NewBytes;
use crate::ack::{Code, Refusal};
use crate::paths::{self, PathError};

/// Where session `uuid`'s file goes under `root` (`relative` to it), and its new, empty
/// temporary file, whose name is durable on return.
pub async fn create(
    root: PathBuf,
    relative: PathBuf,
    overwrite: bool,
    uuid: uuid::Uuid,
) -> Result<(PathBuf, PathBuf), Refusal> {
    blocking(move || {
        let destination = paths::under_root(&root, &relative).map_err(|e| refuse_path(&e))?;
        if destination.is_dir() {
            return Err(Refusal::bad("the URL names a directory"));
        }
        if destination.exists() && !overwrite {
            return Err(Refusal::denied(
                "the file exists and may not be overwritten",
            ));
        }
        let temp = destination.with_file_name(format!(".ebb-upload-{}.part", uuid.simple()));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| io_refusal(&temp, &e))?;
        // The name must outlive a power cut as long as the session's row does.
        sync_parent(&temp).map_err(|e| io_refusal(&temp, &e))?;
        Ok((destination, temp))
    })
    .await
}

/// Write a fragment's new bytes into `temp` at `offset`, and make them durable.
pub async fn write_at(temp: &Path, offset: u64, mut body: NewBytes) -> Result<(), Refusal> {
    let io = |e: std::io::Error| io_refusal(temp, &e);
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .open(temp)
        .await
        .map_err(io)?;
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(io)?;
    while let Some(chunk) = body.next().await? {
        file.write_all(&chunk).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    file.sync_data().await.map_err(io)
}

/// Put the finished temporary file at its name: without replacing a file that appeared
/// meanwhile unless overwriting is allowed; then make the directory entry durable.
pub async fn finish(temp: PathBuf, destination: PathBuf, overwrite: bool) -> Result<(), Refusal> {
    blocking(move || finish_now(&temp, &destination, overwrite)).await
}

fn finish_now(temp: &Path, destination: &Path, overwrite: bool) -> Result<(), Refusal> {
    if !temp.exists() && destination.exists() {
        // A Close-Session re-sent after a crash that came after the rename: the session's row
        // is still there, its file is at its name already.
        tracing::warn!(path = %destination.display(), "the upload is at its name already");
        return sync_parent(destination).map_err(|e| io_refusal(destination, &e));
    }
    if overwrite {
        std::fs::rename(temp, destination).map_err(|e| io_refusal(destination, &e))?;
    } else {
        match std::fs::hard_link(temp, destination) {
            Ok(()) => {}
            // Linked before a crash, and the temporary name not yet removed: ours.
            Err(e)
                if e.kind() == std::io::ErrorKind::AlreadyExists
                    && same_file(temp, destination) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Refusal::denied(
                    "the file exists and may not be overwritten",
                ));
            }
            Err(e) => return Err(io_refusal(destination, &e)),
        }
        std::fs::remove_file(temp).map_err(|e| io_refusal(temp, &e))?;
    }
    sync_parent(destination).map_err(|e| io_refusal(destination, &e))
}

/// Delete files that may be gone already (a session's leftovers).
pub async fn delete(files: Vec<PathBuf>) {
    let _ = blocking(move || {
        for file in files {
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %file.display(), error = %e, "cannot delete a session's file");
                }
            }
        }
        Ok(())
    })
    .await;
}

/// Whether two names are links to one file.
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    if cfg!(windows) {
        return Ok(());
    }
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

pub fn refuse_path(e: &PathError) -> Refusal {
    let why = e.to_string();
    let r = match e {
        PathError::Segment(_) | PathError::NoFile => Refusal::bad("a path that is not allowed"),
        PathError::Link(_) => Refusal::denied("a path through a symbolic link"),
        PathError::NotHere | PathError::Io(..) => Refusal::status(StatusCode::NOT_FOUND),
    };
    r.because(why)
}

pub fn io_refusal(path: &Path, e: &std::io::Error) -> Refusal {
    let full = e.raw_os_error() == Some(libc_enospc());
    let code = if full { Code::DISK_FULL } else { Code::FAIL };
    Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, code)
        .because(format!("{}: {e}", path.display()))
}

/// ENOSPC, or Windows's ERROR_DISK_FULL.
fn libc_enospc() -> i32 {
    if cfg!(windows) { 112 } else { 28 }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Refusal> + Send + 'static,
) -> Result<T, Refusal> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, Code::FAIL).because(e.to_string()))
    })
}
