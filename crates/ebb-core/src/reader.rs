//! A queue read without taking it: the jobs of a data directory as its store has them (with
//! live progress while an engine runs), so that reading works while another process runs the
//! engine. It changes nothing: every change is refused with the reason.

use std::path::PathBuf;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::Completion;
use crate::backend::{Backend, JobFilter};
use crate::engine::{blocking, read_job, read_jobs, read_page};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::model::{
    BandwidthChange, BandwidthStatus, JobId, JobInfo, JobPage, JobType, NewFile, Owner, PageCursor,
    PropertyChange, ResumeOutcome,
};

/// The read-only view of a data directory's queue.
#[derive(Debug)]
pub struct QueueReader {
    data_dir: PathBuf,
    /// Nothing is ever sent: a reader hears no events, and waiters look every quarter second.
    events: broadcast::Sender<Event>,
}

impl QueueReader {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            events: broadcast::channel(1).0,
        }
    }

    fn refuse<T>(&self) -> Result<T> {
        Err(Error::NotSupported(
            format!(
                "changing jobs through a read-only view of the queue in {} (open its engine)",
                self.data_dir.display()
            )
            .into(),
        ))
    }
}

#[async_trait]
impl Backend for QueueReader {
    async fn create_job(&self, _: &str, _: JobType) -> Result<JobId> {
        self.refuse()
    }
    async fn add_files(&self, _: JobId, _: Vec<NewFile>) -> Result<()> {
        self.refuse()
    }
    async fn resume(&self, _: JobId) -> Result<ResumeOutcome> {
        self.refuse()
    }
    async fn suspend(&self, _: JobId) -> Result<()> {
        self.refuse()
    }
    async fn complete(&self, _: JobId) -> Result<Completion> {
        self.refuse()
    }
    async fn cancel(&self, _: JobId) -> Result<()> {
        self.refuse()
    }
    async fn set_property(&self, _: JobId, _: PropertyChange) -> Result<()> {
        self.refuse()
    }
    async fn replace_remote_prefix(&self, _: JobId, _: &str, _: &str) -> Result<usize> {
        self.refuse()
    }
    async fn set_remote_name(&self, _: JobId, _: usize, _: &str) -> Result<()> {
        self.refuse()
    }
    async fn job(&self, job: JobId) -> Result<JobInfo> {
        let dir = self.data_dir.clone();
        blocking(move || read_job(&dir, job))
            .await?
            .ok_or_else(|| Error::NotFound(job.to_string()))
    }
    async fn list(&self, filter: JobFilter) -> Result<Vec<JobInfo>> {
        let dir = self.data_dir.clone();
        let mut jobs = blocking(move || read_jobs(&dir)).await?;
        let me = Owner::current_uid();
        jobs.retain(|j| {
            (filter.final_jobs || !j.state.is_final()) && (filter.all_users || j.owner_uid == me)
        });
        Ok(jobs)
    }
    async fn list_page(
        &self,
        filter: JobFilter,
        after: Option<PageCursor>,
        limit: usize,
    ) -> Result<JobPage> {
        let dir = self.data_dir.clone();
        blocking(move || read_page(&dir, filter, after, limit)).await
    }
    fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }
    async fn bandwidth(&self) -> Result<BandwidthStatus> {
        self.refuse()
    }
    async fn set_bandwidth(&self, _: BandwidthChange) -> Result<BandwidthStatus> {
        self.refuse()
    }
}
