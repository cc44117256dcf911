//! A queue read a page at a time: every job once, in creation order, across pages, while jobs
//! come and go; the same pages from the engine, the daemon and a read-only view; and why each
//! queued job waits, on whatever page it is.

use std::path::Path;

use ebb::{
    Backend, BandwidthChange, Engine, JobFilter, JobId, JobInfo, JobPage, JobType, Limit, NewFile,
    PageCursor, PausedBy, Priority, PropertyChange, QueueReader, WaitReason,
};

use crate::daemon::InProcess;
use crate::support;
use crate::support::origin::{Origin, Resource};

/// `n` suspended download jobs of one file each (a local one, unless `url`), in the order
/// they were made.
async fn jobs(e: &Engine, dir: &Path, n: usize, url: Option<String>) -> Vec<JobId> {
    let source = dir.join("source.bin");
    std::fs::write(&source, b"page").unwrap();
    let url = url.unwrap_or_else(|| format!("file://{}", source.display()));
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id = e
            .create_job(&format!("p{i}"), JobType::Download)
            .await
            .unwrap();
        e.add_files(id, vec![NewFile::new(&url, dir.join(format!("p{i}.out")))])
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

/// Every page of `b`'s listing, `limit` at a time, with `between` run after each page.
async fn walk(b: &dyn Backend, limit: usize, mut between: impl AsyncFnMut(usize)) -> Vec<JobPage> {
    let mut pages = Vec::new();
    let mut after: Option<PageCursor> = None;
    loop {
        let page = b
            .list_page(JobFilter::default(), after, limit)
            .await
            .unwrap();
        after = page.next;
        pages.push(page);
        between(pages.len()).await;
        if after.is_none() {
            return pages;
        }
    }
}

/// The ids of every live job, as listed.
async fn listed(e: &Engine) -> Vec<JobId> {
    e.jobs().await.unwrap().iter().map(|j| j.id).collect()
}

fn ids(pages: &[JobPage]) -> Vec<JobId> {
    pages
        .iter()
        .flat_map(|p| p.jobs.iter().map(|j| j.id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_list_every_job_once_in_creation_order_while_jobs_come_and_go() {
    let dir = tempfile::tempdir().unwrap();
    let e = support::engine(dir.path()).await;
    jobs(&e, dir.path(), 1100, None).await;
    // Creation order (jobs made in one millisecond by id): the order every page keeps.
    let made = listed(&e).await;
    assert_eq!(made.len(), 1100);

    // After the first page, a job of the last page is cancelled and a new one is made.
    let (gone, mut late) = (made[1050], None);
    let pages = walk(&e, 500, async |n| {
        if n == 1 {
            e.cancel(gone).await.unwrap();
            late = Some(e.create_job("late", JobType::Download).await.unwrap());
        }
    })
    .await;
    let sizes: Vec<usize> = pages.iter().map(|p| p.jobs.len()).collect();
    assert_eq!(sizes, [500, 500, 100]);
    let mut expected: Vec<JobId> = made.iter().copied().filter(|id| *id != gone).collect();
    expected.push(late.unwrap());
    assert!(
        ids(&pages) == expected,
        "each job once, none skipped, none twice"
    );
    assert_eq!(
        pages[0].next,
        Some(PageCursor::after(&pages[0].jobs[499])),
        "a page's cursor is its last job"
    );

    // Limits: at least one job a page; the final jobs only when asked for.
    let one = e.list_page(JobFilter::default(), None, 0).await.unwrap();
    assert_eq!(one.jobs.len(), 1);
    let with_final = JobFilter {
        final_jobs: true,
        all_users: false,
    };
    let all = e.list(with_final).await.unwrap();
    assert_eq!(all.len(), 1101);
    assert!(all.iter().any(|j| j.id == gone));

    // A read-only view of the same directory, beside the engine, pages alike.
    let reader = QueueReader::new(&e.config().data_dir);
    assert!(ids(&walk(&reader, 400, async |_| {}).await) == expected);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_says_how_many_are_ahead_on_any_page() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(support::config(dir.path()).with_max_background_jobs(1))
        .await
        .unwrap();
    // Nothing moves: a background cap of 0 pauses the one job that runs.
    e.set_bandwidth(BandwidthChange {
        max_rate: Some(Limit::BytesPerSec(0)),
        ..BandwidthChange::default()
    })
    .await
    .unwrap();
    let origin = Origin::start().await;
    origin.put("/q", Resource::new(support::data(1000, 3)));
    jobs(&e, dir.path(), 700, Some(origin.url("/q"))).await;
    let made = listed(&e).await;
    // Resumed in this order: 600 (runs), 100, 650, 20; and 300 at high priority.
    for i in [600, 100, 650, 20] {
        e.resume(made[i]).await.unwrap();
    }
    e.set_property(made[300], PropertyChange::Priority(Priority::High))
        .await
        .unwrap();
    let pages = walk(&e, 250, async |_| {}).await;
    let all: Vec<&JobInfo> = pages.iter().flat_map(|p| &p.jobs).collect();
    let reason = |i: usize| all[i].reason.clone();
    support::wait_for(&e, made[600], 10, |j| j.state.is_running()).await;
    assert_eq!(
        reason(100),
        Some(WaitReason::Turn {
            ahead: 1,
            priority: Priority::Normal
        })
    );
    assert_eq!(
        reason(20),
        Some(WaitReason::Turn {
            ahead: 3,
            priority: Priority::Normal
        })
    );
    // A high job ahead of them all takes the slot; the normal ones then wait behind it.
    e.resume(made[300]).await.unwrap();
    let high = support::wait_for(&e, made[300], 10, |j| j.state.is_running()).await;
    assert_eq!(
        high.reason,
        Some(WaitReason::Paused {
            by: PausedBy::Background
        })
    );
    let page = e.list_page(JobFilter::default(), None, 700).await.unwrap();
    for i in [20, 100, 600, 650] {
        assert_eq!(
            page.jobs[i].reason,
            Some(WaitReason::HigherPriority { ahead: 1 }),
            "job {i}"
        );
    }
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_streams_the_whole_list_and_serves_pages() {
    let dir = tempfile::tempdir().unwrap();
    let engine = support::engine(dir.path()).await;
    jobs(&engine, dir.path(), 1203, None).await;
    let made = listed(&engine).await;
    let daemon = InProcess::with(engine, dir.path());
    let client = daemon.client().await;
    // `GET /v1/jobs` comes in pieces of 500: three of them, and the last one's tail.
    let streamed: Vec<JobId> = client.jobs().await.unwrap().iter().map(|j| j.id).collect();
    assert_eq!(streamed.len(), 1203);
    assert!(streamed == made, "the stream is the list, in order");
    let pages = walk(&client, 601, async |_| {}).await;
    assert_eq!(pages.len(), 3);
    assert!(ids(&pages) == made, "the pages are the list, in order");
    daemon.stop().await;
}
