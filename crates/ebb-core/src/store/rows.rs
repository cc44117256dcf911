//! Mapping between the model and the tables of `migrations/`.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

mod load;

use super::sealing::{Opened, Sealer};
use crate::model::{
    BasicCredentials, Bookkeeping, Job, JobFile, JobId, Owner, Sha256Digest, Timestamp,
};
pub(crate) use load::{PageQuery, Selection, load_finals, load_jobs, named, summarize_live};

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn json_err(e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

fn parse_err(column: usize, e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
}

#[derive(Debug)]
struct BadValue(String);

impl std::fmt::Display for BadValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadValue {}

#[derive(Debug)]
pub(crate) struct JobRow {
    pub id: JobId,
    display_name: String,
    description: String,
    job_type: &'static str,
    state: &'static str,
    owner: Owner,
    properties: String,
    /// User name and sealed password of the server and proxy credentials.
    server: Option<(String, String)>,
    proxy: Option<(String, String)>,
    created_at: i64,
    modified_at: i64,
    completed_at: Option<i64>,
    error_count: u32,
    error: Option<String>,
    schedule: Bookkeeping,
    reply_file_name: Option<String>,
}

impl JobRow {
    /// The row of `job`, its passwords sealed; `None` if a password cannot be sealed.
    pub(crate) fn new(job: &Job, sealer: &Sealer) -> Option<Self> {
        let seal = |c: &Option<BasicCredentials>, field| match c {
            None => Some(None),
            Some(c) => sealer
                .seal(job.id, field, &c.password)
                .map(|p| Some((c.user_name.clone(), p))),
        };
        Some(Self {
            id: job.id,
            display_name: job.display_name.clone(),
            description: job.description.clone(),
            job_type: job.job_type.as_str(),
            state: job.state().as_str(),
            owner: job.owner.clone(),
            // Serialising plain data cannot fail; if it did, no row is better than a partial one.
            properties: serde_json::to_string(&job.properties).ok()?,
            server: seal(&job.credentials.server, "server")?,
            proxy: seal(&job.credentials.proxy, "proxy")?,
            created_at: job.created_at.as_millis(),
            modified_at: job.modified_at.as_millis(),
            completed_at: job.completed_at.map(Timestamp::as_millis),
            error_count: job.error_count,
            error: job
                .error
                .as_ref()
                .and_then(|e| serde_json::to_string(e).ok()),
            schedule: job.schedule.clone(),
            reply_file_name: job.reply_file_name.as_deref().map(path_str),
        })
    }
}

pub(crate) fn insert_job(
    tx: &Transaction<'_>,
    row: &JobRow,
    files: &[JobFile],
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO jobs (id, display_name, description, job_type, state, owner_uid, owner_name,
             properties, created_at, modified_at) VALUES (?1, ?2, '', ?3, ?4, ?5, ?6, '{}', ?7, ?7)",
        params![
            row.id.to_string(),
            row.display_name,
            row.job_type,
            row.state,
            row.owner.uid,
            row.owner.name,
            row.created_at
        ],
    )?;
    update_job_row(tx, row)?;
    for (i, f) in files.iter().enumerate() {
        upsert_file(tx, row.id, i, f)?;
    }
    Ok(())
}

pub(crate) fn update_job_row(conn: &Connection, row: &JobRow) -> rusqlite::Result<()> {
    let split =
        |c: &Option<(String, String)>| c.as_ref().map(|(u, p)| (u.clone(), p.clone())).unzip();
    let (su, sp) = split(&row.server);
    let (pu, pp) = split(&row.proxy);
    conn.prepare_cached(
        "UPDATE jobs SET display_name = ?2, description = ?3, state = ?4, properties = ?5,
             server_user = ?6, server_password = ?7, proxy_user = ?8, proxy_password = ?9,
             modified_at = ?10, completed_at = ?11, error_count = ?12, error = ?13,
             queue_seq = ?14, retry_at = ?15, no_progress_since = ?16, active_ms = ?17,
             reply_file_name = ?18
         WHERE id = ?1",
    )?
    .execute(params![
        row.id.to_string(),
        row.display_name,
        row.description,
        row.state,
        row.properties,
        su,
        sp,
        pu,
        pp,
        row.modified_at,
        row.completed_at,
        row.error_count,
        row.error,
        row.schedule.queue_seq,
        row.schedule.retry_at.map(Timestamp::as_millis),
        row.schedule.no_progress_since.map(Timestamp::as_millis),
        to_i64(row.schedule.active_ms),
        row.reply_file_name,
    ])?;
    Ok(())
}

/// Seal the passwords an older ebb stored in plaintext, and make sure none survives in the
/// write-ahead log.
pub(crate) fn seal_plaintext(conn: &mut Connection, sealer: &Sealer) -> rusqlite::Result<()> {
    let plain: Vec<(String, Option<String>, Option<String>)> = conn
        .prepare(
            "SELECT id, server_password, proxy_password FROM jobs
             WHERE substr(server_password, 1, 5) != 'ebk1:' OR substr(proxy_password, 1, 5) != 'ebk1:'",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if plain.is_empty() {
        return Ok(());
    }
    let tx = conn.transaction()?;
    for (id, server, proxy) in &plain {
        let job: JobId = id.parse().map_err(|e: String| parse_err(0, BadValue(e)))?;
        let reseal = |stored: &Option<String>, field| {
            stored.as_ref().map(|p| match sealer.open(job, field, p) {
                Opened::Plain(text) => sealer.seal(job, field, &text).unwrap_or_else(|| p.clone()),
                _ => p.clone(),
            })
        };
        tx.execute(
            "UPDATE jobs SET server_password = ?2, proxy_password = ?3 WHERE id = ?1",
            params![id, reseal(server, "server"), reseal(proxy, "proxy")],
        )?;
    }
    tx.commit()?;
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    if busy != 0 {
        tracing::warn!(
            "a reader kept the write-ahead log: old plaintext may stay in it until the next checkpoint"
        );
    }
    tracing::info!(
        jobs = plain.len(),
        "sealed passwords an older ebb stored in plaintext"
    );
    Ok(())
}

const KEY_SETTING: &str = "secret_key_fingerprint";

/// Make sure the queue's passwords are sealed with `sealer`'s key. Another key's passwords
/// could not be opened, and writing the jobs back would replace them with nothing: refuse,
/// unless told to forget them. `Err(fingerprint)` names the key they need.
pub(crate) fn check_key(
    conn: &mut Connection,
    sealer: &Sealer,
) -> rusqlite::Result<Result<(), String>> {
    let stored: Option<String> = conn
        .query_row(
            "SELECT value FROM settings WHERE key = ?1",
            [KEY_SETTING],
            |r| r.get(0),
        )
        .optional()?;
    let sealed_jobs: i64 = conn.query_row(
        "SELECT count(*) FROM jobs WHERE substr(server_password, 1, 5) = 'ebk1:'
             OR substr(proxy_password, 1, 5) = 'ebk1:'",
        [],
        |r| r.get(0),
    )?;
    if stored.as_deref() == Some(sealer.fingerprint()) {
        // The usual open: nothing to write (and no commit to wait for).
        return Ok(Ok(()));
    }
    let tx = conn.transaction()?;
    if let Some(other) = stored
        && sealed_jobs > 0
    {
        if !sealer.forgets_others() {
            return Ok(Err(other));
        }
        tracing::warn!(jobs = sealed_jobs, key = %other, "dropping passwords sealed with a lost key: set the jobs' credentials again");
        tx.execute(
            "UPDATE jobs SET server_user = NULL, server_password = NULL
             WHERE substr(server_password, 1, 5) = 'ebk1:'",
            [],
        )?;
        tx.execute(
            "UPDATE jobs SET proxy_user = NULL, proxy_password = NULL
             WHERE substr(proxy_password, 1, 5) = 'ebk1:'",
            [],
        )?;
    }
    tx.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = ?2",
        [KEY_SETTING, sealer.fingerprint()],
    )?;
    tx.commit()?;
    Ok(Ok(()))
}

pub(crate) fn upsert_file(
    conn: &Connection,
    job: JobId,
    idx: usize,
    f: &JobFile,
) -> rusqlite::Result<()> {
    let ranges = if f.ranges.is_empty() {
        None
    } else {
        Some(serde_json::to_string(&f.ranges).map_err(json_err)?)
    };
    let hex = |d: Option<Sha256Digest>| d.map(|d| d.to_string());
    let upload = f
        .upload
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(json_err)?;
    let splits = if f.splits.is_empty() {
        None
    } else {
        Some(serde_json::to_string(&f.splits).map_err(json_err)?)
    };
    conn.prepare_cached(
        "INSERT INTO files (job_id, idx, remote_url, local_path, ranges, temp_path, bytes_total,
             bytes_transferred, completed, etag, last_modified, expected_sha256, server_sha256,
             verified_sha256, hash_state, upload, splits)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
         ON CONFLICT (job_id, idx) DO UPDATE SET remote_url = ?3, local_path = ?4, ranges = ?5,
             temp_path = ?6, bytes_total = ?7, bytes_transferred = ?8, completed = ?9,
             etag = ?10, last_modified = ?11, expected_sha256 = ?12, server_sha256 = ?13,
             verified_sha256 = ?14, hash_state = ?15, upload = ?16, splits = ?17",
    )?
    .execute(params![
        job.to_string(),
        to_i64(idx as u64),
        f.remote_url,
        path_str(&f.local_path),
        ranges,
        path_str(&f.temp_path),
        f.bytes_total.map(to_i64),
        to_i64(f.bytes_transferred),
        f.completed,
        f.validators.etag,
        f.validators.last_modified,
        hex(f.expected_sha256),
        hex(f.validators.sha256),
        hex(f.verified_sha256),
        f.hash_state,
        upload,
        splits,
    ])?;
    Ok(())
}

fn path_str(p: &std::path::Path) -> String {
    // Local paths are validated as UTF-8 when files are added.
    p.to_string_lossy().into_owned()
}

/// A checkpoint: these files' progress is durable on disk now.
#[derive(Debug)]
pub(crate) struct FileProgress {
    pub job_id: JobId,
    pub modified_at: Timestamp,
    pub files: Vec<(usize, JobFile)>,
}

pub(crate) fn commit_progress(tx: &Transaction<'_>, p: &FileProgress) -> rusqlite::Result<()> {
    for (idx, f) in &p.files {
        upsert_file(tx, p.job_id, *idx, f)?;
    }
    tx.prepare_cached("UPDATE jobs SET modified_at = max(modified_at, ?2) WHERE id = ?1")?
        .execute(params![p.job_id.to_string(), p.modified_at.as_millis()])?;
    Ok(())
}

pub(crate) fn delete_job(tx: &Transaction<'_>, id: JobId) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM files WHERE job_id = ?1", [id.to_string()])?;
    tx.execute(
        "DELETE FROM live_progress WHERE job_id = ?1",
        [id.to_string()],
    )?;
    tx.execute("DELETE FROM jobs WHERE id = ?1", [id.to_string()])?;
    Ok(())
}

/// One file's live progress, published by the engine running its job.
#[derive(Debug, Clone)]
pub(crate) struct LiveRow {
    pub job_id: JobId,
    pub idx: usize,
    pub bytes_transferred: u64,
    pub bytes_total: Option<u64>,
    pub completed: bool,
}

/// Replace the live table. Written with `synchronous=OFF`: these figures are for display only,
/// and the engine clears them at start.
pub(crate) fn publish_live(conn: &mut Connection, rows: &[LiveRow]) -> rusqlite::Result<()> {
    conn.execute_batch("PRAGMA synchronous = OFF")?;
    let result = (|| {
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM live_progress", [])?;
        for r in rows {
            tx.prepare_cached(
                "INSERT INTO live_progress (job_id, idx, bytes_transferred, bytes_total, completed)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                r.job_id.to_string(),
                to_i64(r.idx as u64),
                to_i64(r.bytes_transferred),
                r.bytes_total.map(to_i64),
                r.completed
            ])?;
        }
        tx.commit()
    })();
    conn.execute_batch("PRAGMA synchronous = FULL")?;
    result
}

pub(crate) fn clear_live(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM live_progress", []).map(|_| ())
}

pub(crate) fn overlay_live(conn: &Connection, jobs: &mut [Job]) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(
        "SELECT job_id, idx, bytes_transferred, bytes_total, completed FROM live_progress",
    )?;
    let index: HashMap<JobId, usize> = jobs.iter().enumerate().map(|(i, j)| (j.id, i)).collect();
    let rows = stmt.query_map([], |r| {
        Ok((
            parse_id(r, 0)?,
            to_u64(r.get(1)?) as usize,
            to_u64(r.get(2)?),
            r.get::<_, Option<i64>>(3)?.map(to_u64),
            r.get::<_, bool>(4)?,
        ))
    })?;
    for row in rows {
        let (id, idx, bytes, total, completed) = row?;
        let Some(file) = index.get(&id).and_then(|&j| jobs[j].files.get_mut(idx)) else {
            continue;
        };
        if bytes >= file.bytes_transferred && !file.completed {
            file.bytes_transferred = bytes;
            file.bytes_total = total.or(file.bytes_total);
            file.completed = completed;
        }
    }
    Ok(())
}

fn parse_id(r: &Row<'_>, col: usize) -> rusqlite::Result<JobId> {
    let text: String = r.get(col)?;
    text.parse()
        .map_err(|e: String| parse_err(col, BadValue(e)))
}

fn parse_text<T: std::str::FromStr<Err = String>>(r: &Row<'_>, col: usize) -> rusqlite::Result<T> {
    let text: String = r.get(col)?;
    text.parse()
        .map_err(|e: String| parse_err(col, BadValue(e)))
}
