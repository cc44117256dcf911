//! Every transition of BITS's job life cycle, properties through the store, and bad input.

use ebb::{
    BasicCredentials, CredentialTarget, CustomHeader, Engine, Error, ErrorCode, JobState, JobType,
    NewFile, NotifyCommandLine, NotifyFlags, Priority, PropertyChange, ProxySettings,
    ResumeOutcome, SecurityFlags,
};

use crate::support::origin::{Origin, Resource};
use crate::support::{self, data, wait_for, wait_state};

#[tokio::test]
async fn new_job_is_suspended_and_resume_without_files_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let e = support::engine(dir.path()).await;
    let id = e.create_job("empty", JobType::Download).await.unwrap();
    let j = e.job(id).await.unwrap();
    assert_eq!(j.state, JobState::Suspended);
    assert_eq!(
        (j.bytes_transferred, j.files_total, j.error_count),
        (0, 0, 0)
    );
    let err = e.resume(id).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::BG_E_EMPTY);
    assert_eq!(e.job(id).await.unwrap().state, JobState::Suspended);
    e.shutdown().await;
}

#[tokio::test]
async fn download_transferred_then_complete_makes_the_file_appear() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(300_000, 1);
    origin.put("/a.bin", Resource::new(body.clone()));
    let e = support::engine(dir.path()).await;
    let mut events = e.subscribe();
    let id = e.create_job("one", JobType::Download).await.unwrap();
    let dest = dir.path().join("a.bin");
    e.add_files(id, vec![NewFile::new(origin.url("/a.bin"), &dest)])
        .await
        .unwrap();
    assert_eq!(e.resume(id).await.unwrap(), ResumeOutcome::Queued);
    let j = wait_state(&e, id, JobState::Transferred, 20).await;
    assert_eq!(
        (j.bytes_transferred, j.bytes_total),
        (300_000, Some(300_000))
    );
    assert_eq!(j.files_transferred, 1);
    assert!(j.completed_at.is_some());
    // Nothing at the final name before Complete.
    assert!(!dest.exists());
    assert_eq!(support::temp_files(dir.path()).len(), 1);
    let done = e.complete(id).await.unwrap();
    assert_eq!(done.code, ErrorCode::S_OK);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert!(support::temp_files(dir.path()).is_empty());
    assert_eq!(e.job(id).await.unwrap().state, JobState::Acknowledged);
    // Events: the file, then the job.
    let mut seen = Vec::new();
    while let Ok(ev) = events.try_recv() {
        seen.push(ev);
    }
    let file_at = seen
        .iter()
        .position(|e| matches!(e, ebb::Event::FileTransferred { file_index: 0, .. }));
    let job_at = seen
        .iter()
        .position(|e| matches!(e, ebb::Event::JobTransferred { .. }));
    assert!(
        file_at.is_some() && job_at.is_some() && file_at < job_at,
        "{seen:?}"
    );
    e.shutdown().await;
}

#[tokio::test]
async fn final_states_refuse_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let e = support::engine(dir.path()).await;
    let dest = dir.path().join("x");
    for end in [JobState::Acknowledged, JobState::Cancelled] {
        let id = e.create_job("final", JobType::Download).await.unwrap();
        e.add_files(id, vec![NewFile::new("http://127.0.0.1:9/x", &dest)])
            .await
            .unwrap();
        if end == JobState::Cancelled {
            e.cancel(id).await.unwrap();
        } else {
            let c = e.complete(id).await.unwrap();
            assert_eq!(c.code, ErrorCode::BG_S_PARTIAL_COMPLETE);
        }
        assert_eq!(e.job(id).await.unwrap().state, end);
        let errors = [
            e.resume(id).await.unwrap_err(),
            e.suspend(id).await.unwrap_err(),
            e.cancel(id).await.unwrap_err(),
            e.complete(id).await.unwrap_err(),
            e.set_property(id, PropertyChange::Priority(Priority::High))
                .await
                .unwrap_err(),
            e.add_files(
                id,
                vec![NewFile::new("http://127.0.0.1:9/y", dir.path().join("y"))],
            )
            .await
            .unwrap_err(),
            e.replace_remote_prefix(id, "http://", "https://")
                .await
                .unwrap_err(),
        ];
        for err in errors {
            assert_eq!(err.code(), ErrorCode::BG_E_INVALID_STATE, "{err}");
        }
    }
    e.shutdown().await;
}

#[tokio::test]
async fn suspend_keeps_progress_and_resume_continues_with_a_range_request() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(1_000_000, 2);
    origin.put("/s.bin", Resource::new(body.clone()).rate(1_000_000));
    let e = support::engine(dir.path()).await;
    let id = e.create_job("suspend", JobType::Download).await.unwrap();
    let dest = dir.path().join("s.bin");
    e.add_files(id, vec![NewFile::new(origin.url("/s.bin"), &dest)])
        .await
        .unwrap();
    e.resume(id).await.unwrap();
    wait_for(&e, id, 10, |j| j.bytes_transferred > 200_000).await;
    e.suspend(id).await.unwrap();
    let j = e.job(id).await.unwrap();
    assert_eq!(j.state, JobState::Suspended);
    let kept = j.bytes_transferred;
    assert!(kept > 0 && kept < 1_000_000);
    // Suspend is idempotent.
    e.suspend(id).await.unwrap();
    origin.update("/s.bin", |r| r.rate = None);
    e.resume(id).await.unwrap();
    wait_state(&e, id, JobState::Transferred, 20).await;
    e.complete(id).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    let log = origin.log("/s.bin");
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(
        log[1].range.as_deref(),
        Some(format!("bytes={kept}-").as_str())
    );
    assert_eq!(
        log[1].if_range.as_deref(),
        Resource::new(body).etag.as_deref()
    );
    assert_eq!(log[1].status, 206);
    e.shutdown().await;
}

#[tokio::test]
async fn cancel_removes_temp_files_and_never_touches_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put("/c.bin", Resource::new(data(2_000_000, 3)).rate(500_000));
    let dest = dir.path().join("precious.txt");
    std::fs::write(&dest, b"mine").unwrap();
    let e = support::engine(dir.path()).await;
    let id = e.create_job("cancel", JobType::Download).await.unwrap();
    e.add_files(id, vec![NewFile::new(origin.url("/c.bin"), &dest)])
        .await
        .unwrap();
    e.resume(id).await.unwrap();
    wait_for(&e, id, 10, |j| j.bytes_transferred > 0).await;
    assert_eq!(support::temp_files(dir.path()).len(), 1);
    e.cancel(id).await.unwrap();
    assert_eq!(e.job(id).await.unwrap().state, JobState::Cancelled);
    assert!(support::temp_files(dir.path()).is_empty());
    assert_eq!(std::fs::read(&dest).unwrap(), b"mine");
    e.shutdown().await;
}

#[tokio::test]
async fn partial_complete_keeps_finished_files() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put("/ok.bin", Resource::new(data(10_000, 4)));
    let e = support::engine(dir.path()).await;
    let id = e.create_job("partial", JobType::Download).await.unwrap();
    let (ok, missing) = (dir.path().join("ok.bin"), dir.path().join("missing.bin"));
    e.add_files(
        id,
        vec![
            NewFile::new(origin.url("/ok.bin"), &ok),
            NewFile::new(origin.url("/missing.bin"), &missing),
        ],
    )
    .await
    .unwrap();
    e.resume(id).await.unwrap();
    let j = wait_state(&e, id, JobState::Error, 20).await;
    let err = j.error.unwrap();
    assert_eq!(err.code, ErrorCode::http(404));
    assert_eq!(err.context, ebb::ErrorContext::RemoteFile);
    assert_eq!(err.file.unwrap().index, 1);
    assert_eq!(j.files_transferred, 1);
    let done = e.complete(id).await.unwrap();
    assert_eq!(done.code, ErrorCode::BG_S_PARTIAL_COMPLETE);
    assert_eq!((done.files_kept, done.files_dropped), (1, 1));
    assert_eq!(std::fs::read(&ok).unwrap(), data(10_000, 4));
    assert!(!missing.exists());
    assert!(support::temp_files(dir.path()).is_empty());
    e.shutdown().await;
}

#[tokio::test]
async fn every_property_round_trips_through_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let e = support::engine(dir.path()).await;
    let id = e.create_job("props", JobType::Download).await.unwrap();
    let changes = vec![
        PropertyChange::DisplayName("renamed".into()),
        PropertyChange::Description("a description".into()),
        PropertyChange::Priority(Priority::Low),
        PropertyChange::MinimumRetryDelay(42),
        PropertyChange::NoProgressTimeout(4242),
        PropertyChange::MaximumDownloadTime(424_242),
        PropertyChange::NotifyFlags(NotifyFlags::new(0x13).unwrap()),
        PropertyChange::NotifyCommandLine(Some(
            NotifyCommandLine::parse("/bin/true a 'b c'").unwrap(),
        )),
        PropertyChange::CustomHeaders(vec![
            CustomHeader::parse("X-One: 1").unwrap(),
            CustomHeader::parse("X-Two: two").unwrap(),
        ]),
        PropertyChange::Proxy(
            ProxySettings::parse("override:http://127.0.0.1:3128;<local>").unwrap(),
        ),
        PropertyChange::Credentials(
            CredentialTarget::Server,
            Some(BasicCredentials::new("ann", "pw").unwrap()),
        ),
        PropertyChange::Credentials(
            CredentialTarget::Proxy,
            Some(BasicCredentials::new("bob", "pw2").unwrap()),
        ),
        PropertyChange::SecurityFlags(SecurityFlags::new(0xA01).unwrap()),
    ];
    for c in changes {
        e.set_property(id, c).await.unwrap();
    }
    let before = e.job(id).await.unwrap();
    e.shutdown().await;
    drop(e);
    let e = support::engine(dir.path()).await;
    let after = e.job(id).await.unwrap();
    assert_eq!(before, after);
    assert_eq!(after.display_name, "renamed");
    assert_eq!(after.properties.minimum_retry_delay, 42);
    assert_eq!(
        after.properties.security_flags.redirect_policy(),
        ebb::RedirectPolicy::Disallow
    );
    assert_eq!(after.credentials.server_user.as_deref(), Some("ann"));
    // The retry delay floor is 5 s.
    e.set_property(id, PropertyChange::MinimumRetryDelay(1))
        .await
        .unwrap();
    assert_eq!(e.job(id).await.unwrap().properties.minimum_retry_delay, 5);
    e.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let e = support::engine(dir.path()).await;
    let id = e.create_job("bad", JobType::Download).await.unwrap();
    let ok_url = "http://127.0.0.1:9/f";
    let cases: Vec<(NewFile, &str)> = vec![
        (NewFile::new(ok_url, "relative/f.bin"), "relative"),
        (NewFile::new(ok_url, dir.path().join("a/../f.bin")), ".."),
        (NewFile::new(ok_url, dir.path()), "directory"),
        (
            NewFile::new(ok_url, dir.path().join("no/such/dir/f.bin")),
            "cannot be used",
        ),
        (
            NewFile::new("gopher://127.0.0.1/f", dir.path().join("f.bin")),
            "scheme",
        ),
        (
            NewFile::new("http://127.0.0.1/f\r\nX: y", dir.path().join("f.bin")),
            "control",
        ),
        (
            NewFile::new("not a url", dir.path().join("f.bin")),
            "not valid",
        ),
    ];
    for (file, says) in cases {
        let err = e.add_files(id, vec![file.clone()]).await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{file:?}: {err}");
        assert!(err.to_string().contains(says), "{file:?}: {err}");
    }
    // One bad file in a batch: none is added.
    let batch = vec![
        NewFile::new(ok_url, dir.path().join("good.bin")),
        NewFile::new(ok_url, "rel"),
    ];
    assert!(e.add_files(id, batch).await.is_err());
    assert_eq!(e.job(id).await.unwrap().files_total, 0);
    let header = CustomHeader::parse("X-Evil: a\r\nHost: other");
    assert!(header.is_err());
    assert!(header.unwrap_err().to_string().contains("CR"));
    // Uploads: one file only, and it must be there to be sent.
    let up = e.create_job("up", JobType::Upload).await.unwrap();
    let err = e
        .add_files(up, vec![NewFile::new(ok_url, dir.path().join("u1"))])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot be uploaded"), "{err}");
    std::fs::write(dir.path().join("u1"), b"up").unwrap();
    e.add_files(up, vec![NewFile::new(ok_url, dir.path().join("u1"))])
        .await
        .unwrap();
    let err = e
        .add_files(up, vec![NewFile::new(ok_url, dir.path().join("u2"))])
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::BG_E_TOO_MANY_FILES);
    let up2 = e.create_job("up2", JobType::Upload).await.unwrap();
    let err = e
        .add_files(
            up2,
            vec![NewFile::new("file:///etc/hostname", dir.path().join("u1"))],
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("http or https"), "{err}");
    e.shutdown().await;
}

#[tokio::test]
async fn a_second_engine_on_the_same_directory_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let e = support::engine(dir.path()).await;
    let err = Engine::open(support::config(dir.path())).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Locked { .. }), "{text}");
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    e.shutdown().await;
    drop(e);
    let again = Engine::open(support::config(dir.path())).await.unwrap();
    again.shutdown().await;
}

#[tokio::test]
async fn replace_remote_prefix_repairs_a_job_in_error() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put("/new/r.bin", Resource::new(data(5000, 5)));
    let e = support::engine(dir.path()).await;
    let id = e.create_job("repair", JobType::Download).await.unwrap();
    let dest = dir.path().join("r.bin");
    e.add_files(id, vec![NewFile::new(origin.url("/old/r.bin"), &dest)])
        .await
        .unwrap();
    e.resume(id).await.unwrap();
    wait_state(&e, id, JobState::Error, 20).await;
    let n = e
        .replace_remote_prefix(id, &origin.url("/old/"), &origin.url("/new/"))
        .await
        .unwrap();
    assert_eq!(n, 1);
    e.resume(id).await.unwrap();
    wait_state(&e, id, JobState::Transferred, 20).await;
    // Its bytes are here: a new remote name would make `files` lie about where they came from.
    let refused = e
        .set_remote_name(id, 0, &origin.url("/other/r.bin"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::BG_E_INVALID_STATE);
    assert_eq!(
        e.job(id).await.unwrap().files[0].remote_url,
        origin.url("/new/r.bin")
    );
    e.complete(id).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data(5000, 5));
    e.shutdown().await;
}

#[tokio::test]
async fn inactive_jobs_are_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = support::config(dir.path());
    c.job_inactivity_timeout = std::time::Duration::from_secs(1);
    let e = Engine::open(c).await.unwrap();
    let id = e.create_job("idle", JobType::Download).await.unwrap();
    // Nothing wakes the scheduler but its own clock.
    wait_state(&e, id, JobState::Cancelled, 10).await;
    e.shutdown().await;
}

#[tokio::test]
async fn a_transferred_job_takes_new_files_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put("/1", Resource::new(data(1000, 6)));
    origin.put("/2", Resource::new(data(2000, 7)));
    let e = support::engine(dir.path()).await;
    let id = e.create_job("more", JobType::Download).await.unwrap();
    e.add_files(
        id,
        vec![NewFile::new(origin.url("/1"), dir.path().join("1"))],
    )
    .await
    .unwrap();
    e.resume(id).await.unwrap();
    wait_state(&e, id, JobState::Transferred, 20).await;
    e.add_files(
        id,
        vec![NewFile::new(origin.url("/2"), dir.path().join("2"))],
    )
    .await
    .unwrap();
    assert_eq!(e.job(id).await.unwrap().state, JobState::Transferred);
    assert_eq!(e.resume(id).await.unwrap(), ResumeOutcome::Queued);
    let j = wait_state(&e, id, JobState::Transferred, 20).await;
    assert_eq!((j.files_transferred, j.bytes_transferred), (2, 3000));
    // Only the new file was fetched again.
    assert_eq!(origin.log("/1").len(), 1);
    e.complete(id).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("2")).unwrap(), data(2000, 7));
    e.shutdown().await;
}

#[tokio::test]
async fn a_complete_that_cannot_rename_leaves_the_job_transferred() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    origin.put("/x", Resource::new(data(1000, 8)));
    let e = support::engine(dir.path()).await;
    let dest = dir.path().join("x");
    let id = e.create_job("rename", JobType::Download).await.unwrap();
    e.add_files(id, vec![NewFile::new(origin.url("/x"), &dest)])
        .await
        .unwrap();
    e.resume(id).await.unwrap();
    wait_state(&e, id, JobState::Transferred, 20).await;
    // Someone puts a directory (with a file in it) at the final name.
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("inside"), b"x").unwrap();
    let err = e.complete(id).await.unwrap_err();
    assert!(
        err.to_string().contains(&dest.display().to_string()),
        "{err}"
    );
    assert_eq!(e.job(id).await.unwrap().state, JobState::Transferred);
    assert_eq!(support::temp_files(dir.path()).len(), 1);
    std::fs::remove_dir_all(&dest).unwrap();
    e.complete(id).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data(1000, 8));
    e.shutdown().await;
}

#[tokio::test]
async fn a_symlink_planted_at_the_temporary_name_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(50_000, 9);
    origin.put("/s", Resource::new(body.clone()));
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, b"do not touch").unwrap();
    let e = support::engine(dir.path()).await;
    let dest = dir.path().join("s.bin");
    let id = e.create_job("symlink", JobType::Download).await.unwrap();
    e.add_files(id, vec![NewFile::new(origin.url("/s"), &dest)])
        .await
        .unwrap();
    let temp = e.job(id).await.unwrap().files[0].temp_path.clone();
    assert_eq!(temp.parent(), dest.parent());
    assert!(
        temp.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(".ebb-")
    );
    std::os::unix::fs::symlink(&victim, &temp).unwrap();
    e.resume(id).await.unwrap();
    wait_state(&e, id, JobState::Transferred, 20).await;
    e.complete(id).await.unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"do not touch");
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert!(
        !std::fs::symlink_metadata(&dest)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    e.shutdown().await;
}

#[tokio::test]
async fn open_picks_a_backend_by_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let b = ebb::open(ebb::Choice::Engine(Box::new(support::config(dir.path()))))
        .await
        .unwrap();
    let id = b.create_job("chosen", JobType::Download).await.unwrap();
    assert_eq!(b.job(id).await.unwrap().state, JobState::Suspended);
    // Native BITS exists only on Windows: elsewhere a plain "unavailable".
    let e = ebb::open(ebb::Choice::Native).await.err().unwrap();
    assert_eq!(e.code(), ErrorCode::E_NOTIMPL);
    assert!(e.to_string().contains("only on Windows"), "{e}");
    // A daemon socket with no daemon: an error that names the socket.
    let sock = dir.path().join("none.sock");
    let e = ebb::open(ebb::Choice::Daemon(sock.clone()))
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains(&sock.display().to_string()), "{e}");
}
