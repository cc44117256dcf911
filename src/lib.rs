//! ebb: background transfers with the BITS job model, on every platform.
//!
//! Apps hand ebb *jobs* made of files; ebb moves them in the background by priority, resumes
//! after any interruption with HTTP range requests, survives crashes and reboots (the queue is
//! SQLite, and progress is committed only once the bytes are on disk), and makes the files appear
//! at their final names only when the app calls `complete` — the semantics of Microsoft's
//! Background Intelligent Transfer Service, with its states, defaults and error codes.
//!
//! Everything an app needs is the [`Backend`] trait. It is implemented by the in-process
//! [`Engine`] and by [`Client`], which talks to the per-user daemon `ebbd` (native BITS on Windows
//! follows), so an app switches backend by configuration, not by rewriting.
//!
//! ```
//! use ebb::{Backend, Engine, EngineConfig, JobState, JobType, NewFile};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let dir = std::env::temp_dir().join(format!("ebb-doc-{}", std::process::id()));
//!     std::fs::create_dir_all(&dir)?;
//!     let source = dir.join("source.txt");
//!     std::fs::write(&source, "hello, background world")?;
//!
//!     let engine = Engine::open(EngineConfig::new(dir.join("queue"))).await?;
//!     let backend: &dyn Backend = &engine; // the same calls work on every backend
//!     let job = backend.create_job("docs", JobType::Download).await?;
//!     let dest = dir.join("copy.txt");
//!     let url = format!("file://{}", source.display()); // http(s) URLs work the same way
//!     backend.add_files(job, vec![NewFile::new(url, &dest)]).await?;
//!     backend.resume(job).await?;
//!     assert_eq!(backend.wait(job, None).await?, JobState::Transferred);
//!     assert!(!dest.exists()); // nothing at the final name before Complete
//!     backend.complete(job).await?;
//!     assert_eq!(std::fs::read_to_string(&dest)?, "hello, background world");
//!
//!     engine.shutdown().await;
//!     std::fs::remove_dir_all(&dir)?;
//!     Ok(())
//! }
//! ```

mod client;

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

pub use client::Client;
pub use ebb_core::bandwidth::{BandwidthChange, BandwidthStatus, Limit};
pub use ebb_core::*;

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
    /// A snapshot of one job, with live progress.
    async fn job(&self, job: JobId) -> Result<JobInfo>;
    /// Every job of the caller not yet Acknowledged or Cancelled (as BITS enumerates).
    async fn jobs(&self) -> Result<Vec<JobInfo>>;
    /// Find a job by id or unique display name.
    async fn find(&self, id_or_name: &str) -> Result<JobId>;
    /// Wait until the job leaves the active states, or `timeout` passes; returns its state.
    async fn wait(&self, job: JobId, timeout: Option<Duration>) -> Result<JobState>;
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
    async fn jobs(&self) -> Result<Vec<JobInfo>> {
        Ok(Engine::jobs(self).await)
    }
    async fn find(&self, id_or_name: &str) -> Result<JobId> {
        Engine::find(self, id_or_name).await
    }
    async fn wait(&self, job: JobId, timeout: Option<Duration>) -> Result<JobState> {
        Engine::wait(self, job, timeout).await
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
