//! Upload-reply on object storage: the server application is handed objects, not files — by
//! reference their names (`s3://bucket/key`) and pre-signed URLs to read the upload and write
//! the reply; by value the upload streamed from the bucket, its answer stored as an object. The
//! reply is served by any node, with ranges; the upload reaches its key only if the
//! application asks to keep it, and nothing staged is left after Close-Session.
#![allow(clippy::unwrap_used)]

mod support;

use axum::http::{HeaderMap, StatusCode};
use ebb_server::Notification;
use support::farm::{MIB, send, two_nodes_with};
use support::moto::Moto;
use support::postgres::Postgres;
use support::{Peer, data};

/// A server application that answers with the upload reversed: by reference it reads the
/// upload and writes the reply through the pre-signed URLs; `/keep` asks to keep the upload.
async fn application() -> String {
    let app = axum::Router::new()
        .fallback(
            |uri: axum::http::Uri, headers: HeaderMap, body: axum::body::Bytes| async move {
                let header = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_owned());
                let mut out = HeaderMap::new();
                if uri.path() == "/keep" {
                    out.insert("BITS-Copy-File-To-Destination", "1".parse().unwrap());
                }
                let http = reqwest::Client::new();
                let Some(read) = header("bits-request-datafile-url") else {
                    return (StatusCode::OK, out, body.iter().rev().copied().collect());
                };
                let name = header("bits-request-datafile-name").unwrap();
                assert!(name.starts_with("s3://uploads/.ebb-sessions/"), "{name}");
                let mut upload = http
                    .get(read)
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap()
                    .to_vec();
                upload.reverse();
                let write = header("bits-response-datafile-url").unwrap();
                let put = http.put(write).body(upload).send().await.unwrap();
                assert!(put.status().is_success(), "{put:?}");
                (StatusCode::OK, out, Vec::new())
            },
        )
        .layer(axum::extract::DefaultBodyLimit::disable());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn get(peer: &Peer, path: &str, range: &str) -> support::Reply {
    peer.raw(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{range}Connection: close\r\n\r\n").as_bytes(),
    )
    .await
}

#[tokio::test]
async fn the_application_gets_objects_and_any_node_serves_its_reply() {
    let (moto, pg) = (Moto::start().await, Postgres::start().await);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let app = application().await;
    let body = data(6 * MIB + 3, 4);
    let mut reversed = body.clone();
    reversed.reverse();
    let cases = [
        (
            Notification::ByReference {
                url: format!("{app}/keep"),
            },
            true,
        ),
        (
            Notification::ByValue {
                url: format!("{app}/value"),
            },
            false,
        ),
    ];
    for (i, (how, kept)) in cases.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("reply{i}");
        let (a, b) = two_nodes_with(&moto, &pg, &db, dir.path(), |c| {
            c.directories[0].notification = Some(how.clone());
        })
        .await;
        let id = a.create("/up/a.bin").await;
        send(&a, &id, &body, (0, 5 * MIB), MIB).await;
        let last = a
            .fragment(
                "/up/a.bin",
                &id,
                5 * MIB as u64,
                &body[5 * MIB..],
                body.len() as u64,
            )
            .await;
        let reply = last
            .header("bits-reply-url")
            .unwrap_or_else(|| panic!("{last:?}"));
        let path = format!("/up/{}", reply.replace('\\', "/"));
        // The other node serves it: the reply is an object.
        let whole = get(&b, &path, "").await;
        assert_eq!(
            (whole.status, whole.body == reversed),
            (200, true),
            "{how:?}"
        );
        let tail = get(&b, &path, "Range: bytes=6291456-\r\n").await;
        assert_eq!((tail.status, &tail.body[..]), (206, &reversed[6 * MIB..]));
        assert_eq!(a.close("/up/a.bin", &id).await.status, 200);
        let placed = moto.object("up/a.bin").await;
        assert_eq!(placed.is_some_and(|o| o == body), kept, "{how:?}");
        let key = id
            .chars()
            .filter(char::is_ascii_hexdigit)
            .collect::<String>();
        let staged = format!(".ebb-sessions/{}/request", key.to_ascii_lowercase());
        assert_eq!(moto.object(&staged).await, None, "nothing staged is left");
        assert_eq!(moto.open_uploads().await, 0);
        assert_eq!(
            get(&b, &path, "").await.status,
            404,
            "the reply went with the session"
        );
        a.stop().await;
        b.stop().await;
        if kept {
            moto.delete("up/a.bin").await;
        }
    }
}
