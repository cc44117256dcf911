//! ebb's [`Backend`] over native BITS, the Windows service, through COM.
//!
//! On Windows, [`Bits::connect`] opens the system's Background Intelligent Transfer Service and
//! every call of the trait goes to it: jobs survive reboots and logoffs because BITS keeps them.
//! States, priorities, job types, error contexts and codes are BITS's own numbers in the model,
//! so they map one to one. Elsewhere the crate compiles and `connect` says BITS is unavailable.
//!
//! What BITS has no call for answers `E_NOTIMPL` through the model's error: per-job rate caps and
//! ebb's bandwidth controls (on Windows those are Group Policy), and changing credentials' view.

#[cfg(windows)]
mod com;

use async_trait::async_trait;
use ebb_core::{
    Backend, Completion, Error, Event, JobFilter, JobId, JobInfo, JobType, NewFile, PropertyChange,
    Result, ResumeOutcome,
};
use ebb_core::{BandwidthChange, BandwidthStatus};
use tokio::sync::broadcast;

/// A connection to the system's BITS service.
#[derive(Debug, Clone)]
pub struct Bits {
    #[cfg(windows)]
    inner: com::Com,
    #[cfg(not(windows))]
    never: std::convert::Infallible,
}

/// Getters that failed (`E_NOTIMPL`, or Wine's `ERROR_NOACCESS` for an empty description) while
/// a job was read, so that its [`JobInfo`] holds defaults for them. Wine's BITS lacks several;
/// Windows has them all.
pub type Gaps = Vec<&'static str>;

// Off Windows these bodies cannot await: a `Bits` never exists there.
#[cfg_attr(not(windows), allow(clippy::unused_async))]
impl Bits {
    /// Connect to BITS (on Windows); elsewhere a clear "unavailable" error.
    pub async fn connect() -> Result<Self> {
        #[cfg(windows)]
        {
            Ok(Self {
                inner: com::Com::start().await?,
            })
        }
        #[cfg(not(windows))]
        {
            Err(Error::NotSupported(
                "native BITS (it exists only on Windows; use ebb's engine or daemon)".into(),
            ))
        }
    }

    /// Every job of this user, or with `all_users` of every user (administrators only).
    pub async fn jobs_of(&self, all_users: bool) -> Result<Vec<JobInfo>> {
        #[cfg(windows)]
        {
            self.inner.jobs(all_users).await
        }
        #[cfg(not(windows))]
        {
            let _ = all_users;
            match self.never {}
        }
    }

    /// A job, and the calls that BITS did not implement while reading it.
    pub async fn job_with_gaps(&self, job: JobId) -> Result<(JobInfo, Gaps)> {
        #[cfg(windows)]
        {
            self.inner.job(job).await
        }
        #[cfg(not(windows))]
        {
            let _ = job;
            match self.never {}
        }
    }
}

/// Forward a trait call to the COM side (Windows); off Windows a `Bits` cannot exist.
macro_rules! forward {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {{
        #[cfg(windows)]
        {
            $self.inner.$method($($arg),*).await
        }
        #[cfg(not(windows))]
        {
            $(let _ = $arg;)*
            match $self.never {}
        }
    }};
}

#[async_trait]
impl Backend for Bits {
    async fn create_job(&self, display_name: &str, job_type: JobType) -> Result<JobId> {
        forward!(self.create_job(display_name.to_owned(), job_type))
    }
    async fn add_files(&self, job: JobId, files: Vec<NewFile>) -> Result<()> {
        forward!(self.add_files(job, files))
    }
    async fn resume(&self, job: JobId) -> Result<ResumeOutcome> {
        forward!(self.resume(job))
    }
    async fn suspend(&self, job: JobId) -> Result<()> {
        forward!(self.suspend(job))
    }
    async fn complete(&self, job: JobId) -> Result<Completion> {
        forward!(self.complete(job))
    }
    async fn cancel(&self, job: JobId) -> Result<()> {
        forward!(self.cancel(job))
    }
    async fn set_property(&self, job: JobId, change: PropertyChange) -> Result<()> {
        forward!(self.set_property(job, change))
    }
    async fn replace_remote_prefix(&self, job: JobId, old: &str, new: &str) -> Result<usize> {
        forward!(self.replace_remote_prefix(job, old.to_owned(), new.to_owned()))
    }
    async fn set_remote_name(&self, job: JobId, file_index: usize, url: &str) -> Result<()> {
        forward!(self.set_remote_name(job, file_index, url.to_owned()))
    }
    /// BITS keeps its own copy of the reply.
    async fn reply_data(&self, job: JobId) -> Result<Vec<u8>> {
        forward!(self.reply_data(job))
    }
    async fn job(&self, job: JobId) -> Result<JobInfo> {
        self.job_with_gaps(job).await.map(|(info, _)| info)
    }
    /// BITS forgets Acknowledged and Cancelled jobs: its enumeration is all there is.
    async fn list(&self, filter: JobFilter) -> Result<Vec<JobInfo>> {
        self.jobs_of(filter.all_users).await
    }
    fn subscribe(&self) -> broadcast::Receiver<Event> {
        #[cfg(windows)]
        {
            self.inner.subscribe()
        }
        #[cfg(not(windows))]
        {
            match self.never {}
        }
    }
    async fn bandwidth(&self) -> Result<BandwidthStatus> {
        Err(Error::NotSupported(
            "ebb's bandwidth controls on native BITS (Windows sets them by Group Policy)".into(),
        ))
    }
    async fn set_bandwidth(&self, _change: BandwidthChange) -> Result<BandwidthStatus> {
        self.bandwidth().await
    }
}

#[cfg(all(test, not(windows)))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn off_windows_connect_says_bits_is_unavailable() {
        let e = Bits::connect().await.unwrap_err();
        assert_eq!(e.code(), ebb_core::ErrorCode::E_NOTIMPL);
        assert!(e.to_string().contains("only on Windows"), "{e}");
    }
}
