//! The core cases against a real server: nginx (ETag, Range, If-Range as nginx does them).

use ebb::{ErrorCode, JobState, JobType, NewFile};

use crate::support::nginx::Nginx;
use crate::support::{self, Cli, data, finish, start_job, suspend_after, wait_state};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_several_files_from_nginx() {
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start();
    let files: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("f{i}"), data(1_000_000 + i * 777, i as u8)))
        .collect();
    let mut args = vec!["transfer".to_owned()];
    for (name, body) in &files {
        std::fs::write(nginx.root.join(name), body).unwrap();
        args.push(nginx.url(&format!("/{name}")));
        args.push(dir.path().join(name).display().to_string());
    }
    let cli = Cli::new(dir.path());
    cli.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    for (name, body) in &files {
        assert_eq!(&std::fs::read(dir.path().join(name)).unwrap(), body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_uses_range_and_if_range_with_nginx_etag() {
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start();
    let body = data(4_000_000, 50);
    std::fs::write(nginx.root.join("r.bin"), &body).unwrap();
    let e = support::engine(dir.path()).await;
    let dest = dir.path().join("r.bin");
    let id = start_job(&e, nginx.url("/slow/r.bin"), &dest).await;
    let kept = suspend_after(&e, id, 500_000).await;
    e.set_remote_name(id, 0, &nginx.url("/r.bin"))
        .await
        .unwrap();
    finish(&e, id).await;
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    let log = nginx.log("/r.bin");
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(
        log[0].starts_with(&format!("/r.bin 206 range=\"bytes={kept}-\" ifrange=\"")),
        "{}",
        log[0]
    );
    assert!(
        !log[0].contains("ifrange=\"\""),
        "If-Range was not sent: {}",
        log[0]
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_on_nginx_is_fetched_again_whole() {
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start();
    std::fs::write(nginx.root.join("c.bin"), data(4_000_000, 51)).unwrap();
    let e = support::engine(dir.path()).await;
    let dest = dir.path().join("c.bin");
    let id = start_job(&e, nginx.url("/slow/c.bin"), &dest).await;
    suspend_after(&e, id, 500_000).await;
    let newer = data(3_000_000, 52);
    std::fs::write(nginx.root.join("c.bin"), &newer).unwrap();
    finish(&e, id).await;
    assert_eq!(std::fs::read(&dest).unwrap(), newer);
    let log = nginx.log("/slow/c.bin");
    assert!(
        log.last()
            .unwrap()
            .starts_with("/slow/c.bin 200 range=\"bytes="),
        "{log:?}"
    );
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_file_on_nginx_is_an_http_404_error() {
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start();
    let e = support::engine(dir.path()).await;
    let id = e.create_job("nginx", JobType::Download).await.unwrap();
    e.add_files(
        id,
        vec![NewFile::new(nginx.url("/nope"), dir.path().join("n"))],
    )
    .await
    .unwrap();
    e.resume(id).await.unwrap();
    let j = wait_state(&e, id, JobState::Error, 20).await;
    assert_eq!(j.error.unwrap().code, ErrorCode::http(404));
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_then_resume_against_nginx() {
    let dir = tempfile::tempdir().unwrap();
    let nginx = Nginx::start();
    let body = data(6_000_000, 53);
    std::fs::write(nginx.root.join("k.bin"), &body).unwrap();
    let cli = Cli::new(dir.path());
    let dest = dir.path().join("k.bin");
    let id = cli.ok(&["create", "k"]).trim().to_owned();
    cli.ok(&[
        "add-file",
        &id,
        &nginx.url("/slow/k.bin"),
        dest.to_str().unwrap(),
    ]);
    let mut child = cli.command(&["resume", &id, "--wait"]).spawn().unwrap();
    cli.poll_info(&id, |j| j["bytes_transferred"].as_u64() >= Some(1_000_000));
    child.kill().unwrap();
    child.wait().unwrap();
    let durable = cli.json(&["info", &id, "--json"])["bytes_transferred"]
        .as_u64()
        .unwrap();
    cli.ok(&["resume", &id, "--wait"]);
    cli.ok(&["complete", &id]);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    let log = nginx.log("/slow/k.bin");
    assert!(
        log.last()
            .unwrap()
            .starts_with(&format!("/slow/k.bin 206 range=\"bytes={durable}-\"")),
        "{log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_many_files_speaks_http2_when_nginx_offers_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = support::certs::TestCa::new();
    let (cert, key) = ca.leaf_pem(&support::certs::Leaf::good(7));
    let nginx = Nginx::start_tls(&cert, &key);
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let mut config = support::config(dir.path());
    config.http.ca_certificates = vec![ca_file];
    let e = ebb::Engine::open(config).await.unwrap();
    let bodies: Vec<Vec<u8>> = (0..12).map(|i| data(64 * 1024 + i, i as u8)).collect();
    let mut files = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        std::fs::write(nginx.root.join(format!("h{i}")), body).unwrap();
        files.push(NewFile::new(
            nginx.url(&format!("/h{i}")),
            dir.path().join(format!("h{i}")),
        ));
    }
    let id = e.create_job("h2", JobType::Download).await.unwrap();
    e.add_files(id, files).await.unwrap();
    finish(&e, id).await;
    let mut connections = std::collections::BTreeSet::new();
    for (i, body) in bodies.iter().enumerate() {
        assert!(&std::fs::read(dir.path().join(format!("h{i}"))).unwrap() == body);
        let log = nginx.log(&format!("/h{i}"));
        assert_eq!(log.len(), 1, "{log:?}");
        assert!(log[0].contains(" proto=HTTP/2.0 "), "{}", log[0]);
        connections.insert(log[0].rsplit("conn=").next().unwrap().to_owned());
    }
    // Requests share connections (as streams of one, or a few), not one connection each.
    assert!(connections.len() < bodies.len(), "{connections:?}");
    e.shutdown().await;
}
