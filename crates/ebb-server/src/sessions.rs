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
    /// Where the bytes go.
    pub target: Target,
    pub total: Option<u64>,
    /// Bytes `0..received` are durable (in the temporary file, or in the object's committed
    /// parts), and every node can read them; only [`SessionStore::advance`] moves it.
    pub received: u64,
    pub created_at: i64,
    pub touched_at: i64,
    /// Upload-reply: the reply's URL, once the server application answered.
    pub reply: Option<String>,
    /// Keep the upload at its name though an application was notified.
    pub keep: bool,
}

/// Where a session's bytes go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A hidden temporary file beside the destination, renamed at Close-Session.
    File { destination: PathBuf, temp: PathBuf },
    /// An object, sent to object storage as a multipart upload, completed at Close-Session.
    Object(ObjectUpload),
}

/// A session's multipart upload. Its row keeps it as JSON (`multipart`), pinned by a test.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectUpload {
    /// The object's key in the bucket.
    #[serde(skip)]
    pub key: String,
    /// The store's id of the multipart upload.
    pub upload_id: String,
    /// Every part but the last has this size; 0 until the first part is committed.
    pub part_size: u64,
    /// The committed parts' ids (their ETags), in order: bytes `0..received`.
    pub parts: Vec<String>,
    /// Close-Session (or, when staged, the last byte) began completing the upload: the object
    /// it goes to may be this session's own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub completing: bool,
    /// Upload-reply: the upload goes to the session's own staged key, where the server
    /// application reads it, and to `key` only if the application asks to keep it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub staged: bool,
    /// Bytes past `received` this node holds in its spool and has acknowledged: the part being
    /// filled. Never stored: another node, or this one restarted, has none, and the client
    /// sends them again.
    #[serde(skip)]
    pub tail: u64,
}

impl Target {
    /// The multipart upload's JSON for the row, or `None` for a file.
    pub fn multipart_json(&self) -> Option<String> {
        match self {
            Self::File { .. } => None,
            Self::Object(o) => serde_json::to_string(o).ok(),
        }
    }

    /// The destination's text for the row: a file's path, an object's key.
    pub fn destination_text(&self) -> String {
        match self {
            Self::File { destination, .. } => destination.to_string_lossy().into_owned(),
            Self::Object(o) => o.key.clone(),
        }
    }

    /// The temporary file's text for the row; empty for an object.
    pub fn temp_text(&self) -> String {
        match self {
            Self::File { temp, .. } => temp.to_string_lossy().into_owned(),
            Self::Object(_) => String::new(),
        }
    }

    /// The target a row names: its `destination`, `temp_path` and `multipart` columns.
    pub fn from_row(destination: String, temp: String, multipart: Option<&str>) -> Self {
        match multipart.map(serde_json::from_str::<ObjectUpload>) {
            Some(Ok(mut o)) => {
                o.key = destination;
                Self::Object(o)
            }
            // A row this version cannot read is kept as an object with no upload: the
            // session's packets then fail on the store's answer, and it expires.
            Some(Err(e)) => {
                tracing::warn!(key = destination, error = %e, "a session's multipart upload cannot be read");
                Self::Object(ObjectUpload {
                    key: destination,
                    upload_id: String::new(),
                    part_size: 0,
                    parts: Vec::new(),
                    completing: false,
                    staged: false,
                    tail: 0,
                })
            }
            None => Self::File {
                destination: destination.into(),
                temp: temp.into(),
            },
        }
    }
}

impl Session {
    /// Bytes this node holds: the committed ones, and an object's tail.
    pub fn held(&self) -> u64 {
        match &self.target {
            Target::File { .. } => self.received,
            Target::Object(o) => self.received + o.tail,
        }
    }

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
    /// Record `s`'s `received`, `total`, `touched_at` and multipart upload, if the stored
    /// offset is still `from`.
    async fn advance(&self, s: &Session, from: u64) -> Result<Advanced>;
    /// Record `s`'s reply, `keep` and `touched_at`.
    async fn update(&self, s: &Session) -> Result<()>;
    async fn remove(&self, id: &str) -> Result<()>;
    /// End session `s` as closed (its row goes, in the same transaction as a tombstone).
    async fn close(&self, s: &Session, at: i64) -> Result<()>;
    /// Session `id`, if it was closed (and not forgotten).
    async fn closed(&self, id: &str) -> Result<Option<Closed>>;
    /// Forget the sessions closed before `before`.
    async fn forget_closed(&self, before: i64) -> Result<()>;
    /// How many sessions `user` has open (every node's, on a shared store).
    async fn count(&self, user: Option<&str>) -> Result<usize>;
    /// Up to `limit` sessions last touched before `before`, oldest first.
    async fn untouched(&self, before: i64, limit: usize) -> Result<Vec<Session>>;
}

/// A session closed lately (its tombstone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    pub url_path: String,
    pub user: Option<String>,
    /// Its length, once known.
    pub total: Option<u64>,
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
            // Another node committed bytes: an object's tail held here is stale.
            (s.received, s.total, s.target) = (stored.received, stored.total, stored.target);
        }
        if s.reply.is_none() && stored.reply.is_some() {
            (s.reply, s.keep) = (stored.reply, stored.keep);
        }
        s.touched_at = s.touched_at.max(stored.touched_at);
        Ok(true)
    }

    /// Take in the sessions the store has seen untouched since `before`, which this node may
    /// not know (another node made them and died), so that the sweeper ends them too.
    pub async fn adopt_untouched(&self, before: i64) -> Result<()> {
        for s in self.store.untouched(before, ADOPTED_AT_ONCE).await? {
            self.map()
                .entry(s.id.clone())
                .or_insert_with(|| Entry::new(s));
        }
        Ok(())
    }

    /// Every open session, for the sweeper.
    pub fn all(&self) -> Vec<Open> {
        self.map().values().map(|e| e.open.clone()).collect()
    }

    /// The user and URL path of the open session whose key is `key` (its reply's, its tus
    /// upload's), read without waiting for the session's lock; from the store when this node
    /// does not hold it (another node made it).
    pub async fn owner(&self, key: &str) -> Result<Option<(Option<String>, String)>> {
        let held = self
            .map()
            .values()
            .find(|e| e.key == key)
            .map(|e| (e.user.clone(), e.url_path.clone()));
        if held.is_some() {
            return Ok(held);
        }
        let Some(id) = id_of_key(key) else {
            return Ok(None);
        };
        Ok(self.find(&id).await?.and_then(|_| {
            self.map()
                .get(&id)
                .map(|e| (e.user.clone(), e.url_path.clone()))
        }))
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
            .closed(id)
            .await?
            .is_some_and(|c| c.url_path == url_path && c.user.as_deref() == user))
    }

    /// Session `id`, if it was closed lately.
    pub async fn closed(&self, id: &str) -> Result<Option<Closed>> {
        self.store.closed(id).await
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

/// The session id whose key (see [`Session::key`]) is `key`: `{8-4-4-4-12}`, upper-case.
pub(crate) fn id_of_key(key: &str) -> Option<String> {
    if key.len() != 32 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let k = key.to_ascii_uppercase();
    Some(format!(
        "{{{}-{}-{}-{}-{}}}",
        &k[..8],
        &k[8..12],
        &k[12..16],
        &k[16..20],
        &k[20..]
    ))
}

/// How many untouched sessions one sweep takes in.
const ADOPTED_AT_ONCE: usize = 1000;

/// An offset or size as the databases keep it (a signed 64-bit integer).
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_i64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_its_session() {
        let s = Session {
            id: "{0A1B2C3D-4E5F-6A7B-8C9D-0E1F2A3B4C5D}".into(),
            url_path: "/a".into(),
            user: None,
            target: Target::from_row("/a".into(), "/.a".into(), None),
            total: None,
            received: 0,
            created_at: 0,
            touched_at: 0,
            reply: None,
            keep: false,
        };
        assert_eq!(id_of_key(&s.key()), Some(s.id));
        assert_eq!(id_of_key("0a1b"), None);
        assert_eq!(id_of_key(&"g".repeat(32)), None);
    }

    /// The `multipart` column's JSON is a stored format: rows written by an earlier version
    /// must still read.
    #[test]
    fn a_multipart_upload_is_stored_as_this_json() {
        let mut o = ObjectUpload {
            key: "up/a.bin".into(),
            upload_id: "u-1".into(),
            part_size: 8 << 20,
            parts: vec!["\"e-1\"".into(), "\"e-2\"".into()],
            completing: false,
            staged: false,
            tail: 3,
        };
        let stored = r#"{"upload_id":"u-1","part_size":8388608,"parts":["\"e-1\"","\"e-2\""]}"#;
        let target = Target::Object(o.clone());
        assert_eq!(target.multipart_json().as_deref(), Some(stored));
        assert_eq!(target.destination_text(), "up/a.bin");
        assert_eq!(target.temp_text(), "");
        // The tail is this node's own: never stored, none once read.
        o.tail = 0;
        let read = Target::from_row("up/a.bin".into(), String::new(), Some(stored));
        assert_eq!(read, Target::Object(o.clone()));
        (o.completing, o.staged) = (true, true);
        let completing = Target::Object(o.clone()).multipart_json().unwrap();
        assert_eq!(
            completing,
            r#"{"upload_id":"u-1","part_size":8388608,"parts":["\"e-1\"","\"e-2\""],"completing":true,"staged":true}"#
        );
        let file = Target::from_row("/srv/a".into(), "/srv/.a.part".into(), None);
        assert_eq!(
            file,
            Target::File {
                destination: "/srv/a".into(),
                temp: "/srv/.a.part".into()
            }
        );
        assert_eq!(file.multipart_json(), None);
    }
}
