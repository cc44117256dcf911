//! Engine settings, with BITS's defaults where BITS has one.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::model::{BandwidthConfig, WallClock};
pub use crate::transfer::CheckpointPolicy;
pub use crate::transfer::HttpConfig;

/// How an [`Engine`](crate::Engine) runs. Build with [`EngineConfig::new`] and the `with_*`
/// methods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Holds `ebb.db` (the queue) and `engine.lock`.
    pub data_dir: PathBuf,
    pub checkpoint: CheckpointPolicy,
    pub http: HttpConfig,
    /// Background jobs that may transfer at once (BITS: 1). Foreground jobs are not counted.
    pub max_background_jobs: usize,
    /// How long a background job runs before another job of its priority gets a turn.
    pub time_slice: Duration,
    /// Jobs untouched this long are cancelled (BITS's JobInactivityTimeout: 90 days).
    pub job_inactivity_timeout: Duration,
    /// How long Acknowledged and Cancelled jobs stay visible before they are purged.
    pub final_job_retention: Duration,
    /// Whether this engine moves bytes. An engine opened only to create or change jobs (a short
    /// CLI call) sets this to false and leaves the transfers to the next engine that runs.
    pub scheduling: bool,
    /// How often live progress is published for other processes.
    pub live_interval: Duration,
    /// Caps, schedules and idle-capacity estimation for background jobs.
    pub bandwidth: BandwidthConfig,
    /// Where bandwidth schedules read the local time (tests set their own).
    pub wall_clock: WallClock,
    /// The key file: the key that seals passwords in the queue, or a marker naming it in the
    /// platform's secret store (default `<config dir>/ebb/secret.key`, or `EBB_SECRET_KEY`).
    pub secret_key: PathBuf,
    /// Whether a new key goes in the platform's secret store when one answers (default yes;
    /// `EBB_SECRET_STORE=file` says no).
    pub platform_secret_store: bool,
    /// Drop passwords sealed with a key that is not this one, instead of refusing to open the
    /// queue (`EBB_FORGET_SEALED_PASSWORDS=1`, for a key lost for good).
    pub forget_sealed_passwords: bool,
}

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            secret_key: crate::secret_key::default_path(&data_dir),
            platform_secret_store: std::env::var_os("EBB_SECRET_STORE").is_none_or(|v| v != "file"),
            forget_sealed_passwords: std::env::var_os("EBB_FORGET_SEALED_PASSWORDS")
                .is_some_and(|v| v == "1"),
            data_dir,
            checkpoint: CheckpointPolicy::default(),
            http: HttpConfig::default(),
            max_background_jobs: 1,
            time_slice: Duration::from_secs(60),
            job_inactivity_timeout: Duration::from_secs(90 * 24 * 3600),
            final_job_retention: Duration::from_secs(7 * 24 * 3600),
            scheduling: true,
            live_interval: Duration::from_millis(500),
            bandwidth: BandwidthConfig::default(),
            wall_clock: WallClock::System,
        }
    }

    #[must_use]
    pub fn with_checkpoint(mut self, policy: CheckpointPolicy) -> Self {
        self.checkpoint = policy;
        self
    }

    #[must_use]
    pub fn with_http(mut self, http: HttpConfig) -> Self {
        self.http = http;
        self
    }

    #[must_use]
    pub fn with_max_background_jobs(mut self, n: usize) -> Self {
        self.max_background_jobs = n.max(1);
        self
    }

    #[must_use]
    pub fn with_time_slice(mut self, slice: Duration) -> Self {
        self.time_slice = slice;
        self
    }

    #[must_use]
    pub fn with_job_inactivity_timeout(mut self, timeout: Duration) -> Self {
        self.job_inactivity_timeout = timeout;
        self
    }

    #[must_use]
    pub fn with_scheduling(mut self, on: bool) -> Self {
        self.scheduling = on;
        self
    }

    #[must_use]
    pub fn with_bandwidth(mut self, bandwidth: BandwidthConfig) -> Self {
        self.bandwidth = bandwidth;
        self
    }

    #[must_use]
    pub fn with_wall_clock(mut self, clock: WallClock) -> Self {
        self.wall_clock = clock;
        self
    }

    pub fn database_path(&self) -> PathBuf {
        database_path(&self.data_dir)
    }
}

/// The per-user data directory (`EBB_DATA_DIR` overrides it), e.g. `~/.local/share/ebb`.
pub fn default_data_dir() -> Option<PathBuf> {
    dirs::data_local_dir().map(|d| d.join("ebb"))
}

/// The per-user daemon's socket (`EBB_SOCKET` overrides it): in the runtime directory, e.g.
/// `/run/user/1000/ebb/ebbd.sock`, else beside the data.
pub fn default_socket() -> Option<PathBuf> {
    dirs::runtime_dir()
        .or_else(dirs::data_local_dir)
        .map(|d| d.join("ebb").join("ebbd.sock"))
}

/// Where the queue of a data directory lives.
pub fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join("ebb.db")
}
