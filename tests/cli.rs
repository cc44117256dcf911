//! The real `ebb` binary: output contracts, exit codes, crashes.

use crate::support::origin::{Origin, Resource};
use crate::support::{Cli, data, stderr, temp_files};

/// What `info --json` always has: the model's names.
const JOB_KEYS: &[&str] = &[
    "id",
    "display_name",
    "description",
    "type",
    "state",
    "priority",
    "owner",
    "bytes_total",
    "bytes_transferred",
    "files_total",
    "files_transferred",
    "error_count",
    "error",
    "created_at",
    "modified_at",
    "completed_at",
    "files",
    "minimum_retry_delay",
    "no_progress_timeout",
    "maximum_download_time",
    "notify_flags",
    "notify_command_line",
    "custom_headers",
    "proxy",
    "credentials",
    "security_flags",
];

/// What each of its `files` always has.
const FILE_KEYS: &[&str] = &[
    "remote_url",
    "local_path",
    "bytes_total",
    "bytes_transferred",
    "completed",
];

fn has_keys(j: &serde_json::Value, keys: &[&str]) {
    for key in keys {
        assert!(j.get(key).is_some(), "missing {key} in {j}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_prints_the_id_alone_and_json_has_the_model_names() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    let out = cli.ok(&["create", "--priority", "high", "named"]);
    let id = out.trim_end_matches('\n');
    assert!(
        !id.contains(char::is_whitespace) && id.len() == 36,
        "{out:?}"
    );
    cli.ok(&[
        "add-file",
        "named",
        "http://127.0.0.1:9/f",
        dir.path().join("f").to_str().unwrap(),
    ]);
    let j = cli.json(&["info", id, "--json"]);
    has_keys(&j, JOB_KEYS);
    assert_eq!(j["id"], id);
    assert_eq!(j["state"], "suspended");
    assert_eq!(j["priority"], "high");
    assert_eq!(j["type"], "download");
    assert_eq!(j["files"][0]["remote_url"], "http://127.0.0.1:9/f");
    has_keys(&j["files"][0], FILE_KEYS);
    assert_eq!(cli.json(&["list", "--json"])[0]["id"], id);
    assert_eq!(
        cli.json(&["files", id, "--json"]).as_array().unwrap().len(),
        1
    );
    assert!(cli.json(&["error", id, "--json"]).is_null());
    cli.ok(&[
        "set",
        id,
        "--priority",
        "low",
        "--min-retry-delay",
        "7",
        "--header",
        "X-A: 1",
        "--redirect-policy",
        "disallow",
    ]);
    let j = cli.json(&["info", "named", "--json"]);
    assert_eq!(
        (j["priority"].as_str(), j["minimum_retry_delay"].as_u64()),
        (Some("low"), Some(7))
    );
    assert_eq!(j["custom_headers"][0]["name"], "X-A");
    assert_eq!(j["security_flags"], 0x200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    assert_eq!(cli.run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(cli.run(&["create"]).status.code(), Some(2));
    let id = cli.ok(&["create", "bad"]).trim().to_owned();
    let dotdot = format!("{}/x/../f", dir.path().display());
    // Values ebb refuses are bad usage (2), as clap's own refusals; an operation that fails on
    // a good request is 1.
    for (args, code) in [
        (vec!["add-file", &id, "http://127.0.0.1:9/f", &dotdot], 2),
        (vec!["add-file", &id, "ftp://127.0.0.1/f", "/tmp/f"], 2),
        (
            vec!["add-file", &id, "http://127.0.0.1:9/f", "/no/such/dir/f"],
            2,
        ),
        (vec!["set", &id, "--header", "X-Bad: a\r\nHost: b"], 2),
        (vec!["set", &id, "--proxy", "bogus"], 2),
        (vec!["set", &id, "--notify-flags", "99"], 2),
        (vec!["set", &id], 2),
        (vec!["set", &id, "--max-download-time", "soon"], 2),
        (vec!["info", "no-such-job"], 1),
        (vec!["resume", &id], 1),
    ] {
        let out = cli.run(&args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        // ebb's own refusals, or clap's for a value it parses itself.
        assert!(
            stderr(&out).starts_with("ebb: ") || stderr(&out).starts_with("error: invalid value"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let j = cli.json(&["info", &id, "--json"]);
    assert_eq!(
        (j["files_total"].as_u64(), j["state"].as_str()),
        (Some(0), Some("suspended"))
    );
    assert!(j["custom_headers"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_completes_or_cancels_on_a_permanent_error() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let (a, b) = (data(70_000, 40), data(30_000, 41));
    origin.put("/a", Resource::new(a.clone()));
    origin.put("/b", Resource::new(b.clone()));
    let cli = Cli::new(dir.path());
    let (pa, pb) = (dir.path().join("a"), dir.path().join("b"));
    cli.ok(&[
        "transfer",
        &origin.url("/a"),
        pa.to_str().unwrap(),
        &origin.url("/b"),
        pb.to_str().unwrap(),
    ]);
    assert_eq!(
        (std::fs::read(&pa).unwrap(), std::fs::read(&pb).unwrap()),
        (a, b)
    );
    let out = cli.run(&[
        "transfer",
        &origin.url("/missing"),
        dir.path().join("m").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("0x80190194"), "{}", stderr(&out));
    let jobs = cli.json(&["list", "--all", "--json"]);
    assert_eq!(
        jobs.as_array().unwrap().last().unwrap()["state"],
        "cancelled"
    );
    assert!(temp_files(dir.path()).is_empty());
    assert_eq!(
        cli.run(&["transfer", "http://127.0.0.1:9/odd", "a", "b"])
            .status
            .code(),
        Some(2)
    );
}

/// Start `ebb resume JOB --wait` on a slow file and SIGKILL it once bytes are durable.
fn crash_mid_file(cli: &Cli, origin: &Origin, id: &str) -> u64 {
    let mut child = cli.command(&["resume", id, "--wait"]).spawn().unwrap();
    let j = cli.poll_info(id, |j| j["bytes_transferred"].as_u64() > Some(600_000));
    let progress = j["bytes_transferred"].as_u64().unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!origin.log("/big").is_empty());
    progress
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_file_then_resume_finishes_with_a_ranged_request() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(3_000_000, 42);
    origin.put("/big", Resource::new(body.clone()).rate(1_000_000));
    let cli = Cli::new(dir.path());
    let dest = dir.path().join("big");
    let id = cli.ok(&["create", "crash"]).trim().to_owned();
    cli.ok(&["add-file", &id, &origin.url("/big"), dest.to_str().unwrap()]);
    crash_mid_file(&cli, &origin, &id);
    // The dead engine's job reads as Queued, with its durable progress.
    let j = cli.json(&["info", &id, "--json"]);
    assert_eq!(j["state"], "queued");
    let durable = j["bytes_transferred"].as_u64().unwrap();
    assert!(durable > 0, "{j}");
    origin.update("/big", |r| r.rate = None);
    cli.ok(&["resume", &id, "--wait"]);
    assert_eq!(cli.json(&["info", &id, "--json"])["state"], "transferred");
    cli.ok(&["complete", &id]);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    let log = origin.log("/big");
    let last = log.last().unwrap();
    assert_eq!(last.status, 206);
    assert_eq!(
        last.range.as_deref(),
        Some(format!("bytes={durable}-").as_str())
    );
    assert!(last.if_range.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_after_a_crash_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put("/big", Resource::new(data(3_000_000, 43)).rate(1_000_000));
    let cli = Cli::new(dir.path());
    let id = cli.ok(&["create", "crash"]).trim().to_owned();
    cli.ok(&[
        "add-file",
        &id,
        &origin.url("/big"),
        dir.path().join("big").to_str().unwrap(),
    ]);
    crash_mid_file(&cli, &origin, &id);
    assert_eq!(temp_files(dir.path()).len(), 1);
    cli.ok(&["cancel", &id]);
    assert!(temp_files(dir.path()).is_empty());
    assert!(!dir.path().join("big").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_verbs_work_while_another_process_runs_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put("/big", Resource::new(data(3_000_000, 44)).rate(1_000_000));
    let cli = Cli::new(dir.path());
    let id = cli.ok(&["create", "busy"]).trim().to_owned();
    cli.ok(&[
        "add-file",
        &id,
        &origin.url("/big"),
        dir.path().join("big").to_str().unwrap(),
    ]);
    let mut child = cli.command(&["resume", &id, "--wait"]).spawn().unwrap();
    cli.poll_info(&id, |j| {
        j["state"] == "transferring" && j["bytes_transferred"].as_u64() > Some(0)
    });
    cli.ok(&["list"]);
    cli.ok(&["files", &id]);
    cli.ok(&["error", &id]);
    let out = cli.run(&["suspend", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("pid {}", child.id())),
        "{}",
        stderr(&out)
    );
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(cli.json(&["info", &id, "--json"])["state"], "transferred");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_processes_see_live_progress_and_a_crash_claims_nothing_unsynced() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put("/big", Resource::new(data(3_000_000, 45)).rate(1_000_000));
    let cli = Cli::new(dir.path());
    let id = cli.ok(&["create", "live"]).trim().to_owned();
    cli.ok(&[
        "add-file",
        &id,
        &origin.url("/big"),
        dir.path().join("big").to_str().unwrap(),
    ]);
    // No checkpoint during the run: every figure another process sees is live.
    let mut child = cli
        .command(&["resume", &id, "--wait"])
        .env("EBB_CHECKPOINT_BYTES", "1000000000")
        .env("EBB_CHECKPOINT_INTERVAL", "1h")
        .spawn()
        .unwrap();
    cli.poll_info(&id, |j| j["bytes_transferred"].as_u64() > Some(300_000));
    child.kill().unwrap();
    child.wait().unwrap();
    // Nothing was checkpointed, so nothing is claimed.
    let j = cli.json(&["info", &id, "--json"]);
    assert_eq!(j["bytes_transferred"].as_u64(), Some(0), "{j}");
}

/// In a private mount namespace (no root needed where user namespaces are enabled), a 1 MiB
/// tmpfs receives a 3 MB download: the disk fills, the job stops with a clear error that keeps
/// its progress, and once there is room again it resumes and finishes byte-identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_an_error_that_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(3_000_000, 46);
    origin.put("/big", Resource::new(body.clone()));
    let cli = Cli::new(dir.path());
    let small = dir.path().join("small-disk");
    std::fs::create_dir(&small).unwrap();
    let script = r#"
        set -e
        mount -t tmpfs -o size=1m tmpfs "$DISK"
        id=$("$EBB" create full)
        "$EBB" add-file "$id" "$URL" "$DISK/big.bin"
        "$EBB" set "$id" --no-progress-timeout 0
        if "$EBB" resume "$id" --wait 2> "$OUT/full.err"; then exit 3; fi
        "$EBB" info "$id" --json > "$OUT/full.json"
        mount -o remount,size=8m "$DISK"
        "$EBB" resume "$id" --wait
        "$EBB" complete "$id"
        cp "$DISK/big.bin" "$OUT/big.bin"
    "#;
    let url = origin.url("/big");
    let out = cli.in_mount_namespace(
        script,
        &[
            ("DISK", small.as_os_str()),
            ("OUT", dir.path().as_os_str()),
            ("URL", url.as_ref()),
        ],
    );
    assert!(out.status.success(), "{}: {}", out.status, stderr(&out));
    let err = std::fs::read_to_string(dir.path().join("full.err")).unwrap();
    assert!(
        err.contains("0x80070070") && err.contains("No space left"),
        "{err}"
    );
    assert!(
        err.contains(small.to_str().unwrap()),
        "the error names the path: {err}"
    );
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("full.json")).unwrap())
            .unwrap();
    assert_eq!(
        (j["state"].as_str(), j["error"]["context"].as_str()),
        (Some("error"), Some("local_file"))
    );
    let kept = j["bytes_transferred"].as_u64().unwrap();
    assert!(kept > 0, "progress before the disk filled is kept: {j}");
    assert_eq!(std::fs::read(dir.path().join("big.bin")).unwrap(), body);
    let last = origin.log("/big").pop().unwrap();
    assert_eq!(
        last.range.as_deref(),
        Some(format!("bytes={kept}-").as_str())
    );
}
