//! `ebbd` and `ebb::Client`: the backend trait over the daemon's socket.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ebb::{Backend, Client, ErrorCode, Event, JobState, JobType, NewFile, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::support::origin::{Origin, Resource};
use crate::support::{self, Started, data, started_pid, stop_daemon};

/// A daemon served in-process on a socket in `dir`.
struct InProcess {
    socket: PathBuf,
    stop: CancellationToken,
    engine: ebb::Engine,
}

impl InProcess {
    async fn start(dir: &Path) -> Self {
        let engine = support::engine(dir).await;
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

    async fn client(&self) -> Client {
        Client::connect(&self.socket).await.unwrap()
    }

    async fn stop(self) {
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
    assert!(matches!(over_socket[5], ebb::Error::NotSupported(_)));
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

/// A daemon this test started, killed (by its PID) when the test ends, however it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The real `ebbd`, on its own socket and data directory, logging to `ebbd.log` there.
fn spawn_ebbd(dir: &Path, args: &[&str]) -> Reaped {
    let bin = support::ebb_bin().with_file_name("ebbd");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("ebbd.log"))
        .unwrap();
    let child = Command::new(bin)
        .arg("--foreground")
        .args(args)
        .env("EBB_DATA_DIR", dir.join("data"))
        .env("EBB_SOCKET", dir.join("run/ebbd.sock"))
        .env("EBB_SECRET_STORE", "file")
        .env("EBB_CHECKPOINT_BYTES", "65536")
        .env("EBB_CHECKPOINT_INTERVAL", "100ms")
        .env("EBB_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let child = Reaped(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(dir.join("run/ebbd.sock")).is_err() {
        assert!(Instant::now() < deadline, "ebbd did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
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

/// Engine settings in daemon mode: a flag goes to the ebbd the call starts; a running ebbd
/// with other settings refuses the call and names them; ebbd takes every engine flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_settings_reach_the_daemon_or_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cli = support::Cli::daemon(dir.path());
    let out = cli.run(&["--time-slice", "7s", "--max-background-jobs", "3", "list"]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{said}");
    let pid = started_pid(&said).unwrap_or_else(|| panic!("no start notice: {said:?}"));
    let _reaped = Started(pid);
    let c = Client::connect(&cli.socket).await.unwrap();
    let running = c.settings().unwrap();
    assert_eq!(running.time_slice, Some(Duration::from_secs(7)));
    assert_eq!(running.max_background_jobs, Some(3));
    // The same settings again are fine; others are refused, by name, flag or environment.
    assert!(cli.run(&["--time-slice", "7s", "list"]).status.success());
    let out = cli.run(&["--time-slice", "9s", "list"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("--time-slice 9s (it runs with 7s)"), "{said}");
    let out = cli
        .command(&["list"])
        .env("EBB_CONNECT_TIMEOUT", "3s")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("--connect-timeout 3s"), "{said}");
    stop_daemon(pid);

    // ebbd itself takes every engine flag the README lists.
    let other = tempfile::tempdir().unwrap();
    let _ebbd = spawn_ebbd(
        other.path(),
        &[
            "--checkpoint-bytes=4096",
            "--checkpoint-interval=50ms",
            "--max-background-jobs=2",
            "--time-slice=3s",
            "--chunk-timeout=4s",
            "--connect-timeout=5s",
            "--inactivity-timeout=6days",
        ],
    );
    let c = Client::connect(other.path().join("run/ebbd.sock"))
        .await
        .unwrap();
    let s = c.settings().unwrap();
    assert_eq!(
        (
            s.checkpoint_bytes,
            s.checkpoint_interval,
            s.max_background_jobs
        ),
        (Some(4096), Some(Duration::from_millis(50)), Some(2))
    );
    assert_eq!(
        (s.time_slice, s.chunk_timeout, s.connect_timeout),
        (
            Some(Duration::from_secs(3)),
            Some(Duration::from_secs(4)),
            Some(Duration::from_secs(5))
        )
    );
    assert_eq!(s.inactivity_timeout, Some(Duration::from_secs(6 * 86_400)));
}

/// The pid from "ebb: started ebbd (pid N) on ...".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_starts_ebbd_and_jobs_move_after_the_cli_exits() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let (a, b) = (data(800_000, 62), data(500_000, 63));
    origin.put("/a", Resource::new(a.clone()).rate(2_000_000));
    origin.put("/b", Resource::new(b.clone()));
    let cli = support::Cli::daemon(dir.path());
    // Without autostart and without a daemon: a clear refusal.
    let out = cli
        .command(&["list"])
        .env("EBB_NO_AUTOSTART", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no ebbd answers"));
    // The first verb starts ebbd, and says so once.
    let out = cli.run(&["create", "bg"]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    let pid = started_pid(&said).unwrap_or_else(|| panic!("no start notice: {said:?}"));
    let _reaped = Started(pid);
    let id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let out = cli.run(&[
        "add-file",
        "bg",
        &origin.url("/a"),
        dir.path().join("a").to_str().unwrap(),
    ]);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // resume returns at once; the transfer goes on in ebbd with no CLI process alive.
    cli.ok(&["resume", &id]);
    cli.poll_info(&id, |j| j["state"] == "transferred");
    // Two CLI processes at once.
    let (pa, pb) = (dir.path().join("ta"), dir.path().join("tb"));
    let mut one = cli
        .command(&["transfer", &origin.url("/a"), pa.to_str().unwrap()])
        .spawn()
        .unwrap();
    let mut two = cli
        .command(&["transfer", &origin.url("/b"), pb.to_str().unwrap()])
        .spawn()
        .unwrap();
    assert!(one.wait().unwrap().success() && two.wait().unwrap().success());
    assert_eq!(
        (std::fs::read(&pa).unwrap(), std::fs::read(&pb).unwrap()),
        (a.clone(), b)
    );
    cli.ok(&["complete", &id]);
    assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), a);
    assert_eq!(cli.json(&["info", &id, "--json"])["state"], "acknowledged");
    // The other verbs of the core issue, the same through the daemon.
    let v = cli.ok(&["create", "verbs"]).trim().to_owned();
    let (vb, vc) = (dir.path().join("vb"), dir.path().join("vc"));
    let wrong = origin.url("/wrong/b");
    cli.ok(&["add-file", &v, &wrong, vb.to_str().unwrap()]);
    cli.ok(&[
        "set",
        &v,
        "--priority",
        "high",
        "--description",
        "d",
        "--min-retry-delay",
        "9",
        "--header",
        "X-A: 1",
    ]);
    let j = cli.json(&["info", &v, "--json"]);
    assert_eq!(
        (
            j["priority"].as_str(),
            j["description"].as_str(),
            j["minimum_retry_delay"].as_u64()
        ),
        (Some("high"), Some("d"), Some(9))
    );
    cli.ok(&["resume", &v]);
    cli.poll_info(&v, |j| j["state"] == "error");
    assert_eq!(cli.json(&["error", &v, "--json"])["code"], "0x80190194");
    assert_eq!(
        cli.ok(&[
            "replace-remote-prefix",
            &v,
            &origin.url("/wrong/"),
            &origin.url("/")
        ]),
        ""
    );
    cli.ok(&["add-file", &v, &origin.url("/a"), vc.to_str().unwrap()]);
    cli.ok(&["set-remote-name", &v, "1", &origin.url("/a")]);
    assert_eq!(
        cli.json(&["files", &v, "--json"]).as_array().unwrap().len(),
        2
    );
    cli.ok(&["resume", &v]);
    cli.ok(&["suspend", &v]);
    assert_eq!(cli.json(&["info", &v, "--json"])["state"], "suspended");
    assert_eq!(
        cli.run(&["wait", &v, "--timeout", "1"]).status.code(),
        Some(1)
    );
    cli.ok(&["cancel", &v]);
    assert_eq!(cli.json(&["info", &v, "--json"])["state"], "cancelled");
    assert!(!vb.exists() && !vc.exists());
    // monitor: the bitsadmin-style header and a line per job, until Ctrl-C.
    cli.ok(&["create", "watched"]);
    let mon = cli
        .command(&["monitor", "--refresh", "100ms"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        Command::new("kill")
            .args(["-INT", &mon.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = mon.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("MONITORING BACKGROUND COPY MANAGER") && text.contains("\"watched\""),
        "{text}"
    );
    stop_daemon(pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ebb_without_ebbd_beside_it_starts_the_ebbd_on_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(300_000, 64);
    origin.put("/s", Resource::new(body.clone()));
    let alone = dir.path().join("bin");
    std::fs::create_dir(&alone).unwrap();
    std::fs::copy(support::ebb_bin(), alone.join("ebb")).unwrap();
    let cli = support::Cli::daemon(dir.path());
    let dest = dir.path().join("s");
    // The CLI's environment, on a copy of `ebb` with no `ebbd` beside it: first with no `ebbd`
    // on PATH either, then with the built one there.
    let cmd = cli.command(&[]);
    let envs: Vec<_> = cmd
        .get_envs()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned())))
        .collect();
    let built = support::ebb_bin().parent().unwrap().to_owned();
    let path = |dirs: &[&Path]| std::env::join_paths(dirs).unwrap();

    // The copy was just written: a process another test forks meanwhile may hold its descriptor
    // for an instant (ETXTBSY until that child execs). Try again briefly.
    let mut tries = 0;
    let out = loop {
        let run = Command::new(alone.join("ebb"))
            .args(["transfer", &origin.url("/s"), dest.to_str().unwrap()])
            .envs(envs.clone())
            .env(
                "PATH",
                path(&[&built, Path::new("/usr/bin"), Path::new("/bin")]),
            )
            .env_remove("EBB_EMBEDDED")
            .output();
        match run {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => break other.unwrap(),
        }
    };
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    let pid = started_pid(&said).unwrap_or_else(|| panic!("no start notice: {said:?}"));
    let _reaped = Started(pid);
    assert!(out.status.success(), "{said}");
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        cmdline.starts_with(built.join("ebbd").to_str().unwrap()),
        "{cmdline:?}"
    );
    stop_daemon(pid);
    // With no ebbd on PATH either, a clear refusal.
    let out = Command::new(alone.join("ebb"))
        .args(["list"])
        .envs(envs)
        .env("PATH", path(&[Path::new("/usr/bin"), Path::new("/bin")]))
        .env_remove("EBB_EMBEDDED")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("no ebbd beside") && said.contains("--embedded"),
        "{said}"
    );
}

/// A script in the style of real BITSAdmin scripts, through a `bitsadmin` symlink to `ebb`:
/// create, addfile, a notify command line that runs `bitsadmin /complete`, resume, poll
/// `/info /verbose` until the job is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bitsadmin_script_runs_to_completion() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(500_000, 65);
    origin.put("/b.bin", Resource::new(body.clone()));
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(support::ebb_bin(), bin.join("bitsadmin")).unwrap();
    let script = r#"
        set -e
        out=$(bitsadmin /create myjob 2> "$OUT/first.err")
        printf '%s' "$out" > "$OUT/create.out"
        job=$(printf '%s\n' "$out" | tail -n 1 | sed 's/^Created job \(.*\)\.$/\1/')
        bitsadmin /addfile "$job" "$URL" "$DEST" | grep -q Added
        bitsadmin /setnotifycmdline "$job" "$BITSADMIN" "$BITSADMIN /complete $job" > /dev/null
        bitsadmin /resume "$job" | grep -q Job
        for i in $(seq 200); do
          bitsadmin /info "$job" /verbose | grep -qE 'STATE: (TRANSFERRED|ACKNOWLEDGED)' && break
          sleep 0.05
        done
        for i in $(seq 200); do
          [ "$(bitsadmin /rawreturn /getstate "$job")" = ACKNOWLEDGED ] && break
          sleep 0.05
        done
        bitsadmin /rawreturn /getstate "$job" > "$OUT/state.out"
        bitsadmin /rawreturn /create second > "$OUT/raw-create.out"
        bitsadmin /list > "$OUT/list.out"
        printf '# two files\n%s %s\n%s %s\n' "$URL" "$OUT/set1" "$URL" "$OUT/set2" > "$OUT/set.txt"
        bitsadmin /addfileset second "$OUT/set.txt" | grep -q Added
        bitsadmin /listfiles second > "$OUT/files.out"
        bitsadmin /transfer tr /download /PRIORITY high "$URL" "$OUT/tr.bin" > "$OUT/transfer.out"
        bitsadmin /reset > "$OUT/reset.out"
        if bitsadmin /util /repairservice 2> "$OUT/unsupported.err"; then exit 4; fi
    "#;
    let cli = support::Cli::daemon(dir.path());
    let mut sh = Command::new("sh");
    sh.args(["-c", script]);
    cli.apply_env(&mut sh);
    let out = sh
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("OUT", dir.path())
        .env("URL", origin.url("/b.bin"))
        .env("DEST", dir.path().join("b.bin"))
        .env("BITSADMIN", bin.join("bitsadmin"))
        .output()
        .unwrap();
    let first = std::fs::read_to_string(dir.path().join("first.err")).unwrap_or_default();
    let _reaped = started_pid(&first).map(Started);
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    // The banner, then `Created job {GUID}.`
    let create = read("create.out");
    assert!(create.starts_with("\nBITSADMIN version 3.0\nBITS administration utility.\n(C) Copyright Microsoft Corp.\n\nCreated job {"), "{create:?}");
    assert_eq!(read("state.out"), "ACKNOWLEDGED");
    assert_eq!(std::fs::read(dir.path().join("b.bin")).unwrap(), body);
    let raw = read("raw-create.out");
    assert!(
        raw.starts_with('{') && raw.ends_with('}') && raw.len() == 38,
        "{raw:?}"
    );
    let list = read("list.out");
    assert!(list.ends_with("\nListed 1 job(s).\n"), "{list:?}");
    assert!(
        list.contains(&format!("{raw} 'second' SUSPENDED 0 / 0 0 / 0")),
        "{list:?}"
    );
    assert!(read("unsupported.err").contains("not supported by ebb"));
    assert_eq!(std::fs::read(dir.path().join("tr.bin")).unwrap(), body);
    assert!(read("transfer.out").contains("Transfer complete."));
    let reset = read("reset.out");
    assert!(
        reset.contains(&format!("{raw} canceled.\n"))
            && reset.ends_with("\n1 out of 1 jobs canceled.\n"),
        "{reset:?}"
    );
    let files = read("files.out");
    assert!(files.ends_with("\nListed 2 file(s).\n"), "{files:?}");
    assert!(
        files.contains(&format!(
            "0 / UNKNOWN WORKING {} -> {}/set2",
            origin.url("/b.bin"),
            dir.path().display()
        )),
        "{files:?}"
    );
    if let Some(pid) = started_pid(&first) {
        stop_daemon(pid);
    }
}
