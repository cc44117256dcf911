//! The request and reply bodies of API version 1 (the job model's own types, `JobInfo`,
//! `NewFile`, `PropertyChange`, `Completion`, `Event`, cross as their serde forms).

use ebb_core::settings::EngineSettings;
use ebb_core::{JobState, JobType, NewFile, PageCursor};
use serde::{Deserialize, Serialize};

/// The API version: every path starts with `/v1`.
pub const API_VERSION: u32 = 1;
/// The path prefix of this version.
pub const API_PREFIX: &str = "/v1";

/// `GET /v1/version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub api: u32,
    pub ebbd: String,
    /// The settings the daemon's engine runs with (absent from an older ebbd's answer), so
    /// that a client asked for other settings can say so instead of ignoring them.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_settings"
    )]
    pub settings: Option<EngineSettings>,
}

/// Settings a client cannot read (an ebbd newer than it, with settings it does not know) are
/// no settings: the client then checks none, rather than failing to connect.
fn lenient_settings<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<EngineSettings>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(value.and_then(|v| serde_json::from_value(v).ok()))
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

/// `GET /v1/jobs?all=true&all_users=true` lists Acknowledged and Cancelled jobs too, and
/// every user's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub all: bool,
    /// Every user's jobs (a per-user daemon has only its own).
    #[serde(default)]
    pub all_users: bool,
}

/// `GET /v1/jobs/page?after=CURSOR&limit=N` (and [`ListQuery`]'s flags): at most `limit`
/// jobs after the cursor (from the first job without one), and where the next page starts.
/// `GET /v1/jobs` answers every job, streamed a page at a time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPageQuery {
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub all_users: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<PageCursor>,
    /// At most [`ebb_core::MAX_PAGE`]; [`DEFAULT_PAGE`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// The page size when a page query names none.
pub const DEFAULT_PAGE: usize = 100;

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
