//! Interface byte counters and the route's interface, from the kernel (Linux `/proc/net`).
//! Elsewhere the counters are unavailable and the estimator runs on the delay signal alone.
// The parsers are Linux's; their tests run everywhere.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use std::net::IpAddr;

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
}
