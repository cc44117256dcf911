//! `cargo bench --bench daemon`: what a round trip through `ebbd` costs, how fast transferred
//! jobs complete (one caller, and 32 at once), and what the daemon holds in memory with 10,000
//! jobs (`EBB_BENCH_JOBS=100000` for more): suspended, then queued behind a bandwidth cap of 0;
//! how long the first page and the whole streamed list take. `cargo bench --bench daemon -- list-latency`: how
//! long a `list` takes while 4 jobs of large files are suspended and resumed in a loop (each
//! suspend waits for its job's final checkpoint). `-- completes`: only the complete figures.
//! Starts the release `ebbd` (build it first:
//! `cargo build --release --bins`) on a private socket and data directory, drives it with
//! `ebb::Client`, and stops it by its PID. `EBBD=path` benches another build of `ebbd`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ebb::{Backend, Client, JobId, JobType, Limit, NewFile, PropertyChange};

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn connect(socket: &Path) -> Client {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Client::connect(socket).await {
            Ok(c) => return c,
            Err(e) => {
                assert!(Instant::now() < deadline, "ebbd did not come up: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let ebbd =
        std::env::var_os("EBBD").map_or_else(|| root.join("target/release/ebbd"), PathBuf::from);
    assert!(
        ebbd.exists(),
        "build it first: cargo build --release --bins"
    );
    let dir = std::env::temp_dir().join(format!("ebb-daemon-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let source = dir.join("source.bin");
    std::fs::write(&source, vec![7u8; 4096])?;
    let socket = dir.join("ebbd.sock");
    let mut child = Command::new(&ebbd)
        .env("EBB_DATA_DIR", dir.join("data"))
        .env("EBB_SOCKET", &socket)
        .stdin(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let c = connect(&socket).await;
    let url = format!("file://{}", source.display());
    if std::env::args().any(|a| a == "list-latency") {
        list_latency(&c, &dir).await?;
    } else if std::env::args().any(|a| a == "completes") {
        completes(&c, &dir, &url).await?;
    } else {
        round_trips(&c, &dir, &url, pid).await?;
    }

    // Stop the daemon we started, by its PID.
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    child.wait()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Median and 99th percentile of 1,000 `list` calls while 4 jobs of 8 GiB files (capped at
/// 1 GB/s each, so they do not finish) are suspended and resumed, one after another, for
/// as long as the calls take.
async fn list_latency(c: &Client, dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let big = dir.join("big.bin");
    std::fs::File::create(&big)?.set_len(8 << 30)?;
    let url = format!("file://{}", big.display());
    let mut jobs: Vec<JobId> = Vec::new();
    for i in 0..4 {
        let id = c.create_job(&format!("big{i}"), JobType::Download).await?;
        c.add_files(
            id,
            vec![NewFile::new(&url, dir.join(format!("big{i}.bin")))],
        )
        .await?;
        c.set_property(
            id,
            PropertyChange::MaxRate(Limit::BytesPerSec(1_000_000_000)),
        )
        .await?;
        c.resume(id).await?;
        jobs.push(id);
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let churn = {
        let (c, jobs, stop) = (c.clone(), jobs.clone(), stop.clone());
        tokio::spawn(async move {
            let mut suspends = Vec::new();
            while !stop.is_cancelled() {
                for &id in &jobs {
                    let t = Instant::now();
                    c.suspend(id).await?;
                    suspends.push(t.elapsed());
                    c.resume(id).await?;
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
            Ok::<Vec<Duration>, ebb::Error>(suspends)
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut took = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let t = Instant::now();
        let listed = c.jobs().await?.len();
        took.push(t.elapsed());
        assert_eq!(listed, 4);
    }
    stop.cancel();
    let mut suspends = churn.await??;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for (what, times) in [("list", &mut took), ("suspend, meanwhile", &mut suspends)] {
        times.sort();
        println!(
            "| {what} ({} calls) | median {:.2} ms | p99 {:.2} ms | max {:.2} ms |",
            times.len(),
            ms(times[times.len() / 2]),
            ms(times[times.len() * 99 / 100]),
            ms(times[times.len() - 1]),
        );
    }
    for id in jobs {
        c.cancel(id).await?;
    }
    Ok(())
}

async fn round_trips(
    c: &Client,
    dir: &Path,
    url: &str,
    pid: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    // 1,000 jobs: create + add-file + resume + complete, one after another.
    let n = 1000;
    let (mut t_create, mut t_add, mut t_resume, mut t_complete) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    let all = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        let id = c.create_job(&format!("rt{i}"), JobType::Download).await?;
        t_create += t.elapsed();
        let t = Instant::now();
        c.add_files(id, vec![NewFile::new(url, dir.join(format!("rt{i}.bin")))])
            .await?;
        t_add += t.elapsed();
        let t = Instant::now();
        c.resume(id).await?;
        t_resume += t.elapsed();
        let t = Instant::now();
        c.complete(id).await?;
        t_complete += t.elapsed();
    }
    let total = all.elapsed();
    let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(n);
    println!(
        "| {n} jobs, create+add-file+resume+complete | total {:.2} s | per job {:.0} us |",
        total.as_secs_f64(),
        per(total)
    );
    println!(
        "| per call (us) | create {:.0} | add-file {:.0} | resume {:.0} | complete {:.0} |",
        per(t_create),
        per(t_add),
        per(t_resume),
        per(t_complete)
    );
    println!("| RSS after the round trips | {} KiB |", rss_kib(pid));

    completes(c, dir, url).await?;
    let n = std::env::var("EBB_BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    // The queue's jobs fetch from a server that never answers: queued, they stay queued (a
    // local file would be copied at once, whatever the caps).
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let silent_url = format!("http://{}/never", silent.local_addr()?);
    queue_scale(c, dir, &silent_url, pid, n).await?;
    drop(silent);
    Ok(())
}

/// Many callers at once: `n` tasks, each running `f` on its share of `items`.
async fn in_parallel<T, F, Fut>(c: &Client, items: Vec<T>, n: usize, f: F) -> Result<(), ebb::Error>
where
    T: Send + 'static,
    F: Fn(Client, T) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Result<(), ebb::Error>> + Send,
{
    let mut shares: Vec<Vec<T>> = (0..n).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        shares[i % n].push(item);
    }
    let tasks: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let (c, f) = (c.clone(), f.clone());
            tokio::spawn(async move {
                for item in share {
                    f(c.clone(), item).await?;
                }
                Ok::<(), ebb::Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task")?;
    }
    Ok(())
}

/// Transferred jobs completed through the API: 1,000 by one caller, 1,000 by 32 at once.
async fn completes(c: &Client, dir: &Path, url: &str) -> Result<(), Box<dyn std::error::Error>> {
    for callers in [1, 32] {
        let n = 1000;
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let id = c
                .create_job(&format!("c{callers}-{i}"), JobType::Download)
                .await?;
            c.add_files(
                id,
                vec![NewFile::new(url, dir.join(format!("c{callers}-{i}.bin")))],
            )
            .await?;
            c.resume(id).await?;
            ids.push(id);
        }
        for &id in &ids {
            c.wait(id, None).await?;
        }
        let t = Instant::now();
        in_parallel(c, ids, callers, |c, id| async move {
            c.complete(id).await.map(drop)
        })
        .await?;
        let took = t.elapsed().as_secs_f64();
        println!(
            "| complete, {n} transferred jobs, {callers} caller(s) | {:.2} s | {:.0}/s |",
            took,
            n as f64 / took
        );
    }
    Ok(())
}

/// `n` jobs of one file each from `url`: created (16 callers), at rest Suspended, listed (the
/// first page, then all of them streamed), then queued behind a bandwidth cap of 0 and listed
/// again.
async fn queue_scale(
    c: &Client,
    dir: &Path,
    url: &str,
    pid: u32,
    n: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let t = Instant::now();
    let url: std::sync::Arc<str> = url.into();
    let dir: std::sync::Arc<Path> = dir.into();
    let made = std::sync::Arc::new(std::sync::Mutex::new(Vec::with_capacity(n)));
    {
        let (url, dir, made) = (url.clone(), dir.clone(), made.clone());
        in_parallel(c, (0..n).collect(), 16, move |c, i| {
            let (url, dir, made) = (url.clone(), dir.clone(), made.clone());
            async move {
                let id = c.create_job(&format!("q{i}"), JobType::Download).await?;
                c.add_files(id, vec![NewFile::new(&*url, dir.join(format!("q{i}.bin")))])
                    .await?;
                made.lock().expect("lock").push(id);
                Ok(())
            }
        })
        .await?;
    }
    println!(
        "| {n} jobs created (16 callers) | {:.1} s | RSS {} KiB at rest, suspended |",
        t.elapsed().as_secs_f64(),
        rss_kib(pid)
    );
    list_figures(c, pid, n, "suspended").await?;
    c.set_bandwidth(ebb::BandwidthChange {
        max_rate: Some(Limit::BytesPerSec(0)),
        ..Default::default()
    })
    .await?;
    let ids = std::mem::take(&mut *made.lock().expect("lock"));
    let t = Instant::now();
    in_parallel(
        c,
        ids,
        16,
        |c, id| async move { c.resume(id).await.map(drop) },
    )
    .await?;
    println!(
        "| {n} jobs resumed (16 callers) | {:.1} s | RSS {} KiB, queued behind a cap of 0 |",
        t.elapsed().as_secs_f64(),
        rss_kib(pid)
    );
    list_figures(c, pid, n, "queued").await?;
    Ok(())
}

/// The first page's time (median of 20), the whole streamed list's, and the RSS after it.
async fn list_figures(
    c: &Client,
    pid: u32,
    n: usize,
    what: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut firsts = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let page = c.list_page(ebb::JobFilter::default(), None, 100).await?;
        firsts.push(t.elapsed());
        assert_eq!(page.jobs.len(), 100.min(n));
    }
    firsts.sort();
    let t = Instant::now();
    let listed = c.jobs().await?.len();
    let all = t.elapsed();
    assert!(listed >= n, "listed {listed} of {n}");
    println!(
        "| list of {listed} ({what}) | first page of 100: {:.1} ms | all, streamed: {:.0} ms | RSS after {} KiB |",
        firsts[firsts.len() / 2].as_secs_f64() * 1e3,
        all.as_secs_f64() * 1e3,
        rss_kib(pid)
    );
    Ok(())
}
