//! Who runs now: a pure function from the queue's state to a plan, so that priorities,
//! round-robin, retries and timeouts can be tested without a clock or a network.
//!
//! BITS's rules: foreground jobs all run at once; background jobs run by strict priority with
//! preemption, at most `max_background_jobs` at a time; within a priority, a job that has used
//! its time slice goes to the back of the queue when another job of that priority is waiting.
//! A job in TransientError is retried after its retry time, or given up (Error) once it has made
//! no progress for its no-progress timeout. A running job that exceeds its maximum download time
//! fails; a job untouched for the inactivity timeout is cancelled.

use std::time::{Duration, Instant};

use crate::model::{JobId, JobState, Priority, Timestamp, WaitReason};

/// What the scheduler needs to know of one job.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    pub id: JobId,
    pub priority: Priority,
    pub state: JobState,
    pub queue_seq: i64,
    /// For running jobs: when the current time slice began.
    pub slice_start: Option<Instant>,
    pub retry_at: Option<Timestamp>,
    pub no_progress_since: Option<Timestamp>,
    pub no_progress_timeout: Duration,
    /// Connecting/Transferring time so far, including the current run.
    pub active: Duration,
    pub max_download_time: Duration,
    pub modified_at: Timestamp,
    /// A bandwidth policy window blocks this job's priority now.
    pub policy_blocked: bool,
    /// The job is in TransientError because a policy window blocked it.
    pub waits_for_policy: bool,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Rules {
    pub max_background_jobs: usize,
    pub time_slice: Duration,
    pub inactivity_timeout: Duration,
}

/// What to do now, and when to look again.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    pub start: Vec<JobId>,
    /// Running jobs to stop and return to Queued; `true` = to the back of their level.
    pub preempt: Vec<(JobId, bool)>,
    pub retry: Vec<JobId>,
    pub give_up: Vec<JobId>,
    pub over_time: Vec<JobId>,
    pub inactive: Vec<JobId>,
    /// Queued or running jobs a policy window blocks: to TransientError until it ends.
    pub block: Vec<JobId>,
    /// How long until something changes by itself.
    pub wake_in: Option<Duration>,
}

impl Plan {
    pub(crate) fn is_empty(&self) -> bool {
        self.start.is_empty()
            && self.preempt.is_empty()
            && self.retry.is_empty()
            && self.give_up.is_empty()
            && self.over_time.is_empty()
            && self.inactive.is_empty()
            && self.block.is_empty()
    }

    fn wake(&mut self, d: Duration) {
        self.wake_in = Some(self.wake_in.map_or(d, |w| w.min(d)));
    }
}

pub(crate) fn plan(slots: &[Slot], rules: Rules, now: Instant, wall: Timestamp) -> Plan {
    let mut plan = Plan::default();
    let until = |t: Timestamp| {
        Duration::from_millis(
            u64::try_from(t.as_millis().saturating_sub(wall.as_millis())).unwrap_or(0),
        )
    };
    for s in slots {
        if s.state.is_final() {
            continue;
        }
        if !s.state.is_running() {
            let idle_until = s.modified_at.plus(rules.inactivity_timeout);
            if idle_until <= wall {
                plan.inactive.push(s.id);
                continue;
            }
            plan.wake(until(idle_until));
        }
        match s.state {
            // Waiting out a policy window: queued again as soon as it ends, never given up.
            JobState::TransientError if s.waits_for_policy && !s.policy_blocked => {
                plan.retry.push(s.id);
            }
            JobState::TransientError if s.waits_for_policy => {}
            JobState::Queued | JobState::Connecting | JobState::Transferring
                if s.policy_blocked =>
            {
                plan.block.push(s.id);
            }
            JobState::TransientError => {
                let give_up_at = s.no_progress_since.map(|t| t.plus(s.no_progress_timeout));
                if give_up_at.is_some_and(|t| t <= wall) {
                    plan.give_up.push(s.id);
                } else if s.retry_at.is_none_or(|t| t <= wall) {
                    plan.retry.push(s.id);
                } else {
                    for t in [s.retry_at, give_up_at].into_iter().flatten() {
                        plan.wake(until(t));
                    }
                }
            }
            JobState::Connecting | JobState::Transferring => {
                if s.active >= s.max_download_time {
                    plan.over_time.push(s.id);
                } else {
                    plan.wake(s.max_download_time.saturating_sub(s.active));
                }
            }
            JobState::Queued if s.priority == Priority::Foreground => plan.start.push(s.id),
            _ => {}
        }
    }
    plan_background(slots, rules, now, &mut plan);
    plan
}

fn plan_background(slots: &[Slot], rules: Rules, now: Instant, plan: &mut Plan) {
    let out = |id: &JobId, plan: &Plan| {
        plan.over_time.contains(id) || plan.inactive.contains(id) || plan.block.contains(id)
    };
    let mut candidates: Vec<&Slot> = slots
        .iter()
        .filter(|s| s.priority.is_background())
        .filter(|s| s.state == JobState::Queued || s.state.is_running())
        .filter(|s| !out(&s.id, plan))
        .collect();
    // A running job whose slice is spent yields to a waiting job of its own priority.
    let mut rotated = Vec::new();
    for s in &candidates {
        let (true, Some(start)) = (s.state.is_running(), s.slice_start) else {
            continue;
        };
        let waiting = candidates
            .iter()
            .any(|w| w.priority == s.priority && w.state == JobState::Queued);
        if !waiting {
            continue;
        }
        let used = now.saturating_duration_since(start);
        if used >= rules.time_slice {
            rotated.push(s.id);
        } else {
            plan.wake(rules.time_slice.saturating_sub(used));
        }
    }
    // Strict priority; within a level, running (unrotated) jobs keep their place, then FIFO.
    candidates.sort_by_key(|s| {
        let keeps = s.state.is_running() && !rotated.contains(&s.id);
        (s.priority, !keeps, rotated.contains(&s.id), s.queue_seq)
    });
    let winners: Vec<JobId> = candidates
        .iter()
        .take(rules.max_background_jobs)
        .map(|s| s.id)
        .collect();
    for s in &candidates {
        let wins = winners.contains(&s.id);
        if s.state.is_running() && !wins {
            plan.preempt.push((s.id, rotated.contains(&s.id)));
        } else if s.state == JobState::Queued && wins {
            plan.start.push(s.id);
        }
    }
}

/// The background priority levels as a pass left them, for the reasons of queued jobs: per
/// priority, its running jobs and its queued ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Levels {
    /// Per background priority (highest first): (running, queued).
    pub counts: std::collections::BTreeMap<Priority, (usize, usize)>,
    /// How many background jobs may run at once.
    pub slots: usize,
}

impl Levels {
    /// Why a queued background job of `priority` waits, with `rank` queued jobs of its own
    /// priority ahead of it: behind a higher priority when those fill every slot, else for its
    /// turn among its own priority.
    pub(crate) fn reason(&self, priority: Priority, rank: usize) -> WaitReason {
        let (mut higher, mut higher_running) = (0, 0);
        for (p, (running, queued)) in self.counts.range(..priority) {
            if p.is_background() {
                higher += running + queued;
                higher_running += running;
            }
        }
        if higher_running >= self.slots {
            WaitReason::HigherPriority { ahead: higher }
        } else {
            let running = self.counts.get(&priority).map_or(0, |c| c.0);
            WaitReason::Turn {
                ahead: running + rank,
                priority,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        max_background_jobs: 1,
        time_slice: Duration::from_secs(10),
        inactivity_timeout: Duration::from_secs(1000),
    };

    fn slot(p: Priority, state: JobState, seq: i64) -> Slot {
        Slot {
            id: JobId::new(),
            priority: p,
            state,
            queue_seq: seq,
            slice_start: None,
            retry_at: None,
            no_progress_since: None,
            no_progress_timeout: Duration::from_secs(100),
            active: Duration::ZERO,
            max_download_time: Duration::from_secs(1000),
            modified_at: Timestamp::from_millis(0),
            policy_blocked: false,
            waits_for_policy: false,
        }
    }

    fn at(s: u64) -> Timestamp {
        Timestamp::from_millis(i64::try_from(s * 1000).unwrap())
    }

    #[test]
    fn foreground_jobs_all_start_and_one_background_job_beside_them() {
        let now = Instant::now();
        let jobs = vec![
            slot(Priority::Foreground, JobState::Queued, 1),
            slot(Priority::Foreground, JobState::Queued, 2),
            slot(Priority::Low, JobState::Queued, 3),
            slot(Priority::Normal, JobState::Queued, 4),
        ];
        let p = plan(&jobs, RULES, now, at(1));
        assert_eq!(p.start, vec![jobs[0].id, jobs[1].id, jobs[3].id]);
    }

    #[test]
    fn higher_priority_preempts_and_keeps_the_loser_at_the_front() {
        let now = Instant::now();
        let mut low = slot(Priority::Low, JobState::Transferring, 1);
        low.slice_start = Some(now);
        let high = slot(Priority::High, JobState::Queued, 2);
        let p = plan(&[low.clone(), high.clone()], RULES, now, at(1));
        assert_eq!(p.start, vec![high.id]);
        assert_eq!(p.preempt, vec![(low.id, false)]);
    }

    #[test]
    fn a_queued_job_says_who_is_ahead() {
        // One high job runs; one low and two normal jobs are queued.
        let levels = |slots| Levels {
            counts: [
                (Priority::High, (1, 0)),
                (Priority::Normal, (0, 2)),
                (Priority::Low, (0, 1)),
            ]
            .into(),
            slots,
        };
        let one = levels(1);
        assert_eq!(
            one.reason(Priority::Low, 0),
            WaitReason::HigherPriority { ahead: 3 }
        );
        assert_eq!(
            one.reason(Priority::Normal, 1),
            WaitReason::HigherPriority { ahead: 1 }
        );
        // With a second slot, the normal jobs wait only for each other.
        assert_eq!(
            levels(2).reason(Priority::Normal, 1),
            WaitReason::Turn {
                ahead: 1,
                priority: Priority::Normal
            }
        );
    }

    #[test]
    fn round_robin_within_a_priority_after_the_slice() {
        let t0 = Instant::now();
        let mut a = slot(Priority::Normal, JobState::Transferring, 1);
        a.slice_start = Some(t0);
        let b = slot(Priority::Normal, JobState::Queued, 2);
        let early = plan(
            &[a.clone(), b.clone()],
            RULES,
            t0 + Duration::from_secs(3),
            at(1),
        );
        assert!(early.start.is_empty() && early.preempt.is_empty());
        assert_eq!(early.wake_in, Some(Duration::from_secs(7)));
        let late = plan(
            &[a.clone(), b.clone()],
            RULES,
            t0 + Duration::from_secs(10),
            at(1),
        );
        assert_eq!(late.start, vec![b.id]);
        assert_eq!(late.preempt, vec![(a.id, true)]);
        // Alone, a spent slice changes nothing.
        let alone = plan(&[a.clone()], RULES, t0 + Duration::from_secs(30), at(1));
        assert!(alone.is_empty());
    }

    #[test]
    fn more_background_slots() {
        let rules = Rules {
            max_background_jobs: 2,
            ..RULES
        };
        let jobs = vec![
            slot(Priority::Low, JobState::Queued, 1),
            slot(Priority::High, JobState::Queued, 2),
            slot(Priority::Normal, JobState::Queued, 3),
        ];
        let p = plan(&jobs, rules, Instant::now(), at(1));
        assert_eq!(p.start, vec![jobs[1].id, jobs[2].id]);
    }

    #[test]
    fn transient_errors_retry_then_give_up() {
        let mut j = slot(Priority::Normal, JobState::TransientError, 1);
        j.retry_at = Some(at(10));
        j.no_progress_since = Some(at(0));
        let now = Instant::now();
        let wait = plan(&[j.clone()], RULES, now, at(4));
        assert!(wait.retry.is_empty());
        assert_eq!(wait.wake_in, Some(Duration::from_secs(6)));
        assert_eq!(plan(&[j.clone()], RULES, now, at(10)).retry, vec![j.id]);
        assert_eq!(plan(&[j.clone()], RULES, now, at(100)).give_up, vec![j.id]);
    }

    #[test]
    fn max_download_time_and_inactivity() {
        let mut run = slot(Priority::Foreground, JobState::Transferring, 1);
        run.active = Duration::from_secs(1000);
        let idle = slot(Priority::Normal, JobState::Suspended, 2);
        let p = plan(&[run.clone(), idle.clone()], RULES, Instant::now(), at(999));
        assert_eq!(p.over_time, vec![run.id]);
        assert!(p.inactive.is_empty());
        let p = plan(std::slice::from_ref(&idle), RULES, Instant::now(), at(1000));
        assert_eq!(p.inactive, vec![idle.id]);
    }

    #[test]
    fn policy_blocks_background_jobs_until_the_window_ends() {
        let mut running = slot(Priority::Normal, JobState::Transferring, 1);
        running.slice_start = Some(Instant::now());
        running.policy_blocked = true;
        let mut queued = slot(Priority::Normal, JobState::Queued, 2);
        queued.policy_blocked = true;
        let low = slot(Priority::Low, JobState::Queued, 3);
        let fg = slot(Priority::Foreground, JobState::Queued, 4);
        let p = plan(
            &[running.clone(), queued.clone(), low.clone(), fg.clone()],
            RULES,
            Instant::now(),
            at(1),
        );
        assert_eq!(p.block, vec![running.id, queued.id]);
        // The unblocked priority takes the background slot; foreground is never blocked.
        assert_eq!(p.start, vec![fg.id, low.id]);
        assert!(p.preempt.is_empty());

        // Waiting in TransientError: past its no-progress timeout (100 s) yet never given up,
        // never retried by the timer...
        let mut waiting = slot(Priority::Normal, JobState::TransientError, 2);
        waiting.waits_for_policy = true;
        waiting.policy_blocked = true;
        waiting.no_progress_since = Some(at(0));
        let p = plan(
            std::slice::from_ref(&waiting),
            RULES,
            Instant::now(),
            at(500),
        );
        assert!(p.is_empty(), "{p:?}");
        // ...and queued again as soon as the window ends.
        waiting.policy_blocked = false;
        let p = plan(std::slice::from_ref(&waiting), RULES, Instant::now(), at(2));
        assert_eq!(p.retry, vec![waiting.id]);
    }
}
