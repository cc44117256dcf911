//! Schema migrations from the top-level `migrations/` directory, embedded at build time.

use rusqlite::Connection;

/// Every migration in order; `PRAGMA user_version` is the number applied so far.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_jobs",
        include_str!("../../../../migrations/0001_jobs.sql"),
    ),
    (
        "0002_settings",
        include_str!("../../../../migrations/0002_settings.sql"),
    ),
    (
        "0003_digests",
        include_str!("../../../../migrations/0003_digests.sql"),
    ),
    (
        "0004_strict_properties",
        include_str!("../../../../migrations/0004_strict_properties.sql"),
    ),
    (
        "0005_uploads",
        include_str!("../../../../migrations/0005_uploads.sql"),
    ),
    (
        "0006_job_order",
        include_str!("../../../../migrations/0006_job_order.sql"),
    ),
    (
        "0007_splits",
        include_str!("../../../../migrations/0007_splits.sql"),
    ),
];

#[derive(Debug)]
pub(super) enum MigrateError {
    Sql(rusqlite::Error),
    TooNew { found: i64, known: i64 },
}

impl From<rusqlite::Error> for MigrateError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sql(e)
    }
}

/// Bring the schema up to date; each migration commits together with its version number.
pub(super) fn apply(conn: &Connection) -> Result<(), MigrateError> {
    let known = MIGRATIONS.len() as i64;
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > known {
        return Err(MigrateError::TooNew { found, known });
    }
    for (number, (name, sql)) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tracing::info!(migration = name, "applying schema migration");
        let batch = format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;",
            number + 1
        );
        if let Err(e) = conn.execute_batch(&batch) {
            // Leave the database as it was; the error says which statement failed.
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
    }
    Ok(())
}
