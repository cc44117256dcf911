//! The session stores' contract, on SQLite and on a real PostgreSQL: what a restarted server
//! loads, and the committed offset moving only by compare-and-set, also between two writers
//! racing on two connections (two nodes).
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};

use ebb_server::{
    Advanced, Closed, ObjectUpload, PostgresSessions, ServerConfig, Session, SessionStore,
    SqliteSessions, Target,
};
use support::postgres::Postgres;

fn session(id: &str) -> Session {
    Session {
        id: id.into(),
        url_path: "/up/a".into(),
        user: Some("ann".into()),
        target: Target::File {
            destination: "/srv/a".into(),
            temp: "/srv/.a.part".into(),
        },
        total: None,
        received: 0,
        created_at: 1,
        touched_at: 1,
        reply: None,
        keep: false,
    }
}

/// A server's configuration with its sessions in a new database `db` of `pg`, and its root
/// under `dir`.
async fn on_postgres(pg: &Postgres, db: &str, dir: &Path) -> (PathBuf, ServerConfig) {
    pg.create_db(db).await;
    let root = support::root(dir);
    let mut config = support::config(&root);
    config.sessions = ebb_server::SessionsAt::Postgres {
        url: pg.params(db),
        ca_file: None,
    };
    (root, config)
}

/// What every store does; `reopen` gives a new connection to the same sessions.
async fn contract<S: SessionStore, F: Future<Output = S>>(store: S, reopen: impl Fn() -> F) {
    let mut s = session("{A}");
    store.insert(&s).await.unwrap();
    (s.received, s.total, s.touched_at) = (10, Some(100), 2);
    assert_eq!(store.advance(&s, 0).await.unwrap(), Advanced::Done);
    // A writer that still believes the offset is 0 loses, and learns where it is.
    s.received = 5;
    assert_eq!(
        store.advance(&s, 0).await.unwrap(),
        Advanced::Lost { committed: 10 }
    );
    s.received = 20;
    assert_eq!(store.advance(&s, 10).await.unwrap(), Advanced::Done);
    (s.reply, s.keep, s.touched_at) = (Some("http://app/r".into()), true, 3);
    store.update(&s).await.unwrap();
    assert_eq!(store.get(&s.id).await.unwrap(), Some(s.clone()));
    assert_eq!(store.count(Some("ann")).await.unwrap(), 1);
    assert_eq!(store.count(None).await.unwrap(), 0);
    let mut anonymous = session("{C}");
    anonymous.user = None;
    store.insert(&anonymous).await.unwrap();
    assert_eq!(store.count(None).await.unwrap(), 1);
    // The sweeper's question: who was last touched before a time, oldest first.
    let ids = |v: Vec<Session>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(store.untouched(2, 10).await.unwrap()), ["{C}"]);
    assert_eq!(ids(store.untouched(4, 10).await.unwrap()), ["{C}", "{A}"]);
    assert_eq!(ids(store.untouched(4, 1).await.unwrap()), ["{C}"]);
    store.remove("{C}").await.unwrap();
    assert_eq!(store.get("{NONE}").await.unwrap(), None);
    // An object's multipart upload: its parts move with the offset.
    let mut o = session("{O}");
    o.target = Target::Object(ObjectUpload {
        key: "up/a".into(),
        upload_id: "u-1".into(),
        part_size: 0,
        parts: Vec::new(),
        completing: false,
        staged: false,
        tail: 0,
    });
    store.insert(&o).await.unwrap();
    assert_eq!(store.get("{O}").await.unwrap(), Some(o.clone()));
    o.received = 8;
    if let Target::Object(u) = &mut o.target {
        (u.part_size, u.parts) = (8, vec!["\"e-1\"".into()]);
    }
    assert_eq!(store.advance(&o, 0).await.unwrap(), Advanced::Done);
    assert_eq!(store.get("{O}").await.unwrap(), Some(o.clone()));
    store.remove("{O}").await.unwrap();
    let other = session("{B}");
    store.insert(&other).await.unwrap();
    drop(store);
    let store = reopen().await;
    let mut loaded = store.load().await.unwrap();
    loaded.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(loaded, vec![s.clone(), other]);
    store.remove(&s.id).await.unwrap();
    assert_eq!(store.advance(&s, 20).await.unwrap(), Advanced::Gone);
    assert_eq!(store.load().await.unwrap().len(), 1);
    assert_eq!(
        store.closed(&s.id).await.unwrap(),
        None,
        "removed, not closed"
    );
    // Closing: the row goes, a tombstone stays until it is forgotten.
    let mut b = session("{B}");
    b.total = Some(100);
    store.close(&b, 1_000).await.unwrap();
    assert!(store.load().await.unwrap().is_empty());
    let tomb = Some(Closed {
        url_path: "/up/a".to_owned(),
        user: Some("ann".to_owned()),
        total: Some(100),
    });
    assert_eq!(store.closed("{B}").await.unwrap(), tomb);
    store.forget_closed(1_000).await.unwrap();
    assert_eq!(
        store.closed("{B}").await.unwrap(),
        tomb,
        "not before its time"
    );
    store.forget_closed(1_001).await.unwrap();
    assert_eq!(store.closed("{B}").await.unwrap(), None);
}

#[tokio::test]
async fn sqlite_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.db");
    let store = SqliteSessions::open(&path).await.unwrap();
    contract(store, || async {
        SqliteSessions::open(&path).await.unwrap()
    })
    .await;
}

#[tokio::test]
async fn postgres_keeps_the_contract() {
    let pg = Postgres::start().await;
    pg.create_db("contract").await;
    let params = pg.params("contract");
    let store = PostgresSessions::connect(&params, None).await.unwrap();
    contract(store, || async {
        PostgresSessions::connect(&params, None).await.unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_moving_one_offset_at_once_exactly_one_wins() {
    let pg = Postgres::start().await;
    pg.create_db("race").await;
    let params = pg.params("race");
    // Two nodes start together: the schema is made once.
    let (a, b) = tokio::join!(
        PostgresSessions::connect(&params, None),
        PostgresSessions::connect(&params, None)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let base = session("{RACE}");
    a.insert(&base).await.unwrap();
    let mut committed = 0;
    for _ in 0..100 {
        // Each node took a fragment of its own size from the same offset.
        let (mut sa, mut sb) = (base.clone(), base.clone());
        (sa.received, sb.received) = (committed + 10, committed + 7);
        let (ra, rb) = tokio::join!(a.advance(&sa, committed), b.advance(&sb, committed));
        let winner = match (ra.unwrap(), rb.unwrap()) {
            (Advanced::Done, Advanced::Lost { committed: c }) if c == sa.received => sa.received,
            (Advanced::Lost { committed: c }, Advanced::Done) if c == sb.received => sb.received,
            other => panic!("at {committed}: {other:?}"),
        };
        committed = winner;
    }
    let loaded = PostgresSessions::connect(&params, None)
        .await
        .unwrap()
        .load()
        .await
        .unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].received, committed);
}

/// The whole server on PostgreSQL sessions: half an upload, the server gone, a new server (as
/// another node would) on the same database takes the rest, and Close-Session leaves no row.
#[tokio::test]
async fn a_server_on_postgres_sessions_hands_an_upload_to_the_next_one() {
    let (pg, dir) = (Postgres::start().await, tempfile::tempdir().unwrap());
    let (root, config) = on_postgres(&pg, "server", dir.path()).await;
    let body = support::data(300_000, 5);
    let total = body.len() as u64;
    let server = support::Server::start(config.clone()).await;
    let id = server.create("/up/pg.bin").await;
    let r = server
        .fragment("/up/pg.bin", &id, 0, &body[..100_000], total)
        .await;
    assert_eq!(r.header("bits-received-content-range"), Some("100000"));
    server.stop().await;

    let server = support::Server::start(config).await;
    // A fragment past the committed offset is told where to go on from.
    let r = server
        .fragment("/up/pg.bin", &id, 200_000, &body[200_000..], total)
        .await;
    assert_eq!(r.status, 416, "{r:?}");
    assert_eq!(r.header("bits-received-content-range"), Some("100000"));
    let r = server
        .fragment("/up/pg.bin", &id, 100_000, &body[100_000..], total)
        .await;
    assert_eq!(r.header("bits-received-content-range"), Some("300000"));
    let r = server.close("/up/pg.bin", &id).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(std::fs::read(root.join("up/pg.bin")).unwrap(), body);
    let store = PostgresSessions::connect(&pg.params("server"), None)
        .await
        .unwrap();
    assert!(store.load().await.unwrap().is_empty());
    server.stop().await;
}

/// Two nodes side by side on one PostgreSQL and one shared root, the client going from one to
/// the other between fragments (a farm without `BITS-Host-Id`): a node finds the session the
/// other created, a node whose copy is behind asks the database before it calls a fragment a
/// gap, and the file is whole.
#[tokio::test]
async fn two_nodes_side_by_side_share_one_session() {
    let (pg, dir) = (Postgres::start().await, tempfile::tempdir().unwrap());
    let (root, config) = on_postgres(&pg, "farm", dir.path()).await;
    let a = support::Server::start(config.clone()).await;
    let b = support::Server::start(config).await;
    let body = support::data(400_000, 9);
    let total = body.len() as u64;
    let path = "/up/farm.bin";
    let id = a.create(path).await;
    let steps: [(&support::Server, u64, u64); 4] = [
        (&a, 0, 100_000),
        (&b, 100_000, 200_000),
        (&a, 200_000, 300_000),
        (&b, 300_000, 400_000),
    ];
    for (node, first, end) in steps {
        let chunk = &body[first as usize..end as usize];
        let r = node.fragment(path, &id, first, chunk, total).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.header("bits-received-content-range"),
            Some(end.to_string().as_str())
        );
    }
    let r = a.close(path, &id).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(std::fs::read(root.join("up/farm.bin")).unwrap(), body);
    let store = PostgresSessions::connect(&pg.params("farm"), None)
        .await
        .unwrap();
    assert!(store.load().await.unwrap().is_empty());
    a.stop().await;
    b.stop().await;
}

/// PostgreSQL restarts (or fails over) under a running node: the node's next call connects
/// again, and the sessions are all there.
#[tokio::test]
async fn a_database_restart_costs_a_node_nothing() {
    let mut pg = Postgres::start().await;
    pg.create_db("restart").await;
    let store = PostgresSessions::connect(&pg.params("restart"), None)
        .await
        .unwrap();
    let mut s = session("{R}");
    store.insert(&s).await.unwrap();
    pg.restart().await;
    s.received = 42;
    assert_eq!(store.advance(&s, 0).await.unwrap(), Advanced::Done);
    assert_eq!(store.get(&s.id).await.unwrap(), Some(s));
}

/// A node whose copy of a session is old does not sweep it while another node serves it: it
/// asks the database when the session last heard from its client.
#[tokio::test]
async fn a_node_does_not_sweep_a_session_another_node_serves() {
    let (pg, dir) = (Postgres::start().await, tempfile::tempdir().unwrap());
    let (root, mut config) = on_postgres(&pg, "sweep", dir.path()).await;
    config.directories[0].session_timeout = std::time::Duration::from_secs(1);
    let a = support::Server::start(config.clone()).await;
    let b = support::Server::start(config).await;
    let body = support::data(100_000, 3);
    let total = body.len() as u64;
    let path = "/up/swept.bin";
    let id = a.create(path).await;
    // Ten fragments through node B over 3 s: node A's copy (from the create) is long expired.
    for i in 0..10u64 {
        let (first, end) = (i * 10_000, (i + 1) * 10_000);
        let chunk = &body[first as usize..end as usize];
        let r = b.fragment(path, &id, first, chunk, total).await;
        assert_eq!(r.status, 200, "fragment {i}: {r:?}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let r = b.close(path, &id).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(std::fs::read(root.join("up/swept.bin")).unwrap(), body);
    a.stop().await;
    b.stop().await;
}

/// A Close-Session whose Ack was lost, sent again to the other node: answered as done, not as
/// an unknown session, and the file is in place once.
#[tokio::test]
async fn a_close_sent_again_to_the_other_node_is_done() {
    let (pg, dir) = (Postgres::start().await, tempfile::tempdir().unwrap());
    let (root, config) = on_postgres(&pg, "reclose", dir.path()).await;
    let a = support::Server::start(config.clone()).await;
    let b = support::Server::start(config).await;
    let body = support::data(50_000, 4);
    let path = "/up/twice.bin";
    let id = a.create(path).await;
    let r = a.fragment(path, &id, 0, &body, body.len() as u64).await;
    assert_eq!(r.status, 200, "{r:?}");
    // Node B holds a copy of the session too (it served a packet of it).
    let r = b
        .fragment(path, &id, 0, &body[..10], body.len() as u64)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(a.close(path, &id).await.status, 200);
    for node in [&b, &a] {
        let r = node.close(path, &id).await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    // Another URL does not learn of it.
    let r = b.close("/up/other.bin", &id).await;
    assert_ne!(r.status, 200, "{r:?}");
    assert_eq!(std::fs::read(root.join("up/twice.bin")).unwrap(), body);
    a.stop().await;
    b.stop().await;
}

/// A user's limit of open sessions holds across the farm, not per node.
#[tokio::test]
async fn the_session_limit_counts_every_node() {
    let (pg, dir) = (Postgres::start().await, tempfile::tempdir().unwrap());
    let (_, mut config) = on_postgres(&pg, "quota", dir.path()).await;
    config.directories[0].max_sessions_per_user = 2;
    let a = support::Server::start(config.clone()).await;
    let b = support::Server::start(config).await;
    a.create("/up/1.bin").await;
    b.create("/up/2.bin").await;
    let refused = a
        .post(
            "/up/3.bin",
            "Create-Session",
            &[&format!("BITS-Supported-Protocols: {}", support::GUID)],
            b"",
        )
        .await;
    assert_eq!(refused.status, 503, "{refused:?}");
    a.stop().await;
    b.stop().await;
}

/// Sessions over TLS: `sslmode=require` with the server's CA connects; with another CA the
/// certificate is refused (so TLS is really used, and checked), naming the database.
#[tokio::test]
async fn the_session_database_over_tls_is_checked_against_its_ca() {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let pg = Postgres::start_tls(&cert.cert.pem(), &cert.signing_key.serialize_pem()).await;
    pg.create_db("tls").await;
    let dir = tempfile::tempdir().unwrap();
    let (ca, other) = (dir.path().join("ca.pem"), dir.path().join("other.pem"));
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let stranger = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    std::fs::write(&other, stranger.cert.pem()).unwrap();
    let params = format!("{} sslmode=require", pg.params("tls"));
    let store = PostgresSessions::connect(&params, Some(&ca)).await.unwrap();
    store.insert(&session("{TLS}")).await.unwrap();
    assert_eq!(store.load().await.unwrap().len(), 1);
    let refused = PostgresSessions::connect(&params, Some(&other))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("database tls"), "{refused}");
    let missing = PostgresSessions::connect(&params, Some(&dir.path().join("none.pem")))
        .await
        .unwrap_err()
        .to_string();
    assert!(missing.contains("none.pem"), "{missing}");
}
