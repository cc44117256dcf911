//! The board: what memory holds of the queue, written by the queue task alone. A summary of
//! every live job, kept in the places a scheduling pass looks: the awake jobs (running,
//! retrying, queued in the foreground) that every pass reads; the queue of each background
//! priority, of which a pass reads only the head; and the idle jobs by last change, of which a
//! pass reads only those the inactivity timeout may cancel. So a pass costs the same with ten
//! jobs queued or 100,000. The whole records of running jobs, and of the jobs changed lately.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use super::summary::{Entry, Summary};
use crate::error::{Error, Result};
use crate::model::{Job, JobId, JobInfo, JobState, Priority, Timestamp, WaitReason};
use crate::scheduler::Levels;
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
    pub(super) fn ranks<'a>(&self, jobs: impl Iterator<Item = &'a JobId>) -> HashMap<JobId, usize> {
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
    pub(super) fn extra(&self, id: JobId, state: JobState, rank: Option<usize>) -> Extra {
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
    pub(super) fn full(
        &self,
        id: JobId,
        ranks: &HashMap<JobId, usize>,
    ) -> Option<(Arc<Job>, Extra)> {
        let job = self.jobs.get(&id)?.full.clone()?;
        let extra = self.extra(id, job.state(), ranks.get(&id).copied());
        Some((job, extra))
    }
}

/// What the board adds to a job's own record: its run's live counts, and why it waits.
pub(super) struct Extra {
    live: Option<Arc<Live>>,
    waiting: Option<WaitReason>,
}

impl Extra {
    pub fn info(&self, job: &Job) -> JobInfo {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{JobType, Owner};

    const NOW: Timestamp = Timestamp::from_millis(1_000_000_000);

    fn job(state: JobState, priority: Priority, seq: i64, modified_ms: i64) -> Arc<Job> {
        let owner = Owner {
            uid: 1,
            name: "u".into(),
        };
        let mut job = Job::new("j", JobType::Download, owner, NOW).unwrap();
        job.state = state;
        job.properties.priority = priority;
        job.schedule.queue_seq = seq;
        job.modified_at = Timestamp::from_millis(modified_ms);
        Arc::new(job)
    }

    fn add(board: &mut Board, job: Arc<Job>) -> JobId {
        let id = job.id;
        board.put(job, false);
        id
    }

    #[test]
    fn a_pass_reads_the_awake_jobs_the_head_of_each_queue_and_the_idle_ones_due() {
        let mut board = Board::new(true, 2);
        let running = add(
            &mut board,
            job(JobState::Transferring, Priority::Normal, 1, 900),
        );
        let retrying = add(
            &mut board,
            job(JobState::TransientError, Priority::Low, 2, 900),
        );
        let normal: Vec<JobId> = (10..20)
            .map(|seq| {
                add(
                    &mut board,
                    job(JobState::Queued, Priority::Normal, seq, 900),
                )
            })
            .collect();
        let low: Vec<JobId> = (20..23)
            .map(|seq| add(&mut board, job(JobState::Queued, Priority::Low, seq, 900)))
            .collect();
        // Idle since 100, 200 and 300; only the first two are past the inactivity timeout.
        let old: Vec<JobId> = [100, 200, 300]
            .into_iter()
            .map(|t| add(&mut board, job(JobState::Suspended, Priority::Normal, 0, t)))
            .collect();
        let picked: HashSet<JobId> = board
            .to_schedule(Timestamp::from_millis(250))
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let expected: HashSet<JobId> = [
            running, retrying, normal[0], normal[1], low[0], low[1], old[0], old[1], old[2],
        ]
        .into();
        assert_eq!(picked, expected);

        // A queued job leaves its queue when it starts; the next one moves up.
        let mut started = (**board.jobs[&normal[0]].full.as_ref().unwrap()).clone();
        started.state = JobState::Connecting;
        board.put(Arc::new(started), true);
        assert_eq!(board.running[&Priority::Normal], 2);
        let picked: Vec<JobId> = board
            .to_schedule(Timestamp::from_millis(0))
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert!(picked.contains(&normal[0]) && picked.contains(&normal[2]));
        assert!(!picked.contains(&normal[3]) && !picked.contains(&old[1]));
    }

    #[test]
    fn a_queued_job_s_rank_is_its_place_in_its_priority_s_queue() {
        let mut board = Board::new(true, 1);
        let normal: Vec<JobId> = (0..10)
            .map(|seq| {
                add(
                    &mut board,
                    job(JobState::Queued, Priority::Normal, 100 - seq, 900),
                )
            })
            .collect();
        let high = add(&mut board, job(JobState::Queued, Priority::High, 5, 900));
        // Queue positions run backwards: the last made is first in line.
        let ranks = board.ranks([normal[9], normal[0], normal[4], high].iter());
        assert_eq!(ranks[&normal[9]], 0);
        assert_eq!(ranks[&normal[4]], 5);
        assert_eq!(ranks[&normal[0]], 9);
        assert_eq!(ranks[&high], 0);
        assert_eq!(
            board.extra(normal[4], JobState::Queued, Some(5)).waiting,
            Some(WaitReason::Turn {
                ahead: 5,
                priority: Priority::Normal
            })
        );
        // Once the high job holds the one slot, the normal ones wait behind it.
        let mut started = (**board.jobs[&high].full.as_ref().unwrap()).clone();
        started.state = JobState::Transferring;
        board.put(Arc::new(started), true);
        assert_eq!(
            board.extra(normal[4], JobState::Queued, Some(5)).waiting,
            Some(WaitReason::HigherPriority { ahead: 1 })
        );
        // Where no engine runs jobs, a queued job waits for one.
        board.scheduling = false;
        assert_eq!(
            board.extra(normal[4], JobState::Queued, Some(5)).waiting,
            Some(WaitReason::NotScheduled)
        );
    }
}
