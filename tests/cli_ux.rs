//! The command line as a person meets it: one test per finding of the CLI issue, through the
//! real binary; what a terminal shows is read under a pseudo-terminal.

use crate::support::origin::{Fault, Origin, Resource};
use crate::support::pty::Pty;
use crate::support::{Cli, Started, data, started_pid, stderr, temp_files};

/// Ctrl-C on a terminal, then the same command again: it goes on with the job it started,
/// from its checkpoint, completes it, and leaves no temporary file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_transfer_again_finishes_what_ctrl_c_left() {
    let origin = Origin::start().await;
    let body = data(600_000, 3);
    origin.put("/big.bin", Resource::new(body.clone()).rate(150_000));
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    let dest = dir.path().join("big.bin");
    let url = origin.url("/big.bin");
    let args = ["transfer", url.as_str(), dest.to_str().unwrap()];
    let mut term = Pty::spawn(&cli, &args);
    // The bar shows bytes moving before the interruption.
    term.wait_for("bytes moving", |s| s.contains("KiB/"));
    term.ctrl_c();
    let (code, screen) = term.finish();
    assert_eq!(code, Some(130), "{screen}");
    assert!(
        screen.contains("run the same `ebb transfer` again to finish it")
            && screen.contains("drops it"),
        "{screen}"
    );
    assert!(!dest.exists());
    assert_eq!(temp_files(dir.path()).len(), 1, "the progress is kept");

    origin.update("/big.bin", |r| r.rate = None);
    let out = cli.run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("going on with job"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert!(temp_files(dir.path()).is_empty());
    // The second run asked only for what was missing.
    let log = origin.log("/big.bin");
    let resumed = log.last().unwrap();
    assert!(
        resumed.range.as_deref().is_some_and(|r| r != "bytes=0-"),
        "{log:?}"
    );
    // One job did it all.
    assert_eq!(
        cli.json(&["list", "--all", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// `--timeout` gives up cleanly: the job is cancelled, no file is left, exit 124; `wait
/// --timeout` exits 124 too, and leaves the job be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_gives_up_cleanly_with_its_own_exit_code() {
    let origin = Origin::start().await;
    origin.put(
        "/busy",
        Resource::new(data(1000, 1)).fault(Fault::Status(503, Some("1".into())), 1000),
    );
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    let dest = dir.path().join("busy");
    let out = cli.run(&[
        "transfer",
        "--timeout",
        "2s",
        &origin.url("/busy"),
        dest.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    let said = stderr(&out);
    // Each transient error is said, with when it tries again.
    assert!(
        said.contains("retry at ") && said.contains("(attempt 2)"),
        "{said}"
    );
    assert!(
        said.contains("gave up after 2s") && said.contains("cancelled"),
        "{said}"
    );
    assert!(!dest.exists() && temp_files(dir.path()).is_empty());
    let jobs = cli.json(&["list", "--all", "--json"]);
    assert_eq!(jobs[0]["state"], "cancelled");

    let id = cli.ok(&["create", "waits"]).trim().to_owned();
    cli.ok(&[
        "add-file",
        &id,
        &origin.url("/busy"),
        dest.to_str().unwrap(),
    ]);
    cli.ok(&["resume", &id]);
    let out = cli.run(&["wait", &id, "--timeout", "1s"]);
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(stderr(&out).contains("goes on"), "{}", stderr(&out));

    // A transfer that goes on with an earlier job keeps that job's progress when it gives up.
    origin.put("/slow", Resource::new(data(400_000, 2)).rate(50_000));
    let slow = dir.path().join("slow.bin");
    let earlier = cli.ok(&["create", "earlier"]).trim().to_owned();
    cli.ok(&[
        "add-file",
        &earlier,
        &origin.url("/slow"),
        slow.to_str().unwrap(),
    ]);
    let url = origin.url("/slow");
    let out = cli.run(&["transfer", "--timeout", "2s", &url, slow.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("suspended with its progress"),
        "{}",
        stderr(&out)
    );
    let j = cli.json(&["info", &earlier, "--json"]);
    assert_eq!(j["state"], "suspended");
    assert!(j["bytes_transferred"].as_u64().unwrap() > 0, "{j}");
}

/// Two commands that each start ebbd at once: both are served (one daemon wins, the other
/// says nothing of its loss).
#[test]
fn two_commands_starting_ebbd_at_once_both_work() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::daemon(dir.path());
    let spawn = |name: &str| {
        cli.command(&["create", name])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (one, two) = (spawn("one"), spawn("two"));
    let (one, two) = (
        one.wait_with_output().unwrap(),
        two.wait_with_output().unwrap(),
    );
    // The daemon that lost has exited (and its PID may be anyone's now): only a live ebbd is
    // stopped at the end.
    let is_ebbd = |pid: &u32| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("ebbd"))
    };
    let _daemons: Vec<Started> = [&one, &two]
        .iter()
        .filter_map(|o| started_pid(&stderr(o)))
        .filter(is_ebbd)
        .map(Started)
        .collect();
    assert!(one.status.success(), "{}", stderr(&one));
    assert!(two.status.success(), "{}", stderr(&two));
    assert_eq!(cli.json(&["list", "--json"]).as_array().unwrap().len(), 2);
}

/// Why a job waits, in `info`, `list` and `--json`, with the time it tries next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_says_why_it_waits() {
    let origin = Origin::start().await;
    origin.put(
        "/busy",
        Resource::new(data(1000, 1)).fault(Fault::Status(503, None), 1000),
    );
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::daemon(dir.path());
    let out = cli.run(&["create", "held"]);
    let _daemon = Started(started_pid(&stderr(&out)).unwrap());
    let held = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let j = cli.json(&["info", &held, "--json"]);
    assert_eq!(j["reason"]["kind"], "suspended");
    assert!(
        cli.ok(&["info", &held])
            .contains("waiting:               suspended")
    );

    let busy = cli.ok(&["create", "busy"]).trim().to_owned();
    let dest = dir.path().join("busy.bin");
    cli.ok(&[
        "add-file",
        &busy,
        &origin.url("/busy"),
        dest.to_str().unwrap(),
    ]);
    cli.ok(&["set", &busy, "--min-retry-delay", "10m"]);
    cli.ok(&["resume", &busy]);
    let j = cli.poll_info(&busy, |j| j["state"] == "transient_error");
    assert_eq!(j["reason"]["kind"], "retry", "{j}");
    assert_eq!(j["reason"]["attempt"], 2, "{j}");
    assert!(j["reason"]["next_try_at"].is_string(), "{j}");
    let info = cli.ok(&["info", &busy]);
    assert!(
        info.contains("retry at ") && info.contains("(attempt 2) after: "),
        "{info}"
    );
    let list = cli.ok(&["list"]);
    assert!(list.starts_with("ID "), "{list}");
    assert!(
        list.contains("transient-error") && list.contains("(retry at "),
        "{list}"
    );

    // A cap of 0 on the job itself: running, and paused, and saying so.
    let paused = cli.ok(&["create", "paused"]).trim().to_owned();
    origin.put("/file", Resource::new(data(10_000, 2)));
    let dest = dir.path().join("paused.bin");
    cli.ok(&[
        "add-file",
        &paused,
        &origin.url("/file"),
        dest.to_str().unwrap(),
    ]);
    cli.ok(&[
        "set",
        &paused,
        "--max-rate",
        "0",
        "--priority",
        "foreground",
    ]);
    cli.ok(&["resume", &paused]);
    let j = cli.poll_info(&paused, |j| j["reason"]["kind"] == "paused");
    assert_eq!(j["reason"]["by"], "job", "{j}");

    // `ebb daemon stop` stops it, and says so; the jobs wait in the queue for the next start.
    let out = cli.run(&["daemon", "stop"]);
    assert!(stderr(&out).contains("ebbd stopped"), "{}", stderr(&out));
    assert!(!cli.socket.exists());
    let out = cli.run(&["daemon", "stop"]);
    assert!(out.status.success() && stderr(&out).contains("no ebbd answers"));
    let j = cli.json(&["--embedded", "info", &paused, "--json"]);
    assert_eq!(j["state"], "queued", "{j}");
}

/// A daemon that cannot start says why at once, with its exit code, and logs it; a socket of
/// another user is refused in those words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_startup_failure_reaches_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::daemon(dir.path());
    // An embedded engine holds the data directory.
    let origin = Origin::start().await;
    origin.put("/slow", Resource::new(data(400_000, 4)).rate(20_000));
    let holder_cli = Cli::new(dir.path());
    let dest = dir.path().join("slow.bin");
    let mut holder = holder_cli
        .command(&["transfer", &origin.url("/slow"), dest.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let log = cli.data_dir.join("ebbd.log");
    // Wait until it holds the lock (its first request reached the origin).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while origin.log("/slow").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the embedded transfer never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = cli.run(&["list"]);
    let _ = holder.kill();
    let _ = holder.wait();
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("ebbd could not start: data directory") && said.contains("in use"),
        "{said}"
    );
    assert!(!said.contains("did not answer"), "{said}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("ebbd could not start"), "{logged}");

    // A configuration with a typo: the error names the key, exit 2.
    let config = dir.path().join("config");
    std::fs::create_dir_all(config.join("ebb")).unwrap();
    std::fs::write(
        config.join("ebb/ebbd.toml"),
        "[engine]\nmax_backgound_jobs = 2\n",
    )
    .unwrap();
    let out = cli
        .command(&["list"])
        .env("XDG_CONFIG_HOME", &config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown field `max_backgound_jobs`"),
        "{}",
        stderr(&out)
    );
}

/// The test runs as root (as the daemon tests do, which drop to uid 65534 with `setpriv`).
#[test]
fn a_socket_of_another_user_is_refused_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::daemon(dir.path());
    std::fs::create_dir_all(cli.socket.parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&cli.socket).unwrap());
    std::os::unix::fs::chown(&cli.socket, Some(65534), Some(65534)).unwrap();
    let out = cli.run(&["list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("permission denied") && stderr(&out).contains("uid 65534"),
        "{}",
        stderr(&out)
    );
}

/// A self-signed server: refused in words (no debug text) with the way round it; trusted with
/// `--ca-file`, with `SSL_CERT_FILE`, or accepted with `--insecure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_server_and_the_ways_to_trust_it() {
    use crate::support::certs::{Leaf, self_signed};
    use base64::Engine as _;
    // Marked as a CA, as `openssl req -x509` makes it: the case that read as debug text.
    let (chain, key) = self_signed(&Leaf {
        ca: true,
        ..Leaf::good(7)
    });
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64::engine::general_purpose::STANDARD.encode(chain[0].as_ref())
    );
    let origin = Origin::start_tls_with(chain, key).await;
    let body = data(30_000, 8);
    origin.put("/f", Resource::new(body.clone()));
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("server.pem");
    std::fs::write(&cert, pem).unwrap();
    let cli = Cli::new(dir.path());
    let url = origin.url("/f");
    let to = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();

    let out = cli.run(&["transfer", &url, &to("refused")]);
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("0x80072f0d") && said.contains("self-signed"),
        "{said}"
    );
    assert!(
        said.contains("--ca-file FILE") && said.contains("--insecure"),
        "{said}"
    );
    assert!(
        !said.contains("Other(") && !said.contains("UnknownIssuer"),
        "{said}"
    );

    let out = cli.run(&[
        "transfer",
        "--ca-file",
        cert.to_str().unwrap(),
        &url,
        &to("ca"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(to("ca")).unwrap(), body);
    let out = cli
        .command(&["transfer", &url, &to("env")])
        .env("SSL_CERT_FILE", &cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli.run(&["transfer", "--insecure", &url, &to("insecure")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bad = cli.run(&["transfer", "--ca-file", &to("ca"), &url, &to("bad")]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

/// `set-remote-name` on a file already transferred is refused: `files` never lies about where
/// the bytes came from.
#[test]
fn a_transferred_file_keeps_the_name_its_bytes_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    let source = dir.path().join("source.bin");
    std::fs::write(&source, data(5000, 9)).unwrap();
    let url = format!("file://{}", source.display());
    let id = cli.ok(&["create", "named"]).trim().to_owned();
    let dest = dir.path().join("dest.bin");
    cli.ok(&["add-file", &id, &url, dest.to_str().unwrap()]);
    cli.ok(&["resume", &id, "--wait"]);
    let out = cli.run(&["set-remote-name", &id, "0", "http://127.0.0.1:9/other"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("already transferred from file://"),
        "{}",
        stderr(&out)
    );
    assert!(cli.ok(&["files", &id]).contains(&url));
}
