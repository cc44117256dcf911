//! One large file of a foreground job over several connections (`connections`): ranged requests
//! at once into one temporary file, each split resumed from its own checkpoint, a file that
//! changes on the server fetched again whole, and background jobs left on one connection
//! unless the idle-capacity control finds one short of an idle link (never on loopback).

use ebb::{Engine, JobId, JobState, JobType, NewFile, Priority, PropertyChange, Sha256Digest};
use sha2::Digest;

use crate::support::origin::{Logged, Origin, Resource};
use crate::support::{self, data};

const SIZE: usize = 20 << 20;

fn sha256(bytes: &[u8]) -> Sha256Digest {
    Sha256Digest(sha2::Sha256::digest(bytes).into())
}

/// A job of the origin's `/big` (with the SHA-256 of its first body), at `priority` with four
/// connections, resumed.
async fn job(e: &Engine, origin: &Origin, dest: &std::path::Path, priority: Priority) -> JobId {
    let file = NewFile::new(origin.url("/big"), dest).with_sha256(sha256(&data(SIZE, 9)));
    job_of(e, file, priority).await
}

async fn job_of(e: &Engine, file: NewFile, priority: Priority) -> JobId {
    let id = e.create_job("split", JobType::Download).await.unwrap();
    e.set_property(id, PropertyChange::Priority(priority))
        .await
        .unwrap();
    e.set_property(id, PropertyChange::Connections(4))
        .await
        .unwrap();
    e.add_files(id, vec![file]).await.unwrap();
    e.resume(id).await.unwrap();
    id
}

/// `(start, end)` of a request's `Range: bytes=a-b` (`end` is `None` for `a-`).
fn range(l: &Logged) -> Option<(u64, Option<u64>)> {
    let spec = l.range.as_deref()?.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()))
}

/// The split requests in `log`: ranges with an end (a single connection's ranges are open).
fn split_requests(log: &[Logged]) -> Vec<(u64, Option<u64>)> {
    log.iter()
        .filter_map(range)
        .filter(|(_, end)| end.is_some())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreground_file_arrives_over_four_ranged_connections_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put("/big", Resource::new(data(SIZE, 9)).rate(4 << 20));
    let e = support::engine(dir.path()).await;
    let dest = dir.path().join("big");
    let id = job(&e, &origin, &dest, Priority::Foreground).await;
    support::finish(&e, id).await;
    assert!(std::fs::read(&dest).unwrap() == data(SIZE, 9));
    let info = e.job(id).await.unwrap();
    assert_eq!(info.files[0].verified_sha256, Some(sha256(&data(SIZE, 9))));

    let log = origin.log("/big");
    let closed = split_requests(&log);
    assert!(closed.len() >= 3, "no split requests: {log:?}");
    // The splits' requests were made while the first connection was still reading: all of
    // them within the time one connection alone would have taken for a quarter of the file.
    let first = log[0].at;
    let quarter = std::time::Duration::from_secs_f64((SIZE / 4) as f64 / f64::from(4 << 20));
    let early = log.iter().filter(|l| l.at - first < quarter).count();
    assert!(early >= 4, "requests: {log:?}");
    for l in &log[1..] {
        assert!(
            l.if_range.is_some(),
            "a split asked without If-Range: {l:?}"
        );
    }
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_job_keeps_to_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put("/big", Resource::new(data(SIZE, 9)).rate(16 << 20));
    let e = support::engine(dir.path()).await;
    let dest = dir.path().join("big");
    let id = job(&e, &origin, &dest, Priority::Normal).await;
    support::finish(&e, id).await;
    assert!(std::fs::read(&dest).unwrap() == data(SIZE, 9));
    assert_eq!(origin.log("/big").len(), 1, "{:?}", origin.log("/big"));
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_split_goes_on_from_its_own_checkpoint_in_the_next_engine() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put("/big", Resource::new(data(SIZE, 9)).rate(2 << 20));
    let e = support::engine(dir.path()).await;
    let dest = dir.path().join("big");
    let id = job(&e, &origin, &dest, Priority::Foreground).await;
    let kept = support::suspend_after(&e, id, 6 << 20).await;
    assert_eq!(e.job(id).await.unwrap().state, JobState::Suspended);
    // The splits are read back from the queue by the next engine.
    e.shutdown().await;
    drop(e);
    let e = support::engine(dir.path()).await;
    let before = origin.log("/big").len();
    support::finish(&e, id).await;
    assert!(std::fs::read(&dest).unwrap() == data(SIZE, 9));

    let after: Vec<_> = origin.log("/big").split_off(before);
    // The splits go on where each stood: closed ranges, none from the first byte, none for
    // bytes a split had already made durable.
    let ranges: Vec<_> = after.iter().map(range).collect();
    assert!(
        ranges.len() >= 2
            && ranges
                .iter()
                .all(|r| r.is_some_and(|(_, end)| end.is_some())),
        "{after:?}"
    );
    assert!(
        ranges.iter().flatten().all(|&(start, _)| start > 0),
        "{after:?}"
    );
    let asked: u64 = ranges
        .iter()
        .flatten()
        .map(|&(a, b)| b.unwrap_or(a) + 1 - a)
        .sum();
    assert!(
        asked <= SIZE as u64 - kept + (1 << 20),
        "asked for {asked} bytes again with {kept} of {SIZE} kept: {after:?}"
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_changed_between_splits_is_fetched_again_whole() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put("/big", Resource::new(data(SIZE, 9)).rate(2 << 20));
    let e = support::engine(dir.path()).await;
    let dest = dir.path().join("big");
    let file = NewFile::new(origin.url("/big"), &dest);
    let id = job_of(&e, file, Priority::Foreground).await;
    support::suspend_after(&e, id, 4 << 20).await;
    origin.put("/big", Resource::new(data(SIZE, 10)).rate(16 << 20));
    support::finish(&e, id).await;
    assert!(std::fs::read(&dest).unwrap() == data(SIZE, 10));
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_with_connections_makes_a_foreground_job_that_splits() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put("/big", Resource::new(data(SIZE, 9)).rate(8 << 20));
    let cli = support::Cli::new(dir.path());
    let dest = dir.path().join("big");
    let low = cli.run(&[
        "transfer",
        "--connections",
        "4",
        "--priority",
        "low",
        &origin.url("/big"),
        dest.to_str().unwrap(),
    ]);
    assert_eq!(low.status.code(), Some(2));
    assert!(
        support::stderr(&low).contains("--connections is for foreground jobs"),
        "{}",
        support::stderr(&low)
    );
    cli.ok(&[
        "transfer",
        "--connections",
        "4",
        &origin.url("/big"),
        dest.to_str().unwrap(),
    ]);
    assert!(std::fs::read(&dest).unwrap() == data(SIZE, 9));
    let log = origin.log("/big");
    assert!(split_requests(&log).len() >= 3, "{log:?}");
    let jobs = cli.json(&["list", "--all", "--json"]);
    let job = jobs.as_array().unwrap().last().unwrap();
    assert_eq!(job["priority"], "foreground");
    assert_eq!(job["connections"], 4);
}

/// In a private mount namespace, an 8 MiB tmpfs receives a 20 MiB file over four connections:
/// a split's write fails with the disk full, and no split counts bytes it did not write. Once
/// there is room, the resume finishes byte-identical (bytes a split claimed without writing
/// them would be left as a hole).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_mid_split_claims_no_byte_it_did_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put("/big", Resource::new(data(SIZE, 9)).rate(16 << 20));
    let cli = support::Cli::new(dir.path());
    let small = dir.path().join("small-disk");
    std::fs::create_dir(&small).unwrap();
    let script = r#"
        set -e
        mount -t tmpfs -o size=8m tmpfs "$DISK"
        id=$("$EBB" create split-full)
        "$EBB" add-file "$id" "$URL" "$DISK/big.bin"
        "$EBB" set "$id" --no-progress-timeout 0 --priority foreground --connections 4
        if timeout 120 "$EBB" resume "$id" --wait 2> "$OUT/full.err"; then exit 3; fi
        mount -o remount,size=32m "$DISK"
        timeout 120 "$EBB" resume "$id" --wait
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
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        support::stderr(&out)
    );
    let err = std::fs::read_to_string(dir.path().join("full.err")).unwrap();
    assert!(err.contains("0x80070070"), "{err}");
    let log = origin.log("/big");
    assert!(
        split_requests(&log).len() >= 3,
        "the file was split: {log:?}"
    );
    assert!(std::fs::read(dir.path().join("big.bin")).unwrap() == data(SIZE, 9));
}
