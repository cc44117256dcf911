//! Open upload sessions: in memory for the packets, and in a [`SessionStore`] so that a restarted
//! server keeps them. A session's row is written before its Ack is sent, so a client is never
//! told of bytes a restart would forget. Packets of one session are served one at a time (each
//! session has its own lock); different sessions go on side by side.

mod postgres;
mod sqlite;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::Result;

pub use postgres::PostgresSessions;
pub use sqlite::SqliteSessions;

/// One session of the BITS upload protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub url_path: String,
    pub user: Option<String>,
    pub destination: PathBuf,
    pub temp: PathBuf,
    pub total: Option<u64>,
    /// Bytes `0..received` are in `temp` and durable.
    pub received: u64,
    pub created_at: i64,
    pub touched_at: i64,
    /// Upload-reply: the reply's URL, once the server application answered.
    pub reply: Option<String>,
    /// Keep the upload at its name though an application was notified.
    pub keep: bool,
}

impl Session {
    /// The name of the session's reply file and of its URL: the id's hex digits.
    pub fn key(&self) -> String {
        self.id
            .chars()
            .filter(char::is_ascii_hexdigit)
            .collect::<String>()
            .to_ascii_lowercase()
    }
}

/// Where sessions are kept: the server's one record of them. The committed offset only ever
/// moves by [`SessionStore::advance`], a compare-and-set, so that two writers of one session
/// (two nodes, or a node and its stale self) can never both count their bytes.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// Every session, at start.
    async fn load(&self) -> Result<Vec<Session>>;
    async fn insert(&self, s: &Session) -> Result<()>;
    /// One session as stored now (another node may have created or moved it).
    async fn get(&self, id: &str) -> Result<Option<Session>>;
    /// Record `s`'s `received`, `total` and `touched_at`, if the stored offset is still `from`.
    async fn advance(&self, s: &Session, from: u64) -> Result<Advanced>;
    /// Record `s`'s reply, `keep` and `touched_at`.
    async fn update(&self, s: &Session) -> Result<()>;
    async fn remove(&self, id: &str) -> Result<()>;
    /// End session `s` as closed (its row goes, in the same transaction as a tombstone).
    async fn close(&self, s: &Session, at: i64) -> Result<()>;
    /// The URL path and user of session `id`, if it was closed (and not forgotten).
    async fn closed(&self, id: &str) -> Result<Option<(String, Option<String>)>>;
    /// Forget the sessions closed before `before`.
    async fn forget_closed(&self, before: i64) -> Result<()>;
    /// How many sessions `user` has open (every node's, on a shared store).
    async fn count(&self, user: Option<&str>) -> Result<usize>;
}

/// What [`SessionStore::advance`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advanced {
    Done,
    /// Another writer moved the offset first: it is at `committed`.
    Lost {
        committed: u64,
    },
    /// The session is no more.
    Gone,
}

/// A session, locked while one of its packets is served.
pub type Open = Arc<tokio::sync::Mutex<Session>>;

/// The open sessions.
#[derive(Debug)]
pub struct Sessions {
    store: Box<dyn SessionStore>,
    open: Mutex<HashMap<String, Entry>>,
}

/// An open session, with its user (which never changes) for reading without its lock.
#[derive(Debug)]
struct Entry {
    user: Option<String>,
    url_path: String,
    key: String,
    open: Open,
}

impl Entry {
    fn new(s: Session) -> Self {
        Self {
            user: s.user.clone(),
            url_path: s.url_path.clone(),
            key: s.key(),
            open: Arc::new(tokio::sync::Mutex::new(s)),
        }
    }
}

impl Sessions {
    /// The sessions of `store`, loaded.
    pub async fn open(store: Box<dyn SessionStore>) -> Result<Self> {
        let sessions = Self {
            open: Mutex::new(HashMap::new()),
            store,
        };
        for s in sessions.store.load().await? {
            sessions.map().insert(s.id.clone(), Entry::new(s));
        }
        Ok(sessions)
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Record a new session, then open it.
    pub async fn create(&self, s: Session) -> Result<()> {
        self.store.insert(&s).await?;
        self.map().insert(s.id.clone(), Entry::new(s));
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<Open> {
        self.map().get(id).map(|e| e.open.clone())
    }

    /// Session `id`, held here or, failing that, read from the store: a store shared by
    /// several nodes has sessions that another node created, or that one created before this
    /// node started.
    pub async fn find(&self, id: &str) -> Result<Option<Open>> {
        if let Some(open) = self.get(id) {
            return Ok(Some(open));
        }
        let Some(s) = self.store.get(id).await? else {
            return Ok(None);
        };
        let mut map = self.map();
        let entry = map.entry(s.id.clone()).or_insert_with(|| Entry::new(s));
        Ok(Some(entry.open.clone()))
    }

    /// Bring `s` up to the store's row, which another node may have moved on (its offset),
    /// answered (its reply) or touched; `false` if the row is gone (another node ended the
    /// session), and then this node forgets it too.
    pub async fn refresh(&self, s: &mut Session) -> Result<bool> {
        let Some(stored) = self.store.get(&s.id).await? else {
            self.map().remove(&s.id);
            return Ok(false);
        };
        if stored.received > s.received {
            (s.received, s.total) = (stored.received, stored.total);
        }
        if s.reply.is_none() && stored.reply.is_some() {
            (s.reply, s.keep) = (stored.reply, stored.keep);
        }
        s.touched_at = s.touched_at.max(stored.touched_at);
        Ok(true)
    }

    /// Every open session, for the sweeper.
    pub fn all(&self) -> Vec<Open> {
        self.map().values().map(|e| e.open.clone()).collect()
    }

    /// The user and URL path of the open session whose reply key is `key`, read without
    /// waiting for the session's lock.
    pub fn reply_owner(&self, key: &str) -> Option<(Option<String>, String)> {
        self.map()
            .values()
            .find(|e| e.key == key)
            .map(|e| (e.user.clone(), e.url_path.clone()))
    }

    /// End session `s` as closed: a Close-Session sent again is answered as done (see
    /// [`Sessions::was_closed`]), by any node of a shared store, for [`CLOSED_KEPT_FOR`].
    pub async fn close(&self, s: &Session, at: i64) -> Result<()> {
        self.store.close(s, at).await?;
        self.map().remove(&s.id);
        Ok(())
    }

    /// Whether session `id` was closed, through this URL and by this user.
    pub async fn was_closed(&self, id: &str, url_path: &str, user: Option<&str>) -> Result<bool> {
        Ok(self
            .store
            .closed(id)
            .await?
            .is_some_and(|(path, who)| path == url_path && who.as_deref() == user))
    }

    /// Forget the sessions closed more than [`CLOSED_KEPT_FOR`] before `now`.
    pub async fn forget_closed(&self, now: i64) -> Result<()> {
        self.store.forget_closed(now - CLOSED_KEPT_FOR).await
    }

    /// How many sessions `user` has open, as the store counts them: on a shared store, on
    /// every node.
    pub async fn count(&self, user: Option<&str>) -> Result<usize> {
        self.store.count(user).await
    }

    /// Record a session's progress: its offset moved from `from` (see [`SessionStore::advance`]).
    pub async fn advance(&self, s: &Session, from: u64) -> Result<Advanced> {
        self.store.advance(s, from).await
    }

    /// Record a session's reply.
    pub async fn update(&self, s: &Session) -> Result<()> {
        self.store.update(s).await
    }

    /// Forget a session (its files are the caller's business).
    pub async fn remove(&self, id: &str) -> Result<()> {
        self.store.remove(id).await?;
        self.map().remove(id);
        Ok(())
    }
}

/// How long a closed session is remembered (milliseconds): a client re-sends a Close-Session
/// whose Ack it lost within its retry delay, minutes.
pub const CLOSED_KEPT_FOR: i64 = 24 * 3600 * 1000;

/// An offset or size as the databases keep it (a signed 64-bit integer).
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_i64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
