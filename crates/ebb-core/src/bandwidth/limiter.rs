//! A byte-rate limiter whose rate changes at run time, without a burst and without waiting for
//! sleeps computed under the old rate.
//!
//! Why not `governor`: its quota is fixed when the limiter is built (governor#273), and swapping
//! limiters loses the debt of bytes already admitted, which over-admits at the moment of the
//! change. Why not `async-speed-limit`: a rate change "will not affect any tasks scheduled
//! before", it refills a whole 100 ms bucket at once (the burst this limiter must not make), and
//! a rate of 0 is a panic rather than a pause.
//!
//! The model is two cumulative counters: `issued`, the bytes reserved so far, and `credited`,
//! the bytes the rate has paid for so far. A reservation of `n` bytes gets the position
//! `issued + n` and may go once `credited` reaches it. Credit accrues at the current rate and
//! never runs more than `burst` ahead of `issued`, so an idle limiter cannot save up a flood. A
//! rate change only changes the slope of `credited` from now on, and wakes every waiter to
//! recompute its sleep; 0 stops the slope; unlimited bypasses the counters with one atomic load.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::Limit;

/// The smallest burst and piece: smaller writes would cost more than they smooth.
const MIN_PIECE: u64 = 512;
/// The largest piece: about one read from a fast socket.
const MAX_PIECE: u64 = 64 * 1024;

/// How many bytes a caller should admit at a time under `rate`: 1/40 of a second's worth, so
/// that any 100 ms window holds at most 0.1 s of rate, one piece of saved credit and one piece
/// being admitted (1.5x).
pub(crate) fn piece_for(rate: Limit) -> usize {
    match rate {
        Limit::Unlimited => usize::MAX,
        Limit::BytesPerSec(r) => (r / 40).clamp(MIN_PIECE, MAX_PIECE) as usize,
    }
}

#[derive(Debug)]
pub(crate) struct Bucket {
    unlimited: AtomicBool,
    state: Mutex<Counters>,
    changed: Notify,
}

#[derive(Debug)]
struct Counters {
    rate: Limit,
    issued: f64,
    credited: f64,
    at: Instant,
}

impl Counters {
    fn burst(&self) -> f64 {
        piece_for(self.rate).min(MAX_PIECE as usize) as f64
    }

    fn refill(&mut self, now: Instant) {
        if let Limit::BytesPerSec(r) = self.rate {
            let dt = now.saturating_duration_since(self.at).as_secs_f64();
            self.credited = (self.credited + r as f64 * dt).min(self.issued + self.burst());
        }
        self.at = now;
    }
}

impl Bucket {
    pub(crate) fn new(rate: Limit) -> Self {
        Self {
            unlimited: AtomicBool::new(rate.is_unlimited()),
            state: Mutex::new(Counters {
                rate,
                issued: 0.0,
                credited: 0.0,
                at: Instant::now(),
            }),
            changed: Notify::new(),
        }
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        // A panic while holding this lock cannot leave the counters inconsistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn rate(&self) -> Limit {
        // The download loop asks per chunk: unlimited answers without the lock.
        if self.unlimited.load(Ordering::Acquire) {
            return Limit::Unlimited;
        }
        self.counters().rate
    }

    /// Change the rate now; waiters recompute their sleep at once.
    pub(crate) fn set_rate(&self, rate: Limit) {
        let mut c = self.counters();
        if c.rate == rate {
            return;
        }
        let now = Instant::now();
        c.refill(now);
        // Start level under the new rate: credit saved under the old one would be a burst (and
        // nothing was counted while unlimited).
        c.credited = if c.rate.is_unlimited() {
            c.issued
        } else {
            c.credited.min(c.issued)
        };
        c.rate = rate;
        self.unlimited.store(rate.is_unlimited(), Ordering::Release);
        drop(c);
        self.changed.notify_waiters();
    }

    /// Wait until `n` more bytes fit under the rate. Cancel-safe: dropping the future gives up
    /// the wait (the reservation stays counted, at most one piece).
    pub(crate) async fn acquire(&self, n: usize) {
        if self.unlimited.load(Ordering::Acquire) {
            return;
        }
        let position = {
            let mut c = self.counters();
            c.refill(Instant::now());
            c.issued += n as f64;
            c.issued
        };
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let wait = {
                let mut c = self.counters();
                let now = Instant::now();
                c.refill(now);
                match c.rate {
                    Limit::Unlimited => return,
                    _ if c.credited >= position => return,
                    Limit::BytesPerSec(0) => None,
                    Limit::BytesPerSec(r) => Some(Duration::from_secs_f64(
                        ((position - c.credited) / r as f64).max(1e-4),
                    )),
                }
            };
            match wait {
                Some(d) => {
                    tokio::select! {
                        () = tokio::time::sleep(d) => {}
                        () = &mut changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Admit pieces as fast as the bucket allows for `secs`, recording (time, bytes).
    async fn drive(bucket: Arc<Bucket>, piece: usize, secs: f64) -> Vec<(f64, usize)> {
        let start = Instant::now();
        let mut log = Vec::new();
        while start.elapsed().as_secs_f64() < secs {
            bucket.acquire(piece).await;
            log.push((start.elapsed().as_secs_f64(), piece));
        }
        log
    }

    fn worst_100ms(log: &[(f64, usize)]) -> usize {
        log.iter()
            .map(|&(t0, _)| {
                log.iter()
                    .filter(|&&(t, _)| t >= t0 && t < t0 + 0.1)
                    .map(|&(_, n)| n)
                    .sum::<usize>()
            })
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn average_within_2_percent_and_no_window_over_1_5x() {
        for rate in [100_000u64, 1_000_000, 6_250_000] {
            let bucket = Arc::new(Bucket::new(Limit::BytesPerSec(rate)));
            let log = drive(bucket, piece_for(Limit::BytesPerSec(rate)), 10.0).await;
            let total: usize = log.iter().map(|&(_, n)| n).sum();
            let avg = total as f64 / 10.0;
            assert!((avg / rate as f64 - 1.0).abs() < 0.02, "{rate}: avg {avg}");
            let worst = worst_100ms(&log) as f64;
            assert!(
                worst <= 1.5 * rate as f64 * 0.1,
                "{rate}: worst window {worst}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_applies_at_once_and_zero_pauses() {
        let bucket = Arc::new(Bucket::new(Limit::BytesPerSec(10_000)));
        // A waiter far in debt under the slow rate...
        bucket.acquire(10_000).await;
        let b = bucket.clone();
        let waiter = tokio::spawn(async move {
            b.acquire(10_000).await;
            Instant::now()
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let changed_at = Instant::now();
        bucket.set_rate(Limit::BytesPerSec(10_000_000));
        let done = waiter.await.unwrap();
        // ...goes within a millisecond of the change, not after its old ~1 s sleep.
        assert!(done - changed_at < Duration::from_millis(100));

        bucket.set_rate(Limit::PAUSED);
        let b = bucket.clone();
        let paused = tokio::spawn(async move { b.acquire(1).await });
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(!paused.is_finished(), "a paused bucket admitted bytes");
        bucket.set_rate(Limit::Unlimited);
        tokio::time::timeout(Duration::from_millis(1), paused)
            .await
            .expect("unpausing releases the waiter")
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_bucket_saves_no_flood() {
        let bucket = Arc::new(Bucket::new(Limit::BytesPerSec(1_000_000)));
        tokio::time::sleep(Duration::from_secs(60)).await;
        let log = drive(bucket.clone(), 25_000, 1.0).await;
        assert!(worst_100ms(&log) as f64 <= 1.5 * 100_000.0);
        // Unlimited -> limited starts level as well.
        bucket.set_rate(Limit::Unlimited);
        for _ in 0..1000 {
            bucket.acquire(1 << 20).await; // costs nothing, admits at once
        }
        bucket.set_rate(Limit::BytesPerSec(1_000_000));
        let log = drive(bucket, 25_000, 1.0).await;
        assert!(worst_100ms(&log) as f64 <= 1.5 * 100_000.0);
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_share_the_rate() {
        let bucket = Arc::new(Bucket::new(Limit::BytesPerSec(1_000_000)));
        let tasks: Vec<_> = (0..4)
            .map(|_| tokio::spawn(drive(bucket.clone(), 25_000, 5.0)))
            .collect();
        let mut total = 0;
        for t in tasks {
            let log = t.await.unwrap();
            let bytes: usize = log.iter().map(|&(_, n)| n).sum();
            // Each gets about a quarter.
            assert!((bytes as f64 / 1_250_000.0 - 1.0).abs() < 0.1, "{bytes}");
            total += bytes;
        }
        assert!((total as f64 / 5_000_000.0 - 1.0).abs() < 0.02, "{total}");
    }
}
