//! HTTPS: the same protocol over rustls, with a certificate from the configuration.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use ebb_server::Tls;
use support::{Server, config, data, root};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn an_upload_over_https_and_nothing_over_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let root = root(dir.path());
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert_pem, key_pem) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
    std::fs::write(&key_pem, cert.signing_key.serialize_pem()).unwrap();
    let mut c = config(&root);
    c.tls = Some(Tls {
        cert: cert_pem,
        key: key_pem,
    });
    let mut server = Server::start(c).await;

    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let mut plain = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"BITS_POST /up/a.bin HTTP/1.1\r\nHost: x\r\nBITS-Packet-Type: Ping\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut bytes = Vec::new();
    let _ = plain.read_to_end(&mut bytes).await;
    assert!(
        !bytes.starts_with(b"HTTP/1.1"),
        "{:?}",
        String::from_utf8_lossy(&bytes)
    );

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    server.peer.tls = Some(Arc::new(client));
    let body = data(4000, 11);
    let id = server.create("/up/a.bin").await;
    let r = server.fragment("/up/a.bin", &id, 0, &body, 4000).await;
    assert_eq!(
        r.header("bits-received-content-range"),
        Some("4000"),
        "{r:?}"
    );
    assert_eq!(server.close("/up/a.bin", &id).await.status, 200);
    assert_eq!(std::fs::read(root.join("up/a.bin")).unwrap(), body);
    server.stop().await;
}

#[test]
fn a_bad_certificate_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("cert.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let e = Tls {
        cert: bad.clone(),
        key: bad.clone(),
    }
    .check()
    .unwrap_err()
    .to_string();
    assert!(e.contains(bad.to_str().unwrap()), "{e}");
}
