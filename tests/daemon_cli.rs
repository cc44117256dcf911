//! The real `ebb` and `ebbd` together: the CLI starts the daemon, hands it its settings, and
//! its verbs go through it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ebb::{Backend, Client};

use crate::support::origin::{Origin, Resource};
use crate::support::{self, Started, data, spawn_ebbd, started_pid, stop_daemon};

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
    other_verbs_through_the_daemon(&cli, &origin, dir.path());
    monitor_shows_a_line_per_job(&cli);
    stop_daemon(pid);
}

/// The other verbs of the core issue, the same through the daemon.
fn other_verbs_through_the_daemon(cli: &support::Cli, origin: &Origin, dir: &Path) {
    let v = cli.ok(&["create", "verbs"]).trim().to_owned();
    let (vb, vc) = (dir.join("vb"), dir.join("vc"));
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
}

/// `monitor`: the bitsadmin-style header and a line per job, until Ctrl-C.
fn monitor_shows_a_line_per_job(cli: &support::Cli) {
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
        text.contains("ebb monitor: ") && text.contains("\"watched\""),
        "{text}"
    );
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
