//! Persisted formats are pinned: a queue written by this version of the schema (checked in
//! under `tests/fixtures/queue-v4/`) must open in every later version with every job, file,
//! property, error and sealed password as it was. `EBB_WRITE_FIXTURES=1` writes the fixture
//! anew (only when a migration deliberately changes what is stored).

use std::path::{Path, PathBuf};
use std::time::Duration;

use ebb::{
    BasicCredentials, ByteRange, CredentialTarget, CustomHeader, Engine, JobType, Limit, NewFile,
    NotifyCommandLine, NotifyFlags, Priority, PropertyChange, ProxySettings, SecurityFlags,
};

use crate::support::origin::{Origin, Resource};
use crate::support::{self, data};

const CREDENTIALS_OUT: &str = "/tmp/ebb-fixture-credentials.bin";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/queue-v4")
}

/// The fixture in a fresh directory laid out as `support::config` expects. Git keeps no file
/// modes but the executable bit: the key is made private again, as ebb insists.
fn copy_fixture(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::copy(fixture().join("ebb.db"), dir.join("data/ebb.db")).unwrap();
    let key = dir.join("secret.key");
    std::fs::copy(fixture().join("secret.key"), &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn every_property() -> Vec<PropertyChange> {
    vec![
        PropertyChange::Priority(Priority::High),
        PropertyChange::Description("all of them".into()),
        PropertyChange::MinimumRetryDelay(60),
        PropertyChange::NoProgressTimeout(3600),
        PropertyChange::MaximumDownloadTime(86_400),
        PropertyChange::NotifyFlags(NotifyFlags::new(0x0B).unwrap()),
        PropertyChange::NotifyCommandLine(Some(
            NotifyCommandLine::new("/bin/true", Some("--job done".into())).unwrap(),
        )),
        PropertyChange::CustomHeaders(vec![
            CustomHeader::parse("X-One: 1").unwrap(),
            CustomHeader::parse("X-Two: two").unwrap(),
        ]),
        PropertyChange::Proxy(
            ProxySettings::overriding(
                vec!["http://127.0.0.1:3128".into()],
                vec!["localhost".into()],
            )
            .unwrap(),
        ),
        PropertyChange::SecurityFlags(SecurityFlags::new(0x0200 | 0x0004).unwrap()),
        PropertyChange::MaxRate(Limit::BytesPerSec(1 << 20)),
        PropertyChange::CredentialsAcrossOrigins(true),
        PropertyChange::Credentials(
            CredentialTarget::Proxy,
            Some(BasicCredentials::new("proxy-user", "proxy-secret").unwrap()),
        ),
    ]
}

/// Jobs that never ran: every property set, sealed server credentials, an upload.
async fn add_unmoved_jobs(e: &Engine, out: &Path) {
    let all = e
        .create_job("every-property", JobType::Download)
        .await
        .unwrap();
    let ranged = NewFile::new("http://127.0.0.1:9/r", out.join("r")).with_ranges(vec![ByteRange {
        offset: 0,
        length: Some(100),
    }]);
    let digest = NewFile::new("http://127.0.0.1:9/d", out.join("d"))
        .with_sha256("ab".repeat(32).parse().unwrap());
    e.add_files(all, vec![ranged, digest]).await.unwrap();
    for change in every_property() {
        e.set_property(all, change).await.unwrap();
    }
    let creds = e
        .create_job("credentials", JobType::Download)
        .await
        .unwrap();
    // A local path that exists wherever the check runs (the job is transferred there).
    e.add_files(
        creds,
        vec![NewFile::new("http://127.0.0.1:9/secret", CREDENTIALS_OUT)],
    )
    .await
    .unwrap();
    let secret = BasicCredentials::new("ann", "fixture-secret").unwrap();
    e.set_property(
        creds,
        PropertyChange::Credentials(CredentialTarget::Server, Some(secret)),
    )
    .await
    .unwrap();
    let up = e.create_job("upload", JobType::Upload).await.unwrap();
    e.add_files(
        up,
        vec![NewFile::new("http://127.0.0.1:9/up", out.join("u"))],
    )
    .await
    .unwrap();
    e.set_property(up, PropertyChange::Priority(Priority::Low))
        .await
        .unwrap();
}

/// Write the fixture: one job per kind of stored state.
async fn write_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let e = support::engine(dir.path()).await;
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let source = dir.path().join("source.bin");
    std::fs::write(&source, data(10_000, 5)).unwrap();
    let here = format!("file://{}", source.display());
    let gone = format!("file://{}", dir.path().join("missing.bin").display());

    add_unmoved_jobs(&e, &out).await;
    let mut ran = Vec::new();
    for (name, url) in [
        ("failed", &gone),
        ("transferred", &here),
        ("acknowledged", &here),
        ("cancelled", &here),
    ] {
        let id = e.create_job(name, JobType::Download).await.unwrap();
        e.add_files(id, vec![NewFile::new(url.as_str(), out.join(name))])
            .await
            .unwrap();
        e.resume(id).await.unwrap();
        e.wait(id, Some(Duration::from_secs(20))).await.unwrap();
        ran.push(id);
    }
    e.complete(ran[2]).await.unwrap();
    e.cancel(ran[3]).await.unwrap();
    e.shutdown().await;
    drop(e);
    let data_dir = dir.path().join("data");
    // Everything into the database file itself, so that it alone is the fixture.
    let db = rusqlite::Connection::open(data_dir.join("ebb.db")).unwrap();
    db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(db);
    std::fs::create_dir_all(fixture()).unwrap();
    std::fs::copy(data_dir.join("ebb.db"), fixture().join("ebb.db")).unwrap();
    std::fs::copy(dir.path().join("secret.key"), fixture().join("secret.key")).unwrap();
    let jobs = ebb::read_jobs(&data_dir).unwrap();
    let json = serde_json::to_string_pretty(&jobs).unwrap() + "\n";
    std::fs::write(fixture().join("jobs.json"), json).unwrap();
}

fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture().join("jobs.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_of_schema_4_opens_with_everything_intact() {
    if std::env::var_os("EBB_WRITE_FIXTURES").is_some() {
        write_fixture().await;
    }
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    // A reader sees every job, final ones too, exactly as written.
    let read = ebb::read_jobs(&dir.path().join("data")).unwrap();
    assert_eq!(serde_json::to_value(&read).unwrap(), expected());
    // The engine opens it, with nothing moving, and holds the same live jobs.
    let e = Engine::open(support::config(dir.path()).with_scheduling(false))
        .await
        .unwrap();
    let live: Vec<serde_json::Value> = expected()
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| !matches!(j["state"].as_str(), Some("acknowledged" | "cancelled")))
        .cloned()
        .collect();
    assert_eq!(
        serde_json::to_value(e.jobs().await.unwrap()).unwrap(),
        serde_json::Value::from(live)
    );
    e.shutdown().await;
    drop(e);
    // The sealed password still opens: the job authenticates against a server that wants it.
    let origin = Origin::start().await;
    let body = data(2_000, 9);
    let mut secret = Resource::new(body);
    secret.basic_auth = Some("ann:fixture-secret".into());
    origin.put("/secret", secret);
    let e = support::engine(dir.path()).await;
    let id = e.find("credentials").await.unwrap();
    e.replace_remote_prefix(id, "http://127.0.0.1:9/", &origin.url("/"))
        .await
        .unwrap();
    e.resume(id).await.unwrap();
    let state = e.wait(id, Some(Duration::from_secs(20))).await.unwrap();
    let error = e.job(id).await.unwrap().error;
    // Leave nothing behind in /tmp.
    e.cancel(id).await.unwrap();
    assert_eq!(state, ebb::JobState::Transferred, "{error:?}");
    let asked = origin.log("/secret");
    assert_eq!(asked.last().map(|l| l.status), Some(200), "{asked:?}");
    e.shutdown().await;
}

/// A stored property this version does not know, or one it expects and the row lacks, is an
/// error that names it: never a silent default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_or_missing_stored_property_fails_loudly() {
    for (edit, named) in [
        ("json_set(properties, '$.bogus', 1)", "bogus"),
        ("json_remove(properties, '$.max_rate')", "max_rate"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        copy_fixture(dir.path());
        let db = rusqlite::Connection::open(dir.path().join("data/ebb.db")).unwrap();
        db.execute(
            &format!("UPDATE jobs SET properties = {edit} WHERE display_name = 'upload'"),
            [],
        )
        .unwrap();
        drop(db);
        let err = Engine::open(support::config(dir.path())).await.unwrap_err();
        assert!(err.to_string().contains(named), "{err}");
    }
}

/// Rows written before a property existed (as ebb before the strict reading wrote them) get
/// its default from migration 4, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_rows_get_the_defaults_of_later_properties() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let db = rusqlite::Connection::open(dir.path().join("data/ebb.db")).unwrap();
    db.execute_batch(
        "UPDATE jobs SET properties =
             json_remove(properties, '$.max_rate', '$.credentials_across_origins');
         PRAGMA user_version = 3;",
    )
    .unwrap();
    drop(db);
    let e = Engine::open(support::config(dir.path()).with_scheduling(false))
        .await
        .unwrap();
    let all = e
        .job(e.find("every-property").await.unwrap())
        .await
        .unwrap();
    assert_eq!(all.properties.max_rate, Limit::Unlimited);
    assert!(!all.properties.credentials_across_origins);
    assert_eq!(all.properties.minimum_retry_delay, 60, "the rest is kept");
    e.shutdown().await;
}
