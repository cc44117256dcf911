//! Checkpoints: make bytes durable, then record them in the store.
//!
//! Durability must not cost throughput, so a checkpoint runs in the background while the
//! download goes on: one fsync (or one `syncfs` for a batch of small finished files) and one
//! store commit per checkpoint, started when either the byte or the time budget is spent. The
//! progress it commits is the progress as of the moment it started, so it never claims a byte
//! that was written after the sync began.
//!
//! The checkpoint does not write the store itself: it hands its progress to [`Record`], the
//! queue task, which is the one writer of the queue's rows and shows what it committed.
//!
//! A job's files may be fetched several at a time ([`Checkpointer`] is shared by them), but
//! they count as completed in the job's order: a file that finishes before an earlier one is
//! held until that one is done, so that `files_transferred` is always a prefix of the job's
//! files and `FileTransferred` events come in file order, as with one file at a time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, MutexGuard, oneshot};
use tokio::task::JoinHandle;

use super::Failure;
use super::temp_file::{Identity, TempFile};
use crate::error::{ErrorCode, ErrorContext, Status};
use crate::model::{JobFile, JobId, Timestamp};
use crate::store::FileProgress;

/// When to checkpoint: after this many bytes or this much time, whichever comes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointPolicy {
    pub bytes: u64,
    pub interval: Duration,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            bytes: 32 * 1024 * 1024,
            interval: Duration::from_secs(1),
        }
    }
}

type InFlight = JoinHandle<Result<(), Failure>>;

/// Where a checkpoint's progress goes once its bytes are durable: to be committed (and shown)
/// by the one writer of the queue's rows. The answer comes once it is committed.
pub(crate) type Record =
    Arc<dyn Fn(FileProgress) -> oneshot::Receiver<crate::error::Result<()>> + Send + Sync>;

/// One job run's checkpoints, shared by the files it fetches at once: each holds the lock only
/// to count its bytes and start a checkpoint, or to wait for one when it stops.
pub(crate) struct Checkpointer(Mutex<Checkpoints>);

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Checkpointer").finish_non_exhaustive()
    }
}

impl Checkpointer {
    pub(crate) fn new(record: Record, job_id: JobId, policy: CheckpointPolicy) -> Self {
        Self(Mutex::new(Checkpoints::new(record, job_id, policy)))
    }

    /// Finished files count as completed in file order; `completed[i]` says whether file `i`
    /// was completed before this run.
    pub(crate) fn in_order(self, completed: Vec<bool>) -> Self {
        let mut state = self.0.into_inner();
        state.order = Some(InOrder::new(completed));
        Self(Mutex::new(state))
    }

    pub(crate) async fn lock(&self) -> MutexGuard<'_, Checkpoints> {
        self.0.lock().await
    }

    pub(crate) async fn flush(&self, current: Current<'_>) -> Result<(), Failure> {
        self.lock().await.flush(current).await
    }

    pub(crate) async fn record_remote(&self, index: usize, file: &JobFile) -> Result<(), Failure> {
        self.lock().await.record_remote(index, file).await
    }
}

/// Which finished files may count as completed: the first `next` files are done, and `held`
/// are finished files waiting for an earlier one.
#[derive(Debug)]
struct InOrder {
    done: Vec<bool>,
    next: usize,
    held: BTreeMap<usize, (JobFile, Identity)>,
}

impl InOrder {
    fn new(done: Vec<bool>) -> Self {
        let mut order = Self {
            done,
            next: 0,
            held: BTreeMap::new(),
        };
        order.skip_done();
        order
    }

    fn skip_done(&mut self) {
        while self.done.get(self.next).copied().unwrap_or(false) {
            self.next += 1;
        }
    }

    /// File `index` finished: the files that may now count, in order.
    fn finished(
        &mut self,
        index: usize,
        file: JobFile,
        identity: Identity,
    ) -> Vec<(usize, JobFile, Identity)> {
        self.held.insert(index, (file, identity));
        let mut ready = Vec::new();
        while let Some((file, identity)) = self.held.remove(&self.next) {
            ready.push((self.next, file, identity));
            if let Some(d) = self.done.get_mut(self.next) {
                *d = true;
            }
            self.skip_done();
        }
        ready
    }
}

/// One job run's checkpoint state.
pub(crate) struct Checkpoints {
    record: Record,
    job_id: JobId,
    policy: CheckpointPolicy,
    /// Per file being written: bytes since it was last in a checkpoint, and since when. Each
    /// file has its own budget, so that every file written at once is checkpointed, not only
    /// the one that happens to spend the budget.
    writing: HashMap<usize, (u64, Instant)>,
    /// Bytes of the pending files, and when the last checkpoint started.
    pending_bytes: u64,
    since: Instant,
    /// Finished files whose bytes are not yet known to be durable (as they will be recorded:
    /// completed), with the identity of their temporary file.
    pending: Vec<(usize, JobFile, Identity)>,
    /// Checkpoints under way: at most one per file being written (keyed by its index), and one
    /// for finished files alone (`None`). Each runs in the background while the files go on.
    in_flight: Vec<Flight>,
    dirs_synced: HashSet<PathBuf>,
    /// Per file system, a descriptor of the first file this run opened on it: a `syncfs`
    /// through it reports any write-back error since the last one through it (or since that
    /// file was opened), so that no error of a file written since goes unseen. One opened later
    /// than a file's writes would not report that file's errors.
    anchors: HashMap<u64, Arc<File>>,
    /// Completed in file order (downloads), or as they finish (an upload's one file).
    order: Option<InOrder>,
    /// A checkpoint failed: nothing more is recorded in this run. A second fsync of a file
    /// whose write-back failed reports success on Linux, so trying again would claim bytes that
    /// may be lost.
    failed: Option<Failure>,
}

impl std::fmt::Debug for Checkpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoints")
            .field("job_id", &self.job_id)
            .field("pending", &self.pending.len())
            .field("failed", &self.failed.is_some())
            .finish_non_exhaustive()
    }
}

/// A checkpoint under way.
struct Flight {
    /// The file being written it covers (`None`: finished files alone, or a flush).
    key: Option<usize>,
    /// It syncs finished files through the anchors. One at a time does: a `syncfs` reports a
    /// write-back error once per descriptor, so a second one at the same time could miss the
    /// error the first one saw, and record its files as if they were durable.
    syncs_finished: bool,
    handle: InFlight,
}

/// The file being written, as a checkpoint sees it.
pub(crate) type Current<'a> = Option<(&'a TempFile, usize, &'a JobFile)>;

impl Checkpoints {
    fn new(record: Record, job_id: JobId, policy: CheckpointPolicy) -> Self {
        Self {
            record,
            job_id,
            policy,
            writing: HashMap::new(),
            pending_bytes: 0,
            since: Instant::now(),
            pending: Vec::new(),
            in_flight: Vec::new(),
            dirs_synced: HashSet::new(),
            anchors: HashMap::new(),
            order: None,
            failed: None,
        }
    }

    /// File `index` had `n` more bytes written.
    pub(crate) fn add(&mut self, index: usize, n: u64) {
        self.writing.entry(index).or_insert((0, Instant::now())).0 += n;
    }

    /// A file's last byte is written. It counts as completed once a checkpoint has made it
    /// durable and recorded it, never before, and (in file order) not before the files ahead
    /// of it. A checkpoint of its progress still under way is waited for first, so that no
    /// older progress of the file can be recorded after its completion.
    pub(crate) async fn file_done(
        &mut self,
        index: usize,
        mut file: JobFile,
        identity: Identity,
    ) -> Result<(), Failure> {
        self.collect(|key| key == Some(index), true).await?;
        file.completed = true;
        self.pending_bytes += self.writing.remove(&index).map_or(0, |(n, _)| n);
        match &mut self.order {
            Some(order) => self.pending.extend(order.finished(index, file, identity)),
            None => self.pending.push((index, file, identity)),
        }
        Ok(())
    }

    /// A temporary file was opened for writing: the first on its file system becomes the
    /// descriptor that batches of finished files are synced through.
    pub(crate) fn opened(&mut self, temp: &TempFile) -> Result<(), Failure> {
        let device = temp.identity().device();
        if let std::collections::hash_map::Entry::Vacant(slot) = self.anchors.entry(device) {
            slot.insert(Arc::new(temp.sync_handle()?));
        }
        Ok(())
    }

    /// Whether a checkpoint is due: for file `index`, being written, or for the finished files.
    pub(crate) fn due(&self, index: Option<usize>) -> bool {
        let spent = |bytes: u64, since: Instant| {
            bytes > 0 && (bytes >= self.policy.bytes || since.elapsed() >= self.policy.interval)
        };
        let writing = index
            .and_then(|i| self.writing.get(&i))
            .is_some_and(|&(bytes, since)| spent(bytes, since));
        let finished = !self.pending.is_empty() && spent(self.pending_bytes.max(1), self.since);
        writing || finished
    }

    /// After a file finished: collect a finished background checkpoint, and start one if the
    /// finished files are due.
    pub(crate) async fn tick(&mut self) -> Result<(), Failure> {
        let due = self.due(None);
        self.tick_if(due, None).await
    }

    /// `tick`, with `due` decided by the caller (who saved the hash state for it).
    pub(crate) async fn tick_if(&mut self, due: bool, current: Current<'_>) -> Result<(), Failure> {
        self.collect(|_| true, false).await?;
        let key = current.map(|(_, index, _)| index);
        // Finished files alone wait while others are being synced (see `Flight`).
        let busy = self
            .in_flight
            .iter()
            .any(|f| f.key == key || (current.is_none() && f.syncs_finished));
        if due && !busy {
            let flight = self.start(key, current)?;
            self.in_flight.push(flight);
        }
        Ok(())
    }

    /// Make everything written so far durable and recorded, and wait for it.
    pub(crate) async fn flush(&mut self, current: Current<'_>) -> Result<(), Failure> {
        self.collect(|_| true, true).await?;
        if !self.pending.is_empty() || current.is_some() {
            let flight = self.start(None, current)?;
            self.in_flight.push(flight);
            self.collect(|_| true, true).await?;
        }
        Ok(())
    }

    /// Record a file whose bytes are durable elsewhere (an upload's, on the server): no local
    /// sync, the commit only, waited for.
    pub(crate) async fn record_remote(
        &mut self,
        index: usize,
        file: &JobFile,
    ) -> Result<(), Failure> {
        self.collect(|_| true, true).await?;
        if let Some(failure) = &self.failed {
            return Err(failure.clone());
        }
        let progress = FileProgress {
            job_id: self.job_id,
            modified_at: Timestamp::now(),
            files: vec![(index, file.clone())],
        };
        let committed = (self.record)(progress)
            .await
            .unwrap_or(Err(crate::error::Error::ShutDown));
        committed.map_err(|e| {
            let failure = internal(&e.to_string());
            self.failed = Some(failure.clone());
            failure
        })
    }

    /// Collect the checkpoints whose key matches: those that are finished, or (`wait`) all of
    /// them. The first failure is the run's last word on durability.
    async fn collect(
        &mut self,
        key: impl Fn(Option<usize>) -> bool,
        wait: bool,
    ) -> Result<(), Failure> {
        let mut i = 0;
        while i < self.in_flight.len() {
            let flight = &self.in_flight[i];
            if !key(flight.key) || !(wait || flight.handle.is_finished()) {
                i += 1;
                continue;
            }
            let flight = self.in_flight.swap_remove(i);
            let result = match flight.handle.await {
                Ok(r) => r,
                Err(e) => Err(internal(&e.to_string())),
            };
            if let Err(failure) = result {
                self.failed = Some(failure.clone());
                return Err(failure);
            }
        }
        Ok(())
    }

    fn start(&mut self, key: Option<usize>, current: Current<'_>) -> Result<Flight, Failure> {
        if let Some(failure) = &self.failed {
            return Err(failure.clone());
        }
        // The fallible step first: a failure here leaves the pending files pending.
        let writing = match current {
            Some((temp, index, file)) => Some((
                Writing {
                    file: temp.sync_handle()?,
                    path: file.temp_path.clone(),
                    identity: temp.identity(),
                },
                index,
                file.clone(),
            )),
            None => None,
        };
        let anchors: Vec<Arc<File>> = self.anchors.values().cloned().collect();
        // Finished files wait for the next checkpoint while another syncs some (see `Flight`).
        let syncs_finished =
            !self.pending.is_empty() && !self.in_flight.iter().any(|f| f.syncs_finished);
        let pending = if syncs_finished {
            self.pending_bytes = 0;
            std::mem::take(&mut self.pending)
        } else {
            Vec::new()
        };
        let finished: Vec<(PathBuf, Identity)> = pending
            .iter()
            .map(|(_, f, id)| (f.temp_path.clone(), *id))
            .collect();
        let mut files: Vec<(usize, JobFile)> =
            pending.into_iter().map(|(i, f, _)| (i, f)).collect();
        let mut handle = None;
        if let Some((w, index, file)) = writing {
            handle = Some(w);
            files.push((index, file));
        }
        let mut dirs = Vec::new();
        for (_, f) in &files {
            if let Some(dir) = f.temp_path.parent()
                && self.dirs_synced.insert(dir.to_path_buf())
            {
                dirs.push(dir.to_path_buf());
            }
        }
        if let Some((_, index, _)) = current {
            self.writing.insert(index, (0, Instant::now()));
        }
        self.since = Instant::now();
        let record = self.record.clone();
        let progress = FileProgress {
            job_id: self.job_id,
            modified_at: Timestamp::now(),
            files,
        };
        let handle = tokio::spawn(async move {
            tokio::task::spawn_blocking(move || make_durable(handle, &finished, anchors, &dirs))
                .await
                .map_err(|e| internal(&e.to_string()))??;
            record(progress)
                .await
                .unwrap_or(Err(crate::error::Error::ShutDown))
                .map_err(|e| internal(&e.to_string()))
        });
        Ok(Flight {
            key,
            syncs_finished,
            handle,
        })
    }
}

fn internal(detail: &str) -> Failure {
    Failure::new(
        Status::Transient,
        ErrorContext::GeneralQueueManager,
        ErrorCode::E_FAIL,
        format!("(checkpoint: {detail})"),
    )
}

/// The file being written, as a background checkpoint holds it.
struct Writing {
    file: File,
    path: PathBuf,
    identity: Identity,
}

/// fsync the file being written, the finished files (one `syncfs` on Linux) and new directories,
/// and make sure each still sits at its name: bytes synced into a deleted file are not kept.
fn make_durable(
    current: Option<Writing>,
    finished: &[(PathBuf, Identity)],
    anchors: Vec<Arc<File>>,
    dirs: &[PathBuf],
) -> Result<(), Failure> {
    if let Some(w) = current {
        w.file
            .sync_data()
            .map_err(|e| Failure::local_io(&w.path, &e))?;
        w.identity.check(&w.path)?;
    }
    let paths: Vec<PathBuf> = finished.iter().map(|(p, _)| p.clone()).collect();
    sync_finished(&paths, anchors)?;
    for (path, identity) in finished {
        identity.check(path)?;
    }
    for dir in dirs {
        sync_dir(dir)?;
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), Failure> {
    sync_directory(dir).map_err(|e| Failure::local_io(dir, &e))
}

/// Make a directory's entries (creations, renames) durable. On Windows a directory cannot be
/// opened for flushing (it takes backup privileges) and NTFS journals its metadata: nothing to do.
pub(crate) fn sync_directory(dir: &Path) -> std::io::Result<()> {
    if cfg!(windows) {
        return Ok(());
    }
    open_directory(dir).and_then(|d| d.sync_all())
}

/// Open a directory for syncing; never blocks on a FIFO that took a directory's place.
fn open_directory(dir: &Path) -> std::io::Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_DIRECTORY | libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    o.open(dir)
}

#[cfg(target_os = "linux")]
fn sync_finished(paths: &[PathBuf], anchors: Vec<Arc<File>>) -> Result<(), Failure> {
    use std::os::fd::AsRawFd;
    // One syncfs per file system instead of one fsync per small file, through the descriptor
    // of the first file the run opened on it (see `Checkpoints::anchors`).
    let Some(named) = paths.first() else {
        return Ok(());
    };
    for anchor in anchors {
        // SAFETY: `anchor` is an open descriptor for the whole call; syncfs only reads it.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::syncfs(anchor.as_raw_fd()) };
        if rc != 0 {
            return Err(Failure::local_io(named, &std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn sync_finished(paths: &[PathBuf], anchors: Vec<Arc<File>>) -> Result<(), Failure> {
    drop(anchors);
    for path in paths {
        // Opened for writing: Windows flushes only handles that may write.
        super::temp_file::nonblocking(std::fs::OpenOptions::new().write(true))
            .open(path)
            .and_then(|f| f.sync_data())
            .map_err(|e| Failure::local_io(path, &e))?;
    }
    Ok(())
}
