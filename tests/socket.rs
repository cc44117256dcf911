//! The daemon's socket under abuse by a local peer: slow and idle connections, too many of
//! them, descriptor exhaustion, malformed requests, and a socket path that names a file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;

use ebb::Backend;

use crate::support;

const VERSION: &str = "GET /v1/version HTTP/1.1\r\nhost: ebbd\r\nconnection: close\r\n\r\n";

/// A daemon served in-process with the given limits.
async fn serve(dir: &Path, limits: ebb_daemon::ConnectionLimits) -> (PathBuf, CancellationToken) {
    let engine = support::engine(dir).await;
    let socket = dir.join("run").join("ebbd.sock");
    let listener = ebb_daemon::bind(&socket).unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(ebb_daemon::serve_with(
        engine,
        listener,
        stop.clone(),
        limits,
    ));
    (socket, stop)
}

/// Send `request` as is and read until the daemon closes; `None` if it did not within `secs`.
async fn exchange(socket: &Path, request: &str, secs: u64) -> Option<String> {
    let mut s = UnixStream::connect(socket).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(secs), s.read_to_string(&mut text))
        .await
        .ok()
        .map(|r| r.map(|_| text).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_and_connections_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let limits = ebb_daemon::ConnectionLimits {
        max_connections: 4,
        header_timeout: Duration::from_millis(500),
    };
    let (socket, stop) = serve(dir.path(), limits).await;
    // Half a request line, then nothing: closed at the header deadline.
    let slow = exchange(&socket, "GET /v1/version HTTP/1.1\r\nhost: eb", 10).await;
    assert!(slow.is_some(), "a slow sender keeps its connection forever");
    // More idle connections than the cap: they are closed, and a real request gets through.
    let mut idle = Vec::new();
    for _ in 0..6 {
        idle.push(UnixStream::connect(&socket).await.unwrap());
    }
    let ok = exchange(&socket, VERSION, 10)
        .await
        .expect("a request behind idle connections is answered");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    for mut s in idle {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
        assert!(
            matches!(n, Ok(Ok(0))),
            "an idle connection stays open: {n:?}"
        );
    }
    // A request being answered is not cut at the header deadline: a 2 s wait completes.
    let client = ebb::Client::connect(&socket).await.unwrap();
    let id = client
        .create_job("w", ebb::JobType::Download)
        .await
        .unwrap();
    let never = "http://127.0.0.1:9/never";
    client
        .add_files(id, vec![ebb::NewFile::new(never, dir.path().join("w"))])
        .await
        .unwrap();
    client.resume(id).await.unwrap();
    let started = Instant::now();
    let state = client.wait(id, Some(Duration::from_secs(2))).await.unwrap();
    assert!(state.is_active(), "{state}");
    assert!(started.elapsed() >= Duration::from_secs(2));
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_the_json_error_body() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, stop) = serve(dir.path(), ebb_daemon::ConnectionLimits::default()).await;
    for (body, content_type) in [
        ("{not json", "application/json"),
        ("{\"display_name\": 7}", "application/json"),
        ("{\"display_name\": \"x\"}", "text/plain"),
    ] {
        let request = format!(
            "POST /v1/jobs HTTP/1.1\r\nhost: ebbd\r\ncontent-type: {content_type}\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let text = exchange(&socket, &request, 10).await.unwrap();
        assert!(text.starts_with("HTTP/1.1 400"), "{text}");
        let json = text.split("\r\n\r\n").nth(1).unwrap();
        let err: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| {
            panic!("not the JSON error body ({e}): {text}");
        });
        assert_eq!(err["code"], "0x80070057", "{err}");
        assert_eq!(err["status"], "permanent", "{err}");
    }
    let bad_query = "GET /v1/jobs?all=maybe HTTP/1.1\r\nhost: ebbd\r\nconnection: close\r\n\r\n";
    let text = exchange(&socket, bad_query, 10).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("\"code\":\"0x80070057\""), "{text}");
    stop.cancel();
}

/// `ebbd` with few descriptors: many connections exhaust them. Accept errors must neither spin
/// (a warning per turn of the loop wrote 1.34 million lines in 3 s) nor end the daemon, which
/// answers again once the connections are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descriptor_exhaustion_neither_spins_nor_floods_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run/ebbd.sock");
    let log = dir.path().join("ebbd.err");
    let mut child = Command::new("prlimit")
        .arg("--nofile=48:48")
        .arg(support::ebb_bin().with_file_name("ebbd"))
        .arg("--foreground")
        .env("EBB_DATA_DIR", dir.path().join("data"))
        .env("EBB_SOCKET", &socket)
        .env("EBB_SECRET_STORE", "file")
        .env("EBB_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _reaped = support::Started(child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "ebbd did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut held = Vec::new();
    for _ in 0..80 {
        held.push(std::os::unix::net::UnixStream::connect(&socket).unwrap());
    }
    std::thread::sleep(Duration::from_secs(2));
    let said = std::fs::read_to_string(&log).unwrap();
    let warnings = said.matches("accept failed").count();
    assert!(
        (1..=2).contains(&warnings),
        "{warnings} accept warnings in 2 s: {}",
        &said[..said.len().min(2000)]
    );
    drop(held);
    let text = exchange(&socket, VERSION, 20)
        .await
        .expect("ebbd answers again");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(child.try_wait().unwrap().is_none(), "ebbd died");
    terminate(&mut child);
}

/// SIGTERM a daemon this test spawned and reap it (10 s at most).
fn terminate(child: &mut std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "ebbd {} did not stop",
            child.id()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `EBB_SOCKET` naming a regular file by mistake: the daemon refuses, and the file is intact.
#[test]
fn a_socket_path_that_names_a_file_is_never_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let precious = dir.path().join("notes.txt");
    std::fs::write(&precious, b"keep me").unwrap();
    let out = Command::new(support::ebb_bin().with_file_name("ebbd"))
        .arg("--foreground")
        .env("EBB_DATA_DIR", dir.path().join("data"))
        .env("EBB_SOCKET", &precious)
        .env("EBB_SECRET_STORE", "file")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("is not a socket"), "{said}");
    assert_eq!(std::fs::read(&precious).unwrap(), b"keep me");
}

/// A second daemon on a socket another one answers on (its own data directory): refused,
/// naming the socket, not a data directory; the first daemon goes on serving.
#[tokio::test]
async fn a_socket_in_use_is_named_as_such() {
    let first = tempfile::tempdir().unwrap();
    let _ebbd = support::spawn_ebbd(first.path(), &[]);
    let socket = first.path().join("run/ebbd.sock");
    let second = tempfile::tempdir().unwrap();
    let out = Command::new(support::ebb_bin().with_file_name("ebbd"))
        .arg("--foreground")
        .env("EBB_DATA_DIR", second.path().join("data"))
        .env("EBB_SOCKET", &socket)
        .env("EBB_SECRET_STORE", "file")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("another ebbd answers on this socket"),
        "{said}"
    );
    assert!(said.contains(&socket.display().to_string()), "{said}");
    assert!(!said.contains("data directory"), "{said}");
    let client = ebb::Client::connect(&socket).await.unwrap();
    assert!(client.list(ebb::JobFilter::default()).await.is_ok());
}

/// `ebbd --foreground` with stderr redirected (a log file, the journal): no ANSI colours.
#[test]
fn a_redirected_foreground_log_has_no_colours() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ebbd.err");
    let socket = dir.path().join("run/ebbd.sock");
    let mut child = Command::new(support::ebb_bin().with_file_name("ebbd"))
        .arg("--foreground")
        .env("EBB_DATA_DIR", dir.path().join("data"))
        .env("EBB_SOCKET", &socket)
        .env("EBB_SECRET_STORE", "file")
        .env_remove("EBB_LOG")
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _reaped = support::Started(child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("ebbd ready")
    {
        assert!(Instant::now() < deadline, "ebbd did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    terminate(&mut child);
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(!said.contains('\u{1b}'), "{said:?}");
}

/// The data directory and every file in it are private to the user, including after an older
/// ebb (or a loose umask) left them readable.
#[tokio::test]
async fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let e = support::engine(dir.path()).await;
    e.shutdown().await;
    drop(e);
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(data.join("ebb.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = support::engine(dir.path()).await;
    assert_eq!(mode(&data), 0o700);
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    e.shutdown().await;
}
