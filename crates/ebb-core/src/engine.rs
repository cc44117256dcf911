//! The engine: the public handle on a data directory's queue. One task owns the queue
//! ([`queue`]); calls that change it are requests to that task, and reads are served from the
//! [`view`] it keeps, so a `list` never waits behind a commit or a worker's final checkpoint.

mod board;
mod completing;
mod files;
mod queue;
mod schedule;
mod summary;
mod view;
mod worker;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backend::JobFilter;
use crate::bandwidth::Bandwidth;
use crate::config::EngineConfig;
use crate::error::{Error, ErrorCode, Result};
use crate::events::Event;
use crate::lock::DirLock;
use crate::model::{BandwidthChange, BandwidthStatus};
use crate::model::{
    Job, JobId, JobInfo, JobState, JobType, NewFile, Owner, PropertyChange, ResumeOutcome,
    Timestamp,
};
use crate::model::{JobPage, PageCursor};
use crate::store::{PageQuery, Selection, Store};
use crate::transfer::HttpClients;
pub(crate) use files::read_reply;
pub(crate) use queue::blocking;
use queue::{Queue, Reply, Request, check_additions};
pub use view::resolve;
use view::{Board, View};

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
    inner: Arc<Handle>,
}

#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
    view: Arc<View>,
    requests: mpsc::UnboundedSender<Request>,
    /// The queue task, until a shutdown has awaited it (later callers wait for that one).
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

/// What the handles, the queue task and the workers share: none of it is the queue's state.
#[derive(Debug)]
struct Shared {
    config: EngineConfig,
    store: Store,
    events: broadcast::Sender<Event>,
    wake: Arc<Notify>,
    clients: Arc<HttpClients>,
    bandwidth: Arc<Bandwidth>,
    shutdown: CancellationToken,
    /// Someone asked the service that runs this engine to stop (`POST /v1/shutdown`).
    stop_requested: CancellationToken,
    /// The data directory's lock: let go once a shutdown has stopped the queue task, so that
    /// the next engine can start while handles to this one still exist.
    lock: std::sync::Mutex<Option<DirLock>>,
}

impl Shared {
    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    fn emit_files_done(&self, job_id: JobId, files: &[usize]) {
        for &file_index in files {
            self.emit(Event::FileTransferred { job_id, file_index });
        }
    }
}

impl Engine {
    /// Open the queue in `config.data_dir` (creating it), taking the directory's lock. Jobs a
    /// crashed engine left Connecting or Transferring are queued again.
    pub async fn open(config: EngineConfig) -> Result<Self> {
        let dir = config.data_dir.clone();
        let lock = blocking(move || DirLock::acquire(&dir)).await?;
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
        let (store, (live, finals)) =
            Store::open(&config.database_path(), sealer, Stored::of).await?;
        let dir = config.data_dir.clone();
        blocking(move || crate::private_dir::fix(&dir)).await?;
        let (board, next_seq) = load(&config, &store, live, finals).await?;
        let wake = Arc::new(Notify::new());
        let bandwidth = Bandwidth::open(
            config.bandwidth.clone(),
            config.wall_clock.clone(),
            store.clone(),
            wake.clone(),
        )
        .await?;
        let shared = Arc::new(Shared {
            clients: Arc::new(HttpClients::new(config.http.clone())?),
            bandwidth,
            config,
            store,
            events: broadcast::channel(4096).0,
            wake,
            shutdown: CancellationToken::new(),
            stop_requested: CancellationToken::new(),
            lock: std::sync::Mutex::new(Some(lock)),
        });
        let view = Arc::new(View::new(board));
        let (worker_tx, worker_rx) = mpsc::unbounded_channel();
        let (requests, requests_rx) = mpsc::unbounded_channel();
        if shared.config.scheduling {
            tokio::spawn(shared.bandwidth.clone().monitor(shared.shutdown.clone()));
        }
        let queue = Queue {
            shared: shared.clone(),
            view: view.clone(),
            running: HashMap::new(),
            next_seq,
            next_run: 0,
            worker_tx,
            worker_rx,
            deferred: std::collections::VecDeque::new(),
            checkpoints: queue::Checkpoints::default(),
            next_request: None,
        };
        let task = tokio::spawn(queue.serve(requests_rx));
        Ok(Self {
            inner: Arc::new(Handle {
                shared,
                view,
                requests,
                task: tokio::sync::Mutex::new(Some(task)),
            }),
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.shared.config
    }

    /// Hear every job and file event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.shared.events.subscribe()
    }

    /// Hand a request to the queue task and wait for its answer.
    async fn ask<T>(&self, request: impl FnOnce(Reply<T>) -> Request) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .requests
            .send(request(tx))
            .map_err(|_| Error::ShutDown)?;
        rx.await.map_err(|_| Error::ShutDown)?
    }

    /// `CreateJob`: a new Suspended job with BITS's default properties.
    pub async fn create_job(&self, display_name: &str, job_type: JobType) -> Result<JobId> {
        let job = Job::new(display_name, job_type, Owner::current(), Timestamp::now())?;
        let id = job.id;
        self.ask(|reply| Request::Create(Box::new(job), reply))
            .await?;
        Ok(id)
    }

    /// `AddFile` / `AddFileSet` / `AddFileWithRanges`: all files or none.
    pub async fn add_files(&self, id: JobId, new: Vec<NewFile>) -> Result<()> {
        if new.is_empty() {
            return Err(Error::InvalidArgument("no files to add".into()));
        }
        // What can be said from the job is said first; the queue checks again.
        let job = self
            .inner
            .view
            .load(&self.inner.shared.store, id, "add files to")
            .await?;
        check_additions(&job, &new)?;
        // Checking the local paths looks at the file system.
        let upload = job.job_type != JobType::Download;
        let new = blocking(move || {
            let mut dirs_ok = HashSet::new();
            for f in &new {
                f.validate(&mut dirs_ok)?;
                if upload {
                    f.validate_source()?;
                }
            }
            Ok(new)
        })
        .await?;
        self.ask(|reply| Request::AddFiles(id, new, reply)).await
    }

    /// `Resume`: queue the job (a no-op if it is queued or running already).
    pub async fn resume(&self, id: JobId) -> Result<ResumeOutcome> {
        self.ask(|reply| Request::Resume(id, reply)).await
    }

    /// `Suspend`: stop transferring; progress so far is kept.
    pub async fn suspend(&self, id: JobId) -> Result<()> {
        self.ask(|reply| Request::Suspend(id, reply)).await
    }

    /// `Cancel`: stop, delete the temporary files (never a final name), and mark Cancelled.
    pub async fn cancel(&self, id: JobId) -> Result<()> {
        self.ask(|reply| Request::Cancel(id, reply)).await
    }

    /// `Complete`: rename transferred files into place, delete the rest, mark Acknowledged.
    pub async fn complete(&self, id: JobId) -> Result<Completion> {
        self.ask(|reply| Request::Complete(id, reply)).await
    }

    /// Any `Set*` call.
    pub async fn set_property(&self, id: JobId, change: PropertyChange) -> Result<()> {
        if let PropertyChange::ReplyFileName(Some(path)) = &change {
            // Like a download's local name: absolute, in a directory that exists.
            let path = path.clone();
            blocking(move || crate::model::validate_local_path(&path)).await?;
        }
        self.ask(|reply| Request::SetProperty(id, change, reply))
            .await
    }

    /// What limits background transfers now, and why (`ebb bandwidth show`).
    pub fn bandwidth(&self) -> BandwidthStatus {
        self.inner.shared.bandwidth.status()
    }

    /// Change caps or idle estimation at run time (`ebb bandwidth set`); persisted until reset.
    pub async fn set_bandwidth(&self, change: BandwidthChange) -> Result<BandwidthStatus> {
        // After a shutdown the data directory may be another engine's: nothing is written.
        if self.inner.shared.shutdown.is_cancelled() {
            return Err(Error::ShutDown);
        }
        let status = self.inner.shared.bandwidth.change(change).await?;
        self.inner.shared.wake.notify_one();
        Ok(status)
    }

    /// `ReplaceRemotePrefix`; returns how many files changed.
    pub async fn replace_remote_prefix(&self, id: JobId, old: &str, new: &str) -> Result<usize> {
        let (old, new) = (old.to_owned(), new.to_owned());
        let f = Box::new(move |job: &mut Job, now| job.replace_remote_prefix(&old, &new, now));
        self.ask(|reply| Request::Repair(id, f, reply)).await
    }

    /// `SetRemoteName` of one file.
    pub async fn set_remote_name(&self, id: JobId, file_index: usize, url: &str) -> Result<()> {
        let url = url.to_owned();
        let f = Box::new(move |job: &mut Job, now| {
            job.set_remote_name(file_index, &url, now).map(|()| 1)
        });
        self.ask(|reply| Request::Repair(id, f, reply)).await?;
        Ok(())
    }

    /// One job, with live progress (a job that is not running, and a final one, is read from
    /// the store).
    pub async fn job(&self, id: JobId) -> Result<JobInfo> {
        let (view, store) = (&self.inner.view, &self.inner.shared.store);
        if let Some(info) = view.info(store, id).await? {
            return Ok(info);
        }
        if view.is_final(id)
            && let Some(job) = store.read_job(id).await?
        {
            return Ok(job.info());
        }
        Err(Error::NotFound(id.to_string()))
    }

    /// Every job not yet Acknowledged or Cancelled (what BITS enumerates), oldest first, with
    /// live progress.
    pub async fn jobs(&self) -> Result<Vec<JobInfo>> {
        self.list(JobFilter {
            final_jobs: false,
            all_users: true,
        })
        .await
    }

    /// Find a job by id (`{GUID}` or bare) or by unique display name (looked up in the store,
    /// by an index).
    pub async fn find(&self, id_or_name: &str) -> Result<JobId> {
        let text = id_or_name.to_owned();
        let named = self
            .inner
            .shared
            .store
            .read(move |c| crate::store::named(c, &text));
        resolve(&named.await?, id_or_name)
    }

    /// Wait until the job leaves the active states (or `timeout` passes); returns its state.
    /// (The one implementation every backend shares, [`Backend::wait`](crate::Backend::wait).)
    pub async fn wait(&self, id: JobId, timeout: Option<Duration>) -> Result<JobState> {
        crate::Backend::wait(self, id, timeout).await
    }

    /// The jobs `filter` asks for, oldest first, with live progress (all of them: a caller
    /// that lists a queue of any size reads it in pages, [`Engine::list_page`]).
    pub async fn list(&self, filter: JobFilter) -> Result<Vec<JobInfo>> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self.list_page(filter, after, LIST_PAGE).await?;
            all.extend(page.jobs);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// At most `limit` of the jobs `filter` asks for, after `after`, oldest first, with live
    /// progress: read from the store as committed (a read waits for no write), a running job
    /// with its run's progress, each with why it waits.
    pub async fn list_page(
        &self,
        filter: JobFilter,
        after: Option<PageCursor>,
        limit: usize,
    ) -> Result<JobPage> {
        let query = page_query(filter, after, limit);
        self.inner.view.page(&self.inner.shared.store, query).await
    }

    /// Ask the service that runs this engine (ebbd) to stop, as SIGTERM would; it then calls
    /// [`Engine::shutdown`]. An engine without such a service ignores the request.
    pub fn request_stop(&self) {
        self.inner.shared.stop_requested.cancel();
    }

    /// Until someone calls [`Engine::request_stop`].
    pub async fn stop_requested(&self) {
        self.inner.shared.stop_requested.cancelled().await;
    }

    /// After [`Engine::shutdown`]: let go of the data directory, so that another engine may
    /// open it while handles to this one still exist (a service does this once nobody can
    /// reach it any more). Before a shutdown it does nothing.
    pub fn release_data_dir(&self) {
        if self.inner.shared.shutdown.is_cancelled() {
            let lock = &self.inner.shared.lock;
            lock.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
        }
    }

    /// Stop every transfer with a final checkpoint; running jobs are queued for the next start.
    pub async fn shutdown(&self) {
        self.inner.shared.shutdown.cancel();
        let mut task = self.inner.task.lock().await;
        if let Some(task) = task.take() {
            let _ = task.await;
        }
    }
}

/// How many jobs [`Engine::list`] reads at a time.
const LIST_PAGE: usize = 500;
/// The most jobs one page holds.
pub const MAX_PAGE: usize = 10_000;

/// What an engine keeps of each live job it loads: its summary, and whether a crashed engine
/// left it running.
struct Stored {
    id: JobId,
    summary: summary::Summary,
    interrupted: bool,
}

impl Stored {
    // `Store::open` hands each row over whole: the job is dropped here, its summary kept.
    #[allow(clippy::needless_pass_by_value)]
    fn of(job: Job) -> Self {
        Self {
            id: job.id,
            summary: summary::Summary::of(&job),
            interrupted: job.state().is_running(),
        }
    }
}

/// The jobs of a freshly opened queue, with the next queue position: jobs a crashed engine
/// left running are queued again, and final jobs past their retention are purged.
async fn load(
    config: &EngineConfig,
    store: &Store,
    live: Vec<Stored>,
    finals: Vec<(JobId, JobState, Timestamp)>,
) -> Result<(Board, i64)> {
    let now = Timestamp::now();
    let mut board = Board::new(config.scheduling, config.max_background_jobs);
    let mut purge = Vec::new();
    for (id, final_state, modified_at) in finals {
        if modified_at.plus(config.final_job_retention) <= now {
            purge.push(id);
        } else {
            board.finals.insert(id, final_state);
        }
    }
    let mut next_seq = 0;
    for stored in live {
        let seq = stored.summary.queue_seq;
        next_seq = seq.max(next_seq);
        let entry = if stored.interrupted
            && let Some(mut job) = store.load_job(stored.id).await?
            && job.requeue(now, seq)
        {
            tracing::info!(job_id = %job.id, "job was interrupted; queued again");
            store.update_job(&job).await?;
            summary::Entry::stored(summary::Summary::of(&job))
        } else {
            summary::Entry::stored(stored.summary)
        };
        board.insert(stored.id, entry);
    }
    if !purge.is_empty() {
        store.delete_jobs(purge).await?;
    }
    Ok((board, next_seq))
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

/// Whether some process runs an engine on `data_dir` right now.
pub fn engine_running(data_dir: &Path) -> bool {
    crate::lock::engine_running(data_dir)
}

/// Read every job of a data directory without opening an engine (works while another process
/// runs one); live progress is included when an engine is running.
pub fn read_jobs(data_dir: &Path) -> Result<Vec<JobInfo>> {
    read_selected(data_dir, Selection::All)
}

/// [`read_jobs`]'s page of at most `limit` jobs after `after`, of those `filter` asks for.
pub fn read_page(
    data_dir: &Path,
    filter: JobFilter,
    after: Option<PageCursor>,
    limit: usize,
) -> Result<JobPage> {
    let query = page_query(filter, after, limit);
    let limit = query.limit;
    // One job more than the page: whether another page follows.
    let mut jobs = read_selected(
        data_dir,
        Selection::Page(PageQuery {
            limit: limit + 1,
            ..query
        }),
    )?;
    let more = jobs.len() > limit;
    jobs.truncate(limit);
    Ok(JobPage::with_more(jobs, more))
}

/// The store's question for the page of at most `limit` (1 to [`MAX_PAGE`]) of the jobs
/// `filter` asks for, after `after`.
fn page_query(filter: JobFilter, after: Option<PageCursor>, limit: usize) -> PageQuery {
    PageQuery {
        final_jobs: filter.final_jobs,
        owner: (!filter.all_users).then(Owner::current_uid),
        after: after.map(|c| (c.created_at, c.id)),
        limit: limit.clamp(1, MAX_PAGE),
    }
}

/// Read job `id` of a data directory, as [`read_jobs`] reads it.
pub(crate) fn read_job(data_dir: &Path, id: JobId) -> Result<Option<JobInfo>> {
    Ok(read_selected(data_dir, Selection::One(id))?.pop())
}

fn read_selected(data_dir: &Path, which: Selection) -> Result<Vec<JobInfo>> {
    let running = crate::lock::engine_running(data_dir);
    let mut loaded =
        crate::store::read_jobs(&crate::config::database_path(data_dir), running, which)?;
    if !running {
        // No engine holds these jobs: one that says Transferring was interrupted, and the next
        // engine to start will queue it again. Say so now.
        for job in &mut loaded {
            let seq = job.schedule.queue_seq;
            job.requeue(job.modified_at, seq);
        }
    }
    let mut jobs: Vec<JobInfo> = loaded.iter().map(Job::info).collect();
    if !running {
        for j in jobs.iter_mut().filter(|j| j.state == JobState::Queued) {
            j.reason = Some(crate::model::WaitReason::NotScheduled);
        }
    }
    Ok(jobs)
}
