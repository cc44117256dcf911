//! The one public surface every backend implements: the in-process [`Engine`], the daemon
//! client (`ebb::Client`) and native BITS on Windows (`ebb-bits`).

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::model::{BandwidthChange, BandwidthStatus};
use crate::settings::EngineSettings;
use crate::{
    Completion, Engine, Event, JobId, JobInfo, JobPage, JobState, JobType, NewFile, PageCursor,
    PropertyChange, ReplyProgress, Result, ResumeOutcome,
};

/// Which jobs [`Backend::list`] returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFilter {
    /// Acknowledged and Cancelled jobs too (ebb keeps them a while; BITS forgets them).
    #[serde(default)]
    pub final_jobs: bool,
    /// Every user's jobs, not only the caller's (`BG_JOB_ENUM_ALL_USERS`).
    #[serde(default)]
    pub all_users: bool,
}

impl JobFilter {
    /// Every job there is to see.
    pub const ALL: Self = Self {
        final_jobs: true,
        all_users: true,
    };
}

/// How often a waiter looks at its job when no event said it changed.
const WAIT_POLL: Duration = Duration::from_millis(250);

/// A transfer backend: the whole public surface of ebb. Every backend gives the same semantics
/// (BITS's), the same states and the same error codes.
#[async_trait]
pub trait Backend: Send + Sync {
    /// `CreateJob`: a new job, Suspended, with BITS's defaults.
    async fn create_job(&self, display_name: &str, job_type: JobType) -> Result<JobId>;
    /// `AddFile` / `AddFileSet` / `AddFileWithRanges`: all of them or none.
    async fn add_files(&self, job: JobId, files: Vec<NewFile>) -> Result<()>;
    /// `Resume`: queue the job.
    async fn resume(&self, job: JobId) -> Result<ResumeOutcome>;
    /// `Suspend`: stop it, keeping its progress.
    async fn suspend(&self, job: JobId) -> Result<()>;
    /// `Complete`: make the transferred files appear at their final names.
    async fn complete(&self, job: JobId) -> Result<Completion>;
    /// `Cancel`: drop the job and its temporary files.
    async fn cancel(&self, job: JobId) -> Result<()>;
    /// Any `Set*` call.
    async fn set_property(&self, job: JobId, change: PropertyChange) -> Result<()>;
    /// `ReplaceRemotePrefix`; returns how many files changed.
    async fn replace_remote_prefix(&self, job: JobId, old: &str, new: &str) -> Result<usize>;
    /// `SetRemoteName` of one file.
    async fn set_remote_name(&self, job: JobId, file_index: usize, url: &str) -> Result<()>;
    /// `GetReplyData`: an upload-reply job's reply, at most 1 MiB (`BG_E_TOO_LARGE` beyond,
    /// naming the size), once the job is Transferred; empty when the server sent none.
    async fn reply_data(&self, job: JobId) -> Result<Vec<u8>> {
        let info = self.job(job).await?;
        tokio::task::spawn_blocking(move || crate::engine::read_reply(&info))
            .await
            .map_err(|_| crate::Error::ShutDown)?
    }
    /// `GetReplyFileName`: where an upload-reply job's reply goes (`None` until it is known).
    async fn reply_file_name(&self, job: JobId) -> Result<Option<PathBuf>> {
        let info = self.job(job).await?;
        info.reply_progress()?;
        Ok(info.reply_file_name)
    }
    /// `SetReplyFileName`: until the reply is being fetched; `None` lets the engine choose.
    async fn set_reply_file_name(&self, job: JobId, path: Option<PathBuf>) -> Result<()> {
        self.set_property(job, PropertyChange::ReplyFileName(path))
            .await
    }
    /// `GetReplyProgress`.
    async fn reply_progress(&self, job: JobId) -> Result<ReplyProgress> {
        self.job(job).await?.reply_progress()
    }
    /// A snapshot of one job, with live progress.
    async fn job(&self, job: JobId) -> Result<JobInfo>;
    /// The jobs `filter` asks for, oldest first, with live progress.
    async fn list(&self, filter: JobFilter) -> Result<Vec<JobInfo>>;
    /// At most `limit` of the jobs `filter` asks for, after `after`, oldest first, with live
    /// progress: a queue of any size read a bounded slice at a time. (This default reads the
    /// whole list and slices it; ebb's engine and daemon read one page.)
    async fn list_page(
        &self,
        filter: JobFilter,
        after: Option<PageCursor>,
        limit: usize,
    ) -> Result<JobPage> {
        Ok(JobPage::of(self.list(filter).await?, after, limit))
    }
    /// Every job of the caller not yet Acknowledged or Cancelled (as BITS enumerates).
    async fn jobs(&self) -> Result<Vec<JobInfo>> {
        self.list(JobFilter::default()).await
    }
    /// Find a job by id (`{GUID}` or bare) or by unique display name; a live job wins over
    /// final ones of the same name ([`resolve`](crate::resolve)'s rule, for every backend).
    async fn find(&self, id_or_name: &str) -> Result<JobId> {
        if let Ok(id) = id_or_name.parse::<JobId>()
            && self.job(id).await.is_ok()
        {
            return Ok(id);
        }
        let mine = JobFilter {
            final_jobs: true,
            all_users: false,
        };
        let names: Vec<(JobId, String, JobState)> = self
            .list(mine)
            .await?
            .into_iter()
            .map(|j| (j.id, j.display_name, j.state))
            .collect();
        crate::resolve(&names, id_or_name)
    }
    /// Wait until the job leaves the active states, or `timeout` passes; returns its state.
    /// One implementation for every backend: its events wake the waiter, and it looks anyway
    /// every quarter second.
    async fn wait(&self, job: JobId, timeout: Option<Duration>) -> Result<JobState> {
        let mut events = self.subscribe();
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let state = self.job(job).await?.state;
            if !state.is_active() {
                return Ok(state);
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return Ok(state);
            }
            let until = deadline.unwrap_or_else(|| tokio::time::Instant::now() + WAIT_POLL);
            tokio::select! {
                () = crate::state_changed(&mut events, job) => {}
                () = tokio::time::sleep_until(until) => {}
                () = tokio::time::sleep(WAIT_POLL) => {}
            }
        }
    }
    /// Done with the backend: an engine in this process stops with a final checkpoint; a
    /// daemon or service goes on.
    async fn close(&self) {}
    /// The engine settings this backend runs with, where it is ebb's engine and can say.
    fn settings(&self) -> Option<EngineSettings> {
        None
    }
    /// Job and file events from now on.
    fn subscribe(&self) -> broadcast::Receiver<Event>;
    /// What limits background transfers now, and why.
    async fn bandwidth(&self) -> Result<BandwidthStatus>;
    /// Change bandwidth caps or idle estimation at run time; persisted until reset.
    async fn set_bandwidth(&self, change: BandwidthChange) -> Result<BandwidthStatus>;
}

#[async_trait]
impl Backend for Engine {
    async fn create_job(&self, display_name: &str, job_type: JobType) -> Result<JobId> {
        Engine::create_job(self, display_name, job_type).await
    }
    async fn add_files(&self, job: JobId, files: Vec<NewFile>) -> Result<()> {
        Engine::add_files(self, job, files).await
    }
    async fn resume(&self, job: JobId) -> Result<ResumeOutcome> {
        Engine::resume(self, job).await
    }
    async fn suspend(&self, job: JobId) -> Result<()> {
        Engine::suspend(self, job).await
    }
    async fn complete(&self, job: JobId) -> Result<Completion> {
        Engine::complete(self, job).await
    }
    async fn cancel(&self, job: JobId) -> Result<()> {
        Engine::cancel(self, job).await
    }
    async fn set_property(&self, job: JobId, change: PropertyChange) -> Result<()> {
        Engine::set_property(self, job, change).await
    }
    async fn replace_remote_prefix(&self, job: JobId, old: &str, new: &str) -> Result<usize> {
        Engine::replace_remote_prefix(self, job, old, new).await
    }
    async fn set_remote_name(&self, job: JobId, file_index: usize, url: &str) -> Result<()> {
        Engine::set_remote_name(self, job, file_index, url).await
    }
    async fn job(&self, job: JobId) -> Result<JobInfo> {
        Engine::job(self, job).await
    }
    async fn list(&self, filter: JobFilter) -> Result<Vec<JobInfo>> {
        Engine::list(self, filter).await
    }
    async fn list_page(
        &self,
        filter: JobFilter,
        after: Option<PageCursor>,
        limit: usize,
    ) -> Result<JobPage> {
        Engine::list_page(self, filter, after, limit).await
    }
    async fn find(&self, id_or_name: &str) -> Result<JobId> {
        Engine::find(self, id_or_name).await
    }
    async fn close(&self) {
        Engine::shutdown(self).await;
    }
    fn settings(&self) -> Option<EngineSettings> {
        Some(EngineSettings::of(self.config()))
    }
    fn subscribe(&self) -> broadcast::Receiver<Event> {
        Engine::subscribe(self)
    }
    async fn bandwidth(&self) -> Result<BandwidthStatus> {
        Ok(Engine::bandwidth(self))
    }
    async fn set_bandwidth(&self, change: BandwidthChange) -> Result<BandwidthStatus> {
        Engine::set_bandwidth(self, change).await
    }
}
