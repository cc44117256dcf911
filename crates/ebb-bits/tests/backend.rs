//! One suite of trait-level tests, run against every backend this platform has: ebb's portable
//! engine everywhere (Windows included), the daemon's client over a Unix socket where there is
//! one, and native BITS on Windows (here: under Wine, see `scripts/windows-check.sh`).
//!
//! Where Wine's BITS lacks a call (`E_NOTIMPL`), a test prints `WINE GAP: <call>` and asserts
//! what it can, so that a Wine that implements the call is noticed: the gap line disappears and
//! the Windows assertion runs.
#![allow(clippy::unwrap_used, missing_debug_implementations)]

mod server;

use std::path::Path;
use std::time::Duration;

use ebb_core::{
    Backend, CustomHeader, ErrorCode, ErrorContext, Event, JobState, JobType, NewFile, Priority,
    PropertyChange,
};
use server::Server;

/// Whether this Windows is Wine (its configuration tool is a system program there).
fn under_wine() -> bool {
    cfg!(windows) && Path::new(r"C:\windows\system32\winecfg.exe").exists()
}

fn body(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Poll until the job leaves the active states (30 s at most).
async fn settle(b: &dyn Backend, id: ebb_core::JobId) -> JobState {
    b.wait(id, Some(Duration::from_secs(30))).await.unwrap()
}

async fn create_add_resume_complete(b: &dyn Backend, s: &Server, dir: &Path) {
    let data = body(300_000, 1);
    s.put("/a.bin", data.clone());
    let dest = dir.join("a.bin");
    let id = b.create_job("ebb suite", JobType::Download).await.unwrap();
    let mut events = b.subscribe();
    b.add_files(id, vec![NewFile::new(s.url("/a.bin"), &dest)])
        .await
        .unwrap();
    b.resume(id).await.unwrap();
    assert_eq!(settle(b, id).await, JobState::Transferred);
    assert!(!dest.exists(), "nothing at the final name before Complete");

    // The transferred event arrives (BITS: through IBackgroundCopyCallback2).
    let heard = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(Event::JobTransferred { job_id }) if job_id == id => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(heard, "no JobTransferred event");

    let done = b.complete(id).await.unwrap();
    assert_eq!(done.code, ErrorCode::S_OK);
    assert_eq!(std::fs::read(&dest).unwrap(), data, "bytes identical");
    println!("create/add/resume/complete: {} bytes identical", data.len());
}

async fn enumerate_jobs_and_files(b: &dyn Backend, s: &Server, dir: &Path) {
    s.put("/e1", body(10, 2));
    s.put("/e2", body(20, 3));
    let id = b
        .create_job("ebb enumerate", JobType::Download)
        .await
        .unwrap();
    b.add_files(
        id,
        vec![
            NewFile::new(s.url("/e1"), dir.join("e1")),
            NewFile::new(s.url("/e2"), dir.join("e2")),
        ],
    )
    .await
    .unwrap();
    let all = b.jobs().await.unwrap();
    let mine = all
        .iter()
        .find(|j| j.id == id)
        .expect("the job is enumerated");
    assert_eq!(mine.state, JobState::Suspended);
    let files: Vec<(String, std::path::PathBuf)> = mine
        .files
        .iter()
        .map(|f| (f.remote_url.clone(), f.local_path.clone()))
        .collect();
    let added = vec![
        (s.url("/e1"), dir.join("e1")),
        (s.url("/e2"), dir.join("e2")),
    ];
    let reversed: Vec<_> = added.iter().rev().cloned().collect();
    if under_wine() && files == reversed {
        println!("WINE GAP: EnumFiles lists the files in reverse order of AddFileSet");
    } else {
        assert_eq!(files, added, "files in the order added");
    }
    assert_eq!(b.find(&id.to_string()).await.unwrap(), id);
    b.cancel(id).await.unwrap();
    println!("enumerate: job and 2 files listed");
}

async fn http_404_is_a_remote_file_error(b: &dyn Backend, s: &Server, dir: &Path) {
    let id = b.create_job("ebb 404", JobType::Download).await.unwrap();
    b.add_files(
        id,
        vec![NewFile::new(s.url("/missing"), dir.join("missing"))],
    )
    .await
    .unwrap();
    b.resume(id).await.unwrap();
    assert_eq!(settle(b, id).await, JobState::Error);
    let info = b.job(id).await.unwrap();
    let err = info.error.expect("an error is recorded");
    assert_eq!(err.context, ErrorContext::RemoteFile);
    assert_eq!(err.code, ErrorCode(0x8019_0194));
    assert!(!err.description.is_empty());
    b.cancel(id).await.unwrap();
    println!("404: context {:?}, code {}", err.context, err.code);
}

async fn complete_after_an_error_is_partial(b: &dyn Backend, s: &Server, dir: &Path) {
    let data = body(50_000, 6);
    s.put("/ok.bin", data.clone());
    let (good, bad) = (dir.join("ok.bin"), dir.join("gone.bin"));
    let id = b
        .create_job("ebb partial", JobType::Download)
        .await
        .unwrap();
    b.add_files(id, vec![NewFile::new(s.url("/ok.bin"), &good)])
        .await
        .unwrap();
    b.add_files(id, vec![NewFile::new(s.url("/gone.bin"), &bad)])
        .await
        .unwrap();
    b.resume(id).await.unwrap();
    assert_eq!(settle(b, id).await, JobState::Error);
    let first_done = b.job(id).await.unwrap().files.iter().any(|f| f.completed);
    let done = b.complete(id).await.unwrap();
    // BITS's success code, which the `windows` crate's Result would have hidden.
    assert_eq!(done.code, ErrorCode::BG_S_PARTIAL_COMPLETE);
    assert!(!bad.exists());
    if under_wine() && !first_done {
        println!(
            "WINE GAP: the good file was not transferred before the 404 stopped the job (Wine \
             seems to take files last-added first, as it lists them): partial complete kept {} of 2",
            done.files_kept
        );
        return;
    }
    assert_eq!((done.files_kept, done.files_dropped), (1, 1));
    assert_eq!(std::fs::read(&good).unwrap(), data);
    assert!(!bad.exists());
    println!(
        "partial complete: {} kept, {} dropped",
        done.files_kept, done.files_dropped
    );
}

async fn cancel_mid_transfer_leaves_no_file(b: &dyn Backend, s: &Server, dir: &Path) {
    s.put_slow("/slow.bin", body(2_000_000, 4), 100_000);
    let dest = dir.join("slow.bin");
    let id = b.create_job("ebb cancel", JobType::Download).await.unwrap();
    b.add_files(id, vec![NewFile::new(s.url("/slow.bin"), &dest)])
        .await
        .unwrap();
    b.resume(id).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let j = b.job(id).await.unwrap();
        if j.bytes_transferred > 0 || j.state == JobState::Transferring {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never started: {j:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.cancel(id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!dest.exists(), "cancel left {}", dest.display());
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("slow") || n.starts_with("BIT") || n.starts_with(".ebb-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    assert!(
        b.job(id)
            .await
            .map_or(true, |j| j.state == JobState::Cancelled)
    );
    println!("cancel mid-transfer: no file left");
}

/// Priority and custom headers reach the transfer; `read_priority` reads the priority back
/// (`None`: this backend cannot say, and the test names the gap).
async fn priority_and_headers_reach_the_server(
    b: &dyn Backend,
    s: &Server,
    dir: &Path,
    read_priority: Option<Priority>,
) {
    s.put("/h.bin", body(1000, 5));
    let id = b
        .create_job("ebb headers", JobType::Download)
        .await
        .unwrap();
    b.add_files(id, vec![NewFile::new(s.url("/h.bin"), dir.join("h.bin"))])
        .await
        .unwrap();
    b.set_property(id, PropertyChange::Priority(Priority::High))
        .await
        .unwrap();
    b.set_property(
        id,
        PropertyChange::CustomHeaders(vec![CustomHeader::new("X-Ebb-Test", "forty-two").unwrap()]),
    )
    .await
    .unwrap();
    match read_priority {
        Some(p) => assert_eq!(p, Priority::High),
        None => println!("WINE GAP: GetPriority (E_NOTIMPL): SetPriority succeeded, not read back"),
    }
    b.resume(id).await.unwrap();
    assert_eq!(settle(b, id).await, JobState::Transferred);
    b.complete(id).await.unwrap();
    let seen = s.header_values("/h.bin", "x-ebb-test");
    assert!(seen.iter().any(|v| v == "forty-two"), "server saw {seen:?}");
    println!("priority High accepted; header X-Ebb-Test seen by the server");
}

/// The suite's tests that take only a backend, a server and a directory: `$m!(a, b, ...)`.
macro_rules! every_suite_test {
    ($m:ident) => {
        $m!(
            create_add_resume_complete,
            enumerate_jobs_and_files,
            http_404_is_a_remote_file_error,
            complete_after_an_error_is_partial,
            cancel_mid_transfer_leaves_no_file
        );
    };
}

mod engine {
    use super::*;

    async fn engine(dir: &Path) -> ebb_core::Engine {
        ebb_core::install_crypto_provider();
        ebb_core::Engine::open(ebb_core::EngineConfig::new(dir.join("queue")))
            .await
            .unwrap()
    }

    macro_rules! suite {
        ($($name:ident),*) => {$(
            #[tokio::test]
            async fn $name() {
                let dir = tempfile::tempdir().unwrap();
                let s = Server::start();
                let e = engine(dir.path()).await;
                super::$name(&e, &s, dir.path()).await;
                e.shutdown().await;
            }
        )*};
    }

    every_suite_test!(suite);

    #[tokio::test]
    async fn priority_and_headers_reach_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let s = Server::start();
        let e = engine(dir.path()).await;
        // The engine reads its properties back; the suite checks them before resuming.
        let probe = e.create_job("p", JobType::Download).await.unwrap();
        e.set_property(probe, PropertyChange::Priority(Priority::High))
            .await
            .unwrap();
        let p = e.job(probe).await.unwrap().properties.priority;
        super::priority_and_headers_reach_the_server(&e, &s, dir.path(), Some(p)).await;
        e.shutdown().await;
    }
}

/// The daemon's client: the engine behind `ebbd`'s router and socket code, on a real Unix
/// socket, driven through `ebb_api::Client`.
#[cfg(unix)]
mod client {
    use super::*;
    use tokio_util::sync::CancellationToken;

    struct Daemon {
        engine: ebb_core::Engine,
        stop: CancellationToken,
        client: ebb_api::Client,
    }

    impl Daemon {
        async fn start(dir: &Path) -> Self {
            ebb_core::install_crypto_provider();
            let engine = ebb_core::Engine::open(ebb_core::EngineConfig::new(dir.join("queue")))
                .await
                .unwrap();
            let socket = dir.join("run").join("ebbd.sock");
            let listener = ebb_daemon::bind(&socket).unwrap();
            let stop = CancellationToken::new();
            tokio::spawn(ebb_daemon::serve(engine.clone(), listener, stop.clone()));
            let client = ebb_api::Client::connect(&socket).await.unwrap();
            Self {
                engine,
                stop,
                client,
            }
        }

        async fn stop(self) {
            self.stop.cancel();
            self.engine.shutdown().await;
        }
    }

    macro_rules! suite {
        ($($name:ident),*) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let dir = tempfile::tempdir().unwrap();
                let s = Server::start();
                let d = Daemon::start(dir.path()).await;
                super::$name(&d.client, &s, dir.path()).await;
                d.stop().await;
            }
        )*};
    }

    every_suite_test!(suite);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn priority_and_headers_reach_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let s = Server::start();
        let d = Daemon::start(dir.path()).await;
        let c = &d.client;
        let probe = c.create_job("p", JobType::Download).await.unwrap();
        c.set_property(probe, PropertyChange::Priority(Priority::High))
            .await
            .unwrap();
        let p = c.job(probe).await.unwrap().properties.priority;
        super::priority_and_headers_reach_the_server(c, &s, dir.path(), Some(p)).await;
        d.stop().await;
    }
}

#[cfg(windows)]
mod bits {
    use super::*;
    use ebb_bits::Bits;

    async fn bits() -> Bits {
        Bits::connect()
            .await
            .expect("BITS answers (is the qmgr service there?)")
    }

    macro_rules! suite {
        ($($name:ident),*) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let dir = tempfile::tempdir().unwrap();
                let s = Server::start();
                super::$name(&bits().await, &s, dir.path()).await;
            }
        )*};
    }

    every_suite_test!(suite);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn priority_and_headers_reach_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let s = Server::start();
        let b = bits().await;
        let probe = b.create_job("p", JobType::Download).await.unwrap();
        b.set_property(probe, PropertyChange::Priority(Priority::High))
            .await
            .unwrap();
        let (info, gaps) = b.job_with_gaps(probe).await.unwrap();
        let read = (!gaps.contains(&"GetPriority")).then_some(info.properties.priority);
        b.cancel(probe).await.unwrap();
        super::priority_and_headers_reach_the_server(&b, &s, dir.path(), read).await;
    }

    /// Upload-reply calls through `IBackgroundCopyJob2`. Wine's BITS moves no uploads: what it
    /// lacks is named, what it has is asserted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn upload_reply_calls_reach_ibackgroundcopyjob2() {
        let b = bits().await;
        println!("WINE GAP: uploads (Wine's BITS transfers no upload or upload-reply job)");
        let id = match b.create_job("ebb reply", JobType::UploadReply).await {
            Ok(id) => id,
            Err(e) => {
                println!("WINE GAP: CreateJob(BG_JOB_TYPE_UPLOAD_REPLY) ({e})");
                return;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let name = dir.path().join("reply.bin");
        match b.set_reply_file_name(id, Some(name.clone())).await {
            Ok(()) => match b.reply_file_name(id).await {
                Ok(read) => {
                    if read.is_some() || !under_wine() {
                        assert_eq!(read, Some(name));
                    } else {
                        println!("WINE GAP: GetReplyFileName (empty)");
                    }
                }
                Err(e) => println!("WINE GAP: GetReplyFileName ({e})"),
            },
            Err(e) if e.code() == ErrorCode::E_NOTIMPL => {
                println!("WINE GAP: SetReplyFileName (E_NOTIMPL)");
            }
            Err(e) => panic!("SetReplyFileName: {e}"),
        }
        let (info, gaps) = b.job_with_gaps(id).await.unwrap();
        if gaps.contains(&"GetReplyProgress") {
            println!("WINE GAP: GetReplyProgress (E_NOTIMPL)");
        } else {
            let p = info.reply_progress.unwrap();
            assert_eq!((p.bytes_total, p.bytes_transferred), (None, 0));
        }
        // No reply before Transferred.
        match b.reply_data(id).await {
            Err(e) if e.code() == ErrorCode::E_NOTIMPL => {
                println!("WINE GAP: GetReplyData (E_NOTIMPL)");
            }
            Err(e) => assert_eq!(e.code(), ErrorCode::BG_E_INVALID_STATE, "{e}"),
            Ok(data) => panic!("GetReplyData before Transferred gave {} bytes", data.len()),
        }
        b.cancel(id).await.unwrap();
    }

    /// What Wine's BITS lacks, named; on Windows each of these works and is asserted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_calls_wine_lacks_are_named() {
        let b = bits().await;
        let id = b.create_job("ebb gaps", JobType::Download).await.unwrap();
        let (info, gaps) = b.job_with_gaps(id).await.unwrap();
        for gap in &gaps {
            println!("WINE GAP: {gap} (E_NOTIMPL): its JobInfo field holds the default");
        }
        if !gaps.contains(&"GetDisplayName") {
            assert_eq!(info.display_name, "ebb gaps");
        }
        match b.suspend(id).await {
            Ok(()) => assert_eq!(b.job(id).await.unwrap().state, JobState::Suspended),
            Err(e) if e.code() == ErrorCode::E_NOTIMPL => println!("WINE GAP: Suspend (E_NOTIMPL)"),
            Err(e) => panic!("Suspend: {e}"),
        }
        match b
            .set_property(id, PropertyChange::DisplayName("renamed".into()))
            .await
        {
            Ok(()) if !gaps.contains(&"GetDisplayName") => {
                assert_eq!(b.job(id).await.unwrap().display_name, "renamed");
            }
            Ok(()) => {}
            Err(e) if e.code() == ErrorCode::E_NOTIMPL => {
                println!("WINE GAP: SetDisplayName (E_NOTIMPL)");
            }
            Err(e) => panic!("SetDisplayName: {e}"),
        }
        // A per-job cap is ebb's, not BITS's: refused plainly on every Windows.
        let e = b
            .set_property(id, PropertyChange::MaxRate(ebb_core::Limit::BytesPerSec(1)))
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::E_NOTIMPL);
        assert!(b.bandwidth().await.is_err());
        b.cancel(id).await.unwrap();
        // The other users' view needs administrator rights on Windows; Wine grants it.
        match b.jobs_of(true).await {
            Ok(all) => println!("all users: {} job(s) listed", all.len()),
            Err(e) => println!("enumerating all users' jobs refused: {e}"),
        }
    }
}
