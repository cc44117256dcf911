//! The queue task: the one owner of the engine's jobs. API calls arrive as [`Request`]s,
//! workers report as [`WorkerMsg`]s, and the scheduler's plans are applied here, one at a time.
//! Every change is committed to the store before readers see it on the [`View`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::summary::Summary;
use super::view::View;
use super::worker::{Outcome, WorkerMsg};
use super::{Completion, Shared, files};
use crate::bandwidth::JobRate;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::model::{
    Job, JobFile, JobId, JobType, NewFile, PropertyChange, ResumeOutcome, Timestamp,
};
use crate::store::FileProgress;
use crate::transfer::Live;

pub(super) type Reply<T> = oneshot::Sender<Result<T>>;

/// A repair of a job's remote names; returns how many files changed.
pub(super) type Repair = Box<dyn FnOnce(&mut Job, Timestamp) -> Result<usize> + Send + Sync>;

/// An API call, with where its answer goes.
pub(super) enum Request {
    Create(Box<Job>, Reply<()>),
    AddFiles(JobId, Vec<NewFile>, Reply<()>),
    Resume(JobId, Reply<ResumeOutcome>),
    Suspend(JobId, Reply<()>),
    Cancel(JobId, Reply<()>),
    Complete(JobId, Reply<Completion>),
    SetProperty(JobId, PropertyChange, Reply<()>),
    Repair(JobId, Repair, Reply<usize>),
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (name, id) = match self {
            Self::Create(job, _) => ("create", job.id),
            Self::AddFiles(id, ..) => ("add-files", *id),
            Self::Resume(id, _) => ("resume", *id),
            Self::Suspend(id, _) => ("suspend", *id),
            Self::Cancel(id, _) => ("cancel", *id),
            Self::Complete(id, _) => ("complete", *id),
            Self::SetProperty(id, ..) => ("set", *id),
            Self::Repair(id, ..) => ("repair", *id),
        };
        write!(f, "Request::{name}({id})")
    }
}

/// A job's run in progress.
#[derive(Debug)]
pub(super) struct Running {
    pub run: u64,
    pub stop: CancellationToken,
    pub handle: JoinHandle<Outcome>,
    pub live: Arc<Live>,
    pub rate: Arc<JobRate>,
    pub started: Instant,
    pub slice_start: Instant,
}

/// The queue task's state. It is the one writer of the queue's rows: API calls, scheduling and
/// the workers' checkpoints all reach the store through it.
#[derive(Debug)]
pub(super) struct Queue {
    pub shared: Arc<Shared>,
    pub view: Arc<View>,
    pub running: HashMap<JobId, Running>,
    pub next_seq: i64,
    pub next_run: u64,
    pub worker_tx: mpsc::UnboundedSender<WorkerMsg>,
    pub worker_rx: mpsc::UnboundedReceiver<WorkerMsg>,
    /// Worker reports that came while a run was being joined, to handle next.
    pub deferred: VecDeque<WorkerMsg>,
    /// Checkpoints that came while others were being committed: committed together next.
    pub checkpoints: Checkpoints,
    /// A request taken from the mailbox early (see `complete_waiting`), to handle next.
    pub next_request: Option<Request>,
}

/// Group commit of checkpoints: the first is committed at once; those that come while a
/// commit is under way wait, and go in the next one together, so that files fetched at once
/// (or several jobs) cost one store commit, not one each.
#[derive(Debug, Default)]
pub(super) struct Checkpoints {
    committing: bool,
    waiting: Vec<(FileProgress, Reply<()>)>,
}

/// Checks of files to add that need the job: its type, and the files it has.
pub(super) fn check_additions(job: &Job, new: &[NewFile]) -> Result<()> {
    if job.job_type != JobType::Download && job.files.len() + new.len() > 1 {
        return Err(Error::TooManyFiles);
    }
    if job.job_type != JobType::Download && new.iter().any(|f| !f.ranges.is_empty()) {
        return Err(Error::InvalidArgument(
            "byte ranges are for download jobs only".into(),
        ));
    }
    let tus = |url: &str| url.starts_with("tus+http://") || url.starts_with("tus+https://");
    let web = |url: &str| url.starts_with("http://") || url.starts_with("https://");
    if job.job_type != JobType::Download
        && let Some(f) = new.iter().find(|f| {
            let url = f.remote_url.to_ascii_lowercase();
            !web(&url) && !tus(&url)
        })
    {
        return Err(Error::InvalidArgument(format!(
            "remote URL {:?}: uploads go to http or https URLs (or tus+http, tus+https)",
            f.remote_url
        )));
    }
    let reply = job.job_type == JobType::UploadReply;
    if let Some(f) = new
        .iter()
        .find(|f| tus(&f.remote_url.to_ascii_lowercase()))
        .filter(|_| job.job_type == JobType::Download || reply)
    {
        let why = if reply {
            "tus brings back no reply: upload-reply jobs use BITS"
        } else {
            "tus URLs are for upload jobs"
        };
        return Err(Error::InvalidArgument(format!(
            "remote URL {:?}: {why}",
            f.remote_url
        )));
    }
    let mut seen: HashSet<&Path> = job.files.iter().map(|f| f.local_path.as_path()).collect();
    for f in new {
        if !seen.insert(&f.local_path) {
            return Err(Error::InvalidArgument(format!(
                "local path {} is already a file of this job",
                f.local_path.display()
            )));
        }
    }
    Ok(())
}

/// Run blocking file work on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| Error::ShutDown)?
}

impl Queue {
    /// Serve requests, worker reports and the scheduler until shut down or every handle is
    /// gone; then stop every run with a final checkpoint and queue its job for the next start.
    pub async fn serve(mut self, mut requests: mpsc::UnboundedReceiver<Request>) {
        let shutdown = self.shared.shutdown.clone();
        let wake = self.shared.wake.clone();
        let mut live_tick = tokio::time::interval(self.shared.config.live_interval);
        live_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Whether the live table may hold rows: one more publish after the last run clears it.
        let mut live_rows = false;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let wake_in = if self.shared.config.scheduling {
                self.schedule().await
            } else {
                None
            };
            if let Some(msg) = self.deferred.pop_front() {
                self.on_worker(msg).await;
                continue;
            }
            if let Some(request) = self.next_request.take() {
                self.handle(request, &mut requests).await;
                continue;
            }
            let publishing = !self.running.is_empty();
            let sleep = wake_in.unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                () = shutdown.cancelled() => break,
                request = requests.recv() => match request {
                    Some(request) => self.handle(request, &mut requests).await,
                    None => break,
                },
                Some(msg) = self.worker_rx.recv() => self.on_worker(msg).await,
                () = wake.notified() => {}
                () = tokio::time::sleep(sleep) => {}
                _ = live_tick.tick(), if publishing || live_rows => {
                    self.publish_live().await;
                    live_rows = publishing;
                }
            }
        }
        self.stop_all().await;
        shutdown.cancel();
    }

    async fn handle(&mut self, request: Request, requests: &mut mpsc::UnboundedReceiver<Request>) {
        match request {
            Request::Create(job, reply) => answer(reply, self.create(*job).await),
            Request::AddFiles(id, new, reply) => answer(reply, self.add_files(id, new).await),
            Request::Resume(id, reply) => answer(reply, self.resume(id).await),
            Request::Suspend(id, reply) => answer(reply, self.suspend(id).await),
            Request::Cancel(id, reply) => answer(reply, self.cancel(id).await),
            Request::Complete(id, reply) => self.complete_waiting((id, reply), requests).await,
            Request::SetProperty(id, change, reply) => {
                answer(reply, self.set_property(id, change).await);
            }
            Request::Repair(id, f, reply) => answer(reply, self.repair(id, f).await),
        }
    }

    /// The whole job to `action` (see [`View::load`]).
    pub async fn job(&self, id: JobId, action: &'static str) -> Result<Arc<Job>> {
        self.view.load(&self.shared.store, id, action).await
    }

    /// Job `id`, once its run (if any) has stopped with a final checkpoint; checked first as
    /// [`Board::get`](super::view::Board::get) checks, with `check` on the whole job.
    pub(super) async fn stopped(
        &mut self,
        id: JobId,
        action: &'static str,
        check: impl FnOnce(&Job) -> Result<()>,
    ) -> Result<Arc<Job>> {
        let job = self.job(id, action).await?;
        check(&job)?;
        if !self.running.contains_key(&id) {
            return Ok(job);
        }
        self.stop_worker(id).await;
        self.job(id, action).await
    }

    pub fn take_seq(&mut self) -> i64 {
        self.next_seq += 1;
        self.next_seq
    }

    async fn create(&mut self, job: Job) -> Result<()> {
        self.shared.store.insert_job(&job).await?;
        tracing::info!(job_id = %job.id, name = job.display_name, job_type = %job.job_type, "job created");
        self.show(job);
        Ok(())
    }

    async fn add_files(&mut self, id: JobId, new: Vec<NewFile>) -> Result<()> {
        let job = self.job(id, "add files to").await?;
        check_additions(&job, &new)?;
        let first = job.files.len();
        let indices = (first..first + new.len()).collect();
        self.change(&job, Some(indices), |job| {
            for (i, f) in new.into_iter().enumerate() {
                job.files.push(JobFile::new(id, first + i, f));
            }
            job.modified_at = Timestamp::now();
            Ok(())
        })
        .await
    }

    async fn resume(&mut self, id: JobId) -> Result<ResumeOutcome> {
        let job = self.job(id, "resume").await?;
        let seq = self.take_seq();
        self.change(&job, None, |job| job.resume(Timestamp::now(), seq))
            .await
    }

    async fn suspend(&mut self, id: JobId) -> Result<()> {
        let job = self.stopped(id, "suspend", |_| Ok(())).await?;
        self.change(&job, None, |job| job.suspend(Timestamp::now()))
            .await?;
        Ok(())
    }

    async fn cancel(&mut self, id: JobId) -> Result<()> {
        let job = self.stopped(id, "cancel", |_| Ok(())).await?;
        self.cancel_job(&job).await
    }

    async fn set_property(&mut self, id: JobId, change: PropertyChange) -> Result<()> {
        let job = self.job(id, "change properties of").await?;
        self.change(&job, None, |job| job.apply(change, Timestamp::now()))
            .await?;
        if let Some(run) = self.running.get(&id)
            && let Ok(job) = self.job(id, "change").await
        {
            run.rate
                .update(job.properties.priority, job.properties.max_rate);
        }
        Ok(())
    }

    async fn repair(&mut self, id: JobId, f: Repair) -> Result<usize> {
        let job = self.job(id, "repair").await?;
        let all = (0..job.files.len()).collect();
        self.change(&job, Some(all), |job| f(job, Timestamp::now()))
            .await
    }

    /// Stop a job's worker and wait for its final checkpoint.
    pub async fn stop_worker(&mut self, id: JobId) {
        let Some(mut running) = self.running.remove(&id) else {
            return;
        };
        running.stop.cancel();
        self.end_run(id, &mut running).await;
    }

    /// Wait for a run's worker to end, and take the run's time into the job; `None` if the
    /// worker ended abnormally. The job's files are already as its checkpoints committed them.
    pub async fn end_run(&mut self, id: JobId, running: &mut Running) -> Option<Outcome> {
        let outcome = self.join(&mut running.handle).await;
        self.absorb(id, running);
        outcome
            .inspect_err(|e| tracing::error!(job_id = %id, error = %e, "worker ended abnormally"))
            .ok()
    }

    /// Wait for a worker to end. Its last checkpoints come through the queue task, so they
    /// (every run's, in order) are committed meanwhile; its other reports wait their turn.
    async fn join(
        &mut self,
        handle: &mut JoinHandle<Outcome>,
    ) -> std::result::Result<Outcome, tokio::task::JoinError> {
        loop {
            tokio::select! {
                outcome = &mut *handle => return outcome,
                Some(msg) = self.worker_rx.recv() => match msg {
                    WorkerMsg::Checkpoint { progress, reply } => self.record(progress, reply),
                    WorkerMsg::Recorded { result, replies } => self.recorded(result, replies),
                    other => self.deferred.push_back(other),
                },
            }
        }
    }

    /// Commit a checkpoint's progress, whose bytes are durable already: now, or with the
    /// next group if a commit is under way (see [`Checkpoints`]). The queue task goes on
    /// meanwhile and shows the progress when the store answers (`recorded`).
    pub fn record(&mut self, progress: FileProgress, reply: Reply<()>) {
        if let Err(e) = self.view.read().get(progress.job_id, "record progress of") {
            let _ = reply.send(Err(e));
            return;
        }
        self.checkpoints.waiting.push((progress, reply));
        if !self.checkpoints.committing {
            self.commit_checkpoints();
        }
    }

    /// Queue the waiting checkpoints on the store as one transaction, in order with every
    /// other write.
    fn commit_checkpoints(&mut self) {
        let (progress, replies): (Vec<_>, Vec<_>) = std::mem::take(&mut self.checkpoints.waiting)
            .into_iter()
            .unzip();
        self.checkpoints.committing = !progress.is_empty();
        if progress.is_empty() {
            return;
        }
        let commit = self.shared.store.commit_progress(progress);
        let back = self.worker_tx.clone();
        tokio::spawn(async move {
            let result = commit.await;
            let _ = back.send(WorkerMsg::Recorded { result, replies });
        });
    }

    /// A group's commit ended: if it was committed, show it (the files it names take the
    /// committed state, and those it finished are announced); then answer the workers, and
    /// commit the checkpoints that came meanwhile.
    pub fn recorded(&mut self, result: Result<Vec<FileProgress>>, replies: Vec<Reply<()>>) {
        match result {
            Ok(committed) => {
                for (progress, reply) in committed.into_iter().zip(replies) {
                    self.show_progress(progress);
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot commit checkpoints");
                for reply in replies {
                    let _ = reply.send(Err(self.store_failure(&e)));
                }
            }
        }
        self.commit_checkpoints();
    }

    fn show_progress(&self, progress: FileProgress) {
        let id = progress.job_id;
        let mut done = Vec::new();
        let mut board = self.view.write();
        if let Some(entry) = board.jobs.get_mut(&id)
            && let Some(job) = entry.full.as_mut()
        {
            let job = Arc::make_mut(job);
            for (i, file) in progress.files {
                if job.job_type == JobType::UploadReply && i == Job::REPLY_INDEX {
                    job.reply = Some(file);
                } else if let Some(slot) = job.files.get_mut(i) {
                    if file.completed && !slot.completed {
                        done.push(i);
                    }
                    *slot = file;
                }
            }
            job.modified_at = job.modified_at.max(progress.modified_at);
            entry.summary = Summary::of(job);
        }
        drop(board);
        self.shared.emit_files_done(id, &done);
    }

    /// Take a finished run's time into the job, and show the job without the run's live
    /// progress.
    pub fn absorb(&self, id: JobId, running: &Running) {
        let mut board = self.view.write();
        board.live.remove(&id);
        let Some(entry) = board.jobs.get_mut(&id) else {
            return;
        };
        let ran = u64::try_from(running.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let summary = &mut entry.summary;
        summary.active_ms = summary.active_ms.saturating_add(ran);
        if running.live.moved() > 0 {
            summary.no_progress_since = None;
        }
        if let Some(job) = entry.full.as_mut() {
            entry.summary.bookkeep(Arc::make_mut(job));
        }
    }

    pub async fn cancel_job(&mut self, job: &Job) -> Result<()> {
        let (files, job_type, reply) = (job.files.clone(), job.job_type, job.reply.clone());
        let undeleted =
            blocking(move || Ok(files::cancel(job_type, &files, reply.as_ref()))).await?;
        self.change(job, None, |job| job.cancel(Timestamp::now()))
            .await?;
        tracing::info!(job_id = %job.id, undeleted, "job cancelled");
        if job.job_type != JobType::Download
            && let Some(file) = job.files.first().cloned()
        {
            // The server's session ends too; nothing waits for it.
            let clients = self.shared.clients.clone();
            let (properties, credentials) = (job.properties.clone(), job.credentials.clone());
            tokio::spawn(async move {
                crate::transfer::cancel_session(&clients, &properties, &credentials, &file).await;
            });
        }
        Ok(())
    }

    /// Change a job through `f`, persist the result (the job row, and the files at `files`),
    /// and only then show it to readers, so that they never run ahead of the store. Announces
    /// the change if `f` changed anything.
    async fn change<R>(
        &mut self,
        job: &Job,
        files: Option<Vec<usize>>,
        f: impl FnOnce(&mut Job) -> Result<R>,
    ) -> Result<R> {
        let mut updated = job.clone();
        let result = f(&mut updated)?;
        if updated == *job {
            return Ok(result);
        }
        match files {
            None => self.shared.store.update_job(&updated).await?,
            Some(indices) => {
                self.shared
                    .store
                    .update_job_and_files(&updated, indices)
                    .await?;
            }
        }
        self.show(updated);
        Ok(result)
    }

    /// Show a committed job to readers (its whole record stays in memory while it runs, and
    /// for a while after a change; a final one leaves memory), and announce it.
    pub fn show(&self, job: Job) -> Arc<Job> {
        let pinned = job.state().is_running() || self.running.contains_key(&job.id);
        self.show_as(job, pinned)
    }

    /// Show a job whose write failed: memory keeps its whole record, the store's being behind.
    pub fn show_unstored(&self, job: Job) -> Arc<Job> {
        self.show_as(job, true)
    }

    fn show_as(&self, job: Job, pinned: bool) -> Arc<Job> {
        let (id, state) = (job.id, job.state());
        let job = Arc::new(job);
        self.view.write().put(job.clone(), pinned);
        self.shared.emit(Event::JobModified { job_id: id, state });
        job
    }

    /// At shutdown: every run stops with a final checkpoint, and its job is queued again.
    async fn stop_all(&mut self) {
        // Every run checkpoints at once; then each is waited for.
        for run in self.running.values() {
            run.stop.cancel();
        }
        let running: Vec<JobId> = self.running.keys().copied().collect();
        for id in running {
            self.stop_worker(id).await;
            let Ok(job) = self.job(id, "queue").await else {
                continue;
            };
            let mut job = (*job).clone();
            let seq = job.schedule.queue_seq;
            if job.requeue(Timestamp::now(), seq) {
                if let Err(e) = self.shared.store.update_job(&job).await {
                    tracing::warn!(job_id = %id, error = %e, "cannot record the job as queued");
                }
                self.show(job);
            }
        }
    }
}

pub(super) fn answer<T>(reply: Reply<T>, result: Result<T>) {
    // A caller that stopped waiting does not need the answer.
    let _ = reply.send(result);
}
