//! A job's worker: fetches its files in order until done, stopped, or failed.

use std::sync::Arc;

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
    /// The store answered a checkpoint's commit (sent by the queue task to itself).
    Recorded {
        result: Result<FileProgress>,
        reply: oneshot::Sender<Result<()>>,
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
        let told = std::sync::atomic::AtomicBool::new(false);
        // Once per run: later files of the job are not news.
        let connected = move || {
            if !told.swap(true, std::sync::atomic::Ordering::Relaxed) {
                let _ = tx.send(WorkerMsg::Connected { job, run });
            }
        };
        let mut outcome = Outcome::Transferred;
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
                connected: &connected,
            };
            let span = tracing::info_span!("file", job_id = %self.job_id, file_index = index);
            let file = &mut self.files[index];
            let result = if self.job_type == JobType::Download {
                transfer::fetch(&cx, file, &mut ckpt).instrument(span).await
            } else {
                transfer::upload(&cx, file, &mut ckpt, self.reply.as_mut())
                    .instrument(span)
                    .await
            };
            match result {
                Ok(Fetched::Completed) => {}
                Ok(Fetched::Stopped) => {
                    outcome = Outcome::Stopped;
                    break;
                }
                Err(failure) => {
                    tracing::info!(code = %failure.error.code, error = %failure.error.description, "file failed");
                    outcome = Outcome::Failed(failure);
                    break;
                }
            }
        }
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
}
