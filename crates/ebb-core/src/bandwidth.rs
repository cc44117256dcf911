//! Background jobs use only the network's idle capacity, under limits administrators set.
//!
//! Three layers decide how fast a background transfer may go, and the tightest wins:
//! - **caps**: a global cap, one per priority and one per job, changeable at run time (`ebb
//!   bandwidth set`, `ebb set JOB --max-rate`); 0 pauses;
//! - **policy**: a BITS-style schedule (work hours, non-work hours, maintenance windows) whose
//!   limits apply in their window; a limit of 0 blocks the priority: its jobs go to
//!   TransientError with `BG_E_BLOCKED_BY_POLICY` and are queued again when the window ends;
//! - **idle estimate** ([`estimator`], [`controller`]): interface counters minus ebb's own bytes
//!   on the wire (`TCP_INFO`) show foreground traffic, probe round-trip times show queueing
//!   delay; a delay-based controller in the spirit of LEDBAT++ keeps the queue under a target
//!   that scales with the base delay, leaves others what they take, and always keeps a trickle.
//!   Downloads are watched on the receive counters (and their receive windows clamped to the
//!   rate, [`sockets`]), uploads on the transmit counters: each on its own direction.
//!
//! Foreground jobs are not throttled (only an explicit per-job cap applies to them). The rates
//! are enforced by [`limiter`] buckets: one shared by all background jobs, one per priority, one
//! per job. `docs/bandwidth.md` has the algorithm and its constants.

mod controller;
mod counters;
mod estimator;
mod gain;
mod limiter;
mod sockets;
mod throttle;
mod watch;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use estimator::Estimate;
pub(crate) use estimator::{Estimator, Sample, Signals};
pub(crate) use limiter::Bucket;
use sockets::Clamp;
pub(crate) use throttle::{Gate, JobRate, Throttle};
use watch::{Target, Watch};

use crate::error::Result;
use crate::model::{
    BandwidthChange, BandwidthConfig, BandwidthStatus, IdleReason, IdleStatus, JobId, Limit,
    LimitReason, PolicyStatus, Priority, PriorityLimits, Timestamp, WallClock,
};
use crate::store::Store;

/// How often the estimator samples and the limits are recomputed.
pub(crate) const TICK: Duration = Duration::from_millis(50);
/// How often the schedule is looked at while no background job runs.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// How often a delay probe (a TCP connect to the server) is sent while background jobs run.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// A probe that takes longer than this counts as this much delay.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Probes that time out in a row before that counts as delay.
const PROBE_TIMEOUTS: u32 = 3;

/// What `set` changed, stored under one key in the settings table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
struct Overrides {
    all: Option<Limit>,
    high: Option<Limit>,
    normal: Option<Limit>,
    low: Option<Limit>,
    idle: Option<bool>,
}

const OVERRIDES_KEY: &str = "bandwidth";

impl Overrides {
    fn apply(&self, config: &BandwidthConfig) -> BandwidthConfig {
        let mut c = config.clone();
        for (slot, value) in [
            (&mut c.max_rate.all, self.all),
            (&mut c.max_rate.high, self.high),
            (&mut c.max_rate.normal, self.normal),
            (&mut c.max_rate.low, self.low),
        ] {
            if let Some(v) = value {
                *slot = v;
            }
        }
        if let Some(idle) = self.idle {
            c.idle = idle;
        }
        c
    }
}

/// The engine's bandwidth manager: buckets, policy and estimator. One per engine.
#[derive(Debug)]
pub struct Bandwidth {
    config: BandwidthConfig,
    overrides: Mutex<Overrides>,
    clock: WallClock,
    store: Store,
    global: Bucket,
    priority: [Bucket; 3],
    own_rx: AtomicU64,
    own_tx: AtomicU64,
    probe_rtt: Mutex<Option<Duration>>,
    /// Probes timed out since the last that completed.
    probe_timeouts: std::sync::atomic::AtomicU32,
    /// One background download connection is short of the idle link (see WindowGain).
    one_short: std::sync::atomic::AtomicBool,
    /// Servers of running background jobs, for probes and the route's interface.
    servers: Mutex<HashMap<JobId, Target>>,
    /// Servers of running foreground jobs: connections to them are never clamped.
    foreground: Mutex<HashMap<JobId, (String, u16)>>,
    status: Mutex<BandwidthStatus>,
    /// Tells the scheduler that the blocked set changed.
    wake: Arc<Notify>,
    /// Tells the monitor that a background job started: it ticks at once rather than at the end
    /// of its idle second, so that the transfer starts under the idle limit.
    started: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn bucket_index(p: Priority) -> Option<usize> {
    match p {
        Priority::Foreground => None,
        Priority::High => Some(0),
        Priority::Normal => Some(1),
        Priority::Low => Some(2),
    }
}

const BACKGROUND: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

impl Bandwidth {
    pub(crate) async fn open(
        config: BandwidthConfig,
        clock: WallClock,
        store: Store,
        wake: Arc<Notify>,
    ) -> Result<Arc<Self>> {
        let overrides = match store.setting(OVERRIDES_KEY).await? {
            Some(json) => serde_json::from_str(&json).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "ignoring unreadable bandwidth settings");
                Overrides::default()
            }),
            None => Overrides::default(),
        };
        let effective = overrides.apply(&config);
        let this = Arc::new(Self {
            global: Bucket::new(Limit::Unlimited),
            priority: [
                Bucket::new(Limit::Unlimited),
                Bucket::new(Limit::Unlimited),
                Bucket::new(Limit::Unlimited),
            ],
            overrides: Mutex::new(overrides),
            clock,
            store,
            own_rx: AtomicU64::new(0),
            own_tx: AtomicU64::new(0),
            probe_rtt: Mutex::new(None),
            probe_timeouts: std::sync::atomic::AtomicU32::new(0),
            one_short: std::sync::atomic::AtomicBool::new(false),
            servers: Mutex::new(HashMap::new()),
            foreground: Mutex::new(HashMap::new()),
            status: Mutex::new(BandwidthStatus {
                target_rate: Limit::Unlimited,
                reason: LimitReason::None,
                effective: PriorityLimits::default(),
                caps: effective.max_rate,
                policy: None,
                blocked: Vec::new(),
                idle: IdleStatus {
                    enabled: effective.idle,
                    counters: effective.idle_counters,
                    delay: effective.idle_delay,
                    active: false,
                    reason: IdleReason::Quiet,
                    rate: Limit::Unlimited,
                    interface: None,
                    foreground_rate: None,
                    capacity: None,
                    queue_delay_ms: None,
                    probe_target: None,
                    base_delay_ms: None,
                    target_delay_ms: None,
                    connection_rtt_ms: None,
                    congestion: None,
                },
                background_rate: 0,
                overridden: false,
            }),
            config,
            wake,
            started: Notify::new(),
        });
        this.recompute(&this.effective_config(), None);
        Ok(this)
    }

    fn effective_config(&self) -> BandwidthConfig {
        lock(&self.overrides).apply(&self.config)
    }

    /// What limits background transfers now.
    pub fn status(&self) -> BandwidthStatus {
        lock(&self.status).clone()
    }

    /// Apply and persist a run-time change; it takes effect within one tick.
    pub(crate) async fn change(&self, change: BandwidthChange) -> Result<BandwidthStatus> {
        let json = {
            let mut o = lock(&self.overrides);
            if change.reset {
                *o = Overrides::default();
            }
            if let Some(rate) = change.max_rate {
                let slot = match change.priority {
                    None | Some(Priority::Foreground) => &mut o.all,
                    Some(Priority::High) => &mut o.high,
                    Some(Priority::Normal) => &mut o.normal,
                    Some(Priority::Low) => &mut o.low,
                };
                *slot = Some(rate);
            }
            if let Some(idle) = change.idle {
                o.idle = Some(idle);
            }
            (*o != Overrides::default())
                .then(|| serde_json::to_string(&*o))
                .transpose()
                .map_err(|e| crate::Error::InvalidArgument(e.to_string()))?
        };
        self.store.set_setting(OVERRIDES_KEY, json).await?;
        tracing::info!(?change, "bandwidth settings changed");
        let idle = {
            let s = lock(&self.status);
            s.idle.active.then_some(s.idle.rate)
        };
        self.recompute(
            &self.effective_config(),
            idle.and_then(Limit::bytes_per_sec).map(|r| r as f64),
        );
        Ok(self.status())
    }

    /// The background priorities a policy window blocks now.
    pub(crate) fn blocked(&self) -> Vec<Priority> {
        lock(&self.status).blocked.clone()
    }

    /// When the schedule next lets priority `p` move bytes, if it blocks it now and not all
    /// week. The minutes are the schedule's local wall-clock minutes, so the moment is found in
    /// local time (across a change of daylight saving time too).
    pub(crate) fn policy_until(&self, p: Priority) -> Option<Timestamp> {
        use chrono::{Duration as Minutes, Local, TimeZone, Timelike};
        let config = self.effective_config();
        let minutes = config
            .schedule
            .as_ref()?
            .minutes_until_unblocked(self.clock.now(), p)?;
        let now = Local::now().naive_local();
        let minute_start = now.with_second(0)?.with_nanosecond(0)?;
        let then = minute_start.checked_add_signed(Minutes::minutes(i64::from(minutes)))?;
        // A moment that a change of daylight saving time skips is the end of that gap.
        let local = Local.from_local_datetime(&then).earliest().or_else(|| {
            let after = then.checked_add_signed(Minutes::hours(1))?;
            Local.from_local_datetime(&after).earliest()
        })?;
        Some(Timestamp::from(std::time::SystemTime::from(local)))
    }

    /// The buckets a job's bytes pass through: its own, then (background only) its priority's
    /// and the shared one.
    pub(crate) fn throttle(
        self: &Arc<Self>,
        job: JobId,
        rate: Arc<JobRate>,
        direction: Direction,
    ) -> Throttle {
        Throttle::new(self.clone(), job, rate, direction)
    }

    /// Recompute every bucket's rate from caps, policy and the idle estimate (bytes/s).
    fn recompute(&self, config: &BandwidthConfig, idle_rate: Option<f64>) {
        let caps = config.max_rate;
        let policy = config.schedule.as_ref().map(|s| {
            let (period, limits) = s.at(self.clock.now());
            PolicyStatus { period, limits }
        });
        let policy_limits = policy
            .as_ref()
            .map_or_else(PriorityLimits::default, |p| p.limits);
        let effective = caps.min(policy_limits);
        for p in BACKGROUND {
            if let Some(i) = bucket_index(p) {
                self.priority[i].set_rate(effective.of(p));
            }
        }
        let idle_limit = match idle_rate {
            Some(r) if config.idle => Limit::BytesPerSec(r as u64),
            _ => Limit::Unlimited,
        };
        let target = effective.all.min(idle_limit);
        self.global.set_rate(target);
        let reason = if target.is_unlimited() {
            LimitReason::None
        } else if target == caps.all {
            LimitReason::Cap
        } else if target == policy_limits.all {
            LimitReason::Policy
        } else {
            LimitReason::Idle
        };
        // Only a schedule's 0 blocks (TransientError); a cap of 0 pauses the buckets instead.
        let blocked: Vec<Priority> = BACKGROUND
            .into_iter()
            .filter(|&p| policy_limits.blocks(p))
            .collect();
        let mut s = lock(&self.status);
        // The scheduler acts on a new blocked set, and says why jobs wait under new caps.
        let changed_blocked = s.blocked != blocked || s.caps != caps;
        s.target_rate = target;
        s.reason = reason;
        s.effective = effective;
        s.caps = caps;
        s.policy = policy;
        s.blocked = blocked;
        s.idle.enabled = config.idle;
        s.idle.counters = config.idle_counters;
        s.idle.delay = config.idle_delay;
        s.idle.rate = idle_limit;
        s.overridden = *lock(&self.overrides) != Overrides::default();
        drop(s);
        if changed_blocked {
            self.wake.notify_one();
        }
    }

    pub(crate) fn note_server(&self, job: JobId, url: &url::Url, direction: Direction) {
        if let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) {
            let mut servers = lock(&self.servers);
            if servers.is_empty() {
                // Until the monitor's next tick, up to a second away, nothing limits the
                // transfer: on a fast link its slow start fills the queue, and the first delay
                // probes take that queue for the path's base delay.
                self.started.notify_one();
            }
            servers.insert(job, (host.to_owned(), port, direction));
        }
        // A job whose priority changed while it ran is one or the other.
        lock(&self.foreground).remove(&job);
    }

    /// A foreground job's server: ebb's connections to it are left their full windows.
    pub(crate) fn note_foreground_server(&self, job: JobId, url: &url::Url) {
        if let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) {
            lock(&self.foreground).insert(job, (host.to_owned(), port));
        }
        lock(&self.servers).remove(&job);
    }

    pub(crate) fn forget_server(&self, job: JobId) {
        lock(&self.servers).remove(&job);
        lock(&self.foreground).remove(&job);
    }

    /// How to clamp the windows of downloads from the watched server this tick: to the shared
    /// rate in force, unless a foreground job shares the server (its bytes are never limited).
    fn clamp(&self, w: &Watch) -> Clamp {
        let Some((host, port, Direction::Down)) = &w.server else {
            return Clamp::Leave;
        };
        let shared = lock(&self.foreground)
            .values()
            .any(|(h, p)| h == host && p == port);
        match (self.global.rate().bytes_per_sec(), w.rtt) {
            (Some(rate), Some(rtt)) if !shared => Clamp::To {
                rate: rate as f64,
                rtt,
                gain: w.gain.gain(),
            },
            (Some(_), None) => Clamp::Leave,
            _ => Clamp::Lift,
        }
    }

    /// The monitor: every tick, sample the signals, update the estimate and the buckets.
    pub(crate) async fn monitor(self: Arc<Self>, stop: CancellationToken) {
        let mut watch = Watch::new(&self.effective_config());
        let mut next_probe = Instant::now();
        loop {
            // Sample every tick while background jobs run; otherwise only the schedule needs
            // watching, and once a second is enough.
            let period = if lock(&self.servers).is_empty() {
                IDLE_TICK
            } else {
                TICK
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(period) => {}
                () = self.started.notified() => {}
            }
            self.on_tick(&mut watch).await;
            if let Some(addr) = watch.probe
                && Instant::now() >= next_probe
            {
                next_probe = Instant::now() + PROBE_INTERVAL;
                let me = self.clone();
                tokio::spawn(async move { me.probe(addr).await });
            }
        }
    }

    async fn probe(&self, addr: SocketAddr) {
        let start = Instant::now();
        let rtt =
            match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(_stream)) => start.elapsed(),
                Ok(Err(e)) => {
                    tracing::debug!(%addr, error = %e, "delay probe failed");
                    return;
                }
                Err(_) => {
                    // A lost SYN waits out the kernel's one-second retransmission timer: one
                    // timeout is loss, not delay. Several in a row are a queue that long.
                    if self.probe_timeouts.fetch_add(1, Ordering::Relaxed) + 1 < PROBE_TIMEOUTS {
                        return;
                    }
                    PROBE_TIMEOUT
                }
            };
        if rtt < PROBE_TIMEOUT {
            self.probe_timeouts.store(0, Ordering::Relaxed);
        }
        let mut best = lock(&self.probe_rtt);
        *best = Some(best.map_or(rtt, |b| b.min(rtt)));
    }

    async fn on_tick(&self, w: &mut Watch) {
        let config = self.effective_config();
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(w.last);
        w.last = now;
        let (own_rx, own_tx) = (
            self.own_rx.swap(0, Ordering::Relaxed),
            self.own_tx.swap(0, Ordering::Relaxed),
        );
        let server = lock(&self.servers).values().next().cloned();
        if server != w.server {
            w.retarget(server.clone(), &config).await;
        }
        let upload = w.direction() == Direction::Up;
        let own = if upload { own_tx } else { own_rx };
        let signals = Signals {
            counters: config.idle_counters,
            delay: config.idle_delay,
        };
        w.estimator.set_signals(signals);
        let active = config.idle && w.server.is_some() && !w.loopback;
        let estimate = if active {
            Some(self.sample(w, &config, own, elapsed, now).await)
        } else {
            self.one_short.store(false, Ordering::Relaxed);
            w.pause(now).await;
            None
        };
        w.probe = if active && config.idle_delay {
            w.addr
        } else {
            None
        };
        self.recompute(&config, estimate.as_ref().and_then(|e| e.0.rate));
        let own = estimate.as_ref().map_or(own, |e| e.1);
        let mut s = lock(&self.status);
        s.background_rate = (own as f64 / elapsed.as_secs_f64().max(1e-3)) as u64;
        s.idle.active = active;
        s.idle.interface.clone_from(&w.iface);
        s.idle.probe_target = w.server.as_ref().map(|(h, p, _)| format!("{h}:{p}"));
        s.idle.congestion = w.kernel.sockets.congestion.map(str::to_owned);
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
        if let Some((e, _, rtt)) = estimate {
            s.idle.reason = e.reason;
            s.idle.foreground_rate = config.idle_counters.then_some(e.foreground as u64);
            s.idle.capacity = (e.capacity > 0.0).then_some(e.capacity as u64);
            s.idle.queue_delay_ms = ms(e.queue_delay);
            s.idle.base_delay_ms = ms(e.base_delay);
            s.idle.target_delay_ms = ms(e.target_delay);
            s.idle.connection_rtt_ms = ms(rtt);
            estimator::log(&e, &s, w.gain.gain());
        } else {
            s.idle.reason = IdleReason::Quiet;
            s.idle.foreground_rate = None;
            s.idle.queue_delay_ms = None;
            s.idle.base_delay_ms = None;
            s.idle.target_delay_ms = None;
            s.idle.connection_rtt_ms = None;
        }
    }

    /// One sample of the signals: the kernel's figures are read on a blocking thread. Returns
    /// the estimate, ebb's bytes this tick (on the wire where the kernel says, else as
    /// counted at reads) and its connections' RTT.
    async fn sample(
        &self,
        w: &mut Watch,
        config: &BandwidthConfig,
        read: u64,
        elapsed: Duration,
        now: Instant,
    ) -> (Estimate, u64, Option<Duration>) {
        let upload = w.direction() == Direction::Up;
        let mut kernel = std::mem::take(&mut w.kernel);
        let (iface, addr, counters) = (w.iface.clone(), w.addr, config.idle_counters);
        let clamp = self.clamp(w);
        let (iface_bytes, reading) = match tokio::task::spawn_blocking(move || {
            let r = kernel.read(iface.as_deref(), addr, upload, counters, clamp);
            (kernel, r)
        })
        .await
        {
            Ok((k, r)) => {
                w.kernel = k;
                r
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the kernel's figures failed");
                (None, None)
            }
        };
        let own = reading
            .filter(|r| r.connections > 0)
            .map_or(read, |r| r.bytes);
        // A sender's RTT includes the queue ahead of it; a receiver's estimate under-reads a
        // limited flow, so a download's is shown but not used.
        let socket_rtt = reading.and_then(|r| r.rtt).filter(|_| upload);
        let shown_rtt = reading.and_then(|r| if upload { r.rtt } else { r.rcv_rtt });
        let sample = Sample {
            elapsed,
            iface: iface_bytes,
            own,
            probe_rtt: lock(&self.probe_rtt).take(),
            socket_rtt,
        };
        if w.offered && !self.one_short.load(Ordering::Relaxed) {
            // The offer was taken: a download is opening more connections.
            w.offered = false;
            w.estimator.split_taken();
            w.gain.split_taken();
        }
        let estimate = w.estimator.update(sample, now);
        w.rtt = estimate.base_delay;
        let limit = self.global.rate().bytes_per_sec().map(|r| r as f64);
        w.gain.update(&estimate, limit, elapsed, now);
        // Offered to one split at a time: the flag is taken by the first download to split.
        if upload || !w.gain.starving() {
            self.one_short.store(false, Ordering::Relaxed);
            w.offered = false;
        } else if w.gain.take_starved(now) {
            self.one_short.store(true, Ordering::Relaxed);
            w.offered = true;
        }
        (estimate, own, shown_rtt)
    }

    /// Take the offer of one more split, if one connection is short of the idle link.
    pub(crate) fn take_one_short(&self) -> bool {
        self.one_short.swap(false, Ordering::Relaxed)
    }

    /// Count bytes a background transfer took off its connection (or, uploading, handed to it).
    fn count(&self, n: usize, direction: Direction) {
        let counter = match direction {
            Direction::Down => &self.own_rx,
            Direction::Up => &self.own_tx,
        };
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;

/// Which way a job's bytes go: the idle estimate watches that direction's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Direction {
    Down,
    Up,
}
