//! The SQLite queue. One thread owns the connection; async callers send it closures.
//!
//! The database runs in WAL mode with `synchronous=FULL`: a commit returns only once it is on
//! disk. Callers commit progress only after the bytes it counts are fsynced (see `transfer`), so
//! the store never claims a byte a crash could lose. Schema changes live in the top-level
//! `migrations/` directory and are applied in order at open.

mod migrate;
mod rows;
mod sealing;

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::model::{Job, JobId, JobState, Timestamp};

pub(crate) use rows::{FileProgress, JobRow, LiveRow, PageQuery, Selection, named};
pub(crate) use sealing::Sealer;

/// What an engine loads at open: a summary of each live job, and the final ones' names.
pub(crate) type Loaded<S> = (Vec<S>, Vec<(JobId, JobState, Timestamp)>);

type Task = Box<dyn FnOnce(&mut Connection) + Send>;

/// Handle to the store thread. Cheap to clone; the thread ends when the last handle is dropped.
#[derive(Clone, Debug)]
pub(crate) struct Store {
    tx: mpsc::Sender<Task>,
    path: PathBuf,
    sealer: std::sync::Arc<Sealer>,
    /// Read-only connections for readers, so that a read never waits behind a write's fsync.
    readers: std::sync::Arc<std::sync::Mutex<Vec<Connection>>>,
}

impl Store {
    /// Open (creating if needed) the database at `path`, apply migrations, and summarize each
    /// live job with `summarize` (given its row, without files or passwords). Passwords are
    /// sealed with `sealer`; any an older ebb left in plaintext are sealed now.
    pub(crate) async fn open<S: Send + 'static>(
        path: &Path,
        sealer: Sealer,
        summarize: fn(Job) -> S,
    ) -> Result<(Self, Loaded<S>)> {
        let (tx, rx) = mpsc::channel::<Task>();
        let (ready_tx, ready_rx) = oneshot::channel();
        let owned = path.to_path_buf();
        let sealer = std::sync::Arc::new(sealer);
        let thread_sealer = sealer.clone();
        std::thread::Builder::new()
            .name("ebb-store".into())
            .spawn(move || {
                let opened = open_rw(&owned).and_then(|mut conn| {
                    if let Err(other) = rows::check_key(&mut conn, &thread_sealer)
                        .map_err(|e| store_err(&owned, e))?
                    {
                        return Err(Error::Corrupt {
                            path: owned.clone(),
                            message: format!(
                                "its passwords are sealed with another key (fingerprint {other}) \
                                 than this one ({}): point EBB_SECRET_KEY at that key's file; if \
                                 that key is lost for good, start once with \
                                 EBB_FORGET_SEALED_PASSWORDS=1 to drop those passwords",
                                thread_sealer.fingerprint()
                            ),
                        });
                    }
                    rows::seal_plaintext(&mut conn, &thread_sealer)
                        .map_err(|e| store_err(&owned, e))?;
                    let loaded = rows::summarize_live(&conn, summarize)
                        .and_then(|live| Ok((live, rows::load_finals(&conn)?)))
                        .map_err(|e| store_err(&owned, e))?;
                    rows::clear_live(&mut conn).map_err(|e| store_err(&owned, e))?;
                    Ok((conn, loaded))
                });
                let mut conn = match opened {
                    Ok((conn, jobs)) => {
                        let _ = ready_tx.send(Ok(jobs));
                        conn
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(task) = rx.recv() {
                    task(&mut conn);
                }
            })
            .map_err(|e| Error::io(path, e))?;
        let jobs = ready_rx.await.map_err(|_| Error::ShutDown)??;
        Ok((
            Self {
                tx,
                path: path.to_path_buf(),
                sealer,
                readers: std::sync::Arc::default(),
            },
            jobs,
        ))
    }

    /// Run `f` on the store thread and wait for its result.
    pub(crate) async fn call<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        self.submit(f).await
    }

    /// Queue `f` on the store thread now, in order with every call queued before and after it;
    /// the returned future waits for its result.
    fn submit<R, F>(&self, f: F) -> impl Future<Output = Result<R>> + Send + 'static
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let task: Task = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        let queued = self.tx.send(task).map_err(|_| Error::ShutDown);
        let path = self.path.clone();
        async move {
            queued?;
            let result = rx.await.map_err(|_| Error::ShutDown)?;
            result.map_err(|e| store_err(&path, e))
        }
    }

    /// The row of `job`, its passwords sealed.
    fn row(&self, job: &Job) -> Result<JobRow> {
        JobRow::new(job, &self.sealer).ok_or_else(|| {
            Error::io(
                &self.path,
                std::io::Error::other("no random source to seal a password with"),
            )
        })
    }

    /// One job with its files, e.g. a final job the engine no longer holds.
    pub(crate) async fn load_job(&self, id: JobId) -> Result<Option<Job>> {
        let sealer = self.sealer.clone();
        self.call(move |c| rows::load_jobs(c, Selection::One(id), Some(&sealer)))
            .await
            .map(|mut jobs| jobs.pop())
    }

    /// Run `f` on a read-only connection, on a blocking thread: it sees what is committed,
    /// and waits for no write. Passwords stay sealed there.
    pub(crate) async fn read<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let (path, readers) = (self.path.clone(), self.readers.clone());
        crate::engine::blocking(move || {
            let pooled = readers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => open_ro(&path)?,
            };
            let result = f(&conn).map_err(|e| store_err(&path, e));
            let mut pool = readers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if pool.len() < READERS {
                pool.push(conn);
            }
            result
        })
        .await
    }

    /// One job as committed, passwords sealed (for readers).
    pub(crate) async fn read_job(&self, id: JobId) -> Result<Option<Job>> {
        self.read(move |c| rows::load_jobs(c, Selection::One(id), None))
            .await
            .map(|mut jobs| jobs.pop())
    }

    /// A page of jobs as committed, passwords sealed (for readers).
    pub(crate) async fn load_page(&self, page: PageQuery) -> Result<Vec<Job>> {
        self.read(move |c| rows::load_jobs(c, Selection::Page(page), None))
            .await
    }

    pub(crate) async fn insert_job(&self, job: &Job) -> Result<()> {
        let row = self.row(job)?;
        let files = job.files.clone();
        self.call(move |c| {
            let tx = c.transaction()?;
            rows::insert_job(&tx, &row, &files)?;
            tx.commit()
        })
        .await
    }

    pub(crate) async fn update_job(&self, job: &Job) -> Result<()> {
        let row = self.row(job)?;
        self.call(move |c| rows::update_job_row(c, &row)).await
    }

    /// Several jobs' rows in one transaction: all of them, or none.
    pub(crate) async fn update_jobs(&self, jobs: &[Job]) -> Result<()> {
        let rows = jobs
            .iter()
            .map(|j| self.row(j))
            .collect::<Result<Vec<_>>>()?;
        self.call(move |c| {
            let tx = c.transaction()?;
            for row in &rows {
                rows::update_job_row(&tx, row)?;
            }
            tx.commit()
        })
        .await
    }

    /// Persist the job row and the given files (by index) in one transaction.
    pub(crate) async fn update_job_and_files(&self, job: &Job, indices: Vec<usize>) -> Result<()> {
        let row = self.row(job)?;
        let files: Vec<_> = indices
            .into_iter()
            .filter_map(|i| job.files.get(i).map(|f| (i, f.clone())))
            .collect();
        self.call(move |c| {
            let tx = c.transaction()?;
            rows::update_job_row(&tx, &row)?;
            for (i, f) in &files {
                rows::upsert_file(&tx, row.id, *i, f)?;
            }
            tx.commit()
        })
        .await
    }

    /// Checkpoints: file progress whose bytes are already durable, queued now (see
    /// [`Store::submit`]) as one transaction. The future hands the progress back once it is
    /// committed.
    pub(crate) fn commit_progress(
        &self,
        progress: Vec<FileProgress>,
    ) -> impl Future<Output = Result<Vec<FileProgress>>> + Send + 'static {
        self.submit(move |c| {
            let tx = c.transaction()?;
            for p in &progress {
                rows::commit_progress(&tx, p)?;
            }
            tx.commit().map(|()| progress)
        })
    }

    /// A run-time setting, as JSON, if one was stored.
    pub(crate) async fn setting(&self, key: &'static str) -> Result<Option<String>> {
        self.call(move |c| {
            use rusqlite::OptionalExtension;
            c.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
        })
        .await
    }

    /// Store (or with `None`, forget) a run-time setting.
    pub(crate) async fn set_setting(&self, key: &'static str, value: Option<String>) -> Result<()> {
        self.call(move |c| {
            match value {
                Some(v) => c.execute(
                    "INSERT INTO settings (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [key, v.as_str()],
                ),
                None => c.execute("DELETE FROM settings WHERE key = ?1", [key]),
            }
            .map(drop)
        })
        .await
    }

    /// Publish live progress for other processes, without waiting for the disk.
    pub(crate) async fn publish_live(&self, live: Vec<LiveRow>) -> Result<()> {
        self.call(move |c| rows::publish_live(c, &live)).await
    }

    pub(crate) async fn delete_jobs(&self, ids: Vec<JobId>) -> Result<()> {
        self.call(move |c| {
            let tx = c.transaction()?;
            for id in &ids {
                rows::delete_job(&tx, *id)?;
            }
            tx.commit()
        })
        .await
    }
}

fn store_err(path: &Path, source: rusqlite::Error) -> Error {
    Error::Store {
        path: path.to_path_buf(),
        source,
    }
}

fn open_rw(path: &Path) -> Result<Connection> {
    // Created 0600 before SQLite sees it: SQLite gives its WAL and shared-memory files the
    // database's mode.
    drop(crate::private_dir::open_file(path, false)?);
    let conn = Connection::open(path).map_err(|e| store_err(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| store_err(path, e))?;
    // secure_delete: a replaced or deleted row (a password sealed anew, a dropped credential)
    // is overwritten where that costs no extra I/O (a jobs row is rewritten in its own page).
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA secure_delete = FAST;",
    )
    .map_err(|e| store_err(path, e))?;
    migrate::apply(&conn).map_err(|e| match e {
        migrate::MigrateError::Sql(e) => store_err(path, e),
        migrate::MigrateError::TooNew { found, known } => Error::Corrupt {
            path: path.to_path_buf(),
            message: format!(
                "schema version {found} is newer than this ebb knows ({known}): upgrade ebb"
            ),
        },
    })?;
    Ok(conn)
}

/// How many read-only connections a store keeps for its readers.
const READERS: usize = 4;

/// A read-only connection to the database at `path`, with a page cache of 1 MiB (readers
/// mostly walk the tables once, and several may be open).
fn open_ro(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| store_err(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| store_err(path, e))?;
    conn.execute_batch("PRAGMA cache_size = -1024;")
        .map_err(|e| store_err(path, e))?;
    Ok(conn)
}

/// Read the jobs `which` selects without taking part in the engine: for read-only commands that
/// may run while another process owns the engine. Live progress is applied when `live` is set.
pub(crate) fn read_jobs(path: &Path, live: bool, which: Selection) -> Result<Vec<Job>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let conn = open_ro(path)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| store_err(path, e))?;
    if version == 0 {
        return Ok(Vec::new());
    }
    // Readers show user names only: passwords stay sealed.
    let mut jobs = rows::load_jobs(&conn, which, None).map_err(|e| store_err(path, e))?;
    if live {
        rows::overlay_live(&conn, &mut jobs).map_err(|e| store_err(path, e))?;
    }
    Ok(jobs)
}
