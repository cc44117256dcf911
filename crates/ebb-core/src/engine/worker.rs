//! A job's worker: fetches its files in order until done, stopped, or failed.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::bandwidth::Throttle;
use crate::error::Result;
use crate::model::{Credentials, JobFile, JobId, JobProperties, JobType};
use crate::store::FileProgress;
use crate::transfer::{
    self, CheckpointPolicy, Checkpointer, Failure, Fetched, FileCx, HttpClients, Live, ReplySlot,
};

/// Messages to the queue task about runs: from workers, and (`Recorded`) from itself.
#[derive(Debug)]
pub(crate) enum WorkerMsg {
    Connected {
        job: JobId,
        run: u64,
    },
    /// A checkpoint made this progress durable on disk: commit it to the store and show it,
    /// then answer.
    Checkpoint {
        progress: FileProgress,
        reply: oneshot::Sender<Result<()>>,
    },
    /// The store answered a group of checkpoints' commit (sent by the queue task to itself).
    Recorded {
        result: Result<Vec<FileProgress>>,
        replies: Vec<oneshot::Sender<Result<()>>>,
    },
    Exited {
        job: JobId,
        run: u64,
    },
}

/// How a run ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Every file the worker was given is transferred and durable.
    Transferred,
    /// Stopped on request (suspend, preemption, cancel, shutdown); progress is checkpointed.
    Stopped,
    Failed(Failure),
}

/// Everything a worker owns. Its files are its working copy: what they become reaches the
/// store and the queue's view only through its checkpoints, and readers through `live`.
#[derive(Debug)]
pub(crate) struct Worker {
    pub job_id: JobId,
    pub job_type: JobType,
    pub run: u64,
    pub files: Vec<JobFile>,
    /// Upload-reply: the job's reply, to be fetched once the upload is done.
    pub reply: Option<ReplySlot>,
    pub properties: JobProperties,
    pub credentials: Credentials,
    pub clients: Arc<HttpClients>,
    pub checkpoint: CheckpointPolicy,
    pub live: Arc<Live>,
    pub throttle: Throttle,
    pub stop: CancellationToken,
    pub tx: mpsc::UnboundedSender<WorkerMsg>,
}

impl Worker {
    pub(crate) async fn run(mut self) -> Outcome {
        let span = tracing::info_span!("job", job_id = %self.job_id, run = self.run);
        let exit = self.run_files().instrument(span).await;
        let _ = self.tx.send(WorkerMsg::Exited {
            job: self.job_id,
            run: self.run,
        });
        exit
    }

    async fn run_files(&mut self) -> Outcome {
        let (job, run, tx) = (self.job_id, self.run, self.tx.clone());
        let record_tx = tx.clone();
        let record = move |progress| {
            let (reply, answer) = oneshot::channel();
            // A queue task that is gone drops `reply`: the checkpoint fails.
            let _ = record_tx.send(WorkerMsg::Checkpoint { progress, reply });
            answer
        };
        let mut ckpt = Checkpointer::new(Arc::new(record), job, self.checkpoint);
        if self.job_type == JobType::Download {
            ckpt = ckpt.in_order(self.files.iter().map(|f| f.completed).collect());
        }
        let told = std::sync::atomic::AtomicBool::new(false);
        // Once per run: later files of the job are not news.
        let connected = move || {
            if !told.swap(true, std::sync::atomic::Ordering::Relaxed) {
                let _ = tx.send(WorkerMsg::Connected { job, run });
            }
        };
        let mut outcome = if self.job_type == JobType::Download {
            self.download(&ckpt, &connected).await
        } else {
            self.upload(&ckpt, &connected).await
        };
        // Whatever finished must be durable before the job is reported Transferred; a file
        // whose last checkpoint failed stays unfinished, and the job fails with that error.
        // (Bytes past the last good checkpoint may be lost, and a failed fsync is not retried:
        // the next run starts each unfinished file from what the store has.)
        if let Err(failure) = ckpt.flush(None).await
            && matches!(outcome, Outcome::Transferred)
        {
            tracing::info!(code = %failure.error.code, error = %failure.error.description, "last checkpoint failed");
            outcome = Outcome::Failed(failure);
        }
        outcome
    }

    /// A download's files, up to [`FILE_LANES`] at a time and never more than [`LANE_WINDOW`]
    /// files past the first unfinished one. A failure stops the files after the one that
    /// failed (each keeps its progress) and lets those before it finish, as if the files had
    /// gone one at a time; the first failing file's error is the run's outcome.
    async fn download(&mut self, ckpt: &Checkpointer, connected: &Connected<'_>) -> Outcome {
        let Self {
            files,
            properties,
            credentials,
            clients,
            live,
            throttle,
            stop,
            job_id,
            ..
        } = self;
        let mut lanes = Lanes::new(files);
        let mut running = FuturesUnordered::new();
        loop {
            while running.len() < FILE_LANES
                && let Some(index) = lanes.start_next(stop)
            {
                let cx = LaneCx {
                    properties,
                    credentials,
                    live,
                    clients,
                    throttle,
                    connected,
                };
                let token = lanes.token(index);
                running.push(fetch_one(
                    cx,
                    index,
                    token,
                    files[index].clone(),
                    ckpt,
                    *job_id,
                ));
            }
            let Some((index, file, result)) = running.next().await else {
                break;
            };
            files[index] = file;
            lanes.settle(index, result);
        }
        lanes.outcome
    }

    /// An upload's file (upload jobs have one), and an upload-reply's reply after it.
    async fn upload(&mut self, ckpt: &Checkpointer, connected: &Connected<'_>) -> Outcome {
        for index in 0..self.files.len() {
            if self.files[index].completed {
                continue;
            }
            let cx = FileCx {
                index,
                properties: &self.properties,
                credentials: &self.credentials,
                live: &self.live,
                stop: &self.stop,
                clients: &self.clients,
                throttle: &self.throttle,
                connected,
            };
            let span = tracing::info_span!("file", job_id = %self.job_id, file_index = index);
            let file = &mut self.files[index];
            let result = transfer::upload(&cx, file, ckpt, self.reply.as_mut())
                .instrument(span)
                .await;
            match result {
                Ok(Fetched::Completed) => {}
                Ok(Fetched::Stopped) => return Outcome::Stopped,
                Err(failure) => {
                    tracing::info!(code = %failure.error.code, error = %failure.error.description, "file failed");
                    return Outcome::Failed(failure);
                }
            }
        }
        Outcome::Transferred
    }
}

/// Tells the queue, once per run, that the job connected.
type Connected<'a> = dyn Fn() + Send + Sync + 'a;

/// How many files of one download are fetched at once: enough that one file's round trips
/// overlap another's, few enough to stay a small pool of connections to a server.
const FILE_LANES: usize = 4;

/// How far past the first unfinished file the lanes may run. A finished file counts only once
/// the files ahead of it have (see `Checkpointer::in_order`), so this bounds what a crash may
/// cost again.
const LANE_WINDOW: usize = 64;

/// What every lane shares: the job's settings and the run's counters.
struct LaneCx<'a> {
    properties: &'a JobProperties,
    credentials: &'a Credentials,
    live: &'a Live,
    clients: &'a HttpClients,
    throttle: &'a Throttle,
    connected: &'a Connected<'a>,
}

/// Which files of a download run are started, finished or stopped, and how the run ends.
struct Lanes {
    finished: Vec<bool>,
    /// The first unfinished file, and the next one to start.
    first: usize,
    next: usize,
    /// The stop of each running file: the run's, or that of a failure before it.
    stops: BTreeMap<usize, CancellationToken>,
    /// The lowest failing file, once one failed.
    failed_at: Option<usize>,
    outcome: Outcome,
}

impl Lanes {
    fn new(files: &[JobFile]) -> Self {
        Self {
            finished: files.iter().map(|f| f.completed).collect(),
            first: 0,
            next: 0,
            stops: BTreeMap::new(),
            failed_at: None,
            outcome: Outcome::Transferred,
        }
    }

    /// The next file to start, if the run is still going and the window allows.
    fn start_next(&mut self, stop: &CancellationToken) -> Option<usize> {
        if !matches!(self.outcome, Outcome::Transferred) {
            return None;
        }
        while self.finished.get(self.next).copied().unwrap_or(false) {
            self.next += 1;
        }
        if self.next >= self.finished.len() || self.next >= self.first + LANE_WINDOW {
            return None;
        }
        let index = self.next;
        self.next += 1;
        self.stops.insert(index, stop.child_token());
        Some(index)
    }

    fn token(&self, index: usize) -> CancellationToken {
        self.stops.get(&index).cloned().unwrap_or_default()
    }

    fn settle(&mut self, index: usize, result: Result<Fetched, Failure>) {
        self.stops.remove(&index);
        match result {
            Ok(Fetched::Completed) => {
                self.finished[index] = true;
                while self.finished.get(self.first).copied().unwrap_or(false) {
                    self.first += 1;
                }
            }
            Ok(Fetched::Stopped) => {
                if matches!(self.outcome, Outcome::Transferred) {
                    self.outcome = Outcome::Stopped;
                }
            }
            Err(failure) => {
                if self.failed_at.is_some_and(|at| at < index) {
                    return;
                }
                tracing::info!(code = %failure.error.code, error = %failure.error.description, "file failed");
                self.failed_at = Some(index);
                self.outcome = Outcome::Failed(failure);
                for (_, stop) in self.stops.range(index + 1..) {
                    stop.cancel();
                }
            }
        }
    }
}

/// One file of a download, in its own span; hands the file back with the result.
async fn fetch_one(
    lane: LaneCx<'_>,
    index: usize,
    stop: CancellationToken,
    mut file: JobFile,
    ckpt: &Checkpointer,
    job_id: JobId,
) -> (usize, JobFile, Result<Fetched, Failure>) {
    let cx = FileCx {
        index,
        properties: lane.properties,
        credentials: lane.credentials,
        live: lane.live,
        stop: &stop,
        clients: lane.clients,
        throttle: lane.throttle,
        connected: lane.connected,
    };
    let span = tracing::info_span!("file", job_id = %job_id, file_index = index);
    let result = transfer::fetch(&cx, &mut file, ckpt).instrument(span).await;
    (index, file, result)
}
