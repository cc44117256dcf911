//! A web farm, end to end: two real `ebb-server` processes on one PostgreSQL and one S3 bucket
//! (moto), behind a front that sends each connection to the first node that answers. ebb
//! uploads 64 MiB in 1 MiB fragments; the session is pinned to its node by `BITS-Host-Id`, and
//! that node is killed (`kill -9`) after about 20 MiB. The client falls back to the farm's URL,
//! the other node answers from the committed parts, and the upload is whole: the object's
//! SHA-256 is the source's, no multipart upload is left, and at most one part was sent twice.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ebb::{JobState, JobType, Limit, NewFile, PropertyChange};
use sha2::Digest;

use crate::support::moto::Moto;
use crate::support::postgres::{Postgres, free_port};
use crate::support::{self, Reaped, data, wait_state};
use crate::upload_crashes::spawn_server_with;

const PART: u64 = 8 << 20;

/// One node: its config file, on `port`, logging packets to `<state>/server.log`.
fn spawn_node(state: &Path, port: u16, pg: &str, moto: &Moto) -> Reaped {
    std::fs::create_dir_all(state).unwrap();
    let config = format!(
        "listen = \"127.0.0.1:{port}\"\nstate_dir = \"{state}\"\n\
         sessions = {{ type = \"postgres\", url = \"{pg}\" }}\n\
         storage = {{ type = \"s3\", url = \"s3://{bucket}\", part_size = {PART}, options = {{ \
         endpoint = \"http://127.0.0.1:{s3}\", region = \"us-east-1\", allow_http = \"true\", \
         access_key_id = \"test\", secret_access_key = \"test\" }} }}\n\
         [[directory]]\nprefix = \"/up/\"\nmax_fragment_size = 1048576\n\
         host_id = \"127.0.0.1:{port}\"\nhost_id_fallback_timeout = \"1s\"\n",
        state = state.display(),
        bucket = moto.bucket,
        s3 = moto.port,
    );
    let file = state.join("server.toml");
    std::fs::write(&file, config).unwrap();
    let args = [OsStr::new("--config"), file.as_os_str()];
    spawn_server_with(&args, port, &state.join("server.log"))
}

/// The farm's address: each connection goes to the first of `nodes` that takes it.
async fn front(nodes: Vec<u16>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let nodes = nodes.clone();
            tokio::spawn(async move {
                for node in nodes {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(("127.0.0.1", node)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                        return;
                    }
                }
            });
        }
    });
    port
}

/// Bytes a node's log says it took: `(from, to)` of each "bytes taken" line, and whether it
/// created the session.
fn taken(log: &Path) -> (u64, bool) {
    let text = std::fs::read_to_string(log).unwrap();
    let field = |line: &str, name: &str| -> u64 {
        line.split(&format!(" {name}="))
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    let bytes = text
        .lines()
        .filter(|l| l.contains("bytes taken"))
        .map(|l| field(l, "to") - field(l, "from"))
        .sum();
    (bytes, text.contains("session created"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_upload_costs_at_most_one_part() {
    let (moto, pg) = (Moto::start().await, Postgres::start().await);
    pg.create_db("farm").await;
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port()];
    let states: Vec<PathBuf> = ["a", "b"].iter().map(|n| dir.path().join(n)).collect();
    let mut nodes: Vec<Option<Reaped>> = ports
        .iter()
        .zip(&states)
        .map(|(port, state)| Some(spawn_node(state, *port, &pg.params("farm"), &moto)))
        .collect();
    let farm = front(ports.to_vec()).await;
    let body = data(64 << 20, 21);
    let source = dir.path().join("big.bin");
    std::fs::write(&source, &body).unwrap();
    let e = support::engine(dir.path()).await;
    let id = e.create_job("farm", JobType::Upload).await.unwrap();
    for change in [
        PropertyChange::MaxRate(Limit::BytesPerSec(12_000_000)),
        PropertyChange::MinimumRetryDelay(1),
    ] {
        e.set_property(id, change).await.unwrap();
    }
    let url = format!("http://127.0.0.1:{farm}/up/big.bin");
    e.add_files(id, vec![NewFile::new(&url, &source)])
        .await
        .unwrap();
    e.resume(id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while e.job(id).await.unwrap().bytes_transferred < 20 << 20 {
        assert!(Instant::now() < deadline, "the upload did not reach 20 MiB");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The node that created the session holds it (its Host-Id pins the client there).
    let holder = (0..2)
        .find(|&i| taken(&states[i].join("server.log")).1)
        .unwrap();
    let mut killed = nodes[holder].take().unwrap();
    killed.0.kill().unwrap();
    killed.0.wait().unwrap();
    wait_state(&e, id, JobState::Transferred, 120).await;
    let object = moto.object("up/big.bin").await.unwrap();
    assert_eq!(
        sha2::Sha256::digest(&object),
        sha2::Sha256::digest(&body),
        "the object is the source"
    );
    assert_eq!(moto.open_uploads().await, 0, "no multipart upload is left");
    let took: u64 = states.iter().map(|s| taken(&s.join("server.log")).0).sum();
    let resent = took - body.len() as u64;
    let other = taken(&states[1 - holder].join("server.log")).0;
    assert!(other > 0, "the other node took the rest");
    assert!(resent <= PART, "re-sent {resent} bytes, over one part");
    println!("node {holder} killed: {resent} bytes sent twice, the other node took {other}");
    e.shutdown().await;
}
