//! `file:` URLs: copies from a local (or mounted) file, resumable like HTTP, with size and
//! modification time as the validators.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use url::Url;

use super::checkpoint::Checkpointer;
use super::segments;
use super::{Attempt, Failure, Fetched, FileCx};
use crate::error::{ErrorCode, ErrorContext, Status, io_code};
use crate::model::{JobFile, Validators};

const CHUNK: usize = 1 << 20;

fn source_failure(path: &Path, e: &std::io::Error) -> Failure {
    let status = match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => Status::Permanent,
        _ => Status::Transient,
    };
    Failure::new(
        status,
        ErrorContext::RemoteFile,
        io_code(e),
        format!("({}: {e})", path.display()),
    )
}

/// Open a source file for reading. A FIFO or device would block `open()` or `read()` forever
/// (and the job, the scheduler and shutdown with it): only regular files are read, checked
/// before opening and again on the open descriptor, which is opened without blocking.
fn open_source(path: &Path) -> Result<(File, std::fs::Metadata), Failure> {
    let not_regular = || {
        Failure::new(
            Status::Permanent,
            ErrorContext::RemoteFile,
            ErrorCode::E_INVALIDARG,
            format!("({} is not a regular file)", path.display()),
        )
    };
    let before = std::fs::metadata(path).map_err(|e| source_failure(path, &e))?;
    if !before.is_file() {
        return Err(not_regular());
    }
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    let source = o.open(path).map_err(|e| source_failure(path, &e))?;
    let meta = source.metadata().map_err(|e| source_failure(path, &e))?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    Ok((source, meta))
}

pub(super) async fn fetch(
    cx: &FileCx<'_>,
    file: &mut JobFile,
    url: &Url,
    ckpt: &Checkpointer,
) -> Result<Fetched, Failure> {
    let Ok(path) = url.to_file_path() else {
        return Err(Failure::new(
            Status::Permanent,
            ErrorContext::RemoteFile,
            ErrorCode::E_INVALIDARG,
            format!("({url} is not a local path)"),
        ));
    };
    let (source, meta) = open_source(&path)?;
    let source = Arc::new(source);
    let size = meta.len();
    let validators = Validators {
        etag: Some(format!("\"{size}\"")),
        last_modified: meta.modified().ok().map(httpdate::fmt_http_date),
        sha256: None,
    };
    if let Some(why) = segments::out_of_bounds(file, size) {
        return Err(Failure::new(
            Status::Permanent,
            ErrorContext::RemoteFile,
            ErrorCode::BG_E_INVALID_RANGE,
            why,
        ));
    }
    let mut attempt = Attempt::new(cx, file, ckpt).await?;
    let result = async {
        if file.bytes_transferred > 0 && file.validators != validators {
            tracing::info!(path = %path.display(), "source changed; restarting the file");
            attempt.restart(cx, file)?;
        }
        file.validators = validators;
        file.bytes_total = segments::total(file, Some(size));
        attempt.announce(cx);
        let mut buf = vec![0u8; CHUNK];
        while let Some(seg) = segments::next(file, Some(size)) {
            let mut at = seg.start;
            let mut left = seg.end.unwrap_or(size).saturating_sub(seg.start);
            while left > 0 {
                if cx.stop.is_cancelled() {
                    return Ok(Fetched::Stopped);
                }
                let want = (left as usize).min(CHUNK);
                let n;
                (buf, n) = read_at(&source, &path, at, buf, want).await?;
                if n == 0 {
                    return Err(Failure::new(
                        Status::Transient,
                        ErrorContext::RemoteFile,
                        ErrorCode::BG_E_CONNECTION_CLOSED,
                        format!(
                            "({} ended early: it shrank while being copied)",
                            path.display()
                        ),
                    ));
                }
                attempt.write(cx, file, ckpt, &buf[..n]).await?;
                left -= n as u64;
                at += n as u64;
            }
        }
        Ok(Fetched::Completed)
    }
    .await;
    attempt.finish(cx, file, ckpt, result).await
}

/// Read up to `want` bytes at `offset` on a blocking thread (a slow disk or network mount must
/// not hold an async thread, nor the CLI's progress display on its one thread); the buffer
/// comes back with the count.
async fn read_at(
    source: &Arc<File>,
    path: &Path,
    offset: u64,
    mut buf: Vec<u8>,
    want: usize,
) -> Result<(Vec<u8>, usize), Failure> {
    let source = source.clone();
    let read = tokio::task::spawn_blocking(move || {
        let mut f: &File = &source;
        f.seek(SeekFrom::Start(offset))?;
        let n = f.read(&mut buf[..want])?;
        Ok::<_, std::io::Error>((buf, n))
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r);
    read.map_err(|e| source_failure(path, &e))
}
