//! An [`Error`] as data: which variant it is, with its fields, so that it crosses the daemon's
//! wire and comes back as the same variant. Code written against the engine then behaves the
//! same against the daemon's client: `matches!(e, Error::NotFound(_))` holds on both sides.
//!
//! Sources that are not data (an `io::Error`, a `rusqlite::Error`) cross as their kind or code
//! and their text, and are rebuilt with both, so that the code, the status and the message are
//! those of the original.

use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Error, ErrorCode, Status};
use crate::model::{JobId, JobState};

/// Which [`Error`] an error is, with the fields needed to rebuild it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum ErrorDetail {
    NotFound {
        job: String,
    },
    InvalidState {
        job: JobId,
        state: JobState,
        action: String,
    },
    Empty {
        job: JobId,
    },
    TooManyFiles,
    InvalidArgument {
        text: String,
    },
    InvalidRange {
        text: String,
    },
    TooLarge {
        text: String,
    },
    NotSupported {
        what: String,
    },
    Locked {
        dir: PathBuf,
        holder: String,
    },
    Store {
        path: PathBuf,
        /// SQLite's extended result code, when the error came from SQLite itself.
        sqlite_code: Option<i32>,
        text: String,
    },
    Corrupt {
        path: PathBuf,
        text: String,
    },
    Io {
        path: PathBuf,
        /// The `io::ErrorKind`, by name.
        io_kind: String,
        text: String,
    },
    ShutDown,
    /// Said by a far side with no more detail than its code, status and message; also what a
    /// detail this version does not know (from a newer ebbd) reads as.
    #[serde(other)]
    Remote,
}

impl Error {
    /// This error as data; [`Error::from_detail`] rebuilds it.
    pub fn detail(&self) -> ErrorDetail {
        match self {
            Self::NotFound(job) => ErrorDetail::NotFound { job: job.clone() },
            Self::InvalidState { job, state, action } => ErrorDetail::InvalidState {
                job: *job,
                state: *state,
                action: action.to_string(),
            },
            Self::Empty(job) => ErrorDetail::Empty { job: *job },
            Self::TooManyFiles => ErrorDetail::TooManyFiles,
            Self::InvalidArgument(text) => ErrorDetail::InvalidArgument { text: text.clone() },
            Self::InvalidRange { message, .. } => ErrorDetail::InvalidRange {
                text: message.clone(),
            },
            Self::TooLarge { message, .. } => ErrorDetail::TooLarge {
                text: message.clone(),
            },
            Self::NotSupported(what) => ErrorDetail::NotSupported {
                what: what.to_string(),
            },
            Self::Locked { dir, holder } => ErrorDetail::Locked {
                dir: dir.clone(),
                holder: holder.clone(),
            },
            Self::Store { path, source } => ErrorDetail::Store {
                path: path.clone(),
                sqlite_code: source.sqlite_error().map(|e| e.extended_code),
                text: source.to_string(),
            },
            Self::Corrupt { path, message } => ErrorDetail::Corrupt {
                path: path.clone(),
                text: message.clone(),
            },
            Self::Io { path, source } => ErrorDetail::Io {
                path: path.clone(),
                io_kind: io_kind_name(source.kind()).to_owned(),
                text: source.to_string(),
            },
            Self::ShutDown => ErrorDetail::ShutDown,
            Self::Remote { .. } => ErrorDetail::Remote,
        }
    }

    /// Rebuild an error from its detail and the code, status and message sent with it.
    pub fn from_detail(
        detail: ErrorDetail,
        code: ErrorCode,
        status: Status,
        message: String,
    ) -> Self {
        match detail {
            ErrorDetail::NotFound { job } => Self::NotFound(job),
            ErrorDetail::InvalidState { job, state, action } => Self::InvalidState {
                job,
                state,
                action: action.into(),
            },
            ErrorDetail::Empty { job } => Self::Empty(job),
            ErrorDetail::TooManyFiles => Self::TooManyFiles,
            ErrorDetail::InvalidArgument { text } => Self::InvalidArgument(text),
            ErrorDetail::InvalidRange { text } => Self::InvalidRange {
                code,
                message: text,
            },
            ErrorDetail::TooLarge { text } => Self::TooLarge {
                code,
                message: text,
            },
            ErrorDetail::NotSupported { what } => Self::NotSupported(what.into()),
            ErrorDetail::Locked { dir, holder } => Self::Locked { dir, holder },
            ErrorDetail::Store {
                path,
                sqlite_code,
                text,
            } => Self::Store {
                path,
                source: rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(sqlite_code.unwrap_or(rusqlite::ffi::SQLITE_ERROR)),
                    Some(text),
                ),
            },
            ErrorDetail::Corrupt { path, text } => Self::Corrupt {
                path,
                message: text,
            },
            ErrorDetail::Io {
                path,
                io_kind,
                text,
            } => Self::Io {
                path,
                source: io::Error::new(io_kind_named(&io_kind), text),
            },
            ErrorDetail::ShutDown => Self::ShutDown,
            ErrorDetail::Remote => Self::Remote {
                code,
                status,
                message,
            },
        }
    }
}

/// The kinds whose code or status differ, and a few worth keeping; anything else is `Other`.
const IO_KINDS: [(io::ErrorKind, &str); 14] = [
    (io::ErrorKind::NotFound, "not_found"),
    (io::ErrorKind::PermissionDenied, "permission_denied"),
    (io::ErrorKind::ReadOnlyFilesystem, "read_only_filesystem"),
    (io::ErrorKind::StorageFull, "storage_full"),
    (io::ErrorKind::QuotaExceeded, "quota_exceeded"),
    (io::ErrorKind::Interrupted, "interrupted"),
    (io::ErrorKind::AlreadyExists, "already_exists"),
    (io::ErrorKind::InvalidInput, "invalid_input"),
    (io::ErrorKind::InvalidData, "invalid_data"),
    (io::ErrorKind::TimedOut, "timed_out"),
    (io::ErrorKind::UnexpectedEof, "unexpected_eof"),
    (io::ErrorKind::ConnectionRefused, "connection_refused"),
    (io::ErrorKind::IsADirectory, "is_a_directory"),
    (io::ErrorKind::NotADirectory, "not_a_directory"),
];

fn io_kind_name(kind: io::ErrorKind) -> &'static str {
    IO_KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or("other", |(_, name)| name)
}

fn io_kind_named(name: &str) -> io::ErrorKind {
    IO_KINDS
        .iter()
        .find(|(_, n)| *n == name)
        .map_or(io::ErrorKind::Other, |(kind, _)| *kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_comes_back_as_itself() {
        for e in crate::internals::one_error_of_each_kind() {
            let json = serde_json::to_string(&e.detail()).unwrap();
            let detail: ErrorDetail = serde_json::from_str(&json).unwrap();
            let back = Error::from_detail(detail, e.code(), e.status(), e.to_string());
            assert_eq!(
                std::mem::discriminant(&back),
                std::mem::discriminant(&e),
                "{e:?} came back as {back:?}"
            );
            assert_eq!(back.code(), e.code(), "{e:?}");
            assert_eq!(back.status(), e.status(), "{e:?}");
            assert_eq!(back.to_string(), e.to_string(), "{e:?}");
        }
    }
}
