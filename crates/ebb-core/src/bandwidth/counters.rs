//! Interface byte counters and the route's interface, from the kernel (Linux `/proc/net`).
//! Elsewhere the counters are unavailable and the estimator runs on the delay signal alone.
// The parsers are Linux's; their tests run everywhere.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

/// Bytes received so far by `iface`.
#[cfg(target_os = "linux")]
pub(crate) fn rx_bytes(iface: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/dev").ok()?;
    parse_dev(&text, iface, RX_BYTES)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn rx_bytes(_iface: &str) -> Option<u64> {
    None
}

/// Bytes sent so far by `iface`.
#[cfg(target_os = "linux")]
pub(crate) fn tx_bytes(iface: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/dev").ok()?;
    parse_dev(&text, iface, TX_BYTES)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn tx_bytes(_iface: &str) -> Option<u64> {
    None
}

/// Columns of `/proc/net/dev` after the interface's name: eight receive counters, then eight
/// transmit counters, bytes first in each.
const RX_BYTES: usize = 0;
const TX_BYTES: usize = 8;

/// The interface the kernel would use to reach `ip` (IPv4 routes; loopback for loopback).
#[cfg(target_os = "linux")]
pub(crate) fn route_interface(ip: IpAddr) -> Option<String> {
    if ip.is_loopback() {
        return Some("lo".to_owned());
    }
    let IpAddr::V4(v4) = ip else {
        // IPv6 routes: take the default route's interface of the IPv4 table as a fallback.
        let text = std::fs::read_to_string("/proc/net/route").ok()?;
        return parse_route(&text, std::net::Ipv4Addr::UNSPECIFIED);
    };
    let text = std::fs::read_to_string("/proc/net/route").ok()?;
    parse_route(&text, v4)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn route_interface(_ip: IpAddr) -> Option<String> {
    None
}

/// Bytes that arrived on this process's TCP connections to `remote` but are not read yet (the
/// sockets' receive queues). ebb counts its bytes when it reads them; the interface counts them
/// when they arrive; this is the difference, so that a filling socket buffer is not mistaken
/// for someone else's traffic.
#[cfg(target_os = "linux")]
pub(crate) fn own_rx_queue(remote: SocketAddr) -> Option<u64> {
    let mut inodes = HashSet::new();
    for fd in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        if let Ok(target) = std::fs::read_link(fd.path())
            && let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
        {
            inodes.insert(inode);
        }
    }
    let table = match remote {
        SocketAddr::V4(_) => "/proc/self/net/tcp",
        SocketAddr::V6(_) => "/proc/self/net/tcp6",
    };
    let text = std::fs::read_to_string(table).ok()?;
    Some(parse_rx_queue(&text, remote, &inodes))
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn own_rx_queue(_remote: SocketAddr) -> Option<u64> {
    None
}

/// `/proc/net/tcp{,6}`: the summed `rx_queue` of established sockets to `remote` whose inode is
/// one of `inodes`.
fn parse_rx_queue(text: &str, remote: SocketAddr, inodes: &HashSet<u64>) -> u64 {
    let want = proc_address(remote);
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (rem, state, queues, inode) = (f.get(2)?, f.get(3)?, f.get(4)?, f.get(9)?);
            let inode: u64 = inode.parse().ok()?;
            if !rem.eq_ignore_ascii_case(&want) || *state != "01" || !inodes.contains(&inode) {
                return None;
            }
            u64::from_str_radix(queues.split_once(':')?.1, 16).ok()
        })
        .sum()
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

/// `/proc/net/dev`: `  eth0: <rx bytes> <rx packets> ... <tx bytes> ...`, the `column`th.
fn parse_dev(text: &str, iface: &str, column: usize) -> Option<u64> {
    text.lines().skip(2).find_map(|line| {
        let (name, rest) = line.split_once(':')?;
        (name.trim() == iface)
            .then(|| rest.split_whitespace().nth(column)?.parse().ok())
            .flatten()
    })
}

/// `/proc/net/route`: the longest prefix that matches `ip` (addresses are little-endian hex).
fn parse_route(text: &str, ip: std::net::Ipv4Addr) -> Option<String> {
    let addr = u32::from_le_bytes(ip.octets());
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            (addr & mask == dest).then(|| (mask.count_ones(), f[0].to_owned()))
        })
        .max_by_key(|(bits, _)| *bits)
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_dev_and_route() {
        let dev = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes\n    lo: 1234 5 0 0 0 0 0 0 1234 5 0 0 0 0 0 0\n  cli0: 987654321 100 0 0 0 0 0 0 42 1 0 0 0 0 0 0\n";
        assert_eq!(parse_dev(dev, "cli0", RX_BYTES), Some(987_654_321));
        assert_eq!(parse_dev(dev, "cli0", TX_BYTES), Some(42));
        assert_eq!(parse_dev(dev, "lo", RX_BYTES), Some(1234));
        assert_eq!(parse_dev(dev, "eth9", RX_BYTES), None);
        let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            cli0\t00004D0A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        assert_eq!(
            parse_route(route, "10.77.1.1".parse().unwrap()).as_deref(),
            Some("cli0")
        );
        assert_eq!(
            parse_route(route, "93.184.216.34".parse().unwrap()).as_deref(),
            Some("eth0")
        );
    }

    #[test]
    fn proc_net_tcp_receive_queues() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
            0: 02004D0A:A1B2 01014D0A:1F90 01 00000000:00010000 00:00000000 00000000     0        0 111 1 0 20 4 30 10 -1
            1: 02004D0A:A1B3 01014D0A:1F90 01 00000000:00000800 00:00000000 00000000     0        0 222 1 0 20 4 30 10 -1
            2: 02004D0A:A1B4 01014D0A:1F90 01 00000000:00000400 00:00000000 00000000     0        0 333 1 0 20 4 30 10 -1
            3: 02004D0A:A1B5 01014D0A:1F90 06 00000000:00000400 00:00000000 00000000     0        0 111 1 0 20 4 30 10 -1
";
        let server: SocketAddr = "10.77.1.1:8080".parse().unwrap();
        assert_eq!(proc_address(server), "01014D0A:1F90");
        // Ours (111, 222), established; 333 is another process's; the last is TIME_WAIT.
        let ours: HashSet<u64> = [111, 222].into_iter().collect();
        assert_eq!(parse_rx_queue(tcp, server, &ours), 0x10000 + 0x800);
        let v6: SocketAddr = "[::1]:443".parse().unwrap();
        assert_eq!(proc_address(v6), "00000000000000000000000001000000:01BB");
    }
}
