//! How much of the network is idle: a pure controller fed interface counters, ebb's own bytes
//! and probe round-trip times, one sample per tick. No clock or I/O here, so that it can be
//! tested with synthetic traffic. `docs/bandwidth.md` explains the algorithm and its constants.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::model::IdleReason;

/// Interface bytes per payload byte of a full-size TCP segment (1514 / 1448, Ethernet + IPv4 +
/// TCP with timestamps): what the interface counts for each byte ebb reads.
const OVERHEAD: f64 = 1.0456;
/// Queueing delay above which the path is congested (LEDBAT's TARGET; RFC 6817 caps it at
/// 100 ms, LEDBAT++ uses 60 ms). Lower reacts to gentler foreground flows (BBR adds ~25 ms).
const TARGET_DELAY: Duration = Duration::from_millis(25);
/// Multiplicative decrease at most once per this long, so that a queue that is still draining
/// is not punished twice.
const DECREASE_HOLD: Duration = Duration::from_millis(200);
/// The deepest single decrease (LEDBAT's GAIN applied to a queue of 2 x TARGET or more).
const GAIN: f64 = 0.5;
/// The deepest single decrease when the counters show no traffic but ebb's: the queue is ebb's
/// own (TCP filling the bottleneck), and a 20 % cut drains it without wasting the link.
const GAIN_SELF: f64 = 0.2;
/// Foreground traffic is measured over this window. ebb counts its bytes when it reads them and
/// the interface when they arrive; the socket buffer between the two makes per-tick differences
/// swing both ways, so they are summed over a window before anything is clamped.
const FG_WINDOW: Duration = Duration::from_millis(300);
/// Foreground traffic below max(FG_FLOOR, FG_SHARE x capacity) is noise, not a user.
const FG_FLOOR: f64 = 32.0 * 1024.0;
const FG_SHARE: f64 = 0.03;
/// Foreground traffic is "rising" when it grew by more than max(FG_FLOOR, FG_RISE_SHARE x
/// capacity) over the last FG_RISE_TICKS ticks; ebb then halves its rate (at most once per
/// DECREASE_HOLD), because a new flow needs room to grow into, not the share it has so far.
const FG_RISE_SHARE: f64 = 0.01;
const FG_RISE_TICKS: usize = 2;
/// What background jobs may use of the capacity that foreground traffic leaves.
const HEADROOM: f64 = 0.95;
/// The trickle that always flows: max(TRICKLE_FLOOR, TRICKLE_SHARE x capacity) bytes/s.
const TRICKLE_FLOOR: f64 = 32.0 * 1024.0;
const TRICKLE_SHARE: f64 = 0.02;
/// Growth per tick once the path is quiet: max(GROW_MUL x rate, GROW_ADD x capacity).
const GROW_MUL: f64 = 0.10;
const GROW_ADD: f64 = 0.08;
/// Growth only while ebb moves at least this share of its limit: a limit far above what ebb
/// gets would take long to come down when someone needs the link.
const BINDING: f64 = 0.5;
/// Growth stops at this multiple of the capacity estimate (in payload bytes), so that ebb alone
/// does not keep a standing queue at the bottleneck.
const CEILING: f64 = 1.02;
/// The capacity estimate (the highest total rate seen) halves over this long without a new peak.
const CAPACITY_HALF_LIFE: Duration = Duration::from_secs(300);
/// Base delay: the minimum RTT in each of the last BASE_HISTORY minutes (RFC 6817's
/// BASE_HISTORY).
const BASE_HISTORY: usize = 10;

/// One tick's observations.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub elapsed: Duration,
    /// Bytes the route's interface received this tick; `None` when counters are unavailable.
    pub iface_rx: Option<u64>,
    /// Bytes ebb's background transfers read this tick.
    pub own_rx: u64,
    /// Bytes waiting, unread, in the receive queues of ebb's background connections now; their
    /// change is traffic that is ebb's though not yet read. `None` when unknown.
    pub own_queued: Option<u64>,
    /// The best probe RTT completed this tick, if any.
    pub rtt: Option<Duration>,
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
    pub foreground: f64,
    pub capacity: f64,
    pub queue_delay: Option<Duration>,
}

/// The controller's state.
#[derive(Debug)]
pub struct Estimator {
    signals: Signals,
    rate: Option<f64>,
    reason: IdleReason,
    capacity: f64,
    /// Smoothed own rate, bytes/s.
    own: f64,
    /// Foreground rate over the window, bytes/s.
    foreground: f64,
    /// (seconds, interface bytes, own bytes) of the ticks in the window, newest last.
    window: VecDeque<(f64, f64, f64)>,
    /// The foreground estimates of the last FG_RISE_TICKS ticks, oldest first.
    fg_history: VecDeque<f64>,
    queued_prev: Option<u64>,
    total_prev: Option<f64>,
    /// (minute number, min RTT in that minute), newest last.
    base: VecDeque<(u64, Duration)>,
    recent: VecDeque<Duration>,
    started: Instant,
    last_decrease: Option<Instant>,
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

impl Estimator {
    pub fn new(signals: Signals, now: Instant) -> Self {
        Self {
            signals,
            rate: None,
            reason: IdleReason::Quiet,
            capacity: 0.0,
            own: 0.0,
            foreground: 0.0,
            window: VecDeque::new(),
            fg_history: VecDeque::new(),
            queued_prev: None,
            total_prev: None,
            base: VecDeque::new(),
            recent: VecDeque::new(),
            started: now,
            last_decrease: None,
        }
    }

    pub fn set_signals(&mut self, signals: Signals) {
        self.signals = signals;
    }

    fn trickle(&self) -> f64 {
        (TRICKLE_SHARE * self.capacity).max(TRICKLE_FLOOR)
    }

    fn note_rtt(&mut self, rtt: Duration, now: Instant) {
        let minute = now.saturating_duration_since(self.started).as_secs() / 60;
        match self.base.back_mut() {
            Some((m, min)) if *m == minute => *min = (*min).min(rtt),
            _ => {
                self.base.push_back((minute, rtt));
                while self.base.len() > BASE_HISTORY {
                    self.base.pop_front();
                }
            }
        }
        self.recent.push_back(rtt);
        while self.recent.len() > 2 {
            self.recent.pop_front();
        }
    }

    /// Queueing delay: the better of the last two probes over the base delay (one probe that
    /// met a burst is not a queue).
    fn queue_delay(&self) -> Option<Duration> {
        let base = self.base.iter().map(|&(_, d)| d).min()?;
        let now = self.recent.iter().min()?;
        Some(now.saturating_sub(base))
    }

    pub fn update(&mut self, s: Sample, now: Instant) -> Estimate {
        let dt = s.elapsed.as_secs_f64().max(1e-3);
        let queued_prev = std::mem::replace(&mut self.queued_prev, s.own_queued);
        let own = s.own_rx as f64 / dt;
        self.own = 0.5 * self.own + 0.5 * own;
        if let Some(rtt) = s.rtt {
            self.note_rtt(rtt, now);
        }
        let counters = self.signals.counters && s.iface_rx.is_some();
        if let Some(rx) = s.iface_rx.filter(|_| counters) {
            self.count(&s, rx, dt, queued_prev);
        } else {
            self.foreground = 0.0;
            self.window.clear();
        }
        let queue_delay = self.queue_delay().filter(|_| self.signals.delay);
        let delay_high = queue_delay.is_some_and(|d| d > TARGET_DELAY);
        let fg_present = counters && self.foreground > FG_FLOOR.max(FG_SHARE * self.capacity);
        let rising = self.foreground_rising(fg_present);
        let idle =
            fg_present.then(|| (HEADROOM * self.capacity - self.foreground).max(self.trickle()));
        if delay_high || rising {
            // A queue with no one else on the interface is ebb's own: a gentle cut drains it.
            let own_queue = counters && !fg_present;
            self.back_off(queue_delay.filter(|_| delay_high), own_queue, rising, now);
        } else {
            self.recover(fg_present);
        }
        if let Some(idle) = idle {
            self.rate = Some(self.rate.map_or(idle, |r| r.min(idle)));
        }
        Estimate {
            rate: self.rate,
            reason: self.reason,
            foreground: self.foreground,
            capacity: self.capacity,
            queue_delay,
        }
    }

    /// The interface counters of one tick: capacity, and the foreground traffic over the window.
    fn count(&mut self, s: &Sample, rx: u64, dt: f64, queued_prev: Option<u64>) {
        let total = rx as f64 / dt;
        // Two ticks' average: a tick that fired late must not read as a faster link.
        let smooth = self.total_prev.map_or(total, |p| 0.5 * (p + total));
        self.total_prev = Some(total);
        let decay = 0.5f64.powf(dt / CAPACITY_HALF_LIFE.as_secs_f64());
        self.capacity = (self.capacity * decay).max(smooth);
        // What arrived for ebb: what it read, plus what its socket buffers gained.
        let gained = match (queued_prev, s.own_queued) {
            (Some(a), Some(b)) => b as f64 - a as f64,
            _ => 0.0,
        };
        self.window
            .push_back((dt, rx as f64, s.own_rx as f64 + gained));
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
    }

    /// Whether foreground traffic is still growing: it wants room now, not what it has now.
    fn foreground_rising(&mut self, fg_present: bool) -> bool {
        let before = self.fg_history.front().copied().unwrap_or(0.0);
        let rising =
            fg_present && self.foreground - before > FG_FLOOR.max(FG_RISE_SHARE * self.capacity);
        self.fg_history.push_back(self.foreground);
        while self.fg_history.len() > FG_RISE_TICKS {
            self.fg_history.pop_front();
        }
        rising
    }

    /// Cut the rate for a queue (`delay`, when it is above target) or rising foreground
    /// traffic, at most once per hold time.
    fn back_off(&mut self, delay: Option<Duration>, own_queue: bool, rising: bool, now: Instant) {
        let may_decrease = self
            .last_decrease
            .is_none_or(|t| now.saturating_duration_since(t) >= DECREASE_HOLD);
        if may_decrease {
            let mut factor = 1.0;
            if let Some(qd) = delay {
                let target = TARGET_DELAY.as_secs_f64();
                // ebb's own queue drains with a gentle cut; someone's traffic, or a queue the
                // counters cannot see, calls for backing off in earnest.
                let gain = if own_queue { GAIN_SELF } else { GAIN };
                factor = 1.0 - gain * ((qd.as_secs_f64() - target) / target).min(1.0);
            }
            if rising {
                factor = factor.min(1.0 - GAIN);
            }
            let trickle = self.trickle();
            let from = self.rate.unwrap_or(self.own.max(trickle));
            self.rate = Some((from * factor).max(trickle));
            self.last_decrease = Some(now);
        }
        self.reason = if delay.is_some() {
            IdleReason::QueueDelay
        } else {
            IdleReason::Foreground
        };
    }

    /// No queue and no rising traffic: grow while the limit is what holds ebb back, up to what
    /// others leave.
    fn recover(&mut self, fg_present: bool) {
        let Some(r) = self.rate else {
            self.reason = if fg_present {
                IdleReason::Foreground
            } else {
                IdleReason::Quiet
            };
            return;
        };
        if self.own >= BINDING * r {
            let grown = r + (GROW_MUL * r).max(GROW_ADD * self.capacity);
            let ceiling = if self.capacity > 0.0 {
                CEILING * self.capacity / OVERHEAD
            } else {
                f64::INFINITY
            };
            self.rate = Some(grown.min(ceiling).max(self.trickle()));
        }
        self.reason = if fg_present {
            IdleReason::Foreground
        } else {
            IdleReason::Recovering
        };
    }

    /// Forget the limit (idle estimation switched off, or no transfers to estimate for).
    pub fn reset(&mut self) {
        self.rate = None;
        self.reason = IdleReason::Quiet;
        self.total_prev = None;
        self.window.clear();
        self.fg_history.clear();
        self.queued_prev = None;
        self.recent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(100);
    /// A 50 mbit link in bytes/s.
    const LINK: f64 = 6_250_000.0;
    const BASE: Duration = Duration::from_millis(20);

    /// A toy bottleneck: ebb reads min(its limit, what is left), foreground takes `fg`; the
    /// queue holds `queue` of delay.
    struct Net {
        est: Estimator,
        now: Instant,
    }

    impl Net {
        fn new() -> Self {
            let now = Instant::now();
            Self {
                est: Estimator::new(
                    Signals {
                        counters: true,
                        delay: true,
                    },
                    now,
                ),
                now,
            }
        }

        /// One tick with foreground `fg` bytes/s and a queue of `queue`; returns ebb's rate.
        fn tick(&mut self, fg: f64, queue: Duration) -> (f64, Estimate) {
            let limit = self.est.rate.unwrap_or(f64::INFINITY);
            let ebb = limit.min((LINK - fg).max(0.0));
            let secs = TICK.as_secs_f64();
            let sample = Sample {
                elapsed: TICK,
                iface_rx: Some(((ebb * OVERHEAD + fg) * secs) as u64),
                own_rx: (ebb * secs) as u64,
                own_queued: None,
                rtt: Some(BASE + queue),
            };
            self.now += TICK;
            let e = self.est.update(sample, self.now);
            (ebb, e)
        }
    }

    #[test]
    fn alone_it_takes_the_link_then_backs_off_within_a_second_and_recovers() {
        let mut net = Net::new();
        for _ in 0..30 {
            net.tick(0.0, Duration::ZERO);
        }
        let (ebb, e) = net.tick(0.0, Duration::ZERO);
        assert_eq!(e.rate, None, "a quiet network is not limited");
        assert!(ebb >= 0.99 * LINK);
        assert!((e.capacity / (LINK * OVERHEAD) - 1.0).abs() < 0.02);

        // A bulk foreground flow arrives: it fills the queue and takes what ebb leaves.
        let mut rates = Vec::new();
        for _ in 0..10 {
            let ebb_now = net.est.rate.unwrap_or(LINK);
            let fg = LINK - ebb_now.min(LINK / 2.0);
            let (ebb, e) = net.tick(fg, Duration::from_millis(90));
            rates.push((ebb, e.reason));
        }
        let (last, reason) = rates[rates.len() - 1];
        assert!(last <= 0.1 * LINK, "after 1 s ebb still takes {last}");
        assert_eq!(reason, IdleReason::QueueDelay);

        // By 2 s it is down to the trickle, and keeps it.
        for i in 0..50 {
            let (ebb, _) = net.tick(
                LINK - net.est.rate.unwrap_or(0.0),
                Duration::from_millis(90),
            );
            assert!(ebb >= TRICKLE_FLOOR);
            if i >= 10 {
                assert!(ebb <= 1.01 * TRICKLE_SHARE * LINK * OVERHEAD, "{ebb}");
            }
        }

        // The foreground flow ends: above 85 % of the link within 5 s.
        let mut t = 0;
        loop {
            let (ebb, _) = net.tick(0.0, Duration::ZERO);
            t += 1;
            if ebb >= 0.85 * LINK {
                break;
            }
            assert!(t < 50, "not recovered after 5 s");
        }
        assert!(t >= 5, "recovery should be gentle, not a jump ({t} ticks)");
    }

    #[test]
    fn a_filling_socket_buffer_is_not_foreground_traffic() {
        let mut net = Net::new();
        net.tick(0.0, Duration::ZERO);
        // The limit drops below what arrives: for 2 s the kernel buffers 2 MB/s that ebb does
        // not read yet. The interface sees it; the receive queue explains it.
        let mut queued = 0u64;
        for i in 0..21 {
            if i > 0 {
                queued += 200_000;
            }
            let s = Sample {
                elapsed: TICK,
                iface_rx: Some(((400_000 + queued.min(200_000)) as f64 * OVERHEAD) as u64),
                own_rx: 400_000,
                own_queued: Some(queued),
                rtt: Some(BASE),
            };
            net.now += TICK;
            let e = net.est.update(s, net.now);
            assert!(e.foreground < FG_FLOOR, "{}", e.foreground);
        }
        // Without the queue figure the same traffic reads as 2 MB/s of someone else's.
        let s = Sample {
            elapsed: TICK,
            iface_rx: Some(((400_000.0 + 200_000.0) * OVERHEAD) as u64),
            own_rx: 400_000,
            own_queued: None,
            rtt: Some(BASE),
        };
        net.now += TICK;
        net.est.window.clear();
        assert!(net.est.update(s, net.now).foreground > 1_900_000.0);
    }

    #[test]
    fn counters_alone_leave_a_paced_flow_its_share() {
        let mut net = Net::new();
        net.est.set_signals(Signals {
            counters: true,
            delay: false,
        });
        for _ in 0..20 {
            net.tick(0.0, Duration::ZERO);
        }
        // A paced 1 MiB/s flow (BBR-like: little queue): ebb yields while it starts, then
        // within 5 s takes what it leaves.
        let fg = 1_048_576.0;
        let mut e = None;
        for _ in 0..50 {
            e = Some(net.tick(fg, Duration::from_millis(5)).1);
        }
        let e = e.unwrap();
        assert_eq!(e.reason, IdleReason::Foreground);
        let rate = e.rate.unwrap();
        let left = LINK * OVERHEAD - fg;
        assert!(rate < left && rate > 0.8 * left, "{rate} of {left}");
        assert!((e.foreground / fg - 1.0).abs() < 0.05, "{}", e.foreground);
    }

    #[test]
    fn delay_alone_backs_off_and_switching_signals_off_means_no_limit() {
        let mut net = Net::new();
        net.est.set_signals(Signals {
            counters: false,
            delay: true,
        });
        net.tick(0.0, Duration::ZERO);
        let mut e = None;
        for _ in 0..10 {
            e = Some(net.tick(0.0, Duration::from_millis(100)).1);
        }
        assert_eq!(e.unwrap().reason, IdleReason::QueueDelay);
        assert!(e.unwrap().rate.unwrap() < 0.1 * LINK);
        assert!(
            e.unwrap().capacity < 1.0,
            "counters off: no capacity estimate"
        );

        net.est.set_signals(Signals {
            counters: false,
            delay: false,
        });
        net.est.reset();
        let (_, e) = net.tick(LINK, Duration::from_millis(100));
        assert_eq!(e.rate, None);
        assert_eq!(e.reason, IdleReason::Quiet);
    }

    #[test]
    fn base_delay_is_the_minimum_of_recent_minutes() {
        let now = Instant::now();
        let mut est = Estimator::new(
            Signals {
                counters: false,
                delay: true,
            },
            now,
        );
        est.note_rtt(Duration::from_millis(20), now);
        est.note_rtt(Duration::from_millis(60), now + Duration::from_secs(61));
        est.note_rtt(Duration::from_millis(70), now + Duration::from_secs(62));
        assert_eq!(est.queue_delay(), Some(Duration::from_millis(40)));
        // Eleven minutes on, the 20 ms minute has aged out.
        for m in 2..=11 {
            est.note_rtt(Duration::from_millis(50), now + Duration::from_secs(60 * m));
        }
        assert_eq!(est.queue_delay(), Some(Duration::ZERO));
    }

    #[test]
    fn counters_wrap_at_32_bits_and_resets_are_not_traffic() {
        assert_eq!(counter_delta(100, 250), 150);
        assert_eq!(counter_delta(u64::from(u32::MAX) - 9, 5), 15);
        assert_eq!(counter_delta(1 << 40, 5), 0);
    }
}
