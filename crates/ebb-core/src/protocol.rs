//! The daemon's wire protocol (HTTP/JSON over a Unix socket), shared by `ebbd` and the client.
//! `docs/api.md` describes it for people.

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Status};
use crate::model::{JobState, JobType, NewFile};

/// The API version: every path starts with `/v1`.
pub const API_VERSION: u32 = 1;
/// The path prefix of this version.
pub const API_PREFIX: &str = "/v1";

/// `GET /v1/version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub api: u32,
    pub ebbd: String,
}

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub status: Status,
    pub message: String,
}

impl From<&Error> for ErrorBody {
    fn from(e: &Error) -> Self {
        Self {
            code: e.code(),
            status: e.status(),
            message: e.to_string(),
        }
    }
}

impl From<ErrorBody> for Error {
    fn from(b: ErrorBody) -> Self {
        Error::Remote {
            code: b.code,
            status: b.status,
            message: b.message,
        }
    }
}

/// `POST /v1/jobs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateJob {
    pub display_name: String,
    #[serde(rename = "type", default)]
    pub job_type: JobType,
}

/// `POST /v1/jobs/{id}/files`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddFiles {
    pub files: Vec<NewFile>,
}

/// `POST /v1/jobs/{id}/replace-remote-prefix`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplacePrefix {
    pub old: String,
    pub new: String,
}

/// `PUT /v1/jobs/{id}/files/{index}/remote-url`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteUrl {
    pub url: String,
}

/// `GET /v1/jobs?all=true` lists Acknowledged and Cancelled jobs too.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub all: bool,
}

/// `GET /v1/jobs/{id}/wait?timeout_ms=N`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitQuery {
    pub timeout_ms: Option<u64>,
}

/// Replies that carry one value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Value<T> {
    pub value: T,
}

/// `GET /v1/jobs/{id}/wait` answers the state the job settled in (or has at the timeout).
pub type WaitReply = Value<JobState>;
