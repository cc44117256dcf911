//! Regression tests for what an unlucky user or an attacker found: a file never counts as
//! transferred unless its last checkpoint is durable, and no local file can stall the daemon.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::origin::{Origin, Resource};
use crate::support::{Cli, Started, data, started_pid, stop_daemon};

/// A CLI on a daemon it starts with its first verb; the daemon is reaped when the guard drops.
fn daemon_cli(dir: &Path) -> (Cli, Started) {
    let cli = Cli::daemon(dir);
    let out = cli.run(&["list"]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    let pid = started_pid(&said).unwrap_or_else(|| panic!("no start notice: {said:?}"));
    assert!(out.status.success(), "{said}");
    (cli, Started(pid))
}

/// `ebb wait` (30 s at most) must end with the job Transferred.
fn wait_transferred(cli: &Cli, id: &str) {
    let out = cli.run(&["wait", id, "--timeout", "30s"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn new_job(cli: &Cli, url: &str, dest: &Path) -> String {
    let id = cli.ok(&["create", "hardening"]).trim().to_owned();
    cli.ok(&["add-file", &id, url, dest.to_str().unwrap()]);
    id
}

/// The issue's reproduction: the destination directory is deleted (and made again) while the
/// file downloads. The bytes went into a deleted file, so the job must fail at the next
/// checkpoint (not report Transferred with nothing behind it), and resume must start the file
/// over and finish it byte-identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_destination_directory_fails_the_job_and_resume_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(1_500_000, 90);
    origin.put("/d", Resource::new(body.clone()).rate(600_000));
    let (cli, daemon) = daemon_cli(dir.path());
    let d = dir.path().join("D");
    std::fs::create_dir(&d).unwrap();
    let id = new_job(&cli, &origin.url("/d"), &d.join("f"));
    cli.ok(&["resume", &id]);
    cli.poll_info(&id, |j| j["bytes_transferred"].as_u64() > Some(100_000));
    std::fs::remove_dir_all(&d).unwrap();
    std::fs::create_dir(&d).unwrap();
    let j = cli.poll_info(&id, |j| j["state"] != "transferring");
    assert_eq!(j["state"], "error", "{j}");
    assert_eq!(j["error"]["context"], "local_file", "{j}");
    assert!(
        j["error"]["description"]
            .as_str()
            .unwrap()
            .contains("was removed"),
        "{j}"
    );
    assert_eq!(j["files_transferred"], 0, "{j}");
    cli.ok(&["resume", &id]);
    wait_transferred(&cli, &id);
    cli.ok(&["complete", &id]);
    assert_eq!(std::fs::read(d.join("f")).unwrap(), body);
    stop_daemon(daemon.0);
}

/// The queue's own disk fills just before a file's last checkpoint, then drains. The file's
/// completion was never recorded, so it must not count as transferred: before the fix, resume
/// reported Transferred at once from memory, the store never learnt the file was complete, and
/// after a daemon restart `complete` dropped the file as a partial complete. Runs in a private
/// mount namespace with the data directory (database and daemon) on a small tmpfs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_disk_at_the_last_checkpoint_never_completes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(800_000, 91);
    origin.put("/q", Resource::new(body.clone()).rate(400_000));
    let cli = Cli::daemon(dir.path());
    std::fs::create_dir_all(&cli.data_dir).unwrap();
    let script = r#"
        set -e
        mount -t tmpfs -o size=4m tmpfs "$EBB_DATA_DIR"
        id=$("$EBB" create q 2> "$OUT/start.err")
        pid=$(sed -n 's/.*started ebbd (pid \([0-9]*\)).*/\1/p' "$OUT/start.err")
        "$EBB" add-file "$id" "$URL" "$OUT/q.bin"
        "$EBB" set "$id" --no-progress-timeout 0
        "$EBB" resume "$id"
        i=0
        until "$EBB" info "$id" --json | grep -q '"state": *"transferring"'; do
            i=$((i+1)); [ $i -lt 400 ] || exit 4; sleep 0.05
        done
        dd if=/dev/zero of="$EBB_DATA_DIR/filler" bs=4k 2>/dev/null || true
        if "$EBB" wait "$id" --timeout 30s 2> "$OUT/wait.err"; then exit 5; fi
        rm "$EBB_DATA_DIR/filler"
        "$EBB" resume "$id"
        "$EBB" wait "$id" --timeout 30s
        kill -TERM "$pid"
        while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
        "$EBB" info "$id" --json > "$OUT/restarted.json" 2> "$OUT/restart.err"
        "$EBB" complete "$id"
    "#;
    let url = origin.url("/q");
    let out = cli.in_mount_namespace(
        script,
        &[
            ("OUT", dir.path().as_os_str()),
            ("URL", url.as_ref()),
            // No checkpoint before the file's last byte: the first one to fail is the last one.
            ("EBB_CHECKPOINT_BYTES", "1000000000".as_ref()),
            ("EBB_CHECKPOINT_INTERVAL", "1h".as_ref()),
        ],
    );
    let said = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    let _first = started_pid(&said("start.err")).map(Started);
    let _second = started_pid(&said("restart.err")).map(Started);
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said("wait.err").contains("failed"), "{}", said("wait.err"));
    let j: serde_json::Value = serde_json::from_str(&said("restarted.json")).unwrap();
    assert_eq!(
        (j["state"].as_str(), j["files_transferred"].as_u64()),
        (Some("transferred"), Some(1)),
        "{j}"
    );
    assert_eq!(std::fs::read(dir.path().join("q.bin")).unwrap(), body);
}

/// After a crash, a FIFO sits at a job's temporary name. Opening it for writing would block
/// until a reader came: the job, every job behind it, suspend, cancel and SIGTERM with it. The
/// FIFO is not a file of ours: the job starts the file over, and the daemon stays responsive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_at_a_temporary_name_never_stalls_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(600_000, 92);
    origin.put("/a", Resource::new(body.clone()).rate(300_000));
    origin.put("/b", Resource::new(data(50_000, 93)));
    let (cli, daemon) = daemon_cli(dir.path());
    let a_dest = dir.path().join("a.bin");
    let a = new_job(&cli, &origin.url("/a"), &a_dest);
    cli.ok(&["resume", &a]);
    // Wait until progress is durable (a checkpoint committed it to the store), then crash.
    let j = cli.poll_info(&a, |j| j["bytes_transferred"].as_u64() > Some(150_000));
    let temp = j["files"][0]["temp_path"].as_str().unwrap().to_owned();
    let db = rusqlite::Connection::open_with_flags(
        cli.data_dir.join("ebb.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let durable = || -> i64 {
        db.query_row(
            "SELECT bytes_transferred FROM files WHERE job_id = ?1",
            [&a],
            |r| r.get(0),
        )
        .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while durable() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint committed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(db);
    Command::new("kill")
        .args(["-KILL", &daemon.0.to_string()])
        .status()
        .unwrap();
    while Path::new(&format!("/proc/{}", daemon.0)).exists()
        && !std::fs::read_to_string(format!("/proc/{}/stat", daemon.0))
            .unwrap_or_default()
            .contains(") Z")
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::remove_file(&temp).unwrap();
    let status = Command::new("mkfifo").arg(&temp).status().unwrap();
    assert!(status.success());

    // The next verb starts a new daemon, which queues the interrupted job again.
    let (cli, daemon) = daemon_cli(dir.path());
    let b = new_job(&cli, &origin.url("/b"), &dir.path().join("b.bin"));
    cli.ok(&["resume", &b]);
    wait_transferred(&cli, &a);
    wait_transferred(&cli, &b);
    cli.ok(&["complete", &a]);
    assert_eq!(std::fs::read(&a_dest).unwrap(), body);
    cli.ok(&["cancel", &b]);
    stop_daemon(daemon.0);
}

/// Server credentials answer a challenge only from the origin the job names: a redirect to
/// another origin that answers 401 gets nothing (the job fails with the 401), unless the job
/// allows other origins. A challenge after a redirect within the origin is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_follow_a_redirect_to_another_origin_unless_allowed() {
    use ebb::{BasicCredentials, CredentialTarget, ErrorCode, JobState, PropertyChange};

    let dir = tempfile::tempdir().unwrap();
    let (home, stranger) = (Origin::start().await, Origin::start().await);
    let body = data(10_000, 94);
    let mut secret = Resource::new(body.clone());
    secret.basic_auth = Some("ann:s3cret".into());
    stranger.put("/f", secret.clone());
    home.put("/f", secret);
    for (path, to) in [("/away", stranger.url("/f")), ("/here", home.url("/f"))] {
        home.put(
            path,
            Resource {
                redirect_to: Some(to),
                ..Resource::default()
            },
        );
    }
    let e = crate::support::engine(dir.path()).await;
    let creds = BasicCredentials::new("ann", "s3cret").unwrap();
    let run = |path: &'static str, across: bool| {
        let (e, creds, url) = (e.clone(), creds.clone(), home.url(path));
        let dest = dir.path().join(format!("{}{across}", &path[1..]));
        async move {
            let id = e.create_job("creds", ebb::JobType::Download).await.unwrap();
            e.add_files(id, vec![ebb::NewFile::new(url, dest)])
                .await
                .unwrap();
            let server = PropertyChange::Credentials(CredentialTarget::Server, Some(creds));
            e.set_property(id, server).await.unwrap();
            e.set_property(id, PropertyChange::CredentialsAcrossOrigins(across))
                .await
                .unwrap();
            e.resume(id).await.unwrap();
            crate::support::wait_for(&e, id, 20, |j| !j.state.is_active()).await
        }
    };
    let j = run("/away", false).await;
    assert_eq!(j.state, JobState::Error);
    assert_eq!(j.error.unwrap().code, ErrorCode::http(401));
    assert!(
        stranger
            .log("/f")
            .iter()
            .all(|r| !r.headers.contains_key("authorization")),
        "the password went to another origin"
    );
    assert_eq!(run("/here", false).await.state, JobState::Transferred);
    assert_eq!(run("/away", true).await.state, JobState::Transferred);
    e.shutdown().await;
}

/// A server that sends more header than the client takes: a permanent, clear error (not a
/// "connection closed" retried every ten minutes for two weeks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_response_headers_are_a_permanent_error() {
    use ebb::{ErrorCode, JobState};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let big = "a".repeat(600 * 1024);
                let reply =
                    format!("HTTP/1.1 200 OK\r\nX-Big: {big}\r\nContent-Length: 1\r\n\r\nx");
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let e = crate::support::engine(dir.path()).await;
    let url = format!("http://{addr}/big");
    let id = crate::support::start_job(&e, url, &dir.path().join("big")).await;
    let j = crate::support::wait_for(&e, id, 20, |j| !j.state.is_active()).await;
    assert_eq!(j.state, JobState::Error);
    let err = j.error.unwrap();
    assert_eq!(err.code, ErrorCode::BG_E_INVALID_SERVER_RESPONSE);
    assert!(err.description.contains("too large"), "{}", err.description);
    e.shutdown().await;
}

/// A name the file system cannot hold is refused when the file is added, not after the whole
/// file has downloaded and Complete cannot rename it; so is a range that ends past 2^63.
#[test]
fn impossible_names_and_ranges_are_refused_at_add_file() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    let id = cli.ok(&["create", "names"]).trim().to_owned();
    let long = dir.path().join("n".repeat(256));
    let out = cli.run(&[
        "add-file",
        &id,
        "http://127.0.0.1:9/f",
        long.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("256 bytes long"));
    let dest = dir.path().join("r");
    let out = cli.run(&[
        "add-file",
        &id,
        "http://127.0.0.1:9/f",
        dest.to_str().unwrap(),
        "--ranges",
        "18446744073709551000:1000",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("2^63"));
    let j = cli.json(&["info", &id, "--json"]);
    assert_eq!(j["files_total"], 0, "nothing was added: {j}");
}

/// A file counts as completed only once durable, but then at once: its FileTransferred event
/// and its completed flag do not wait for the next, slower file of the job to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_file_is_announced_while_the_next_one_moves() {
    use ebb::{Event, JobType, NewFile};

    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put("/small", Resource::new(data(10_000, 95)));
    origin.put("/slow", Resource::new(data(2_000_000, 96)).rate(400_000));
    let e = crate::support::engine(dir.path()).await;
    let mut events = e.subscribe();
    let id = e.create_job("two", JobType::Download).await.unwrap();
    let files = vec![
        NewFile::new(origin.url("/small"), dir.path().join("small")),
        NewFile::new(origin.url("/slow"), dir.path().join("slow")),
    ];
    e.add_files(id, files).await.unwrap();
    e.resume(id).await.unwrap();
    let announced = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(Event::FileTransferred { file_index: 0, .. }) = events.recv().await {
                return;
            }
        }
    })
    .await;
    assert!(announced.is_ok(), "file 0 was not announced");
    let j = e.job(id).await.unwrap();
    assert!(j.files[0].completed, "{j:?}");
    assert!(
        !j.files[1].completed && j.files[1].bytes_transferred < 2_000_000,
        "the slow file was still moving: {:?}",
        j.files[1]
    );
    e.cancel(id).await.unwrap();
    e.shutdown().await;
}
