//! What readers see of the queue: every job as the store last committed it (a running job's
//! checkpoints included), with the live counts of the files its run is moving. Only the queue
//! task writes it, and only once the store has committed what it writes, so a reader is never
//! ahead of the store. An API call's change is shown as soon as it is committed; a checkpoint
//! is shown when the queue task next takes the store's answer (it does not wait on the disk for
//! one), so for that moment a reader in another process may see it first. Two exceptions:
//! a scheduler transition whose write fails is logged and shown all the same, so that the
//! queue goes on; and a finished run's bookkeeping (active time, no-progress start) is shown at
//! once and stored with the job's next change. A reader takes the lock for as long as it takes
//! to clone a few `Arc`s; nothing holds it across an await.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::{Error, Result};
use crate::model::{Job, JobId, JobInfo, JobState, WaitReason};
use crate::transfer::Live;

/// The jobs readers see.
#[derive(Debug, Default)]
pub(super) struct Board {
    /// Jobs not yet final, with their files.
    pub jobs: HashMap<JobId, Arc<Job>>,
    /// Acknowledged and Cancelled jobs: state and name only; the store has the rest.
    pub finals: HashMap<JobId, (JobState, String)>,
    /// The live counts of each running job's run.
    pub live: HashMap<JobId, Arc<Live>>,
    /// Why jobs wait, where only the scheduler knows (who holds the slots, a cap of 0, when a
    /// policy window ends); the rest comes from each job's own state.
    pub waiting: HashMap<JobId, WaitReason>,
    /// Whether this engine runs jobs (else a queued job waits for one that does).
    pub scheduling: bool,
}

impl Board {
    /// The job to `action`; a final job answers `BG_E_INVALID_STATE`, an unknown one
    /// `BG_E_NOT_FOUND`.
    pub fn get(&self, id: JobId, action: &'static str) -> Result<Arc<Job>> {
        if let Some((state, _)) = self.finals.get(&id) {
            return Err(Error::InvalidState {
                job: id,
                state: *state,
                action: action.into(),
            });
        }
        self.jobs
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::NotFound(id.to_string()))
    }

    /// A job that reached a final state leaves memory.
    pub fn retire(&mut self, job: &Job) {
        self.jobs.remove(&job.id);
        self.live.remove(&job.id);
        self.finals
            .insert(job.id, (job.state(), job.display_name.clone()));
    }
}

/// The board behind its lock.
#[derive(Debug, Default)]
pub(super) struct View(RwLock<Board>);

impl View {
    pub fn new(board: Board) -> Self {
        Self(RwLock::new(board))
    }

    /// A poisoned lock still holds a consistent board: every write replaces whole entries.
    pub fn read(&self) -> RwLockReadGuard<'_, Board> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, Board> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// One live job with its run's progress laid over the durable figures.
    pub fn info(&self, id: JobId) -> Option<JobInfo> {
        let (job, extra) = self.read().entry(id)?;
        Some(extra.info(&job))
    }

    pub fn is_final(&self, id: JobId) -> bool {
        self.read().finals.contains_key(&id)
    }

    /// Every live job, oldest first, with live progress.
    pub fn infos(&self) -> Vec<JobInfo> {
        let jobs: Vec<(Arc<Job>, Extra)> = {
            let board = self.read();
            board
                .jobs
                .keys()
                .filter_map(|id| board.entry(*id))
                .collect()
        };
        let mut all: Vec<JobInfo> = jobs.iter().map(|(job, extra)| extra.info(job)).collect();
        all.sort_by_key(|j| (j.created_at, j.id));
        all
    }

    /// (id, name, state) of every job, final ones included, for [`resolve`].
    pub fn names(&self) -> Vec<(JobId, String, JobState)> {
        let board = self.read();
        board
            .jobs
            .values()
            .map(|j| (j.id, j.display_name.clone(), j.state()))
            .chain(board.finals.iter().map(|(id, (s, n))| (*id, n.clone(), *s)))
            .collect()
    }
}

/// What the board adds to a job's own record: its run's live counts, and why it waits.
struct Extra {
    live: Option<Arc<Live>>,
    waiting: Option<WaitReason>,
}

impl Board {
    fn entry(&self, id: JobId) -> Option<(Arc<Job>, Extra)> {
        let job = self.jobs.get(&id)?.clone();
        let waiting = match self.waiting.get(&id).filter(|w| w.fits(job.state())) {
            Some(w) => Some(w.clone()),
            None if !self.scheduling && job.state() == JobState::Queued => {
                Some(WaitReason::NotScheduled)
            }
            None => None,
        };
        let live = self.live.get(&id).cloned();
        Some((job, Extra { live, waiting }))
    }
}

impl Extra {
    fn info(&self, job: &Job) -> JobInfo {
        let mut info = match &self.live {
            Some(live) => {
                let mut files = job.files.clone();
                live.apply_to(&mut files);
                job.info_with(files)
            }
            None => job.info(),
        };
        if self.waiting.is_some() {
            info.reason.clone_from(&self.waiting);
        }
        info
    }
}

/// Resolve a job reference against (id, name, state) triples: an id, else a unique display name
/// (jobs in a final state count only if no live job has the name).
pub fn resolve(jobs: &[(JobId, String, JobState)], id_or_name: &str) -> Result<JobId> {
    if let Ok(id) = id_or_name.parse::<JobId>()
        && jobs.iter().any(|(j, _, _)| *j == id)
    {
        return Ok(id);
    }
    let named: Vec<&(JobId, String, JobState)> =
        jobs.iter().filter(|(_, n, _)| n == id_or_name).collect();
    let live: Vec<&(JobId, String, JobState)> = named
        .iter()
        .copied()
        .filter(|(_, _, s)| !s.is_final())
        .collect();
    match (live.as_slice(), named.as_slice()) {
        ([one], _) | ([], [one]) => Ok(one.0),
        ([], []) => Err(Error::NotFound(id_or_name.to_owned())),
        _ => Err(Error::InvalidArgument(format!(
            "{} jobs are named {id_or_name:?}: use the job id",
            named.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_prefers_ids_then_unique_live_names() {
        let (a, b, c) = (JobId::new(), JobId::new(), JobId::new());
        let jobs = vec![
            (a, "nightly".to_owned(), JobState::Queued),
            (b, "nightly".to_owned(), JobState::Acknowledged),
            (c, "twice".to_owned(), JobState::Queued),
            (JobId::new(), "twice".to_owned(), JobState::Suspended),
        ];
        assert_eq!(resolve(&jobs, &b.to_string()).unwrap(), b);
        assert_eq!(resolve(&jobs, &b.braced_upper()).unwrap(), b);
        assert_eq!(resolve(&jobs, "nightly").unwrap(), a);
        assert!(matches!(
            resolve(&jobs, "twice"),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(resolve(&jobs, "none"), Err(Error::NotFound(_))));
    }
}
