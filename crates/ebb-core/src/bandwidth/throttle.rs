//! A job's way through the buckets: its own cap, then (background jobs) its priority's and the
//! shared one; and the count of its bytes that the idle estimate compares with the interface's.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Bandwidth, Bucket, Direction, bucket_index, limiter};
use crate::model::{JobId, Limit, Priority};

/// A running job's own cap and priority, changeable while it runs.
#[derive(Debug)]
pub(crate) struct JobRate {
    bucket: Bucket,
    /// The priority's bucket index; `FOREGROUND` for foreground jobs.
    class: AtomicUsize,
}

const FOREGROUND: usize = usize::MAX;

impl JobRate {
    pub(crate) fn new(priority: Priority, max_rate: Limit) -> Self {
        Self {
            bucket: Bucket::new(max_rate),
            class: AtomicUsize::new(bucket_index(priority).unwrap_or(FOREGROUND)),
        }
    }

    /// The job's properties changed while it runs.
    pub(crate) fn update(&self, priority: Priority, max_rate: Limit) {
        self.bucket.set_rate(max_rate);
        self.class.store(
            bucket_index(priority).unwrap_or(FOREGROUND),
            Ordering::Relaxed,
        );
    }

    fn class(&self) -> Option<usize> {
        Some(self.class.load(Ordering::Relaxed)).filter(|&c| c != FOREGROUND)
    }
}

/// One worker's way through the buckets.
#[derive(Debug)]
pub(crate) struct Throttle {
    bandwidth: Arc<Bandwidth>,
    job: JobId,
    own: Arc<JobRate>,
    direction: Direction,
}

impl Throttle {
    pub(super) fn new(
        bandwidth: Arc<Bandwidth>,
        job: JobId,
        own: Arc<JobRate>,
        direction: Direction,
    ) -> Self {
        Self {
            bandwidth,
            job,
            own,
            direction,
        }
    }

    /// How many bytes to admit at a time.
    pub(crate) fn piece(&self) -> usize {
        let mut rate = self.own.bucket.rate();
        if let Some(i) = self.own.class() {
            let b = &self.bandwidth;
            rate = rate.min(b.priority[i].rate()).min(b.global.rate());
        }
        limiter::piece_for(rate)
    }

    /// `n` bytes came off the connection. Counted now, not when admitted: the estimator
    /// compares them with what the interface saw arrive.
    pub(crate) fn received(&self, n: usize) {
        if self.own.class().is_some() {
            self.bandwidth.count(n, Direction::Down);
        }
    }

    /// Wait until `n` bytes may be written.
    pub(crate) async fn admit(&self, n: usize) {
        admit(&self.bandwidth, &self.own, n).await;
    }

    /// The buckets alone, owned: for a request body that admits its bytes as it is sent.
    pub(crate) fn gate(&self) -> Gate {
        Gate {
            bandwidth: self.bandwidth.clone(),
            own: self.own.clone(),
        }
    }

    /// Whether the idle-capacity control finds one connection short of the idle link (a
    /// background download's: its file may then be split over more). A yes is taken: one
    /// download splits on it, not every one running.
    pub(crate) fn one_connection_short(&self) -> bool {
        self.own.class().is_some()
            && self.direction == Direction::Down
            && self.bandwidth.take_one_short()
    }

    /// The server this job talks to now: the target of delay probes (background jobs only;
    /// a foreground job's bytes are foreground traffic to the estimator).
    pub(crate) fn note_server(&self, url: &url::Url) {
        if self.own.class().is_some() {
            self.bandwidth.note_server(self.job, url, self.direction);
        } else {
            self.bandwidth.note_foreground_server(self.job, url);
        }
    }
}

/// The buckets a job's bytes pass through, without the job's bookkeeping.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    bandwidth: Arc<Bandwidth>,
    own: Arc<JobRate>,
}

impl Gate {
    /// Wait until `n` bytes may be sent; they count as sent (background jobs).
    pub(crate) async fn admit(&self, n: usize) {
        admit(&self.bandwidth, &self.own, n).await;
        if self.own.class().is_some() {
            self.bandwidth.count(n, Direction::Up);
        }
    }
}

async fn admit(bandwidth: &Bandwidth, own: &JobRate, n: usize) {
    own.bucket.acquire(n).await;
    if let Some(i) = own.class() {
        bandwidth.priority[i].acquire(n).await;
        bandwidth.global.acquire(n).await;
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        self.bandwidth.forget_server(self.job);
    }
}
