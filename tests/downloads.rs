//! Downloads against servers that change, ignore, lie and compress.

use std::path::Path;

use ebb::{
    ByteRange, CredentialTarget, CustomHeader, Engine, ErrorCode, JobId, JobState, JobType,
    NewFile, NotifyCommandLine, PropertyChange, RedirectPolicy, SecurityFlags,
};

use crate::support::origin::{Fault, Logged, Origin, Resource};
use crate::support::{self, data, wait_state};

async fn job(e: &Engine, files: Vec<NewFile>) -> JobId {
    let id = e.create_job("t", JobType::Download).await.unwrap();
    e.add_files(id, files).await.unwrap();
    id
}

/// Run a job to Transferred, complete it, and return the file's bytes.
async fn fetch_one(e: &Engine, url: String, dest: &Path) -> Vec<u8> {
    let id = job(e, vec![NewFile::new(url, dest)]).await;
    e.resume(id).await.unwrap();
    wait_state(e, id, JobState::Transferred, 30).await;
    e.complete(id).await.unwrap();
    std::fs::read(dest).unwrap()
}

/// Start a slow download, suspend it part-way, apply `change`, and resume to the end.
async fn interrupted(
    origin: &Origin,
    path: &str,
    dest: &Path,
    change: impl FnOnce(&mut Resource),
) -> (Engine, JobId) {
    let e = support::engine(dest.parent().unwrap()).await;
    let id = support::start_job(&e, origin.url(path), dest).await;
    support::suspend_after(&e, id, 100_000).await;
    origin.update(path, |r| {
        r.rate = None;
        change(r);
    });
    support::finish(&e, id).await;
    (e, id)
}

#[tokio::test]
async fn a_remote_file_that_changes_restarts_that_file() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put("/v.bin", Resource::new(data(600_000, 10)).rate(400_000));
    let dest = dir.path().join("v.bin");
    let newer = data(700_000, 11);
    let replacement = Resource::new(newer.clone());
    let (e, _) = interrupted(&origin, "/v.bin", &dest, |r| *r = replacement).await;
    assert_eq!(std::fs::read(&dest).unwrap(), newer);
    let log = origin.log("/v.bin");
    // The resume asked for a range with the old ETag and got the new file whole.
    assert!(log[1].range.is_some() && log[1].if_range.is_some());
    assert_eq!(log[1].status, 200);
    e.shutdown().await;
}

/// Interrupt a download, make the server misbehave with `fault` on the next `times` requests
/// (0 = all), finish, check the bytes, and return the server's log of the file.
async fn fault_on_resume(seed: u8, fault: Fault, times: u32) -> Vec<Logged> {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(600_000, seed);
    origin.put("/f.bin", Resource::new(body.clone()).rate(400_000));
    let dest = dir.path().join("f.bin");
    let (e, _) = interrupted(&origin, "/f.bin", &dest, |r| {
        r.fault = Some(fault);
        r.fault_times = times;
    })
    .await;
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    e.shutdown().await;
    origin.log("/f.bin")
}

#[tokio::test]
async fn a_server_that_ignores_range_restarts_the_file() {
    let log = fault_on_resume(12, Fault::IgnoreRange, 0).await;
    assert_eq!((log[1].status, log.len()), (200, 2), "{log:?}");
}

#[tokio::test]
async fn a_lying_content_range_is_refused_and_the_file_fetched_whole() {
    let log = fault_on_resume(13, Fault::LieContentRange, 1).await;
    assert_eq!(log[1].status, 206);
    assert_eq!(log[2].range, None, "after a lie, the whole file: {log:?}");
}

#[tokio::test]
async fn a_compressed_206_is_refused() {
    let log = fault_on_resume(14, Fault::Gzip206, 1).await;
    assert_eq!(log[1].status, 206);
    assert_eq!(log[2].range, None, "{log:?}");
}

#[tokio::test]
async fn a_416_restarts_the_file() {
    let log = fault_on_resume(15, Fault::Refuse416, 1).await;
    assert_eq!(log[1].status, 416);
    assert_eq!((log[2].status, log[2].range.as_deref()), (200, None));
}

#[tokio::test]
async fn a_206_of_unknown_total_completes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(600_000, 22);
    let mut r = Resource::new(body.clone()).rate(400_000);
    r.chunked = true; // no size up front either
    origin.put("/u.bin", r);
    let dest = dir.path().join("u.bin");
    let (e, id) = interrupted(&origin, "/u.bin", &dest, |r| {
        r.fault = Some(Fault::UnknownTotal206);
        r.fault_times = 0;
    })
    .await;
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(e.job(id).await.unwrap().bytes_total, Some(600_000));
    let log = origin.log("/u.bin");
    assert_eq!((log.len(), log[1].status), (2, 206), "{log:?}");
    e.shutdown().await;
}

#[tokio::test]
async fn unknown_size_works() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(250_000, 16);
    let mut r = Resource::new(body.clone());
    r.chunked = true;
    r.etag = None;
    r.last_modified = None;
    origin.put("/dyn", r);
    let e = support::engine(dir.path()).await;
    let dest = dir.path().join("dyn.out");
    assert_eq!(fetch_one(&e, origin.url("/dyn"), &dest).await, body);
    e.shutdown().await;
}

#[tokio::test]
async fn redirects_follow_the_jobs_policy() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(20_000, 17);
    origin.put("/target.bin", Resource::new(body.clone()));
    let mut moved = Resource::default();
    moved.redirect_to = Some("/target.bin".into());
    origin.put("/moved", moved);
    let e = support::engine(dir.path()).await;
    // Default: follow silently.
    assert_eq!(
        fetch_one(&e, origin.url("/moved"), &dir.path().join("a")).await,
        body
    );
    // Report: the remote name becomes the final URL. Disallow: a permanent error.
    for (policy, ends) in [
        (RedirectPolicy::AllowReport, JobState::Transferred),
        (RedirectPolicy::Disallow, JobState::Error),
    ] {
        let dest = dir.path().join(format!("{policy:?}"));
        let id = job(&e, vec![NewFile::new(origin.url("/moved"), dest)]).await;
        let flags = SecurityFlags::default().with_redirect_policy(policy);
        e.set_property(id, PropertyChange::SecurityFlags(flags))
            .await
            .unwrap();
        e.resume(id).await.unwrap();
        let j = wait_state(&e, id, ends, 20).await;
        if ends == JobState::Transferred {
            assert_eq!(j.files[0].remote_url, origin.url("/target.bin"));
        } else {
            assert!(j.error.unwrap().description.contains("forbids redirects"));
        }
    }
    e.shutdown().await;
}

#[tokio::test]
async fn file_urls_and_byte_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.bin");
    let body = data(100_000, 18);
    std::fs::write(&source, &body).unwrap();
    let e = support::engine(dir.path()).await;
    let url = format!("file://{}", source.display());
    assert_eq!(
        fetch_one(&e, url.clone(), &dir.path().join("copy.bin")).await,
        body
    );

    // Ranges over HTTP and file: the local file is the ranges in the order given.
    let origin = Origin::start().await;
    origin.put("/whole.bin", Resource::new(body.clone()));
    let ranges = ByteRange::parse_list("5000:100,10:20,99000:eof").unwrap();
    let mut want = body[5000..5100].to_vec();
    want.extend_from_slice(&body[10..30]);
    want.extend_from_slice(&body[99_000..]);
    for (n, src) in [origin.url("/whole.bin"), url].into_iter().enumerate() {
        let dest = dir.path().join(format!("ranges{n}.bin"));
        let id = job(
            &e,
            vec![NewFile::new(src, &dest).with_ranges(ranges.clone())],
        )
        .await;
        e.resume(id).await.unwrap();
        let j = wait_state(&e, id, JobState::Transferred, 20).await;
        assert_eq!(j.bytes_total, Some(want.len() as u64));
        e.complete(id).await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), want);
    }
    let ranged: Vec<_> = origin
        .log("/whole.bin")
        .into_iter()
        .filter_map(|l| l.range)
        .collect();
    assert_eq!(
        ranged,
        ["bytes=5000-5099", "bytes=10-29", "bytes=99000-99999"]
    );

    // A range past the end of the file is an error.
    let id = job(
        &e,
        vec![
            NewFile::new(origin.url("/whole.bin"), dir.path().join("bad.bin"))
                .with_ranges(ByteRange::parse_list("200000:10").unwrap()),
        ],
    )
    .await;
    e.resume(id).await.unwrap();
    let j = wait_state(&e, id, JobState::Error, 20).await;
    assert_eq!(j.error.unwrap().code, ErrorCode::BG_E_INVALID_RANGE);
    e.shutdown().await;
}

#[tokio::test]
async fn custom_headers_and_credentials_reach_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(5000, 19);
    let mut r = Resource::new(body.clone());
    r.basic_auth = Some("ann:s3cret".into());
    origin.put("/auth.bin", r);
    let e = support::engine(dir.path()).await;
    // Without credentials: 401 is permanent.
    let id = job(
        &e,
        vec![NewFile::new(origin.url("/auth.bin"), dir.path().join("no"))],
    )
    .await;
    e.resume(id).await.unwrap();
    let j = wait_state(&e, id, JobState::Error, 20).await;
    assert_eq!(j.error.unwrap().code, ErrorCode::http(401));
    // With credentials and headers.
    let dest = dir.path().join("yes");
    let id = job(&e, vec![NewFile::new(origin.url("/auth.bin"), &dest)]).await;
    let creds = ebb::BasicCredentials::new("ann", "s3cret").unwrap();
    e.set_property(
        id,
        PropertyChange::Credentials(CredentialTarget::Server, Some(creds)),
    )
    .await
    .unwrap();
    let headers = vec![CustomHeader::parse("X-Ebb-Test: hello").unwrap()];
    e.set_property(id, PropertyChange::CustomHeaders(headers))
        .await
        .unwrap();
    e.resume(id).await.unwrap();
    wait_state(&e, id, JobState::Transferred, 20).await;
    e.complete(id).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    let last = origin.log("/auth.bin").pop().unwrap();
    assert_eq!(last.status, 200);
    assert_eq!(
        last.headers.get("x-ebb-test").map(String::as_str),
        Some("hello")
    );
    e.shutdown().await;
}

/// Wait up to 5 s for a file to appear.
async fn appears(path: &Path) -> bool {
    for _ in 0..100 {
        if path.exists() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn the_notify_program_runs_on_transferred_and_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put("/n.bin", Resource::new(data(1000, 20)));
    let e = support::engine(dir.path()).await;
    for (path, marker, state) in [
        (
            "/n.bin",
            dir.path().join("transferred"),
            JobState::Transferred,
        ),
        ("/absent", dir.path().join("failed"), JobState::Error),
    ] {
        let id = job(
            &e,
            vec![NewFile::new(origin.url(path), dir.path().join(&path[1..]))],
        )
        .await;
        let line = format!("/usr/bin/touch '{}'", marker.display());
        let line = NotifyCommandLine::parse(&line).unwrap();
        e.set_property(id, PropertyChange::NotifyCommandLine(Some(line)))
            .await
            .unwrap();
        e.resume(id).await.unwrap();
        wait_state(&e, id, state, 20).await;
        assert!(
            appears(&marker).await,
            "the notify program did not run on {state}"
        );
    }
    e.shutdown().await;
}

#[tokio::test]
async fn many_files_in_one_job() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let files: Vec<NewFile> = (0..300)
        .map(|i| {
            origin.put(&format!("/m/{i}"), Resource::new(data(1000 + i, i as u8)));
            NewFile::new(
                origin.url(&format!("/m/{i}")),
                dir.path().join(format!("m{i}")),
            )
        })
        .collect();
    let e = support::engine(dir.path()).await;
    let id = job(&e, files).await;
    e.resume(id).await.unwrap();
    let j = wait_state(&e, id, JobState::Transferred, 60).await;
    assert_eq!(j.files_transferred, 300);
    e.complete(id).await.unwrap();
    for i in 0..300 {
        assert_eq!(
            std::fs::read(dir.path().join(format!("m{i}"))).unwrap(),
            data(1000 + i, i as u8)
        );
    }
    e.shutdown().await;
}

#[tokio::test]
async fn https_checks_certificates_unless_the_job_ignores_them() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start_tls().await;
    let body = data(200_000, 21);
    origin.put("/tls.bin", Resource::new(body.clone()));
    let e = support::engine(dir.path()).await;
    // A self-signed certificate: a permanent error, in the transport.
    let id = job(
        &e,
        vec![NewFile::new(origin.url("/tls.bin"), dir.path().join("no"))],
    )
    .await;
    e.resume(id).await.unwrap();
    let j = wait_state(&e, id, JobState::Error, 20).await;
    let err = j.error.unwrap();
    assert_eq!(err.context, ebb::ErrorContext::GeneralTransport);
    assert!(
        err.description.contains("certificate"),
        "{}",
        err.description
    );
    // BG_SSL_IGNORE_UNKNOWN_CA: the same server is accepted.
    let dest = dir.path().join("yes");
    let id = job(&e, vec![NewFile::new(origin.url("/tls.bin"), &dest)]).await;
    let flags = SecurityFlags::new(SecurityFlags::IGNORE_UNKNOWN_CA).unwrap();
    e.set_property(id, PropertyChange::SecurityFlags(flags))
        .await
        .unwrap();
    e.resume(id).await.unwrap();
    wait_state(&e, id, JobState::Transferred, 20).await;
    e.complete(id).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    e.shutdown().await;
}
