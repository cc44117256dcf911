//! A [`SessionStore`] in PostgreSQL, for several nodes that share their sessions. Every write is
//! one statement in its own transaction; the committed offset moves by a conditional `UPDATE`,
//! so that of two nodes moving it from the same place exactly one wins. A connection the
//! database dropped (a restart, a failover) is made again at the next call. Connections use
//! TLS (rustls) where the server offers it, unless `sslmode=disable`; the server's certificate
//! is checked against the configured CA file or else the system's roots, and `sslmode=require`
//! refuses a server without TLS.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::config::SslMode;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Row, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{Advanced, Closed, Session, SessionStore, Target, from_i64, to_i64};
use crate::error::{Error, Result};

const SCHEMA: [&str; 4] = [
    include_str!("../../migrations/postgres/0001_sessions.sql"),
    include_str!("../../migrations/postgres/0002_closed.sql"),
    include_str!("../../migrations/postgres/0003_objects.sql"),
    include_str!("../../migrations/postgres/0004_closed_total.sql"),
];

/// Held while the schema is migrated, so that nodes starting together migrate once.
const MIGRATION_LOCK: i64 = 0x6562_625f_7365_7373; // "ebb_sess"

const COLUMNS: &str = "id, url_path, user_name, destination, temp_path, total, received, \
                       created_at, touched_at, reply_url, keep, multipart";

/// Sessions in a PostgreSQL database.
pub struct PostgresSessions {
    config: Config,
    tls: Option<MakeRustlsConnect>,
    /// The connection; replaced once the database has closed it.
    client: tokio::sync::Mutex<Arc<Conn>>,
    /// The database's hosts and name, for errors (the connection string may hold a password).
    place: String,
}

impl std::fmt::Debug for PostgresSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSessions")
            .field("place", &self.place)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// How long a connection may take, unless the address says.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl PostgresSessions {
    /// Connect with `params` (`host=... port=... user=... dbname=...`, or a `postgresql://`
    /// URL), trusting the certificates of `ca_file` (PEM) or else the system's for TLS, and
    /// bring the schema up to date.
    pub async fn connect(params: &str, ca_file: Option<&Path>) -> Result<Self> {
        let mut config = Config::from_str(params)
            .map_err(|e| Error::Config(format!("the session database's address: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let place = place(&config);
        let tls = match config.get_ssl_mode() {
            SslMode::Disable => None,
            _ => Some(MakeRustlsConnect::new(tls_config(ca_file)?)),
        };
        let mut client = open(&config, tls.as_ref(), &place).await?;
        migrate(&mut client)
            .await
            .map_err(|source| Error::Postgres {
                place: place.clone(),
                source,
            })?;
        Ok(Self {
            config,
            tls,
            client: tokio::sync::Mutex::new(Arc::new(Conn::new(client))),
            place,
        })
    }

    /// The connection, made again if the database closed it.
    async fn client(&self) -> Result<Arc<Conn>> {
        let mut slot = self.client.lock().await;
        if slot.client.is_closed() {
            tracing::info!(
                database = self.place,
                "connecting to the session database again"
            );
            let client = open(&self.config, self.tls.as_ref(), &self.place).await?;
            *slot = Arc::new(Conn::new(client));
        }
        Ok(slot.clone())
    }

    fn fail(&self, source: tokio_postgres::Error) -> Error {
        Error::Postgres {
            place: self.place.clone(),
            source,
        }
    }
}

#[async_trait::async_trait]
impl SessionStore for PostgresSessions {
    async fn load(&self) -> Result<Vec<Session>> {
        let rows = self
            .client()
            .await?
            .query(&format!("SELECT {COLUMNS} FROM sessions"), &[])
            .await
            .map_err(|e| self.fail(e))?;
        rows.iter()
            .map(session)
            .collect::<Result<_, _>>()
            .map_err(|e| self.fail(e))
    }

    async fn insert(&self, s: &Session) -> Result<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO sessions (id, url_path, user_name, destination, temp_path, total,
                     received, created_at, touched_at, multipart)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &s.id,
                    &s.url_path,
                    &s.user,
                    &s.target.destination_text(),
                    &s.target.temp_text(),
                    &s.total.map(to_i64),
                    &to_i64(s.received),
                    &s.created_at,
                    &s.touched_at,
                    &s.target.multipart_json(),
                ],
            )
            .await
            .map(drop)
            .map_err(|e| self.fail(e))
    }

    async fn get(&self, id: &str) -> Result<Option<Session>> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!("SELECT {COLUMNS} FROM sessions WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(|e| self.fail(e))?;
        row.as_ref()
            .map(session)
            .transpose()
            .map_err(|e| self.fail(e))
    }

    async fn advance(&self, s: &Session, from: u64) -> Result<Advanced> {
        let client = self.client().await?;
        let moved = client
            .execute(
                "UPDATE sessions SET total = $2, received = $3, touched_at = $4, multipart = $6
                 WHERE id = $1 AND received = $5",
                &[
                    &s.id,
                    &s.total.map(to_i64),
                    &to_i64(s.received),
                    &s.touched_at,
                    &to_i64(from),
                    &s.target.multipart_json(),
                ],
            )
            .await
            .map_err(|e| self.fail(e))?;
        if moved == 1 {
            return Ok(Advanced::Done);
        }
        // Lost: read where the winner left it (a new statement sees the winner's commit).
        let row = client
            .query_opt("SELECT received FROM sessions WHERE id = $1", &[&s.id])
            .await
            .map_err(|e| self.fail(e))?;
        Ok(row.map_or(Advanced::Gone, |r| Advanced::Lost {
            committed: from_i64(r.get(0)),
        }))
    }

    async fn update(&self, s: &Session) -> Result<()> {
        self.client()
            .await?
            .execute(
                "UPDATE sessions SET touched_at = $2, reply_url = $3, keep = $4 WHERE id = $1",
                &[&s.id, &s.touched_at, &s.reply, &s.keep],
            )
            .await
            .map(drop)
            .map_err(|e| self.fail(e))
    }

    async fn remove(&self, id: &str) -> Result<()> {
        self.client()
            .await?
            .execute("DELETE FROM sessions WHERE id = $1", &[&id])
            .await
            .map(drop)
            .map_err(|e| self.fail(e))
    }

    async fn close(&self, s: &Session, at: i64) -> Result<()> {
        // One statement: the row goes and the tombstone comes in one transaction.
        self.client()
            .await?
            .execute(
                "WITH gone AS (DELETE FROM sessions WHERE id = $1)
                 INSERT INTO closed (id, url_path, user_name, closed_at, total)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET closed_at = EXCLUDED.closed_at",
                &[&s.id, &s.url_path, &s.user, &at, &s.total.map(to_i64)],
            )
            .await
            .map(drop)
            .map_err(|e| self.fail(e))
    }

    async fn closed(&self, id: &str) -> Result<Option<Closed>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT url_path, user_name, total FROM closed WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(|e| self.fail(e))?;
        Ok(row.map(|r| Closed {
            url_path: r.get(0),
            user: r.get(1),
            total: r.get::<_, Option<i64>>(2).map(from_i64),
        }))
    }

    async fn count(&self, user: Option<&str>) -> Result<usize> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT count(*) FROM sessions WHERE user_name IS NOT DISTINCT FROM $1",
                &[&user],
            )
            .await
            .map_err(|e| self.fail(e))?;
        Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    async fn untouched(&self, before: i64, limit: usize) -> Result<Vec<Session>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM sessions WHERE touched_at < $1 ORDER BY touched_at LIMIT $2"
                ),
                &[&before, &limit],
            )
            .await
            .map_err(|e| self.fail(e))?;
        rows.iter()
            .map(session)
            .collect::<Result<_, _>>()
            .map_err(|e| self.fail(e))
    }

    async fn forget_closed(&self, before: i64) -> Result<()> {
        self.client()
            .await?
            .execute("DELETE FROM closed WHERE closed_at < $1", &[&before])
            .await
            .map(drop)
            .map_err(|e| self.fail(e))
    }
}

/// A connection and its prepared statements: each statement is prepared once per
/// connection, so that a query costs one round trip (and one transaction), not two.
struct Conn {
    client: Client,
    prepared: std::sync::Mutex<HashMap<String, Statement>>,
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl Conn {
    fn new(client: Client) -> Self {
        Self {
            client,
            prepared: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Statement>> {
        self.prepared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn statement(&self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.cache().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        self.cache().insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, tokio_postgres::Error> {
        let statement = self.statement(sql).await?;
        self.client.execute(&statement, params).await
    }

    async fn query(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let statement = self.statement(sql).await?;
        self.client.query(&statement, params).await
    }

    async fn query_opt(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        let statement = self.statement(sql).await?;
        self.client.query_opt(&statement, params).await
    }

    async fn query_one(&self, sql: &str, params: Params<'_>) -> Result<Row, tokio_postgres::Error> {
        let statement = self.statement(sql).await?;
        self.client.query_one(&statement, params).await
    }
}

/// A new connection, its driver spawned.
async fn open(config: &Config, tls: Option<&MakeRustlsConnect>, place: &str) -> Result<Client> {
    let fail = |source| Error::Postgres {
        place: place.to_owned(),
        source,
    };
    if let Some(tls) = tls {
        let (client, connection) = config.connect(tls.clone()).await.map_err(fail)?;
        drive(connection, place.to_owned());
        Ok(client)
    } else {
        let (client, connection) = config.connect(NoTls).await.map_err(fail)?;
        drive(connection, place.to_owned());
        Ok(client)
    }
}

/// Run a connection's driver until the database closes it.
fn drive(
    connection: impl Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
    place: String,
) {
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(database = place, error = %e, "the session database's connection ended");
        }
    });
}

/// The TLS client configuration: the certificates of `ca_file`, or the system's roots.
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = ca_file {
        let bad = |e: &dyn std::fmt::Display| {
            Error::Config(format!(
                "the session database's CA file {}: {e}",
                path.display()
            ))
        };
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
            roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
        }
    } else {
        for cert in rustls_native_certs::load_native_certs().certs {
            // A system certificate rustls cannot read is no root of ours.
            let _ = roots.add(cert);
        }
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Apply the migrations this database lacks, in one transaction, under an advisory lock.
async fn migrate(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS ebb_schema (version INTEGER NOT NULL)")
        .await?;
    let version: i32 = tx
        .query_opt("SELECT max(version) FROM ebb_schema", &[])
        .await?
        .and_then(|r| r.get::<_, Option<i32>>(0))
        .unwrap_or(0);
    let applied = usize::try_from(version).unwrap_or(0);
    for sql in SCHEMA.iter().skip(applied) {
        tx.batch_execute(sql).await?;
    }
    let now = i32::try_from(SCHEMA.len()).unwrap_or(i32::MAX).max(version);
    tx.execute("DELETE FROM ebb_schema", &[]).await?;
    tx.execute("INSERT INTO ebb_schema (version) VALUES ($1)", &[&now])
        .await?;
    tx.commit().await
}

fn session(r: &Row) -> Result<Session, tokio_postgres::Error> {
    Ok(Session {
        id: r.try_get(0)?,
        url_path: r.try_get(1)?,
        user: r.try_get(2)?,
        target: Target::from_row(
            r.try_get(3)?,
            r.try_get(4)?,
            r.try_get::<_, Option<String>>(11)?.as_deref(),
        ),
        total: r.try_get::<_, Option<i64>>(5)?.map(from_i64),
        received: from_i64(r.try_get(6)?),
        created_at: r.try_get(7)?,
        touched_at: r.try_get(8)?,
        reply: r.try_get(9)?,
        keep: r.try_get(10)?,
    })
}

/// `host[:port]/dbname` of a configuration, without its user or password.
fn place(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "postgresql {} port {} database {}",
        hosts.join(","),
        ports.join(","),
        config.get_dbname().unwrap_or("(default)")
    )
}
