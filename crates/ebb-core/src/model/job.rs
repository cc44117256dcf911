//! A job as the engine holds it, and its state machine: every transition is a method here.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{
    Credentials, JobFile, JobId, JobProperties, JobState, JobType, Owner, PropertyChange, Timestamp,
};
use crate::error::{Error, ErrorCode, ErrorContext, JobError, Result, Status};

/// The scheduler's bookkeeping for a job (persisted, never shown).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Bookkeeping {
    /// Position in the queue of its priority level; smaller goes first.
    pub queue_seq: i64,
    /// When a job in TransientError is retried.
    pub retry_at: Option<Timestamp>,
    /// Start of the current stretch without progress (set by the first transient error).
    pub no_progress_since: Option<Timestamp>,
    /// Connecting + Transferring time so far, for the maximum download time.
    pub active_ms: u64,
}

/// What `resume` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResumeOutcome {
    Queued,
    /// The job was already queued or running: nothing changed.
    AlreadyActive,
    /// All files are transferred already: the job stays Transferred.
    AlreadyTransferred,
}

/// A job as the engine holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub id: JobId,
    pub display_name: String,
    pub description: String,
    pub job_type: JobType,
    /// Assigned only by the transition methods below (and by the store when loading).
    pub(crate) state: JobState,
    pub owner: Owner,
    pub properties: JobProperties,
    pub credentials: Credentials,
    pub files: Vec<JobFile>,
    /// Upload-reply: where the reply goes, as the app set it (`SetReplyFileName`), else as
    /// generated when the reply was first fetched.
    pub reply_file_name: Option<PathBuf>,
    /// Upload-reply: the reply, once the server named it (a download into its temporary file
    /// until Complete). Stored as the job's file row at [`Job::REPLY_INDEX`].
    pub reply: Option<JobFile>,
    pub created_at: Timestamp,
    pub modified_at: Timestamp,
    /// When the job reached Transferred.
    pub completed_at: Option<Timestamp>,
    pub error_count: u32,
    pub error: Option<JobError>,
    pub(crate) schedule: Bookkeeping,
}

const MAX_DISPLAY_NAME: usize = 256;

impl Job {
    /// Where an upload-reply job's reply is kept among its file rows (the upload is 0).
    pub const REPLY_INDEX: usize = 1;
}
const MAX_DESCRIPTION: usize = 1024;

fn check_len(what: &str, text: &str, max: usize) -> Result<()> {
    if text.chars().count() > max {
        return Err(Error::TooLarge {
            code: ErrorCode::BG_E_STRING_TOO_LONG,
            message: format!("{what} is longer than {max} characters"),
        });
    }
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Error::InvalidArgument(format!(
            "{what} contains control characters"
        )));
    }
    Ok(())
}

impl Job {
    /// A new job: Suspended, no files, BITS's default properties.
    pub fn new(
        display_name: &str,
        job_type: JobType,
        owner: Owner,
        now: Timestamp,
    ) -> Result<Self> {
        check_len("display name", display_name, MAX_DISPLAY_NAME)?;
        Ok(Self {
            id: JobId::new(),
            display_name: display_name.to_owned(),
            description: String::new(),
            job_type,
            state: JobState::Suspended,
            owner,
            properties: JobProperties::default(),
            credentials: Credentials::default(),
            files: Vec::new(),
            reply_file_name: None,
            reply: None,
            created_at: now,
            modified_at: now,
            completed_at: None,
            error_count: 0,
            error: None,
            schedule: Bookkeeping::default(),
        })
    }

    pub fn state(&self) -> JobState {
        self.state
    }

    fn invalid(&self, action: impl Into<std::borrow::Cow<'static, str>>) -> Error {
        Error::InvalidState {
            job: self.id,
            state: self.state,
            action: action.into(),
        }
    }

    /// Refuse any change once the job is final (`BG_E_INVALID_STATE`).
    pub fn check_modifiable(&self, action: &'static str) -> Result<()> {
        if self.state.is_final() {
            return Err(self.invalid(action));
        }
        Ok(())
    }

    pub fn all_files_done(&self) -> bool {
        self.files.iter().all(|f| f.completed)
    }

    /// `Resume`: Suspended, Error, TransientError (and Transferred with new files) -> Queued.
    pub fn resume(&mut self, now: Timestamp, queue_seq: i64) -> Result<ResumeOutcome> {
        self.check_modifiable("resume")?;
        if self.files.is_empty() {
            return Err(Error::Empty(self.id));
        }
        let outcome = match self.state {
            JobState::Queued | JobState::Connecting | JobState::Transferring => {
                ResumeOutcome::AlreadyActive
            }
            JobState::Transferred if self.all_files_done() => ResumeOutcome::AlreadyTransferred,
            _ => {
                self.state = JobState::Queued;
                self.schedule.queue_seq = queue_seq;
                self.schedule.retry_at = None;
                self.schedule.no_progress_since = None;
                // BITS: "Resume resets the elapsed time" of the maximum download time.
                self.schedule.active_ms = 0;
                self.modified_at = now;
                ResumeOutcome::Queued
            }
        };
        Ok(outcome)
    }

    /// `Suspend`: any non-final state -> Suspended. Returns whether the state changed.
    pub fn suspend(&mut self, now: Timestamp) -> Result<bool> {
        self.check_modifiable("suspend")?;
        if self.state == JobState::Suspended {
            return Ok(false);
        }
        self.state = JobState::Suspended;
        self.schedule.retry_at = None;
        self.modified_at = now;
        Ok(true)
    }

    /// `Cancel`: any non-final state -> Cancelled (the caller removes the temporary files).
    pub fn cancel(&mut self, now: Timestamp) -> Result<()> {
        self.check_modifiable("cancel")?;
        self.state = JobState::Cancelled;
        self.modified_at = now;
        // A final job will never authenticate again: its secrets go.
        self.credentials = Credentials::default();
        Ok(())
    }

    /// May `Complete` be called now? Downloads: any non-final state; uploads: Transferred only.
    pub fn check_completable(&self) -> Result<()> {
        self.check_modifiable("complete")?;
        if self.job_type != JobType::Download && self.state != JobState::Transferred {
            return Err(self.invalid("complete"));
        }
        Ok(())
    }

    /// `Complete`, once the files are in place: -> Acknowledged.
    pub fn acknowledge(&mut self, now: Timestamp) -> Result<()> {
        self.check_completable()?;
        self.state = JobState::Acknowledged;
        self.modified_at = now;
        self.credentials = Credentials::default();
        Ok(())
    }

    /// Scheduler: Queued -> Connecting.
    pub(crate) fn start_connecting(&mut self, now: Timestamp) -> bool {
        self.transition(&[JobState::Queued], JobState::Connecting, now)
    }

    /// Worker got a response: Connecting -> Transferring.
    pub(crate) fn connected(&mut self, now: Timestamp) -> bool {
        self.transition(&[JobState::Connecting], JobState::Transferring, now)
    }

    /// Time slice over or preempted: Connecting/Transferring -> Queued, to the back of its level.
    pub(crate) fn requeue(&mut self, now: Timestamp, queue_seq: i64) -> bool {
        let done = self.transition(
            &[JobState::Connecting, JobState::Transferring],
            JobState::Queued,
            now,
        );
        if done {
            self.schedule.queue_seq = queue_seq;
        }
        done
    }

    /// A bandwidth policy window with a limit of 0 for this job's priority: Queued, Connecting
    /// or Transferring -> TransientError with `BG_E_BLOCKED_BY_POLICY`, until the window ends.
    /// Not a failure of the job: the error count and the no-progress clock are left alone.
    pub(crate) fn block_by_policy(&mut self, why: &str, now: Timestamp) -> bool {
        let done = self.transition(
            &[
                JobState::Queued,
                JobState::Connecting,
                JobState::Transferring,
            ],
            JobState::TransientError,
            now,
        );
        if done {
            let code = ErrorCode::BG_E_BLOCKED_BY_POLICY;
            self.error = Some(JobError {
                context: ErrorContext::GeneralQueueManager,
                code,
                description: format!("{} ({why})", code.description()),
                file_index: None,
            });
            self.schedule.retry_at = None;
        }
        done
    }

    /// Whether the job waits for a policy window to end.
    pub fn is_blocked_by_policy(&self) -> bool {
        self.state == JobState::TransientError
            && self
                .error
                .as_ref()
                .is_some_and(|e| e.code == ErrorCode::BG_E_BLOCKED_BY_POLICY)
    }

    /// TransientError whose retry time came: -> Queued.
    pub(crate) fn retry(&mut self, now: Timestamp) -> bool {
        let done = self.transition(&[JobState::TransientError], JobState::Queued, now);
        if done {
            self.schedule.retry_at = None;
        }
        done
    }

    /// All files are done: -> Transferred.
    pub(crate) fn transferred(&mut self, now: Timestamp) -> bool {
        let done = self.transition(
            &[
                JobState::Queued,
                JobState::Connecting,
                JobState::Transferring,
            ],
            JobState::Transferred,
            now,
        );
        if done {
            self.completed_at = Some(now);
            self.error = None;
            self.schedule.no_progress_since = None;
        }
        done
    }

    /// Record an error and move to TransientError or Error, as its status and the job's
    /// retry settings say. Returns the new state, or `None` if the job was not in an action state.
    pub(crate) fn fail(
        &mut self,
        error: JobError,
        status: Status,
        now: Timestamp,
    ) -> Option<JobState> {
        if !self.state.is_active() {
            return None;
        }
        self.error_count = self.error_count.saturating_add(1);
        self.error = Some(error);
        self.modified_at = now;
        let props = &self.properties;
        let since = *self.schedule.no_progress_since.get_or_insert(now);
        let timeout = std::time::Duration::from_secs(u64::from(props.no_progress_timeout));
        let give_up = status == Status::Permanent
            || props.no_progress_timeout == 0
            || props.minimum_retry_delay > props.no_progress_timeout
            || since.elapsed_until(now) >= timeout;
        if give_up {
            self.state = JobState::Error;
            self.schedule.retry_at = None;
        } else {
            self.state = JobState::TransientError;
        }
        Some(self.state)
    }

    /// TransientError with no progress for the whole no-progress timeout: -> Error.
    pub(crate) fn give_up(&mut self, now: Timestamp) -> bool {
        let done = self.transition(&[JobState::TransientError], JobState::Error, now);
        if done {
            self.schedule.retry_at = None;
        }
        done
    }

    /// Maximum download time exceeded while running: -> Error with `BG_E_MAXDOWNLOAD_TIMEOUT`.
    pub(crate) fn exceed_download_time(&mut self, now: Timestamp) -> bool {
        if !self.state.is_running() {
            return false;
        }
        self.error_count = self.error_count.saturating_add(1);
        self.error = Some(JobError {
            context: ErrorContext::GeneralQueueManager,
            code: ErrorCode::BG_E_MAXDOWNLOAD_TIMEOUT,
            description: ErrorCode::BG_E_MAXDOWNLOAD_TIMEOUT.description(),
            file_index: None,
        });
        self.state = JobState::Error;
        self.modified_at = now;
        true
    }

    fn transition(&mut self, from: &[JobState], to: JobState, now: Timestamp) -> bool {
        if !from.contains(&self.state) {
            return false;
        }
        self.state = to;
        self.modified_at = now;
        true
    }

    /// Apply a `Set*` call.
    pub fn apply(&mut self, change: PropertyChange, now: Timestamp) -> Result<()> {
        self.check_modifiable("change properties of")?;
        let props = &mut self.properties;
        match change {
            PropertyChange::DisplayName(name) => {
                check_len("display name", &name, MAX_DISPLAY_NAME)?;
                self.display_name = name;
            }
            PropertyChange::Description(text) => {
                check_len("description", &text, MAX_DESCRIPTION)?;
                self.description = text;
            }
            PropertyChange::Priority(p) => props.priority = p,
            PropertyChange::MinimumRetryDelay(s) => {
                props.minimum_retry_delay = s.max(JobProperties::MIN_RETRY_DELAY_FLOOR);
            }
            PropertyChange::NoProgressTimeout(s) => props.no_progress_timeout = s,
            PropertyChange::MaximumDownloadTime(s) => props.maximum_download_time = s,
            PropertyChange::NotifyFlags(f) => props.notify_flags = f,
            PropertyChange::NotifyCommandLine(c) => props.notify_command_line = c,
            PropertyChange::CustomHeaders(h) => {
                super::CustomHeader::check_total(&h)?;
                props.custom_headers = h;
            }
            PropertyChange::Proxy(p) => props.proxy = p,
            PropertyChange::Credentials(target, c) => match target {
                super::CredentialTarget::Server => self.credentials.server = c,
                super::CredentialTarget::Proxy => self.credentials.proxy = c,
            },
            PropertyChange::SecurityFlags(f) => props.security_flags = f,
            PropertyChange::MaxRate(r) => props.max_rate = r,
            PropertyChange::CredentialsAcrossOrigins(b) => props.credentials_across_origins = b,
            PropertyChange::ReplyFileName(path) => self.set_reply_file_name(path)?,
            PropertyChange::CaFile(path) => {
                if let Some(p) = path.as_deref().filter(|p| !p.is_absolute()) {
                    return Err(Error::InvalidArgument(format!(
                        "CA file {}: give an absolute path",
                        p.display()
                    )));
                }
                props.ca_file = path;
            }
            PropertyChange::Connections(n) => {
                if n > JobProperties::MAX_CONNECTIONS {
                    return Err(Error::InvalidArgument(format!(
                        "connections {n}: at most {} (0 lets ebb choose)",
                        JobProperties::MAX_CONNECTIONS
                    )));
                }
                props.connections = n;
            }
        }
        self.modified_at = now;
        Ok(())
    }

    /// `SetReplyFileName`: upload-reply jobs only (`E_NOTIMPL` for others, as BITS), and only
    /// until the reply is being fetched. The path's directory was checked by the caller.
    fn set_reply_file_name(&mut self, path: Option<PathBuf>) -> Result<()> {
        if self.job_type != JobType::UploadReply {
            return Err(Error::NotSupported(
                "a reply file name on a job that is not upload-reply".into(),
            ));
        }
        if self.reply.is_some() {
            return Err(self.invalid("set the reply file name of (its reply is being fetched)"));
        }
        if self.state.is_running() {
            return Err(self.invalid("set the reply file name of (suspend it first)"));
        }
        self.reply_file_name = path;
        Ok(())
    }

    /// `ReplaceRemotePrefix`: rewrite every remote name that starts with `old`. Returns how many.
    /// A file already transferred keeps the name its bytes came from.
    pub fn replace_remote_prefix(&mut self, old: &str, new: &str, now: Timestamp) -> Result<usize> {
        self.check_repairable("replace the remote prefix of")?;
        let mut changed = Vec::new();
        for (i, f) in self.files.iter().enumerate().filter(|(_, f)| !f.completed) {
            if let Some(rest) = f.remote_url.strip_prefix(old) {
                let url = format!("{new}{rest}");
                super::validate_remote_url(&url)?;
                changed.push((i, url));
            }
        }
        for (i, url) in &changed {
            self.files[*i].remote_url.clone_from(url);
        }
        if !changed.is_empty() {
            self.modified_at = now;
        }
        Ok(changed.len())
    }

    /// `SetRemoteName` on one file.
    pub fn set_remote_name(&mut self, index: usize, url: &str, now: Timestamp) -> Result<()> {
        self.check_repairable("change a remote name of")?;
        super::validate_remote_url(url)?;
        let Some(file) = self.files.get(index) else {
            return Err(Error::InvalidArgument(format!(
                "job {} has no file {index}",
                self.id
            )));
        };
        if file.completed {
            // Its bytes are here: a new name would make `files` lie about where they came from.
            let from = file.remote_url.clone();
            return Err(self.invalid(format!(
                "change the remote name of file {index} (already transferred from {from})"
            )));
        }
        url.clone_into(&mut self.files[index].remote_url);
        self.modified_at = now;
        Ok(())
    }

    fn check_repairable(&self, action: &'static str) -> Result<()> {
        self.check_modifiable(action)?;
        if self.job_type != JobType::Download {
            // As BITS: an upload's session belongs to its URL.
            return Err(Error::NotSupported(
                "changing the remote name of an upload job".into(),
            ));
        }
        if self.state.is_running() {
            return Err(self.invalid(action));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
