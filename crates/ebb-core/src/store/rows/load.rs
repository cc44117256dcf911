//! Reading jobs and their files back from the tables, strictly: a value this version cannot
//! read is an error that names its column, never a silent default.

use std::collections::HashMap;
use std::path::PathBuf;

use rusqlite::types::Value;
use rusqlite::{Connection, Row};

use super::{BadValue, parse_err, parse_id, parse_text, to_u64};
use crate::model::{
    BasicCredentials, Bookkeeping, Credentials, Job, JobFile, JobId, JobProperties, JobState,
    JobType, Owner, Sha256Digest, Timestamp, Validators,
};
use crate::store::sealing::{Opened, Sealer};

/// A stored JSON object as `T`, refusing a field `T` does not know and a field `T` has that the
/// object lacks: a renamed or dropped field fails loudly instead of taking its default.
fn strict_json<T: serde::de::DeserializeOwned + serde::Serialize>(
    text: &str,
    column: usize,
) -> rusqlite::Result<T> {
    let stored: serde_json::Value = serde_json::from_str(text).map_err(|e| parse_err(column, e))?;
    let value: T = serde_json::from_value(stored.clone()).map_err(|e| parse_err(column, e))?;
    let known = serde_json::to_value(&value).map_err(|e| parse_err(column, e))?;
    let keys = |v: &serde_json::Value| -> std::collections::BTreeSet<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    let (stored_keys, known_keys) = (keys(&stored), keys(&known));
    let unknown: Vec<&String> = stored_keys.difference(&known_keys).collect();
    let missing: Vec<&String> = known_keys.difference(&stored_keys).collect();
    if unknown.is_empty() && missing.is_empty() {
        return Ok(value);
    }
    Err(parse_err(
        column,
        BadValue(format!(
            "stored fields unknown to this ebb: {unknown:?}; fields it expects but the row \
             lacks: {missing:?} (a queue from another version needs its migration)"
        )),
    ))
}

/// Everything in the `jobs` row (no files), cloned out of a job to send to the store thread.
fn parse_digest(r: &Row<'_>, col: usize) -> rusqlite::Result<Option<Sha256Digest>> {
    let text: Option<String> = r.get(col)?;
    text.map(|t| t.parse().map_err(|e: String| parse_err(col, BadValue(e))))
        .transpose()
}

fn credentials(
    user: Option<String>,
    stored: Option<String>,
    sealer: Option<(&Sealer, JobId, &str)>,
) -> Option<BasicCredentials> {
    let password = match (stored, sealer) {
        (Some(stored), Some((sealer, job, field))) => match sealer.open(job, field, &stored) {
            Opened::Sealed(p) | Opened::Plain(p) => p,
            // Damaged (the key is checked at open): sending `user:` with no password could
            // lock an account, so the job has no credentials until they are set again.
            Opened::Unreadable => {
                tracing::warn!(job_id = %job, field, "cannot open a sealed password: set the job's credentials again");
                return None;
            }
        },
        _ => String::new(),
    };
    user.map(|user_name| BasicCredentials {
        user_name,
        password,
    })
}

/// The columns [`job_row`] reads, in its order, but the last (`reply_file_name`, of schema 5).
const JOB_COLUMNS_BUT_REPLY: &str = "id, display_name, description, job_type, state, owner_uid, owner_name, properties, \
     server_user, server_password, proxy_user, proxy_password, created_at, modified_at, \
     completed_at, error_count, error, queue_seq, retry_at, no_progress_since, active_ms";
/// Which jobs to load.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Selection {
    All,
    One(JobId),
    /// A page of a listing, in creation order.
    Page(PageQuery),
}

/// A page of jobs in (creation time, id) order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PageQuery {
    /// Acknowledged and Cancelled jobs too.
    pub final_jobs: bool,
    /// Only this user's jobs.
    pub owner: Option<u32>,
    /// The jobs after this (creation time, id).
    pub after: Option<(Timestamp, JobId)>,
    pub limit: usize,
}

const LIVE: &str = "state NOT IN ('acknowledged', 'cancelled')";

impl Selection {
    /// A condition on `jobs.id` (as `column`) and its parameters.
    fn filter(self, column: &str) -> (String, Vec<Value>) {
        match self {
            Self::All => (String::new(), Vec::new()),
            Self::One(id) => (
                format!("WHERE {column} = ?1"),
                vec![Value::Text(id.to_string())],
            ),
            Self::Page(page) => {
                let mut conditions = vec!["1".to_owned()];
                let mut args = Vec::new();
                if !page.final_jobs {
                    conditions.push(LIVE.to_owned());
                }
                if let Some(uid) = page.owner {
                    args.push(Value::Integer(i64::from(uid)));
                    conditions.push(format!("owner_uid = ?{}", args.len()));
                }
                if let Some((created_at, id)) = page.after {
                    args.push(Value::Integer(created_at.as_millis()));
                    args.push(Value::Text(id.to_string()));
                    let n = args.len();
                    conditions.push(format!("(created_at, id) > (?{}, ?{n})", n - 1));
                }
                args.push(Value::Integer(
                    i64::try_from(page.limit).unwrap_or(i64::MAX),
                ));
                (
                    format!(
                        "WHERE {column} IN (SELECT id FROM jobs WHERE {} \
                         ORDER BY created_at, id LIMIT ?{})",
                        conditions.join(" AND "),
                        args.len()
                    ),
                    args,
                )
            }
        }
    }
}

/// Acknowledged and Cancelled jobs, without their files: id, state, last change.
pub(crate) fn load_finals(
    conn: &Connection,
) -> rusqlite::Result<Vec<(JobId, JobState, Timestamp)>> {
    let mut stmt = conn.prepare(
        "SELECT id, state, modified_at FROM jobs WHERE state IN ('acknowledged', 'cancelled')",
    )?;
    stmt.query_map([], |r| {
        Ok((
            parse_id(r, 0)?,
            parse_text(r, 1)?,
            Timestamp::from_millis(r.get(2)?),
        ))
    })?
    .collect()
}

/// (id, name, state) of the jobs `id_or_name` may mean: the one with that id, and those with
/// that display name (by the name's index).
pub(crate) fn named(
    conn: &Connection,
    id_or_name: &str,
) -> rusqlite::Result<Vec<(JobId, String, JobState)>> {
    let id = id_or_name
        .parse::<JobId>()
        .map_or_else(|_| String::new(), |id| id.to_string());
    let mut stmt = conn.prepare(
        "SELECT id, display_name, state FROM jobs WHERE display_name = ?1
         UNION SELECT id, display_name, state FROM jobs WHERE id = ?2",
    )?;
    stmt.query_map([id_or_name, id.as_str()], |r| {
        Ok((parse_id(r, 0)?, r.get(1)?, parse_text(r, 2)?))
    })?
    .collect()
}

/// Load jobs. Passwords are opened with `sealer`; without one (a reader), they are left empty.
pub(crate) fn load_jobs(
    conn: &Connection,
    which: Selection,
    sealer: Option<&Sealer>,
) -> rusqlite::Result<Vec<Job>> {
    // A reader may open a queue an older ebb wrote and never migrated: columns of later
    // migrations read as NULL there.
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let (upload, reply_file_name) = if version >= 5 {
        ("upload", "reply_file_name")
    } else {
        ("NULL", "NULL")
    };
    let splits = if version >= 7 { "splits" } else { "NULL" };
    let (filter, args) = which.filter("id");
    let mut properties = Properties::default();
    // Cached: a listing asks the same questions page after page.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS_BUT_REPLY}, {reply_file_name} FROM jobs {filter}
         ORDER BY created_at, id"
    ))?;
    let mut jobs = stmt
        .query_map(rusqlite::params_from_iter(&args), |r| {
            job_row(r, sealer, &mut properties)
        })?
        .collect::<rusqlite::Result<Vec<Job>>>()?;
    let index: HashMap<JobId, usize> = jobs.iter().enumerate().map(|(i, j)| (j.id, i)).collect();
    let (filter, args) = which.filter("job_id");
    let mut files = conn.prepare_cached(&format!(
        "SELECT job_id, idx, remote_url, local_path, ranges, temp_path, bytes_total,
                bytes_transferred, completed, etag, last_modified, expected_sha256, server_sha256,
                verified_sha256, hash_state, {upload}, {splits}
         FROM files {filter} ORDER BY job_id, idx"
    ))?;
    for row in files.query_map(rusqlite::params_from_iter(&args), file_row)? {
        let (id, idx, file) = row?;
        if let Some(&j) = index.get(&id) {
            let job = &mut jobs[j];
            if job.job_type == JobType::UploadReply && idx == Job::REPLY_INDEX {
                job.reply = Some(file);
            } else {
                job.files.push(file);
            }
        }
    }
    Ok(jobs)
}

/// Every live job's row, without its files and its passwords, each handed to `f` as it is
/// read (an engine keeps a summary of each: nothing holds all the rows at once).
pub(crate) fn summarize_live<S>(
    conn: &Connection,
    mut f: impl FnMut(Job) -> S,
) -> rusqlite::Result<Vec<S>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {JOB_COLUMNS_BUT_REPLY}, reply_file_name FROM jobs WHERE {LIVE}
         ORDER BY created_at, id"
    ))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    let mut properties = Properties::default();
    while let Some(row) = rows.next()? {
        out.push(f(job_row(row, None, &mut properties)?));
    }
    Ok(out)
}

/// The `properties` column read strictly, once per distinct text: most jobs have the same
/// properties (the defaults), and a listing of many reads each text once.
#[derive(Default)]
struct Properties {
    last: Option<(String, JobProperties)>,
}

impl Properties {
    fn read(&mut self, text: &str) -> rusqlite::Result<JobProperties> {
        if let Some((last_text, value)) = &self.last
            && last_text == text
        {
            return Ok(value.clone());
        }
        let value: JobProperties = strict_json(text, 7)?;
        self.last = Some((text.to_owned(), value.clone()));
        Ok(value)
    }
}

/// One row of `jobs`, in `load_jobs`'s column order, without its files.
fn job_row(
    r: &Row<'_>,
    sealer: Option<&Sealer>,
    properties: &mut Properties,
) -> rusqlite::Result<Job> {
    let properties = properties.read(r.get_ref(7)?.as_str()?)?;
    let error: Option<String> = r.get(16)?;
    let error = error.map(|text| strict_json(&text, 16)).transpose()?;
    let state: JobState = parse_text(r, 4)?;
    let id = parse_id(r, 0)?;
    let open = |user: Option<String>, stored: Option<String>, field| {
        credentials(user, stored, sealer.map(|s| (s, id, field)))
    };
    Ok(Job {
        id,
        display_name: r.get(1)?,
        description: r.get(2)?,
        job_type: parse_text(r, 3)?,
        state,
        owner: Owner {
            uid: r.get(5)?,
            name: r.get(6)?,
        },
        properties,
        credentials: Credentials {
            server: open(r.get(8)?, r.get(9)?, "server"),
            proxy: open(r.get(10)?, r.get(11)?, "proxy"),
        },
        files: Vec::new(),
        reply_file_name: r.get::<_, Option<String>>(21)?.map(PathBuf::from),
        reply: None,
        created_at: Timestamp::from_millis(r.get(12)?),
        modified_at: Timestamp::from_millis(r.get(13)?),
        completed_at: r.get::<_, Option<i64>>(14)?.map(Timestamp::from_millis),
        error_count: r.get(15)?,
        error,
        schedule: Bookkeeping {
            queue_seq: r.get(17)?,
            retry_at: r.get::<_, Option<i64>>(18)?.map(Timestamp::from_millis),
            no_progress_since: r.get::<_, Option<i64>>(19)?.map(Timestamp::from_millis),
            active_ms: to_u64(r.get(20)?),
        },
    })
}

/// One row of `files`, in `load_jobs`'s column order, with its job's id.
fn file_row(r: &Row<'_>) -> rusqlite::Result<(JobId, usize, JobFile)> {
    let ranges: Option<String> = r.get(4)?;
    let ranges = match ranges {
        Some(text) => serde_json::from_str(&text).map_err(|e| parse_err(4, e))?,
        None => Vec::new(),
    };
    Ok((
        parse_id(r, 0)?,
        usize::try_from(r.get::<_, i64>(1)?).map_err(|e| parse_err(1, e))?,
        JobFile {
            remote_url: r.get(2)?,
            local_path: PathBuf::from(r.get::<_, String>(3)?),
            ranges,
            temp_path: PathBuf::from(r.get::<_, String>(5)?),
            bytes_total: r.get::<_, Option<i64>>(6)?.map(to_u64),
            bytes_transferred: to_u64(r.get(7)?),
            completed: r.get(8)?,
            validators: Validators {
                etag: r.get(9)?,
                last_modified: r.get(10)?,
                sha256: parse_digest(r, 12)?,
            },
            expected_sha256: parse_digest(r, 11)?,
            verified_sha256: parse_digest(r, 13)?,
            hash_state: r.get(14)?,
            upload: r
                .get::<_, Option<String>>(15)?
                .map(|text| strict_json(&text, 15))
                .transpose()?,
            splits: r
                .get::<_, Option<String>>(16)?
                .map(|text| strict_json(&text, 16))
                .transpose()?
                .unwrap_or_default(),
        },
    ))
}
