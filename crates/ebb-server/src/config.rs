//! What `ebb-server` serves: one or more upload directories, from a TOML file or from
//! `--root DIR` alone.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! state_dir = "/var/lib/ebb-server"     # the session database; default: <first root>/.ebb-server
//! tls = { cert = "/etc/ebb-server/cert.pem", key = "/etc/ebb-server/key.pem" }  # HTTPS
//! # Where sessions are kept: SQLite in state_dir (the default), or PostgreSQL, which several
//! # nodes share (libpq's key=value form or a postgresql:// URL):
//! sessions = { type = "postgres", url = "host=/run/postgresql dbname=ebb user=ebb" }
//! # TLS where the server offers it (sslmode=require insists), checked against ca_file or the
//! # system's roots: ca_file = "/etc/ebb-server/db-ca.pem"
//! # Where uploads go: each directory's root (the default), or an S3 bucket, which several
//! # nodes share (then directories have no root, and state_dir is needed); credentials from
//! # AWS_* in the environment, or in options (object_store's AmazonS3ConfigKey names):
//! storage = { type = "s3", url = "s3://bucket/prefix", part_size = 8388608, options = { endpoint = "http://127.0.0.1:9000", region = "us-east-1", allow_http = "true" } }
//!
//! [[directory]]
//! root = "/srv/uploads"
//! prefix = "/upload/"                  # the URL path it answers under
//! max_upload_size = 1073741824         # bytes; default: no limit
//! session_timeout = "14d"              # since the last packet (BITS's default)
//! allow_overwrite = false
//! host_id = "node1.example.net"       # web farms: later packets go to this host
//! host_id_fallback_timeout = "1d"
//!
//! notification = { type = "by-reference", url = "http://127.0.0.1:9000/app" }  # or by-value
//!
//! [[directory.user]]                   # Basic authentication; none listed: anyone may upload
//! name = "alice"
//! password = "..."                     # keep this file readable by the server only
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// HTTPS instead of HTTP.
    #[serde(default)]
    pub tls: Option<crate::tls::Tls>,
    #[serde(default)]
    pub sessions: SessionsAt,
    #[serde(default)]
    pub storage: StorageAt,
    #[serde(rename = "directory")]
    pub directories: Vec<UploadDir>,
}

/// Where the server keeps its sessions.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SessionsAt {
    /// `sessions.db` in the state directory: one node.
    #[default]
    Sqlite,
    /// A PostgreSQL database, which several nodes may share; `ca_file`: the PEM certificates
    /// its TLS certificate is checked against (default: the system's).
    Postgres {
        url: String,
        #[serde(default)]
        ca_file: Option<PathBuf>,
    },
}

impl std::fmt::Debug for SessionsAt {
    // The URL may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite => f.write_str("Sqlite"),
            Self::Postgres { .. } => f.write_str("Postgres { .. }"),
        }
    }
}

/// Where uploads' bytes go.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum StorageAt {
    /// Each directory's root.
    #[default]
    Local,
    /// An S3 (or compatible) bucket: `url` is `s3://bucket[/prefix]`; `options` are
    /// object_store's `AmazonS3ConfigKey` names; `part_size` in bytes (at least 5 MiB);
    /// `spool_dir` holds the parts being filled (default: `<state_dir>/spool`).
    S3 {
        url: String,
        #[serde(default)]
        options: std::collections::BTreeMap<String, String>,
        #[serde(default = "default_part_size")]
        part_size: u64,
        #[serde(default)]
        spool_dir: Option<PathBuf>,
    },
}

impl std::fmt::Debug for StorageAt {
    // Options may hold a secret key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local => f.write_str("Local"),
            Self::S3 { url, part_size, .. } => f
                .debug_struct("S3")
                .field("url", url)
                .field("part_size", part_size)
                .finish_non_exhaustive(),
        }
    }
}

fn default_part_size() -> u64 {
    8 << 20
}

/// One upload directory (an IIS virtual directory with BITS uploads enabled).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadDir {
    /// Where its files are, on local storage; none on object storage.
    #[serde(default)]
    pub root: Option<PathBuf>,
    #[serde(default = "default_prefix")]
    pub prefix: String,
    #[serde(default)]
    pub max_upload_size: Option<u64>,
    #[serde(default = "default_session_timeout", with = "duration")]
    pub session_timeout: Duration,
    #[serde(default)]
    pub allow_overwrite: bool,
    #[serde(default)]
    pub host_id: Option<String>,
    #[serde(default = "default_fallback", with = "duration")]
    pub host_id_fallback_timeout: Duration,
    /// The largest fragment taken at once; a larger one is answered 413, and the client sends
    /// smaller ones.
    #[serde(default = "default_max_fragment")]
    pub max_fragment_size: u64,
    /// How many sessions one user may have open at once (BITS's default: 50); 0: no limit.
    /// Without `user`s, every client counts as one anonymous user, as on IIS.
    #[serde(default = "default_session_limit")]
    pub max_sessions_per_user: usize,
    /// Upload-reply: how the server application hears of each upload; none: uploads are kept
    /// at their names.
    #[serde(default)]
    pub notification: Option<crate::notify::Notification>,
    /// Take tus uploads too (at `<prefix>.tus/`), beside BITS ones.
    #[serde(default = "default_tus")]
    pub tus: bool,
    /// Who may upload and download here (Basic authentication); nobody listed: anyone.
    #[serde(default, rename = "user")]
    pub users: Vec<User>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub password: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_prefix() -> String {
    "/".into()
}

fn default_session_timeout() -> Duration {
    Duration::from_secs(14 * 24 * 3600)
}

fn default_fallback() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_session_limit() -> usize {
    50
}

fn default_tus() -> bool {
    true
}

fn default_max_fragment() -> u64 {
    64 << 20
}

impl UploadDir {
    /// A directory with every default, at `root`, answering under `/`.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self {
            root: Some(root.into()),
            prefix: default_prefix(),
            max_upload_size: None,
            session_timeout: default_session_timeout(),
            allow_overwrite: false,
            host_id: None,
            host_id_fallback_timeout: default_fallback(),
            max_fragment_size: default_max_fragment(),
            users: Vec::new(),
            notification: None,
            max_sessions_per_user: default_session_limit(),
            tus: default_tus(),
        }
    }
}

impl ServerConfig {
    /// Serve `root` alone, under `/`.
    pub fn root(root: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        Self {
            listen,
            state_dir: None,
            tls: None,
            sessions: SessionsAt::Sqlite,
            storage: StorageAt::Local,
            directories: vec![UploadDir::at(root)],
        }
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let config: Self =
            toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        config.check()?;
        Ok(config)
    }

    /// Roots must exist; prefixes start and end with `/` and are distinct; TLS files are read.
    pub fn check(&self) -> Result<()> {
        if self.directories.is_empty() {
            return Err(Error::Config("no [[directory]] to serve".into()));
        }
        if let Some(tls) = &self.tls {
            tls.check()?;
        }
        self.check_storage()?;
        for (i, d) in self.directories.iter().enumerate() {
            if !d.prefix.starts_with('/') || !d.prefix.ends_with('/') {
                return Err(Error::Config(format!(
                    "prefix {:?} must start and end with /",
                    d.prefix
                )));
            }
            if self.directories[..i].iter().any(|o| o.prefix == d.prefix) {
                return Err(Error::Config(format!(
                    "prefix {:?} is used twice",
                    d.prefix
                )));
            }
            if let Some(n) = &d.notification {
                n.check().map_err(Error::Config)?;
            }
        }
        self.check_roots()
    }

    /// Local storage: every directory has a root that exists. Object storage: none has, and
    /// there is a state directory (none is implied).
    fn check_storage(&self) -> Result<()> {
        for d in &self.directories {
            match (&self.storage, &d.root) {
                (StorageAt::Local, Some(root)) if !root.is_dir() => {
                    return Err(Error::Config(format!(
                        "root {} is not a directory",
                        root.display()
                    )));
                }
                (StorageAt::Local, None) => {
                    return Err(Error::Config(format!(
                        "directory {:?} has no root",
                        d.prefix
                    )));
                }
                (StorageAt::S3 { .. }, Some(root)) => {
                    return Err(Error::Config(format!(
                        "directory {:?}: uploads go to object storage, so root {} is not used; remove it",
                        d.prefix,
                        root.display()
                    )));
                }
                (StorageAt::Local, Some(_)) | (StorageAt::S3 { .. }, None) => {}
            }
        }
        if let StorageAt::S3 { part_size, .. } = &self.storage {
            if self.state_dir.is_none() {
                return Err(Error::Config(
                    "object storage needs a state_dir (for the node's spool)".into(),
                ));
            }
            if *part_size < crate::objects::MIN_PART_SIZE {
                return Err(Error::Config(format!(
                    "part_size {part_size} is under S3's least, 5 MiB"
                )));
            }
        }
        Ok(())
    }

    /// Roots may not overlap (a request could reach one directory's files under another's
    /// rules), and the state directory may sit in a root only under a hidden name, which no
    /// request can reach.
    fn check_roots(&self) -> Result<()> {
        let roots = self
            .directories
            .iter()
            .filter_map(|d| d.root.as_ref())
            .map(|root| root.canonicalize().map_err(|e| Error::io(root, e)))
            .collect::<Result<Vec<_>>>()?;
        for (i, a) in roots.iter().enumerate() {
            if let Some(b) = roots[i + 1..]
                .iter()
                .find(|b| a.starts_with(b) || b.starts_with(a))
            {
                return Err(Error::Config(format!(
                    "roots {} and {} overlap",
                    a.display(),
                    b.display()
                )));
            }
        }
        let state = self.state_dir();
        let state = std::path::absolute(&state).map_err(|e| Error::io(&state, e))?;
        for root in &roots {
            let Ok(rest) = state.strip_prefix(root) else {
                continue;
            };
            let hidden = rest
                .components()
                .next()
                .is_some_and(|c| c.as_os_str().to_string_lossy().starts_with('.'));
            if !hidden {
                return Err(Error::Config(format!(
                    "state_dir {} is in root {} under a name requests can reach: use a hidden one (.name) or another place",
                    state.display(),
                    root.display()
                )));
            }
        }
        Ok(())
    }

    /// Where the session database lives.
    pub fn state_dir(&self) -> PathBuf {
        // Object storage: `check` asks for a state_dir.
        self.state_dir.clone().unwrap_or_else(|| {
            self.directories
                .iter()
                .find_map(|d| d.root.as_ref())
                .map_or_else(|| PathBuf::from(".ebb-server"), |r| r.join(".ebb-server"))
        })
    }

    /// The directory serving a URL path: the longest prefix that matches.
    pub fn directory(&self, url_path: &str) -> Option<&UploadDir> {
        self.directories
            .iter()
            .filter(|d| url_path.starts_with(d.prefix.as_str()))
            .max_by_key(|d| d.prefix.len())
    }
}

/// Durations as humantime text (`"14d"`, `"90s"`).
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_every_key_and_one_with_a_typo() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        let root = dir.path().display();
        std::fs::write(
            &file,
            format!(
                "listen = \"127.0.0.1:9000\"\n[[directory]]\nroot = \"{root}\"\nprefix = \"/up/\"\n\
                 max_upload_size = 10\nsession_timeout = \"1h\"\nallow_overwrite = true\n\
                 host_id = \"n1\"\nhost_id_fallback_timeout = \"5m\"\nmax_fragment_size = 100\n"
            ),
        )
        .unwrap();
        let c = ServerConfig::load(&file).unwrap();
        let d = &c.directories[0];
        assert_eq!(d.session_timeout, Duration::from_secs(3600));
        assert_eq!(d.host_id_fallback_timeout, Duration::from_secs(300));
        assert_eq!(
            c.directory("/up/x").map(|d| d.prefix.as_str()),
            Some("/up/")
        );
        assert!(c.directory("/other").is_none());
        std::fs::write(
            &file,
            format!("[[directory]]\nroot = \"{root}\"\nallow_overwrites = true\n"),
        )
        .unwrap();
        let e = ServerConfig::load(&file).unwrap_err().to_string();
        assert!(e.contains("allow_overwrites"), "{e}");
    }

    #[test]
    fn sessions_are_in_sqlite_unless_postgres_is_named() {
        let parse = |text: &str| toml::from_str::<ServerConfig>(text).map_err(|e| e.to_string());
        let dirs = "[[directory]]\nroot = \"/srv\"\n";
        assert_eq!(parse(dirs).unwrap().sessions, SessionsAt::Sqlite);
        let pg = parse(&format!(
            "sessions = {{ type = \"postgres\", url = \"host=db password=secret\" }}\n{dirs}"
        ))
        .unwrap();
        assert_eq!(
            pg.sessions,
            SessionsAt::Postgres {
                url: "host=db password=secret".into(),
                ca_file: None,
            }
        );
        assert!(
            !format!("{pg:?}").contains("secret"),
            "a password is never logged"
        );
        let typo = parse(&format!("sessions = {{ type = \"postgress\" }}\n{dirs}")).unwrap_err();
        assert!(typo.contains("postgress"), "{typo}");
        let no_url = parse(&format!("sessions = {{ type = \"postgres\" }}\n{dirs}")).unwrap_err();
        assert!(no_url.contains("url"), "{no_url}");
    }

    #[test]
    fn overlapping_roots_a_reachable_state_dir_and_a_relative_application_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("private");
        std::fs::create_dir(&inner).unwrap();
        let listen = "127.0.0.1:0".parse().unwrap();
        let mut c = ServerConfig::root(dir.path(), listen);
        let mut private = UploadDir::at(&inner);
        private.prefix = "/private/".into();
        c.directories.push(private);
        assert!(c.check().unwrap_err().to_string().contains("overlap"));

        let mut c = ServerConfig::root(dir.path(), listen);
        assert!(c.check().is_ok(), "the default state dir is hidden");
        c.state_dir = Some(inner.clone());
        assert!(c.check().unwrap_err().to_string().contains("state_dir"));
        c.state_dir = None;
        c.directories[0].notification =
            Some(crate::Notification::ByReference { url: "/app".into() });
        assert!(c.check().unwrap_err().to_string().contains("absolute"));
    }

    #[test]
    fn object_storage_is_named_with_its_options_and_checked() {
        let parse = |text: &str| toml::from_str::<ServerConfig>(text).map_err(|e| e.to_string());
        let s3 = "storage = { type = \"s3\", url = \"s3://b/p\", options = { secret_access_key = \"hush\" } }\n";
        let c = parse(&format!("state_dir = \"/var/lib/e\"\n{s3}[[directory]]\n")).unwrap();
        assert!(matches!(
            &c.storage,
            StorageAt::S3 { url, part_size, .. } if url == "s3://b/p" && *part_size == 8 << 20
        ));
        assert!(
            !format!("{c:?}").contains("hush"),
            "a secret is never logged"
        );
        assert!(c.check().is_ok(), "{:?}", c.check());
        let no_state = parse(&format!("{s3}[[directory]]\n")).unwrap();
        assert!(
            no_state
                .check()
                .unwrap_err()
                .to_string()
                .contains("state_dir")
        );
        let root = parse(&format!(
            "state_dir = \"/e\"\n{s3}[[directory]]\nroot = \"/srv\"\n"
        ))
        .unwrap();
        assert!(root.check().unwrap_err().to_string().contains("not used"));
        let small = parse(
            "state_dir = \"/e\"\nstorage = { type = \"s3\", url = \"s3://b\", part_size = 1024 }\n[[directory]]\n",
        )
        .unwrap();
        assert!(small.check().unwrap_err().to_string().contains("5 MiB"));
        let local = parse("[[directory]]\n").unwrap();
        assert!(local.check().unwrap_err().to_string().contains("no root"));
    }
}
