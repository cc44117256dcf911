//! Secrets at rest: passwords sealed in the queue under a key kept apart from it, plaintext
//! from an older ebb sealed on open, credentials dropped when a job is final, and passwords
//! read from stdin so they never sit on a command line.

use std::io::Write as _;

use ebb::{BasicCredentials, CredentialTarget, JobState, JobType, NewFile, PropertyChange};

use crate::support::origin::{Origin, Resource};
use crate::support::{self, Cli, data, wait_state};

const PASSWORD: &str = "correct-horse-battery";

/// Every byte of the data directory's files, as text, for a search.
fn raw_bytes(dir: &std::path::Path) -> String {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            all.extend(std::fs::read(&path).unwrap());
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

fn stored_password(dir: &std::path::Path, id: ebb::JobId) -> Option<String> {
    let db = rusqlite::Connection::open(dir.join("data/ebb.db")).unwrap();
    db.query_row(
        "SELECT server_password FROM jobs WHERE id = ?1",
        [id.to_string()],
        |r| r.get(0),
    )
    .unwrap()
}

/// Give the job server credentials: ann and `PASSWORD`.
async fn set_password(e: &ebb::Engine, id: ebb::JobId) {
    let creds = BasicCredentials::new("ann", PASSWORD).unwrap();
    let change = PropertyChange::Credentials(CredentialTarget::Server, Some(creds));
    e.set_property(id, change).await.unwrap();
}

#[tokio::test]
async fn passwords_are_sealed_at_rest_and_dropped_when_the_job_is_final() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(20_000, 80);
    let mut r = Resource::new(body.clone());
    r.basic_auth = Some(format!("ann:{PASSWORD}"));
    origin.put("/s", r);
    let e = support::engine(dir.path()).await;
    let id = e.create_job("secret", JobType::Download).await.unwrap();
    let dest = dir.path().join("s");
    e.add_files(id, vec![NewFile::new(origin.url("/s"), &dest)])
        .await
        .unwrap();
    set_password(&e, id).await;
    e.shutdown().await;
    drop(e);
    let stored = stored_password(dir.path(), id).unwrap();
    assert!(stored.starts_with("ebk1:"), "{stored}");
    assert!(!raw_bytes(&dir.path().join("data")).contains(PASSWORD));

    // An older ebb stored it in plaintext: the next open seals it, and nothing of it is left
    // in the database or its log.
    let db = rusqlite::Connection::open(dir.path().join("data/ebb.db")).unwrap();
    db.execute(
        "UPDATE jobs SET server_password = ?2 WHERE id = ?1",
        [id.to_string(), PASSWORD.to_owned()],
    )
    .unwrap();
    drop(db);
    let e = support::engine(dir.path()).await;
    assert!(
        stored_password(dir.path(), id)
            .unwrap()
            .starts_with("ebk1:")
    );
    assert!(!raw_bytes(&dir.path().join("data")).contains(PASSWORD));
    // The sealed password still authenticates.
    e.resume(id).await.unwrap();
    wait_state(&e, id, JobState::Transferred, 20).await;
    e.complete(id).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    // Final: the credentials are gone from the store.
    assert_eq!(stored_password(dir.path(), id), None);
    let j = e.job(id).await.unwrap();
    assert_eq!(j.credentials.server_user, None);
    e.shutdown().await;
}

/// Another key than the one the passwords were sealed with (a different EBB_SECRET_KEY, a lost
/// key file): the queue is not opened, since writing the jobs back would destroy the passwords;
/// told to forget them, it opens without them.
#[tokio::test]
async fn a_queue_sealed_with_another_key_is_not_opened_unless_told_to_forget() {
    let dir = tempfile::tempdir().unwrap();
    let e = support::engine(dir.path()).await;
    let id = e.create_job("keyed", JobType::Download).await.unwrap();
    set_password(&e, id).await;
    e.shutdown().await;
    drop(e);
    let mut other = support::config(dir.path());
    other.secret_key = dir.path().join("another.key");
    let err = ebb::Engine::open(other.clone()).await.unwrap_err();
    assert!(err.to_string().contains("another key"), "{err}");
    assert!(
        stored_password(dir.path(), id).is_some(),
        "nothing was destroyed"
    );
    other.forget_sealed_passwords = true;
    let e = ebb::Engine::open(other).await.unwrap();
    assert_eq!(e.job(id).await.unwrap().credentials.server_user, None);
    assert_eq!(stored_password(dir.path(), id), None);
    e.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_come_from_stdin_and_never_show() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::new(dir.path());
    let id = cli.ok(&["create", "quiet"]).trim().to_owned();
    let mut child = cli
        .command(&["set", &id, "--credentials-from", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "server:ann:{PASSWORD}").unwrap();
    assert!(child.wait().unwrap().success());
    let info = cli.ok(&["info", &id, "--json"]);
    let j: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(j["credentials"]["server_user"], "ann", "{info}");
    assert!(!info.contains(PASSWORD));
    assert!(!cli.ok(&["info", &id]).contains(PASSWORD));
    assert!(!raw_bytes(&cli.data_dir).contains(PASSWORD));
    let key = cli.data_dir.with_extension("key");
    assert!(key.exists(), "the key lives apart from the data directory");
}

/// With a secret store on the session bus (GNOME Keyring on a private `dbus-run-session`), the
/// key lives there and the key file holds only a marker; the sealed password still
/// authenticates. Without the bus, the store cannot be reached, and the CLI says so instead of
/// making a new key that would orphan the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_lives_in_the_platform_secret_store_when_there_is_one() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let body = data(30_000, 81);
    let mut r = Resource::new(body.clone());
    r.basic_auth = Some(format!("ann:{PASSWORD}"));
    origin.put("/k", r);
    let cli = Cli::new(dir.path());
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let script = r#"
        set -e
        printf 'unlock' | gnome-keyring-daemon --unlock --components=secrets > /dev/null
        id=$("$EBB" create kept)
        "$EBB" add-file "$id" "$URL" "$OUT/k.bin"
        printf 'server:ann:%s\n' "$PASSWORD" | "$EBB" set "$id" --credentials-from -
        "$EBB" resume "$id" --wait
        "$EBB" complete "$id"
        echo "$id" > "$OUT/id"
    "#;
    let mut session = std::process::Command::new("dbus-run-session");
    session.args(["--", "sh", "-c", script]);
    cli.apply_env(&mut session);
    let out = session
        .env("EBB_SECRET_STORE", "platform")
        .env("HOME", &home)
        .env("XDG_DATA_HOME", home.join("share"))
        .env("OUT", dir.path())
        .env("URL", origin.url("/k"))
        .env("PASSWORD", PASSWORD)
        .env("EBB", support::ebb_bin())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(dir.path().join("k.bin")).unwrap(), body);
    let key_file = std::fs::read_to_string(cli.data_dir.with_extension("key")).unwrap();
    assert!(key_file.starts_with("ebb-secret-store v1 "), "{key_file:?}");
    // No bus: the key cannot be had, and the CLI says why.
    let out = cli
        .command(&["create", "later"])
        .env("EBB_SECRET_STORE", "platform")
        .env("HOME", &home)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("secret store"), "{said}");
}
