//! One settings layer for every way an engine runs (`ebbd`, `ebb --embedded`, an app):
//! defaults <- the configuration file <- the environment <- flags. [`EngineSettings`] is the
//! `[engine]` section of the file and, with the `cli` feature, the flags (each with its
//! environment variable) of both `ebb` and `ebbd`.
//!
//! ```toml
//! data_dir = "/home/ann/.local/share/ebb"   # default: the per-user data directory
//! socket = "/run/user/1000/ebb/ebbd.sock"    # default: the per-user runtime directory
//!
//! [engine]                    # each key is also a flag and an environment variable:
//! checkpoint_bytes = 33554432 # --checkpoint-bytes, EBB_CHECKPOINT_BYTES
//! checkpoint_interval = "1s"  # --checkpoint-interval, EBB_CHECKPOINT_INTERVAL
//! max_background_jobs = 1     # --max-background-jobs, EBB_MAX_BACKGROUND_JOBS
//! time_slice = "60s"          # --time-slice, EBB_TIME_SLICE
//! chunk_timeout = "60s"       # --chunk-timeout, EBB_CHUNK_TIMEOUT
//! connect_timeout = "30s"     # --connect-timeout, EBB_CONNECT_TIMEOUT
//! inactivity_timeout = "90days" # --inactivity-timeout, EBB_INACTIVITY_TIMEOUT
//!
//! [bandwidth]                 # background jobs only; see docs/bandwidth.md
//! idle = true                 # use only idle capacity (idle_counters, idle_delay: its signals)
//! max_rate = { all = "50mbit", low = "1MiB/s" }
//!
//! [bandwidth.schedule]
//! work_hours = { days = ["mon-fri"], hours = "08:00-17:00" }
//! work = { normal = "2MiB/s", low = "0" }     # 0: blocked (TransientError) in the window
//! non_work = { low = "10MiB/s" }
//! [[bandwidth.schedule.maintenance]]          # wins over work and non-work limits
//! days = ["sun"]
//! hours = "01:00-05:00"
//! limits = { all = "unlimited" }
//! ```

mod duration;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::model::BandwidthConfig;
pub use duration::parse_duration;

/// The engine's tunables. `None` leaves a setting to the layer below.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(default, deny_unknown_fields)]
pub struct EngineSettings {
    /// Checkpoint after this many bytes (progress is committed only once it is on disk).
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "EBB_CHECKPOINT_BYTES", value_name = "BYTES")
    )]
    pub checkpoint_bytes: Option<u64>,
    /// Checkpoint at least this often, e.g. `1s`, `250ms`.
    #[serde(with = "duration::opt")]
    #[cfg_attr(feature = "cli", arg(long, env = "EBB_CHECKPOINT_INTERVAL", value_parser = parse_duration, value_name = "TIME"))]
    pub checkpoint_interval: Option<Duration>,
    /// Background jobs that may transfer at once (BITS: 1).
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "EBB_MAX_BACKGROUND_JOBS", value_name = "N")
    )]
    pub max_background_jobs: Option<usize>,
    /// Time slice of a background job before others of its priority get a turn.
    #[serde(with = "duration::opt")]
    #[cfg_attr(feature = "cli", arg(long, env = "EBB_TIME_SLICE", value_parser = parse_duration, value_name = "TIME"))]
    pub time_slice: Option<Duration>,
    /// Abandon a body that delivers nothing for this long (a transient error).
    #[serde(with = "duration::opt")]
    #[cfg_attr(feature = "cli", arg(long, env = "EBB_CHUNK_TIMEOUT", value_parser = parse_duration, value_name = "TIME"))]
    pub chunk_timeout: Option<Duration>,
    /// Give up connecting after this long (a transient error).
    #[serde(with = "duration::opt")]
    #[cfg_attr(feature = "cli", arg(long, env = "EBB_CONNECT_TIMEOUT", value_parser = parse_duration, value_name = "TIME"))]
    pub connect_timeout: Option<Duration>,
    /// Cancel jobs untouched for this long (BITS: 90 days).
    #[serde(with = "duration::opt")]
    #[cfg_attr(feature = "cli", arg(long, env = "EBB_INACTIVITY_TIMEOUT", value_parser = parse_duration, value_name = "TIME"))]
    pub inactivity_timeout: Option<Duration>,
}

/// One setting as text: its key (the flag is `--` and the key with dashes), its environment
/// variable, and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub key: &'static str,
    pub env: &'static str,
    pub value: String,
}

impl EngineSettings {
    /// These settings over `below`: each one set here wins.
    #[must_use]
    pub fn over(&self, below: &Self) -> Self {
        Self {
            checkpoint_bytes: self.checkpoint_bytes.or(below.checkpoint_bytes),
            checkpoint_interval: self.checkpoint_interval.or(below.checkpoint_interval),
            max_background_jobs: self.max_background_jobs.or(below.max_background_jobs),
            time_slice: self.time_slice.or(below.time_slice),
            chunk_timeout: self.chunk_timeout.or(below.chunk_timeout),
            connect_timeout: self.connect_timeout.or(below.connect_timeout),
            inactivity_timeout: self.inactivity_timeout.or(below.inactivity_timeout),
        }
    }

    /// Every setting of a running engine.
    pub fn of(config: &EngineConfig) -> Self {
        Self {
            checkpoint_bytes: Some(config.checkpoint.bytes),
            checkpoint_interval: Some(config.checkpoint.interval),
            max_background_jobs: Some(config.max_background_jobs),
            time_slice: Some(config.time_slice),
            chunk_timeout: Some(config.http.chunk_timeout),
            connect_timeout: Some(config.http.connect_timeout),
            inactivity_timeout: Some(config.job_inactivity_timeout),
        }
    }

    /// `config` with each setting made here.
    #[must_use]
    pub fn apply(&self, mut config: EngineConfig) -> EngineConfig {
        if let Some(b) = self.checkpoint_bytes {
            config.checkpoint.bytes = b;
        }
        if let Some(i) = self.checkpoint_interval {
            config.checkpoint.interval = i;
        }
        if let Some(n) = self.max_background_jobs {
            config = config.with_max_background_jobs(n);
        }
        if let Some(t) = self.time_slice {
            config = config.with_time_slice(t);
        }
        if let Some(t) = self.chunk_timeout {
            config.http.chunk_timeout = t;
        }
        if let Some(t) = self.connect_timeout {
            config.http.connect_timeout = t;
        }
        if let Some(t) = self.inactivity_timeout {
            config = config.with_job_inactivity_timeout(t);
        }
        config
    }

    /// The settings made here, as text.
    pub fn settings(&self) -> Vec<Setting> {
        let secs = |d: Option<Duration>| d.map(|d| humantime::format_duration(d).to_string());
        [
            (
                "checkpoint_bytes",
                "EBB_CHECKPOINT_BYTES",
                self.checkpoint_bytes.map(|b| b.to_string()),
            ),
            (
                "checkpoint_interval",
                "EBB_CHECKPOINT_INTERVAL",
                secs(self.checkpoint_interval),
            ),
            (
                "max_background_jobs",
                "EBB_MAX_BACKGROUND_JOBS",
                self.max_background_jobs.map(|n| n.to_string()),
            ),
            ("time_slice", "EBB_TIME_SLICE", secs(self.time_slice)),
            (
                "chunk_timeout",
                "EBB_CHUNK_TIMEOUT",
                secs(self.chunk_timeout),
            ),
            (
                "connect_timeout",
                "EBB_CONNECT_TIMEOUT",
                secs(self.connect_timeout),
            ),
            (
                "inactivity_timeout",
                "EBB_INACTIVITY_TIMEOUT",
                secs(self.inactivity_timeout),
            ),
        ]
        .into_iter()
        .filter_map(|(key, env, value)| value.map(|value| Setting { key, env, value }))
        .collect()
    }

    /// The settings made here that `running` has otherwise, each as
    /// `--time-slice 2s (it runs with 1m)`.
    pub fn differences(&self, running: &Self) -> Vec<String> {
        let theirs = running.settings();
        // As an engine takes them (`--max-background-jobs 0` runs as 1), only those made here.
        let taken = Self::of(&self.apply(EngineConfig::new(PathBuf::new())));
        let made: Vec<&str> = self.settings().iter().map(|s| s.key).collect();
        taken
            .settings()
            .into_iter()
            .filter(|mine| made.contains(&mine.key))
            .filter_map(|mine| {
                let other = theirs.iter().find(|t| t.key == mine.key);
                (other.map(|o| &o.value) != Some(&mine.value)).then(|| {
                    format!(
                        "--{} {} (it runs with {})",
                        mine.key.replace('_', "-"),
                        mine.value,
                        other.map_or("its default", |o| o.value.as_str())
                    )
                })
            })
            .collect()
    }
}

/// The configuration file (`--config`, default `<config dir>/ebb/ebbd.toml`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsFile {
    pub data_dir: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    #[serde(default)]
    pub engine: EngineSettings,
    #[serde(default)]
    pub bandwidth: BandwidthConfig,
}

impl SettingsFile {
    /// `<config dir>/ebb/ebbd.toml`, e.g. `~/.config/ebb/ebbd.toml`.
    pub fn default_path() -> Option<PathBuf> {
        dirs::config_dir().map(|d| d.join("ebb").join("ebbd.toml"))
    }

    /// Read `path`; a missing file that was not asked for by name is the defaults.
    pub fn load(path: &Path, required: bool) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(Self::default()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// The file named (it must exist), else the one at the default place if there is one.
    pub fn load_given_or_default(given: Option<&Path>) -> Result<Self> {
        match (given, Self::default_path()) {
            (Some(path), _) => Self::load(path, true),
            (None, Some(path)) => Self::load(&path, false),
            (None, None) => Ok(Self::default()),
        }
    }

    /// Where the queue lives: `flag` (or its environment variable), else the file's, else the
    /// per-user data directory.
    pub fn data_dir(&self, flag: Option<&Path>) -> Result<PathBuf> {
        flag.map(Path::to_path_buf)
            .or_else(|| self.data_dir.clone())
            .or_else(crate::config::default_data_dir)
            .ok_or_else(|| {
                Error::InvalidArgument("no per-user data directory: set EBB_DATA_DIR".into())
            })
    }

    /// The daemon's socket: `flag`, else the file's, else the per-user runtime directory's.
    pub fn socket(&self, flag: Option<&Path>) -> Result<PathBuf> {
        flag.map(Path::to_path_buf)
            .or_else(|| self.socket.clone())
            .or_else(crate::config::default_socket)
            .ok_or_else(|| {
                Error::InvalidArgument("no per-user runtime directory: set EBB_SOCKET".into())
            })
    }

    /// The engine's configuration: defaults, then this file, then `over` (the environment and
    /// the flags).
    pub fn engine_config(&self, data_dir: PathBuf, over: &EngineSettings) -> EngineConfig {
        let mut config = over.over(&self.engine).apply(EngineConfig::new(data_dir));
        config.bandwidth = self.bandwidth.clone();
        config
    }
}

#[cfg(test)]
mod tests;
