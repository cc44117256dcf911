//! `ebb-server`: the receiving side of the BITS upload protocol ([MC-BUP] §3.2), what the IIS
//! BITS extension does, on every platform, with a plain ranged-GET file server over the same
//! roots, so that one command serves both directions.
//!
//! Sessions live in a SQLite database, or in PostgreSQL that several nodes share, so a
//! restarted server keeps them; a session that hears nothing for its directory's timeout is
//! swept with its temporary file.

mod ack;
mod auth;
pub mod config;
mod error;
mod files;
mod listen;
mod notify;
mod objects;
mod packet;
mod paths;
mod sessions;
mod tls;
mod tus;
mod upload;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub use config::{ServerConfig, SessionsAt, StorageAt, UploadDir, User};
pub use error::{Error, Result};
pub use notify::Notification;
use sessions::Sessions;
pub use sessions::{
    Advanced, Closed, ObjectUpload, PostgresSessions, Session, SessionStore, SqliteSessions, Target,
};
pub use tls::Tls;

/// A running server's state.
#[derive(Debug)]
pub struct App {
    config: ServerConfig,
    sessions: Sessions,
    /// The bucket, on object storage.
    objects: Option<objects::Objects>,
}

impl App {
    /// Open the session database and take the configuration.
    pub async fn open(config: ServerConfig) -> Result<Arc<Self>> {
        config.check()?;
        install_crypto_provider();
        let replies = config.state_dir().join("replies");
        std::fs::create_dir_all(&replies).map_err(|e| Error::io(&replies, e))?;
        let store: Box<dyn SessionStore> = match &config.sessions {
            SessionsAt::Sqlite => {
                Box::new(SqliteSessions::open(&config.state_dir().join("sessions.db")).await?)
            }
            SessionsAt::Postgres { url, ca_file } => {
                Box::new(PostgresSessions::connect(url, ca_file.as_deref()).await?)
            }
        };
        let sessions = Sessions::open(store).await?;
        let objects = match &config.storage {
            StorageAt::Local => None,
            StorageAt::S3 {
                url,
                options,
                part_size,
                spool_dir,
            } => {
                let spool = spool_dir
                    .clone()
                    .unwrap_or_else(|| config.state_dir().join("spool"));
                Some(objects::Objects::s3(url, options, *part_size, &spool)?)
            }
        };
        Ok(Arc::new(Self {
            config,
            sessions,
            objects,
        }))
    }

    /// How many upload sessions are open.
    pub fn session_count(&self) -> usize {
        self.sessions.all().len()
    }

    /// The HTTP service: `BITS_POST` for uploads, `GET` and `HEAD` for downloads.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(self.clone())
    }

    /// Serve on `listener` until `shutdown` resolves; sweeps expired sessions meanwhile.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let acceptor = self.config.tls.as_ref().map(Tls::acceptor).transpose()?;
        let sweeper = tokio::spawn(self.clone().sweep_forever());
        listen::serve(listener, self.router(), acceptor, shutdown).await;
        sweeper.abort();
        Ok(())
    }

    async fn sweep_forever(self: Arc<Self>) {
        let every = self
            .config
            .directories
            .iter()
            .map(|d| d.session_timeout / 8)
            .min()
            .unwrap_or(Duration::from_secs(60))
            .clamp(Duration::from_millis(100), Duration::from_secs(3600));
        loop {
            tokio::time::sleep(every).await;
            upload::sweep(&self).await;
        }
    }
}

/// reqwest is built without a TLS provider: the process takes ring's, once.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The request's URL in full, for the server application.
fn full_url(parts: &axum::http::request::Parts, tls: bool) -> String {
    let host = parts
        .headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let tail = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path(), |p| p.as_str());
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{host}{tail}")
}

async fn handle(State(app): State<Arc<App>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let Some(dir) = app.config.directory(&path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let user = match auth::user(dir, &parts.headers) {
        Ok(user) => user,
        Err(challenge) => return challenge.into_response(),
    };
    if tus::is_tus(dir, &parts.method, &path, &parts.headers) {
        let asked = (&parts.method, path.as_str());
        return tus::serve(&app, dir, asked, user, &parts.headers, body).await;
    }
    match parts.method.as_str() {
        "BITS_POST" => match upload::serve(
            &app,
            dir,
            (&path, &full_url(&parts, app.config.tls.is_some())),
            user,
            &parts.headers,
            body,
        )
        .await
        {
            Ok(ack) => ack.into_response(),
            Err(refusal) => {
                tracing::info!(path = %path, status = %refusal.status, why = %refusal.why, "packet refused");
                refusal.into_response()
            }
        },
        "GET" | "HEAD" => match files::reply_key(&path) {
            Some(key) => files::reply(&app, (&path, key), user.as_deref(), parts, body).await,
            None => files::serve(dir, &path, parts, body).await,
        },
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}
