//! The queue has one owner, and readers do not wait for it: a `list` is answered while a
//! suspend waits for its job's final checkpoint. What they see is what the store has, with the
//! live counts of the files being moved.

use std::time::Duration;

use ebb::{Backend, JobFilter, JobState, Limit, PropertyChange};

use crate::support::origin::{Origin, Resource};
use crate::support::{self, wait_for};

#[tokio::test]
async fn list_is_answered_while_a_suspend_waits_for_its_final_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("large.bin");
    std::fs::File::create(&source)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let e = support::engine(dir.path()).await;
    let dest = dir.path().join("large.out");
    let url = format!("file://{}", source.display());
    let id = support::start_job(&e, url, &dest).await;
    e.set_property(id, PropertyChange::MaxRate(Limit::BytesPerSec(2 << 20)))
        .await
        .unwrap();
    wait_for(&e, id, 20, |j| {
        j.state == JobState::Transferring && j.bytes_transferred > 0
    })
    .await;

    // Another connection takes the database's write lock: every commit, the suspend's final
    // checkpoint among them, now waits for it.
    let db = rusqlite::Connection::open(e.config().database_path()).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    let suspend = tokio::spawn({
        let e = e.clone();
        async move { e.suspend(id).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!suspend.is_finished(), "the suspend could not commit yet");

    let listed = tokio::time::timeout(Duration::from_secs(5), async {
        (
            e.jobs().await.unwrap(),
            e.job(id).await.unwrap(),
            e.find("test").await.unwrap(),
        )
    })
    .await
    .expect("reads wait for nobody's commit");
    assert_eq!(listed.0.len(), 1);
    // What readers see is what the store has: the suspend is not committed yet.
    assert_eq!(listed.1.state, JobState::Transferring);
    assert_eq!(listed.2, id);
    assert!(!suspend.is_finished(), "the list came first");

    db.execute_batch("COMMIT").unwrap();
    suspend.await.unwrap().unwrap();
    let info = e.job(id).await.unwrap();
    assert_eq!(info.state, JobState::Suspended);
    assert!(info.bytes_transferred > 0);
    e.shutdown().await;
}

/// `list` by filter on every backend the CLI uses: the engine, and the read-only view of its
/// queue that works beside it; the view refuses changes, by name.
#[tokio::test]
async fn lists_by_filter_and_a_read_only_view_beside_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let e = support::engine(dir.path()).await;
    let live = e.create_job("live", ebb::JobType::Download).await.unwrap();
    let gone = e.create_job("gone", ebb::JobType::Download).await.unwrap();
    e.cancel(gone).await.unwrap();
    let reader = ebb::QueueReader::new(e.config().data_dir.clone());
    for b in [&e as &dyn Backend, &reader] {
        // Jobs made in the same millisecond come in id order: compare as sets.
        let ids = |jobs: Vec<ebb::JobInfo>| {
            let mut ids: Vec<_> = jobs.into_iter().map(|j| j.id).collect();
            ids.sort();
            ids
        };
        let mut both = [live, gone];
        both.sort();
        assert_eq!(ids(b.list(JobFilter::default()).await.unwrap()), [live]);
        assert_eq!(ids(b.list(JobFilter::ALL).await.unwrap()), both);
        assert_eq!(b.find("gone").await.unwrap(), gone);
        assert_eq!(b.job(gone).await.unwrap().state, JobState::Cancelled);
    }
    let refused = reader.suspend(live).await.unwrap_err();
    assert!(matches!(refused, ebb::Error::NotSupported(_)), "{refused}");
    assert!(refused.to_string().contains("read-only"), "{refused}");
    e.shutdown().await;
}

/// The store's `modified_at` and first file's (bytes, completed) of job `id`.
fn stored(db: &rusqlite::Connection, id: ebb::JobId) -> (i64, u64, bool) {
    db.query_row(
        "SELECT j.modified_at, f.bytes_transferred, f.completed FROM jobs j
         JOIN files f ON f.job_id = j.id AND f.idx = 0 WHERE j.id = ?1",
        [id.to_string()],
        |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?)),
    )
    .unwrap()
}

/// While a job runs, the queue shows what its checkpoints committed, as the store has it: the
/// job's modification time moves with the bytes (BITS's `GetTimes`), never ahead of the store;
/// the running file's bytes are live, never behind it; once the run ends, the two agree.
#[tokio::test]
async fn a_running_job_shows_what_its_checkpoints_committed() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put(
        "/big",
        Resource::new(support::data(3_000_000, 47)).rate(1_000_000),
    );
    let e = support::engine(dir.path()).await;
    let id = support::start_job(&e, origin.url("/big"), &dir.path().join("big")).await;
    let started = wait_for(&e, id, 20, |j| {
        j.state == JobState::Transferring && j.bytes_transferred > 0
    })
    .await
    .modified_at;
    let db = rusqlite::Connection::open_with_flags(
        e.config().database_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let shown = e.job(id).await.unwrap();
        let (modified, bytes, _) = stored(&db, id);
        assert!(
            shown.modified_at.as_millis() <= modified,
            "ahead of the store"
        );
        let again = e.job(id).await.unwrap();
        assert!(
            again.files[0].bytes_transferred >= bytes,
            "behind the store"
        );
    }
    let shown = e.job(id).await.unwrap().modified_at;
    assert!(
        shown.as_millis() >= started.as_millis() + 1000,
        "the modification time moves with the bytes: {started} then {shown}"
    );
    e.suspend(id).await.unwrap();
    let info = e.job(id).await.unwrap();
    let (_, bytes, completed) = stored(&db, id);
    assert_eq!(
        (info.files[0].bytes_transferred, info.files[0].completed),
        (bytes, completed)
    );
    assert!(bytes > 0);
    e.shutdown().await;
}
