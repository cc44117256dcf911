//! ebb-server on many nodes: upload throughput through 1, 2 and 4 nodes on one PostgreSQL and
//! one S3 bucket (moto), as a ratio to one node on a local disk; the time to acknowledge a
//! fragment (p50, p99); and PostgreSQL transactions (each one round trip) per fragment, per
//! part and per session: one per part, none per fragment, and a session's own (Create-Session,
//! Close-Session's read, its completing mark and its close). Many clients send raw BITS fragments at once, each client
//! to one node (a balancer's choice), nodes in this process.
//!
//!     cargo bench -p ebb-server --bench farm [-- CLIENTS MIB_EACH]     # default 64 x 16 MiB
//!
//! moto is a Python server holding the bucket in memory: it, not ebb-server, bounds the
//! object-storage figures here; against a real S3 the ratio is the thing to read.
#![allow(clippy::unwrap_used, missing_docs, dead_code)]

#[path = "../tests/support/moto.rs"]
mod moto;
#[path = "../tests/support/postgres.rs"]
mod postgres;

use std::time::{Duration, Instant};

use ebb_server::{App, ServerConfig, SessionsAt};

const FRAGMENT: usize = 1 << 20;
const GUID: &str = "{7df0354d-249b-430f-820d-3d2a9bef4931}";

struct Run {
    secs: f64,
    acks: Vec<Duration>,
    fragments: usize,
}

/// Nodes in this process, each on its own port.
async fn start(configs: Vec<ServerConfig>) -> Vec<String> {
    let mut urls = Vec::new();
    for config in configs {
        let app = App::open(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        urls.push(format!("http://{}/up/", listener.local_addr().unwrap()));
        tokio::spawn(app.serve(listener, std::future::pending()));
    }
    urls
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = http.request(reqwest::Method::from_bytes(b"BITS_POST").unwrap(), url);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    req.body(body).send().await.unwrap()
}

/// One client: a session on `node`, `size` bytes in 1 MiB fragments, Close-Session.
async fn client(http: reqwest::Client, node: String, name: String, size: usize) -> Vec<Duration> {
    let url = format!("{node}{name}");
    let created = post(
        &http,
        &url,
        &[
            ("BITS-Packet-Type", "Create-Session".into()),
            ("BITS-Supported-Protocols", GUID.into()),
        ],
        Vec::new(),
    )
    .await;
    let Some(id) = created.headers().get("bits-session-id") else {
        panic!("Create-Session: {created:?}");
    };
    let id = id.to_str().unwrap().to_owned();
    let body: Vec<u8> = (0..size).map(|i| (i * 31 + name.len()) as u8).collect();
    let mut acks = Vec::new();
    for first in (0..size).step_by(FRAGMENT) {
        let last = (first + FRAGMENT).min(size) - 1;
        let started = Instant::now();
        let r = post(
            &http,
            &url,
            &[
                ("BITS-Packet-Type", "Fragment".into()),
                ("BITS-Session-Id", id.clone()),
                ("Content-Range", format!("bytes {first}-{last}/{size}")),
            ],
            body[first..=last].to_vec(),
        )
        .await;
        assert!(r.status().is_success(), "{r:?}");
        acks.push(started.elapsed());
    }
    let closed = post(
        &http,
        &url,
        &[
            ("BITS-Packet-Type", "Close-Session".into()),
            ("BITS-Session-Id", id),
        ],
        Vec::new(),
    )
    .await;
    assert!(closed.status().is_success(), "{closed:?}");
    acks
}

async fn run(nodes: &[String], tag: &str, clients: usize, size: usize) -> Run {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let node = nodes[i % nodes.len()].clone();
            tokio::spawn(client(http.clone(), node, format!("{tag}-{i}.bin"), size))
        })
        .collect();
    let mut acks = Vec::new();
    for t in tasks {
        acks.extend(t.await.unwrap());
    }
    let fragments = acks.len();
    acks.sort();
    Run {
        secs: started.elapsed().as_secs_f64(),
        acks,
        fragments,
    }
}

fn percentile(acks: &[Duration], p: f64) -> f64 {
    let i = ((acks.len() as f64 - 1.0) * p).round() as usize;
    acks[i].as_secs_f64() * 1000.0
}

async fn commits(pg: &postgres::Postgres, db: &str) -> i64 {
    // A backend flushes its statistics to the view within 10 s once idle.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let (client, connection) = tokio_postgres::connect(&pg.params(db), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = $1",
            &[&db],
        )
        .await
        .unwrap();
    row.get(0)
}

fn node_config(dir: &std::path::Path, at: Option<(&moto::Moto, &str)>) -> ServerConfig {
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let mut c = ServerConfig::root(&root, "127.0.0.1:0".parse().unwrap());
    c.directories[0].prefix = "/up/".into();
    c.directories[0].max_sessions_per_user = 0;
    c.state_dir = Some(dir.join("state"));
    if let Some((moto, pg)) = at {
        c.directories[0].root = None;
        c.storage = moto.storage(8 << 20);
        c.sessions = SessionsAt::Postgres {
            url: pg.to_owned(),
            ca_file: None,
        };
    }
    c
}

/// PostgreSQL transactions of a run: how many, and the parts and sessions it had.
struct Xacts {
    count: i64,
    parts: usize,
    sessions: usize,
}

fn row(name: &str, r: &Run, base: f64, bytes: usize, xacts: Option<Xacts>) {
    let rate = bytes as f64 / r.secs / 1e6;
    let per = xacts.map_or("—".to_owned(), |x| {
        let count = x.count as f64;
        format!(
            "{:.2} / {:.2} / {:.1}",
            count / r.fragments as f64,
            count / x.parts as f64,
            count / x.sessions as f64
        )
    });
    println!(
        "| {name} | {rate:.0} MB/s | {:.2} | {:.0} ms | {:.0} ms | {per} |",
        rate / base,
        percentile(&r.acks, 0.5),
        percentile(&r.acks, 0.99),
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let clients = args.first().copied().unwrap_or(64);
    let size = args.get(1).copied().unwrap_or(16) << 20;
    let bytes = clients * size;
    let parts = clients * size.div_ceil(8 << 20);
    println!(
        "{clients} clients x {} MiB, 1 MiB fragments, 8 MiB parts\n",
        size >> 20
    );
    println!(
        "| setup | throughput | / local | ack p50 | ack p99 | PostgreSQL transactions per fragment / part / session |"
    );
    println!("|---|---|---|---|---|---|");
    let dir = tempfile::tempdir().unwrap();
    let local = start(vec![node_config(&dir.path().join("local"), None)]).await;
    let base_run = run(&local, "local", clients, size).await;
    let base = bytes as f64 / base_run.secs / 1e6;
    row("1 node, local disk + SQLite", &base_run, base, bytes, None);
    let (moto, pg) = (moto::Moto::start().await, postgres::Postgres::start().await);
    for n in [1usize, 2, 4] {
        let db = format!("farm{n}");
        pg.create_db(&db).await;
        let params = pg.params(&db);
        let configs = (0..n)
            .map(|i| {
                node_config(
                    &dir.path().join(format!("n{n}-{i}")),
                    Some((&moto, &params)),
                )
            })
            .collect();
        let nodes = start(configs).await;
        let before = commits(&pg, &db).await;
        let r = run(&nodes, &db, clients, size).await;
        let xacts = Xacts {
            count: commits(&pg, &db).await - before,
            parts,
            sessions: clients,
        };
        let name = format!(
            "{n} node{}, S3 (moto) + PostgreSQL",
            if n > 1 { "s" } else { "" }
        );
        row(&name, &r, base, bytes, Some(xacts));
    }
}
