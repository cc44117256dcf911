//! Open upload sessions: in memory for the packets, and in SQLite so that a restarted server
//! keeps them. One thread owns the database; a session's row is written before its Ack is sent,
//! so a client is never told of bytes a restart would forget. Packets of one session are served
//! one at a time (each session has its own lock); different sessions go on side by side.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use crate::error::{Error, Result};

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

/// A session, locked while one of its packets is served.
pub type Open = Arc<tokio::sync::Mutex<Session>>;

type Task = Box<dyn FnOnce(&mut Connection) + Send>;

/// The open sessions.
#[derive(Debug)]
pub struct Sessions {
    path: PathBuf,
    tx: std::sync::mpsc::Sender<Task>,
    open: Mutex<HashMap<String, Entry>>,
    /// Sessions closed since the start (id -> URL path, user), so that a Close-Session sent
    /// again because its Ack was lost is answered as done. Bounded; forgotten at a restart.
    closed: Mutex<HashMap<String, (String, Option<String>)>>,
}

/// Closed sessions remembered, at most.
const CLOSED_KEPT: usize = 10_000;

/// An open session, with its user (which never changes) for counting without its lock.
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

const SCHEMA: [&str; 1] = [include_str!("../migrations/0001_sessions.sql")];

impl Sessions {
    /// Open (or create) the session database at `path`, and load its sessions.
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let (tx, rx) = std::sync::mpsc::channel::<Task>();
        let (ready, opened) = oneshot::channel();
        let db_path = path.to_path_buf();
        std::thread::Builder::new()
            .name("ebb-server-sessions".into())
            .spawn(move || {
                let conn = Connection::open(&db_path).and_then(|mut c| migrate(&mut c).map(|()| c));
                let mut conn = match conn {
                    Ok(c) => {
                        let _ = ready.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                for task in rx {
                    task(&mut conn);
                }
            })
            .map_err(|e| Error::io(path, e))?;
        opened
            .await
            .map_err(|_| Error::Closed)?
            .map_err(|e| Error::store(path, e))?;
        let sessions = Self {
            path: path.to_path_buf(),
            tx,
            open: Mutex::new(HashMap::new()),
            closed: Mutex::new(HashMap::new()),
        };
        for s in sessions.call(load).await? {
            sessions.map().insert(s.id.clone(), Entry::new(s));
        }
        Ok(sessions)
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Box::new(move |c| {
                let _ = tx.send(f(c));
            }))
            .map_err(|_| Error::Closed)?;
        rx.await
            .map_err(|_| Error::Closed)?
            .map_err(|e| Error::store(&self.path, e))
    }

    /// Record a new session, then open it.
    pub async fn create(&self, s: Session) -> Result<()> {
        let row = s.clone();
        self.call(move |c| insert(c, &row)).await?;
        self.map().insert(s.id.clone(), Entry::new(s));
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<Open> {
        self.map().get(id).map(|e| e.open.clone())
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

    /// Remember that a session was closed.
    pub fn closed(&self, s: &Session) {
        let mut closed = self.closed.lock().unwrap_or_else(PoisonError::into_inner);
        if closed.len() >= CLOSED_KEPT {
            closed.clear();
        }
        closed.insert(s.id.clone(), (s.url_path.clone(), s.user.clone()));
    }

    /// Whether session `id` was closed, through this URL and by this user.
    pub fn was_closed(&self, id: &str, url_path: &str, user: Option<&str>) -> bool {
        let closed = self.closed.lock().unwrap_or_else(PoisonError::into_inner);
        closed
            .get(id)
            .is_some_and(|(path, who)| path == url_path && who.as_deref() == user)
    }

    /// How many sessions `user` has open.
    pub fn count(&self, user: Option<&str>) -> usize {
        self.map()
            .values()
            .filter(|e| e.user.as_deref() == user)
            .count()
    }

    /// Record a session's progress.
    pub async fn save(&self, s: &Session) -> Result<()> {
        let (id, total, received, touched) = (s.id.clone(), s.total, s.received, s.touched_at);
        let (reply, keep) = (s.reply.clone(), s.keep);
        self.call(move |c| {
            c.prepare_cached(
                "UPDATE sessions SET total = ?2, received = ?3, touched_at = ?4, reply_url = ?5,
                     keep = ?6 WHERE id = ?1",
            )?
            .execute(params![
                id,
                total.map(to_i64),
                to_i64(received),
                touched,
                reply,
                keep
            ])
            .map(drop)
        })
        .await
    }

    /// Forget a session (its files are the caller's business).
    pub async fn remove(&self, id: &str) -> Result<()> {
        let key = id.to_owned();
        self.call(move |c| {
            c.execute("DELETE FROM sessions WHERE id = ?1", [key])
                .map(drop)
        })
        .await?;
        self.map().remove(id);
        Ok(())
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let version = usize::try_from(version).unwrap_or(0);
    let tx = conn.transaction()?;
    for (i, sql) in SCHEMA.iter().enumerate().skip(version) {
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
    }
    tx.commit()
}

fn insert(c: &Connection, s: &Session) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO sessions (id, url_path, user_name, destination, temp_path, total, received,
             created_at, touched_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            s.id,
            s.url_path,
            s.user,
            s.destination.to_string_lossy(),
            s.temp.to_string_lossy(),
            s.total.map(to_i64),
            to_i64(s.received),
            s.created_at,
            s.touched_at
        ],
    )
    .map(drop)
}

fn load(c: &mut Connection) -> rusqlite::Result<Vec<Session>> {
    let mut stmt = c.prepare(
        "SELECT id, url_path, user_name, destination, temp_path, total, received, created_at,
             touched_at, reply_url, keep FROM sessions",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Session {
            id: r.get(0)?,
            url_path: r.get(1)?,
            user: r.get(2)?,
            destination: PathBuf::from(r.get::<_, String>(3)?),
            temp: PathBuf::from(r.get::<_, String>(4)?),
            total: r.get::<_, Option<i64>>(5)?.map(|v| v.max(0) as u64),
            received: r.get::<_, i64>(6)?.max(0) as u64,
            created_at: r.get(7)?,
            touched_at: r.get(8)?,
            reply: r.get(9)?,
            keep: r.get(10)?,
        })
    })?;
    rows.collect()
}
