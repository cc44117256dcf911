//! The default [`SessionStore`]: a SQLite database beside the server's other state, owned by
//! one thread (`synchronous = FULL`: a write returns once it is on disk).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use super::{Advanced, Closed, Session, SessionStore, Target, from_i64, to_i64};
use crate::error::{Error, Result};

type Task = Box<dyn FnOnce(&mut Connection) + Send>;

const SCHEMA: [&str; 4] = [
    include_str!("../../migrations/0001_sessions.sql"),
    include_str!("../../migrations/0002_closed.sql"),
    include_str!("../../migrations/0003_objects.sql"),
    include_str!("../../migrations/0004_closed_total.sql"),
];

/// Sessions in a SQLite file.
#[derive(Debug)]
pub struct SqliteSessions {
    path: PathBuf,
    tx: std::sync::mpsc::Sender<Task>,
}

impl SqliteSessions {
    /// Open (or create) the session database at `path`.
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
        Ok(Self {
            path: path.to_path_buf(),
            tx,
        })
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
}

#[async_trait::async_trait]
impl SessionStore for SqliteSessions {
    async fn load(&self) -> Result<Vec<Session>> {
        self.call(load).await
    }

    async fn insert(&self, s: &Session) -> Result<()> {
        let row = s.clone();
        self.call(move |c| insert(c, &row)).await
    }

    async fn get(&self, id: &str) -> Result<Option<Session>> {
        let id = id.to_owned();
        self.call(move |c| {
            c.prepare_cached(&format!("SELECT {COLUMNS} FROM sessions WHERE id = ?1"))?
                .query_row([id], session)
                .optional()
        })
        .await
    }

    async fn advance(&self, s: &Session, from: u64) -> Result<Advanced> {
        let (id, total, received, touched) = (s.id.clone(), s.total, s.received, s.touched_at);
        let multipart = s.target.multipart_json();
        self.call(move |c| {
            let tx = c.transaction()?;
            let changed = tx
                .prepare_cached(
                    "UPDATE sessions SET total = ?2, received = ?3, touched_at = ?4, multipart = ?6
                     WHERE id = ?1 AND received = ?5",
                )?
                .execute(params![
                    id,
                    total.map(to_i64),
                    to_i64(received),
                    touched,
                    to_i64(from),
                    multipart
                ])?;
            let advanced = if changed == 1 {
                Advanced::Done
            } else {
                tx.query_row("SELECT received FROM sessions WHERE id = ?1", [&id], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()?
                .map_or(Advanced::Gone, |committed| Advanced::Lost {
                    committed: from_i64(committed),
                })
            };
            tx.commit()?;
            Ok(advanced)
        })
        .await
    }

    async fn update(&self, s: &Session) -> Result<()> {
        let (id, touched, reply, keep) = (s.id.clone(), s.touched_at, s.reply.clone(), s.keep);
        self.call(move |c| {
            c.prepare_cached(
                "UPDATE sessions SET touched_at = ?2, reply_url = ?3, keep = ?4 WHERE id = ?1",
            )?
            .execute(params![id, touched, reply, keep])
            .map(drop)
        })
        .await
    }

    async fn remove(&self, id: &str) -> Result<()> {
        let key = id.to_owned();
        self.call(move |c| {
            c.execute("DELETE FROM sessions WHERE id = ?1", [key])
                .map(drop)
        })
        .await
    }

    async fn close(&self, s: &Session, at: i64) -> Result<()> {
        let (id, url_path, user) = (s.id.clone(), s.url_path.clone(), s.user.clone());
        let total = s.total.map(to_i64);
        self.call(move |c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM sessions WHERE id = ?1", [&id])?;
            tx.execute(
                "INSERT OR REPLACE INTO closed (id, url_path, user_name, closed_at, total)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, url_path, user, at, total],
            )?;
            tx.commit()
        })
        .await
    }

    async fn closed(&self, id: &str) -> Result<Option<Closed>> {
        let id = id.to_owned();
        self.call(move |c| {
            c.query_row(
                "SELECT url_path, user_name, total FROM closed WHERE id = ?1",
                [id],
                |r| {
                    Ok(Closed {
                        url_path: r.get(0)?,
                        user: r.get(1)?,
                        total: r.get::<_, Option<i64>>(2)?.map(from_i64),
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn count(&self, user: Option<&str>) -> Result<usize> {
        let user = user.map(str::to_owned);
        self.call(move |c| {
            c.prepare_cached("SELECT count(*) FROM sessions WHERE user_name IS ?1")?
                .query_row([user], |r| r.get::<_, i64>(0))
                .map(|n| usize::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn untouched(&self, before: i64, limit: usize) -> Result<Vec<Session>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM sessions WHERE touched_at < ?1 ORDER BY touched_at LIMIT ?2"
            ))?
            .query_map(params![before, limit], session)?
            .collect()
        })
        .await
    }

    async fn forget_closed(&self, before: i64) -> Result<()> {
        self.call(move |c| {
            c.execute("DELETE FROM closed WHERE closed_at < ?1", [before])
                .map(drop)
        })
        .await
    }
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
             created_at, touched_at, multipart) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            s.id,
            s.url_path,
            s.user,
            s.target.destination_text(),
            s.target.temp_text(),
            s.total.map(to_i64),
            to_i64(s.received),
            s.created_at,
            s.touched_at,
            s.target.multipart_json()
        ],
    )
    .map(drop)
}

const COLUMNS: &str = "id, url_path, user_name, destination, temp_path, total, received, \
                       created_at, touched_at, reply_url, keep, multipart";

fn load(c: &mut Connection) -> rusqlite::Result<Vec<Session>> {
    let mut stmt = c.prepare(&format!("SELECT {COLUMNS} FROM sessions"))?;
    let rows = stmt.query_map([], session)?;
    rows.collect()
}

fn session(r: &rusqlite::Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        id: r.get(0)?,
        url_path: r.get(1)?,
        user: r.get(2)?,
        target: Target::from_row(
            r.get(3)?,
            r.get(4)?,
            r.get::<_, Option<String>>(11)?.as_deref(),
        ),
        total: r.get::<_, Option<i64>>(5)?.map(from_i64),
        received: from_i64(r.get(6)?),
        created_at: r.get(7)?,
        touched_at: r.get(8)?,
        reply: r.get(9)?,
        keep: r.get(10)?,
    })
}
