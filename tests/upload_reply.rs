//! Upload-reply end to end: ebb's client against `ebb-server`, whose server application (here, a
//! small one that answers with the upload reversed) is told by reference or by value. The reply
//! comes back byte for byte, appears at its name at Complete, and the reply API keeps BITS's
//! rules: the 1 MiB limit of reply data, reply file names, states and job types.

use std::path::Path;

use axum::http::{HeaderMap, StatusCode};
use ebb::{Backend, Engine, ErrorCode, ErrorContext, JobId, JobState, JobType, NewFile};
use ebb_server::Notification;

use crate::support::{self, data, wait_state};
use crate::uploads::Server;

/// The server application: the upload reversed is its reply; `/no` refuses with 403.
async fn application() -> String {
    let app = axum::Router::new().fallback(
        |uri: axum::http::Uri, headers: HeaderMap, body: axum::body::Bytes| async move {
            if uri.path() == "/no" {
                return (StatusCode::FORBIDDEN, Vec::new());
            }
            let header = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_owned());
            match header("bits-request-datafile-name") {
                Some(file) => {
                    let mut upload = std::fs::read(file).unwrap();
                    upload.reverse();
                    let out = header("bits-response-datafile-name").unwrap();
                    std::fs::write(out, upload).unwrap();
                    (StatusCode::OK, Vec::new())
                }
                None => (StatusCode::OK, body.iter().rev().copied().collect()),
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn reply_job(e: &Engine, url: &str, source: &Path, reply: Option<&Path>) -> JobId {
    let id = e.create_job("reply", JobType::UploadReply).await.unwrap();
    if let Some(r) = reply {
        e.set_reply_file_name(id, Some(r.to_path_buf()))
            .await
            .unwrap();
    }
    e.add_files(id, vec![NewFile::new(url, source)])
        .await
        .unwrap();
    e.resume(id).await.unwrap();
    id
}

fn reversed(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().rev().copied().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reply_comes_back_by_reference_and_by_value() {
    let app = application().await;
    for (how, notification) in [
        (
            "by reference",
            Notification::ByReference { url: app.clone() },
        ),
        ("by value", Notification::ByValue { url: app.clone() }),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let server = Server::start(&root, |d| d.notification = Some(notification)).await;
        let e = support::engine(dir.path()).await;
        let body = data(200_000, 21);
        let source = dir.path().join("q.bin");
        std::fs::write(&source, &body).unwrap();
        let id = reply_job(&e, &server.url("q.bin"), &source, None).await;
        let info = wait_state(&e, id, JobState::Transferred, 30).await;
        let name = info.reply_file_name.clone().unwrap();
        assert_eq!(name.parent(), source.parent(), "{how}: beside the upload");
        let progress = e.reply_progress(id).await.unwrap();
        assert_eq!(
            (progress.bytes_total, progress.bytes_transferred),
            (Some(200_000), 200_000),
            "{how}"
        );
        assert_eq!(e.reply_data(id).await.unwrap(), reversed(&body), "{how}");
        assert!(!name.exists(), "{how}: the reply appears only at Complete");
        assert_eq!(
            server.app.session_count(),
            0,
            "{how}: Close-Session came after the reply"
        );
        e.complete(id).await.unwrap();
        assert_eq!(std::fs::read(&name).unwrap(), reversed(&body), "{how}");
        assert_eq!(e.reply_data(id).await.unwrap(), reversed(&body), "{how}");
        assert_eq!(
            support::temp_files(dir.path()),
            Vec::<std::path::PathBuf>::new()
        );
        e.shutdown().await;
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_over_1_mib_is_a_file_and_names_are_the_apps() {
    let app = application().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, |d| {
        d.notification = Some(Notification::ByValue { url: app.clone() });
    })
    .await;
    let e = support::engine(dir.path()).await;
    let body = data(1_500_000, 22);
    let source = dir.path().join("big.bin");
    std::fs::write(&source, &body).unwrap();
    let chosen = dir.path().join("answer.bin");
    let id = reply_job(&e, &server.url("big.bin"), &source, Some(&chosen)).await;
    wait_state(&e, id, JobState::Transferred, 30).await;
    let err = e.reply_data(id).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::BG_E_TOO_LARGE);
    assert!(err.to_string().contains("1500000 bytes"), "{err}");
    assert_eq!(e.reply_file_name(id).await.unwrap(), Some(chosen.clone()));
    // Too late to change it now.
    let late = e
        .set_reply_file_name(id, Some(dir.path().join("other.bin")))
        .await
        .unwrap_err();
    assert_eq!(late.code(), ErrorCode::BG_E_INVALID_STATE, "{late}");
    e.complete(id).await.unwrap();
    assert_eq!(std::fs::read(&chosen).unwrap(), reversed(&body));

    // The rules of the reply calls.
    let download = e.create_job("d", JobType::Download).await.unwrap();
    for err in [
        e.reply_data(download).await.unwrap_err(),
        e.reply_progress(download).await.unwrap_err(),
        e.set_reply_file_name(download, Some(dir.path().join("r")))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.code(), ErrorCode::E_NOTIMPL, "{err}");
    }
    let early = e.create_job("r", JobType::UploadReply).await.unwrap();
    let err = e.reply_data(early).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::BG_E_INVALID_STATE, "{err}");
    assert_eq!(e.reply_file_name(early).await.unwrap(), None);
    for bad in ["relative/r.bin", "/no/such/dir/r.bin"] {
        let err = e
            .set_reply_file_name(early, Some(bad.into()))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ebb::Error::InvalidArgument(_)),
            "{bad}: {err}"
        );
    }
    e.shutdown().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_that_refuses_is_the_jobs_error() {
    let app = application().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, |d| {
        d.notification = Some(Notification::ByValue {
            url: format!("{app}/no"),
        });
    })
    .await;
    let e = support::engine(dir.path()).await;
    let source = dir.path().join("n.bin");
    std::fs::write(&source, data(10_000, 23)).unwrap();
    let id = reply_job(&e, &server.url("n.bin"), &source, None).await;
    let info = wait_state(&e, id, JobState::Error, 30).await;
    let error = info.error.unwrap();
    assert_eq!(error.context, ErrorContext::RemoteApplication, "{error:?}");
    // The error was in the upload half: the reply's size is unknown.
    assert_eq!(info.reply_progress.unwrap().bytes_total, None);
    e.shutdown().await;
    server.stop().await;
}

/// `ebb transfer --upload-reply`, `ebb reply`, `ebb set --reply-file`, `ebb info`, and
/// BITSAdmin's reply verbs, in the CLI's own engine and through `ebbd`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_lines_fetch_the_reply() {
    let app = application().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, |d| {
        d.notification = Some(Notification::ByReference { url: app.clone() });
    })
    .await;
    let body = data(5_000, 24);
    let source = dir.path().join("c.bin");
    std::fs::write(&source, &body).unwrap();
    let src = source.to_str().unwrap();
    let mut daemon = None;
    for (cli, mode) in [
        (support::Cli::new(dir.path()), "embedded"),
        (support::Cli::daemon(dir.path()), "daemon"),
    ] {
        let reply = dir.path().join(format!("{mode}.reply"));
        let url = server.url(&format!("{mode}.bin"));
        let out = cli.run(&[
            "transfer",
            "--upload-reply",
            &url,
            src,
            "--reply-file",
            reply.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        daemon = daemon.or(support::started_pid(&stderr).map(support::Started));
        assert!(out.status.success(), "{mode}: {out:?}");
        assert!(stderr.contains("reply is in"), "{mode}: {stderr}");
        assert_eq!(std::fs::read(&reply).unwrap(), reversed(&body), "{mode}");
    }
    reply_verbs(&server, dir.path(), &source, &body);
    drop(daemon);
    server.stop().await;
}

/// The reply verbs one by one, through the daemon.
fn reply_verbs(server: &Server, dir: &Path, source: &Path, body: &[u8]) {
    let src = source.to_str().unwrap();
    let cli = support::Cli::daemon(dir);
    let id = cli.ok(&["create", "--type", "upload-reply", "steps"]);
    let id = id.trim();
    let chosen = dir.join("steps.reply");
    cli.ok(&["set", id, "--reply-file", chosen.to_str().unwrap()]);
    cli.ok(&["add-file", id, &server.url("steps.bin"), src]);
    let out = cli.run(&["resume", id, "--wait"]);
    assert!(out.status.success(), "{out:?}");
    let data_out = cli.run(&["reply", id, "--data"]);
    assert_eq!(data_out.stdout, reversed(body));
    let summary = cli.json(&["reply", id, "--json"]);
    assert_eq!(summary["bytes_total"], 5000, "{summary}");
    assert_eq!(summary["reply_file_name"], chosen.to_str().unwrap());
    assert_eq!(
        cli.ok(&["reply", id, "--file"]).trim(),
        chosen.to_str().unwrap()
    );
    assert!(cli.ok(&["info", id]).contains("5000 / 5000"));
    let dump = cli.ok(&["bitsadmin", "/getreplydata", id]);
    assert!(dump.contains("Reply data: 5000 byte(s)"), "{dump}");
    let first = reversed(body)[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(dump.contains(&first), "{dump}");
    let name = cli.ok(&["bitsadmin", "/rawreturn", "/getreplyfilename", id]);
    assert_eq!(name.trim(), chosen.to_str().unwrap());
    let progress = cli.ok(&["bitsadmin", "/rawreturn", "/getreplyprogress", id]);
    assert_eq!(progress.trim(), "5000 / 5000");
    let late = cli.run(&["bitsadmin", "/setreplyfilename", id, "/tmp/x"]);
    assert!(!late.status.success(), "{late:?}");
    cli.ok(&["complete", id]);
    assert_eq!(std::fs::read(&chosen).unwrap(), reversed(body));
    let out = cli.run(&[
        "bitsadmin",
        "/transfer",
        "br",
        "/upload-reply",
        &server.url("ba.bin"),
        src,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("TYPE: UPLOAD-REPLY") && text.contains("Reply file: "),
        "{text}"
    );
}

/// The server names where the reply is; the job's credentials answer a challenge there only if
/// it is the upload's own origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_follow_a_reply_to_another_origin() {
    use std::sync::{Arc, Mutex};
    // Another origin that challenges, and notes any Authorization it is sent.
    let sent_auth = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = sent_auth.clone();
    let other = axum::Router::new().fallback(move |headers: HeaderMap| {
        let seen = seen.clone();
        async move {
            if let Some(a) = headers.get("authorization") {
                seen.lock().unwrap().push(a.to_str().unwrap().to_owned());
                return (StatusCode::OK, HeaderMap::new(), b"secret reply".to_vec());
            }
            let mut h = HeaderMap::new();
            h.insert("www-authenticate", "Basic realm=\"x\"".parse().unwrap());
            (StatusCode::UNAUTHORIZED, h, Vec::new())
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_url = format!("http://{}/reply", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, other).await.unwrap() });
    // The application names that origin as the reply (BITS-Static-Response-URL).
    let named = other_url.clone();
    let app = axum::Router::new().fallback(move || {
        let named = named.clone();
        async move {
            let mut h = HeaderMap::new();
            h.insert("BITS-Static-Response-URL", named.parse().unwrap());
            (StatusCode::OK, h)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_url = format!("http://{}/app", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, |d| {
        d.notification = Some(Notification::ByReference { url: app_url });
    })
    .await;
    let e = support::engine(dir.path()).await;
    let source = dir.path().join("s.bin");
    std::fs::write(&source, data(1_000, 25)).unwrap();
    let id = e.create_job("reply", JobType::UploadReply).await.unwrap();
    e.set_property(
        id,
        ebb::PropertyChange::Credentials(
            ebb::CredentialTarget::Server,
            Some(ebb::BasicCredentials::parse("ann:s3cret").unwrap()),
        ),
    )
    .await
    .unwrap();
    e.add_files(id, vec![NewFile::new(server.url("s.bin"), &source)])
        .await
        .unwrap();
    e.resume(id).await.unwrap();
    let info = wait_state(&e, id, JobState::Error, 30).await;
    assert_eq!(info.error.unwrap().code, ErrorCode::http(401));
    assert!(
        sent_auth.lock().unwrap().is_empty(),
        "credentials went to {other_url}"
    );
    e.shutdown().await;
    server.stop().await;
}
