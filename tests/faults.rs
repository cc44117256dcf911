//! Transient and permanent errors: retries after the minimum retry delay, Retry-After, the
//! no-progress timeout, stalled, reset and truncated bodies, local write failures.

use std::time::Duration;

use ebb::{Engine, ErrorCode, ErrorContext, JobId, JobState, JobType, NewFile, PropertyChange};

use crate::support::origin::{Fault, Origin, Resource};
use crate::support::{self, data, wait_state};

async fn start(
    e: &Engine,
    url: String,
    dest: std::path::PathBuf,
    props: Vec<PropertyChange>,
) -> JobId {
    let id = e.create_job("fault", JobType::Download).await.unwrap();
    e.add_files(id, vec![NewFile::new(url, dest)])
        .await
        .unwrap();
    for p in props {
        e.set_property(id, p).await.unwrap();
    }
    e.resume(id).await.unwrap();
    id
}

#[tokio::test]
async fn a_503_is_transient_and_retried_after_the_minimum_retry_delay() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(50_000, 30);
    origin.put(
        "/t.bin",
        Resource::new(body.clone()).fault(Fault::Status(503, None), 1),
    );
    let e = support::engine(dir.path()).await;
    let dest = dir.path().join("t.bin");
    let id = start(
        &e,
        origin.url("/t.bin"),
        dest.clone(),
        vec![PropertyChange::MinimumRetryDelay(5)],
    )
    .await;
    let j = wait_state(&e, id, JobState::TransientError, 10).await;
    let err = j.error.unwrap();
    assert_eq!(
        (err.code, err.context),
        (ErrorCode::http(503), ErrorContext::RemoteFile)
    );
    assert_eq!(j.error_count, 1);
    wait_state(&e, id, JobState::Transferred, 20).await;
    let log = origin.log("/t.bin");
    assert_eq!(log.len(), 2);
    assert!(
        log[1].at - log[0].at >= Duration::from_millis(4900),
        "retried too early: {:?}",
        log[1].at - log[0].at
    );
    e.complete(id).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    e.shutdown().await;
}

#[tokio::test]
async fn a_429_retry_after_longer_than_the_delay_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put(
        "/t.bin",
        Resource::new(data(1000, 31)).fault(Fault::Status(429, Some("7".into())), 1),
    );
    let e = support::engine(dir.path()).await;
    let id = start(
        &e,
        origin.url("/t.bin"),
        dir.path().join("t"),
        vec![PropertyChange::MinimumRetryDelay(5)],
    )
    .await;
    wait_state(&e, id, JobState::Transferred, 20).await;
    let log = origin.log("/t.bin");
    assert!(
        log[1].at - log[0].at >= Duration::from_millis(6900),
        "Retry-After ignored"
    );
    e.shutdown().await;
}

#[tokio::test]
async fn no_progress_for_the_timeout_turns_transient_into_error() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put(
        "/down.bin",
        Resource::new(data(1000, 32)).fault(Fault::Status(503, None), 0),
    );
    let e = support::engine(dir.path()).await;
    let props = vec![
        PropertyChange::MinimumRetryDelay(5),
        PropertyChange::NoProgressTimeout(7),
    ];
    let id = start(&e, origin.url("/down.bin"), dir.path().join("d"), props).await;
    wait_state(&e, id, JobState::TransientError, 10).await;
    let j = wait_state(&e, id, JobState::Error, 20).await;
    assert_eq!(j.error.unwrap().code, ErrorCode::http(503));
    // Tried at 0 s and retried once at 5 s; at 7 s, no progress since 0 s: Error.
    assert_eq!(origin.log("/down.bin").len(), 2);
    assert_eq!(j.error_count, 2);
    // A timeout of 0 means no retries at all.
    let id = start(
        &e,
        origin.url("/down.bin"),
        dir.path().join("d0"),
        vec![PropertyChange::NoProgressTimeout(0)],
    )
    .await;
    wait_state(&e, id, JobState::Error, 10).await;
    e.shutdown().await;
}

#[tokio::test]
async fn permanent_http_errors_go_straight_to_error() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put(
        "/forbidden",
        Resource::new(vec![1]).fault(Fault::Status(403, None), 0),
    );
    let e = support::engine(dir.path()).await;
    for (path, code) in [("/forbidden", 403), ("/absent", 404)] {
        let id = start(&e, origin.url(path), dir.path().join(&path[1..]), vec![]).await;
        let j = wait_state(&e, id, JobState::Error, 10).await;
        assert_eq!(j.error.unwrap().code, ErrorCode::http(code));
        assert_eq!(j.error_count, 1);
    }
    e.shutdown().await;
}

/// A body broken part-way is a transient error; Resume retries at once and resumes with Range.
async fn broken_body_resumes(fault: Fault, code: ErrorCode) {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(400_000, 33);
    origin.put("/b.bin", Resource::new(body.clone()).fault(fault, 1));
    let e = support::engine(dir.path()).await;
    let dest = dir.path().join("b.bin");
    let id = start(&e, origin.url("/b.bin"), dest.clone(), vec![]).await;
    let j = wait_state(&e, id, JobState::TransientError, 20).await;
    let err = j.error.unwrap();
    assert_eq!(
        (err.code, err.context),
        (code, ErrorContext::GeneralTransport),
        "{}",
        err.description
    );
    assert!(j.bytes_transferred > 0, "progress before the fault is kept");
    e.resume(id).await.unwrap();
    wait_state(&e, id, JobState::Transferred, 20).await;
    e.complete(id).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    let log = origin.log("/b.bin");
    assert_eq!(
        log[1].range.as_deref(),
        Some(format!("bytes={}-", j.bytes_transferred).as_str())
    );
    e.shutdown().await;
}

#[tokio::test]
async fn a_stalled_body_times_out() {
    broken_body_resumes(Fault::StallAfter(100_000), ErrorCode::E_TIMEOUT).await;
}

#[tokio::test]
async fn a_reset_connection_is_transient() {
    broken_body_resumes(
        Fault::ResetAfter(100_000),
        ErrorCode::BG_E_CONNECTION_CLOSED,
    )
    .await;
}

#[tokio::test]
async fn a_truncated_body_is_transient() {
    broken_body_resumes(
        Fault::TruncateAfter(100_000),
        ErrorCode::BG_E_CONNECTION_CLOSED,
    )
    .await;
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = support::engine(dir.path()).await;
    let id = start(
        &e,
        format!("http://127.0.0.1:{port}/x"),
        dir.path().join("x"),
        vec![],
    )
    .await;
    let j = wait_state(&e, id, JobState::TransientError, 10).await;
    let err = j.error.unwrap();
    assert_eq!(
        (err.code, err.context),
        (
            ErrorCode::BG_E_CONNECT_FAILURE,
            ErrorContext::GeneralTransport
        )
    );
    e.shutdown().await;
}

#[tokio::test]
async fn a_local_file_that_cannot_be_written_is_permanent() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put("/w.bin", Resource::new(data(1000, 34)));
    let target = dir.path().join("gone");
    std::fs::create_dir(&target).unwrap();
    let e = support::engine(dir.path()).await;
    let id = e.create_job("local", JobType::Download).await.unwrap();
    e.add_files(
        id,
        vec![NewFile::new(origin.url("/w.bin"), target.join("w.bin"))],
    )
    .await
    .unwrap();
    std::fs::remove_dir(&target).unwrap();
    e.resume(id).await.unwrap();
    let j = wait_state(&e, id, JobState::Error, 10).await;
    let err = j.error.unwrap();
    assert_eq!(err.context, ErrorContext::LocalFile);
    assert_eq!(err.code, ErrorCode::E_FILE_NOT_FOUND);
    assert!(
        err.description.contains(&target.display().to_string()),
        "{}",
        err.description
    );
    e.shutdown().await;
}

#[tokio::test]
async fn the_maximum_download_time_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put(
        "/slow.bin",
        Resource::new(data(1_000_000, 35)).rate(100_000),
    );
    let e = support::engine(dir.path()).await;
    let id = start(
        &e,
        origin.url("/slow.bin"),
        dir.path().join("s"),
        vec![PropertyChange::MaximumDownloadTime(1)],
    )
    .await;
    let j = wait_state(&e, id, JobState::Error, 10).await;
    assert_eq!(j.error.unwrap().code, ErrorCode::BG_E_MAXDOWNLOAD_TIMEOUT);
    assert!(j.bytes_transferred < 1_000_000);
    e.shutdown().await;
}
