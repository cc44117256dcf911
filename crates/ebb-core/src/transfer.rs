//! Moving bytes: one file at a time into its hidden temporary file, resuming where the last
//! durable checkpoint left off.
//!
//! A fetch never trusts the server blindly: a resumed request carries `Range` and `If-Range`; a
//! 200 to a ranged request restarts the file; a `Content-Range` that does not match what was
//! asked for, or a compressed 206, is refused and the file is fetched whole; a body that stalls
//! for longer than the chunk timeout is abandoned as a transient error.

mod attempt;
mod checkpoint;
mod digest;
mod http;
mod local;
mod segments;
mod temp_file;
pub(crate) mod tls;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use attempt::Attempt;
pub use checkpoint::CheckpointPolicy;
pub(crate) use checkpoint::{Checkpointer, sync_directory};
pub(crate) use http::HttpClients;
pub use http::HttpConfig;

use crate::error::{ErrorCode, ErrorContext, JobError, Status, io_code, io_is_transient};
use crate::model::{Credentials, JobFile, JobProperties};

/// Why a file could not be transferred, classified for the scheduler.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub status: Status,
    pub error: JobError,
    /// A server's `Retry-After`, honoured on top of the minimum retry delay.
    pub retry_after: Option<Duration>,
}

impl Failure {
    pub(crate) fn new(
        status: Status,
        context: ErrorContext,
        code: ErrorCode,
        detail: impl AsRef<str>,
    ) -> Self {
        let detail = detail.as_ref();
        let description = if detail.is_empty() {
            code.description()
        } else {
            format!("{} {detail}", code.description())
        };
        Self {
            status,
            error: JobError {
                context,
                code,
                description,
                file_index: None,
            },
            retry_after: None,
        }
    }

    /// A local I/O error, naming the path.
    pub(crate) fn local_io(path: &std::path::Path, e: &std::io::Error) -> Self {
        let status = if io_is_transient(e) {
            Status::Transient
        } else {
            Status::Permanent
        };
        Self::new(
            status,
            ErrorContext::LocalFile,
            io_code(e),
            format!("({}: {e})", path.display()),
        )
    }

    pub(crate) fn with_file(mut self, index: usize) -> Self {
        self.error.file_index = Some(index);
        self
    }
}

/// What a running job's worker shows the rest of the engine, updated per chunk without locks.
#[derive(Debug)]
pub(crate) struct Live {
    current: AtomicUsize,
    bytes: AtomicU64,
    total: AtomicU64,
    /// Bytes moved by this run, all files: "progress" for the no-progress timeout.
    moved: AtomicU64,
    /// Files whose last byte this run wrote: `completed` only once a checkpoint made them
    /// durable (`mark_durable`), so that no reader sees a file done that a crash could lose.
    done: Mutex<Vec<(usize, JobFile)>>,
}

const NONE: usize = usize::MAX;
const UNKNOWN: u64 = u64::MAX;

impl Default for Live {
    fn default() -> Self {
        Self {
            current: AtomicUsize::new(NONE),
            bytes: AtomicU64::new(0),
            total: AtomicU64::new(UNKNOWN),
            moved: AtomicU64::new(0),
            done: Mutex::new(Vec::new()),
        }
    }
}

impl Live {
    pub(crate) fn set_current(&self, index: usize, file: &JobFile) {
        self.bytes.store(file.bytes_transferred, Ordering::Relaxed);
        self.total
            .store(file.bytes_total.unwrap_or(UNKNOWN), Ordering::Relaxed);
        self.current.store(index, Ordering::Relaxed);
    }

    fn update(&self, file: &JobFile) {
        self.bytes.store(file.bytes_transferred, Ordering::Relaxed);
        self.total
            .store(file.bytes_total.unwrap_or(UNKNOWN), Ordering::Relaxed);
    }

    fn add_moved(&self, n: u64) {
        self.moved.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn moved(&self) -> u64 {
        self.moved.load(Ordering::Relaxed)
    }

    pub(crate) fn finish_file(&self, index: usize, file: &JobFile) {
        if let Ok(mut done) = self.done.lock() {
            done.push((index, file.clone()));
        }
        self.current.store(NONE, Ordering::Relaxed);
    }

    /// Files a checkpoint made durable and recorded: now they are completed.
    pub(crate) fn mark_durable(&self, indices: &[usize]) {
        let durable: std::collections::HashSet<usize> = indices.iter().copied().collect();
        if let Ok(mut done) = self.done.lock() {
            for (i, f) in done.iter_mut().rev() {
                if durable.contains(i) {
                    f.completed = true;
                }
            }
        }
    }

    /// Overlay this run's progress on the engine's copy of the files.
    pub(crate) fn apply_to(&self, files: &mut [JobFile]) {
        if let Ok(done) = self.done.lock() {
            for (i, f) in done.iter() {
                if let Some(slot) = files.get_mut(*i) {
                    slot.clone_from(f);
                }
            }
        }
        let current = self.current.load(Ordering::Relaxed);
        if let Some(f) = files.get_mut(current) {
            f.bytes_transferred = self.bytes.load(Ordering::Relaxed);
            let total = self.total.load(Ordering::Relaxed);
            f.bytes_total = (total != UNKNOWN).then_some(total);
        }
    }
}

/// Everything a fetch needs besides the file itself.
#[allow(missing_debug_implementations)]
pub(crate) struct FileCx<'a> {
    pub index: usize,
    pub properties: &'a JobProperties,
    pub credentials: &'a Credentials,
    pub live: &'a Live,
    pub stop: &'a CancellationToken,
    pub clients: &'a HttpClients,
    /// Bandwidth limits for this job's bytes.
    pub throttle: &'a crate::bandwidth::Throttle,
    /// Called once, when the first response (or local source) is accepted.
    pub connected: &'a (dyn Fn() + Send + Sync),
}

/// How a fetch ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fetched {
    Completed,
    Stopped,
}

/// Fetch one file into its temporary file, from wherever its progress says.
/// A file whose bytes fail their digest is fetched once more from the start; a second
/// mismatch is the job's error.
pub(crate) async fn fetch(
    cx: &FileCx<'_>,
    file: &mut JobFile,
    ckpt: &mut Checkpointer,
) -> Result<Fetched, Failure> {
    let url = crate::model::validate_remote_url(&file.remote_url).map_err(|e| {
        Failure::new(
            Status::Permanent,
            ErrorContext::RemoteFile,
            ErrorCode::E_INVALIDARG,
            e.to_string(),
        )
    })?;
    let mut result = fetch_once(cx, file, &url, ckpt).await;
    if let Err(f) = &result
        && f.error.code == ErrorCode::E_DIGEST_MISMATCH
        && !cx.stop.is_cancelled()
    {
        tracing::warn!(error = %f.error.description, "digest mismatch; fetching the file once more");
        result = fetch_once(cx, file, &url, ckpt).await;
    }
    result.map_err(|f| f.with_file(cx.index))
}

async fn fetch_once(
    cx: &FileCx<'_>,
    file: &mut JobFile,
    url: &url::Url,
    ckpt: &mut Checkpointer,
) -> Result<Fetched, Failure> {
    cx.live.set_current(cx.index, file);
    if url.scheme() == "file" {
        local::fetch(cx, file, url, ckpt).await
    } else {
        http::fetch(cx, file, url.clone(), ckpt).await
    }
}
