//! The gain of the receive-window clamp on ebb's downloads, and whether one connection is short
//! of an idle link (`docs/bandwidth.md`, "A lossy path").

use std::time::Duration;

use tokio::time::Instant;

use super::controller::{HEADROOM, OVERHEAD};
use super::estimator::{Estimate, OWN_SLOW};
use super::sockets::{CLAMP_GAIN_ALONE, CLAMP_GAIN_SHARED};

/// The window clamp's gain: CLAMP_GAIN_ALONE with ebb alone on the link, CLAMP_GAIN_SHARED with
/// others on it; and, on a clear path, raised while ebb moves clearly less than its limit
/// (after GAIN_AFTER; with others on the link, after GAIN_AFTER_SHARED above the raise the path
/// needed with ebb alone; up to GAIN_MAX, doubling each GAIN_DOUBLING): then the window is
/// what holds it back, as on a lossy path, where every lost segment stalls a window just one
/// round trip long until it is sent again. A queue over the target brings it back at once; one
/// between half the target and all of it holds it.
///
/// Alone on a clear path, with a limit of at least half the link and a window of at least
/// GAIN_MAX times what ebb moves (so that the window is not what holds it), still moving less
/// than STARVED_SHARE of that limit and, over a second (once there was one), less than
/// FILLED_SHARE of the link if it was seen full, for STARVED_AFTER: one connection is short of
/// the idle link (loss-limited), and a background download may split its file over more
/// (`transfer::http::split`).
#[derive(Debug)]
pub(super) struct WindowGain {
    /// Whether the last estimate found others on the link.
    shared: bool,
    /// What the gain is raised above the base (1: not at all).
    boost: f64,
    /// The raise while ebb was last alone on the link: what the path needs (a lossy one).
    alone_boost: f64,
    short_since: Option<Instant>,
    starved_since: Option<Instant>,
    /// How long the estimates have been watched: ebb's rate over a second means something
    /// only after one.
    watched: Duration,
}

/// Under this share of the limit is short of it: the controller grows its rate only while ebb
/// moves at least half of it, so a connection that cannot go faster leaves the limit at about
/// twice what it moves.
const STARVED_SHARE: f64 = 0.55;
/// A limit of at least this share of the capacity: the link is idle.
const IDLE_LIMIT: f64 = 0.5;
const STARVED_AFTER: Duration = Duration::from_secs(1);
/// A connection that moves this share of a link seen full is not short of it, whatever its
/// limit: during the slowed start the limit grows ahead of ebb, and one bbr connection that
/// filled a lossy link (86-93 % of it) was split over 8 for nothing. A link that was never
/// seen full (a loss-limited connection never fills it) has no capacity to compare with: the
/// most seen is then the connection's own best, and a cubic connection moved 15-83 % of its
/// best half second over a second, so that the split waited seconds for a dip.
const FILLED_SHARE: f64 = 0.8;

const GAIN_MAX: f64 = 4.0;
const GAIN_DOUBLING: Duration = Duration::from_millis(500);
/// Moving less than this share of the limit for GAIN_AFTER is falling short of it.
const SHORT_SHARE: f64 = 0.9;
const GAIN_AFTER: Duration = Duration::from_millis(300);
/// The same with others on the link: longer than a flow's arrival (on 200 mbit with web fetches
/// the gain grew from 1.1 to 1.24 as they began, and ebb then yielded to them no more).
const GAIN_AFTER_SHARED: Duration = Duration::from_secs(2);

impl Default for WindowGain {
    fn default() -> Self {
        Self {
            shared: false,
            boost: 1.0,
            alone_boost: 1.0,
            short_since: None,
            starved_since: None,
            watched: Duration::ZERO,
        }
    }
}

impl WindowGain {
    pub fn gain(&self) -> f64 {
        (self.base() * self.boost).min(GAIN_MAX)
    }

    /// The gain before any raise: CLAMP_GAIN_SHARED with others on the link, else
    /// CLAMP_GAIN_ALONE.
    fn base(&self) -> f64 {
        if self.shared {
            CLAMP_GAIN_SHARED
        } else {
            CLAMP_GAIN_ALONE
        }
    }

    /// Whether one connection has been short of the idle link for STARVED_AFTER; if so, the
    /// next answer takes STARVED_AFTER more of it (one more connection's worth of proof per
    /// split offered).
    pub fn take_starved(&mut self, now: Instant) -> bool {
        let starved = self
            .starved_since
            .is_some_and(|t| now.saturating_duration_since(t) >= STARVED_AFTER);
        if starved {
            self.starved_since = Some(now);
        }
        starved
    }

    /// Whether ebb is short of the idle link now (for any time).
    pub fn starving(&self) -> bool {
        self.starved_since.is_some()
    }

    /// A download took the offer of a split: its new connections start at the base gain, and
    /// whether they are short of the link is for them to show again.
    pub fn split_taken(&mut self) {
        self.boost = 1.0;
        self.alone_boost = 1.0;
        self.short_since = None;
        self.starved_since = None;
    }

    /// After an estimate over `elapsed`, under the limit `rate` in force.
    pub fn update(&mut self, e: &Estimate, rate: Option<f64>, elapsed: Duration, now: Instant) {
        let clear = self.grow(e, rate, elapsed, now);
        self.watched += elapsed;
        let starved = clear
            && !e.shared
            && self.watched >= OWN_SLOW
            && !(e.capacity_known && e.own_slow >= FILLED_SHARE * e.capacity)
            && rate.is_some_and(|r| {
                e.capacity > 0.0
                    && r >= IDLE_LIMIT * e.capacity
                    && e.own < STARVED_SHARE * r
                    && self.gain() * r >= GAIN_MAX * e.own
            });
        if !starved {
            self.starved_since = None;
        } else if self.starved_since.is_none() {
            self.starved_since = Some(now);
        }
    }

    /// Raise or reset the gain; whether the path is clear.
    fn grow(&mut self, e: &Estimate, rate: Option<f64>, elapsed: Duration, now: Instant) -> bool {
        let queue = e.queue_delay.zip(e.target_delay);
        let clear = queue.is_some_and(|(q, t)| q < t / 2);
        if e.shared != self.shared {
            // Others came or went: a shortfall is measured again, against the new company.
            self.short_since = None;
            self.shared = e.shared;
        }
        if queue.is_none_or(|(q, t)| q > t) {
            self.boost = 1.0;
            self.short_since = None;
            return false;
        }
        if !clear {
            // Between half the target and all of it: hold. A bbr server's own probing for
            // bandwidth (a quarter of a round trip more, for one round trip in eight) reaches
            // half the target, and on a lossy path a gain brought down by it stalls the
            // window short of the limit for the half second it takes to grow back.
            return false;
        }
        // Short of what the link carries, not of a limit probed above it: probing (up to 15 %
        // over the budget) left a clean 200 mbit link's ebb at 86 % of its limit, and the gain
        // it grew kept a window of 1.6 round trips through web fetches (1.43x as long). The
        // most it carried, not the capacity: that can come down under the link (a lossy one).
        let carried = rate.map(|r| {
            if e.capacity_known {
                r.min(HEADROOM * e.peak / OVERHEAD)
            } else {
                r
            }
        });
        if !carried.is_some_and(|r| e.own < SHORT_SHARE * r) {
            self.short_since = None;
            self.note_alone(e);
            return true;
        }
        // With others on the link, ebb under its limit for a moment is the window doing its
        // work as they arrive (their queue slows ebb at once); for GAIN_AFTER_SHARED, it is
        // the path again. Up to the raise the path needed with ebb alone, it is the path at
        // once: each of their queues brings the gain down, and a lossy path's window stalls
        // short of the limit until it is back.
        let after = if e.shared && self.boost >= self.alone_boost {
            GAIN_AFTER_SHARED
        } else {
            GAIN_AFTER
        };
        let since = *self.short_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= after {
            let dt = elapsed.as_secs_f64() / GAIN_DOUBLING.as_secs_f64();
            let most = if e.shared && after == GAIN_AFTER {
                self.alone_boost
            } else {
                GAIN_MAX / self.base()
            };
            self.boost = (self.boost * dt.exp2()).min(most);
        }
        self.note_alone(e);
        true
    }

    fn note_alone(&mut self, e: &Estimate) {
        if !e.shared {
            self.alone_boost = self.boost;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::IdleReason;

    fn estimate(queue_ms: u64, shared: bool, own: f64) -> Estimate {
        Estimate {
            rate: Some(1e6),
            reason: IdleReason::Capacity,
            own,
            own_slow: own,
            foreground: 0.0,
            capacity: 1.2e6,
            capacity_known: true,
            peak: 1.2e6,
            queue_delay: Some(Duration::from_millis(queue_ms)),
            base_delay: Some(Duration::from_millis(20)),
            target_delay: Some(Duration::from_millis(10)),
            shared,
        }
    }

    fn near(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// Feed `secs` of ticks of one estimate; the gain at the end.
    fn run(g: &mut WindowGain, e: &Estimate, secs: f64, now: &mut Instant) -> f64 {
        run_at(g, e, 1e6, secs, now)
    }

    /// The same under the limit `limit`.
    fn run_at(g: &mut WindowGain, e: &Estimate, limit: f64, secs: f64, now: &mut Instant) -> f64 {
        let tick = Duration::from_millis(50);
        for _ in 0..(secs / tick.as_secs_f64()).round() as u32 {
            *now += tick;
            g.update(e, Some(limit), tick, *now);
        }
        g.gain()
    }

    /// Long enough for a proof that one connection is short of the link, and a tick more.
    fn proof() -> f64 {
        (OWN_SLOW + STARVED_AFTER).as_secs_f64() + 0.05
    }

    #[test]
    fn a_window_that_holds_ebb_below_its_limit_on_a_clear_path_grows() {
        let mut now = Instant::now();
        let mut g = WindowGain::default();
        // At its limit: the window is not what binds.
        assert!(near(
            run(&mut g, &estimate(1, false, 0.95e6), 3.0, &mut now),
            1.25
        ));
        // Short of it (a lossy path): after GAIN_AFTER, doubling each GAIN_DOUBLING, up to 4.
        assert!(near(
            run(&mut g, &estimate(1, false, 0.6e6), 0.25, &mut now),
            1.25
        ));
        let grown = run(&mut g, &estimate(1, false, 0.6e6), 0.55, &mut now);
        assert!((2.3..2.8).contains(&grown), "{grown}");
        assert!(near(
            run(&mut g, &estimate(1, false, 0.6e6), 1.0, &mut now),
            4.0
        ));
        // Others on the link, the path still clear: it stays raised, on their base, and does
        // not grow at once (ebb under its limit is then the window yielding to them).
        assert!(near(
            run(&mut g, &estimate(1, true, 0.6e6), 0.5, &mut now),
            4.0 / CLAMP_GAIN_ALONE * CLAMP_GAIN_SHARED
        ));
        // At the most gain and still under half the limit, alone: short of the idle link.
        assert!(!g.take_starved(now));
        let starved = STARVED_AFTER.as_secs_f64();
        assert!(near(
            run(&mut g, &estimate(1, false, 0.4e6), starved - 0.05, &mut now),
            4.0
        ));
        assert!(
            g.starving() && !g.take_starved(now),
            "not for long enough yet"
        );
        run(&mut g, &estimate(1, false, 0.4e6), 0.1, &mut now);
        assert!(g.take_starved(now));
        // Once per STARVED_AFTER of it: one split offered at a time.
        assert!(!g.take_starved(now));
        run(&mut g, &estimate(1, false, 0.4e6), starved, &mut now);
        assert!(g.take_starved(now));
        run(&mut g, &estimate(1, true, 0.4e6), 0.05, &mut now);
        assert!(!g.starving(), "others on the link");
        // A queue over the target: back at once, to the shared base with others on the link,
        // 1.25 alone.
        assert!(near(
            run(&mut g, &estimate(11, true, 0.6e6), 0.05, &mut now),
            CLAMP_GAIN_SHARED
        ));
        assert!(near(
            run(&mut g, &estimate(11, false, 0.6e6), 0.05, &mut now),
            1.25
        ));
    }

    /// A limit probed above the link (the budget raised to find out a faster one) is not one
    /// the window holds ebb short of.
    #[test]
    fn a_limit_probed_above_the_link_is_not_a_shortfall() {
        let mut now = Instant::now();
        let mut g = WindowGain::default();
        let e = estimate(1, false, HEADROOM * 1.2e6 / OVERHEAD);
        let probed = (HEADROOM + 0.15) * 1.2e6 / OVERHEAD;
        assert!(near(
            run_at(&mut g, &e, probed, 3.0, &mut now),
            CLAMP_GAIN_ALONE
        ));
        // Short of the link itself, it grows.
        let e = estimate(1, false, 0.8 * 1.2e6 / OVERHEAD);
        assert!(run_at(&mut g, &e, probed, 1.0, &mut now) > 2.0);
        // Also where the capacity came down under the most the link carried (a lossy path's
        // stalls under a queue): ebb at 80 % of that is short of the link.
        let mut g = WindowGain::default();
        let e = Estimate {
            capacity: 0.9e6,
            ..e
        };
        assert!(run_at(&mut g, &e, probed, 1.0, &mut now) > 2.0);
    }

    /// A queue between half the target and all of it (a bbr server probing for bandwidth
    /// reaches a quarter of a round trip) holds the gain: brought down by it, a lossy path's
    /// window stalled short of the limit for half a second at a time (a bbr download alone on
    /// the 1 % loss link moved 4.0-4.5 of 6 MB/s for ~0.7 s after each such queue).
    #[test]
    fn a_queue_under_the_target_holds_the_gain() {
        let mut now = Instant::now();
        let mut g = WindowGain::default();
        let raised = run(&mut g, &estimate(1, false, 0.6e6), 1.0, &mut now);
        assert!(raised > 2.5, "{raised}");
        // Half the target (5 of 10 ms) up to all of it: neither down nor up, though ebb is
        // short of its limit.
        for q in [5, 8, 10] {
            assert!(near(
                run(&mut g, &estimate(q, false, 0.6e6), 0.5, &mut now),
                raised
            ));
        }
        assert!(near(
            run(&mut g, &estimate(10, true, 0.6e6), 0.5, &mut now),
            raised / CLAMP_GAIN_ALONE * CLAMP_GAIN_SHARED
        ));
        assert!(!g.starving(), "a queue is no proof of a short connection");
        // Over it: down at once.
        assert!(near(
            run(&mut g, &estimate(11, false, 0.6e6), 0.05, &mut now),
            CLAMP_GAIN_ALONE
        ));
    }

    /// A limit still growing far above the link (the slowed start on a path that never
    /// queues) leaves ebb under half of it even when it fills the link: that connection is not
    /// short of the link (a bbr server on a lossy link was split over 8 connections for this).
    /// Nor is it judged in its first second, while its rate over a second is mostly its start
    /// (a bbr server on the lossy link was split over 16 at 1 s, and its foreground then kept
    /// 84 %).
    #[test]
    fn a_connection_that_fills_the_link_is_not_short_of_it() {
        let mut now = Instant::now();
        let mut g = WindowGain::default();
        let tick = Duration::from_millis(50);
        let young = Estimate {
            capacity: 6.3e6,
            peak: 6.3e6,
            own_slow: 3.0e6,
            ..estimate(1, false, 5.4e6)
        };
        for _ in 0..(OWN_SLOW.as_millis() / tick.as_millis() - 1) {
            now += tick;
            g.update(&young, Some(20e6), tick, now);
            assert!(!g.starving());
        }
        let e = Estimate {
            own_slow: 5.4e6,
            ..young
        };
        run_at(&mut g, &e, 20e6, 5.0, &mut now);
        assert!(
            near(g.gain(), CLAMP_GAIN_ALONE),
            "short of the limit, not of what the link carries: the gain holds"
        );
        assert!(!g.starving() && !g.take_starved(now));
        // Short of the link seen full, it is.
        let e = Estimate {
            own: 4.4e6,
            own_slow: 4.4e6,
            ..e
        };
        run_at(&mut g, &e, 20e6, 3.0, &mut now);
        assert!(g.take_starved(now));
    }

    /// A link never seen full has no capacity to be short of but the most seen, which is the
    /// one loss-limited connection's own best: moving 83 % of that over a second, it is short
    /// of the link all the same (the split waited seconds for a dip under 80 %).
    #[test]
    fn a_link_never_seen_full_is_not_filled_by_a_connections_best() {
        let mut now = Instant::now();
        let mut g = WindowGain::default();
        let e = Estimate {
            capacity: 0.9e6,
            capacity_known: false,
            own_slow: 0.75e6,
            ..estimate(1, false, 0.75e6)
        };
        run_at(&mut g, &e, 5e6, proof(), &mut now);
        assert!(g.take_starved(now));
    }

    /// A limit far above what ebb moves (a loss-limited connection keeps no queue) makes the
    /// window ample below the most gain: the proof that one connection is short of the link
    /// starts once its rate over a second means something, not once the gain is at its most
    /// (0.14 s later here, 0.5-0.8 s in the bed's logs).
    #[test]
    fn a_window_far_above_what_ebb_moves_proves_it_short_after_a_second() {
        let mut now = Instant::now();
        let mut g = WindowGain::default();
        let e = Estimate {
            capacity: 6.3e6,
            peak: 6.3e6,
            ..estimate(1, false, 0.8e6)
        };
        run_at(&mut g, &e, 6e6, proof(), &mut now);
        assert!(g.take_starved(now));
        // The offer taken, the split's connections start at the base gain, with no proof yet,
        // and others arriving do not bring back the one connection's raise at once.
        g.split_taken();
        assert!(near(g.gain(), CLAMP_GAIN_ALONE) && !g.starving());
        assert!(!g.take_starved(now));
        let shared = run(&mut g, &estimate(1, true, 0.6e6), 1.0, &mut now);
        assert!(near(shared, CLAMP_GAIN_SHARED), "{shared}");
    }

    /// On a lossy path the window needs a raise whoever shares the link: each web fetch's
    /// queue brings the gain down, and it comes back at once to what the path needed with ebb
    /// alone, not after 2 s (a bbr download on the 1 % loss link took 72-76 % of what the
    /// fetches left, at 72 % of its limit whenever the gain was down).
    #[test]
    fn with_others_the_gain_comes_back_at_once_to_what_the_path_needs() {
        let mut now = Instant::now();
        let mut g = WindowGain::default();
        // Alone and short: raised to about twice.
        run(&mut g, &estimate(1, false, 0.6e6), 0.8, &mut now);
        run(&mut g, &estimate(1, false, 0.95e6), 0.5, &mut now);
        let alone = g.gain() / CLAMP_GAIN_ALONE;
        assert!((1.8..3.0).contains(&alone), "{alone}");
        // A fetch's queue: down to the shared base.
        run(&mut g, &estimate(11, true, 0.6e6), 0.05, &mut now);
        assert!(near(g.gain(), CLAMP_GAIN_SHARED));
        // Short again with the fetches on the link: back to the raise the path needed within
        // a second, and no further until 2 s short.
        let back = run(&mut g, &estimate(1, true, 0.6e6), 1.0, &mut now) / CLAMP_GAIN_SHARED;
        assert!(near(back, alone), "{back} {alone}");
        let later = run(&mut g, &estimate(1, true, 0.6e6), 0.9, &mut now) / CLAMP_GAIN_SHARED;
        assert!(near(later, alone), "{later} {alone}");
        assert!(run(&mut g, &estimate(1, true, 0.6e6), 0.5, &mut now) / CLAMP_GAIN_SHARED > alone);
    }

    /// A web fetch on a clear path shares the link: ebb's window is about its share of a round
    /// trip (the shared base), so that the fetch's queue slows ebb at once. The alone gain of
    /// 1.25 had stayed (each fetch then waited behind a quarter round trip of ebb's data).
    #[test]
    fn others_on_a_clear_path_bring_the_gain_to_the_shared_base() {
        let mut now = Instant::now();
        let mut g = WindowGain::default();
        assert!(near(
            run(&mut g, &estimate(1, false, 0.95e6), 1.0, &mut now),
            1.25
        ));
        assert!(near(
            run(&mut g, &estimate(1, true, 0.95e6), 0.05, &mut now),
            CLAMP_GAIN_SHARED
        ));
        // Short with others on the link: their arrival slowing ebb is no reason to grow; a
        // path that keeps it short (lossy) is, after GAIN_AFTER_SHARED.
        assert!(near(
            run(&mut g, &estimate(1, true, 0.6e6), 1.95, &mut now),
            CLAMP_GAIN_SHARED
        ));
        assert!(run(&mut g, &estimate(1, true, 0.6e6), 0.6, &mut now) > 1.5);
        run(&mut g, &estimate(11, true, 0.6e6), 0.05, &mut now);
        // Raised while short, alone: others arriving keep the raise, on their base.
        run(&mut g, &estimate(1, false, 0.6e6), 0.6, &mut now);
        let alone = g.gain();
        run(&mut g, &estimate(1, true, 0.95e6), 0.05, &mut now);
        assert!(
            near(g.gain(), alone / CLAMP_GAIN_ALONE * CLAMP_GAIN_SHARED),
            "{alone} {}",
            g.gain()
        );
        assert!(near(
            run(&mut g, &estimate(1, false, 0.6e6), 2.0, &mut now),
            4.0
        ));
    }
}
