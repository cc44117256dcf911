//! The error type every public function of this crate returns. BITS's numeric codes and
//! contexts, which it carries, are model nouns (`model/codes.rs`).
//!
//! Policy (after rustic_core): one error type for the crate surface, carrying a BITS code and a
//! *status* — transient (try again later, BITS's `TRANSIENT_ERROR`) or permanent (`ERROR`). Every
//! I/O error names the path or URL it concerns.

mod detail;

use std::borrow::Cow;
use std::path::PathBuf;

pub(crate) use crate::model::{ErrorCode, ErrorContext, JobError, Status};
use crate::model::{JobId, JobState};
pub use detail::ErrorDetail;

/// The error type of every public operation of the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("job {0} not found")]
    NotFound(String),
    #[error("job {job} is {}: cannot {action}", state.as_str().replace('_', "-"))]
    InvalidState {
        job: JobId,
        state: JobState,
        action: Cow<'static, str>,
    },
    #[error("job {0} has no files: add a file before resuming")]
    Empty(JobId),
    #[error("upload jobs can contain only one file")]
    TooManyFiles,
    #[error("{0}")]
    InvalidArgument(String),
    /// A byte range that cannot be (out of the file, overlapping, empty).
    #[error("{message} (0x{code:08x})", code = .code.0)]
    InvalidRange { code: ErrorCode, message: String },
    /// A value larger than its field takes: a string, a list, a user name, a count of ranges.
    #[error("{message} (0x{code:08x})", code = .code.0)]
    TooLarge { code: ErrorCode, message: String },
    #[error("{0} is not supported yet")]
    NotSupported(Cow<'static, str>),
    #[error("data directory {dir} is in use by another engine ({holder})")]
    Locked { dir: PathBuf, holder: String },
    #[error("database {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the engine has shut down")]
    ShutDown,
    /// An error reported by a remote backend (the daemon), with its code and status.
    #[error("{message}")]
    Remote {
        code: ErrorCode,
        status: Status,
        message: String,
    },
}

impl Error {
    /// An I/O error on `path` (every I/O error names its path or URL).
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// The BITS code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound(_) => ErrorCode::BG_E_NOT_FOUND,
            Self::InvalidState { .. } => ErrorCode::BG_E_INVALID_STATE,
            Self::Empty(_) => ErrorCode::BG_E_EMPTY,
            Self::TooManyFiles => ErrorCode::BG_E_TOO_MANY_FILES,
            Self::InvalidArgument(_) => ErrorCode::E_INVALIDARG,
            Self::InvalidRange { code, .. }
            | Self::TooLarge { code, .. }
            | Self::Remote { code, .. } => *code,
            Self::NotSupported(_) => ErrorCode::E_NOTIMPL,
            Self::Locked { .. } => ErrorCode::BG_E_DESTINATION_LOCKED,
            Self::Io { source, .. } => io_code(source),
            Self::Store { .. } | Self::Corrupt { .. } | Self::ShutDown => ErrorCode::E_FAIL,
        }
    }

    /// Whether the same call may succeed later without any change by the caller.
    pub fn status(&self) -> Status {
        match self {
            Self::Locked { .. } | Self::ShutDown => Status::Transient,
            Self::Remote { status, .. } => *status,
            Self::Io { source, .. } if io_is_transient(source) => Status::Transient,
            _ => Status::Permanent,
        }
    }
}

/// The BITS-style code for a local I/O error.
pub(crate) fn io_code(e: &std::io::Error) -> ErrorCode {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => ErrorCode::E_FILE_NOT_FOUND,
        K::PermissionDenied | K::ReadOnlyFilesystem => ErrorCode::E_ACCESSDENIED,
        K::StorageFull | K::QuotaExceeded => ErrorCode::E_DISK_FULL,
        _ => ErrorCode::E_FAIL,
    }
}

/// A full disk may drain; most other local errors need a person.
pub(crate) fn io_is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull
            | std::io::ErrorKind::QuotaExceeded
            | std::io::ErrorKind::Interrupted
    )
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
