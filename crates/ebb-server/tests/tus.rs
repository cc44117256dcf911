//! tus 1.0 on ebb-server, with raw requests: creation, offsets, conflicts, the SHA-256
//! checksum refused when wrong (and nothing counted), termination, an upload's end that
//! survives a lost answer; on a local directory and on object storage.
#![allow(clippy::unwrap_used, clippy::format_push_string)]

mod support;

use base64::Engine;
use sha2::Digest;
use support::moto::Moto;
use support::{Peer, Reply, Server, config, data, root};

async fn tus(peer: &Peer, method: &str, path: &str, headers: &[String], body: &[u8]) -> Reply {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTus-Resumable: 1.0.0\r\n"
    );
    if method == "PATCH" || !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    peer.raw(&request).await
}

async fn patch(peer: &Peer, at: &str, offset: usize, chunk: &[u8], sum: Option<&[u8]>) -> Reply {
    let mut headers = vec![
        "Content-Type: application/offset+octet-stream".to_owned(),
        format!("Upload-Offset: {offset}"),
    ];
    if let Some(bytes) = sum {
        let digest = sha2::Sha256::digest(bytes);
        let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
        headers.push(format!("Upload-Checksum: sha256 {b64}"));
    }
    tus(peer, "PATCH", at, &headers, chunk).await
}

fn offset(r: &Reply) -> u64 {
    r.header("upload-offset")
        .unwrap_or_else(|| panic!("{r:?}"))
        .parse()
        .unwrap()
}

async fn create(peer: &Peer, path: &str, length: usize, extra: &[String]) -> String {
    let mut headers = vec![format!("Upload-Length: {length}")];
    headers.extend_from_slice(extra);
    let r = tus(peer, "POST", path, &headers, b"").await;
    assert_eq!(r.status, 201, "{r:?}");
    r.header("location").unwrap().to_owned()
}

/// An upload in three chunks with a wrong checksum and a gap refused on the way; returns its
/// location.
async fn upload(server: &Server, body: &[u8]) -> String {
    let at = create(server, "/up/a.bin", body.len(), &[]).await;
    assert!(at.contains("/.tus/"), "{at}");
    assert_eq!(offset(&tus(server, "HEAD", &at, &[], b"").await), 0);
    let third = body.len() / 3;
    let r = patch(server, &at, 0, &body[..third], Some(&body[..third])).await;
    assert_eq!((r.status, offset(&r)), (204, third as u64), "{r:?}");
    // A checksum that is not the bytes': refused, and nothing of them counted.
    let wrong = patch(server, &at, third, &body[third..2 * third], Some(b"other")).await;
    assert_eq!(wrong.status, 460, "{wrong:?}");
    assert_eq!(
        offset(&tus(server, "HEAD", &at, &[], b"").await),
        third as u64
    );
    let gap = patch(server, &at, 2 * third, &body[2 * third..], None).await;
    assert_eq!(gap.status, 409, "{gap:?}");
    let r = patch(server, &at, third, &body[third..2 * third], None).await;
    assert_eq!(offset(&r), 2 * third as u64);
    let last = patch(
        server,
        &at,
        2 * third,
        &body[2 * third..],
        Some(&body[2 * third..]),
    )
    .await;
    assert_eq!(
        (last.status, offset(&last)),
        (204, body.len() as u64),
        "{last:?}"
    );
    // The answer was lost: the same PATCH again, and a HEAD, say it is whole.
    let again = patch(server, &at, 2 * third, &body[2 * third..], None).await;
    assert_eq!((again.status, offset(&again)), (204, body.len() as u64));
    let head = tus(server, "HEAD", &at, &[], b"").await;
    assert_eq!(offset(&head), body.len() as u64);
    assert_eq!(
        head.header("upload-length"),
        Some(body.len().to_string().as_str())
    );
    at
}

#[tokio::test]
async fn a_tus_upload_to_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = root(dir.path());
    let mut c = config(&root);
    c.directories[0].max_upload_size = Some(1 << 30);
    let server = Server::start(c).await;
    let options = tus(&server, "OPTIONS", "/up/", &[], b"").await;
    assert_eq!(options.status, 204);
    assert_eq!(options.header("tus-version"), Some("1.0.0"));
    assert!(
        options
            .header("tus-extension")
            .unwrap()
            .contains("checksum")
    );
    assert_eq!(options.header("tus-checksum-algorithm"), Some("sha256"));
    assert_eq!(options.header("tus-max-size"), Some("1073741824"));
    let body = data(300_000, 3);
    upload(&server, &body).await;
    assert_eq!(std::fs::read(root.join("up/a.bin")).unwrap(), body);
    let hidden = std::fs::read_dir(root.join("up")).unwrap().count();
    assert_eq!(hidden, 1, "no temporary file is left");
    // Too large, and an old version.
    let big = tus(
        &server,
        "POST",
        "/up/b.bin",
        &["Upload-Length: 1073741825".into()],
        b"",
    )
    .await;
    assert_eq!(big.status, 413);
    let old = server
        .raw(b"HEAD /.tus/00 HTTP/1.1\r\nHost: x\r\nTus-Resumable: 0.2.2\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(
        (old.status, old.header("tus-version")),
        (412, Some("1.0.0"))
    );
}

#[tokio::test]
async fn the_name_may_come_in_the_metadata_and_a_deleted_upload_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let root = root(dir.path());
    let server = Server::start(config(&root)).await;
    let name = |n: &str| {
        let b64 = base64::engine::general_purpose::STANDARD.encode(n);
        vec![format!("Upload-Metadata: filename {b64},type dGV4dA==")]
    };
    let at = create(&server, "/", 4, &name("a b.txt")).await;
    patch(&server, &at, 0, b"abcd", None).await;
    assert_eq!(std::fs::read(root.join("a b.txt")).unwrap(), b"abcd");
    let hostile = tus(
        &server,
        "POST",
        "/",
        &[&["Upload-Length: 1".to_owned()][..], &name("../x")[..]].concat(),
        b"",
    )
    .await;
    assert_eq!(hostile.status, 400, "{hostile:?}");
    // Empty: placed at once.
    create(&server, "/up/empty", 0, &[]).await;
    assert_eq!(std::fs::read(root.join("up/empty")).unwrap(), b"");
    let at = create(&server, "/up/gone.bin", 10, &[]).await;
    patch(&server, &at, 0, b"01234", None).await;
    assert_eq!(tus(&server, "DELETE", &at, &[], b"").await.status, 204);
    assert_eq!(tus(&server, "HEAD", &at, &[], b"").await.status, 404);
    assert_eq!(patch(&server, &at, 5, b"56789", None).await.status, 404);
    let left: Vec<_> = std::fs::read_dir(root.join("up")).unwrap().collect();
    assert_eq!(left.len(), 1, "only the empty upload: {left:?}");
}

#[tokio::test]
async fn a_tus_upload_to_object_storage() {
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(support::farm::node(&moto, dir.path())).await;
    let body = data(11 << 20, 6);
    upload(&server, &body).await;
    assert!(moto.object("up/a.bin").await.unwrap() == body);
    assert_eq!(moto.open_uploads().await, 0);
}

#[tokio::test]
async fn an_upload_is_reached_only_through_its_own_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (outer, inner) = (dir.path().join("outer"), dir.path().join("inner"));
    std::fs::create_dir_all(&outer).unwrap();
    std::fs::create_dir_all(&inner).unwrap();
    let mut c = config(&outer);
    let mut private = ebb_server::UploadDir::at(&inner);
    private.prefix = "/private/".into();
    c.directories.push(private);
    c.state_dir = Some(dir.path().join("state"));
    let server = Server::start(c).await;
    let at = create(&server, "/private/a.bin", 4, &[]).await;
    assert!(at.starts_with("/private/.tus/"), "{at}");
    // The same upload through the outer directory, whose prefix holds the inner's URL.
    let around = at.replacen("/private/", "/", 1);
    assert_eq!(tus(&server, "HEAD", &around, &[], b"").await.status, 404);
    assert_eq!(patch(&server, &around, 0, b"abcd", None).await.status, 404);
    assert_eq!(tus(&server, "HEAD", &at, &[], b"").await.status, 200);
}
