//! The engine's scheduling loop: applies the scheduler's plans, starts and stops workers, and
//! turns worker results into state transitions, events and notify programs.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::worker::{Outcome, Worker, WorkerMsg};
use super::{Inner, Running, State, absorb, unannounced};
use crate::bandwidth::JobRate;
use crate::error::Status;
use crate::events::Event;
use crate::model::{Job, JobId, JobState, NotifyFlags, Timestamp};
use crate::scheduler::{self, Plan, Rules, Slot};
use crate::store::LiveRow;
use crate::transfer::Live;

pub(super) async fn run_loop(
    weak: Weak<Inner>,
    mut rx: mpsc::UnboundedReceiver<WorkerMsg>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
    live_interval: Duration,
) {
    let mut live_tick = tokio::time::interval(live_interval);
    live_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Whether the live table may hold rows: one more publish after the last run clears it.
    let mut live_rows = false;
    loop {
        // Hold the engine only while acting, so that dropping the last handle ends the loop.
        let (wake_in, publishing) = {
            let Some(inner) = weak.upgrade() else { break };
            let wake_in = inner.schedule().await;
            let publishing = !inner.state.lock().await.running.is_empty();
            (wake_in, publishing)
        };
        let sleep = wake_in.unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            () = shutdown.cancelled() => break,
            msg = rx.recv() => {
                let (Some(msg), Some(inner)) = (msg, weak.upgrade()) else { break };
                inner.on_worker(msg).await;
            }
            () = wake.notified() => {}
            () = tokio::time::sleep(sleep) => {}
            _ = live_tick.tick(), if publishing || live_rows => {
                let Some(inner) = weak.upgrade() else { break };
                inner.publish_live().await;
                live_rows = publishing;
            }
        }
    }
}

impl Inner {
    fn rules(&self) -> Rules {
        Rules {
            max_background_jobs: self.config.max_background_jobs,
            time_slice: self.config.time_slice,
            inactivity_timeout: self.config.job_inactivity_timeout,
        }
    }

    /// Apply plans until nothing changes; returns when to look again.
    async fn schedule(&self) -> Option<Duration> {
        loop {
            let mut st = self.state.lock().await;
            let now = Instant::now();
            let blocked = self.bandwidth.blocked();
            let slots: Vec<Slot> = st
                .jobs
                .values()
                .map(|j| {
                    let mut s = slot(j, st.running.get(&j.id), now);
                    s.policy_blocked = blocked.contains(&j.properties.priority);
                    s
                })
                .collect();
            let plan = scheduler::plan(&slots, self.rules(), now, Timestamp::now());
            if plan.is_empty() {
                return plan.wake_in;
            }
            self.apply(&mut st, plan).await;
        }
    }

    async fn apply(&self, st: &mut State, plan: Plan) {
        let now = Timestamp::now();
        for id in plan.over_time {
            self.stop_worker(st, id).await;
            if let Some(job) = st.jobs.get_mut(&id)
                && job.exceed_download_time(now)
            {
                tracing::info!(job_id = %id, "maximum download time exceeded");
                self.after_error(job).await;
            }
        }
        for id in plan.inactive {
            if let Some(job) = st.jobs.get_mut(&id) {
                tracing::info!(job_id = %id, "job inactive for the inactivity timeout; cancelling");
                match self.cancel_job(job).await {
                    Ok(()) => st.retire(id),
                    Err(e) => {
                        tracing::warn!(job_id = %id, error = %e, "cannot cancel inactive job");
                    }
                }
            }
        }
        for id in plan.give_up {
            if let Some(job) = st.jobs.get_mut(&id)
                && job.give_up(now)
            {
                tracing::info!(job_id = %id, "no progress within the no-progress timeout");
                self.after_error(job).await;
            }
        }
        for id in plan.block {
            self.stop_worker(st, id).await;
            let why = self.bandwidth.status().policy.map_or_else(
                || "a bandwidth limit of 0".to_owned(),
                |p| format!("the bandwidth limit in {} is 0", p.period),
            );
            if let Some(job) = st.jobs.get_mut(&id)
                && job.block_by_policy(&why, now)
            {
                tracing::info!(job_id = %id, %why, "blocked by bandwidth policy");
                self.after_error(job).await;
            }
        }
        for id in plan.retry {
            if let Some(job) = st.jobs.get_mut(&id)
                && job.retry(now)
            {
                self.persist(job).await;
            }
        }
        for (id, to_back) in plan.preempt {
            self.stop_worker(st, id).await;
            let seq = if to_back {
                st.take_seq()
            } else {
                st.jobs.get(&id).map_or(0, |j| j.schedule.queue_seq)
            };
            if let Some(job) = st.jobs.get_mut(&id)
                && job.requeue(now, seq)
            {
                tracing::debug!(job_id = %id, to_back, "job yields its turn");
                self.persist(job).await;
            }
        }
        for id in plan.start {
            self.start(st, id).await;
        }
    }

    async fn persist(&self, job: &Job) {
        if let Err(e) = self.store.update_job(job).await {
            tracing::error!(job_id = %job.id, error = %e, "cannot record job state");
        }
        self.emit_modified(job.id, job.state());
    }

    async fn start(&self, st: &mut State, id: JobId) {
        st.next_run += 1;
        let run = st.next_run;
        let Some(job) = st.jobs.get_mut(&id) else {
            return;
        };
        if !job.start_connecting(Timestamp::now()) {
            return;
        }
        self.persist(job).await;
        let live = Arc::new(Live::default());
        let stop = CancellationToken::new();
        let rate = Arc::new(JobRate::new(
            job.properties.priority,
            job.properties.max_rate,
        ));
        let worker = Worker {
            throttle: self.bandwidth.throttle(id, rate.clone()),
            job_id: id,
            run,
            files: job.files.clone(),
            properties: job.properties.clone(),
            credentials: job.credentials.clone(),
            store: self.store.clone(),
            clients: self.clients.clone(),
            checkpoint: self.config.checkpoint,
            live: live.clone(),
            stop: stop.clone(),
            tx: self.worker_tx.clone(),
        };
        tracing::info!(job_id = %id, run, priority = %job.properties.priority, "job starts");
        let now = Instant::now();
        st.running.insert(
            id,
            Running {
                run,
                stop,
                handle: tokio::spawn(worker.run()),
                live,
                rate,
                started: now,
                slice_start: now,
                announced: HashSet::new(),
            },
        );
    }

    async fn on_worker(&self, msg: WorkerMsg) {
        let mut st = self.state.lock().await;
        match msg {
            WorkerMsg::Connected { job, run } => {
                if st.running.get(&job).is_some_and(|r| r.run == run)
                    && let Some(j) = st.jobs.get_mut(&job)
                    && j.connected(Timestamp::now())
                {
                    self.persist(j).await;
                }
            }
            WorkerMsg::FilesDurable { job, run, files } => {
                if let Some(r) = st.running.get_mut(&job).filter(|r| r.run == run) {
                    r.announced.extend(files.iter().copied());
                    if let Some(j) = st.jobs.get_mut(&job) {
                        j.modified_at = Timestamp::now();
                    }
                    self.emit_files_done(job, &files);
                }
            }
            WorkerMsg::Exited { job, run } => {
                if st.running.get(&job).is_some_and(|r| r.run == run) {
                    self.finish_run(&mut st, job).await;
                }
            }
        }
    }

    /// A worker ended by itself: Transferred, or failed.
    async fn finish_run(&self, st: &mut State, id: JobId) {
        let Some(mut running) = st.running.remove(&id) else {
            return;
        };
        let announced = std::mem::take(&mut running.announced);
        let exit = match running.handle.await {
            Ok(exit) => exit,
            Err(e) => {
                tracing::error!(job_id = %id, error = %e, "worker ended abnormally");
                return;
            }
        };
        let seq = st.take_seq();
        let Some(job) = st.jobs.get_mut(&id) else {
            return;
        };
        absorb(job, &exit, running.started, &running.live);
        self.emit_files_done(id, &unannounced(&announced, &exit.durable_done));
        let now = Timestamp::now();
        match exit.outcome {
            Outcome::Transferred if job.all_files_done() => {
                if job.transferred(now) {
                    tracing::info!(job_id = %id, "job transferred");
                    self.persist(job).await;
                    self.emit(Event::JobTransferred { job_id: id });
                    crate::notify::run(job, NotifyFlags::JOB_TRANSFERRED);
                }
            }
            // Files were added during the run, or it was stopped: back in the queue.
            Outcome::Transferred | Outcome::Stopped => {
                if job.requeue(now, seq) {
                    self.persist(job).await;
                }
            }
            Outcome::Failed(failure) => {
                let retry_after = failure.retry_after;
                if let Some(state) = job.fail(failure.error, failure.status, now) {
                    if state == JobState::TransientError {
                        let delay =
                            Duration::from_secs(u64::from(job.properties.minimum_retry_delay))
                                .max(retry_after.unwrap_or_default());
                        job.schedule.retry_at = Some(now.plus(delay));
                        tracing::info!(job_id = %id, ?delay, "transient error; will retry");
                    } else if failure.status == Status::Transient {
                        tracing::info!(job_id = %id, "transient error, but no retries left");
                    }
                    self.after_error(job).await;
                }
            }
        }
    }

    /// Record and announce a job that entered Error or TransientError.
    async fn after_error(&self, job: &Job) {
        self.persist(job).await;
        if let Some(error) = &job.error {
            self.emit(Event::JobError {
                job_id: job.id,
                state: job.state(),
                error: error.clone(),
            });
        }
        if job.state() == JobState::Error {
            crate::notify::run(job, NotifyFlags::JOB_ERROR);
        }
    }

    async fn publish_live(&self) {
        let rows: Vec<LiveRow> = {
            let st = self.state.lock().await;
            st.running
                .iter()
                .filter_map(|(id, r)| st.jobs.get(id).map(|j| (j, r)))
                .flat_map(|(job, r)| {
                    let mut files = job.files.clone();
                    r.live.apply_to(&mut files);
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
        if let Err(e) = self.store.publish_live(rows).await {
            tracing::debug!(error = %e, "cannot publish live progress");
        }
    }
}

fn slot(job: &Job, running: Option<&Running>, now: Instant) -> Slot {
    let p = &job.properties;
    let run_time = running.map_or(Duration::ZERO, |r| now.saturating_duration_since(r.started));
    Slot {
        id: job.id,
        priority: p.priority,
        state: job.state(),
        queue_seq: job.schedule.queue_seq,
        slice_start: running.map(|r| r.slice_start),
        retry_at: job.schedule.retry_at,
        no_progress_since: job.schedule.no_progress_since,
        no_progress_timeout: Duration::from_secs(u64::from(p.no_progress_timeout)),
        active: Duration::from_millis(job.schedule.active_ms) + run_time,
        max_download_time: Duration::from_secs(u64::from(p.maximum_download_time)),
        modified_at: job.modified_at,
        policy_blocked: false,
        waits_for_policy: job.is_blocked_by_policy(),
    }
}
