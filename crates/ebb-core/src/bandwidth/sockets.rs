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
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Low-priority congestion controls a background upload may use, best first: TCP-LP (Linux's
/// `tcp_lp`) yields to other flows when its one-way delay rises.
const BACKGROUND_CC: &[&str] = &["lp"];
/// How many readings a connection missing from the table is remembered.
const GONE_READINGS: u32 = 40;

/// One connection's figures from `TCP_INFO`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TcpFigures {
    pub bytes_received: u64,
    pub bytes_acked: u64,
    /// Smoothed RTT of what this socket sent (its own data or, for a download, little more than
    /// its ACKs), µs.
    pub rtt_us: u32,
    /// The receiver's RTT estimate, µs (0 when it has none).
    pub rcv_rtt_us: u32,
}

/// `struct tcp_info` (`linux/tcp.h`) offsets of the fields read here; the kernel copies as much
/// as the buffer holds, and `bytes_received` (Linux 4.1) is the last one needed.
const RTT: usize = 68;
const RCV_RTT: usize = 92;
const BYTES_ACKED: usize = 120;
const BYTES_RECEIVED: usize = 128;
pub(crate) const TCP_INFO_LEN: usize = 136;

/// The figures in a `TCP_INFO` buffer; `None` if the kernel filled too little of it.
pub(crate) fn parse_tcp_info(buf: &[u8]) -> Option<TcpFigures> {
    let u32_at = |at: usize| Some(u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_ne_bytes(buf.get(at..at + 8)?.try_into().ok()?));
    Some(TcpFigures {
        bytes_received: u64_at(BYTES_RECEIVED)?,
        bytes_acked: u64_at(BYTES_ACKED)?,
        rtt_us: u32_at(RTT)?,
        rcv_rtt_us: u32_at(RCV_RTT)?,
    })
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

/// The connections seen at the last reading, by socket inode, and their counters then.
#[derive(Debug, Default)]
pub(crate) struct OwnSockets {
    seen: HashMap<u64, TcpFigures>,
    /// Connections missing from the last readings, and for how many: the kernel's table is
    /// read in pieces, and one that changes meanwhile can skip a line. A connection back
    /// within GONE_READINGS counts from where it was, not from its start.
    gone: HashMap<u64, (TcpFigures, u32)>,
    /// Whether a reading was taken before: a connection found at the first one may be old,
    /// and only what it does from then on counts.
    primed: bool,
    /// The congestion control given to upload connections, once one worked.
    pub congestion: Option<&'static str>,
    /// Sockets already given (or refused) a congestion control.
    tried_cc: HashSet<u64>,
}

impl OwnSockets {
    /// Forget every connection (a new server or direction).
    pub(crate) fn reset(&mut self) {
        self.seen.clear();
        self.gone.clear();
        self.tried_cc.clear();
        self.primed = false;
    }

    /// Account one reading of the connections: `now` maps inode to figures.
    pub(crate) fn account(&mut self, now: HashMap<u64, TcpFigures>, upload: bool) -> Reading {
        let mut r = Reading {
            connections: now.len(),
            ..Reading::default()
        };
        for (inode, f) in &now {
            let back = self.gone.remove(inode).map(|(f, _)| f);
            let before = self.seen.get(inode).copied().or(back).or_else(|| {
                // A connection seen for the first time: new since the last reading, unless
                // this is the first reading.
                self.primed.then(TcpFigures::default).or(Some(*f))
            });
            let before = before.unwrap_or_default();
            r.bytes += if upload {
                f.bytes_acked.saturating_sub(before.bytes_acked)
            } else {
                f.bytes_received.saturating_sub(before.bytes_received)
            };
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
        for (inode, f) in self.seen.drain() {
            if !now.contains_key(&inode) {
                self.gone.insert(inode, (f, 0));
            }
        }
        self.gone.retain(|_, (_, n)| {
            *n += 1;
            *n <= GONE_READINGS
        });
        self.tried_cc
            .retain(|i| now.contains_key(i) || self.gone.contains_key(i));
        self.seen = now;
        self.primed = true;
        r
    }

    /// Read ebb's established connections to `remote` and account them. On an upload, give
    /// connections not seen before a background congestion control, where one is available.
    #[cfg(target_os = "linux")]
    pub(crate) fn read(&mut self, remote: SocketAddr, upload: bool) -> Option<Reading> {
        let fds = own_socket_fds()?;
        let table = match remote {
            SocketAddr::V4(_) => "/proc/self/net/tcp",
            SocketAddr::V6(_) => "/proc/self/net/tcp6",
        };
        let text = std::fs::read_to_string(table).ok()?;
        let mut now = HashMap::new();
        for inode in established_to(&text, remote) {
            let Some(&fd) = fds.get(&inode) else { continue };
            if upload && self.tried_cc.insert(inode) {
                self.congestion = set_background_cc(fd, inode).or(self.congestion);
            }
            if let Some(f) = sys::tcp_info(fd, inode) {
                now.insert(inode, f);
            }
        }
        Some(self.account(now, upload))
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn read(&mut self, _remote: SocketAddr, _upload: bool) -> Option<Reading> {
        None
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

/// `/proc/net/tcp{,6}`: the inodes of established sockets to `remote`.
fn established_to(text: &str, remote: SocketAddr) -> Vec<u64> {
    let want = proc_address(remote);
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (rem, state, inode) = (f.get(2)?, f.get(3)?, f.get(9)?);
            (rem.eq_ignore_ascii_case(&want) && *state == "01")
                .then(|| inode.parse().ok())
                .flatten()
        })
        .collect()
}

/// An address as `/proc/net/tcp` writes it: each 32-bit word in host (little-endian) order,
/// then the port, in hex.
fn proc_address(a: SocketAddr) -> String {
    let words: Vec<String> = match a.ip() {
        IpAddr::V4(v4) => vec![format!("{:08X}", u32::from_le_bytes(v4.octets()))],
        IpAddr::V6(v6) => v6
            .octets()
            .chunks(4)
            .map(|c| format!("{:08X}", u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
    };
    format!("{}:{:04X}", words.concat(), a.port())
}

/// The system calls, on descriptors this process holds. A descriptor found in `/proc/self/fd`
/// may be closed and reused before it is used here, so each call first checks that it still
/// is the socket of that inode; a reuse in the instant between the check and the call can only
/// reach another of this process's sockets, where `TCP_INFO` is harmless.
#[cfg(target_os = "linux")]
mod sys {
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

    pub(super) fn set_congestion(fd: i32, inode: u64, name: &str) -> std::io::Result<()> {
        if !is_inode(fd, inode) {
            return Err(std::io::ErrorKind::NotFound.into());
        }
        // SAFETY: the kernel reads `name.len()` bytes of the name.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_CONGESTION,
                name.as_ptr().cast(),
                name.len() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_info_fields_at_their_offsets() {
        let mut buf = vec![0u8; TCP_INFO_LEN];
        buf[RTT..RTT + 4].copy_from_slice(&20_500u32.to_ne_bytes());
        buf[RCV_RTT..RCV_RTT + 4].copy_from_slice(&21_000u32.to_ne_bytes());
        buf[BYTES_ACKED..BYTES_ACKED + 8].copy_from_slice(&77u64.to_ne_bytes());
        buf[BYTES_RECEIVED..BYTES_RECEIVED + 8].copy_from_slice(&(5u64 << 32).to_ne_bytes());
        let f = parse_tcp_info(&buf).unwrap();
        assert_eq!(
            f,
            TcpFigures {
                bytes_received: 5 << 32,
                bytes_acked: 77,
                rtt_us: 20_500,
                rcv_rtt_us: 21_000,
            }
        );
        // An old kernel that fills less than that: no figures rather than wrong ones.
        assert_eq!(parse_tcp_info(&buf[..104]), None);
    }

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
    fn proc_net_tcp_established_sockets_to_the_server() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
            0: 02004D0A:A1B2 01014D0A:1F90 01 00000000:00010000 00:00000000 00000000     0        0 111 1 0 20 4 30 10 -1
            1: 02004D0A:A1B3 01014D0A:1F91 01 00000000:00000800 00:00000000 00000000     0        0 222 1 0 20 4 30 10 -1
            2: 02004D0A:A1B4 01014D0A:1F90 01 00000000:00000400 00:00000000 00000000     0        0 333 1 0 20 4 30 10 -1
            3: 02004D0A:A1B5 01014D0A:1F90 06 00000000:00000400 00:00000000 00000000     0        0 444 1 0 20 4 30 10 -1
";
        let server: SocketAddr = "10.77.1.1:8080".parse().unwrap();
        assert_eq!(proc_address(server), "01014D0A:1F90");
        // 222 goes to another port; 444 is in TIME_WAIT.
        assert_eq!(established_to(tcp, server), [111, 333]);
        let v6: SocketAddr = "[::1]:443".parse().unwrap();
        assert_eq!(proc_address(v6), "00000000000000000000000001000000:01BB");
        assert_eq!(socket_inode("socket:[4242]"), Some(4242));
        assert_eq!(socket_inode("pipe:[4242]"), None);
    }
}

/// The kernel's figures for a real connection of this process.
#[cfg(all(test, target_os = "linux"))]
mod linux_tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    use super::*;

    #[test]
    fn a_connection_of_this_process_is_found_and_its_bytes_counted() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(server).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        let mut own = OwnSockets::default();
        let first = own.read(server, false).unwrap();
        assert_eq!(first.connections, 1, "{first:?}");
        assert_eq!(first.bytes, 0);
        peer.write_all(&vec![7u8; 100_000]).unwrap();
        let mut buf = vec![0u8; 100_000];
        client.read_exact(&mut buf).unwrap();
        let r = own.read(server, false).unwrap();
        assert_eq!(r.bytes, 100_000, "{r:?}");
        // The listener's accepted end is this process's too, but it is not a connection to
        // the server's address.
        client.write_all(&[1u8; 5000]).unwrap();
        peer.read_exact(&mut buf[..5000]).unwrap();
        let up = own.read(server, true).unwrap();
        assert_eq!(up.connections, 1);
        assert!(up.rtt.is_some(), "{up:?}");
    }
}
