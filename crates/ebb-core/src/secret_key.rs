//! The key that seals passwords in the queue: 32 random bytes in a file of their own, mode 0600
//! in a 0700 directory, apart from the database (by default `<config dir>/ebb/secret.key`), so
//! that a copy or a backup of the data directory carries no readable password.
//!
//! A local attacker who can read the database but not the key learns URLs, user names and
//! that a job has a password, not the password or its length. One who can read the key file
//! (the same user, or root) can open the passwords: so can the user's own processes, which the
//! daemon serves anyway.

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

/// Read the key, or create it (exclusively: two engines starting at once agree on one key).
pub(crate) fn load_or_create(path: &Path) -> Result<[u8; 32]> {
    if let Some(key) = read(path)? {
        return Ok(key);
    }
    if let Some(dir) = path.parent() {
        crate::private_dir::create(dir)?;
    }
    let mut key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| Error::io(path, std::io::Error::other("no random source")))?;
    // Written whole under a private name, then linked into place: a reader never sees a
    // half-written key, and of two creators exactly one wins.
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
        .and_then(|mut f| f.write_all(&key).and_then(|()| f.sync_all()));
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
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(path)?
            .ok_or_else(|| Error::io(path, std::io::Error::other("the key file vanished"))),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn read(path: &Path) -> Result<Option<[u8; 32]>> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
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
    let mut key = [0u8; 32];
    let mut rest = Vec::new();
    file.read_exact(&mut key)
        .and_then(|()| file.read_to_end(&mut rest))
        .map_err(|e| Error::io(path, e))?;
    if !rest.is_empty() {
        return Err(Error::io(
            path,
            std::io::Error::other("not an ebb key file (longer than 32 bytes)"),
        ));
    }
    Ok(Some(key))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_key_is_created_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf/ebb/secret.key");
        let a = load_or_create(&path).unwrap();
        let b = load_or_create(&path).unwrap();
        assert_eq!(a, b);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
