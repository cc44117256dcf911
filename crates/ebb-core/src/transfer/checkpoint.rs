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

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
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
pub(crate) type Record = std::sync::Arc<
    dyn Fn(FileProgress) -> oneshot::Receiver<crate::error::Result<()>> + Send + Sync,
>;

/// One job run's checkpoint state.
pub(crate) struct Checkpointer {
    record: Record,
    job_id: JobId,
    policy: CheckpointPolicy,
    since_bytes: u64,
    since: Instant,
    /// Finished files whose bytes are not yet known to be durable (as they will be recorded:
    /// completed), with the identity of their temporary file.
    pending: Vec<(usize, JobFile, Identity)>,
    in_flight: Option<InFlight>,
    dirs_synced: HashSet<PathBuf>,
    /// Per file system, a descriptor of the earliest finished file not yet made durable: a
    /// `syncfs` through it reports any write-back error since that file was opened (one through
    /// a descriptor opened later would not).
    anchors: HashMap<u64, File>,
    /// A checkpoint failed: nothing more is recorded in this run. A second fsync of a file
    /// whose write-back failed reports success on Linux, so trying again would claim bytes that
    /// may be lost.
    failed: Option<Failure>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointer")
            .field("job_id", &self.job_id)
            .field("pending", &self.pending.len())
            .field("failed", &self.failed.is_some())
            .finish_non_exhaustive()
    }
}

/// The file being written, as a checkpoint sees it.
pub(crate) type Current<'a> = Option<(&'a TempFile, usize, &'a JobFile)>;

impl Checkpointer {
    pub(crate) fn new(record: Record, job_id: JobId, policy: CheckpointPolicy) -> Self {
        Self {
            record,
            job_id,
            policy,
            since_bytes: 0,
            since: Instant::now(),
            pending: Vec::new(),
            in_flight: None,
            dirs_synced: HashSet::new(),
            anchors: HashMap::new(),
            failed: None,
        }
    }

    pub(crate) fn add(&mut self, n: u64) {
        self.since_bytes += n;
    }

    /// A file's last byte is written. It counts as completed once a checkpoint has made it
    /// durable and recorded it, never before. `writer` is a
    /// descriptor of the file as it was written, when `wants_anchor` asked for one.
    pub(crate) fn file_done(
        &mut self,
        index: usize,
        mut file: JobFile,
        identity: Identity,
        writer: Option<File>,
    ) {
        file.completed = true;
        if let Some(writer) = writer {
            self.anchors.entry(identity.device()).or_insert(writer);
        }
        self.pending.push((index, file, identity));
    }

    /// Whether a finished file on this file system should hand over a descriptor (the first
    /// of a batch does; the others need not cost one).
    pub(crate) fn wants_anchor(&self, identity: Identity) -> bool {
        !self.anchors.contains_key(&identity.device())
    }

    pub(crate) fn due(&self) -> bool {
        (self.since_bytes > 0 || !self.pending.is_empty())
            && (self.since_bytes >= self.policy.bytes
                || self.since.elapsed() >= self.policy.interval)
    }

    /// Between chunks: collect a finished background checkpoint, and start one if it is due.
    pub(crate) async fn tick(&mut self, current: Current<'_>) -> Result<(), Failure> {
        let due = self.due();
        self.tick_if(due, current).await
    }

    /// `tick`, with `due` decided by the caller (who saved the hash state for it).
    pub(crate) async fn tick_if(&mut self, due: bool, current: Current<'_>) -> Result<(), Failure> {
        if self.in_flight.as_ref().is_some_and(JoinHandle::is_finished) {
            self.collect().await?;
        }
        if self.in_flight.is_none() && due {
            self.in_flight = Some(self.start(current)?);
        }
        Ok(())
    }

    /// Make everything written so far durable and recorded, and wait for it.
    pub(crate) async fn flush(&mut self, current: Current<'_>) -> Result<(), Failure> {
        self.collect().await?;
        if self.since_bytes > 0 || !self.pending.is_empty() || current.is_some() {
            self.in_flight = Some(self.start(current)?);
            self.collect().await?;
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
        self.collect().await?;
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

    async fn collect(&mut self) -> Result<(), Failure> {
        if let Some(handle) = self.in_flight.take() {
            let result = match handle.await {
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

    fn start(&mut self, current: Current<'_>) -> Result<InFlight, Failure> {
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
        let anchors: Vec<File> = self.anchors.drain().map(|(_, f)| f).collect();
        let pending = std::mem::take(&mut self.pending);
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
        self.since_bytes = 0;
        self.since = Instant::now();
        let record = self.record.clone();
        let progress = FileProgress {
            job_id: self.job_id,
            modified_at: Timestamp::now(),
            files,
        };
        Ok(tokio::spawn(async move {
            tokio::task::spawn_blocking(move || make_durable(handle, &finished, anchors, &dirs))
                .await
                .map_err(|e| internal(&e.to_string()))??;
            record(progress)
                .await
                .unwrap_or(Err(crate::error::Error::ShutDown))
                .map_err(|e| internal(&e.to_string()))
        }))
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
    anchors: Vec<File>,
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
fn sync_finished(paths: &[PathBuf], anchors: Vec<File>) -> Result<(), Failure> {
    use std::os::fd::AsRawFd;
    // One syncfs per file system instead of one fsync per small file, through the descriptor
    // of the earliest finished file on it (see `Checkpointer::anchors`).
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
fn sync_finished(paths: &[PathBuf], anchors: Vec<File>) -> Result<(), Failure> {
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
