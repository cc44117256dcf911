//! Who reaches what: Basic authentication where a directory lists users, and a session only
//! for the user who created it.
#![allow(clippy::unwrap_used)]

mod support;

use base64::Engine as _;
use ebb_server::User;
use support::{GUID, Server, config, data, root};

fn basic(name: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"));
    format!("Authorization: Basic {token}")
}

#[tokio::test]
async fn a_session_belongs_to_the_user_who_created_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = root(dir.path());
    let mut c = config(&root);
    c.directories[0].users = ["alice", "bob"]
        .map(|n| User {
            name: n.into(),
            password: format!("{n}-secret"),
        })
        .into();
    let server = Server::start(c).await;
    let (alice, bob) = (basic("alice", "alice-secret"), basic("bob", "bob-secret"));
    let offer = format!("BITS-Supported-Protocols: {GUID}");
    for who in [
        vec![],
        vec![basic("alice", "bob-secret")],
        vec![basic("eve", "")],
    ] {
        let mut extra: Vec<&str> = who.iter().map(String::as_str).collect();
        extra.push(&offer);
        let r = server
            .post("/up/a.bin", "Create-Session", &extra, b"")
            .await;
        assert_eq!(r.status, 401, "{r:?}");
        assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    }
    let r = server
        .post("/up/a.bin", "Create-Session", &[&alice, &offer], b"")
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let id = r.header("bits-session-id").unwrap().to_owned();
    let body = data(100, 7);
    let fragment = |who: &str| {
        vec![
            who.to_owned(),
            format!("BITS-Session-Id: {id}"),
            "Content-Range: bytes 0-99/100".to_owned(),
        ]
    };
    let as_bob = fragment(&bob);
    let as_bob: Vec<&str> = as_bob.iter().map(String::as_str).collect();
    server
        .post("/up/a.bin", "Fragment", &as_bob, &body)
        .await
        .assert_error(500, "0x8020001F");
    let as_alice = fragment(&alice);
    let as_alice: Vec<&str> = as_alice.iter().map(String::as_str).collect();
    let r = server.post("/up/a.bin", "Fragment", &as_alice, &body).await;
    assert_eq!(
        r.header("bits-received-content-range"),
        Some("100"),
        "{r:?}"
    );
    let close = format!("BITS-Session-Id: {id}");
    server
        .post("/up/a.bin", "Close-Session", &[&bob, &close], b"")
        .await
        .assert_error(500, "0x8020001F");
    let r = server
        .post("/up/a.bin", "Close-Session", &[&alice, &close], b"")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(std::fs::read(root.join("up/a.bin")).unwrap(), body);
    // Downloads ask too.
    let get = |auth: &str| {
        format!("GET /up/a.bin HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n")
    };
    assert_eq!(server.raw(get("").as_bytes()).await.status, 401);
    let r = server.raw(get(&format!("{bob}\r\n")).as_bytes()).await;
    assert_eq!((r.status, r.body), (200, body));
    server.stop().await;
}

#[tokio::test]
async fn a_fragment_without_content_length_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = root(dir.path());
    let server = Server::start(config(&root)).await;
    let id = server.create("/up/b.bin").await;
    let request = format!(
        "BITS_POST /up/b.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\nBITS-Packet-Type: Fragment\r\n\
         BITS-Session-Id: {id}\r\nContent-Range: bytes 0-4/5\r\n\r\n"
    );
    server
        .raw(request.as_bytes())
        .await
        .assert_error(400, "0x80070057");
    server.stop().await;
}

#[tokio::test]
async fn a_user_has_at_most_the_session_limit_open() {
    let dir = tempfile::tempdir().unwrap();
    let root = root(dir.path());
    let mut c = config(&root);
    c.directories[0].max_sessions_per_user = 3;
    let server = Server::start(c).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(server.create(&format!("/up/{i}.bin")).await);
    }
    let offer = format!("BITS-Supported-Protocols: {GUID}");
    let r = server
        .post("/up/3.bin", "Create-Session", &[&offer], b"")
        .await;
    r.assert_error(503, "0x80004005");
    // One closed, one more may open.
    server.close("/up/0.bin", &ids[0]).await;
    server.create("/up/3.bin").await;
    server.stop().await;
}
