//! The queue task's scheduling: applies the scheduler's plans, starts and stops workers, and
//! turns worker results into state transitions, events and notify programs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::queue::{Queue, Running};
use super::summary::Summary;
use super::worker::{Outcome, Worker, WorkerMsg};
use crate::bandwidth::{Direction, JobRate};
use crate::error::Status;
use crate::events::Event;
use crate::model::{
    Job, JobId, JobState, JobType, Limit, NotifyFlags, PausedBy, Timestamp, WaitReason,
};
use crate::scheduler::{self, Plan, Rules, Slot};
use crate::store::LiveRow;
use crate::transfer::{Live, ReplySlot};

impl Queue {
    fn rules(&self) -> Rules {
        let config = &self.shared.config;
        Rules {
            max_background_jobs: config.max_background_jobs,
            time_slice: config.time_slice,
            inactivity_timeout: config.job_inactivity_timeout,
        }
    }

    /// Apply plans until nothing changes; returns when to look again.
    pub async fn schedule(&mut self) -> Option<Duration> {
        loop {
            let now = Instant::now();
            let blocked = self.shared.bandwidth.blocked();
            let wall = Timestamp::now();
            let idle_since = wall.minus(self.shared.config.job_inactivity_timeout);
            let slots: Vec<Slot> = self
                .view
                .read()
                .to_schedule(idle_since)
                .into_iter()
                .map(|(id, e)| {
                    let mut s = slot(id, &e.summary, self.running.get(&id), now);
                    s.policy_blocked = blocked.contains(&e.summary.priority);
                    s
                })
                .collect();
            let plan = scheduler::plan(&slots, self.rules(), now, wall);
            if plan.is_empty() {
                self.note_reasons(&slots);
                return plan.wake_in;
            }
            self.apply(plan).await;
        }
    }

    /// Why jobs wait, where only the scheduler knows: running jobs a cap of 0 pauses, and
    /// jobs a policy window blocks (until when). (A queued job's reason is found when it is
    /// read, from who holds the slots then.)
    fn note_reasons(&self, slots: &[Slot]) {
        let mut waiting: HashMap<JobId, WaitReason> = HashMap::new();
        let status = self.shared.bandwidth.status();
        let mut until = HashMap::new();
        let board = self.view.read();
        for s in slots {
            let Some(job) = board.jobs.get(&s.id).map(|e| &e.summary) else {
                continue;
            };
            if job.state.is_running() {
                let by = if job.paused {
                    Some(PausedBy::Job)
                } else if job.priority.is_background()
                    && [status.caps.all, status.caps.of(job.priority)]
                        .contains(&Limit::BytesPerSec(0))
                {
                    Some(PausedBy::Background)
                } else {
                    None
                };
                if let Some(by) = by {
                    waiting.insert(s.id, WaitReason::Paused { by });
                }
            } else if job.blocked_by_policy {
                let until = *until
                    .entry(job.priority)
                    .or_insert_with(|| self.shared.bandwidth.policy_until(job.priority));
                let period = status.policy.as_ref().map(|p| p.period);
                waiting.insert(s.id, WaitReason::Policy { period, until });
            }
        }
        let changed = board.waiting != waiting;
        drop(board);
        // Most passes change nothing: readers' lock is taken only when something did.
        if changed {
            self.view.write().waiting = waiting;
        }
    }

    /// A copy of job `id` changed by `f`, if `f` says it changed anything.
    async fn edit(&self, id: JobId, f: impl FnOnce(&mut Job) -> bool) -> Option<Job> {
        let job = self.job(id, "change").await.ok()?;
        let mut job = (*job).clone();
        f(&mut job).then_some(job)
    }

    async fn apply(&mut self, plan: Plan) {
        let now = Timestamp::now();
        for id in plan.over_time {
            self.stop_worker(id).await;
            if let Some(job) = self.edit(id, |j| j.exceed_download_time(now)).await {
                tracing::info!(job_id = %id, "maximum download time exceeded");
                self.after_error(job).await;
            }
        }
        for id in plan.inactive {
            if let Ok(job) = self.job(id, "cancel").await {
                tracing::info!(job_id = %id, "job inactive for the inactivity timeout; cancelling");
                if let Err(e) = self.cancel_job(&job).await {
                    tracing::warn!(job_id = %id, error = %e, "cannot cancel inactive job");
                }
            }
        }
        for id in plan.give_up {
            if let Some(job) = self.edit(id, |j| j.give_up(now)).await {
                tracing::info!(job_id = %id, "no progress within the no-progress timeout");
                self.after_error(job).await;
            }
        }
        for id in plan.block {
            self.stop_worker(id).await;
            let why = self.shared.bandwidth.status().policy.map_or_else(
                || "a bandwidth limit of 0".to_owned(),
                |p| format!("the bandwidth limit in {} is 0", p.period),
            );
            if let Some(job) = self.edit(id, |j| j.block_by_policy(&why, now)).await {
                tracing::info!(job_id = %id, %why, "blocked by bandwidth policy");
                self.after_error(job).await;
            }
        }
        for id in plan.retry {
            if let Some(job) = self.edit(id, |j| j.retry(now)).await {
                self.persist(job).await;
            }
        }
        for (id, to_back) in plan.preempt {
            self.stop_worker(id).await;
            let seq = if to_back {
                self.take_seq()
            } else {
                self.view
                    .read()
                    .jobs
                    .get(&id)
                    .map_or(0, |e| e.summary.queue_seq)
            };
            if let Some(job) = self.edit(id, |j| j.requeue(now, seq)).await {
                tracing::debug!(job_id = %id, to_back, "job yields its turn");
                self.persist(job).await;
            }
        }
        for id in plan.start {
            self.start(id).await;
        }
    }

    /// Record a job's new state and show it. A failure is logged: the job goes on in memory,
    /// where its whole record then stays (the store's is behind) until a write succeeds.
    async fn persist(&self, job: Job) -> Arc<Job> {
        if let Err(e) = self.shared.store.update_job(&job).await {
            tracing::error!(job_id = %job.id, error = %e, "cannot record job state");
            return self.show_unstored(job);
        }
        self.show(job)
    }

    async fn start(&mut self, id: JobId) {
        self.next_run += 1;
        let run = self.next_run;
        let Some(job) = self
            .edit(id, |j| j.start_connecting(Timestamp::now()))
            .await
        else {
            return;
        };
        let job = self.persist(job).await;
        let live = Arc::new(Live::new(job.files.len()));
        let stop = CancellationToken::new();
        let rate = Arc::new(JobRate::new(
            job.properties.priority,
            job.properties.max_rate,
        ));
        let shared = &self.shared;
        let worker = Worker {
            throttle: shared
                .bandwidth
                .throttle(id, rate.clone(), direction_of(job.job_type)),
            job_id: id,
            job_type: job.job_type,
            run,
            files: job.files.clone(),
            reply: (job.job_type == JobType::UploadReply).then(|| ReplySlot {
                job: id,
                name: job.reply_file_name.clone(),
                file: job.reply.clone(),
            }),
            properties: job.properties.clone(),
            credentials: job.credentials.clone(),
            clients: shared.clients.clone(),
            checkpoint: shared.config.checkpoint,
            live: live.clone(),
            stop: stop.clone(),
            tx: self.worker_tx.clone(),
        };
        tracing::info!(job_id = %id, run, priority = %job.properties.priority, "job starts");
        self.view.write().live.insert(id, live.clone());
        let now = Instant::now();
        self.running.insert(
            id,
            Running {
                run,
                stop,
                handle: tokio::spawn(worker.run()),
                live,
                rate,
                started: now,
                slice_start: now,
            },
        );
    }

    pub async fn on_worker(&mut self, msg: WorkerMsg) {
        match msg {
            WorkerMsg::Connected { job, run } => {
                if self.running.get(&job).is_some_and(|r| r.run == run)
                    && let Some(j) = self.edit(job, |j| j.connected(Timestamp::now())).await
                {
                    self.persist(j).await;
                }
            }
            WorkerMsg::Checkpoint { progress, reply } => self.record(progress, reply),
            WorkerMsg::Recorded { result, replies } => self.recorded(result, replies),
            WorkerMsg::Exited { job, run } => {
                if self.running.get(&job).is_some_and(|r| r.run == run) {
                    self.finish_run(job).await;
                }
            }
        }
    }

    /// A worker ended by itself: Transferred, or failed.
    async fn finish_run(&mut self, id: JobId) {
        let Some(mut running) = self.running.remove(&id) else {
            return;
        };
        let Some(outcome) = self.end_run(id, &mut running).await else {
            return;
        };
        let seq = self.take_seq();
        let now = Timestamp::now();
        match outcome {
            Outcome::Transferred => {
                let all_done = self
                    .job(id, "finish")
                    .await
                    .is_ok_and(|j| j.all_files_done());
                if all_done {
                    if let Some(job) = self.edit(id, |j| j.transferred(now)).await {
                        tracing::info!(job_id = %id, "job transferred");
                        let job = self.persist(job).await;
                        self.shared.emit(Event::JobTransferred { job_id: id });
                        crate::notify::run(&job, NotifyFlags::JOB_TRANSFERRED);
                    }
                } else if let Some(job) = self.edit(id, |j| j.requeue(now, seq)).await {
                    // Files were added during the run: back in the queue.
                    self.persist(job).await;
                }
            }
            Outcome::Stopped => {
                if let Some(job) = self.edit(id, |j| j.requeue(now, seq)).await {
                    self.persist(job).await;
                }
            }
            Outcome::Failed(failure) => {
                let retry_after = failure.retry_after;
                let mut failed = None;
                if let Some(job) = self
                    .edit(id, |j| {
                        failed = j.fail(failure.error, failure.status, now);
                        failed.is_some()
                    })
                    .await
                {
                    self.after_failure(job, failed, failure.status, retry_after, now)
                        .await;
                }
            }
        }
    }

    /// A run failed and the job entered `state`: set its retry time and record it.
    async fn after_failure(
        &self,
        mut job: Job,
        state: Option<JobState>,
        status: Status,
        retry_after: Option<Duration>,
        now: Timestamp,
    ) {
        if state == Some(JobState::TransientError) {
            let delay = Duration::from_secs(u64::from(job.properties.minimum_retry_delay))
                .max(retry_after.unwrap_or_default());
            job.schedule.retry_at = Some(now.plus(delay));
            tracing::info!(job_id = %job.id, ?delay, "transient error; will retry");
        } else if status == Status::Transient {
            tracing::info!(job_id = %job.id, "transient error, but no retries left");
        }
        self.after_error(job).await;
    }

    /// Record and announce a job that entered Error or TransientError.
    async fn after_error(&self, job: Job) {
        let job = self.persist(job).await;
        if let Some(error) = &job.error {
            self.shared.emit(Event::JobError {
                job_id: job.id,
                state: job.state(),
                error: error.clone(),
            });
        }
        if job.state() == JobState::Error {
            crate::notify::run(&job, NotifyFlags::JOB_ERROR);
        }
    }

    pub async fn publish_live(&self) {
        let rows: Vec<LiveRow> = {
            let board = self.view.read();
            board
                .live
                .iter()
                .filter_map(|(id, live)| {
                    let job = board.jobs.get(id)?.full.as_ref()?;
                    Some((job, live))
                })
                .flat_map(|(job, live)| {
                    let mut files = job.files.clone();
                    live.apply_to(&mut files);
                    files
                        .into_iter()
                        .enumerate()
                        .zip(job.files.iter())
                        .filter(|((_, now), before)| now != *before)
                        .map(|((idx, f), _)| LiveRow {
                            job_id: job.id,
                            idx,
                            bytes_transferred: f.bytes_transferred,
                            bytes_total: f.bytes_total,
                            completed: f.completed,
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        if let Err(e) = self.shared.store.publish_live(rows).await {
            tracing::debug!(error = %e, "cannot publish live progress");
        }
    }
}

fn slot(id: JobId, job: &Summary, running: Option<&Running>, now: Instant) -> Slot {
    let run_time = running.map_or(Duration::ZERO, |r| now.saturating_duration_since(r.started));
    Slot {
        id,
        priority: job.priority,
        state: job.state,
        queue_seq: job.queue_seq,
        slice_start: running.map(|r| r.slice_start),
        retry_at: job.retry_at,
        no_progress_since: job.no_progress_since,
        no_progress_timeout: Duration::from_secs(u64::from(job.no_progress_timeout)),
        active: Duration::from_millis(job.active_ms) + run_time,
        max_download_time: Duration::from_secs(u64::from(job.max_download_time)),
        modified_at: job.modified_at,
        policy_blocked: false,
        waits_for_policy: job.blocked_by_policy,
    }
}

/// Downloads receive; uploads send (an upload-reply's reply is small beside its upload).
fn direction_of(job_type: JobType) -> Direction {
    if job_type == JobType::Download {
        Direction::Down
    } else {
        Direction::Up
    }
}
