//! What 1,000 open upload sessions cost `ebb-server`: its resident memory before and after, and
//! the time to open them (Create-Session plus one 1 KiB fragment each, one connection per
//! packet, from one client). `cargo bench -p ebb-server --bench sessions`. Linux only (it reads
//! `/proc`).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

const GUID: &str = "{7df0354d-249b-430f-820d-3d2a9bef4931}";
const SESSIONS: usize = 1000;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn post(addr: &str, head: &str, body: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    let request = format!(
        "BITS_POST /up/f.bin HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{head}Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(request.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("up")).unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n[[directory]]\nroot = \"{}\"\nmax_sessions_per_user = 0\n",
            root.display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ebb-server"))
        .args(["--config", config.to_str().unwrap()])
        .env("EBB_SERVER_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().to_owned();
    let before = rss_kib(child.id());
    let fragment = vec![7u8; 1024];
    let started = Instant::now();
    for _ in 0..SESSIONS {
        let ack = post(
            &addr,
            &format!("BITS-Packet-Type: Create-Session\r\nBITS-Supported-Protocols: {GUID}\r\n"),
            b"",
        );
        let id = ack
            .lines()
            .find_map(|l| l.strip_prefix("bits-session-id: "))
            .unwrap()
            .to_owned();
        let head = format!(
            "BITS-Packet-Type: Fragment\r\nBITS-Session-Id: {id}\r\nContent-Range: bytes 0-1023/1048576\r\n"
        );
        assert!(post(&addr, &head, &fragment).starts_with("HTTP/1.1 200"));
    }
    let took = started.elapsed();
    let after = rss_kib(child.id());
    println!(
        "| sessions | RSS before | RSS after | per session | time to open (create + 1 KiB fragment) |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {SESSIONS} | {:.1} MiB | {:.1} MiB | {:.1} KiB | {:.2} s ({:.2} ms each) |",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after.saturating_sub(before)) as f64 / SESSIONS as f64,
        took.as_secs_f64(),
        took.as_secs_f64() * 1000.0 / SESSIONS as f64
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
