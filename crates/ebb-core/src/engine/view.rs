//! What readers see of the queue: the [`Board`] (a summary of every live job, its state as the
//! store last committed it; the whole record of each running job, its checkpoints included,
//! with the live counts of the files its run is moving; why jobs wait). Only the queue task
//! writes it, and only once the store has committed what it writes, so a reader is never ahead
//! of the store. What memory does not hold (the files and properties of a job that is not
//! running or lately changed, final jobs) is read from the store, on a read-only connection
//! that waits for no write.
//!
//! An API call's change is shown as soon as it is committed; a checkpoint is shown when the
//! queue task next takes the store's answer (it does not wait on the disk for one), so for that
//! moment a reader in another process may see it first. Two exceptions: a scheduler transition
//! whose write fails is logged and shown all the same (memory then keeps the job's whole
//! record, the store's being behind), so that the queue goes on; and a finished run's
//! bookkeeping (active time, no-progress start) is shown at once and stored with the job's next
//! change. A reader holds the lock to clone a few `Arc`s, and to count a queued job's place in
//! its queue; nothing holds it across an await.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub(super) use super::board::Board;
use crate::error::{Error, Result};
use crate::model::{Job, JobId, JobInfo, JobPage, JobState};
use crate::store::{PageQuery, Store};

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

    /// Job `id`'s whole record, to `action` it: from memory while it runs, else from the store
    /// thread (so read after every write queued before it, passwords opened). Checked as
    /// [`Board::get`] checks.
    pub async fn load(&self, store: &Store, id: JobId, action: &'static str) -> Result<Arc<Job>> {
        let summary = {
            let board = self.read();
            let entry = board.get(id, action)?;
            if let Some(full) = &entry.full {
                return Ok(full.clone());
            }
            entry.summary.clone()
        };
        let mut job = store
            .load_job(id)
            .await?
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        summary.bookkeep(&mut job);
        Ok(Arc::new(job))
    }

    /// One live job with its run's progress laid over the durable figures; `None` for a job
    /// that is not live.
    pub async fn info(&self, store: &Store, id: JobId) -> Result<Option<JobInfo>> {
        {
            let board = self.read();
            let ranks = board.ranks([id].iter());
            if let Some((job, extra)) = board.full(id, &ranks) {
                return Ok(Some(extra.info(&job)));
            }
            if !board.jobs.contains_key(&id) {
                return Ok(None);
            }
        }
        let Some(job) = store.read_job(id).await? else {
            return Ok(None);
        };
        let board = self.read();
        let rank = board.ranks([id].iter()).get(&id).copied();
        Ok(Some(board.extra(id, job.state(), rank).info(&job)))
    }

    pub fn is_final(&self, id: JobId) -> bool {
        self.read().finals.contains_key(&id)
    }

    /// A page of jobs as `page` asks, in (creation time, id) order: each as committed, a
    /// running one with its run's progress, each with why it waits.
    pub async fn page(&self, store: &Store, page: PageQuery) -> Result<JobPage> {
        let stored = store
            .load_page(PageQuery {
                limit: page.limit + 1,
                ..page
            })
            .await?;
        let more = stored.len() > page.limit;
        let board = self.read();
        let ranks = board.ranks(stored.iter().map(|j| &j.id));
        let jobs = stored
            .iter()
            .take(page.limit)
            .map(|job| {
                if let Some((full, extra)) = board.full(job.id, &ranks) {
                    return extra.info(&full);
                }
                let rank = ranks.get(&job.id).copied();
                board.extra(job.id, job.state(), rank).info(job)
            })
            .collect();
        Ok(JobPage::with_more(jobs, more))
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
