//! How much of the network is idle: the observations (foreground traffic, the link's capacity,
//! the base and queueing delay) made from interface counters, ebb's own bytes on the wire and
//! round-trip times, one sample per tick, and the [`Controller`] that turns them into a rate.
//! No clock or I/O here, so that it can be tested with synthetic traffic.
//! `docs/bandwidth.md` explains the algorithm and its constants.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::controller::{Controller, OVERHEAD, Observation, noise, target};
use crate::model::{BandwidthStatus, IdleReason};

/// Foreground traffic is the interface's bytes less ebb's, summed over this window before it
/// is clamped (the two are sampled at slightly different moments), then smoothed with these
/// time constants, quick to rise and slower to fall: a flow that arrives is left room at once,
/// and a user's bursts are left what they take, not each gap between them. A fall of 1 s read
/// web fetches on 10 mbit (100 KiB every 400 ms) as 1.3 times what they take, and held ebb
/// down for a second after a flow ended.
const FG_WINDOW: Duration = Duration::from_millis(300);
const FG_RISE: Duration = Duration::from_millis(200);
const FG_FALL: Duration = Duration::from_millis(500);
/// Foreground traffic that stayed at nothing for this long (longer than the gaps between a
/// user's fetches, 100-300 ms on the bed) has ended: the smoothed figure drops to it at once.
const FG_GONE: Duration = Duration::from_millis(500);
/// The capacity is the highest total rate over a window that carries this many bytes at the
/// capacity known (the shortest window until it is known): long enough that a shaper's burst
/// (a token bucket lets its bucket through at line rate after a quiet moment; 16 KB is a
/// sixteenth of a second on a 2 mbit link) reads as 3 % at most above 4 mbit and 6.4 % on
/// 2 mbit, not as a faster link. A burst read while the capacity is not yet known (a third
/// more on 2 mbit) is brought down by the queue that the budget then builds (see
/// `learn_capacity`);
const CAPACITY_BYTES: f64 = 500_000.0;
/// and within these bounds: short enough on a fast link that the window just after the slow
/// start is not mostly the ramp (on 200 mbit a second's average read 65-80 % of the link, and
/// the budget then held ebb there while probing found the rest, for seconds).
const CAPACITY_WINDOW_MIN: Duration = Duration::from_millis(200);
const CAPACITY_WINDOW_MAX: Duration = Duration::from_secs(1);
/// ebb's own rate is smoothed with this time constant...
const OWN_SMOOTH: Duration = Duration::from_millis(200);
/// ...and, to judge whether it keeps up with its limit (a lossy path's connections stall now
/// and then), with this one too: the rate over about a second, or since the start if that is
/// shorter (an average that starts at nothing would read a connection that fills the link as
/// short of it for seconds).
pub(super) const OWN_SLOW: Duration = Duration::from_secs(1);
/// A queue over target for this many ticks in a row with ebb alone on the interface means the
/// link is full at the rate seen: the capacity is at most that.
const SATURATED_TICKS: u32 = 3;
/// The capacity comes down at most this share a tick on that evidence.
const CAPACITY_STEP_DOWN: f64 = 0.1;
/// Base delay: the minimum RTT in each of the last BASE_HISTORY minutes (RFC 6817's
/// BASE_HISTORY).
const BASE_HISTORY: usize = 10;
/// The current delay is the best RTT of the samples completed within this long (one probe
/// that met a burst is not a queue), or the last one.
const RECENT: Duration = Duration::from_millis(150);

/// One tick's observations.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub elapsed: Duration,
    /// Bytes the route's interface moved this tick in the watched direction; `None` when
    /// counters are unavailable.
    pub iface: Option<u64>,
    /// Payload bytes ebb's background connections moved this tick (on the wire where the
    /// kernel says so, else as read).
    pub own: u64,
    /// The best probe RTT completed this tick, if any.
    pub probe_rtt: Option<Duration>,
    /// The best smoothed RTT of ebb's own connections, where it sees the queue (uploads).
    pub socket_rtt: Option<Duration>,
}

/// Which signals to use (each can be switched off in config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signals {
    pub counters: bool,
    pub delay: bool,
}

/// What the estimator says after a tick.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// Bytes/s for all background transfers; `None` = no idle limit.
    pub rate: Option<f64>,
    pub reason: IdleReason,
    /// ebb's own payload bytes/s (smoothed).
    pub own: f64,
    /// The same over about a second (OWN_SLOW).
    pub own_slow: f64,
    pub foreground: f64,
    /// The link's capacity, interface bytes/s: the most seen, a lower bound until the link was
    /// seen full (`capacity_known`).
    pub capacity: f64,
    pub capacity_known: bool,
    /// The most the link was seen to carry, interface bytes/s: the capacity before any step
    /// down (on a lossy path, a queue over stalled connections brought it 10 % under the link).
    pub peak: f64,
    pub queue_delay: Option<Duration>,
    pub base_delay: Option<Duration>,
    pub target_delay: Option<Duration>,
    /// Whether the counters show others' traffic on the link.
    pub shared: bool,
}

/// Base and current delay of one kind of RTT sample.
#[derive(Debug, Default)]
struct Delay {
    /// (minute number, min RTT in that minute), newest last.
    base: VecDeque<(u64, Duration)>,
    /// (when, RTT) of the latest samples, newest last.
    recent: VecDeque<(Instant, Duration)>,
}

impl Delay {
    fn note(&mut self, rtt: Duration, minute: u64, now: Instant) {
        match self.base.back_mut() {
            Some((m, min)) if *m == minute => *min = (*min).min(rtt),
            _ => {
                self.base.push_back((minute, rtt));
                while self.base.len() > BASE_HISTORY {
                    self.base.pop_front();
                }
            }
        }
        self.recent.push_back((now, rtt));
        while self.recent.len() > 1
            && self
                .recent
                .front()
                .is_some_and(|(t, _)| now.saturating_duration_since(*t) > RECENT)
        {
            self.recent.pop_front();
        }
    }

    fn base(&self) -> Option<Duration> {
        self.base.iter().map(|&(_, d)| d).min()
    }

    /// (queueing delay, base delay).
    fn queue(&self) -> Option<(Duration, Duration)> {
        let base = self.base()?;
        let now = self.recent.iter().map(|&(_, d)| d).min()?;
        Some((now.saturating_sub(base), base))
    }

    fn clear(&mut self) {
        self.recent.clear();
    }
}

/// The estimator's state.
#[derive(Debug)]
pub struct Estimator {
    signals: Signals,
    controller: Controller,
    capacity: f64,
    peak: f64,
    /// Smoothed own rate, payload bytes/s, and the same over OWN_SLOW with the weight its
    /// average has had so far (1 − e^(−t/OWN_SLOW)), to divide by.
    own: f64,
    own_slow: f64,
    own_slow_weight: f64,
    /// Foreground rate, interface bytes/s: over the window, and smoothed.
    foreground: f64,
    fg_smooth: f64,
    /// (seconds, interface bytes, own bytes) of the ticks in the window, newest last.
    window: VecDeque<(f64, f64, f64)>,
    /// (seconds, interface bytes) of the ticks in CAPACITY_WINDOW_MAX, newest last.
    totals: VecDeque<(f64, f64)>,
    /// Seconds the foreground has been at nothing (noise).
    fg_quiet: f64,
    saturated: u32,
    /// Ticks in a row with a queue at half the target or more.
    queued: u32,
    /// Whether the link was seen full (a queue at half the target or more for SATURATED_TICKS):
    /// until then the highest rate seen is only a lower bound of the capacity.
    full_seen: bool,
    probe: Delay,
    socket: Delay,
    started: Instant,
}

/// The bytes a counter moved from `prev` to `cur`. A counter that went down wrapped if it was a
/// 32-bit one (macOS's `if_data` counters wrap at 4 GiB), else it was reset.
pub fn counter_delta(prev: u64, cur: u64) -> u64 {
    if cur >= prev {
        cur - prev
    } else if u32::try_from(prev).is_ok() {
        cur + (1u64 << 32) - prev
    } else {
        0
    }
}

/// An exponential moving average's weight for a step of `dt` with time constant `tau`.
pub(super) fn weight(dt: f64, tau: Duration) -> f64 {
    1.0 - (-dt / tau.as_secs_f64()).exp()
}

impl Estimator {
    pub fn new(signals: Signals, now: Instant) -> Self {
        Self {
            signals,
            controller: Controller::new(now),
            capacity: 0.0,
            peak: 0.0,
            own: 0.0,
            own_slow: 0.0,
            own_slow_weight: 0.0,
            foreground: 0.0,
            fg_smooth: 0.0,
            window: VecDeque::new(),
            totals: VecDeque::new(),
            fg_quiet: 0.0,
            saturated: 0,
            queued: 0,
            full_seen: false,
            probe: Delay::default(),
            socket: Delay::default(),
            started: now,
        }
    }

    /// A download split its file over more connections (`Controller::split_taken`).
    pub fn split_taken(&mut self) {
        if let Some(own) = self.own_slow() {
            self.controller.split_taken(own);
        }
    }

    /// ebb's rate over about a second, or since the start if that is shorter; none before the
    /// first tick.
    fn own_slow(&self) -> Option<f64> {
        (self.own_slow_weight > 0.0).then(|| self.own_slow / self.own_slow_weight)
    }

    pub fn set_signals(&mut self, signals: Signals) {
        self.signals = signals;
    }

    /// The queueing delay and base delay: the worse of what the probes and ebb's own
    /// connections show.
    fn queue_delay(&self) -> Option<(Duration, Duration)> {
        match (self.probe.queue(), self.socket.queue()) {
            (Some(p), Some(s)) => Some(if s.0 > p.0 { s } else { p }),
            (p, s) => p.or(s),
        }
    }

    pub fn update(&mut self, s: Sample, now: Instant) -> Estimate {
        let dt = s.elapsed.as_secs_f64().max(1e-3);
        self.own += weight(dt, OWN_SMOOTH) * (s.own as f64 / dt - self.own);
        let w = weight(dt, OWN_SLOW);
        self.own_slow += w * (s.own as f64 / dt - self.own_slow);
        self.own_slow_weight += w * (1.0 - self.own_slow_weight);
        let own_slow = self.own_slow().unwrap_or(0.0);
        let minute = now.saturating_duration_since(self.started).as_secs() / 60;
        if let Some(rtt) = s.probe_rtt {
            self.probe.note(rtt, minute, now);
        }
        if let Some(rtt) = s.socket_rtt {
            self.socket.note(rtt, minute, now);
        }
        let delays = self.queue_delay().filter(|_| self.signals.delay);
        let counters = self.signals.counters && s.iface.is_some();
        if let Some(iface) = s.iface.filter(|_| counters) {
            self.count(iface, s.own, dt);
            self.learn_capacity(iface as f64, dt, delays);
        } else {
            self.foreground = 0.0;
            self.fg_smooth = 0.0;
            self.window.clear();
        }
        let o = Observation {
            elapsed: s.elapsed,
            own: self.own,
            own_slow,
            capacity: if counters && (self.full_seen || !self.signals.delay) {
                self.capacity
            } else {
                0.0
            },
            foreground: self.fg_smooth,
            foreground_now: self.foreground,
            counters,
            queue_delay: delays.map(|d| d.0),
            base_delay: delays.map(|d| d.1),
        };
        let rate = self.controller.step(&o, now);
        Estimate {
            rate,
            reason: self.controller.reason(),
            own: self.own,
            own_slow,
            foreground: self.fg_smooth,
            capacity: if counters { self.capacity } else { 0.0 },
            capacity_known: counters && self.full_seen,
            peak: if counters { self.peak } else { 0.0 },
            queue_delay: o.queue_delay,
            base_delay: o.base_delay,
            target_delay: delays.map(|d| target(Some(d.1))),
            shared: o.foreground_present(),
        }
    }

    /// The interface counters of one tick: the foreground traffic over the window, smoothed.
    fn count(&mut self, iface: u64, own: u64, dt: f64) {
        self.window.push_back((dt, iface as f64, own as f64));
        while self.window.iter().map(|w| w.0).sum::<f64>() > FG_WINDOW.as_secs_f64() + 1e-6
            && self.window.len() > 1
        {
            self.window.pop_front();
        }
        let (secs, iface, mine) = self
            .window
            .iter()
            .fold((0.0, 0.0, 0.0), |a, w| (a.0 + w.0, a.1 + w.1, a.2 + w.2));
        self.foreground = ((iface - OVERHEAD * mine) / secs).max(0.0);
        let tau = if self.foreground > self.fg_smooth {
            FG_RISE
        } else {
            FG_FALL
        };
        self.fg_smooth += weight(dt, tau) * (self.foreground - self.fg_smooth);
        let noise = noise(self.capacity);
        self.fg_quiet = if self.foreground <= noise {
            self.fg_quiet + dt
        } else {
            0.0
        };
        if self.fg_quiet >= FG_GONE.as_secs_f64() {
            self.fg_smooth = self.fg_smooth.min(self.foreground);
        }
    }

    /// The capacity: the highest total rate seen over the capacity window (nothing until the
    /// ticks span it); and, when the queue stays over target with no one but ebb on the
    /// interface, the link is full at the rate seen, so the capacity comes down towards it (a
    /// slower link than the peak said, or traffic the counters cannot see).
    fn learn_capacity(&mut self, bytes: f64, dt: f64, delays: Option<(Duration, Duration)>) {
        let over = delays.is_some_and(|(q, base)| q > target(Some(base)));
        // A queue for a few ticks in a row, not one burst's (on a lossy path the flows never
        // fill the link, yet their bursts queue now and then).
        self.queued = if delays.is_some_and(|(q, base)| q >= target(Some(base)) / 2) {
            self.queued + 1
        } else {
            0
        };
        if self.queued >= SATURATED_TICKS {
            self.full_seen = true;
        }
        let alone = self.fg_smooth <= noise(self.capacity);
        self.saturated = if over && alone { self.saturated + 1 } else { 0 };
        self.totals.push_back((dt, bytes));
        let Some(total) = self.trim_and_total() else {
            return;
        };
        if self.saturated >= SATURATED_TICKS && total < self.capacity {
            self.capacity = total.max((1.0 - CAPACITY_STEP_DOWN) * self.capacity);
        }
        self.capacity = self.capacity.max(total);
        self.peak = self.peak.max(total);
    }

    /// Drop the ticks older than CAPACITY_WINDOW_MAX; the total rate over the newest ticks that
    /// span the capacity window (see `CAPACITY_BYTES`), if they do yet.
    fn trim_and_total(&mut self) -> Option<f64> {
        // Not known yet: the shortest window, so that the slow start's last moments count.
        let known = if self.capacity > 0.0 {
            CAPACITY_BYTES / self.capacity
        } else {
            0.0
        };
        let span = known.clamp(
            CAPACITY_WINDOW_MIN.as_secs_f64(),
            CAPACITY_WINDOW_MAX.as_secs_f64(),
        ) - 1e-6;
        let max = CAPACITY_WINDOW_MAX.as_secs_f64() - 1e-6;
        while self.totals.iter().skip(1).map(|t| t.0).sum::<f64>() >= max {
            self.totals.pop_front();
        }
        let (mut secs, mut sum) = (0.0, 0.0);
        for &(dt, bytes) in self.totals.iter().rev() {
            secs += dt;
            sum += bytes;
            if secs >= span {
                return Some(sum / secs);
            }
        }
        None
    }

    /// Forget the limit (idle estimation switched off, or no transfers to estimate for). The
    /// capacity and base delay are the link's and stay.
    pub fn reset(&mut self, now: Instant) {
        self.controller.reset(now);
        // ebb's rate over a second is of this run of transfers.
        self.own_slow = 0.0;
        self.own_slow_weight = 0.0;
        self.totals.clear();
        self.window.clear();
        self.foreground = 0.0;
        self.fg_smooth = 0.0;
        self.saturated = 0;
        self.queued = 0;
        self.probe.clear();
        self.socket.clear();
    }
}

/// The per-tick debug line: what was estimated, the limit in force, and the window gain for the
/// next tick.
pub(super) fn log(e: &Estimate, s: &BandwidthStatus, gain: f64) {
    tracing::debug!(
        gain,
        base_delay_ms = s.idle.base_delay_ms,
        target_rate = %s.target_rate,
        reason = %s.reason,
        idle_reason = %e.reason,
        foreground = e.foreground as u64,
        capacity = e.capacity as u64,
        queue_delay_ms = e.queue_delay.map(|d| d.as_secs_f64() * 1000.0),
        background = s.background_rate,
        "bandwidth"
    );
}

#[cfg(test)]
mod tests;
