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
mod upload;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use attempt::Attempt;
pub use checkpoint::CheckpointPolicy;
pub(crate) use checkpoint::{Checkpointer, sync_directory};
pub(crate) use http::HttpClients;
pub use http::HttpConfig;
pub(crate) use upload::{ReplySlot, cancel_session};

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

/// The progress of a run's files as its worker counts it, for readers: the one live copy,
/// written only by the worker, per chunk and without locks. The job on the queue's view holds
/// what the store has; a file this run touched shows these figures instead, until the run ends.
/// `completed` is never here: a file is completed once a checkpoint committed it, not before.
#[derive(Debug)]
pub(crate) struct Live {
    /// Per file of the job as the run started: bytes written, and the total if known.
    files: Box<[LiveFile]>,
    /// Bytes moved by this run, all files: "progress" for the no-progress timeout.
    moved: AtomicU64,
}

#[derive(Debug)]
struct LiveFile {
    /// `UNTOUCHED` until the worker starts the file.
    bytes: AtomicU64,
    total: AtomicU64,
}

const UNTOUCHED: u64 = u64::MAX;
const UNKNOWN: u64 = u64::MAX;

impl Live {
    /// The live figures of a run over `files` files.
    pub(crate) fn new(files: usize) -> Self {
        Self {
            files: (0..files)
                .map(|_| LiveFile {
                    bytes: AtomicU64::new(UNTOUCHED),
                    total: AtomicU64::new(UNKNOWN),
                })
                .collect(),
            moved: AtomicU64::new(0),
        }
    }

    /// The worker's count of file `index` is now `file`'s.
    pub(crate) fn show(&self, index: usize, file: &JobFile) {
        if let Some(slot) = self.files.get(index) {
            // The total first: a reader that sees these bytes sees their total or a later one.
            slot.total
                .store(file.bytes_total.unwrap_or(UNKNOWN), Ordering::Relaxed);
            slot.bytes.store(file.bytes_transferred, Ordering::Release);
        }
    }

    fn add_moved(&self, n: u64) {
        self.moved.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn moved(&self) -> u64 {
        self.moved.load(Ordering::Relaxed)
    }

    /// Lay this run's counts over the files as the store has them.
    pub(crate) fn apply_to(&self, files: &mut [JobFile]) {
        for (file, slot) in files.iter_mut().zip(self.files.iter()) {
            let bytes = slot.bytes.load(Ordering::Acquire);
            if bytes == UNTOUCHED || file.completed {
                continue;
            }
            file.bytes_transferred = bytes;
            let total = slot.total.load(Ordering::Relaxed);
            file.bytes_total = (total != UNKNOWN).then_some(total);
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

/// Download one file into its temporary file, from wherever its progress says.
/// A file whose bytes fail their digest is fetched once more from the start; a second
/// mismatch is the job's error.
pub(crate) async fn fetch(
    cx: &FileCx<'_>,
    file: &mut JobFile,
    ckpt: &Checkpointer,
) -> Result<Fetched, Failure> {
    let url = remote_url(file)?;
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

/// The file's remote URL, checked again (a stored row could hold anything).
fn remote_url(file: &JobFile) -> Result<url::Url, Failure> {
    crate::model::validate_remote_url(&file.remote_url).map_err(|e| {
        Failure::new(
            Status::Permanent,
            ErrorContext::RemoteFile,
            ErrorCode::E_INVALIDARG,
            e.to_string(),
        )
    })
}

/// Upload one file into the server's session, from wherever the session stands; for
/// upload-reply, fetch the reply into `reply`.
pub(crate) async fn upload(
    cx: &FileCx<'_>,
    file: &mut JobFile,
    ckpt: &Checkpointer,
    reply: Option<&mut ReplySlot>,
) -> Result<Fetched, Failure> {
    let url = remote_url(file)?;
    if !matches!(url.scheme(), "http" | "https" | "tus+http" | "tus+https") {
        return Err(Failure::new(
            Status::Permanent,
            ErrorContext::RemoteFile,
            ErrorCode::E_INVALIDARG,
            format!("({url}: uploads go to http or https URLs, or tus+http, tus+https)"),
        )
        .with_file(cx.index));
    }
    upload::send(cx, file, url, ckpt, reply)
        .await
        .map_err(|f| f.with_file(cx.index))
}

async fn fetch_once(
    cx: &FileCx<'_>,
    file: &mut JobFile,
    url: &url::Url,
    ckpt: &Checkpointer,
) -> Result<Fetched, Failure> {
    cx.live.show(cx.index, file);
    if url.scheme() == "file" {
        local::fetch(cx, file, url, ckpt).await
    } else {
        http::fetch(cx, file, url.clone(), ckpt).await
    }
}
