//! Machinery that `cargo bench -p ebb-core --bench internals` measures in-process (the
//! scheduler's plan, one tick of the idle estimator, a bucket's admission), and samples the
//! format tests pin. Not an API: each bench type holds prepared state and one `run` to time.

use std::time::{Duration, Instant};

use crate::bandwidth::{Bucket, Estimator, Sample, Signals};
use crate::error::Error;
use crate::model::{ErrorCode, JobId, JobState, Limit, Priority, Status, Timestamp};
use crate::scheduler::{self, Rules, Slot};

/// A queue of `n` jobs to plan: a quarter running, half queued, a quarter in TransientError.
#[derive(Debug)]
pub struct PlanBench {
    slots: Vec<Slot>,
    now: Instant,
}

impl PlanBench {
    pub fn new(n: usize) -> Self {
        let now = Instant::now();
        let wall = Timestamp::now();
        let priorities = [
            Priority::Foreground,
            Priority::High,
            Priority::Normal,
            Priority::Low,
        ];
        let slots = (0..n)
            .map(|i| {
                let (state, slice_start) = match i % 4 {
                    0 => (JobState::Transferring, Some(now)),
                    3 => (JobState::TransientError, None),
                    _ => (JobState::Queued, None),
                };
                Slot {
                    id: JobId::from_u128(i as u128),
                    priority: priorities[i % 4],
                    state,
                    queue_seq: i as i64,
                    slice_start,
                    retry_at: (state == JobState::TransientError)
                        .then(|| wall.plus(Duration::from_secs(600))),
                    no_progress_since: None,
                    no_progress_timeout: Duration::from_secs(1_209_600),
                    active: Duration::from_secs(1),
                    max_download_time: Duration::from_secs(7_776_000),
                    modified_at: wall,
                    policy_blocked: false,
                    waits_for_policy: false,
                }
            })
            .collect();
        Self { slots, now }
    }

    /// One plan; returns how many jobs it starts (so that the work is not optimised away).
    pub fn run(&self) -> usize {
        let rules = Rules {
            max_background_jobs: 1,
            time_slice: Duration::from_secs(60),
            inactivity_timeout: Duration::from_secs(90 * 86_400),
        };
        scheduler::plan(&self.slots, rules, self.now, Timestamp::now())
            .start
            .len()
    }
}

/// The idle estimator, fed a tick of a busy link with some foreground traffic.
#[derive(Debug)]
pub struct EstimatorBench {
    estimator: Estimator,
    now: tokio::time::Instant,
    tick: u64,
}

impl Default for EstimatorBench {
    fn default() -> Self {
        let now = tokio::time::Instant::now();
        let signals = Signals {
            counters: true,
            delay: true,
        };
        Self {
            estimator: Estimator::new(signals, now),
            now,
            tick: 0,
        }
    }
}

impl EstimatorBench {
    /// One tick; returns the rate it settles on, in bytes/s (0 for none).
    pub fn run(&mut self) -> u64 {
        self.tick += 1;
        self.now += Duration::from_millis(50);
        let sample = Sample {
            elapsed: Duration::from_millis(50),
            iface: Some(600_000 + (self.tick % 7) * 5_000),
            own: 450_000,
            probe_rtt: Some(Duration::from_millis(20 + self.tick % 30)),
            socket_rtt: None,
        };
        self.estimator
            .update(sample, self.now)
            .rate
            .map_or(0, |r| r as u64)
    }
}

/// A token bucket at a rate high enough that admission never waits: the cost of the bookkeeping
/// every piece of every transfer pays.
#[derive(Debug)]
pub struct LimiterBench {
    bucket: Bucket,
}

impl LimiterBench {
    pub fn new(bytes_per_sec: u64) -> Self {
        Self {
            bucket: Bucket::new(Limit::BytesPerSec(bytes_per_sec)),
        }
    }

    /// Admit one piece of `n` bytes.
    pub async fn run(&self, n: usize) {
        self.bucket.acquire(n).await;
    }
}

/// One error of each kind (every variant, and the sources that cross the wire differently),
/// with fixed values: what the round-trip and snapshot tests go through.
pub fn one_error_of_each_kind() -> Vec<Error> {
    let job = JobId::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    vec![
        Error::NotFound("nightly".into()),
        Error::InvalidState {
            job,
            state: JobState::Acknowledged,
            action: "resume".into(),
        },
        Error::Empty(job),
        Error::TooManyFiles,
        Error::InvalidArgument("no files to add".into()),
        Error::InvalidRange {
            code: ErrorCode::BG_E_OVERLAPPING_RANGES,
            message: "ranges 0:10 and 5:10 overlap".into(),
        },
        Error::TooLarge {
            code: ErrorCode::BG_E_STRING_TOO_LONG,
            message: "display name is longer than 256 characters".into(),
        },
        Error::NotSupported("uploads".into()),
        Error::Locked {
            dir: "/data".into(),
            holder: "pid 7 (ebbd)".into(),
        },
        Error::Store {
            path: "/data/ebb.db".into(),
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                Some("database or disk is full".into()),
            ),
        },
        Error::Store {
            path: "/data/ebb.db".into(),
            source: rusqlite::Error::QueryReturnedNoRows,
        },
        Error::Corrupt {
            path: "/data/ebb.db".into(),
            message: "a row says state 42".into(),
        },
        Error::io(
            "/out/a.bin",
            std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left on device"),
        ),
        Error::io("/out/b.bin", std::io::Error::other("strange")),
        Error::ShutDown,
        Error::Remote {
            code: ErrorCode::BG_E_CONNECT_FAILURE,
            status: Status::Transient,
            message: "cannot reach ebbd".into(),
        },
    ]
}
