use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    Credentials, CredentialsView, JobFile, JobProperties, JobState, PropertyChange, Timestamp,
};
use crate::error::{Error, ErrorCode, ErrorContext, JobError, Result, Status};

/// A job's identity: a random UUID, shown lower-case and hyphenated.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(Uuid);

impl JobId {
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    /// The id as one number, fields in the order they are written (as a Windows `GUID`'s
    /// `from_u128`/`to_u128` read it, so that BITS's job GUIDs and ebb's ids print alike).
    pub fn as_u128(self) -> u128 {
        self.0.as_u128()
    }

    pub fn from_u128(n: u128) -> Self {
        Self(Uuid::from_u128(n))
    }

    /// The 32 hex digits without hyphens.
    pub fn simple(self) -> String {
        self.0.simple().to_string()
    }

    /// BITSAdmin's form: `{XXXXXXXX-XXXX-...}`, upper case.
    pub fn braced_upper(self) -> String {
        format!(
            "{{{}}}",
            self.0.hyphenated().to_string().to_ascii_uppercase()
        )
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({})", self.0.hyphenated())
    }
}

impl FromStr for JobId {
    type Err = String;
    /// Accepts `{GUID}` or a bare GUID, any case.
    fn from_str(s: &str) -> Result<Self, String> {
        let bare = s.trim().trim_start_matches('{').trim_end_matches('}');
        Uuid::parse_str(bare)
            .map(Self)
            .map_err(|_| format!("{s:?} is not a job id"))
    }
}

/// `BG_JOB_TYPE`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobType {
    #[default]
    Download = 0,
    Upload = 1,
    UploadReply = 2,
}

impl JobType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Download => "download",
            Self::Upload => "upload",
            Self::UploadReply => "upload_reply",
        }
    }
}

impl fmt::Display for JobType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "download" => Ok(Self::Download),
            "upload" => Ok(Self::Upload),
            "upload_reply" => Ok(Self::UploadReply),
            _ => Err(format!(
                "unknown job type {s:?} (download, upload or upload-reply)"
            )),
        }
    }
}

/// Who owns a job: the account that created it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub uid: u32,
    pub name: String,
}

impl Owner {
    /// The account this process runs as.
    pub fn current() -> Self {
        // SAFETY-free: getuid cannot fail; the name comes from the passwd database via whoami.
        let uid = current_uid();
        let name = whoami::username().unwrap_or_else(|_| uid.to_string());
        Self { uid, name }
    }
}

#[cfg(unix)]
fn current_uid() -> u32 {
    // `getuid` is always successful and has no preconditions.
    #[allow(unsafe_code)]
    unsafe {
        libc::getuid()
    }
}

#[cfg(not(unix))]
fn current_uid() -> u32 {
    0
}

/// The scheduler's bookkeeping for a job (persisted, never shown).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Schedule {
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
    pub created_at: Timestamp,
    pub modified_at: Timestamp,
    /// When the job reached Transferred.
    pub completed_at: Option<Timestamp>,
    pub error_count: u32,
    pub error: Option<JobError>,
    pub(crate) schedule: Schedule,
}

const MAX_DISPLAY_NAME: usize = 256;
const MAX_DESCRIPTION: usize = 1024;

fn check_len(what: &str, text: &str, max: usize) -> Result<()> {
    if text.chars().count() > max {
        return Err(Error::InvalidRange {
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
            created_at: now,
            modified_at: now,
            completed_at: None,
            error_count: 0,
            error: None,
            schedule: Schedule::default(),
        })
    }

    pub fn state(&self) -> JobState {
        self.state
    }

    fn invalid(&self, action: &'static str) -> Error {
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
        }
        self.modified_at = now;
        Ok(())
    }

    /// `ReplaceRemotePrefix`: rewrite every remote name that starts with `old`. Returns how many.
    pub fn replace_remote_prefix(&mut self, old: &str, new: &str, now: Timestamp) -> Result<usize> {
        self.check_repairable("replace the remote prefix of")?;
        let mut changed = Vec::new();
        for (i, f) in self.files.iter().enumerate() {
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
        let Some(file) = self.files.get_mut(index) else {
            return Err(Error::InvalidArgument(format!(
                "job {} has no file {index}",
                self.id
            )));
        };
        url.clone_into(&mut file.remote_url);
        self.modified_at = now;
        Ok(())
    }

    fn check_repairable(&self, action: &'static str) -> Result<()> {
        self.check_modifiable(action)?;
        if self.state.is_running() {
            return Err(self.invalid(action));
        }
        Ok(())
    }

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NewFile, Priority};

    fn job() -> Job {
        Job::new(
            "j",
            JobType::Download,
            Owner::current(),
            Timestamp::from_millis(0),
        )
        .unwrap()
    }

    fn with_file(mut j: Job) -> Job {
        let f = NewFile::new("http://127.0.0.1/x", "/tmp/x");
        j.files.push(JobFile::new(j.id, 0, f));
        j
    }

    fn err(status_code: u16) -> JobError {
        JobError {
            context: ErrorContext::RemoteFile,
            code: ErrorCode::http(status_code),
            description: String::new(),
            file_index: Some(0),
        }
    }

    const T0: Timestamp = Timestamp::from_millis(1_000);

    #[test]
    fn new_job_is_suspended_with_bits_defaults() {
        let j = job();
        assert_eq!(j.state(), JobState::Suspended);
        assert_eq!(j.properties.priority, Priority::Normal);
        assert_eq!(j.properties.minimum_retry_delay, 600);
        assert_eq!(j.properties.no_progress_timeout, 1_209_600);
        assert_eq!(j.properties.maximum_download_time, 7_776_000);
        assert_eq!(j.properties.notify_flags.0, 0x3);
        assert_eq!(j.info().bytes_transferred, 0);
    }

    #[test]
    fn resume_without_files_is_empty_and_stays_suspended() {
        let mut j = job();
        let e = j.resume(T0, 1).unwrap_err();
        assert_eq!(e.code(), ErrorCode::BG_E_EMPTY);
        assert_eq!(j.state(), JobState::Suspended);
    }

    #[test]
    fn resume_suspend_and_final_states() {
        let mut j = with_file(job());
        assert_eq!(j.resume(T0, 1).unwrap(), ResumeOutcome::Queued);
        assert_eq!(j.resume(T0, 2).unwrap(), ResumeOutcome::AlreadyActive);
        assert!(j.suspend(T0).unwrap());
        assert!(!j.suspend(T0).unwrap());
        j.cancel(T0).unwrap();
        for e in [
            j.resume(T0, 3).unwrap_err(),
            j.suspend(T0).unwrap_err(),
            j.cancel(T0).unwrap_err(),
            j.apply(PropertyChange::Priority(Priority::High), T0)
                .unwrap_err(),
            j.acknowledge(T0).unwrap_err(),
        ] {
            assert_eq!(e.code(), ErrorCode::BG_E_INVALID_STATE);
        }
    }

    #[test]
    fn scheduler_path_to_transferred_and_acknowledged() {
        let mut j = with_file(job());
        j.resume(T0, 1).unwrap();
        assert!(j.start_connecting(T0));
        assert!(j.connected(T0));
        assert!(j.requeue(T0, 5));
        assert_eq!(j.state(), JobState::Queued);
        assert_eq!(j.schedule.queue_seq, 5);
        assert!(j.start_connecting(T0));
        j.files[0].completed = true;
        assert!(j.transferred(T0));
        assert_eq!(j.resume(T0, 6).unwrap(), ResumeOutcome::AlreadyTransferred);
        j.acknowledge(T0).unwrap();
        assert_eq!(j.state(), JobState::Acknowledged);
    }

    #[test]
    fn transient_then_permanent_errors() {
        let mut j = with_file(job());
        j.properties.minimum_retry_delay = 5;
        j.properties.no_progress_timeout = 10;
        j.resume(T0, 1).unwrap();
        j.start_connecting(T0);
        assert_eq!(
            j.fail(err(503), Status::Transient, T0),
            Some(JobState::TransientError)
        );
        assert_eq!(j.error_count, 1);
        assert!(j.retry(T0));
        j.start_connecting(T0);
        let later = T0.plus(std::time::Duration::from_secs(11));
        assert_eq!(
            j.fail(err(503), Status::Transient, later),
            Some(JobState::Error)
        );
        assert_eq!(j.error_count, 2);
        // Error can be resumed.
        assert_eq!(j.resume(later, 2).unwrap(), ResumeOutcome::Queued);
        j.start_connecting(later);
        assert_eq!(
            j.fail(err(404), Status::Permanent, later),
            Some(JobState::Error)
        );
    }

    #[test]
    fn zero_no_progress_timeout_makes_every_error_final() {
        let mut j = with_file(job());
        j.properties.no_progress_timeout = 0;
        j.resume(T0, 1).unwrap();
        assert_eq!(
            j.fail(err(503), Status::Transient, T0),
            Some(JobState::Error)
        );
        let mut k = with_file(job());
        k.properties.minimum_retry_delay = 100;
        k.properties.no_progress_timeout = 50;
        k.resume(T0, 1).unwrap();
        assert_eq!(
            k.fail(err(503), Status::Transient, T0),
            Some(JobState::Error)
        );
    }

    #[test]
    fn min_retry_delay_has_a_floor_of_five_seconds() {
        let mut j = job();
        j.apply(PropertyChange::MinimumRetryDelay(1), T0).unwrap();
        assert_eq!(j.properties.minimum_retry_delay, 5);
    }

    #[test]
    fn upload_complete_only_when_transferred() {
        let mut j = Job::new("u", JobType::Upload, Owner::current(), T0).unwrap();
        assert_eq!(
            j.acknowledge(T0).unwrap_err().code(),
            ErrorCode::BG_E_INVALID_STATE
        );
    }

    #[test]
    fn repair_remote_names() {
        let mut j = with_file(job());
        assert_eq!(
            j.replace_remote_prefix("http://127.0.0.1", "http://localhost:8", T0)
                .unwrap(),
            1
        );
        assert_eq!(j.files[0].remote_url, "http://localhost:8/x");
        assert_eq!(
            j.replace_remote_prefix("https://", "http://", T0).unwrap(),
            0
        );
        assert!(j.replace_remote_prefix("http://", "gopher://", T0).is_err());
        j.set_remote_name(0, "http://h/y", T0).unwrap();
        assert!(j.set_remote_name(3, "http://h/y", T0).is_err());
        j.resume(T0, 1).unwrap();
        j.start_connecting(T0);
        assert!(j.set_remote_name(0, "http://h/z", T0).is_err());
    }

    #[test]
    fn ids_parse_with_braces() {
        let id = JobId::new();
        assert_eq!(id.braced_upper().parse::<JobId>(), Ok(id));
        assert!("nope".parse::<JobId>().is_err());
    }
}
