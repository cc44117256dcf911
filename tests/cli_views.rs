//! What the command line shows: progress and monitors under a pseudo-terminal, one spelling
//! per value, help, completions and man pages, and a downloader's basics.

use crate::support::origin::{Fault, Origin, Resource};
use crate::support::pty::Pty;
use crate::support::{Cli, data, stderr, temp_files};

/// A stalled transfer shows no absurd ETA, and a size not known yet no full bar.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_progress_bar_says_nothing_it_does_not_know() {
    let origin = Origin::start().await;
    origin.put(
        "/stall",
        Resource::new(data(200_000, 5)).fault(Fault::StallAfter(50_000), 1),
    );
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    let dest = dir.path().join("stall.bin");
    let url = origin.url("/stall");
    let mut term = Pty::spawn(&cli, &["transfer", &url, dest.to_str().unwrap()]);
    // Moving, then stalled: the rate and the ETA give way to `-`.
    term.wait_for("bytes moving", |s| s.contains("KiB/195.31 KiB"));
    term.wait_for("the stall", |s| s.contains("48.83 KiB/195.31 KiB - eta -"));
    term.ctrl_c();
    let (code, all) = term.finish();
    assert_eq!(code, Some(130), "{all}");
    // Before its size is known a job shows `?`, never a full bar at 0 B of 0 B.
    assert!(!all.contains("0 B/0 B"), "{all}");
    for eta in all.split("eta ").skip(1) {
        let value: String = eta.chars().take_while(|c| !c.is_whitespace()).collect();
        assert!(value == "-" || !value.contains('y'), "eta {value}: {all}");
    }
}

/// `ebb monitor` draws a live table with a header, rate, percentage, ETA and reason;
/// `bitsadmin /monitor` draws BITSAdmin's own lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitors_are_live_views() {
    let origin = Origin::start().await;
    origin.put("/slow", Resource::new(data(2_000_000, 6)).rate(100_000));
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::daemon(dir.path());
    let out = cli.run(&["create", "--priority", "foreground", "moving"]);
    let _daemon = crate::support::Started(crate::support::started_pid(&stderr(&out)).unwrap());
    let id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let dest = dir.path().join("slow.bin");
    cli.ok(&[
        "add-file",
        &id,
        &origin.url("/slow"),
        dest.to_str().unwrap(),
    ]);
    cli.ok(&["resume", &id]);
    cli.ok(&["create", "held"]);

    let mut term = Pty::spawn(&cli, &["monitor", "--refresh", "300ms"]);
    let screen = term.wait_for("a rate", |s| s.contains("KiB/s") && s.contains('%'));
    term.ctrl_c();
    let (code, _) = term.finish();
    assert_eq!(code, Some(0));
    assert!(
        screen.contains("\x1b[2J"),
        "a terminal is redrawn: {screen:?}"
    );
    assert!(screen.contains("ebb monitor: 2 jobs"), "{screen}");
    for column in [
        "STATE",
        "PRIORITY",
        "DONE",
        "RATE",
        "ETA",
        "NAME (WHY IT WAITS)",
    ] {
        assert!(screen.contains(column), "{column}: {screen}");
    }
    assert!(
        screen.contains("(suspended: waits to be resumed)"),
        "{screen}"
    );
    assert!(screen.contains("transferring     foreground"), "{screen}");

    let mut term = Pty::spawn(&cli, &["bitsadmin", "/monitor", "/refresh", "1"]);
    let screen = term.wait_for("BITSAdmin's lines", |s| s.contains("'moving' TRANSFERRING"));
    term.ctrl_c();
    term.finish();
    assert!(
        screen.contains("MONITORING BACKGROUND COPY MANAGER(1 second refresh)"),
        "{screen}"
    );
    assert!(screen.contains("'held' SUSPENDED 0 / 0 0 / 0"), "{screen}");
    assert!(
        screen.contains(&format!("{{{}}}", id.to_uppercase())),
        "{screen}"
    );
}

/// One spelling per value: what `info` and `list` print is what the flags take; JSON keeps
/// snake_case; durations parse alike everywhere; no Rust debug text.
#[test]
fn one_value_one_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    let id = cli
        .ok(&[
            "create",
            "--type",
            "upload-reply",
            "--priority",
            "low",
            "spelled",
        ])
        .trim()
        .to_owned();
    cli.ok(&[
        "set",
        &id,
        "--max-download-time",
        "10m",
        "--min-retry-delay",
        "1h",
        "--no-progress-timeout",
        "90",
        "--proxy",
        "override:http://127.0.0.1:3128;localhost",
        "--max-rate",
        "500KB/s",
        "--insecure",
        "on",
    ]);
    let info = cli.ok(&["info", &id]);
    for line in [
        "type:                  upload-reply",
        "state:                 suspended",
        "priority:              low",
        "max download time:     10m",
        "min retry delay:       1h",
        "no progress timeout:   1m 30s",
        "proxy:                 override:http://127.0.0.1:3128;localhost",
        "max rate:              500KB/s",
        "security flags:        0x1e",
    ] {
        assert!(info.contains(line), "{line}: {info}");
    }
    assert!(
        !info.contains("Override {") && !info.contains("upload_reply"),
        "{info}"
    );
    // What is shown is taken back as it is.
    cli.ok(&[
        "set",
        &id,
        "--proxy",
        "override:http://127.0.0.1:3128;localhost",
    ]);
    let list = cli.ok(&["list"]);
    assert!(list.contains("suspended        low"), "{list}");
    let j = cli.json(&["info", &id, "--json"]);
    assert_eq!(
        (&j["type"], &j["state"]),
        (&"upload_reply".into(), &"suspended".into())
    );
    assert_eq!(j["maximum_download_time"], 600);
    cli.ok(&["set", &id, "--insecure", "off"]);
    assert_eq!(cli.json(&["info", &id, "--json"])["security_flags"], 0);
}

/// Every argument has a line in `--help`; completions for four shells and man pages come from
/// the same definitions; `bitsadmin /?` and `/HELP` list what is supported.
#[test]
fn help_completions_and_man_pages() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    let help = cli.ok(&["transfer", "--help"]);
    assert!(
        help.contains("Examples:") && help.contains("-o, --output <FILE>"),
        "{help}"
    );
    // The verb's own options, and where the engine runs; the engine's settings only in
    // `ebb --help`, before the verb.
    assert!(!help.contains("--max-background-jobs"), "{help}");
    assert!(cli.ok(&["--help"]).contains("Engine settings"));
    for (shell, says) in [
        ("bash", "_ebb()"),
        ("zsh", "#compdef ebb"),
        ("fish", "complete -c ebb"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let script = cli.ok(&["completions", shell]);
        assert!(
            script.contains(says) && script.contains("transfer"),
            "{shell}"
        );
    }
    assert!(cli.ok(&["man"]).starts_with(".ie"));
    let pages = dir.path().join("man");
    cli.ok(&["man", "--dir", pages.to_str().unwrap()]);
    let transfer = std::fs::read_to_string(pages.join("ebb-transfer.1")).unwrap();
    assert!(transfer.contains("output\\-dir"), "{transfer}");
    for word in ["/?", "/HELP", "/help"] {
        let usage = cli.ok(&["bitsadmin", word]);
        assert!(
            usage.contains("USAGE: BITSADMIN") && usage.contains("/TRANSFER <job name>"),
            "{usage}"
        );
        assert!(
            !usage.contains("/GETHELPERTOKENSID"),
            "only what ebb carries out"
        );
    }
    // A closed pipe ends a command quietly, never with a panic.
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            &format!(
                "{:?} completions bash | head -c 10",
                crate::support::ebb_bin()
            ),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        stderr(&out)
    );
}

/// A downloader's basics: a name from the URL, `-o`, `--output-dir`, `--create-dirs`, an
/// existing file kept unless `--overwrite`, `-q`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downloaders_basics() {
    let origin = Origin::start().await;
    origin.put("/a/one.bin", Resource::new(data(3000, 1)));
    origin.put("/a/two%20words.txt", Resource::new(data(2000, 2)));
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    let here = |args: &[&str]| {
        let mut c = cli.command(args);
        c.current_dir(dir.path());
        c.output().unwrap()
    };
    let out = here(&["transfer", "-q", &origin.url("/a/one.bin")]);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(dir.path().join("one.bin")).unwrap(),
        data(3000, 1)
    );

    let again = here(&["transfer", &origin.url("/a/one.bin")]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("already exists: --overwrite replaces it"));
    assert!(
        here(&["transfer", "--overwrite", &origin.url("/a/one.bin")])
            .status
            .success()
    );

    let out = here(&[
        "transfer",
        "--output-dir",
        "deep/er",
        "--create-dirs",
        &origin.url("/a/one.bin"),
        &origin.url("/a/two%20words.txt"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let deep = dir.path().join("deep/er");
    assert_eq!(
        std::fs::read(deep.join("two words.txt")).unwrap(),
        data(2000, 2)
    );
    assert!(deep.join("one.bin").exists() && temp_files(&deep).is_empty());

    let out = here(&["transfer", "-o", "named.bin", &origin.url("/a/one.bin")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("named.bin").exists());
    let missing = here(&["transfer", &origin.url("/a/one.bin"), "no/such/dir/x"]);
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
}
