//! Uploads to object storage, on a real S3 server (moto) with raw packets: part by part into
//! one multipart upload, completed at Close-Session and aborted on cancel and expiry (no
//! multipart upload is left); two nodes on one PostgreSQL and one bucket, where a node that
//! dies with its tail costs the client at most one part, and two nodes writing one part
//! count it once.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use ebb_server::{SessionStore, SqliteSessions};
use support::farm::{MIB, PART, node, received, send, two_nodes, two_nodes_with};
use support::moto::Moto;
use support::postgres::Postgres;
use support::{Server, data};

#[tokio::test]
async fn an_upload_becomes_one_object_part_by_part() {
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(node(&moto, dir.path())).await;
    let body = data(12 * MIB + 5, 7);
    let id = server.create("/up/a.bin").await;
    send(&server, &id, &body, (0, 7 * MIB), MIB).await;
    // The row counts whole parts only: the tail is the node's, with no write per fragment.
    let store = SqliteSessions::open(&dir.path().join("sessions.db"))
        .await
        .unwrap();
    assert_eq!(store.get(&id).await.unwrap().unwrap().received, PART);
    // A fragment sent again, wholly held, is acknowledged with what is held.
    let again = server
        .fragment("/up/a.bin", &id, 0, &body[..MIB], body.len() as u64)
        .await;
    assert_eq!(received(&again), 7 * MIB as u64);
    send(&server, &id, &body, (7 * MIB, body.len()), MIB).await;
    assert_eq!(
        store.get(&id).await.unwrap().unwrap().received,
        body.len() as u64,
        "the last, short part is committed with the last byte"
    );
    assert_eq!(moto.object("up/a.bin").await, None, "nothing before Close");
    assert_eq!(moto.open_uploads().await, 1);
    assert_eq!(server.close("/up/a.bin", &id).await.status, 200);
    assert!(moto.object("up/a.bin").await.unwrap() == body);
    assert_eq!(moto.open_uploads().await, 0);
    let spool = std::fs::read_dir(dir.path().join("spool")).unwrap().count();
    assert_eq!(spool, 0, "the spool is emptied");
    // The Ack was lost: the same close again is done.
    assert_eq!(server.close("/up/a.bin", &id).await.status, 200);
}

#[tokio::test]
async fn cancel_and_expiry_leave_no_multipart_upload_and_no_object() {
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = node(&moto, dir.path());
    config.directories[0].session_timeout = Duration::from_secs(1);
    let server = Server::start(config).await;
    let body = data(6 * MIB, 3);
    let cancelled = server.create("/up/a.bin").await;
    send(&server, &cancelled, &body, (0, 6 * MIB), 2 * MIB).await;
    let expiring = server.create("/up/a.bin").await;
    send(&server, &expiring, &body, (0, 2 * MIB), 2 * MIB).await;
    assert_eq!(moto.open_uploads().await, 2);
    let r = server
        .post(
            "/up/a.bin",
            "Cancel-Session",
            &[&format!("BITS-Session-Id: {cancelled}")],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(moto.open_uploads().await, 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while moto.open_uploads().await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the expired session is aborted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(moto.object("up/a.bin").await, None);
    // An expired session is gone.
    server
        .close("/up/a.bin", &expiring)
        .await
        .assert_error(500, "0x8020001F");
}

#[tokio::test]
async fn an_object_already_there_is_kept_unless_overwriting_is_allowed() {
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    moto.put("up/a.bin", b"someone else's").await;
    let server = Server::start(node(&moto, dir.path())).await;
    let r = server
        .post(
            "/up/a.bin",
            "Create-Session",
            &[&format!("BITS-Supported-Protocols: {}", support::GUID)],
            b"",
        )
        .await;
    r.assert_error(403, "0x80070005");
    server.stop().await;
    let mut config = node(&moto, dir.path());
    config.directories[0].allow_overwrite = true;
    let server = Server::start(config).await;
    let body = data(MIB, 1);
    let id = server.create("/up/a.bin").await;
    send(&server, &id, &body, (0, MIB), MIB).await;
    assert_eq!(server.close("/up/a.bin", &id).await.status, 200);
    assert!(moto.object("up/a.bin").await.unwrap() == body);
}

#[tokio::test]
async fn a_node_that_dies_with_its_tail_costs_the_client_at_most_one_part() {
    let (moto, pg) = (Moto::start().await, Postgres::start().await);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(&moto, &pg, "dies", dir.path()).await;
    let body = data(13 * MIB, 9);
    let id = a.create("/up/a.bin").await;
    send(&a, &id, &body, (0, 8 * MIB), MIB).await;
    a.stop().await;
    // Node b has the committed part, not a's tail: the client goes on from the part.
    let r = b
        .fragment(
            "/up/a.bin",
            &id,
            8 * MIB as u64,
            &body[8 * MIB..9 * MIB],
            body.len() as u64,
        )
        .await;
    assert_eq!(r.status, 416, "{r:?}");
    assert_eq!(received(&r), PART);
    send(&b, &id, &body, (PART as usize, body.len()), MIB).await;
    assert_eq!(b.close("/up/a.bin", &id).await.status, 200);
    assert!(moto.object("up/a.bin").await.unwrap() == body);
    assert_eq!(moto.open_uploads().await, 0);
}

#[tokio::test]
async fn two_nodes_filling_one_part_count_it_once() {
    let (moto, pg) = (Moto::start().await, Postgres::start().await);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes(&moto, &pg, "fill", dir.path()).await;
    let body = data(11 * MIB, 5);
    let id = a.create("/up/a.bin").await;
    // Both take the first part's bytes (a client that fell back, then came back).
    send(&a, &id, &body, (0, 3 * MIB), MIB).await;
    send(&b, &id, &body, (0, 3 * MIB), MIB).await;
    send(&a, &id, &body, (3 * MIB, 6 * MIB), MIB).await;
    // b fills the same part, puts it, and loses the compare-and-set: it answers from the
    // count a committed, and forgets its tail.
    let mut lost = None;
    for at in (3..6).map(|m| m * MIB) {
        let r = b
            .fragment(
                "/up/a.bin",
                &id,
                at as u64,
                &body[at..at + MIB],
                body.len() as u64,
            )
            .await;
        if r.status == 416 {
            lost = Some(received(&r));
            break;
        }
        assert_eq!(received(&r), (at + MIB) as u64);
    }
    assert_eq!(lost, Some(PART), "b lost the part to a");
    send(&b, &id, &body, (PART as usize, body.len()), MIB).await;
    assert_eq!(a.close("/up/a.bin", &id).await.status, 200);
    assert!(moto.object("up/a.bin").await.unwrap() == body);
    assert_eq!(moto.open_uploads().await, 0);
}

#[tokio::test]
async fn a_session_whose_node_died_for_good_expires_on_another() {
    let (moto, pg) = (Moto::start().await, Postgres::start().await);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_nodes_with(&moto, &pg, "expiry", dir.path(), |c| {
        c.directories[0].session_timeout = Duration::from_secs(1);
    })
    .await;
    let body = data(6 * MIB, 2);
    let id = a.create("/up/a.bin").await;
    send(&a, &id, &body, (0, 6 * MIB), 2 * MIB).await;
    a.stop().await;
    assert_eq!(moto.open_uploads().await, 1);
    // b never heard of the session; its sweeper finds it in the database.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while moto.open_uploads().await > 0 {
        assert!(std::time::Instant::now() < deadline, "b aborts the upload");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.close("/up/a.bin", &id)
        .await
        .assert_error(500, "0x8020001F");
}

#[tokio::test]
async fn a_tail_that_lost_its_bytes_is_sent_again_never_put_with_a_hole() {
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(node(&moto, dir.path())).await;
    let body = data(7 * MIB, 8);
    let id = server.create("/up/a.bin").await;
    send(&server, &id, &body, (0, 3 * MIB), MIB).await;
    // The spool's part file goes behind the node's back.
    for entry in std::fs::read_dir(dir.path().join("spool")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let r = server
        .fragment(
            "/up/a.bin",
            &id,
            3 * MIB as u64,
            &body[3 * MIB..4 * MIB],
            body.len() as u64,
        )
        .await;
    assert_eq!((r.status, received(&r)), (416, 0), "{r:?}");
    send(&server, &id, &body, (0, body.len()), MIB).await;
    assert_eq!(server.close("/up/a.bin", &id).await.status, 200);
    assert!(
        moto.object("up/a.bin").await.unwrap() == body,
        "no hole of zeros"
    );
}
