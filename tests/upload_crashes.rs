//! Uploads survive `kill -9` of either end: the real `ebbd` killed mid-upload goes on in the
//! same session from the server's count (a Ping, then the 416 path), re-sending at most one
//! fragment, as the server's log shows; the real `ebb-server` killed and restarted mid-upload
//! keeps the session, and the client goes on in it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ebb::{Backend, Client, JobId, JobState, JobType, Limit, NewFile, PropertyChange};

use crate::support::{self, Reaped, data, wait_state};

/// The `ebb-server` binary on `port`, serving `root` under `/`, logging packets to `log`.
pub(crate) fn spawn_server(root: &Path, port: u16, log: &Path) -> Reaped {
    let listen = format!("127.0.0.1:{port}");
    let args = [
        OsStr::new("--root"),
        root.as_os_str(),
        OsStr::new("--listen"),
        OsStr::new(&listen),
    ];
    spawn_server_with(&args, port, log)
}

/// The `ebb-server` binary with `args`, once it listens on `port`, logging packets to `log`
/// (appended to).
pub(crate) fn spawn_server_with(args: &[&OsStr], port: u16, log: &Path) -> Reaped {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = Command::new(support::ebb_bin().with_file_name("ebb-server"))
        .args(args)
        .env("EBB_SERVER_LOG", "ebb_server=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let child = Reaped(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "ebb-server did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Wait until job `id` is Transferred.
pub(crate) async fn wait_transferred(b: &dyn Backend, id: JobId, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while b.job(id).await.unwrap().state != JobState::Transferred {
        assert!(Instant::now() < deadline, "{:#?}", b.job(id).await.unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn kill_9(mut child: Reaped) {
    child.0.kill().unwrap();
    child.0.wait().unwrap();
}

/// The server's log: each fragment's (first, last) byte, and the packets by name.
pub(crate) struct ServerLog {
    fragments: Vec<(u64, u64)>,
    /// What the server took of each request: `(from, to)` of its "bytes taken" lines.
    taken: Vec<(u64, u64)>,
    pub text: String,
}

impl ServerLog {
    pub fn read(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).unwrap();
        let field = |line: &str, name: &str| -> Option<u64> {
            let rest = line.split(&format!(" {name}=")).nth(1)?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        };
        let fragments = text
            .lines()
            .filter(|l| l.contains(" fragment "))
            .filter_map(|l| Some((field(l, "first")?, field(l, "last")?)))
            .collect();
        let taken = text
            .lines()
            .filter(|l| l.contains("bytes taken"))
            .filter_map(|l| Some((field(l, "from")?, field(l, "to")?)))
            .collect();
        Self {
            fragments,
            taken,
            text,
        }
    }

    /// Bytes the server took more than once, and the most it took at once.
    pub fn taken_twice(&self, total: u64) -> (u64, u64) {
        let took: u64 = self.taken.iter().map(|(f, t)| t - f).sum();
        let largest = self.taken.iter().map(|(f, t)| t - f).max();
        (took - total, largest.unwrap_or(0))
    }

    /// Bytes sent more than once, and the largest fragment.
    pub fn resent(&self, total: u64) -> (u64, u64) {
        let sent: u64 = self.fragments.iter().map(|(f, l)| l - f + 1).sum();
        let largest = self.fragments.iter().map(|(f, l)| l - f + 1).max();
        (sent - total, largest.unwrap_or(0))
    }

    pub fn count(&self, what: &str) -> usize {
        self.text.matches(what).count()
    }
}

pub(crate) async fn upload_job(b: &dyn Backend, url: &str, source: &Path, rate: u64) -> JobId {
    let id = b.create_job("up", JobType::Upload).await.unwrap();
    b.set_property(id, PropertyChange::MaxRate(Limit::BytesPerSec(rate)))
        .await
        .unwrap();
    b.add_files(id, vec![NewFile::new(url, source)])
        .await
        .unwrap();
    b.resume(id).await.unwrap();
    id
}

pub(crate) async fn wait_bytes(b: &dyn Backend, id: JobId, bytes: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.job(id).await.unwrap().bytes_transferred <= bytes {
        assert!(
            Instant::now() < deadline,
            "the upload did not reach {bytes} bytes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn dirs() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    (dir, root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_daemon_goes_on_in_the_same_session() {
    let (dir, root) = dirs();
    let port = free_port();
    let log = dir.path().join("server.log");
    let _server = spawn_server(&root, port, &log);
    let body = data(12_000_000, 11);
    let source = dir.path().join("big.bin");
    std::fs::write(&source, &body).unwrap();
    let url = format!("http://127.0.0.1:{port}/big.bin");
    let socket = dir.path().join("run/ebbd.sock");
    let ebbd = support::spawn_ebbd(dir.path(), &[]);
    let client = Client::connect(&socket).await.unwrap();
    let id = upload_job(&client, &url, &source, 1_500_000).await;
    wait_bytes(&client, id, 2_500_000).await;
    kill_9(ebbd);
    let _ebbd = support::spawn_ebbd(dir.path(), &[]);
    let client = Client::connect(&socket).await.unwrap();
    wait_transferred(&client, id, 30).await;
    assert_eq!(std::fs::read(root.join("big.bin")).unwrap(), body);
    let log = ServerLog::read(&log);
    assert_eq!(log.count("session created"), 1, "{}", log.text);
    assert!(
        log.count("Ping") >= 1,
        "the restarted client pinged first: {}",
        log.text
    );
    let (resent, largest) = log.resent(body.len() as u64);
    assert!(
        resent <= largest,
        "re-sent {resent} bytes, more than one fragment ({largest})"
    );
    println!("after kill -9 of ebbd: {resent} bytes re-sent (largest fragment {largest})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_server_keeps_the_session() {
    let (dir, root) = dirs();
    let port = free_port();
    let log = dir.path().join("server.log");
    let server = spawn_server(&root, port, &log);
    let body = data(3_000_000, 12);
    let source = dir.path().join("s.bin");
    std::fs::write(&source, &body).unwrap();
    let e = support::engine(dir.path()).await;
    let url = format!("http://127.0.0.1:{port}/s.bin");
    let id = upload_job(&e, &url, &source, 1_500_000).await;
    e.set_property(id, PropertyChange::MinimumRetryDelay(1))
        .await
        .unwrap();
    wait_bytes(&e, id, 1_000_000).await;
    kill_9(server);
    let _server = spawn_server(&root, port, &log);
    wait_state(&e, id, JobState::Transferred, 60).await;
    assert_eq!(std::fs::read(root.join("s.bin")).unwrap(), body);
    let log = ServerLog::read(&log);
    assert_eq!(log.count("session created"), 1, "{}", log.text);
    e.shutdown().await;
}
