//! The key that seals passwords in the queue: 32 random bytes, kept apart from the database.
//!
//! Where the platform has a secret store (Secret Service, Keychain, Credential Manager) the key
//! lives there, and the key file (by default `<config dir>/ebb/secret.key`) holds only a marker
//! naming it by fingerprint. Where there is none (a headless machine without a session bus),
//! the key file holds the key itself, mode 0600 in a 0700 directory. Either way a copy or a
//! backup of the data directory carries no readable password. Once the key is in the secret
//! store, a store that cannot be reached later (locked, no session) is an error, never a reason
//! to make a new key: that would orphan every sealed password.
//!
//! A local attacker who can read the database but not the key learns URLs, user names and that
//! a job has a password, not the password or its length. One who can read the key (the same
//! user, or root) can open the passwords: so can the user's own processes, which the daemon
//! serves anyway.

mod platform;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};

/// The default key file: `EBB_SECRET_KEY` if set, else in the per-user configuration
/// directory, else beside the data directory.
pub fn default_path(data_dir: &Path) -> PathBuf {
    if let Some(path) = std::env::var_os("EBB_SECRET_KEY") {
        return PathBuf::from(path);
    }
    dirs::config_dir().map_or_else(
        || data_dir.with_extension("key"),
        |d| d.join("ebb").join("secret.key"),
    )
}

/// The key file's content when the key lives in the platform's secret store.
const MARKER: &str = "ebb-secret-store v1 ";

/// What the key file holds.
enum Stored {
    Key([u8; 32]),
    /// The fingerprint of a key in the platform's store.
    InPlatformStore(String),
}

/// Names a key without revealing it: the first 8 bytes of its SHA-256, in hex.
pub(crate) fn fingerprint(key: &[u8; 32]) -> String {
    use sha2::Digest as _;
    use std::fmt::Write as _;
    sha2::Sha256::digest(key)[..8]
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn unavailable(path: &Path, why: &str) -> Error {
    Error::io(
        path,
        std::io::Error::other(format!(
            "the key that seals passwords is in the system's secret store, which cannot be used \
             now ({why}): unlock it (log in) and try again"
        )),
    )
}

/// Read the key, or create it (exclusively: two engines starting at once agree on one key),
/// in the platform's secret store if `platform` and one answers, else in the key file.
pub(crate) async fn load_or_create(path: &Path, platform: bool) -> Result<[u8; 32]> {
    match read(path)? {
        Some(Stored::Key(key)) => return Ok(key),
        Some(Stored::InPlatformStore(fp)) => {
            let key = platform::load(&fp)
                .await
                .map_err(|e| unavailable(path, &e))?;
            let key: [u8; 32] = key
                .try_into()
                .map_err(|_| unavailable(path, "the stored key is not 32 bytes"))?;
            if fingerprint(&key) != fp {
                return Err(unavailable(path, "the stored key has another fingerprint"));
            }
            return Ok(key);
        }
        None => {}
    }
    if let Some(dir) = path.parent() {
        crate::private_dir::create_missing(dir)?;
    }
    let mut key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| Error::io(path, std::io::Error::other("no random source")))?;
    let content = if platform {
        let fp = fingerprint(&key);
        match platform::save(key, &fp).await {
            Ok(()) => format!("{MARKER}{fp}\n").into_bytes(),
            Err(e) => {
                tracing::info!(error = %e, "no usable system secret store: the key that seals passwords goes in a private file");
                key.to_vec()
            }
        }
    } else {
        key.to_vec()
    };
    write_new(path, &content)?;
    match read(path)? {
        // Another engine created it first: its key is the key.
        Some(Stored::Key(k)) if k != key => Ok(k),
        Some(Stored::InPlatformStore(fp)) if fp != fingerprint(&key) => {
            Box::pin(load_or_create(path, platform)).await
        }
        _ => Ok(key),
    }
}

/// Write the key file whole under a private name, then link it into place: a reader never sees
/// a half-written key, and of two creators exactly one wins (the loser keeps the winner's).
fn write_new(path: &Path, content: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let written = o
        .open(&tmp)
        .and_then(|mut f| f.write_all(content).and_then(|()| f.sync_all()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(&tmp, e));
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                crate::transfer::sync_directory(dir).map_err(|e| Error::io(dir, e))?;
            }
            tracing::info!(path = %path.display(), "created the key that seals passwords");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn read(path: &Path) -> Result<Option<Stored>> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    let mut file = match o.open(path) {
        Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => f,
        Ok(_) => {
            return Err(Error::io(
                path,
                std::io::Error::other("the key file is not a regular file"),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file
            .metadata()
            .map_err(|e| Error::io(path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(Error::io(
                path,
                std::io::Error::other(format!(
                    "the key that seals passwords is readable by others (mode {:o}): chmod 600 it",
                    mode & 0o777
                )),
            ));
        }
    }
    let mut content = Vec::new();
    file.read_to_end(&mut content)
        .map_err(|e| Error::io(path, e))?;
    if let Some(fp) = std::str::from_utf8(&content)
        .ok()
        .and_then(|t| t.strip_prefix(MARKER))
    {
        return Ok(Some(Stored::InPlatformStore(fp.trim().to_owned())));
    }
    let key: [u8; 32] = content.try_into().map_err(|_| {
        Error::io(
            path,
            std::io::Error::other("not an ebb key file (neither a key nor a marker)"),
        )
    })?;
    Ok(Some(Stored::Key(key)))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn the_key_is_created_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf/ebb/secret.key");
        let a = load_or_create(&path, false).await.unwrap();
        let b = load_or_create(&path, false).await.unwrap();
        assert_eq!(a, b);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create(&path, false).await.unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
