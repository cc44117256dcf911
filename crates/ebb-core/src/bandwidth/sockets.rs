//! ebb's own connections to the watched server, seen from the kernel (Linux): the bytes they
//! really received or got acknowledged (`TCP_INFO`), their round-trip times, and, for uploads,
//! a low-priority congestion control where the kernel has one.
//!
//! ebb's reads say when bytes left a socket, not when they arrived: a limited reader takes a
//! whole buffer at once and then waits, so per-tick read counts are useless at low rates, and
//! bytes between the socket and the reader are counted nowhere. The kernel's byte counters per
//! connection are what the interface saw for ebb.
// The parsers are Linux's; their tests run everywhere.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

mod tcp_info;
use tcp_info::Counted;
pub(crate) use tcp_info::TcpFigures;
#[cfg(target_os = "linux")]
use tcp_info::{TCP_INFO_LEN, parse_tcp_info};

/// Low-priority congestion controls a background upload may use, best first: TCP-LP (Linux's
/// `tcp_lp`) yields to other flows when its one-way delay rises.
const BACKGROUND_CC: &[&str] = &["lp"];
/// How many readings a connection missing from the table is remembered.
const GONE_READINGS: u32 = 40;
/// A limited download's receive window is clamped to a gain times what its share of the rate
/// moves in one base delay (receiver-driven, as rLEDBAT, RFC 9840), within these bounds: 1.25
/// with ebb alone on the link (the rate is reached over a little jitter), 1.1 with others on it
/// (a queue they build of more than a tenth of the base delay slows ebb at once, packet by
/// packet: their bursts find less of ebb's traffic ahead of them. At 1, every burst slowed ebb
/// to 77-82 % of what 200 mbit web fetches leave; at 1.25 the fetches took 1.2-1.33x as long).
/// Then the server sends at about that rate, not a socket buffer's worth at line rate whenever
/// ebb reads (bursts that fill the bottleneck's queue ahead of everyone's packets); and a queue
/// that others build slows ebb at once, since its window no longer covers the longer round
/// trip.
pub(crate) const CLAMP_GAIN_ALONE: f64 = 1.25;
pub(crate) const CLAMP_GAIN_SHARED: f64 = 1.1;
/// The window is a whole number of segments (a sender sends only segments that fit, so a
/// window of 1.9 segments carries one), at least CLAMP_MIN_SEGMENTS: the clamp bounds the
/// window whatever ebb has left unread (the window is the free buffer space, megabytes), so
/// at the trickle over a long path this floor, not the trickle, is what ebb takes. Behind a
/// foreground flow's queue on 2 mbit / 100 ms, a floor of three took 10-15 kB/s (the flow kept
/// 94 %), two 7-11 kB/s (94.6-96.8 %), one 4-6 kB/s (97-98 %); but a bbr server that sent one
/// segment a round trip for seconds took 3.3 s to be back at 85 % of the link (two: 2.4-2.9 s).
/// The floor is of all the connections together, one segment each at least: a file split over
/// 16 connections (a lossy path) took 0.96 MB/s on the wire behind a bbr foreground flow at
/// two each, and the flow kept 84 %.
const CLAMP_MIN_SEGMENTS: u32 = 2;
/// The segment size where the kernel does not say.
const SEGMENT: u32 = 1448;
const CLAMP_MAX: u32 = 64 << 20;

/// How to clamp the receive windows of ebb's downloads this tick.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Clamp {
    /// Leave the windows as they are (the kernel's own, or never clamped).
    Leave,
    /// All connections together take this many bytes/s over a path of this base delay, each
    /// window this gain times its share of a round trip.
    To { rate: f64, rtt: Duration, gain: f64 },
    /// No limit now: lift any clamp set before.
    Lift,
}

/// The window clamp of each of `n` connections sharing `rate` over `rtt`, for segments of
/// `segment` bytes (0: unknown).
pub(crate) fn window_for(rate: f64, rtt: Duration, gain: f64, n: usize, segment: u32) -> u32 {
    let segment = if segment == 0 { SEGMENT } else { segment };
    let share = rate / n.max(1) as f64;
    let segments = (gain * share * rtt.as_secs_f64() / f64::from(segment)).ceil();
    let floor = CLAMP_MIN_SEGMENTS.div_ceil(u32::try_from(n.max(1)).unwrap_or(u32::MAX));
    let window = segments.max(f64::from(floor)) * f64::from(segment);
    window.min(f64::from(CLAMP_MAX)) as u32
}

/// What ebb's connections to the server did since the last reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Reading {
    /// Payload bytes that arrived (downloads) or were acknowledged (uploads).
    pub bytes: u64,
    /// The lowest smoothed RTT among the connections (uploads: it includes the queue ahead).
    pub rtt: Option<Duration>,
    /// The lowest receiver RTT estimate among them (downloads).
    pub rcv_rtt: Option<Duration>,
    /// Connections seen.
    pub connections: usize,
}

/// The connections seen at the last reading, by socket inode, and what each was counted for.
#[derive(Debug, Default)]
pub(crate) struct OwnSockets {
    seen: HashMap<u64, Counted>,
    /// Connections missing from the last readings, and for how many: the kernel's table is
    /// read in pieces, and one that changes meanwhile can skip a line. A connection back
    /// within GONE_READINGS counts from where it was, not from its start.
    gone: HashMap<u64, (Counted, u32)>,
    /// Whether a reading was taken before: a connection found at the first one may be old,
    /// and only what it does from then on counts.
    primed: bool,
    /// The congestion control given to upload connections, once one worked.
    pub congestion: Option<&'static str>,
    /// Sockets already given (or refused) a congestion control.
    tried_cc: HashSet<u64>,
    /// The window clamp last set on each connection.
    clamped: HashMap<u64, u32>,
}

impl OwnSockets {
    /// Whether a connection's window was clamped and not lifted since.
    pub(crate) fn clamping(&self) -> bool {
        self.clamped.values().any(|&c| c != CLAMP_MAX)
    }

    /// Forget every connection (a new server or direction).
    pub(crate) fn reset(&mut self) {
        self.seen.clear();
        self.gone.clear();
        self.clamped.clear();
        self.tried_cc.clear();
        self.primed = false;
    }

    /// Account one reading of the connections: `now` maps inode to figures.
    pub(crate) fn account(&mut self, now: HashMap<u64, TcpFigures>, upload: bool) -> Reading {
        let mut r = Reading {
            connections: now.len(),
            ..Reading::default()
        };
        let mut seen = HashMap::with_capacity(now.len());
        for (inode, f) in now {
            let back = self.gone.remove(&inode).map(|(c, _)| c);
            let mut counted = self.seen.remove(&inode).or(back).unwrap_or_else(|| {
                // A connection seen for the first time: new since the last reading, unless
                // this is the first reading.
                if self.primed {
                    Counted::default()
                } else {
                    Counted::from_now(f)
                }
            });
            r.bytes += counted.advance(f, upload);
            seen.insert(inode, counted);
            let min = |a: Option<Duration>, us: u32| {
                let d = (us > 0).then(|| Duration::from_micros(u64::from(us)));
                match (a, d) {
                    (Some(a), Some(d)) => Some(a.min(d)),
                    (a, d) => a.or(d),
                }
            };
            r.rtt = min(r.rtt, f.rtt_us);
            r.rcv_rtt = min(r.rcv_rtt, f.rcv_rtt_us);
        }
        // Those left were not in this reading.
        for (inode, c) in self.seen.drain() {
            self.gone.insert(inode, (c, 0));
        }
        self.gone.retain(|_, (_, n)| {
            *n += 1;
            *n <= GONE_READINGS
        });
        self.tried_cc
            .retain(|i| seen.contains_key(i) || self.gone.contains_key(i));
        self.clamped
            .retain(|i, _| seen.contains_key(i) || self.gone.contains_key(i));
        self.seen = seen;
        self.primed = true;
        r
    }

    /// Read ebb's established connections to `remote` and account them. On an upload, give
    /// connections not seen before a background congestion control, where one is available;
    /// on a download, clamp their receive windows as `clamp` says.
    #[cfg(target_os = "linux")]
    pub(crate) fn read(
        &mut self,
        remote: SocketAddr,
        upload: bool,
        clamp: Clamp,
    ) -> Option<Reading> {
        // Each socket is asked itself (its peer, its TCP_INFO): the kernel's connection table
        // in /proc/net/tcp is read in pieces and skips lines when it changes meanwhile.
        let want = (remote.ip().to_canonical(), remote.port());
        let ours: Vec<(u64, i32, TcpFigures)> = own_socket_fds()?
            .into_iter()
            .filter_map(|(inode, fd)| {
                let peer = sys::peer(fd, inode)?;
                if (peer.ip().to_canonical(), peer.port()) != want {
                    return None;
                }
                let f = sys::tcp_info(fd, inode)?;
                f.established.then_some((inode, fd, f))
            })
            .collect();
        let mut now = HashMap::new();
        for &(inode, fd, f) in &ours {
            if upload && self.tried_cc.insert(inode) {
                self.congestion = set_background_cc(fd, inode).or(self.congestion);
            }
            if !upload {
                self.clamp(inode, fd, clamp, ours.len(), f.rcv_mss);
            }
            now.insert(inode, f);
        }
        Some(self.account(now, upload))
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn read(
        &mut self,
        _remote: SocketAddr,
        _upload: bool,
        _clamp: Clamp,
    ) -> Option<Reading> {
        None
    }

    /// Set one download connection's window clamp. It is set again every tick, even when it
    /// did not change: the kernel's receive-buffer autotuning raises the clamp as it grows the
    /// buffer of a connection that reads fast.
    #[cfg(target_os = "linux")]
    fn clamp(&mut self, inode: u64, fd: i32, clamp: Clamp, n: usize, segment: u32) {
        let want = match clamp {
            Clamp::Leave => return,
            Clamp::Lift if !self.clamped.contains_key(&inode) => return,
            Clamp::Lift => CLAMP_MAX,
            Clamp::To { rate, rtt, gain } => window_for(rate, rtt, gain, n, segment),
        };
        if clamp == Clamp::Lift && self.clamped.get(&inode) == Some(&want) {
            return;
        }
        match sys::set_window_clamp(fd, inode, want) {
            Ok(()) => {
                self.clamped.insert(inode, want);
            }
            Err(e) => tracing::debug!(error = %e, "cannot clamp a download's window"),
        }
    }
}

/// This process's sockets: inode to file descriptor.
#[cfg(target_os = "linux")]
fn own_socket_fds() -> Option<HashMap<u64, i32>> {
    let mut fds = HashMap::new();
    for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if let Ok(target) = std::fs::read_link(entry.path())
            && let Some(inode) = socket_inode(target.to_str().unwrap_or(""))
        {
            fds.insert(inode, fd);
        }
    }
    Some(fds)
}

/// `socket:[12345]` → 12345.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The first background congestion control the kernel accepts for this socket.
#[cfg(target_os = "linux")]
fn set_background_cc(fd: i32, inode: u64) -> Option<&'static str> {
    let available = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_congestion_control")
        .unwrap_or_default();
    let name = BACKGROUND_CC
        .iter()
        .copied()
        .find(|cc| available.split_whitespace().any(|a| a == *cc))?;
    match sys::set_congestion(fd, inode, name) {
        Ok(()) => {
            tracing::debug!(congestion = name, "background upload connection");
            Some(name)
        }
        Err(e) => {
            tracing::debug!(congestion = name, error = %e, "cannot set congestion control");
            None
        }
    }
}

/// The system calls, on descriptors this process holds. A descriptor found in `/proc/self/fd`
/// may be closed and reused before it is used here, so each call first checks that it still
/// is the socket of that inode; a reuse in the instant between the check and the call can only
/// reach another of this process's sockets, where `TCP_INFO` is harmless.
#[cfg(target_os = "linux")]
mod sys {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

    use super::{TCP_INFO_LEN, TcpFigures, parse_tcp_info};

    fn is_inode(fd: i32, inode: u64) -> bool {
        let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
        // SAFETY: fstat writes at most one `stat` into the buffer given; a closed or foreign
        // descriptor makes it fail, not write elsewhere.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::fstat(fd, st.as_mut_ptr()) };
        // SAFETY: fstat succeeded, so it initialised the buffer.
        #[allow(unsafe_code)]
        let st = unsafe { st.assume_init() };
        rc == 0 && st.st_ino == inode
    }

    /// The address a socket is connected to (none for a socket that is not an Internet one,
    /// or not connected).
    pub(super) fn peer(fd: i32, inode: u64) -> Option<SocketAddr> {
        if !is_inode(fd, inode) {
            return None;
        }
        let mut sa = std::mem::MaybeUninit::<libc::sockaddr_storage>::zeroed();
        let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes of address into the storage.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::getpeername(fd, sa.as_mut_ptr().cast(), &raw mut len) };
        if rc != 0 {
            return None;
        }
        // SAFETY: zeroed, then partly written by the kernel: every bit pattern is a valid
        // sockaddr_storage.
        #[allow(unsafe_code)]
        let sa = unsafe { sa.assume_init() };
        match i32::from(sa.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a sockaddr_in, which it is
                // large and aligned enough for.
                #[allow(unsafe_code)]
                let v4 = unsafe { &*(&raw const sa).cast::<libc::sockaddr_in>() };
                let ip = Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
                Some(SocketAddr::from((ip, u16::from_be(v4.sin_port))))
            }
            libc::AF_INET6 => {
                // SAFETY: as above, for a sockaddr_in6.
                #[allow(unsafe_code)]
                let v6 = unsafe { &*(&raw const sa).cast::<libc::sockaddr_in6>() };
                let ip = Ipv6Addr::from(v6.sin6_addr.s6_addr);
                Some(SocketAddr::from((ip, u16::from_be(v6.sin6_port))))
            }
            _ => None,
        }
    }

    pub(super) fn tcp_info(fd: i32, inode: u64) -> Option<TcpFigures> {
        if !is_inode(fd, inode) {
            return None;
        }
        let mut buf = [0u8; TCP_INFO_LEN];
        let mut len = TCP_INFO_LEN as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into `buf` and the length into `len`.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                buf.as_mut_ptr().cast(),
                &raw mut len,
            )
        };
        (rc == 0).then(|| parse_tcp_info(&buf[..len as usize]))?
    }

    /// `setsockopt(fd, IPPROTO_TCP, option, value)` on the socket of `inode`.
    fn set_tcp(fd: i32, inode: u64, option: i32, value: &[u8]) -> std::io::Result<()> {
        if !is_inode(fd, inode) {
            return Err(std::io::ErrorKind::NotFound.into());
        }
        // SAFETY: the kernel reads `value.len()` bytes of `value`.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                option,
                value.as_ptr().cast(),
                value.len() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    pub(super) fn set_congestion(fd: i32, inode: u64, name: &str) -> std::io::Result<()> {
        set_tcp(fd, inode, libc::TCP_CONGESTION, name.as_bytes())
    }

    pub(super) fn set_window_clamp(fd: i32, inode: u64, bytes: u32) -> std::io::Result<()> {
        let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        set_tcp(fd, inode, libc::TCP_WINDOW_CLAMP, &value.to_ne_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_counted_per_connection_from_the_first_reading_on() {
        let fig = |rx: u64, rtt: u32| TcpFigures {
            bytes_received: rx,
            rtt_us: rtt,
            rcv_rtt_us: rtt,
            ..TcpFigures::default()
        };
        let mut s = OwnSockets::default();
        // A connection older than the first reading: its past is not this tick's.
        let r = s.account([(1, fig(1_000_000, 30_000))].into(), false);
        assert_eq!(r.bytes, 0);
        assert_eq!(r.rtt, Some(Duration::from_millis(30)));
        // It moves 5000; a new one opened since moved 700.
        let r = s.account(
            [(1, fig(1_005_000, 25_000)), (2, fig(700, 0))].into(),
            false,
        );
        assert_eq!(r.bytes, 5_700);
        assert_eq!(r.rtt, Some(Duration::from_millis(25)), "0 is no estimate");
        assert_eq!(r.connections, 2);
        // The first is missing from this reading: nothing negative, the second's 300 count.
        let r = s.account([(2, fig(1_000, 0))].into(), false);
        assert_eq!(r.bytes, 300);
        assert_eq!(r.rtt, None);
        // It was only skipped: back, it counts from where it was, not from its start.
        let r = s.account([(1, fig(1_006_000, 0)), (2, fig(1_000, 0))].into(), false);
        assert_eq!(r.bytes, 1_000);
    }

    #[test]
    fn windows_are_a_base_delay_of_each_connections_share_and_a_quarter() {
        let rtt = Duration::from_millis(20);
        assert_eq!(window_for(10e6, rtt, CLAMP_GAIN_ALONE, 1, 1000), 250_000);
        assert_eq!(window_for(10e6, rtt, CLAMP_GAIN_ALONE, 4, 1000), 63_000);
        assert_eq!(window_for(10e6, rtt, CLAMP_GAIN_SHARED, 4, 1000), 55_000);
        // Whole segments, rounded up: 3.9 segments of window would carry three.
        assert_eq!(window_for(195_000.0, rtt, 1.0, 1, 1000), 4_000);
        assert_eq!(window_for(195_000.0, rtt, 1.0, 1, 0), 1448 * 3);
        // Never below two segments in all, one each, never above what is sensible.
        assert_eq!(window_for(1000.0, rtt, 1.0, 1, 1448), 2 * 1448);
        assert_eq!(window_for(1000.0, rtt, 1.0, 2, 1448), 1448);
        assert_eq!(window_for(1000.0, rtt, 1.0, 16, 1448), 1448);
        assert_eq!(window_for(1e12, rtt, 1.0, 1, 1448), CLAMP_MAX);
    }

    #[test]
    fn socket_links() {
        assert_eq!(socket_inode("socket:[4242]"), Some(4242));
        assert_eq!(socket_inode("pipe:[4242]"), None);
    }
}

/// The kernel's figures for a real connection of this process.
#[cfg(all(test, target_os = "linux"))]
pub(super) mod linux_tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    use super::*;

    /// A socket's `TCP_WINDOW_CLAMP`.
    pub(crate) fn window_clamp(s: &TcpStream) -> i32 {
        use std::os::fd::AsRawFd;
        let mut v: libc::c_int = 0;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: the kernel writes one c_int and its length.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_WINDOW_CLAMP,
                (&raw mut v).cast(),
                &raw mut len,
            )
        };
        assert_eq!(rc, 0);
        v
    }

    #[test]
    fn a_connection_of_this_process_is_found_and_its_bytes_counted() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(server).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        let mut own = OwnSockets::default();
        let first = own.read(server, false, Clamp::Leave).unwrap();
        assert_eq!(first.connections, 1, "{first:?}");
        assert_eq!(first.bytes, 0);
        peer.write_all(&vec![7u8; 100_000]).unwrap();
        let mut buf = vec![0u8; 100_000];
        client.read_exact(&mut buf).unwrap();
        let r = own.read(server, false, Clamp::Leave).unwrap();
        // Counted as segments times the segment size, and loopback's segments vary in size:
        // within the share that still counts as full segments.
        assert!((100_000..=111_112).contains(&r.bytes), "{r:?}");
        // The listener's accepted end is this process's too, but it is not a connection to
        // the server's address.
        client.write_all(&[1u8; 5000]).unwrap();
        peer.read_exact(&mut buf[..5000]).unwrap();
        let up = own.read(server, true, Clamp::Leave).unwrap();
        assert_eq!(up.connections, 1);
        assert!(up.rtt.is_some(), "{up:?}");
    }

    #[test]
    fn a_limited_download_has_its_window_clamped_and_lifted() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let client = TcpStream::connect(server).unwrap();
        let _peer = listener.accept().unwrap();
        let mut own = OwnSockets::default();
        let before = window_clamp(&client);
        own.read(server, false, Clamp::Leave).unwrap();
        assert_eq!(window_clamp(&client), before);
        // 1 MB/s over 50 ms: 1.25 times 50 kB, rounded up to whole segments (the kernel's
        // first guess of a segment, 536 bytes, before any data).
        let rtt = Duration::from_millis(50);
        let to = Clamp::To {
            rate: 1e6,
            rtt,
            gain: CLAMP_GAIN_ALONE,
        };
        own.read(server, false, to).unwrap();
        let clamp = window_clamp(&client);
        assert!((62_500..62_500 + 1448).contains(&clamp), "{clamp}");
        own.read(server, false, Clamp::Lift).unwrap();
        assert!(window_clamp(&client) > 1 << 20);
    }
}
