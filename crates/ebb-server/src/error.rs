//! The server's errors: each names the path it is about.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("session database {}: {source}", path.display())]
    Store {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("session database {place}: {source}")]
    Postgres {
        /// Where the database is (its hosts and name; never a password).
        place: String,
        source: tokio_postgres::Error,
    },
    #[error("configuration: {0}")]
    Config(String),
    #[error("the session database is closed")]
    Closed,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn store(path: &Path, source: rusqlite::Error) -> Self {
        Self::Store {
            path: path.to_path_buf(),
            source,
        }
    }
}
