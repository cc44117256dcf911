//! Complete, in groups: the completions waiting in the queue task's mailbox are taken together,
//! their files renamed, each directory synced once and every job recorded Acknowledged in one
//! store transaction, so that callers completing at once share the fsyncs instead of queueing
//! behind one another's.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::Completion;
use super::files::{self, Tally};
use super::queue::{Queue, Reply, Request, answer, blocking};
use crate::error::{Error, ErrorCode};
use crate::model::{Job, JobId, Timestamp};

/// At most this many completions go in one group.
const GROUP: usize = 256;

impl Queue {
    /// Complete `first` and the completions right behind it in `requests`; the first request
    /// of another kind is kept to be handled next, in order.
    pub(super) async fn complete_waiting(
        &mut self,
        first: (JobId, Reply<Completion>),
        requests: &mut mpsc::UnboundedReceiver<Request>,
    ) {
        let mut group = vec![first];
        let mut ids: HashSet<JobId> = HashSet::from([group[0].0]);
        while group.len() < GROUP && self.next_request.is_none() {
            match requests.try_recv() {
                // The same job twice: the second sees the first's outcome, in the next group.
                Ok(Request::Complete(id, reply)) if ids.insert(id) => group.push((id, reply)),
                Ok(other) => self.next_request = Some(other),
                Err(_) => break,
            }
        }
        self.complete_group(group).await;
    }

    /// Complete jobs that are distinct: each is checked and its run stopped, then the files
    /// of all are put in place at once, then all are committed at once.
    async fn complete_group(&mut self, group: Vec<(JobId, Reply<Completion>)>) {
        let mut jobs: Vec<(Arc<Job>, Reply<Completion>)> = Vec::with_capacity(group.len());
        for (id, reply) in group {
            match self.stopped(id, "complete", Job::check_completable).await {
                Ok(job) => jobs.push((job, reply)),
                Err(e) => answer(reply, Err(e)),
            }
        }
        if jobs.is_empty() {
            return;
        }
        let work: Vec<files::Completing> = jobs
            .iter()
            .map(|(j, _)| (j.job_type, j.files.clone(), j.reply.clone()))
            .collect();
        let tallies = blocking(move || Ok(files::complete_all(&work)))
            .await
            .unwrap_or_else(|_| (0..jobs.len()).map(|_| Err(Error::ShutDown)).collect());
        let now = Timestamp::now();
        let mut done: Vec<(Job, Tally, Reply<Completion>)> = Vec::with_capacity(jobs.len());
        for ((job, reply), tally) in jobs.into_iter().zip(tallies) {
            let mut updated = (*job).clone();
            match tally.and_then(|t| updated.acknowledge(now).map(|()| t)) {
                Ok(tally) => done.push((updated, tally, reply)),
                Err(e) => answer(reply, Err(e)),
            }
        }
        let updated: Vec<Job> = done.iter().map(|(job, ..)| job.clone()).collect();
        if let Err(e) = self.shared.store.update_jobs(&updated).await {
            tracing::error!(error = %e, "cannot record completed jobs");
            for (.., reply) in done {
                answer(reply, Err(self.store_failure(&e)));
            }
            return;
        }
        for (job, tally, reply) in done {
            let id = job.id;
            self.show(job);
            tracing::info!(job_id = %id, kept = tally.kept, dropped = tally.dropped, "job completed");
            answer(reply, Ok(completion(tally)));
        }
    }

    /// A store failure shared by several callers, each given its own copy.
    pub(super) fn store_failure(&self, e: &Error) -> Error {
        Error::Io {
            path: self.shared.config.data_dir.clone(),
            source: std::io::Error::other(e.to_string()),
        }
    }
}

fn completion(tally: Tally) -> Completion {
    let code = if tally.dropped > 0 {
        ErrorCode::BG_S_PARTIAL_COMPLETE
    } else if tally.undeleted > 0 {
        ErrorCode::BG_S_UNABLE_TO_DELETE_FILES
    } else {
        ErrorCode::S_OK
    };
    Completion {
        code,
        files_kept: tally.kept,
        files_dropped: tally.dropped,
    }
}
