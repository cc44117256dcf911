//! What callers see of a job: [`JobInfo`], a snapshot with its error and files.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{
    CredentialsView, Job, JobFile, JobId, JobProperties, JobState, JobType, Timestamp, WaitReason,
};
use crate::error::{ErrorCode, ErrorContext};

impl Job {
    /// A snapshot for callers.
    pub fn info(&self) -> JobInfo {
        self.info_with(self.files.clone())
    }

    /// A snapshot whose files are `files` (this job's files with live progress laid over them).
    pub(crate) fn info_with(&self, files: Vec<JobFile>) -> JobInfo {
        let bytes_total = files
            .iter()
            .try_fold(0u64, |sum, f| f.bytes_total.map(|t| sum + t));
        let error = self.error.as_ref().map(|e| JobErrorInfo {
            context: e.context,
            code: e.code,
            description: e.description.clone(),
            file: e.file_index.and_then(|i| {
                files.get(i).map(|f| ErrorFile {
                    index: i,
                    remote_url: f.remote_url.clone(),
                    local_path: f.local_path.clone(),
                })
            }),
        });
        let reason = WaitReason::of_state(
            self.state,
            self.error
                .as_ref()
                .map(|e| (e.code, e.description.as_str())),
            self.error_count,
            self.schedule.retry_at,
        );
        JobInfo {
            id: self.id,
            display_name: self.display_name.clone(),
            description: self.description.clone(),
            job_type: self.job_type,
            state: self.state,
            owner: self.owner.name.clone(),
            owner_uid: self.owner.uid,
            bytes_total,
            bytes_transferred: files.iter().map(|f| f.bytes_transferred).sum(),
            files_total: files.len(),
            files_transferred: files.iter().filter(|f| f.completed).count(),
            error_count: self.error_count,
            error,
            created_at: self.created_at,
            modified_at: self.modified_at,
            completed_at: self.completed_at,
            properties: self.properties.clone(),
            credentials: self.credentials.view(),
            files,
            reply_file_name: self
                .reply_file_name
                .clone()
                .or_else(|| self.reply.as_ref().map(|r| r.local_path.clone())),
            reply_progress: (self.job_type == JobType::UploadReply).then(|| ReplyProgress {
                bytes_total: self.reply.as_ref().and_then(|r| r.bytes_total),
                bytes_transferred: self.reply.as_ref().map_or(0, |r| r.bytes_transferred),
            }),
            reason,
        }
    }
}

/// The file an error concerns, as reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFile {
    pub index: usize,
    pub remote_url: String,
    pub local_path: PathBuf,
}

/// A job's last error, as reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobErrorInfo {
    pub context: ErrorContext,
    pub code: ErrorCode,
    pub description: String,
    pub file: Option<ErrorFile>,
}

/// A snapshot of a job: what `info`, `list` and `--json` show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInfo {
    pub id: JobId,
    pub display_name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub job_type: JobType,
    pub state: JobState,
    pub owner: String,
    pub owner_uid: u32,
    /// `None` while any file's size is unknown.
    pub bytes_total: Option<u64>,
    pub bytes_transferred: u64,
    pub files_total: usize,
    pub files_transferred: usize,
    pub error_count: u32,
    pub error: Option<JobErrorInfo>,
    pub created_at: Timestamp,
    pub modified_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    #[serde(flatten)]
    pub properties: JobProperties,
    pub credentials: CredentialsView,
    pub files: Vec<JobFile>,
    /// Upload-reply: where the reply goes (`GetReplyFileName`): the name the app set, else the
    /// one generated when the reply was first fetched; `None` before that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_file_name: Option<PathBuf>,
    /// Upload-reply: the reply's progress (`GetReplyProgress`); `None` for other job types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_progress: Option<ReplyProgress>,
    /// Why the job is not moving, when it is not (`None` while it connects or transfers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<WaitReason>,
}

/// `BG_JOB_REPLY_PROGRESS`: the reply's size (`None` until the server named the reply, or when
/// the error was in the upload half) and the bytes fetched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyProgress {
    pub bytes_total: Option<u64>,
    pub bytes_transferred: u64,
}

impl JobInfo {
    /// `GetReplyProgress`: upload-reply jobs only (`E_NOTIMPL` for others, as BITS).
    pub fn reply_progress(&self) -> crate::Result<ReplyProgress> {
        self.reply_progress
            .ok_or_else(|| not_upload_reply("reply progress"))
    }
}

fn not_upload_reply(what: &str) -> crate::Error {
    crate::Error::NotSupported(format!("{what} of a job that is not upload-reply").into())
}
