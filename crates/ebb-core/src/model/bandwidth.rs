//! Bandwidth as the model knows it: the `[bandwidth]` configuration, run-time changes, and
//! the status `ebb bandwidth show` prints. The machinery that enforces them (buckets, the
//! idle estimator, the monitor) is the engine's own.

use serde::{Deserialize, Serialize};

use super::{Limit, Period, Priority, PriorityLimits, Schedule};

/// Why the idle estimate is what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdleReason {
    /// Nothing seen but ebb: no limit.
    Quiet,
    /// Queueing delay above target: backing off.
    QueueDelay,
    /// Other traffic on the interface: keeping to what it leaves.
    Foreground,
    /// The path went quiet again: growing back.
    Recovering,
    /// ebb alone at what the link carries without a standing queue.
    Capacity,
    /// A short slowdown to the trickle, so that the base delay can be measured again.
    Remeasuring,
}

impl std::fmt::Display for IdleReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Quiet => "network quiet",
            Self::QueueDelay => "queueing delay",
            Self::Foreground => "foreground traffic",
            Self::Recovering => "recovering",
            Self::Capacity => "link capacity",
            Self::Remeasuring => "re-measuring the base delay",
        })
    }
}

/// The `[bandwidth]` section of the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BandwidthConfig {
    /// Caps for background jobs: `all` of them together, and per priority.
    pub max_rate: PriorityLimits,
    /// Use only idle capacity (the estimator). Caps and policy apply either way.
    pub idle: bool,
    /// The interface-counter signal of the estimator.
    pub idle_counters: bool,
    /// The queueing-delay signal of the estimator (TCP connect probes to the server).
    pub idle_delay: bool,
    /// The interface to count; by default the one routing to the server.
    pub interface: Option<String>,
    /// Work/non-work/maintenance limits.
    pub schedule: Option<Schedule>,
}

impl Default for BandwidthConfig {
    fn default() -> Self {
        Self {
            max_rate: PriorityLimits::default(),
            idle: true,
            idle_counters: true,
            idle_delay: true,
            interface: None,
            schedule: None,
        }
    }
}

/// A run-time change (`ebb bandwidth set`), persisted until reset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BandwidthChange {
    /// A cap: for all background jobs, or with `priority`, for that priority.
    pub max_rate: Option<Limit>,
    pub priority: Option<Priority>,
    pub idle: Option<bool>,
    /// Drop every run-time change and return to the configuration file's values.
    pub reset: bool,
}

/// What holds the shared background rate where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitReason {
    /// Nothing: background jobs may use the whole link.
    None,
    /// The global cap.
    Cap,
    /// The schedule's limit for the current period.
    Policy,
    /// The idle-capacity estimate.
    Idle,
}

impl std::fmt::Display for LimitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "no limit",
            Self::Cap => "cap",
            Self::Policy => "policy",
            Self::Idle => "idle estimate",
        })
    }
}

/// The estimator's view, for `ebb bandwidth show`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdleStatus {
    pub enabled: bool,
    pub counters: bool,
    pub delay: bool,
    /// Whether it is estimating now (background jobs run to a non-loopback server).
    pub active: bool,
    pub reason: IdleReason,
    pub rate: Limit,
    pub interface: Option<String>,
    /// Estimated foreground traffic on the interface, bytes/s.
    pub foreground_rate: Option<u64>,
    /// The highest total rate seen on the interface lately, bytes/s.
    pub capacity: Option<u64>,
    /// Queueing delay now: the round-trip time over the base delay.
    pub queue_delay_ms: Option<f64>,
    pub probe_target: Option<String>,
    /// The path's round-trip time with empty queues (the least of recent minutes).
    #[serde(default)]
    pub base_delay_ms: Option<f64>,
    /// The queueing delay ebb backs off above (half the base delay, 5 to 60 ms).
    #[serde(default)]
    pub target_delay_ms: Option<f64>,
    /// ebb's own connections' round-trip time as the kernel sees it (`TCP_INFO`).
    #[serde(default)]
    pub connection_rtt_ms: Option<f64>,
    /// The low-priority congestion control ebb's upload connections use, where the kernel
    /// offers one.
    #[serde(default)]
    pub congestion: Option<String>,
}

/// The schedule's part of the status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyStatus {
    pub period: Period,
    pub limits: PriorityLimits,
}

/// `ebb bandwidth show`: what limits background transfers now, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BandwidthStatus {
    /// The rate all background jobs share now.
    pub target_rate: Limit,
    pub reason: LimitReason,
    /// Limits in force per priority (caps and policy; the shared rate comes on top).
    pub effective: PriorityLimits,
    /// Caps (configuration with run-time changes applied).
    pub caps: PriorityLimits,
    pub policy: Option<PolicyStatus>,
    /// Background priorities blocked by policy (their jobs wait in TransientError).
    pub blocked: Vec<Priority>,
    pub idle: IdleStatus,
    /// Bytes/s background jobs moved over the last tick.
    pub background_rate: u64,
    /// Whether run-time changes override the configuration file.
    pub overridden: bool,
}
