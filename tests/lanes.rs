//! A download's files fetched several at a time: they overlap, yet count as transferred in the
//! job's order, and the first failure stops the others without losing their progress.

use std::path::Path;

use ebb::{Engine, Event, JobId, JobState, JobType, NewFile};

use crate::support::{self, origin::Origin, origin::Resource};

const SLOW: usize = 256 * 1024;
const SMALL: usize = 16 * 1024;

/// A job of the origin's files `/NAME` into `dir/NAME`, resumed.
async fn start(e: &Engine, origin: &Origin, dir: &Path, names: &[&str]) -> JobId {
    let id = e.create_job("lanes", JobType::Download).await.unwrap();
    let files = names
        .iter()
        .map(|n| NewFile::new(origin.url(&format!("/{n}")), dir.join(n)))
        .collect();
    e.add_files(id, files).await.unwrap();
    e.resume(id).await.unwrap();
    id
}

#[tokio::test]
async fn later_files_finish_while_the_first_streams_but_count_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put(
        "/slow",
        Resource::new(support::data(SLOW, 1)).rate(32 * 1024),
    );
    origin.put("/a", Resource::new(support::data(SMALL, 2)));
    origin.put("/b", Resource::new(support::data(SMALL, 3)));
    let e = support::engine(dir.path()).await;
    let mut events = e.subscribe();
    let names = ["slow", "a", "b"];
    let id = start(&e, &origin, dir.path(), &names).await;

    // Both small files have all their bytes while the slow one is still streaming...
    let mid = support::wait_for(&e, id, 30, |j| {
        j.state == JobState::Transferred
            || j.files[1..]
                .iter()
                .all(|f| f.bytes_transferred == SMALL as u64)
    })
    .await;
    assert!(
        mid.files[0].bytes_transferred < SLOW as u64,
        "the small files waited for the slow one: {:?}",
        mid.files
    );
    // ...yet nothing counts as transferred before the first file does.
    assert_eq!(mid.files_transferred, 0, "{:?}", mid.files);
    assert!(mid.files.iter().all(|f| !f.completed), "{:?}", mid.files);

    support::wait_state(&e, id, JobState::Transferred, 30).await;
    let mut order = Vec::new();
    while let Ok(ev) = events.try_recv() {
        if let Event::FileTransferred { job_id, file_index } = ev
            && job_id == id
        {
            order.push(file_index);
        }
    }
    assert_eq!(order, [0, 1, 2]);
    e.complete(id).await.unwrap();
    for (i, n) in names.iter().enumerate() {
        let want = support::data(if i == 0 { SLOW } else { SMALL }, i as u8 + 1);
        assert!(std::fs::read(dir.path().join(n)).unwrap() == want, "{n}");
    }
    e.shutdown().await;
}

#[tokio::test]
async fn a_failing_file_lets_those_before_it_finish_and_stops_those_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    for (name, seed) in [("before", 1), ("after", 3)] {
        origin.put(
            &format!("/{name}"),
            Resource::new(support::data(SLOW, seed)).rate(64 * 1024),
        );
    }
    let e = support::engine(dir.path()).await;
    let names = ["before", "missing", "after"];
    let id = start(&e, &origin, dir.path(), &names).await;

    let failed = support::wait_state(&e, id, JobState::Error, 30).await;
    let error = failed.error.as_ref().unwrap();
    assert_eq!(error.file.as_ref().map(|f| f.index), Some(1), "{error:?}");
    // The file before the failing one finished, as it would have one file at a time...
    assert!(failed.files[0].completed, "{:?}", failed.files);
    assert_eq!(failed.files_transferred, 1);
    // ...and the one after it was stopped, keeping what it had.
    assert!(!failed.files[2].completed, "{:?}", failed.files);
    let kept = failed.files[2].bytes_transferred;
    assert!(kept < SLOW as u64);

    origin.put("/missing", Resource::new(support::data(SMALL, 2)));
    support::finish(&e, id).await;
    for (i, n) in names.iter().enumerate() {
        let want = support::data(if i == 1 { SMALL } else { SLOW }, i as u8 + 1);
        assert!(std::fs::read(dir.path().join(n)).unwrap() == want, "{n}");
    }
    // The stopped file went on from its checkpoint rather than from the start.
    let ranges: Vec<_> = origin
        .log("/after")
        .into_iter()
        .filter_map(|l| l.range)
        .collect();
    assert!(
        kept == 0 || !ranges.is_empty(),
        "no resumed request: {ranges:?}"
    );
    e.shutdown().await;
}
