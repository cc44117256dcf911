//! What subscribers hear: job and file events, as BITS's callbacks report them.

use serde::{Deserialize, Serialize};

use crate::error::JobError;
use crate::model::{JobId, JobState};

/// One event. Delivered to every subscriber; a subscriber that falls far behind misses events
/// (and learns how many) rather than slowing the engine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// State, properties or progress changed (`JobModification`).
    JobModified { job_id: JobId, state: JobState },
    /// Every file is transferred (`JobTransferred`).
    JobTransferred { job_id: JobId },
    /// The job entered Error or TransientError (`JobError`).
    JobError {
        job_id: JobId,
        state: JobState,
        error: JobError,
    },
    /// One file is transferred and durable (`FileTransferred`).
    FileTransferred { job_id: JobId, file_index: usize },
}

impl Event {
    pub fn job_id(&self) -> JobId {
        match self {
            Self::JobModified { job_id, .. }
            | Self::JobTransferred { job_id }
            | Self::JobError { job_id, .. }
            | Self::FileTransferred { job_id, .. } => *job_id,
        }
    }
}
