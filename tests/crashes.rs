//! A crash loop: `ebbd` killed with SIGKILL thirty times at pseudo-random moments while a job of
//! several files moves. Every file ends byte-identical, and each restart asks for no more than
//! about one checkpoint's worth of bytes again.

use std::path::Path;
use std::time::{Duration, Instant};

use ebb::{Backend, Client, JobId, JobState, JobType, NewFile};

use crate::support::origin::{Origin, Resource};
use crate::support::{self, data};

const FILES: usize = 8;
const FILE_SIZE: usize = 1_500_000;
/// Per file: slow enough that the job outlives thirty kills with its files fetched four at a
/// time.
const RATE: u64 = 250_000;
const KILLS: usize = 30;
/// The checkpoint budget the daemon runs with (`EBB_CHECKPOINT_BYTES` of `support::spawn_ebbd`).
const CHECKPOINT_BYTES: u64 = 65_536;

/// Our `ebbd`, killed by its PID when dropped: a failing assertion leaves none running.
fn spawn_ebbd(dir: &Path) -> support::Reaped {
    support::spawn_ebbd(dir, &[])
}

fn kill_9(ebbd: &mut support::Reaped) {
    ebbd.0.kill().unwrap();
    ebbd.0.wait().unwrap();
}

/// Where each file's next request starts, by file path, in the order the origin saw them.
fn range_starts(origin: &Origin, path: &str) -> Vec<u64> {
    origin
        .log(path)
        .iter()
        .map(|r| {
            r.range
                .as_deref()
                .and_then(|h| h.strip_prefix("bytes="))
                .and_then(|h| h.split('-').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        })
        .collect()
}

/// The crash loop's job: every file of the origin, resumed.
async fn start(socket: &Path, origin: &Origin, dir: &Path) -> JobId {
    let client = Client::connect(socket).await.unwrap();
    let id: JobId = client
        .create_job("crash loop", JobType::Download)
        .await
        .unwrap();
    let files = (0..FILES)
        .map(|i| NewFile::new(origin.url(&format!("/f{i}")), dir.join(format!("f{i}"))))
        .collect();
    client.add_files(id, files).await.unwrap();
    client.resume(id).await.unwrap();
    id
}

/// After a restart: how many bytes before the durable progress `f` had at the kill the daemon
/// asks file `i` again from, or `None` if the file was finished (and durable) in between.
async fn refetch_after_restart(
    origin: &Origin,
    socket: &Path,
    id: JobId,
    i: usize,
    f: &ebb::JobFile,
    kill: usize,
) -> Option<u64> {
    let path = format!("/f{i}");
    let seen = origin.log(&path).len();
    let deadline = Instant::now() + Duration::from_secs(10);
    let client = Client::connect(socket).await.unwrap();
    loop {
        if origin.log(&path).len() > seen {
            let start = range_starts(origin, &path)[seen];
            return Some(f.bytes_transferred.saturating_sub(start));
        }
        // Finished (and durable) between the look and the kill: nothing to ask again.
        if client.job(id).await.unwrap().files[i].completed {
            return None;
        }
        assert!(
            Instant::now() < deadline,
            "no request for {path} after restart {kill}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_kill_9s_of_ebbd_lose_nothing_and_refetch_at_most_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let bodies: Vec<Vec<u8>> = (0..FILES).map(|i| data(FILE_SIZE, 100 + i as u8)).collect();
    for (i, b) in bodies.iter().enumerate() {
        origin.put(&format!("/f{i}"), Resource::new(b.clone()).rate(RATE));
    }
    let socket = dir.path().join("run/ebbd.sock");
    let mut ebbd = spawn_ebbd(dir.path());
    let id = start(&socket, &origin, dir.path()).await;

    // Pseudo-random but repeatable moments: 60 to 300 ms after each start.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let (mut worst, mut measured) = (0u64, 0usize);
    for kill in 0..KILLS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        tokio::time::sleep(Duration::from_millis(60 + x % 240)).await;
        // What this run has written, as the engine sees it, just before the kill.
        let client = Client::connect(&socket).await.unwrap();
        let before = client.job(id).await.unwrap();
        drop(client);
        kill_9(&mut ebbd);
        assert_ne!(
            before.state,
            JobState::Transferred,
            "the job finished after {kill} kills: make it longer"
        );
        ebbd = spawn_ebbd(dir.path());
        // The restarted daemon asks for the file it was on from its durable progress.
        let Some((i, f)) = before
            .files
            .iter()
            .enumerate()
            .find(|(_, f)| !f.completed && f.bytes_transferred > 0)
        else {
            continue;
        };
        if let Some(refetched) = refetch_after_restart(&origin, &socket, id, i, f, kill).await {
            worst = worst.max(refetched);
            measured += 1;
        }
    }
    // One checkpoint: the byte budget, or what arrives within its 100 ms interval; twice, for
    // the checkpoint that may be in flight at the kill, plus a read.
    let bound = 2 * CHECKPOINT_BYTES.max(RATE / 10) + 64 * 1024;
    eprintln!(
        "crash loop: {KILLS} kills, {measured} resumes measured, worst re-fetch {worst} bytes"
    );
    assert!(
        measured >= KILLS / 2,
        "most kills land mid-file: {measured}"
    );
    assert!(
        worst <= bound,
        "a restart asked again for {worst} bytes (bound {bound})"
    );

    let client = Client::connect(&socket).await.unwrap();
    assert_eq!(
        client
            .wait(id, Some(Duration::from_secs(60)))
            .await
            .unwrap(),
        JobState::Transferred
    );
    client.complete(id).await.unwrap();
    drop(client);
    for (i, b) in bodies.iter().enumerate() {
        let got = std::fs::read(dir.path().join(format!("f{i}"))).unwrap();
        assert!(got == *b, "file {i} differs after {KILLS} kills");
    }
    assert!(support::temp_files(dir.path()).is_empty());
    kill_9(&mut ebbd);
}
