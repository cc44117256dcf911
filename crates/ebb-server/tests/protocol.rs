//! `ebb-server` against packets written by hand from [MC-BUP] (not through ebb's client), over
//! 127.0.0.1: each request is raw HTTP/1.1 on its own connection.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::{GUID, Peer, Server, config, data, root};

#[tokio::test]
async fn an_upload_in_fragments_appears_at_close_and_only_then() {
    let dir = tempfile::tempdir().unwrap();
    let root = root(dir.path());
    let server = Server::start(config(&root)).await;
    let ping = server.post("/up/a.bin", "Ping", &[], b"").await;
    assert_eq!(
        (ping.status, ping.header("bits-packet-type")),
        (200, Some("Ack"))
    );
    assert_eq!(ping.header("content-length"), Some("0"));

    let r = server
        .post(
            "/up/a.bin",
            "create-session",
            &[&format!(
                "BITS-Supported-Protocols: {{00000000-0000-0000-0000-000000000000}} {}",
                GUID.to_uppercase()
            )],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("bits-protocol"), Some(GUID));
    assert_eq!(r.header("accept-encoding"), Some("Identity"));
    let id = r.header("bits-session-id").unwrap().to_owned();
    assert!(
        id.len() == 38 && id.starts_with('{') && id == id.to_uppercase(),
        "a braced upper-case GUID: {id}"
    );

    let body = data(10_000, 1);
    for (first, piece) in [(0usize, 4000usize), (4000, 4000), (8000, 2000)] {
        let r = server
            .fragment(
                "/up/a.bin",
                &id,
                first as u64,
                &body[first..first + piece],
                10_000,
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.header("bits-received-content-range"),
            Some((first + piece).to_string().as_str())
        );
        assert!(
            !root.join("up/a.bin").exists(),
            "nothing at the name before Close-Session"
        );
    }
    let r = server.close("/up/a.bin", &id).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(std::fs::read(root.join("up/a.bin")).unwrap(), body);
    let left: Vec<_> = std::fs::read_dir(root.join("up"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "no temporary file is left: {left:?}");
    // A Close sent again (its Ack was lost) is done; the session is gone for anything else.
    assert_eq!(server.close("/up/a.bin", &id).await.status, 200);
    server
        .close("/up/other.bin", &id)
        .await
        .assert_error(500, "0x8020001F");
    server
        .fragment("/up/a.bin", &id, 0, &body[..10], 10_000)
        .await
        .assert_error(500, "0x8020001F");

    // The same file comes back with ranges.
    let r = server
        .raw(
            b"GET /up/a.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=9000-\r\nConnection: close\r\n\r\n",
        )
        .await;
    assert_eq!(r.status, 206, "{r:?}");
    assert_eq!(r.body, body[9000..]);
    assert!(r.header("last-modified").is_some());
    server.stop().await;
}

#[tokio::test]
async fn overlap_is_written_once_and_a_gap_is_answered_416() {
    let dir = tempfile::tempdir().unwrap();
    let root = root(dir.path());
    let server = Server::start(config(&root)).await;
    let id = server.create("/up/b.bin").await;
    let body = data(3000, 2);
    server
        .fragment("/up/b.bin", &id, 0, &body[..2000], 3000)
        .await;
    // A gap: the client is told where to go on.
    let r = server
        .fragment("/up/b.bin", &id, 2500, &body[2500..], 3000)
        .await;
    assert_eq!(r.status, 416, "{r:?}");
    assert_eq!(r.header("bits-received-content-range"), Some("2000"));
    // A re-sent fragment whose first half differs: the bytes received are never written again.
    let mut resent = body[1000..3000].to_vec();
    resent[..1000].fill(0xEE);
    let r = server.fragment("/up/b.bin", &id, 1000, &resent, 3000).await;
    assert_eq!(
        r.header("bits-received-content-range"),
        Some("3000"),
        "{r:?}"
    );
    // A fragment of bytes all received: nothing changes.
    let r = server.fragment("/up/b.bin", &id, 0, &[0u8; 10], 3000).await;
    assert_eq!(
        (r.status, r.header("bits-received-content-range")),
        (200, Some("3000"))
    );
    // The length may not change.
    server
        .fragment("/up/b.bin", &id, 0, &[0u8; 10], 4000)
        .await
        .assert_error(400, "0x80070057");
    server.close("/up/b.bin", &id).await;
    assert_eq!(std::fs::read(root.join("up/b.bin")).unwrap(), body);
    server.stop().await;
}

#[tokio::test]
async fn malformed_packets_are_refused_with_the_code_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = root(dir.path());
    let server = Server::start(config(&root)).await;
    let other = "BITS-Supported-Protocols: {11111111-2222-3333-4444-555555555555}";
    server
        .post("/up/c.bin", "Create-Session", &[other], b"")
        .await
        .assert_error(400, "0x80070057");
    server
        .post("/up/c.bin", "Create-Session", &[], b"")
        .await
        .assert_error(400, "0x80070057");
    server
        .post("/up/c.bin", "Upload-Everything", &[], b"")
        .await
        .assert_error(400, "0x80070057");
    let long = format!("X-Long: {}", "a".repeat(5000));
    server
        .post("/up/c.bin", "Ping", &[&long], b"")
        .await
        .assert_error(400, "0x80070057");
    let id = server.create("/up/c.bin").await;
    for range in [
        "bytes 5-4/10",
        "bytes 0-10/10",
        "0-4/10",
        "bytes 0-x/10",
        "bytes -1-4/10",
    ] {
        server
            .post(
                "/up/c.bin",
                "Fragment",
                &[
                    &format!("BITS-Session-Id: {id}"),
                    &format!("Content-Range: {range}"),
                ],
                b"12345",
            )
            .await
            .assert_error(400, "0x80070057");
    }
    // Content-Length that is not the range's length.
    server
        .post(
            "/up/c.bin",
            "Fragment",
            &[
                &format!("BITS-Session-Id: {id}"),
                "Content-Range: bytes 0-9/10",
            ],
            b"12345",
        )
        .await
        .assert_error(400, "0x80070057");
    // A session id this server never gave, and one given for another upload.
    server
        .fragment(
            "/up/c.bin",
            "{00000000-0000-0000-0000-000000000000}",
            0,
            b"12345",
            10,
        )
        .await
        .assert_error(500, "0x8020001F");
    let theirs = server.create("/up/d.bin").await;
    server
        .fragment("/up/c.bin", &theirs, 0, b"12345", 10)
        .await
        .assert_error(500, "0x8020001F");
    server.stop().await;
}

/// The `ebb-server` binary, `--root` alone: `kill -9` mid-upload, a restart, and the upload goes
/// on from the server's received range.
#[tokio::test]
async fn the_binary_survives_kill_9_mid_upload() {
    let dir = tempfile::tempdir().unwrap();
    let root = root(dir.path());
    let start = || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ebb-server"))
            .args(["--root", root.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .unwrap()
            .parse()
            .unwrap();
        (child, Peer { addr, tls: None })
    };
    let body = data(50_000, 5);
    let (mut child, peer) = start();
    let id = peer.create("/up/k.bin").await;
    peer.fragment("/up/k.bin", &id, 0, &body[..20_000], 50_000)
        .await;
    child.kill().unwrap();
    child.wait().unwrap();

    let (mut child, peer) = start();
    let r = peer
        .fragment("/up/k.bin", &id, 30_000, &body[30_000..], 50_000)
        .await;
    assert_eq!(
        (r.status, r.header("bits-received-content-range")),
        (416, Some("20000"))
    );
    peer.fragment("/up/k.bin", &id, 20_000, &body[20_000..], 50_000)
        .await;
    assert_eq!(peer.close("/up/k.bin", &id).await.status, 200);
    assert_eq!(std::fs::read(root.join("up/k.bin")).unwrap(), body);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn paths_never_leave_the_root_and_files_are_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let root = root(dir.path());
    std::os::unix::fs::symlink(dir.path(), root.join("up/out")).unwrap();
    std::fs::write(root.join("up/taken.bin"), b"mine").unwrap();
    let server = Server::start(config(&root)).await;
    let create = |path: &'static str| {
        let server = &server;
        async move {
            server
                .post(
                    path,
                    "Create-Session",
                    &[&format!("BITS-Supported-Protocols: {GUID}")],
                    b"",
                )
                .await
        }
    };
    for path in [
        "/up/../x.bin",
        "/up/%2e%2e/x.bin",
        "/up/a%2fb",
        "/up/a%5cb",
        "/up/.ebb-server",
        "/up/",
    ] {
        create(path).await.assert_error(400, "0x80070057");
    }
    create("/up/out/x.bin")
        .await
        .assert_error(403, "0x80070005");
    create("/up/taken.bin")
        .await
        .assert_error(403, "0x80070005");
    assert_eq!(create("/nowhere/x.bin").await.status, 404);
    assert_eq!(std::fs::read(root.join("up/taken.bin")).unwrap(), b"mine");
    // Downloads are held to the same rules: no hidden files (the server's own), no links.
    for path in [
        "/.ebb-server/sessions.db",
        "/up/out/root/up/taken.bin",
        "/up/%2e%2e/up/taken.bin",
    ] {
        let r = server
            .raw(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
            .await;
        assert_eq!(r.status, 404, "{path}: {r:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn cancel_and_an_early_close_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = root(dir.path());
    let server = Server::start(config(&root)).await;
    for packet in ["Cancel-Session", "Close-Session"] {
        let id = server.create("/up/e.bin").await;
        server
            .fragment("/up/e.bin", &id, 0, &data(100, 3), 200)
            .await;
        let r = server
            .post(
                "/up/e.bin",
                packet,
                &[&format!("BITS-Session-Id: {id}")],
                b"",
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        let left: Vec<_> = std::fs::read_dir(root.join("up")).unwrap().collect();
        assert!(left.is_empty(), "{packet}: {left:?}");
        server
            .fragment("/up/e.bin", &id, 100, &data(100, 3), 200)
            .await
            .assert_error(500, "0x8020001F");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_restarted_server_keeps_its_sessions_and_sweeps_expired_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = root(dir.path());
    let body = data(5000, 4);
    let server = Server::start(config(&root)).await;
    let id = server.create("/up/f.bin").await;
    server
        .fragment("/up/f.bin", &id, 0, &body[..3000], 5000)
        .await;
    server.stop().await;

    let server = Server::start(config(&root)).await;
    let r = server
        .fragment("/up/f.bin", &id, 4000, &body[4000..], 5000)
        .await;
    assert_eq!(
        (r.status, r.header("bits-received-content-range")),
        (416, Some("3000"))
    );
    server
        .fragment("/up/f.bin", &id, 3000, &body[3000..], 5000)
        .await;
    server.close("/up/f.bin", &id).await;
    assert_eq!(std::fs::read(root.join("up/f.bin")).unwrap(), body);
    server.stop().await;

    let mut short = config(&root);
    short.directories[0].session_timeout = Duration::from_millis(300);
    let server = Server::start(short).await;
    let id = server.create("/up/g.bin").await;
    server
        .fragment("/up/g.bin", &id, 0, &body[..100], 5000)
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server
        .fragment("/up/g.bin", &id, 100, &body[100..200], 5000)
        .await
        .assert_error(500, "0x8020001F");
    let left: Vec<_> = std::fs::read_dir(root.join("up"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["f.bin"], "the expired session's file is gone");
    server.stop().await;
}

/// A crash during Close-Session, after the file got its name but before the session's row went:
/// the Close the client sends again succeeds, with and without overwriting allowed.
#[tokio::test]
async fn close_sent_again_after_a_crash_mid_close_succeeds() {
    for overwrite in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let root = root(dir.path());
        let mut c = config(&root);
        c.directories[0].allow_overwrite = overwrite;
        let server = Server::start(c).await;
        let body = data(2000, 12);
        let id = server.create("/up/h.bin").await;
        server.fragment("/up/h.bin", &id, 0, &body, 2000).await;
        let temp = std::fs::read_dir(root.join("up"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with(".ebb-upload-")
            })
            .unwrap();
        // Where the crash left things: linked (no overwrite) or renamed (overwrite).
        if overwrite {
            std::fs::rename(&temp, root.join("up/h.bin")).unwrap();
        } else {
            std::fs::hard_link(&temp, root.join("up/h.bin")).unwrap();
        }
        let r = server.close("/up/h.bin", &id).await;
        assert_eq!(r.status, 200, "overwrite {overwrite}: {r:?}");
        assert_eq!(std::fs::read(root.join("up/h.bin")).unwrap(), body);
        assert!(!temp.exists());
        server.stop().await;
    }
}
