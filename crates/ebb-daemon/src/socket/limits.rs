//! How much of the daemon one local peer may hold, and how accept errors are survived.

use std::time::{Duration, Instant};

/// Limits on the socket's connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Time a connection may take to send a request's headers, counted from when the daemon
    /// waits for them: a slow sender and an idle keep-alive connection are both closed after it.
    /// A request being answered (a long `wait`, the event stream) is not affected.
    pub header_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            header_timeout: Duration::from_secs(30),
        }
    }
}

/// Accept errors (say, no descriptor left) retried after a growing pause, and logged once per
/// interval with the number left unsaid, instead of a warning per spin of the loop.
#[derive(Debug)]
pub(super) struct AcceptBackoff {
    delay: Duration,
    last_log: Option<Instant>,
    unsaid: u64,
}

const FIRST_DELAY: Duration = Duration::from_millis(5);
const MAX_DELAY: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(10);

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self {
            delay: FIRST_DELAY,
            last_log: None,
            unsaid: 0,
        }
    }
}

impl AcceptBackoff {
    pub(super) fn succeeded(&mut self) {
        self.delay = FIRST_DELAY;
    }

    pub(super) async fn failed(&mut self, e: &std::io::Error) {
        let now = Instant::now();
        if self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= LOG_EVERY)
        {
            tracing::warn!(error = %e, more = self.unsaid, retry_in = ?self.delay, "accept failed");
            self.last_log = Some(now);
            self.unsaid = 0;
        } else {
            self.unsaid += 1;
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(MAX_DELAY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn errors_back_off_and_are_logged_once_per_interval() {
        let mut b = AcceptBackoff::default();
        let e = std::io::Error::from_raw_os_error(libc::EMFILE);
        let start = tokio::time::Instant::now();
        for _ in 0..20 {
            b.failed(&e).await;
        }
        // 5 ms doubling to 1 s: the loop does not spin.
        assert!(start.elapsed() >= Duration::from_secs(10));
        assert_eq!(b.delay, MAX_DELAY);
        assert!(b.unsaid > 0, "later errors are counted, not logged");
        b.succeeded();
        assert_eq!(b.delay, FIRST_DELAY);
    }
}
