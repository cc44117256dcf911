//! `ebbd` and `ebb::Client`: the backend trait over the daemon's socket.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ebb::{Backend, Client, ErrorCode, Event, JobState, JobType, NewFile, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::support::origin::{Origin, Resource};
use crate::support::{self, data, spawn_ebbd};

/// A daemon served in-process on a socket in `dir`.
pub(crate) struct InProcess {
    socket: PathBuf,
    stop: CancellationToken,
    engine: ebb::Engine,
}

impl InProcess {
    pub(crate) async fn start(dir: &Path) -> Self {
        Self::with(support::engine(dir).await, dir)
    }

    /// `engine`, served on a socket in `dir`.
    pub(crate) fn with(engine: ebb::Engine, dir: &Path) -> Self {
        let socket = dir.join("run").join("ebbd.sock");
        let listener = ebb_daemon::bind(&socket).unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(ebb_daemon::serve(engine.clone(), listener, stop.clone()));
        Self {
            socket,
            stop,
            engine,
        }
    }

    pub(crate) async fn client(&self) -> Client {
        Client::connect(&self.socket).await.unwrap()
    }

    pub(crate) async fn stop(self) {
        self.stop.cancel();
        self.engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_end_to_end_through_the_client_with_events() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(400_000, 60);
    origin.put("/d.bin", Resource::new(body.clone()));
    let daemon = InProcess::start(dir.path()).await;
    let client = daemon.client().await;
    let (mut ev1, mut ev2) = (client.subscribe(), daemon.client().await.subscribe());
    tokio::time::sleep(Duration::from_millis(100)).await; // both streams attached
    let id = client
        .create_job("over the socket", JobType::Download)
        .await
        .unwrap();
    let dest = dir.path().join("d.bin");
    client
        .add_files(id, vec![NewFile::new(origin.url("/d.bin"), &dest)])
        .await
        .unwrap();
    assert_eq!(client.find("over the socket").await.unwrap(), id);
    assert_eq!(client.resume(id).await.unwrap(), ebb::ResumeOutcome::Queued);
    assert_eq!(client.wait(id, None).await.unwrap(), JobState::Transferred);
    assert!(!dest.exists());
    let done = client.complete(id).await.unwrap();
    assert_eq!(done.code, ErrorCode::S_OK);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    for rx in [&mut ev1, &mut ev2] {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !seen
            .iter()
            .any(|e| matches!(e, Event::JobTransferred { .. }))
        {
            let ev = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .unwrap()
                .unwrap();
            seen.push(ev);
        }
        assert!(
            seen.iter()
                .any(|e| matches!(e, Event::FileTransferred { job_id, .. } if *job_id == id)),
            "{seen:?}"
        );
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_keep_their_bits_codes_over_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = InProcess::start(dir.path()).await;
    let c = daemon.client().await;
    let id = c.create_job("e", JobType::Download).await.unwrap();
    let err = c.resume(id).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::BG_E_EMPTY);
    let err = c
        .add_files(id, vec![NewFile::new("http://127.0.0.1:9/x", "relative")])
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::E_INVALIDARG);
    assert!(err.to_string().contains("relative"), "{err}");
    c.cancel(id).await.unwrap();
    let err = c.suspend(id).await.unwrap_err();
    assert_eq!(
        (err.code(), err.status()),
        (ErrorCode::BG_E_INVALID_STATE, Status::Permanent)
    );
    assert_eq!(c.job(id).await.unwrap().state, JobState::Cancelled);
    let err = c.job(ebb::JobId::new()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::BG_E_NOT_FOUND);
    assert_eq!(
        c.find("nobody").await.unwrap_err().code(),
        ErrorCode::BG_E_NOT_FOUND
    );
    // Properties travel too.
    let id = c.create_job("p", JobType::Download).await.unwrap();
    c.set_property(id, ebb::PropertyChange::Priority(ebb::Priority::Low))
        .await
        .unwrap();
    assert_eq!(
        c.job(id).await.unwrap().properties.priority,
        ebb::Priority::Low
    );
    assert_eq!(
        c.jobs().await.unwrap().len(),
        1,
        "final jobs are not enumerated"
    );
    daemon.stop().await;
}

/// The same wrong calls on a backend, in order: the errors they return.
async fn wrong_calls(b: &dyn Backend, dir: &Path) -> Vec<ebb::Error> {
    let id = b.create_job("wrong", JobType::Download).await.unwrap();
    let upload = b.create_job("up", JobType::Upload).await.unwrap();
    let two = vec![
        NewFile::new("http://127.0.0.1:9/a", dir.join("a")),
        NewFile::new("http://127.0.0.1:9/b", dir.join("b")),
    ];
    let mut errors = vec![
        b.job(ebb::JobId::new()).await.unwrap_err(),
        b.find("nobody").await.unwrap_err(),
        b.resume(id).await.unwrap_err(),
        b.add_files(id, vec![NewFile::new("ftp://x/y", dir.join("c"))])
            .await
            .unwrap_err(),
        b.add_files(upload, two).await.unwrap_err(),
        b.resume(upload).await.unwrap_err(),
        b.set_remote_name(id, 7, "http://127.0.0.1:9/z")
            .await
            .unwrap_err(),
    ];
    b.cancel(id).await.unwrap();
    errors.push(b.suspend(id).await.unwrap_err());
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_come_back_from_the_daemon_as_the_engine_returns_them() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = InProcess::start(dir.path()).await;
    let client = daemon.client().await;
    let over_socket = wrong_calls(&client, dir.path()).await;
    let in_process = wrong_calls(&daemon.engine, dir.path()).await;
    assert_eq!(over_socket.len(), in_process.len());
    for (remote, local) in over_socket.iter().zip(&in_process) {
        assert_eq!(
            std::mem::discriminant(remote),
            std::mem::discriminant(local),
            "{remote:?} is not {local:?}"
        );
        assert_eq!(
            (remote.code(), remote.status()),
            (local.code(), local.status())
        );
    }
    // Code written against the engine matches the same way against the client.
    assert!(matches!(over_socket[0], ebb::Error::NotFound(_)));
    assert!(matches!(over_socket[2], ebb::Error::Empty(_)));
    assert!(matches!(over_socket[3], ebb::Error::InvalidArgument(_)));
    assert!(matches!(over_socket[4], ebb::Error::TooManyFiles));
    assert!(matches!(over_socket[5], ebb::Error::Empty(_)));
    assert!(matches!(
        &over_socket[7],
        ebb::Error::InvalidState { state: JobState::Cancelled, action, .. } if action == "suspend"
    ));
    daemon.stop().await;
}

/// One raw HTTP/1.1 request over the socket; returns (status line, body).
async fn raw(socket: &Path, path: &str) -> (String, String) {
    let mut s = tokio::net::UnixStream::connect(socket).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: ebbd\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    let status = text.lines().next().unwrap_or_default().to_owned();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_mismatch_is_answered_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = InProcess::start(dir.path()).await;
    let (status, body) = raw(&daemon.socket, "/v1/version").await;
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("\"api\":1"), "{body}");
    let (status, body) = raw(&daemon.socket, "/v2/jobs").await;
    assert!(status.contains("404"), "{status}");
    assert!(
        body.contains("API version mismatch") && body.contains("v1"),
        "{body}"
    );
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_private_and_other_users_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = InProcess::start(dir.path()).await;
    let mode = std::fs::metadata(&daemon.socket)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    // Open the path to everyone so that only the peer-credential check stands in the way.
    for p in [dir.path(), daemon.socket.parent().unwrap()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&daemon.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "curl",
            "-sS",
            "--unix-socket",
        ])
        .arg(&daemon.socket)
        .arg("http://ebbd/v1/version")
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        body.contains("serves only its own user"),
        "{body} / {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Its own user is served.
    assert!(raw(&daemon.socket, "/v1/version").await.0.contains("200"));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_ebbd_mid_transfer_then_restart_finishes_with_a_range() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(3_000_000, 61);
    origin.put("/k.bin", Resource::new(body.clone()).rate(1_000_000));
    let socket = dir.path().join("run/ebbd.sock");
    let mut ebbd = spawn_ebbd(dir.path(), &[]);
    let c = Client::connect(&socket).await.unwrap();
    let id = c.create_job("k", JobType::Download).await.unwrap();
    let dest = dir.path().join("k.bin");
    c.add_files(id, vec![NewFile::new(origin.url("/k.bin"), &dest)])
        .await
        .unwrap();
    c.resume(id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.job(id).await.unwrap().bytes_transferred < 600_000 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ebbd.0.kill().unwrap(); // SIGKILL
    ebbd.0.wait().unwrap();
    assert!(c.job(id).await.is_err(), "the daemon is gone");
    origin.update("/k.bin", |r| r.rate = None);
    let mut ebbd = spawn_ebbd(dir.path(), &[]);
    let c = Client::connect(&socket).await.unwrap();
    assert_eq!(
        c.wait(id, Some(Duration::from_secs(30))).await.unwrap(),
        JobState::Transferred
    );
    c.complete(id).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    let last = origin.log("/k.bin").pop().unwrap();
    assert_eq!(last.status, 206);
    assert!(
        last.range.as_deref().is_some_and(|r| r != "bytes=0-"),
        "{last:?}"
    );
    // SIGTERM: a clean stop that removes the socket.
    // kill(1) on the PID of the child we started.
    let pid = ebbd.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(ebbd.0.wait().unwrap().success());
    assert!(!socket.exists());
}
