//! What the engine keeps in memory of every live job: enough to schedule it, to name it and to
//! say why it waits, and nothing more. A job's files, URLs, properties and credentials stay in
//! the store until the queue task needs them (to run the job, or to change it), so the queue's
//! memory grows by about two hundred bytes per job, whatever its files. The whole records of
//! running jobs stay in memory, and those of the last few jobs changed (an app that creates a
//! job, adds its files and resumes it reads none of them back from the disk).

use std::sync::Arc;

use crate::model::{Job, JobState, Limit, Priority, Timestamp};

/// A live job in memory: its summary always, its whole record while it runs or was changed
/// lately.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub summary: Summary,
    /// The whole job as committed (a running one with its checkpoints).
    pub full: Option<Arc<Job>>,
    /// The whole record must stay: a run needs it, or the store's is behind.
    pub pinned: bool,
    /// When it was last changed, in the board's count of changes.
    pub changed: u64,
}

/// The fields of a job that the scheduler and the reasons read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Summary {
    pub state: JobState,
    pub priority: Priority,
    /// The job's own rate cap is 0: a run of it is paused.
    pub paused: bool,
    /// A TransientError that a policy window causes.
    pub blocked_by_policy: bool,
    pub queue_seq: i64,
    pub retry_at: Option<Timestamp>,
    pub no_progress_since: Option<Timestamp>,
    /// Seconds (BITS's unit).
    pub no_progress_timeout: u32,
    /// Seconds.
    pub max_download_time: u32,
    /// Connecting + Transferring time so far. With `no_progress_since`, the one part of a job
    /// that may be ahead of its stored row: a finished run's time is stored with the job's
    /// next change (see [`Summary::bookkeep`]).
    pub active_ms: u64,
    pub modified_at: Timestamp,
}

impl Summary {
    pub fn of(job: &Job) -> Self {
        let p = &job.properties;
        Self {
            state: job.state(),
            priority: p.priority,
            paused: p.max_rate == Limit::BytesPerSec(0),
            blocked_by_policy: job.is_blocked_by_policy(),
            queue_seq: job.schedule.queue_seq,
            retry_at: job.schedule.retry_at,
            no_progress_since: job.schedule.no_progress_since,
            no_progress_timeout: p.no_progress_timeout,
            max_download_time: p.maximum_download_time,
            active_ms: job.schedule.active_ms,
            modified_at: job.modified_at,
        }
    }

    /// Give a job read back from the store the bookkeeping memory has and the row may not.
    pub fn bookkeep(&self, job: &mut Job) {
        job.schedule.active_ms = self.active_ms;
        job.schedule.no_progress_since = self.no_progress_since;
    }
}

impl Entry {
    /// A job with its whole record in memory.
    pub fn full(job: Arc<Job>, pinned: bool, changed: u64) -> Self {
        Self {
            summary: Summary::of(&job),
            full: Some(job),
            pinned,
            changed,
        }
    }

    /// A job whose whole record is in the store only.
    pub fn stored(summary: Summary) -> Self {
        Self {
            summary,
            full: None,
            pinned: false,
            changed: 0,
        }
    }
}
