//! `ebb-server`: the receiving side of the BITS upload protocol ([MC-BUP] §3.2), what the IIS
//! BITS extension does, on every platform, with a plain ranged-GET file server over the same
//! roots, so that one command serves both directions.
//!
//! Sessions live in a SQLite database, so a restarted server keeps them; a session that hears
//! nothing for its directory's timeout is swept with its temporary file.

mod ack;
mod auth;
pub mod config;
mod error;
mod files;
mod packet;
mod paths;
mod sessions;
mod upload;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub use config::{ServerConfig, UploadDir, User};
pub use error::{Error, Result};
use sessions::Sessions;

/// A running server's state.
#[derive(Debug)]
pub struct App {
    config: ServerConfig,
    sessions: Sessions,
}

impl App {
    /// Open the session database and take the configuration.
    pub async fn open(config: ServerConfig) -> Result<Arc<Self>> {
        config.check()?;
        let sessions = Sessions::open(&config.state_dir().join("sessions.db")).await?;
        Ok(Arc::new(Self { config, sessions }))
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
        let sweeper = tokio::spawn(self.clone().sweep_forever());
        let addr = listener.local_addr().ok();
        let result = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await;
        sweeper.abort();
        result.map_err(|e| Error::Config(format!("serving on {addr:?}: {e}")))
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
    match parts.method.as_str() {
        "BITS_POST" => match upload::serve(&app, dir, &path, user, &parts.headers, body).await {
            Ok(ack) => ack.into_response(),
            Err(refusal) => {
                tracing::info!(path = %path, status = %refusal.status, why = %refusal.why, "packet refused");
                refusal.into_response()
            }
        },
        "GET" | "HEAD" => files::serve(dir, &path, parts, body).await,
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}
