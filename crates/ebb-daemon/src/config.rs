//! The daemon's TOML configuration (`--config`, default `<config dir>/ebb/ebbd.toml`).
//!
//! ```toml
//! data_dir = "/home/ann/.local/share/ebb"   # default: the per-user data directory
//! socket = "/run/user/1000/ebb/ebbd.sock"    # default: the per-user runtime directory
//!
//! [engine]
//! checkpoint_bytes = 33554432
//! checkpoint_interval = "1s"
//! max_background_jobs = 1
//! time_slice = "60s"
//! chunk_timeout = "60s"
//! connect_timeout = "30s"
//! inactivity_timeout = "90days"
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

use std::path::{Path, PathBuf};

use anyhow::Context;
use ebb_core::EngineConfig;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    pub data_dir: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    #[serde(default)]
    pub engine: EngineSection,
    #[serde(default)]
    pub bandwidth: ebb_core::bandwidth::BandwidthConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    pub checkpoint_bytes: Option<u64>,
    pub checkpoint_interval: Option<String>,
    pub max_background_jobs: Option<usize>,
    pub time_slice: Option<String>,
    pub chunk_timeout: Option<String>,
    pub connect_timeout: Option<String>,
    pub inactivity_timeout: Option<String>,
}

fn duration(key: &str, text: Option<&String>) -> anyhow::Result<Option<std::time::Duration>> {
    text.map(|t| humantime::parse_duration(t).with_context(|| format!("{key} = {t:?}")))
        .transpose()
}

/// `<config dir>/ebb/ebbd.toml`, e.g. `~/.config/ebb/ebbd.toml`.
pub fn default_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("ebb").join("ebbd.toml"))
}

impl DaemonConfig {
    /// Read `path`; a missing file at the default location is the defaults.
    pub fn load(path: &Path, required: bool) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).with_context(|| format!("{}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("{}", path.display())),
        }
    }

    /// The engine settings, on top of `base`.
    pub fn engine(&self, mut base: EngineConfig) -> anyhow::Result<EngineConfig> {
        let e = &self.engine;
        if let Some(b) = e.checkpoint_bytes {
            base.checkpoint.bytes = b;
        }
        if let Some(d) = duration("checkpoint_interval", e.checkpoint_interval.as_ref())? {
            base.checkpoint.interval = d;
        }
        if let Some(n) = e.max_background_jobs {
            base = base.with_max_background_jobs(n);
        }
        if let Some(d) = duration("time_slice", e.time_slice.as_ref())? {
            base = base.with_time_slice(d);
        }
        if let Some(d) = duration("chunk_timeout", e.chunk_timeout.as_ref())? {
            base.http.chunk_timeout = d;
        }
        if let Some(d) = duration("connect_timeout", e.connect_timeout.as_ref())? {
            base.http.connect_timeout = d;
        }
        if let Some(d) = duration("inactivity_timeout", e.inactivity_timeout.as_ref())? {
            base = base.with_job_inactivity_timeout(d);
        }
        base.bandwidth = self.bandwidth.clone();
        Ok(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_file_sets_the_engine() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ebbd.toml");
        std::fs::write(
            &path,
            "socket = \"/tmp/s.sock\"\n[engine]\ncheckpoint_bytes = 1024\ncheckpoint_interval = \"250ms\"\nmax_background_jobs = 3\ntime_slice = \"2s\"\nchunk_timeout = \"9s\"\ninactivity_timeout = \"1day\"\n",
        )
        .unwrap();
        let c = DaemonConfig::load(&path, true).unwrap();
        assert_eq!(c.socket.as_deref(), Some(Path::new("/tmp/s.sock")));
        let e = c.engine(EngineConfig::new("/tmp/d")).unwrap();
        assert_eq!(e.checkpoint.bytes, 1024);
        assert_eq!(e.checkpoint.interval, std::time::Duration::from_millis(250));
        assert_eq!(e.max_background_jobs, 3);
        assert_eq!(e.time_slice, std::time::Duration::from_secs(2));
        assert_eq!(e.http.chunk_timeout, std::time::Duration::from_secs(9));
        assert_eq!(
            e.job_inactivity_timeout,
            std::time::Duration::from_secs(86_400)
        );
        // Unknown keys and bad durations are errors that name the file or key.
        std::fs::write(&path, "[engine]\nbogus = 1\n").unwrap();
        assert!(DaemonConfig::load(&path, true).is_err());
        std::fs::write(&path, "[engine]\ntime_slice = \"soon\"\n").unwrap();
        let err = DaemonConfig::load(&path, true)
            .unwrap()
            .engine(EngineConfig::new("/tmp/d"))
            .unwrap_err();
        assert!(format!("{err:#}").contains("time_slice"), "{err:#}");
        // The bandwidth section, with a schedule.
        std::fs::write(
            &path,
            "[bandwidth]\nidle_delay = false\nmax_rate = { low = \"1MiB/s\" }\n[bandwidth.schedule]\nwork_hours = { days = [\"mon-fri\"], hours = \"08:00-17:00\" }\nwork = { low = \"0\" }\n",
        )
        .unwrap();
        let e = DaemonConfig::load(&path, true)
            .unwrap()
            .engine(EngineConfig::new("/tmp/d"))
            .unwrap();
        assert!(e.bandwidth.idle && !e.bandwidth.idle_delay);
        assert_eq!(
            e.bandwidth.max_rate.low,
            ebb_core::bandwidth::Limit::BytesPerSec(1 << 20)
        );
        assert!(e.bandwidth.schedule.is_some());
        std::fs::write(&path, "[bandwidth]\nmax_rate = { all = \"fast\" }\n").unwrap();
        let err = format!("{:#}", DaemonConfig::load(&path, true).unwrap_err());
        assert!(err.contains("bad rate"), "{err}");
        // No file at the default place: the defaults; at an explicit place: an error.
        assert!(DaemonConfig::load(&dir.path().join("none.toml"), false).is_ok());
        assert!(DaemonConfig::load(&dir.path().join("none.toml"), true).is_err());
    }
}
