//! BITSAdmin's command line through a `bitsadmin` symlink to `ebb`, in a script.

use std::path::Path;
use std::process::Command;

use crate::support::origin::{Origin, Resource};
use crate::support::{self, Started, data, started_pid, stop_daemon};

/// A script in the style of real BITSAdmin scripts: create, addfile, a notify command line
/// that runs `bitsadmin /complete`, resume, poll `/info /verbose` until the job is done; then
/// the other commands, each output kept for the checks.
const SCRIPT: &str = r#"
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bitsadmin_script_runs_to_completion() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(500_000, 65);
    origin.put("/b.bin", Resource::new(body.clone()));
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(support::ebb_bin(), bin.join("bitsadmin")).unwrap();
    let cli = support::Cli::daemon(dir.path());
    let mut sh = Command::new("sh");
    sh.args(["-c", SCRIPT]);
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
    outputs_are_bitsadmins(dir.path(), &origin, &body);
    if let Some(pid) = started_pid(&first) {
        stop_daemon(pid);
    }
}

/// What the script's commands printed, as BITSAdmin prints it.
fn outputs_are_bitsadmins(dir: &Path, origin: &Origin, body: &[u8]) {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    // The banner, then `Created job {GUID}.`
    let create = read("create.out");
    assert!(create.starts_with("\nBITSADMIN version 3.0\nBITS administration utility.\n(C) Copyright Microsoft Corp.\n\nCreated job {"), "{create:?}");
    assert_eq!(read("state.out"), "ACKNOWLEDGED");
    assert_eq!(std::fs::read(dir.join("b.bin")).unwrap(), body);
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
    assert_eq!(std::fs::read(dir.join("tr.bin")).unwrap(), body);
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
            dir.display()
        )),
        "{files:?}"
    );
}
