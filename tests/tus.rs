//! tus uploads, end to end: ebb to the reference server (`@tus/server`) and to ebb-server's tus
//! front end; `kill -9` of the real daemon mid-upload, after which the upload goes on from the
//! server's offset (`HEAD`); a chunk corrupted on the way, refused by its SHA-256 and sent
//! again, so the upload is never Transferred with wrong bytes; a cancelled job's upload
//! deleted on the server.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ebb::{Backend, Client, JobId, JobState, JobType, NewFile};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::tusd::Tusd;
use crate::support::{self, data, wait_state};
use crate::upload_crashes::{
    ServerLog, free_port, kill_9, spawn_server, upload_job, wait_bytes, wait_transferred,
};
use crate::uploads::Server;

async fn tus_job(b: &dyn Backend, url: &str, source: &Path) -> JobId {
    let id = b.create_job("tus", JobType::Upload).await.unwrap();
    b.add_files(id, vec![NewFile::new(url, source)])
        .await
        .unwrap();
    b.resume(id).await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_to_the_reference_tus_server() {
    let tusd = Tusd::start();
    let dir = tempfile::tempdir().unwrap();
    let body = data(3_000_000, 5);
    let source = dir.path().join("r.bin");
    std::fs::write(&source, &body).unwrap();
    let e = support::engine(dir.path()).await;
    let id = tus_job(&e, &tusd.url(), &source).await;
    wait_state(&e, id, JobState::Transferred, 60).await;
    let uploads = tusd.uploads();
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    assert!(std::fs::read(&uploads[0]).unwrap() == body);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_daemon_goes_on_from_the_servers_offset() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let (port, log) = (free_port(), dir.path().join("server.log"));
    let _server = spawn_server(&root, port, &log);
    let body = data(12_000_000, 13);
    let source = dir.path().join("big.bin");
    std::fs::write(&source, &body).unwrap();
    let socket = dir.path().join("run/ebbd.sock");
    let ebbd = support::spawn_ebbd(dir.path(), &[]);
    let client = Client::connect(&socket).await.unwrap();
    let url = format!("tus+http://127.0.0.1:{port}/big.bin");
    let id = upload_job(&client, &url, &source, 1_500_000).await;
    wait_bytes(&client, id, 2_500_000).await;
    kill_9(ebbd);
    let _ebbd = support::spawn_ebbd(dir.path(), &[]);
    let client = Client::connect(&socket).await.unwrap();
    wait_transferred(&client, id, 60).await;
    assert!(std::fs::read(root.join("big.bin")).unwrap() == body);
    let log = ServerLog::read(&log);
    assert_eq!(
        log.count("session created"),
        1,
        "one upload, resumed: {}",
        log.text
    );
    let (resent, largest) = log.taken_twice(body.len() as u64);
    assert!(
        resent <= largest,
        "re-sent {resent} bytes, more than one chunk ({largest})"
    );
    println!("tus after kill -9 of ebbd: {resent} bytes re-sent (largest chunk {largest})");
}

/// A front that flips one byte of the first `PATCH` body it carries, and notes whether the
/// server answered 460.
async fn flipping_front(to: std::net::SocketAddr) -> (u16, Arc<AtomicBool>, Arc<AtomicBool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (flipped, refused) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (f, r) = (flipped.clone(), refused.clone());
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let out = tokio::net::TcpStream::connect(to).await.unwrap();
            let (mut ci, mut co) = inbound.into_split();
            let (mut si, mut so) = out.into_split();
            let (f, r) = (f.clone(), r.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                while let Ok(n) = ci.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let start = seen.len();
                    seen.extend_from_slice(&buf[..n]);
                    if let Some(end) = patch_body(&seen)
                        && end + 100 >= start
                        && end + 100 < seen.len()
                        && !f.swap(true, Ordering::SeqCst)
                    {
                        buf[end + 100 - start] ^= 0xff;
                    }
                    if so.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = si.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if buf[..n].windows(13).any(|w| w == b"HTTP/1.1 460 ") {
                        r.store(true, Ordering::SeqCst);
                    }
                    if co.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (port, flipped, refused)
}

/// Where the body of the first `PATCH` in a connection's bytes starts.
fn patch_body(seen: &[u8]) -> Option<usize> {
    let at = seen.windows(6).position(|w| w == b"PATCH ")?;
    let end = seen[at..].windows(4).position(|w| w == b"\r\n\r\n")?;
    Some(at + end + 4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_corrupted_on_the_way_is_refused_and_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, |_| {}).await;
    let (port, flipped, refused) = flipping_front(server.addr).await;
    let body = data(1_000_000, 17);
    let source = dir.path().join("c.bin");
    std::fs::write(&source, &body).unwrap();
    let e = support::engine(dir.path()).await;
    let id = tus_job(
        &e,
        &format!("tus+http://127.0.0.1:{port}/up/c.bin"),
        &source,
    )
    .await;
    wait_state(&e, id, JobState::Transferred, 60).await;
    assert!(flipped.load(Ordering::SeqCst), "a byte was flipped");
    assert!(
        refused.load(Ordering::SeqCst),
        "the server refused the chunk (460)"
    );
    assert!(
        std::fs::read(root.join("c.bin")).unwrap() == body,
        "the right bytes, in the end"
    );
    e.shutdown().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_jobs_upload_is_deleted_on_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, |_| {}).await;
    let body = data(6_000_000, 19);
    let source = dir.path().join("k.bin");
    std::fs::write(&source, &body).unwrap();
    let e = support::engine(dir.path()).await;
    let url = format!("tus+{}", server.url("k.bin"));
    let id = upload_job(&e, &url, &source, 1_000_000).await;
    wait_bytes(&e, id, 500_000).await;
    assert_eq!(server.app.session_count(), 1);
    e.cancel(id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.app.session_count() > 0 {
        assert!(Instant::now() < deadline, "the upload is deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != ".ebb-server")
        .collect();
    assert!(left.is_empty(), "nothing is left: {left:?}");
    // Upload-reply jobs have no tus: refused when the file is added.
    let reply = e.create_job("r", JobType::UploadReply).await.unwrap();
    let refused = e.add_files(reply, vec![NewFile::new(&url, &source)]).await;
    assert!(refused.unwrap_err().to_string().contains("tus"));
    e.shutdown().await;
    server.stop().await;
}
