//! Nodes on object storage (moto), alone or two on one PostgreSQL, for raw-packet tests.

use std::path::{Path, PathBuf};

use ebb_server::ServerConfig;

use super::moto::Moto;
use super::postgres::Postgres;
use super::{Reply, Server};

pub const MIB: usize = 1 << 20;
/// The part size of these tests' nodes: S3's least.
pub const PART: u64 = 5 << 20;

/// A node whose uploads go to `moto`'s bucket (under `/up/`, keys `up/...`), its state in
/// `state`.
pub fn node(moto: &Moto, state: &Path) -> ServerConfig {
    let mut c = ServerConfig::root(PathBuf::new(), "127.0.0.1:0".parse().unwrap());
    c.directories[0].root = None;
    c.directories[0].prefix = "/up/".into();
    c.storage = moto.storage(PART);
    c.state_dir = Some(state.to_path_buf());
    c
}

/// The count in a fragment's Ack.
pub fn received(r: &Reply) -> u64 {
    r.header("bits-received-content-range")
        .unwrap_or_else(|| panic!("{r:?}"))
        .parse()
        .unwrap()
}

/// Send `body[from..to]` in fragments of `step` bytes, each acknowledged in full.
pub async fn send(node: &Server, id: &str, body: &[u8], (from, to): (usize, usize), step: usize) {
    let mut at = from;
    while at < to {
        let end = (at + step).min(to);
        let r = node
            .fragment(
                "/up/a.bin",
                id,
                at as u64,
                &body[at..end],
                body.len() as u64,
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(received(&r), end as u64);
        at = end;
    }
}

/// Two nodes on one PostgreSQL database and one bucket, their state apart.
pub async fn two_nodes(moto: &Moto, pg: &Postgres, db: &str, dir: &Path) -> (Server, Server) {
    two_nodes_with(moto, pg, db, dir, |_| {}).await
}

pub async fn two_nodes_with(
    moto: &Moto,
    pg: &Postgres,
    db: &str,
    dir: &Path,
    change: impl Fn(&mut ServerConfig),
) -> (Server, Server) {
    pg.create_db(db).await;
    let mut nodes = Vec::new();
    for name in ["a", "b"] {
        let mut config = node(moto, &dir.join(name));
        change(&mut config);
        config.sessions = ebb_server::SessionsAt::Postgres {
            url: pg.params(db),
            ca_file: None,
        };
        nodes.push(Server::start(config).await);
    }
    let b = nodes.pop().unwrap();
    (nodes.pop().unwrap(), b)
}
