//! Upload jobs end to end over 127.0.0.1: ebb's client against `ebb-server`, in this process or
//! as its binary. Byte-identical results; crashes of either side; the server's 413, lost
//! sessions, pinned hosts and refusals; a source that changes; cancel.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ebb::{
    Engine, ErrorCode, ErrorContext, JobId, JobState, JobType, Limit, NewFile, PropertyChange,
};
use ebb_server::{App, ServerConfig, UploadDir};

use crate::support::{self, data, wait_for, wait_state};

/// An `ebb-server` in this process on a free port.
pub struct Server {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Serve `root` under `/up/`, with `tune` applied to the directory.
    pub async fn start(root: &Path, tune: impl FnOnce(&mut UploadDir)) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = ServerConfig::root(root, addr);
        config.directories[0].prefix = "/up/".into();
        tune(&mut config.directories[0]);
        let app = App::open(config).await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = app.clone();
        let task = tokio::spawn(async move {
            serving
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            addr,
            app,
            stop: Some(stop),
            task,
        }
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://{}/up/{name}", self.addr)
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        let _ = (&mut self.task).await;
    }
}

/// An upload job of `source` to `url`, resumed.
pub async fn start_upload(e: &Engine, url: &str, source: &Path) -> JobId {
    let id = e.create_job("up", JobType::Upload).await.unwrap();
    e.add_files(id, vec![NewFile::new(url, source)])
        .await
        .unwrap();
    e.resume(id).await.unwrap();
    id
}

fn source(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test]
async fn an_upload_arrives_whole_and_the_job_completes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, |_| {}).await;
    let e = support::engine(dir.path()).await;
    let body = data(3_000_000, 1);
    let src = source(dir.path(), "report.bin", &body);
    let id = start_upload(&e, &server.url("report.bin"), &src).await;
    let info = wait_state(&e, id, JobState::Transferred, 30).await;
    assert_eq!(info.bytes_total, Some(3_000_000));
    assert_eq!(info.bytes_transferred, 3_000_000);
    assert_eq!(info.files_transferred, 1);
    assert_eq!(std::fs::read(root.join("report.bin")).unwrap(), body);
    // One file per upload job; uploads go to HTTP.
    let err = e
        .add_files(id, vec![NewFile::new(server.url("b"), &src)])
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::BG_E_TOO_MANY_FILES);
    let other = e.create_job("up2", JobType::Upload).await.unwrap();
    let err = e
        .add_files(
            other,
            vec![NewFile::new(format!("file://{}", src.display()), &src)],
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("http or https"), "{err}");
    let err = e
        .add_files(
            other,
            vec![NewFile::new(server.url("x"), dir.path().join("missing"))],
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot be uploaded"), "{err}");
    // An upload's session belongs to its URL: no repairs (E_NOTIMPL, as BITS).
    let err = e
        .set_remote_name(id, 0, &server.url("elsewhere.bin"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::E_NOTIMPL, "{err}");
    e.complete(id).await.unwrap();
    assert_eq!(e.job(id).await.unwrap().state, JobState::Acknowledged);
    // Complete leaves the app's source alone.
    assert_eq!(std::fs::read(&src).unwrap(), body);
    assert_eq!(
        server.app.session_count(),
        0,
        "Close-Session ended the session"
    );
    e.shutdown().await;
    server.stop().await;
}

#[tokio::test]
async fn a_413_shrinks_the_fragments() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, |d| d.max_fragment_size = 20_000).await;
    let e = support::engine(dir.path()).await;
    let body = data(300_000, 2);
    let src = source(dir.path(), "s.bin", &body);
    let id = start_upload(&e, &server.url("s.bin"), &src).await;
    wait_state(&e, id, JobState::Transferred, 30).await;
    assert_eq!(std::fs::read(root.join("s.bin")).unwrap(), body);
    e.shutdown().await;
    server.stop().await;
}

/// An upload job capped at 1 MB/s (so that tests can catch it mid-way), resumed.
async fn capped_upload(e: &Engine, url: &str, source: &Path) -> JobId {
    let id = e.create_job("up", JobType::Upload).await.unwrap();
    e.set_property(id, PropertyChange::MaxRate(Limit::BytesPerSec(1_000_000)))
        .await
        .unwrap();
    e.add_files(id, vec![NewFile::new(url, source)])
        .await
        .unwrap();
    e.resume(id).await.unwrap();
    id
}

/// Suspend once the server has more than `bytes`.
async fn suspend_after(e: &Engine, id: JobId, bytes: u64) {
    wait_for(e, id, 30, |j| j.bytes_transferred > bytes).await;
    e.suspend(id).await.unwrap();
}

#[tokio::test]
async fn a_lost_session_starts_over_and_a_resumed_one_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, |_| {}).await;
    let e = support::engine(dir.path()).await;
    let body = data(2_000_000, 3);
    let src = source(dir.path(), "l.bin", &body);
    let id = capped_upload(&e, &server.url("l.bin"), &src).await;
    suspend_after(&e, id, 300_000).await;
    // Suspended and resumed: the same session goes on from the server's count.
    e.resume(id).await.unwrap();
    suspend_after(&e, id, 700_000).await;
    assert_eq!(server.app.session_count(), 1);
    // The session's bytes vanish on the server: it ends the session, and the client starts
    // over in a new one.
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".part") {
            std::fs::remove_file(path).unwrap();
        }
    }
    e.set_property(id, PropertyChange::MaxRate(Limit::Unlimited))
        .await
        .unwrap();
    e.resume(id).await.unwrap();
    wait_state(&e, id, JobState::Transferred, 30).await;
    assert_eq!(std::fs::read(root.join("l.bin")).unwrap(), body);
    e.shutdown().await;
    server.stop().await;
}

#[tokio::test]
async fn a_source_that_changes_fails_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, |_| {}).await;
    let e = support::engine(dir.path()).await;
    let body = data(2_000_000, 4);
    let src = source(dir.path(), "c.bin", &body);
    let id = capped_upload(&e, &server.url("c.bin"), &src).await;
    suspend_after(&e, id, 200_000).await;
    std::thread::sleep(std::time::Duration::from_millis(50));
    let mut changed = body.clone();
    changed[10] ^= 0xFF;
    std::fs::write(&src, &changed).unwrap();
    e.resume(id).await.unwrap();
    let info = wait_state(&e, id, JobState::Error, 30).await;
    let error = info.error.unwrap();
    assert_eq!(error.code, ErrorCode(0x8020_001D), "{}", error.description);
    assert_eq!(error.context, ErrorContext::LocalFile);
    assert!(!root.join("c.bin").exists(), "no mixed upload");
    // Cancel ends the server's session too.
    e.cancel(id).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.app.session_count() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "Cancel-Session never came"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    e.shutdown().await;
    server.stop().await;
}

#[tokio::test]
async fn the_servers_refusals_become_the_jobs_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("taken.bin"), b"mine").unwrap();
    let server = Server::start(&root, |d| d.max_upload_size = Some(1000)).await;
    let e = support::engine(dir.path()).await;
    let src = source(dir.path(), "r.bin", &data(5000, 5));
    // The name exists and may not be overwritten: 403 + E_ACCESSDENIED, final.
    let id = start_upload(&e, &server.url("taken.bin"), &src).await;
    let info = wait_state(&e, id, JobState::Error, 30).await;
    let error = info.error.unwrap();
    assert_eq!(
        error.code,
        ErrorCode::E_ACCESSDENIED,
        "{}",
        error.description
    );
    assert_eq!(error.context, ErrorContext::RemoteFile);
    assert_eq!(std::fs::read(root.join("taken.bin")).unwrap(), b"mine");
    // Over the directory's limit: BG_E_TOO_LARGE, final.
    let id = start_upload(&e, &server.url("big.bin"), &src).await;
    let info = wait_state(&e, id, JobState::Error, 30).await;
    assert_eq!(info.error.unwrap().code, ErrorCode(0x8020_0020));
    // Not an upload server at all (no such directory: a bare 404, no Ack).
    let id = start_upload(&e, &format!("http://{}/nowhere/x", server.addr), &src).await;
    let info = wait_state(&e, id, JobState::Error, 30).await;
    let error = info.error.unwrap();
    assert_eq!(error.code, ErrorCode(0x8019_0194));
    assert!(
        error.description.contains("no BITS upload server"),
        "{}",
        error.description
    );
    e.shutdown().await;
    server.stop().await;
}

#[tokio::test]
async fn a_pinned_host_that_cannot_be_reached_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap();
    drop(closed);
    let server = Server::start(&root, |d| {
        d.host_id = Some(dead.to_string());
        d.host_id_fallback_timeout = std::time::Duration::ZERO;
    })
    .await;
    let e = support::engine(dir.path()).await;
    let body = data(400_000, 6);
    let src = source(dir.path(), "h.bin", &body);
    let id = start_upload(&e, &server.url("h.bin"), &src).await;
    wait_state(&e, id, JobState::Transferred, 30).await;
    assert_eq!(std::fs::read(root.join("h.bin")).unwrap(), body);
    e.shutdown().await;
    server.stop().await;
}

/// `ebb transfer --upload` and `bitsadmin /TRANSFER /UPLOAD`, in the CLI's own engine and
/// through `ebbd`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_lines_upload() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, |_| {}).await;
    let body = data(700_000, 7);
    let src = source(dir.path(), "cli.bin", &body);
    let src_text = src.to_str().unwrap();
    for (cli, mode) in [
        (support::Cli::new(dir.path()), "embedded"),
        (support::Cli::daemon(dir.path()), "daemon"),
    ] {
        let name = format!("{mode}.bin");
        let out = cli.run(&["transfer", "--upload", &server.url(&name), src_text]);
        let _daemon =
            support::started_pid(&String::from_utf8_lossy(&out.stderr)).map(support::Started);
        assert!(out.status.success(), "{mode}: {out:?}");
        assert_eq!(std::fs::read(root.join(&name)).unwrap(), body, "{mode}");
        let name = format!("{mode}-ba.bin");
        let url = server.url(&name);
        let out = cli.run(&["bitsadmin", "/transfer", "up", "/upload", &url, src_text]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{mode}: {out:?}");
        assert!(text.contains("TYPE: UPLOAD"), "{text}");
        assert!(
            text.contains("Transfer complete. 700000 / 700000 bytes."),
            "{text}"
        );
        assert_eq!(std::fs::read(root.join(&name)).unwrap(), body, "{mode}");
        // One file per upload.
        let out = cli.run(&["transfer", "--upload", &url, src_text, &url, src_text]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
    }
    server.stop().await;
}

/// A client that counts more than the server has (its record is ahead, say the server lost
/// its last bytes): the next fragment is answered 416 with the server's count, and the upload
/// goes on from there, after a Ping, in the same session.
#[tokio::test]
async fn a_416_sends_the_client_back_to_the_servers_count() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, |_| {}).await;
    let body = data(2_000_000, 8);
    let src = source(dir.path(), "ahead.bin", &body);
    let e = support::engine(dir.path()).await;
    let id = capped_upload(&e, &server.url("ahead.bin"), &src).await;
    suspend_after(&e, id, 300_000).await;
    let had = e.job(id).await.unwrap().bytes_transferred;
    e.shutdown().await;
    drop(e);
    let db = rusqlite::Connection::open(dir.path().join("data/ebb.db")).unwrap();
    db.execute(
        "UPDATE files SET bytes_transferred = bytes_transferred + 500000",
        [],
    )
    .unwrap();
    drop(db);
    let e = support::engine(dir.path()).await;
    assert_eq!(e.job(id).await.unwrap().bytes_transferred, had + 500_000);
    e.set_property(id, PropertyChange::MaxRate(Limit::Unlimited))
        .await
        .unwrap();
    e.resume(id).await.unwrap();
    wait_state(&e, id, JobState::Transferred, 30).await;
    assert_eq!(std::fs::read(root.join("ahead.bin")).unwrap(), body);
    e.shutdown().await;
    server.stop().await;
}

/// A background upload keeps to the shared cap, and its bytes count as ebb's own (sent) in the
/// bandwidth status, as a download's received bytes do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_upload_keeps_to_the_shared_cap() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, |_| {}).await;
    let e = support::engine(dir.path()).await;
    e.set_bandwidth(ebb::BandwidthChange {
        max_rate: Some(Limit::BytesPerSec(200_000)),
        ..Default::default()
    })
    .await
    .unwrap();
    let body = data(600_000, 9);
    let src = source(dir.path(), "capped.bin", &body);
    let started = std::time::Instant::now();
    let id = start_upload(&e, &server.url("capped.bin"), &src).await;
    let mut counted = 0;
    while e.job(id).await.unwrap().state != JobState::Transferred {
        counted = counted.max(e.bandwidth().background_rate);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "never finished"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // 600 kB at 200 kB/s cannot take less than ~3 s (a lower bound: a slow machine only adds).
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert!(
        counted > 0,
        "the upload's bytes were not counted as ebb's own"
    );
    assert_eq!(std::fs::read(root.join("capped.bin")).unwrap(), body);
    e.shutdown().await;
    server.stop().await;
}

/// A directory with users: the job's credentials answer the challenge; without them the
/// upload fails with the server's 401.
#[tokio::test]
async fn credentials_answer_the_servers_challenge() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, |d| {
        d.users = vec![ebb_server::User {
            name: "ann".into(),
            password: "s3cret".into(),
        }];
    })
    .await;
    let e = support::engine(dir.path()).await;
    let body = data(100_000, 10);
    let src = source(dir.path(), "auth.bin", &body);
    let id = e.create_job("up", JobType::Upload).await.unwrap();
    e.set_property(
        id,
        PropertyChange::Credentials(
            ebb::CredentialTarget::Server,
            Some(ebb::BasicCredentials::parse("ann:s3cret").unwrap()),
        ),
    )
    .await
    .unwrap();
    e.add_files(id, vec![NewFile::new(server.url("auth.bin"), &src)])
        .await
        .unwrap();
    e.resume(id).await.unwrap();
    wait_state(&e, id, JobState::Transferred, 30).await;
    assert_eq!(std::fs::read(root.join("auth.bin")).unwrap(), body);
    let anonymous = start_upload(&e, &server.url("anon.bin"), &src).await;
    let info = wait_state(&e, anonymous, JobState::Error, 30).await;
    assert_eq!(info.error.unwrap().code, ErrorCode::http(401));
    assert!(!root.join("anon.bin").exists());
    e.shutdown().await;
    server.stop().await;
}
