//! The monitor's view of the path: the server of the running background jobs, the interface
//! that routes to it, and what the kernel says each tick about the interface and ebb's
//! connections.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::time::Instant;

use super::estimator::{self, Estimator, Signals};
use super::gain::WindowGain;
use super::sockets::{Clamp, OwnSockets, Reading};
use super::{Direction, counters};
use crate::model::BandwidthConfig;

/// A running background job's server, and the direction of its bytes.
pub(super) type Target = (String, u16, Direction);

/// The monitor's own state.
#[derive(Debug)]
pub(super) struct Watch {
    pub estimator: Estimator,
    pub last: Instant,
    pub server: Option<Target>,
    /// The direction last watched (kept while no job runs).
    pub last_direction: Option<Direction>,
    pub addr: Option<SocketAddr>,
    pub loopback: bool,
    pub iface: Option<String>,
    /// What is read from the kernel each tick.
    pub kernel: Kernel,
    /// The path's base delay at the last estimate.
    pub rtt: Option<Duration>,
    /// The window clamp's gain for the next tick.
    pub gain: WindowGain,
    pub probe: Option<SocketAddr>,
    /// Whether a split is on offer (`Bandwidth::take_one_short`), as last set.
    pub offered: bool,
}

impl Watch {
    pub fn new(config: &BandwidthConfig) -> Self {
        let now = Instant::now();
        Self {
            estimator: Estimator::new(
                Signals {
                    counters: config.idle_counters,
                    delay: config.idle_delay,
                },
                now,
            ),
            last: now,
            server: None,
            last_direction: None,
            addr: None,
            loopback: false,
            iface: None,
            kernel: Kernel::default(),
            rtt: None,
            gain: WindowGain::default(),
            probe: None,
            offered: false,
        }
    }

    /// Idle control stopped watching these connections (switched off, the jobs went
    /// foreground, another server): the windows it clamped get their full size back before
    /// the connections are forgotten.
    pub async fn lift_clamps(&mut self) {
        if self.kernel.sockets.clamping()
            && let Some(addr) = self.addr
        {
            let mut kernel = std::mem::take(&mut self.kernel);
            let upload = self.direction() == Direction::Up;
            match tokio::task::spawn_blocking(move || {
                kernel.read(None, Some(addr), upload, false, Clamp::Lift);
                kernel
            })
            .await
            {
                Ok(k) => self.kernel = k,
                Err(e) => tracing::warn!(error = %e, "lifting the window clamps failed"),
            }
        }
        self.kernel.sockets.reset();
    }

    /// Idle control is not running (switched off, no job, a loopback server): what it learnt of
    /// the moment is stale by the time it runs again, and the windows get their full size back.
    pub async fn pause(&mut self, now: Instant) {
        self.estimator.reset(now);
        self.gain = WindowGain::default();
        self.offered = false;
        self.lift_clamps().await;
    }

    /// A new server: resolve it, find the interface that routes to it.
    pub async fn retarget(&mut self, server: Option<Target>, config: &BandwidthConfig) {
        self.lift_clamps().await;
        let direction = server.as_ref().map(|t| t.2);
        if direction.is_some() && self.last_direction.is_some() && direction != self.last_direction
        {
            // The other direction's link is another link: nothing learnt of this one holds.
            self.estimator = Estimator::new(
                Signals {
                    counters: config.idle_counters,
                    delay: config.idle_delay,
                },
                Instant::now(),
            );
        }
        self.last_direction = direction.or(self.last_direction);
        self.gain = WindowGain::default();
        self.offered = false;
        self.server = server;
        self.addr = None;
        self.kernel = Kernel::default();
        self.iface = None;
        self.loopback = false;
        let Some((host, port, _)) = &self.server else {
            return;
        };
        self.addr = match tokio::net::lookup_host((host.as_str(), *port)).await {
            Ok(mut addrs) => addrs.next(),
            Err(e) => {
                tracing::debug!(%host, error = %e, "cannot resolve server for delay probes");
                None
            }
        };
        let ip: Option<IpAddr> = self.addr.map(|a| a.ip());
        // A server on this machine crosses no network: there is no idle capacity to share.
        self.loopback = ip.is_some_and(|ip| ip.is_loopback());
        self.iface = config
            .interface
            .clone()
            .or_else(|| ip.and_then(counters::route_interface));
        tracing::debug!(?self.addr, iface = ?self.iface, loopback = self.loopback, "bandwidth target");
    }

    pub fn direction(&self) -> Direction {
        self.server.as_ref().map_or(Direction::Down, |t| t.2)
    }
}

/// What the kernel is asked each tick; read on a blocking thread.
#[derive(Debug, Default)]
pub(super) struct Kernel {
    /// The interface's byte counter at the last reading.
    counter: Option<u64>,
    pub sockets: OwnSockets,
}

impl Kernel {
    /// The interface's bytes in the watched direction since the last reading (with
    /// `counters`), and what ebb's connections to `addr` did.
    pub fn read(
        &mut self,
        iface: Option<&str>,
        addr: Option<SocketAddr>,
        upload: bool,
        counters: bool,
        clamp: Clamp,
    ) -> (Option<u64>, Option<Reading>) {
        let bytes = iface.filter(|_| counters).and_then(|iface| {
            let cur = if upload {
                counters::tx_bytes(iface)?
            } else {
                counters::rx_bytes(iface)?
            };
            let delta = self.counter.map(|prev| estimator::counter_delta(prev, cur));
            self.counter = Some(cur);
            delta
        });
        let reading = addr.and_then(|a| self.sockets.read(a, upload, clamp));
        (bytes, reading)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;
    use crate::bandwidth::sockets::CLAMP_GAIN_ALONE;
    use crate::bandwidth::sockets::linux_tests::window_clamp;

    /// Idle control switched off mid-download must not leave the window it clamped.
    #[tokio::test]
    async fn clamped_windows_are_lifted_when_the_watch_stops() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let client = TcpStream::connect(server).unwrap();
        let _peer = listener.accept().unwrap();
        let mut w = Watch::new(&BandwidthConfig::default());
        w.addr = Some(server);
        let to = Clamp::To {
            rate: 1e6,
            rtt: Duration::from_millis(20),
            gain: 1.0,
        };
        w.kernel.read(None, Some(server), false, false, to);
        let clamp = window_clamp(&client);
        assert!((20_000..20_000 + 1448).contains(&clamp), "{clamp}");
        w.lift_clamps().await;
        assert!(window_clamp(&client) > 1 << 20);
        assert!(!w.kernel.sockets.clamping());
    }

    /// A window gain grown on a lossy path must not outlive a pause of idle control: with the
    /// same server back, a gain of 4 would otherwise hold until the first queue.
    #[tokio::test]
    async fn a_pause_forgets_the_window_gain() {
        let mut w = Watch::new(&BandwidthConfig::default());
        let short = estimator::Estimate {
            rate: Some(1e6),
            reason: crate::model::IdleReason::Capacity,
            own: 0.4e6,
            own_slow: 0.4e6,
            foreground: 0.0,
            capacity: 1.2e6,
            capacity_known: true,
            peak: 1.2e6,
            queue_delay: Some(Duration::from_millis(1)),
            base_delay: Some(Duration::from_millis(20)),
            target_delay: Some(Duration::from_millis(10)),
            shared: false,
        };
        let (mut now, tick) = (Instant::now(), Duration::from_millis(50));
        for _ in 0..60 {
            now += tick;
            w.gain.update(&short, Some(1e6), tick, now);
        }
        assert!(w.gain.gain() > 3.9 && w.gain.starving());
        w.pause(now).await;
        assert!((w.gain.gain() - CLAMP_GAIN_ALONE).abs() < 1e-9);
        assert!(!w.gain.starving());
    }
}
