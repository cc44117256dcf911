//! The engine: the public handle on a data directory's queue.

mod files;
mod schedule;
mod worker;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Notify, broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bandwidth::{Bandwidth, BandwidthChange, BandwidthStatus, JobRate};
use crate::config::EngineConfig;
use crate::error::{Error, ErrorCode, Result};
use crate::events::Event;
use crate::lock::DirLock;
use crate::model::{
    Job, JobId, JobInfo, JobState, JobType, NewFile, Owner, PropertyChange, ResumeOutcome,
    Timestamp,
};
use crate::store::Store;
use crate::transfer::{HttpClients, Live};
use worker::{WorkerExit, WorkerMsg};

/// The result of `complete`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Completion {
    /// `S_OK`, `BG_S_PARTIAL_COMPLETE` or `BG_S_UNABLE_TO_DELETE_FILES`, as BITS returns.
    pub code: ErrorCode,
    pub files_kept: usize,
    pub files_dropped: usize,
}

/// A handle on the engine. Clones share one engine; it stops when [`Engine::shutdown`] is
/// called or the last handle is dropped.
#[derive(Clone, Debug)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: EngineConfig,
    store: Store,
    state: Mutex<State>,
    events: broadcast::Sender<Event>,
    wake: Arc<Notify>,
    clients: Arc<HttpClients>,
    bandwidth: Arc<Bandwidth>,
    worker_tx: mpsc::UnboundedSender<WorkerMsg>,
    shutdown: CancellationToken,
    loop_task: std::sync::Mutex<Option<JoinHandle<()>>>,
    _lock: DirLock,
}

#[derive(Debug, Default)]
struct State {
    /// Jobs not yet final, with their files.
    jobs: HashMap<JobId, Job>,
    /// Acknowledged and Cancelled jobs: state and name only; the store has the rest.
    finals: HashMap<JobId, (JobState, String)>,
    running: HashMap<JobId, Running>,
    next_seq: i64,
    next_run: u64,
}

#[derive(Debug)]
struct Running {
    run: u64,
    stop: CancellationToken,
    handle: JoinHandle<WorkerExit>,
    live: Arc<Live>,
    rate: Arc<JobRate>,
    started: Instant,
    slice_start: Instant,
    /// Files whose FileTransferred event was sent while the run went on.
    announced: HashSet<usize>,
}

/// Of the files a run made durable, those whose event was not sent yet.
fn unannounced(announced: &HashSet<usize>, durable: &[usize]) -> Vec<usize> {
    durable
        .iter()
        .copied()
        .filter(|i| !announced.contains(i))
        .collect()
}

impl State {
    /// The job to `action`; a final job answers `BG_E_INVALID_STATE`, an unknown one
    /// `BG_E_NOT_FOUND`.
    fn get_mut(&mut self, id: JobId, action: &'static str) -> Result<&mut Job> {
        if let Some((state, _)) = self.finals.get(&id) {
            return Err(Error::InvalidState {
                job: id,
                state: *state,
                action,
            });
        }
        self.jobs
            .get_mut(&id)
            .ok_or_else(|| Error::NotFound(id.to_string()))
    }

    /// A job that reached a final state leaves memory.
    fn retire(&mut self, id: JobId) {
        if let Some(job) = self.jobs.remove(&id) {
            self.finals.insert(id, (job.state(), job.display_name));
        }
    }

    fn take_seq(&mut self) -> i64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// A snapshot with this run's live progress laid over the durable figures.
    fn info(&self, job: &Job) -> JobInfo {
        let mut files = job.files.clone();
        if let Some(r) = self.running.get(&job.id) {
            r.live.apply_to(&mut files);
        }
        job.info_with(files)
    }
}

impl Engine {
    /// Open the queue in `config.data_dir` (creating it), taking the directory's lock. Jobs a
    /// crashed engine left Connecting or Transferring are queued again.
    pub async fn open(config: EngineConfig) -> Result<Self> {
        let lock = DirLock::acquire(&config.data_dir)?;
        let key =
            crate::secret_key::load_or_create(&config.secret_key, config.platform_secret_store)
                .await?;
        let sealer =
            crate::store::Sealer::new(&key, config.forget_sealed_passwords).ok_or_else(|| {
                Error::io(
                    &config.secret_key,
                    std::io::Error::other("not a usable key"),
                )
            })?;
        let (store, (live, finals)) = Store::open(&config.database_path(), sealer).await?;
        crate::private_dir::fix(&config.data_dir)?;
        let now = Timestamp::now();
        let mut state = State::default();
        let mut purge = Vec::new();
        for (id, final_state, name, modified_at) in finals {
            if modified_at.plus(config.final_job_retention) <= now {
                purge.push(id);
            } else {
                state.finals.insert(id, (final_state, name));
            }
        }
        let mut requeued = Vec::new();
        for mut job in live {
            state.next_seq = state.next_seq.max(job.schedule.queue_seq);
            let seq = job.schedule.queue_seq;
            if job.requeue(now, seq) {
                requeued.push(job.clone());
            }
            state.jobs.insert(job.id, job);
        }
        for job in &requeued {
            tracing::info!(job_id = %job.id, "job was interrupted; queued again");
            store.update_job(job).await?;
        }
        if !purge.is_empty() {
            store.delete_jobs(purge).await?;
        }
        let (worker_tx, worker_rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(4096);
        let wake = Arc::new(Notify::new());
        let bandwidth = Bandwidth::open(
            config.bandwidth.clone(),
            config.wall_clock.clone(),
            store.clone(),
            wake.clone(),
        )
        .await?;
        let inner = Arc::new(Inner {
            clients: Arc::new(HttpClients::new(config.http.clone())?),
            bandwidth,
            config,
            store,
            state: Mutex::new(state),
            events,
            wake,
            worker_tx,
            shutdown: CancellationToken::new(),
            loop_task: std::sync::Mutex::new(None),
            _lock: lock,
        });
        if inner.config.scheduling {
            tokio::spawn(inner.bandwidth.clone().monitor(inner.shutdown.clone()));
            let task = tokio::spawn(schedule::run_loop(
                Arc::downgrade(&inner),
                worker_rx,
                inner.wake.clone(),
                inner.shutdown.clone(),
                inner.config.live_interval,
            ));
            if let Ok(mut slot) = inner.loop_task.lock() {
                *slot = Some(task);
            }
        }
        Ok(Self { inner })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Hear every job and file event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// `CreateJob`: a new Suspended job with BITS's default properties.
    pub async fn create_job(&self, display_name: &str, job_type: JobType) -> Result<JobId> {
        let job = Job::new(display_name, job_type, Owner::current(), Timestamp::now())?;
        let id = job.id;
        let mut st = self.inner.state.lock().await;
        self.inner.store.insert_job(&job).await?;
        tracing::info!(job_id = %id, name = display_name, %job_type, "job created");
        st.jobs.insert(id, job);
        drop(st);
        self.inner.emit_modified(id, JobState::Suspended);
        Ok(id)
    }

    /// `AddFile` / `AddFileSet` / `AddFileWithRanges`: all files or none.
    pub async fn add_files(&self, id: JobId, new: Vec<NewFile>) -> Result<()> {
        if new.is_empty() {
            return Err(Error::InvalidArgument("no files to add".into()));
        }
        let mut st = self.inner.state.lock().await;
        let job = st.get_mut(id, "add files to")?;
        if job.job_type != JobType::Download && job.files.len() + new.len() > 1 {
            return Err(Error::TooManyFiles);
        }
        if job.job_type != JobType::Download && new.iter().any(|f| !f.ranges.is_empty()) {
            return Err(Error::InvalidArgument(
                "byte ranges are for download jobs only".into(),
            ));
        }
        let mut seen: HashSet<&Path> = job.files.iter().map(|f| f.local_path.as_path()).collect();
        let mut dirs_ok = HashSet::new();
        for f in &new {
            f.validate(&mut dirs_ok)?;
            if !seen.insert(&f.local_path) {
                return Err(Error::InvalidArgument(format!(
                    "local path {} is already a file of this job",
                    f.local_path.display()
                )));
            }
        }
        let first = job.files.len();
        let indices = (first..first + new.len()).collect();
        self.inner
            .change(job, Some(indices), |job| {
                for (i, f) in new.into_iter().enumerate() {
                    job.files.push(crate::model::JobFile::new(id, first + i, f));
                }
                job.modified_at = Timestamp::now();
                Ok(())
            })
            .await
    }

    /// `Resume`: queue the job (a no-op if it is queued or running already).
    pub async fn resume(&self, id: JobId) -> Result<ResumeOutcome> {
        let mut st = self.inner.state.lock().await;
        let seq = st.take_seq();
        let job = st.get_mut(id, "resume")?;
        if job.job_type != JobType::Download {
            return Err(Error::NotSupported(
                "transferring upload and upload-reply jobs",
            ));
        }
        self.inner
            .change(job, None, |job| job.resume(Timestamp::now(), seq))
            .await
    }

    /// `Suspend`: stop transferring; progress so far is kept.
    pub async fn suspend(&self, id: JobId) -> Result<()> {
        let mut st = self.inner.state.lock().await;
        st.get_mut(id, "suspend")?;
        self.inner.stop_worker(&mut st, id).await;
        let job = st.get_mut(id, "suspend")?;
        self.inner
            .change(job, None, |job| job.suspend(Timestamp::now()))
            .await?;
        Ok(())
    }

    /// `Cancel`: stop, delete the temporary files (never a final name), and mark Cancelled.
    pub async fn cancel(&self, id: JobId) -> Result<()> {
        let mut st = self.inner.state.lock().await;
        st.get_mut(id, "cancel")?;
        self.inner.stop_worker(&mut st, id).await;
        let job = st.get_mut(id, "cancel")?;
        self.inner.cancel_job(job).await?;
        st.retire(id);
        Ok(())
    }

    /// `Complete`: rename transferred files into place, delete the rest, mark Acknowledged.
    pub async fn complete(&self, id: JobId) -> Result<Completion> {
        let mut st = self.inner.state.lock().await;
        st.get_mut(id, "complete")?.check_completable()?;
        self.inner.stop_worker(&mut st, id).await;
        let job = st.get_mut(id, "complete")?;
        let tally = files::complete(&job.files)?;
        self.inner
            .change(job, None, |job| job.acknowledge(Timestamp::now()))
            .await?;
        st.retire(id);
        let code = if tally.dropped > 0 {
            ErrorCode::BG_S_PARTIAL_COMPLETE
        } else if tally.undeleted > 0 {
            ErrorCode::BG_S_UNABLE_TO_DELETE_FILES
        } else {
            ErrorCode::S_OK
        };
        tracing::info!(job_id = %id, kept = tally.kept, dropped = tally.dropped, "job completed");
        Ok(Completion {
            code,
            files_kept: tally.kept,
            files_dropped: tally.dropped,
        })
    }

    /// Any `Set*` call.
    pub async fn set_property(&self, id: JobId, change: PropertyChange) -> Result<()> {
        let mut st = self.inner.state.lock().await;
        let job = st.get_mut(id, "change properties of")?;
        self.inner
            .change(job, None, |job| job.apply(change, Timestamp::now()))
            .await?;
        if let (Some(job), Some(run)) = (st.jobs.get(&id), st.running.get(&id)) {
            run.rate
                .update(job.properties.priority, job.properties.max_rate);
        }
        drop(st);
        // A priority change may make the job blocked (or free) under policy.
        self.inner.wake.notify_one();
        Ok(())
    }

    /// What limits background transfers now, and why (`ebb bandwidth show`).
    pub fn bandwidth(&self) -> BandwidthStatus {
        self.inner.bandwidth.status()
    }

    /// Change caps or idle estimation at run time (`ebb bandwidth set`); persisted until reset.
    pub async fn set_bandwidth(&self, change: BandwidthChange) -> Result<BandwidthStatus> {
        let status = self.inner.bandwidth.change(change).await?;
        self.inner.wake.notify_one();
        Ok(status)
    }

    /// `ReplaceRemotePrefix`; returns how many files changed.
    pub async fn replace_remote_prefix(&self, id: JobId, old: &str, new: &str) -> Result<usize> {
        self.repair(id, |job, now| job.replace_remote_prefix(old, new, now))
            .await
    }

    /// `SetRemoteName` of one file.
    pub async fn set_remote_name(&self, id: JobId, file_index: usize, url: &str) -> Result<()> {
        self.repair(id, |job, now| job.set_remote_name(file_index, url, now))
            .await
    }

    async fn repair<R>(
        &self,
        id: JobId,
        f: impl FnOnce(&mut Job, Timestamp) -> Result<R>,
    ) -> Result<R> {
        let mut st = self.inner.state.lock().await;
        let job = st.get_mut(id, "repair")?;
        let all = (0..job.files.len()).collect();
        self.inner
            .change(job, Some(all), |job| f(job, Timestamp::now()))
            .await
    }

    /// One job, with live progress (a final job is read from the store).
    pub async fn job(&self, id: JobId) -> Result<JobInfo> {
        let st = self.inner.state.lock().await;
        if let Some(job) = st.jobs.get(&id) {
            return Ok(st.info(job));
        }
        if st.finals.contains_key(&id)
            && let Some(job) = self.inner.store.load_job(id).await?
        {
            return Ok(job.info());
        }
        Err(Error::NotFound(id.to_string()))
    }

    /// Every job not yet Acknowledged or Cancelled (what BITS enumerates), oldest first, with
    /// live progress. [`read_jobs`] lists the final ones too.
    pub async fn jobs(&self) -> Vec<JobInfo> {
        let st = self.inner.state.lock().await;
        let mut all: Vec<JobInfo> = st.jobs.values().map(|j| st.info(j)).collect();
        all.sort_by_key(|j| (j.created_at, j.id));
        all
    }

    /// Find a job by id (`{GUID}` or bare) or by unique display name.
    pub async fn find(&self, id_or_name: &str) -> Result<JobId> {
        let st = self.inner.state.lock().await;
        let infos: Vec<(JobId, String, JobState)> = st
            .jobs
            .values()
            .map(|j| (j.id, j.display_name.clone(), j.state()))
            .chain(st.finals.iter().map(|(id, (s, n))| (*id, n.clone(), *s)))
            .collect();
        resolve(&infos, id_or_name)
    }

    /// Wait until the job leaves the active states (or `timeout` passes); returns its state.
    pub async fn wait(&self, id: JobId, timeout: Option<Duration>) -> Result<JobState> {
        let mut events = self.subscribe();
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let state = self.job(id).await?.state;
            if !state.is_active() {
                return Ok(state);
            }
            let until =
                deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                () = state_changed(&mut events, id) => {}
                () = tokio::time::sleep_until(until) => {
                    if deadline.is_some() {
                        return Ok(state);
                    }
                }
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Stop every transfer with a final checkpoint; running jobs are queued for the next start.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let task = self.inner.loop_task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
        let mut st = self.inner.state.lock().await;
        let running: Vec<JobId> = st.running.keys().copied().collect();
        for id in running {
            self.inner.stop_worker(&mut st, id).await;
            let seq = st.jobs.get(&id).map_or(0, |j| j.schedule.queue_seq);
            if let Some(job) = st.jobs.get_mut(&id)
                && job.requeue(Timestamp::now(), seq)
                && let Err(e) = self.inner.store.update_job(job).await
            {
                tracing::warn!(job_id = %id, error = %e, "cannot record the job as queued");
            }
        }
    }
}

/// Returns once an event says job `id` may have changed state. File events do not count: a job
/// of many files sends one per file, and a waiter need not look at the job for each.
pub async fn state_changed(events: &mut broadcast::Receiver<Event>, id: JobId) {
    loop {
        match events.recv().await {
            Ok(Event::FileTransferred { .. }) => {}
            Ok(ev) if ev.job_id() == id => return,
            Ok(_) => {}
            // Missed events may include ours: look now.
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
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

/// Read every job of a data directory without opening an engine (works while another process
/// runs one); live progress is included when an engine is running.
pub fn read_jobs(data_dir: &Path) -> Result<Vec<JobInfo>> {
    let running = crate::lock::engine_running(data_dir);
    let mut loaded = crate::store::read_jobs(&crate::config::database_path(data_dir), running)?;
    if !running {
        // No engine holds these jobs: one that says Transferring was interrupted, and the next
        // engine to start will queue it again. Say so now.
        for job in &mut loaded {
            let seq = job.schedule.queue_seq;
            job.requeue(job.modified_at, seq);
        }
    }
    let mut jobs: Vec<JobInfo> = loaded.iter().map(Job::info).collect();
    jobs.sort_by_key(|j| (j.created_at, j.id));
    Ok(jobs)
}

impl Inner {
    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// Announce a change, and let the scheduler look again (deadlines may have moved).
    fn emit_modified(&self, job_id: JobId, state: JobState) {
        self.emit(Event::JobModified { job_id, state });
        self.wake.notify_one();
    }

    /// Stop a job's worker, wait for its final checkpoint, and take its files' state back.
    async fn stop_worker(&self, st: &mut State, id: JobId) {
        let Some(mut running) = st.running.remove(&id) else {
            return;
        };
        running.stop.cancel();
        let started = running.started;
        let live = running.live.clone();
        let announced = std::mem::take(&mut running.announced);
        match running.handle.await {
            Ok(exit) => {
                if let Some(job) = st.jobs.get_mut(&id) {
                    absorb(job, &exit, started, &live);
                }
                self.emit_files_done(id, &unannounced(&announced, &exit.durable_done));
            }
            Err(e) => tracing::error!(job_id = %id, error = %e, "worker ended abnormally"),
        }
    }

    fn emit_files_done(&self, job_id: JobId, files: &[usize]) {
        for &file_index in files {
            self.emit(Event::FileTransferred { job_id, file_index });
        }
    }

    async fn cancel_job(&self, job: &mut Job) -> Result<()> {
        let undeleted = files::cancel(&job.files);
        self.change(job, None, |job| job.cancel(Timestamp::now()))
            .await?;
        tracing::info!(job_id = %job.id, undeleted, "job cancelled");
        Ok(())
    }

    /// Change a job through `f`, persist the result (the job row, and the files at `files`),
    /// and only then take it into memory, so that memory never runs ahead of the store.
    /// Announces the change if `f` changed anything.
    async fn change<R>(
        &self,
        job: &mut Job,
        files: Option<Vec<usize>>,
        f: impl FnOnce(&mut Job) -> Result<R>,
    ) -> Result<R> {
        let mut updated = job.clone();
        let result = f(&mut updated)?;
        if updated == *job {
            return Ok(result);
        }
        match files {
            None => self.store.update_job(&updated).await?,
            Some(indices) => self.store.update_job_and_files(&updated, indices).await?,
        }
        *job = updated;
        self.emit_modified(job.id, job.state());
        Ok(result)
    }
}

/// Take a finished run's file state and time into the job.
fn absorb(job: &mut Job, exit: &WorkerExit, started: Instant, live: &Live) {
    for (slot, file) in job.files.iter_mut().zip(&exit.files) {
        slot.clone_from(file);
    }
    let ran = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    job.schedule.active_ms = job.schedule.active_ms.saturating_add(ran);
    if live.moved() > 0 {
        job.schedule.no_progress_since = None;
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Ok(st) = self.state.try_lock() {
            for r in st.running.values() {
                r.stop.cancel();
            }
        }
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
