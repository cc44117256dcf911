//! What readers see of the queue: a [`Summary`] of every live job (its state, as the store last
//! committed it), the whole record of each running job (its checkpoints included) with the live
//! counts of the files its run is moving, and why jobs wait. Only the queue task writes it, and
//! only once the store has committed what it writes, so a reader is never ahead of the store.
//! What memory does not hold (the files and properties of a job that is not running, final
//! jobs) is read from the store, on a read-only connection that waits for no write.
//!
//! An API call's change is shown as soon as it is committed; a checkpoint is shown when the
//! queue task next takes the store's answer (it does not wait on the disk for one), so for that
//! moment a reader in another process may see it first. Two exceptions: a scheduler transition
//! whose write fails is logged and shown all the same, so that the queue goes on; and a
//! finished run's bookkeeping (active time, no-progress start) is shown at once and stored with
//! the job's next change. A reader takes the lock for as long as it takes to clone a few
//! `Arc`s; nothing holds it across an await.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::summary::{Entry, Summary};
use crate::error::{Error, Result};
use crate::model::{Job, JobId, JobInfo, JobPage, JobState, Priority, Timestamp, WaitReason};
use crate::scheduler::Levels;
use crate::store::{PageQuery, Store};
use crate::transfer::Live;

/// The jobs readers see.
#[derive(Debug, Default)]
pub(super) struct Board {
    /// Jobs not yet final.
    pub jobs: HashMap<JobId, Entry>,
    /// Acknowledged and Cancelled jobs' states; the store has the rest.
    pub finals: HashMap<JobId, JobState>,
    /// The live counts of each running job's run.
    pub live: HashMap<JobId, Arc<Live>>,
    /// Why jobs wait, where only the scheduler knows (who holds the slots, a cap of 0, when a
    /// policy window ends); the rest comes from each job's own state.
    pub waiting: HashMap<JobId, WaitReason>,
    /// Whether this engine runs jobs (else a queued job waits for one that does).
    pub scheduling: bool,
    /// The jobs every scheduling pass looks at: running and retrying ones, and queued
    /// foreground ones.
    awake: HashSet<JobId>,
    /// Every other live job (Suspended, Error, Transferred, queued background) by last change:
    /// a pass looks only at those the inactivity timeout may cancel.
    idle: BTreeSet<(Timestamp, JobId)>,
    /// Queued background jobs per priority, in the order they start (queue position, id): a
    /// pass looks only at the first few of each, so that a long queue costs it nothing.
    queued: BTreeMap<Priority, BTreeSet<(i64, JobId)>>,
    /// Running background jobs per priority.
    running: BTreeMap<Priority, usize>,
    /// How many background jobs may run at once.
    pub slots: usize,
    /// The jobs changed lately, oldest first, with the count of their change: each keeps its
    /// whole record until [`RECENT`] later changes push it out (unless pinned).
    recent: VecDeque<(JobId, u64)>,
    /// Changes so far.
    changes: u64,
}

/// How many lately changed jobs keep their whole record in memory.
const RECENT: usize = 256;

/// Where a pass finds a job.
enum Place {
    Awake,
    Idle,
    /// Idle, and in the queue of its priority.
    Queued,
}

fn place(s: &Summary) -> Place {
    match s.state {
        JobState::Suspended | JobState::Error | JobState::Transferred => Place::Idle,
        JobState::Queued if s.priority.is_background() => Place::Queued,
        _ => Place::Awake,
    }
}

impl Board {
    /// An empty board of an engine that runs jobs if `scheduling`, `slots` background ones at
    /// once.
    pub fn new(scheduling: bool, slots: usize) -> Self {
        Self {
            scheduling,
            slots,
            ..Self::default()
        }
    }

    /// The job to `action`; a final job answers `BG_E_INVALID_STATE`, an unknown one
    /// `BG_E_NOT_FOUND`.
    pub fn get(&self, id: JobId, action: &'static str) -> Result<&Entry> {
        if let Some(state) = self.finals.get(&id) {
            return Err(Error::InvalidState {
                job: id,
                state: *state,
                action: action.into(),
            });
        }
        self.jobs
            .get(&id)
            .ok_or_else(|| Error::NotFound(id.to_string()))
    }

    /// Show a committed job with its whole record, `pinned` there if a run needs it (else for
    /// the next [`RECENT`] changes); a job that reached a final state leaves memory.
    pub fn put(&mut self, job: Arc<Job>, pinned: bool) {
        let id = job.id;
        if job.state().is_final() {
            self.remove(id);
            self.live.remove(&id);
            self.waiting.remove(&id);
            self.finals.insert(id, job.state());
        } else {
            self.changes += 1;
            let changed = self.changes;
            self.insert(id, Entry::full(job, pinned, changed));
            if !pinned {
                self.recent.push_back((id, changed));
            }
            while self.recent.len() > RECENT {
                let Some((old, when)) = self.recent.pop_front() else {
                    break;
                };
                if let Some(e) = self.jobs.get_mut(&old)
                    && e.changed == when
                    && !e.pinned
                {
                    e.full = None;
                }
            }
        }
    }

    /// Add or replace a live job.
    pub fn insert(&mut self, id: JobId, entry: Entry) {
        self.remove(id);
        let s = &entry.summary;
        if s.state.is_running() && s.priority.is_background() {
            *self.running.entry(s.priority).or_default() += 1;
        }
        match place(s) {
            Place::Awake => {
                self.awake.insert(id);
            }
            Place::Idle => {
                self.idle.insert((s.modified_at, id));
            }
            Place::Queued => {
                self.idle.insert((s.modified_at, id));
                let level = self.queued.entry(s.priority).or_default();
                level.insert((s.queue_seq, id));
            }
        }
        self.jobs.insert(id, entry);
    }

    fn remove(&mut self, id: JobId) {
        let Some(old) = self.jobs.remove(&id) else {
            return;
        };
        let s = &old.summary;
        if s.state.is_running()
            && let Some(n) = self.running.get_mut(&s.priority)
        {
            *n = n.saturating_sub(1);
        }
        self.awake.remove(&id);
        self.idle.remove(&(s.modified_at, id));
        if let Some(level) = self.queued.get_mut(&s.priority) {
            level.remove(&(s.queue_seq, id));
        }
    }

    /// The jobs a scheduling pass looks at: the awake ones; of each priority's queue, the
    /// first ones, as many as may run; the idle ones last changed at or before `idle_since`
    /// (the inactivity timeout may cancel them), and the next after those (so that the pass
    /// knows when to look again).
    pub fn to_schedule(&self, idle_since: Timestamp) -> Vec<(JobId, &Entry)> {
        let due = self
            .idle
            .iter()
            .take_while(|(t, _)| *t <= idle_since)
            .count();
        let first_queued = self
            .queued
            .values()
            .flat_map(|level| level.iter().take(self.slots.max(1)).map(|(_, id)| id));
        let mut seen = HashSet::new();
        self.awake
            .iter()
            .chain(
                self.idle
                    .iter()
                    .take(due + 1)
                    .map(|(_, id)| id)
                    .chain(first_queued)
                    .filter(|id| seen.insert(**id)),
            )
            .filter_map(|id| Some((*id, self.jobs.get(id)?)))
            .collect()
    }

    /// The background levels for the reasons of queued jobs.
    fn levels(&self) -> Levels {
        let mut counts: BTreeMap<Priority, (usize, usize)> = BTreeMap::new();
        for (p, n) in &self.running {
            counts.entry(*p).or_default().0 = *n;
        }
        for (p, level) in &self.queued {
            counts.entry(*p).or_default().1 = level.len();
        }
        Levels {
            counts,
            slots: self.slots,
        }
    }

    /// How many queued jobs of its priority are ahead of each of `jobs` that is queued in
    /// the background: one walk of each queue, as far as the last of them.
    fn ranks<'a>(&self, jobs: impl Iterator<Item = &'a JobId>) -> HashMap<JobId, usize> {
        let mut wanted: BTreeMap<Priority, BTreeSet<(i64, JobId)>> = BTreeMap::new();
        for id in jobs {
            if let Some(s) = self.jobs.get(id).map(|e| &e.summary)
                && matches!(place(s), Place::Queued)
            {
                wanted
                    .entry(s.priority)
                    .or_default()
                    .insert((s.queue_seq, *id));
            }
        }
        let mut ranks = HashMap::new();
        for (p, want) in wanted {
            let Some(last) = want.last().copied() else {
                continue;
            };
            let level = self.queued.get(&p).into_iter().flatten();
            for (rank, key) in level.take_while(|key| **key <= last).enumerate() {
                if want.contains(key) {
                    ranks.insert(key.1, rank);
                }
            }
        }
        ranks
    }

    /// What the board adds to job `id`'s own record (in `state`): its run's live counts, and
    /// why it waits (`rank`: of a queued background job, how many of its priority are ahead).
    fn extra(&self, id: JobId, state: JobState, rank: Option<usize>) -> Extra {
        let queued = state == JobState::Queued;
        let waiting = match self.waiting.get(&id).filter(|w| w.fits(state)) {
            Some(w) => Some(w.clone()),
            None if queued && !self.scheduling => Some(WaitReason::NotScheduled),
            None => match (rank, self.jobs.get(&id)) {
                (Some(rank), Some(e)) if queued => {
                    Some(self.levels().reason(e.summary.priority, rank))
                }
                _ => None,
            },
        };
        Extra {
            live: self.live.get(&id).cloned(),
            waiting,
        }
    }

    /// Job `id`'s whole record if memory has it, with what the board adds to it.
    fn full(&self, id: JobId, ranks: &HashMap<JobId, usize>) -> Option<(Arc<Job>, Extra)> {
        let job = self.jobs.get(&id)?.full.clone()?;
        let extra = self.extra(id, job.state(), ranks.get(&id).copied());
        Some((job, extra))
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
            .map(|job| match board.full(job.id, &ranks) {
                Some((full, extra)) => extra.info(&full),
                None => {
                    let rank = ranks.get(&job.id).copied();
                    board.extra(job.id, job.state(), rank).info(job)
                }
            })
            .collect();
        Ok(JobPage::with_more(jobs, more))
    }
}

/// What the board adds to a job's own record: its run's live counts, and why it waits.
struct Extra {
    live: Option<Arc<Live>>,
    waiting: Option<WaitReason>,
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
