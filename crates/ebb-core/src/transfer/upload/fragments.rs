//! How large the next fragment is: sized to take about two seconds at the rate the last one
//! went, from 5 KB to 13 MB as Windows does ([MC-BUP] §3.1.2), growing at most fourfold per
//! fragment, and never again above a size the server refused with 413.

use std::time::Duration;

/// The smallest fragment (a 413 for this size is the server's final word).
pub(super) const MIN: u64 = 5 * 1024;
/// The largest fragment.
pub(super) const MAX: u64 = 13 * 1024 * 1024;
/// The first fragment of a run: small enough for a slow link, and it grows fast.
const FIRST: u64 = 64 * 1024;
/// What a fragment should take.
const TARGET: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sizer {
    next: u64,
    ceiling: u64,
}

impl Default for Sizer {
    fn default() -> Self {
        Self {
            next: FIRST,
            ceiling: MAX,
        }
    }
}

impl Sizer {
    pub(super) fn next(self) -> u64 {
        self.next
    }

    /// A fragment of `len` bytes was acknowledged after `took`.
    pub(super) fn took(&mut self, len: u64, took: Duration) {
        let secs = took.as_secs_f64().max(1e-3);
        let want = (len as f64 / secs * TARGET.as_secs_f64()) as u64;
        let grown = self.next.saturating_mul(4);
        self.next = want.min(grown).clamp(MIN, self.ceiling);
    }

    /// The server refused `len` bytes with 413: halve, and never go above that again. `false`
    /// once the smallest fragment was refused.
    pub(super) fn refused(&mut self, len: u64) -> bool {
        if len <= MIN {
            return false;
        }
        self.ceiling = (len / 2).max(MIN);
        self.next = self.next.min(self.ceiling);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_the_rate_within_bounds() {
        let mut s = Sizer::default();
        assert_eq!(s.next(), FIRST);
        // Fast: fourfold per fragment up to the maximum.
        for want in [4 * FIRST, 16 * FIRST, 64 * FIRST, MAX] {
            s.took(s.next(), Duration::from_millis(1));
            assert_eq!(s.next(), want);
        }
        // 10 KB/s: two seconds' worth.
        s.took(10_000, Duration::from_secs(1));
        assert_eq!(s.next(), 20_000);
        // Slower than anything: the minimum.
        s.took(MIN, Duration::from_secs(600));
        assert_eq!(s.next(), MIN);
    }

    #[test]
    fn shrinks_on_413_and_stays_below() {
        let mut s = Sizer::default();
        assert!(s.refused(FIRST));
        assert_eq!(s.next(), FIRST / 2);
        s.took(s.next(), Duration::from_millis(1));
        assert_eq!(s.next(), FIRST / 2, "the ceiling holds");
        while s.next() > MIN {
            let n = s.next();
            assert!(s.refused(n));
        }
        assert_eq!(s.next(), MIN);
        assert!(!s.refused(MIN));
    }
}
