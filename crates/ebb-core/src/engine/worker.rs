//! A job's worker: fetches its files in order until done, stopped, or failed.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::bandwidth::Throttle;
use crate::model::{Credentials, JobFile, JobId, JobProperties};
use crate::store::Store;
use crate::transfer::{
    self, CheckpointPolicy, Checkpointer, Failure, Fetched, FileCx, HttpClients, Live,
};

/// Messages from workers to the engine's scheduler loop.
#[derive(Debug)]
pub(crate) enum WorkerMsg {
    Connected {
        job: JobId,
        run: u64,
    },
    FilesDurable {
        job: JobId,
        run: u64,
        files: Vec<usize>,
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

/// What a finished worker hands back: its files' final state.
#[derive(Debug)]
pub(crate) struct WorkerExit {
    pub files: Vec<JobFile>,
    pub outcome: Outcome,
    pub durable_done: Vec<usize>,
}

/// Everything a worker owns.
#[derive(Debug)]
pub(crate) struct Worker {
    pub job_id: JobId,
    pub run: u64,
    pub files: Vec<JobFile>,
    pub properties: JobProperties,
    pub credentials: Credentials,
    pub store: Store,
    pub clients: Arc<HttpClients>,
    pub checkpoint: CheckpointPolicy,
    pub live: Arc<Live>,
    pub throttle: Throttle,
    pub stop: CancellationToken,
    pub tx: mpsc::UnboundedSender<WorkerMsg>,
}

impl Worker {
    pub(crate) async fn run(mut self) -> WorkerExit {
        let span = tracing::info_span!("job", job_id = %self.job_id, run = self.run);
        let exit = self.run_files().instrument(span).await;
        let _ = self.tx.send(WorkerMsg::Exited {
            job: self.job_id,
            run: self.run,
        });
        exit
    }

    async fn run_files(&mut self) -> WorkerExit {
        let (job, run, tx) = (self.job_id, self.run, self.tx.clone());
        // Files are announced the moment a checkpoint makes them durable, even while a later
        // file of the job is still being fetched.
        let (live, durable_tx) = (self.live.clone(), tx.clone());
        let announce = move |files: &[usize]| {
            live.mark_durable(files);
            let files = files.to_vec();
            let _ = durable_tx.send(WorkerMsg::FilesDurable { job, run, files });
        };
        let mut ckpt = Checkpointer::new(
            self.store.clone(),
            self.job_id,
            self.checkpoint,
            Box::new(announce),
        );
        let told = std::sync::atomic::AtomicBool::new(false);
        // Once per run: later files of the job are not news.
        let connected = move || {
            if !told.swap(true, std::sync::atomic::Ordering::Relaxed) {
                let _ = tx.send(WorkerMsg::Connected { job, run });
            }
        };
        let mut outcome = Outcome::Transferred;
        let initial = self.files.clone();
        let mut durable_done = Vec::new();
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
            let result = transfer::fetch(&cx, &mut self.files[index], &mut ckpt)
                .instrument(span)
                .await;
            durable_done.extend(self.mark_completed(&mut ckpt));
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
        if let Err(failure) = ckpt.flush(None).await
            && matches!(outcome, Outcome::Transferred)
        {
            tracing::info!(code = %failure.error.code, error = %failure.error.description, "last checkpoint failed");
            outcome = Outcome::Failed(failure);
        }
        durable_done.extend(self.mark_completed(&mut ckpt));
        if ckpt.failed() {
            // Bytes past the last good checkpoint may be lost (a failed fsync is not retried):
            // the next run starts each unfinished file from what the store has.
            for (i, f) in self.files.iter_mut().enumerate() {
                if !f.completed {
                    *f = ckpt.last_committed(i).unwrap_or(&initial[i]).clone();
                }
            }
        }
        WorkerExit {
            files: std::mem::take(&mut self.files),
            outcome,
            durable_done,
        }
    }

    /// Files a checkpoint made durable are completed, in the worker's list (which the engine
    /// takes back at the end of the run); returns them. Readers and subscribers were told
    /// already (see `announce`).
    fn mark_completed(&mut self, ckpt: &mut Checkpointer) -> Vec<usize> {
        let durable = ckpt.take_durable_done();
        for &i in &durable {
            if let Some(f) = self.files.get_mut(i) {
                f.completed = true;
            }
        }
        durable
    }
}
