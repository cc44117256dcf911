//! End-to-end integrity: a file may carry the SHA-256 its bytes must have, the server's
//! `Repr-Digest`/`Content-Digest`/`Digest` is checked too, the hash is carried across
//! checkpoints, and bytes that fail a check are never Transferred.

use ebb::{Engine, ErrorCode, ErrorContext, JobId, JobState, JobType, NewFile, Sha256Digest};
use sha2::Digest as _;

use crate::support::origin::{Fault, Origin, Resource};
use crate::support::{self, data, suspend_after, wait_for, wait_state};

fn sha256(bytes: &[u8]) -> Sha256Digest {
    Sha256Digest(sha2::Sha256::digest(bytes).into())
}

async fn job(e: &Engine, file: NewFile) -> JobId {
    let id = e.create_job("digest", JobType::Download).await.unwrap();
    e.add_files(id, vec![file]).await.unwrap();
    e.resume(id).await.unwrap();
    id
}

/// GET requests the origin answered with a whole body (200) or a part (206).
fn bodies(origin: &Origin, path: &str) -> usize {
    origin
        .log(path)
        .iter()
        .filter(|r| matches!(r.status, 200 | 206))
        .count()
}

#[tokio::test]
async fn an_expected_digest_is_verified_and_a_wrong_one_fails_after_one_restart() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(300_000, 70);
    origin.put("/ok", Resource::new(body.clone()));
    origin.put("/bad", Resource::new(body.clone()));
    let e = support::engine(dir.path()).await;
    let dest = dir.path().join("ok");
    let want = sha256(&body);
    let id = job(&e, NewFile::new(origin.url("/ok"), &dest).with_sha256(want)).await;
    let j = wait_state(&e, id, JobState::Transferred, 20).await;
    assert_eq!(j.files[0].verified_sha256, Some(want));
    e.complete(id).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);

    let wrong = sha256(b"something else");
    let id = job(
        &e,
        NewFile::new(origin.url("/bad"), dir.path().join("bad")).with_sha256(wrong),
    )
    .await;
    let j = wait_for(&e, id, 20, |j| !j.state.is_active()).await;
    assert_eq!(j.state, JobState::Error);
    let err = j.error.unwrap();
    assert_eq!(
        (err.code, err.context),
        (ErrorCode::E_DIGEST_MISMATCH, ErrorContext::RemoteFile)
    );
    assert!(
        err.description.contains(&want.to_string()),
        "{}",
        err.description
    );
    assert_eq!((j.files_transferred, j.bytes_transferred), (0, 0));
    assert_eq!(bodies(&origin, "/bad"), 2, "restarted once, then gave up");
    e.shutdown().await;
}

/// A server that keeps its ETag and Last-Modified for new content of the same size (nginx's
/// ETag is mtime-size): without a digest, the resume would join old and new bytes. Its
/// `Repr-Digest` changed, so the file starts over and ends as the new content.
#[tokio::test]
async fn a_changed_file_with_the_same_etag_is_caught_by_the_servers_digest() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let (old, new) = (data(400_000, 71), data(400_000, 72));
    let mut r = Resource::new(old).rate(400_000);
    r.repr_digest = true;
    origin.put("/f", r);
    let e = support::engine(dir.path()).await;
    let dest = dir.path().join("f");
    let id = job(&e, NewFile::new(origin.url("/f"), &dest)).await;
    suspend_after(&e, id, 100_000).await;
    origin.update("/f", |r| {
        r.body.clone_from(&new);
        r.rate = None;
    });
    e.resume(id).await.unwrap();
    let j = wait_state(&e, id, JobState::Transferred, 20).await;
    assert_eq!(j.files[0].verified_sha256, Some(sha256(&new)));
    e.complete(id).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), new);
    e.shutdown().await;
}

/// A 206 that names the asked-for offset but sends bytes from 0: only a digest sees it. The
/// file fails its check, starts over once, and ends byte-identical.
#[tokio::test]
async fn a_206_with_bytes_from_the_start_is_caught_and_fetched_again() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(400_000, 73);
    let mut r = Resource::new(body.clone()).rate(400_000);
    r.repr_digest = true;
    origin.put("/s", r);
    let e = support::engine(dir.path()).await;
    let dest = dir.path().join("s");
    let id = job(&e, NewFile::new(origin.url("/s"), &dest)).await;
    suspend_after(&e, id, 100_000).await;
    origin.update("/s", |r| {
        r.rate = None;
        r.fault = Some(Fault::ShiftedBody206);
        r.fault_times = 1;
    });
    e.resume(id).await.unwrap();
    let j = wait_state(&e, id, JobState::Transferred, 20).await;
    assert_eq!(j.files[0].verified_sha256, Some(sha256(&body)));
    e.complete(id).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    let statuses: Vec<u16> = origin.log("/s").iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [200, 206, 200],
        "the shifted 206, then the file again"
    );
    e.shutdown().await;
}

/// A close-delimited 200 cut short looks complete to HTTP; the expected digest does not.
#[tokio::test]
async fn a_close_delimited_body_cut_short_is_caught_by_the_expected_digest() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(200_000, 74);
    let mut r = Resource::new(body.clone()).fault(Fault::TruncateAfter(150_000), 1);
    r.close_delimited = true;
    origin.put("/c", r);
    let e = support::engine(dir.path()).await;
    let dest = dir.path().join("c");
    let id = job(
        &e,
        NewFile::new(origin.url("/c"), &dest).with_sha256(sha256(&body)),
    )
    .await;
    wait_state(&e, id, JobState::Transferred, 20).await;
    e.complete(id).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(bodies(&origin, "/c"), 2);
    e.shutdown().await;
}

/// The running hash is saved with each checkpoint: after a suspend and a new engine, the file
/// resumes with a range and is verified without being read again.
#[tokio::test]
async fn the_hash_state_is_carried_across_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(600_000, 75);
    origin.put("/h", Resource::new(body.clone()).rate(600_000));
    let dest = dir.path().join("h");
    let want = sha256(&body);
    let e = support::engine(dir.path()).await;
    let id = job(&e, NewFile::new(origin.url("/h"), &dest).with_sha256(want)).await;
    let kept = suspend_after(&e, id, 200_000).await;
    e.shutdown().await;
    drop(e);
    let db = rusqlite::Connection::open(dir.path().join("data/ebb.db")).unwrap();
    let (state, expected): (Vec<u8>, String) = db
        .query_row(
            "SELECT hash_state, expected_sha256 FROM files WHERE job_id = ?1",
            [id.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    drop(db);
    assert_eq!(expected, want.to_string());
    let covered = u64::from_le_bytes(state[..8].try_into().unwrap());
    assert_eq!(
        covered, kept,
        "the saved hash covers exactly the durable bytes"
    );

    origin.update("/h", |r| r.rate = None);
    let e = support::engine(dir.path()).await;
    e.resume(id).await.unwrap();
    let j = wait_state(&e, id, JobState::Transferred, 20).await;
    assert_eq!(j.files[0].verified_sha256, Some(want));
    let last = origin.log("/h").pop().unwrap();
    assert_eq!(
        last.range.as_deref(),
        Some(format!("bytes={kept}-").as_str())
    );
    e.complete(id).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    e.shutdown().await;
}

/// Through the CLI: `URL#sha256=HEX` and `add-file --sha256`; `files` shows the verified digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_takes_a_digest_and_shows_it_verified() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(50_000, 76);
    origin.put("/t", Resource::new(body.clone()));
    let cli = support::Cli::new(dir.path());
    let want = sha256(&body);
    let dest = dir.path().join("t");
    let url = format!("{}#sha256={want}", origin.url("/t"));
    cli.ok(&["transfer", &url, dest.to_str().unwrap()]);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert!(origin.log("/t").iter().all(|r| !r.path.contains('#')));

    let id = cli.ok(&["create", "d"]).trim().to_owned();
    let other = dir.path().join("t2");
    cli.ok(&[
        "add-file",
        &id,
        &origin.url("/t"),
        other.to_str().unwrap(),
        "--sha256",
        &want.to_string(),
    ]);
    cli.ok(&["resume", &id, "--wait"]);
    let files = cli.ok(&["files", &id]);
    assert!(
        files.contains(&format!("sha256 {want} (verified)")),
        "{files}"
    );
    let j = cli.json(&["info", &id, "--json"]);
    assert_eq!(j["files"][0]["verified_sha256"], want.to_string());
    let out = cli.run(&[
        "add-file",
        &id,
        &origin.url("/t"),
        "/tmp/x",
        "--sha256",
        "abc",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a malformed digest is bad usage"
    );
}
