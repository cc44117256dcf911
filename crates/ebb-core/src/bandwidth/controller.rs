//! The idle-capacity controller: one rate for all background transfers, from what the estimator
//! observed. A delay-based controller in the spirit of LEDBAT++ (RFC 6817, its successor
//! draft), driven on rate rather than on a congestion window because ebb limits the bytes it
//! takes, not the packets a server sends:
//!
//! - a **target delay** that scales with the path's base delay (half of it, 5 to 60 ms), so that
//!   a short path is not given a long queue and a long one is not starved by its jitter;
//! - **multiplicative decrease** in proportion to how far the queueing delay is over target, at
//!   most once per RTT-scale hold, gentler when the counters show the queue is ebb's own;
//! - **slowed start**: exponential growth only while the queue is under half the target, holding
//!   between half and all of it;
//! - a **budget** of what others leave: the link's capacity less the foreground traffic, with
//!   headroom, so that ebb alone keeps no standing queue and light foreground traffic costs ebb
//!   only the share it takes. At the budget with a clear path it probes a little above, so that
//!   a capacity estimate that is too low is found out;
//! - **periodic slowdowns** to re-measure the base delay when the queue never cleared for long.
//!
//! No clock or I/O here: the tests drive it with synthetic traces. `docs/bandwidth.md` explains
//! the constants.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::model::IdleReason;

/// Interface bytes per payload byte of a full-size TCP segment (1514 / 1448, Ethernet + IPv4 +
/// TCP with timestamps).
pub(super) const OVERHEAD: f64 = 1.0456;
/// The target delay is this share of the base delay, within the bounds below (RFC 6817 caps
/// TARGET at 100 ms; LEDBAT++ uses 60 ms).
const TARGET_SHARE: f64 = 0.5;
const TARGET_MIN: Duration = Duration::from_millis(5);
const TARGET_MAX: Duration = Duration::from_millis(60);
/// A decrease cuts the rate by the queue's excess over target, as a share of the target
/// (LEDBAT++'s multiplicative decrease with C = 1), at least GAIN_MIN and at most GAIN.
const GAIN: f64 = 0.5;
const GAIN_MIN: f64 = 0.05;
/// The deepest single decrease when the counters show no traffic but ebb's: the queue is ebb's
/// own, and a gentle cut drains it without wasting the link.
const GAIN_SELF: f64 = 0.2;
/// A decrease waits this long after the last one (about an RTT, within these bounds), so that
/// a queue that is still draining is not punished twice.
const HOLD_MIN: Duration = Duration::from_millis(100);
const HOLD_MAX: Duration = Duration::from_millis(300);
/// A transfer starts at the trickle and doubles every START_DOUBLING or base delay, whichever
/// is longer, until the queue reaches half the target (LEDBAT++'s slowed start): the first
/// probes see the path's base delay before ebb's own queue, and a fast link is full within a
/// fraction of a second.
const START_DOUBLING: Duration = Duration::from_millis(25);
/// A rate cut below this share of the budget starts again (doubling per base delay) once the
/// counters show ebb alone and the queue clear: it was held down by a flow that has ended.
const RESTART_BELOW: f64 = 0.25;
/// Growth while the path is clear: `rate × e^(GROW_RATE × t)` (x7.4 a second, from the trickle
/// to most of a link within 2 s), or GROW_ADD of the capacity a second, whichever is more.
const GROW_RATE: f64 = 2.0;
const GROW_ADD: f64 = 0.1;
/// How busy the path has been: the share of recent ticks with a queue at half the target or
/// more, smoothed with this time constant. Growth slows as it rises and stops at BUSY_STOP: a
/// bulk flow keeps the queue up most of the time and ebb must not grow into it between its
/// sawteeth, while web-like bursts raise it now and then and ebb must not lose its rate to them.
const BUSY_SMOOTH: Duration = Duration::from_millis(500);
const BUSY_STOP: f64 = 0.5;
/// Growth only while ebb moves at least this share of its limit: a limit far above what ebb
/// gets would take long to come down when someone needs the link.
const BINDING: f64 = 0.5;
/// What ebb may use of the capacity others leave. Below 1, so that ebb alone keeps no queue.
pub(super) const HEADROOM: f64 = 0.96;
/// At the budget with a clear path for PROBE_AFTER, the budget rises by PROBE_STEP of the
/// capacity a second, up to PROBE_MAX, until the queue shows where the link really is.
const PROBE_AFTER: Duration = Duration::from_millis(500);
const PROBE_STEP: f64 = 0.08;
const PROBE_MAX: f64 = 0.15;
/// ebb keeps up with a budget when it moves at least this share of it.
const KEEPING_UP: f64 = 0.9;
/// A flow ramping up: foreground traffic more than max(FG_FLOOR, RAMP_SHARE × capacity) above
/// the most it was between RAMP_MEMORY and RAMP_WINDOW ago. For RAMP_HOLD after that, ebb
/// leaves it RAMP_ROOM times what it takes, so that it can grow by doubling rather than into a
/// few per cent of headroom at a time. Web-like bursts, steady on average, never ramp: each
/// one rises no higher than the ones before it. (Measured against the foreground of RAMP_WINDOW
/// ago, 100 KiB fetches on 10 mbit, which swing the smoothed estimate by 7 % of the link, read
/// as ramping again and again: ebb was held to 0.5 of 0.85 MB/s for a second at a time.)
const RAMP_SHARE: f64 = 0.05;
const RAMP_WINDOW: Duration = Duration::from_millis(500);
const RAMP_MEMORY: Duration = Duration::from_secs(2);
const RAMP_HOLD: Duration = Duration::from_secs(1);
const RAMP_ROOM: f64 = 2.0;
/// Foreground traffic below max(FG_FLOOR, FG_SHARE × capacity) is noise, not a user.
const FG_FLOOR: f64 = 16.0 * 1024.0;
const FG_SHARE: f64 = 0.01;
/// The trickle that always flows: max(TRICKLE_FLOOR, TRICKLE_SHARE × capacity) bytes/s.
pub(super) const TRICKLE_FLOOR: f64 = 4.0 * 1024.0;
pub(super) const TRICKLE_SHARE: f64 = 0.02;
/// When the queue has not been under half the target for this long, ebb slows to the trickle
/// for a couple of RTTs so that the base delay can be measured again (LEDBAT++'s periodic
/// slowdown, only when it is needed).
const REMEASURE_AFTER: Duration = Duration::from_secs(30);
const SLOWDOWN_MIN: Duration = Duration::from_millis(200);
const SLOWDOWN_MAX: Duration = Duration::from_secs(1);

/// One tick's view of the path, as the estimator made it.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Observation {
    pub elapsed: Duration,
    /// ebb's background payload bytes/s on the wire (smoothed), and the same over a second.
    pub own: f64,
    pub own_slow: f64,
    /// The link's capacity in interface bytes/s, once the link was seen full; 0 until then.
    pub capacity: f64,
    /// Foreground traffic in interface bytes/s (smoothed); 0 without counters.
    pub foreground: f64,
    /// The same over the last few ticks only.
    pub foreground_now: f64,
    /// Whether the interface counters are read (foreground and capacity mean something).
    pub counters: bool,
    pub queue_delay: Option<Duration>,
    pub base_delay: Option<Duration>,
}

impl Observation {
    pub fn foreground_present(&self) -> bool {
        self.counters && self.foreground > self.noise()
    }

    /// Whether the counters show no one but ebb on the link right now.
    fn alone_now(&self) -> bool {
        self.counters && self.foreground_now <= self.noise()
    }

    fn noise(&self) -> f64 {
        noise(self.capacity)
    }

    fn trickle(&self) -> f64 {
        (TRICKLE_SHARE * self.capacity / OVERHEAD).max(TRICKLE_FLOOR)
    }
}

/// Foreground traffic at or below this, on a link of this capacity, is noise, not a user.
pub(super) fn noise(capacity: f64) -> f64 {
    FG_FLOOR.max(FG_SHARE * capacity)
}

/// The target queueing delay for a path of this base delay.
pub(super) fn target(base: Option<Duration>) -> Duration {
    base.map_or(TARGET_MAX, |b| {
        b.mul_f64(TARGET_SHARE).clamp(TARGET_MIN, TARGET_MAX)
    })
}

#[derive(Clone, Copy, Debug)]
struct Slowdown {
    until: Instant,
    restore: f64,
}

/// The controller's state.
#[derive(Debug)]
pub(super) struct Controller {
    /// Bytes/s for all background transfers; `None` = no limit (no signal to go by).
    rate: Option<f64>,
    /// In the slowed start: doubling per base delay until the queue first shows.
    starting: bool,
    reason: IdleReason,
    last_decrease: Option<Instant>,
    /// When the queue was last under half the target.
    last_clear: Instant,
    /// Since when the budget has bound with a clear path.
    at_budget_since: Option<Instant>,
    /// How far the budget is raised above the headroom, as a share of the capacity.
    probe: f64,
    /// The smoothed share of ticks with a queue (see BUSY_SMOOTH).
    busy: f64,
    /// (when, smoothed foreground) over the last RAMP_MEMORY, oldest first.
    fg_history: VecDeque<(Instant, f64)>,
    /// Until when a ramping flow is left room.
    ramping_until: Option<Instant>,
    slowdown: Option<Slowdown>,
}

impl Controller {
    pub fn new(now: Instant) -> Self {
        Self {
            rate: None,
            starting: true,
            reason: IdleReason::Quiet,
            last_decrease: None,
            last_clear: now,
            at_budget_since: None,
            probe: 0.0,
            busy: 0.0,
            fg_history: VecDeque::new(),
            ramping_until: None,
            slowdown: None,
        }
    }

    #[cfg(test)]
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// Whether a foreground flow is taken for one ramping up.
    #[cfg(test)]
    pub fn ramping(&self) -> bool {
        self.ramping_until.is_some()
    }

    pub fn reason(&self) -> IdleReason {
        self.reason
    }

    /// A download split its file over more connections, `own` being what the one moved over
    /// a second: from a limit that never bound (a loss-limited connection keeps no queue), the
    /// new ones would all grow at once into the queue; from twice what the one moved, they grow
    /// into the link.
    pub fn split_taken(&mut self, own: f64) {
        if let Some(r) = self.rate {
            self.rate = Some(r.min((2.0 * own).max(TRICKLE_FLOOR)));
        }
    }

    /// Forget the limit (no transfers to control, or control switched off).
    pub fn reset(&mut self, now: Instant) {
        *self = Self::new(now);
    }

    /// What ebb may use of what others leave, in payload bytes/s.
    fn budget(&self, o: &Observation) -> f64 {
        if o.capacity > 0.0 && o.counters {
            let room = if self.ramping_until.is_some() {
                RAMP_ROOM
            } else {
                1.0
            };
            let others = room * o.foreground;
            (((HEADROOM + self.probe) * o.capacity - others) / OVERHEAD).max(o.trickle())
        } else {
            f64::INFINITY
        }
    }

    /// Whether a foreground flow is ramping up (see RAMP_SHARE).
    fn note_ramp(&mut self, o: &Observation, now: Instant) {
        self.fg_history.push_back((now, o.foreground));
        while self
            .fg_history
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > RAMP_MEMORY)
        {
            self.fg_history.pop_front();
        }
        // The most of what is old enough; in the first RAMP_WINDOW, the first figure.
        let before = self
            .fg_history
            .iter()
            .filter(|(t, _)| now.saturating_duration_since(*t) >= RAMP_WINDOW)
            .map(|f| f.1)
            .reduce(f64::max)
            .or_else(|| self.fg_history.front().map(|f| f.1))
            .unwrap_or(0.0);
        if o.counters && o.foreground - before > (RAMP_SHARE * o.capacity).max(FG_FLOOR) {
            self.ramping_until = Some(now + RAMP_HOLD);
        } else if self.ramping_until.is_some_and(|t| now >= t) {
            self.ramping_until = None;
        }
    }

    /// One tick: the new rate.
    pub fn step(&mut self, o: &Observation, now: Instant) -> Option<f64> {
        if self.slowing_down(o, now) {
            return self.rate;
        }
        if self.rate.is_none() && o.queue_delay.is_some() {
            // The delay signal is there: start at the trickle, and grow from it.
            self.rate = Some(o.trickle());
            self.starting = true;
            self.reason = IdleReason::Recovering;
        }
        self.note_ramp(o, now);
        let target = target(o.base_delay);
        let over = o.queue_delay.filter(|&q| q > target);
        let clear = o.queue_delay.is_none_or(|q| q < target / 2);
        if clear {
            self.last_clear = now;
        }
        if let Some(q) = o.queue_delay {
            let queued = if q >= target / 2 { 1.0 } else { 0.0 };
            let dt = o.elapsed.as_secs_f64();
            self.busy += (1.0 - (-dt / BUSY_SMOOTH.as_secs_f64()).exp()) * (queued - self.busy);
            if q >= target / 2 {
                self.starting = false;
            } else if o.alone_now()
                && self
                    .rate
                    .is_some_and(|r| r < RESTART_BELOW * self.budget(o))
            {
                // Whoever held ebb down is gone and the queue with them: start again, so that
                // ebb is back within a few round trips rather than seconds.
                self.starting = true;
            }
        }
        if let Some(q) = over {
            self.back_off(o, q, target, now);
            self.probe = 0.0;
        } else if clear {
            self.grow(o);
        }
        self.keep_to_budget(o, clear, now);
        if self.rate.is_some() && now.saturating_duration_since(self.last_clear) > REMEASURE_AFTER {
            self.start_slowdown(o, now);
        }
        self.rate
    }

    /// A periodic slowdown in progress holds the trickle; at its end the rate it interrupted
    /// comes back.
    fn slowing_down(&mut self, o: &Observation, now: Instant) -> bool {
        let Some(s) = self.slowdown else {
            return false;
        };
        if now < s.until {
            self.rate = Some(o.trickle());
            self.reason = IdleReason::Remeasuring;
            return true;
        }
        self.slowdown = None;
        self.rate = Some(s.restore);
        self.last_clear = now;
        false
    }

    fn start_slowdown(&mut self, o: &Observation, now: Instant) {
        let rtt = o.base_delay.unwrap_or_default() + o.queue_delay.unwrap_or_default();
        let length = (rtt * 2).clamp(SLOWDOWN_MIN, SLOWDOWN_MAX);
        self.slowdown = Some(Slowdown {
            until: now + length,
            restore: self.rate.unwrap_or_else(|| o.trickle()),
        });
        self.rate = Some(o.trickle());
        self.reason = IdleReason::Remeasuring;
    }

    /// The queue is over target: cut in proportion, at most once per hold.
    fn back_off(&mut self, o: &Observation, q: Duration, target: Duration, now: Instant) {
        self.reason = IdleReason::QueueDelay;
        self.at_budget_since = None;
        let hold = (o.base_delay.unwrap_or_default() + q).clamp(HOLD_MIN, HOLD_MAX);
        if self
            .last_decrease
            .is_some_and(|t| now.saturating_duration_since(t) < hold)
        {
            return;
        }
        // A queue with no one else on the interface is ebb's own: a gentle cut drains it.
        let gain = if o.counters && !o.foreground_present() {
            GAIN_SELF
        } else {
            GAIN
        };
        let excess = (q.as_secs_f64() - target.as_secs_f64()) / target.as_secs_f64();
        let factor = 1.0 - excess.clamp(GAIN_MIN, gain);
        let trickle = o.trickle();
        // From what ebb really moves: a limit far above it would take many cuts to bind.
        let moving = (1.5 * o.own).max(trickle);
        let from = self.rate.map_or(moving, |r| r.min(moving));
        self.rate = Some((from * factor).max(trickle));
        self.last_decrease = Some(now);
    }

    /// A clear path: grow while the limit is what holds ebb back.
    fn grow(&mut self, o: &Observation) {
        let Some(r) = self.rate else {
            return;
        };
        self.reason = IdleReason::Recovering;
        if o.own < BINDING * r {
            return;
        }
        let dt = o.elapsed.as_secs_f64();
        let rate = if self.starting {
            let doubling = o.base_delay.unwrap_or_default().max(START_DOUBLING);
            std::f64::consts::LN_2 / doubling.as_secs_f64()
        } else {
            GROW_RATE * (1.0 - self.busy / BUSY_STOP).max(0.0)
        };
        if rate <= 0.0 {
            return;
        }
        let mul = r * ((rate * dt).exp() - 1.0);
        let add = GROW_ADD * dt * o.capacity / OVERHEAD * rate / GROW_RATE;
        self.rate = Some(r + mul.max(add));
    }

    /// No more than what others leave; at that budget on a clear path for a while, probe above
    /// it a little, since the capacity seen may be less than the link's.
    fn keep_to_budget(&mut self, o: &Observation, clear: bool, now: Instant) {
        let budget = self.budget(o);
        let Some(r) = self.rate else {
            if o.foreground_present() && budget.is_finite() {
                // Someone is on the link: from now on ebb keeps to what they leave.
                self.rate = Some(budget);
                self.reason = IdleReason::Foreground;
            }
            return;
        };
        if r < budget {
            self.at_budget_since = None;
            self.probe = 0.0;
            return;
        }
        self.rate = Some(budget);
        if self.reason != IdleReason::QueueDelay {
            self.reason = if o.foreground_present() {
                IdleReason::Foreground
            } else {
                IdleReason::Capacity
            };
        }
        // Probing is for a link ebb has to itself: with others on it, its capacity shows.
        if !clear || o.foreground_present() {
            self.at_budget_since = None;
            self.probe = 0.0;
            return;
        }
        // It goes on while ebb keeps up with the budget, now or over a second (a lossy path's
        // connections stall now and then), and holds while it does not.
        if o.own.max(o.own_slow) < KEEPING_UP * budget {
            return;
        }
        let since = *self.at_budget_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= PROBE_AFTER {
            self.probe = (self.probe + PROBE_STEP * o.elapsed.as_secs_f64()).min(PROBE_MAX);
        }
    }
}
