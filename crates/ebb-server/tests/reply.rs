//! Upload-reply: the server application is told once the last byte is in, by reference or by
//! value, and its reply is served to the client (with ranges) until Close-Session.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{HeaderMap, StatusCode};
use ebb_server::Notification;
use support::{Peer, Server, config, data, root};

/// A server application: by reference it writes the upload reversed into the response file,
/// by value it answers with the upload reversed; `/keep` also asks to keep the upload, `/no`
/// refuses with 403, `/static` names another URL.
async fn application() -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let count = calls.clone();
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: HeaderMap, body: axum::body::Bytes| {
            let count = count.clone();
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                let header = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_owned());
                let mut out = HeaderMap::new();
                match uri.path() {
                    "/no" => return (StatusCode::FORBIDDEN, out, Vec::new()),
                    "/static" => {
                        out.insert(
                            "BITS-Static-Response-URL",
                            "http://127.0.0.1:9/elsewhere".parse().unwrap(),
                        );
                        return (StatusCode::OK, out, Vec::new());
                    }
                    "/keep" => {
                        out.insert("BITS-Copy-File-To-Destination", "1".parse().unwrap());
                    }
                    _ => {}
                }
                assert!(
                    header("bits-original-request-url")
                        .unwrap()
                        .ends_with("/up/a.bin?x=1")
                );
                let reply = match header("bits-request-datafile-name") {
                    Some(file) => {
                        let mut upload = std::fs::read(file).unwrap();
                        upload.reverse();
                        std::fs::write(header("bits-response-datafile-name").unwrap(), upload)
                            .unwrap();
                        Vec::new()
                    }
                    None => body.iter().rev().copied().collect(),
                };
                (StatusCode::OK, out, reply)
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, calls)
}

/// Upload `body` to `/up/a.bin?x=1` in two fragments; returns the session and the final Ack's
/// reply URL.
async fn upload(peer: &Peer, body: &[u8]) -> (String, Option<String>) {
    let id = peer.create("/up/a.bin?x=1").await;
    let n = body.len() as u64;
    peer.fragment("/up/a.bin?x=1", &id, 0, &body[..1000], n)
        .await;
    let r = peer
        .fragment("/up/a.bin?x=1", &id, 1000, &body[1000..], n)
        .await;
    (id, r.header("bits-reply-url").map(str::to_owned))
}

async fn get(peer: &Peer, path: &str, range: &str) -> support::Reply {
    peer.raw(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{range}Connection: close\r\n\r\n").as_bytes(),
    )
    .await
}

#[tokio::test]
async fn by_reference_and_by_value_the_reply_is_served_until_close() {
    let (app, calls) = application().await;
    let body = data(5000, 9);
    let mut reversed = body.clone();
    reversed.reverse();
    for how in [
        Notification::ByReference {
            url: format!("{app}/ref"),
        },
        Notification::ByValue {
            url: format!("{app}/value"),
        },
    ] {
        let dir = tempfile::tempdir().unwrap();
        let root = root(dir.path());
        let mut c = config(&root);
        c.directories[0].notification = Some(how.clone());
        let server = Server::start(c).await;
        let before = calls.load(Ordering::SeqCst);
        let (id, reply) = upload(&server, &body).await;
        let reply = reply.unwrap_or_else(|| panic!("{how:?}: no reply URL"));
        assert!(
            reply.starts_with("BITS-Sessions\\Replies\\"),
            "IIS's relative, backslashed form: {reply}"
        );
        // Resolved against the upload's URL, as a client does.
        let path = format!("/up/{}", reply.replace('\\', "/"));
        let r = get(&server, &path, "").await;
        assert_eq!((r.status, &r.body), (200, &reversed), "{how:?}");
        let r = get(&server, &path, "Range: bytes=4000-\r\n").await;
        assert_eq!((r.status, &r.body[..]), (206, &reversed[4000..]));
        // A re-sent last fragment gets the same reply, and the application is not asked again.
        let again = server
            .fragment("/up/a.bin?x=1", &id, 1000, &body[1000..], 5000)
            .await;
        assert_eq!(again.header("bits-reply-url"), Some(reply.as_str()));
        assert_eq!(calls.load(Ordering::SeqCst), before + 1);
        assert_eq!(server.close("/up/a.bin?x=1", &id).await.status, 200);
        assert!(
            !root.join("up/a.bin").exists(),
            "the application has the upload; it is not kept"
        );
        assert_eq!(
            get(&server, &path, "").await.status,
            404,
            "the reply goes with the session"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn the_application_may_keep_the_upload_point_elsewhere_or_refuse() {
    let (app, _) = application().await;
    let body = data(3000, 10);
    let dir = tempfile::tempdir().unwrap();
    let root = root(dir.path());
    let mut c = config(&root);
    let with = |path: &str| {
        Some(Notification::ByReference {
            url: format!("{app}{path}"),
        })
    };

    c.directories[0].notification = with("/keep");
    let server = Server::start(c.clone()).await;
    let (id, reply) = upload(&server, &body).await;
    assert!(reply.is_some());
    server.close("/up/a.bin?x=1", &id).await;
    assert_eq!(std::fs::read(root.join("up/a.bin")).unwrap(), body);
    std::fs::remove_file(root.join("up/a.bin")).unwrap();
    server.stop().await;

    c.directories[0].notification = with("/static");
    let server = Server::start(c.clone()).await;
    let (_, reply) = upload(&server, &body).await;
    assert_eq!(reply.as_deref(), Some("http://127.0.0.1:9/elsewhere"));
    server.stop().await;

    c.directories[0].notification = with("/no");
    let server = Server::start(c).await;
    let id = server.create("/up/a.bin?x=1").await;
    let r = server.fragment("/up/a.bin?x=1", &id, 0, &body, 3000).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.header("bits-error-code"), Some("0x80190193"));
    assert_eq!(
        r.header("bits-error-context"),
        Some("0x7"),
        "the server application failed"
    );
    server.stop().await;
}
