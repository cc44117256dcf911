//! The daemon's side: the router of API version 1 over one engine, with one file of handlers
//! per area (as pueue's daemon keeps one file per message).

mod bandwidth;
mod events;
mod extract;
mod files;
mod jobs;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use ebb_core::settings::EngineSettings;
use ebb_core::{Engine, ErrorCode, Status};

use crate::error::ErrorBody;
use crate::routes::{self, pattern};
use crate::wire::{API_PREFIX, API_VERSION, VersionInfo};

/// The router of API version 1, over one engine.
pub fn router(engine: Engine) -> Router {
    Router::new()
        .route(&pattern(routes::VERSION), get(version))
        .route(&pattern(routes::JOBS), get(jobs::list).post(jobs::create))
        .route(&pattern(routes::JOBS_PAGE), get(jobs::page))
        .route(&pattern(routes::FIND), get(jobs::find))
        .route(
            &pattern(routes::JOB),
            get(jobs::job).patch(jobs::set_property),
        )
        .route(&pattern(routes::RESUME), post(jobs::resume))
        .route(&pattern(routes::SUSPEND), post(jobs::suspend))
        .route(&pattern(routes::CANCEL), post(jobs::cancel))
        .route(&pattern(routes::COMPLETE), post(jobs::complete))
        .route(&pattern(routes::WAIT), get(jobs::wait))
        .route(&pattern(routes::FILES), post(files::add))
        .route(
            &pattern(routes::REPLACE_PREFIX),
            post(files::replace_prefix),
        )
        .route(&pattern(routes::REMOTE_URL), put(files::set_remote_url))
        .route(&pattern(routes::EVENTS), get(events::stream))
        .route(
            &pattern(routes::BANDWIDTH),
            get(bandwidth::status).patch(bandwidth::change),
        )
        .route(&pattern(routes::SHUTDOWN), post(shutdown))
        .fallback(unknown)
        .with_state(engine)
}

/// `POST /v1/shutdown`: answered at once; the daemon then stops as on SIGTERM.
async fn shutdown(State(e): State<Engine>) -> Json<()> {
    e.request_stop();
    Json(())
}

async fn version(State(e): State<Engine>) -> Json<VersionInfo> {
    Json(VersionInfo {
        api: API_VERSION,
        ebbd: env!("CARGO_PKG_VERSION").to_owned(),
        settings: Some(EngineSettings::of(e.config())),
    })
}

/// Anything else: another API version, or no such route. Said clearly, in JSON.
async fn unknown(uri: axum::http::Uri) -> Response {
    let path = uri.path();
    let message = if path.starts_with(API_PREFIX) {
        format!("no such API route: {path}")
    } else {
        format!(
            "API version mismatch: ebbd {} speaks only v{API_VERSION} ({API_PREFIX}/...), not {path}",
            env!("CARGO_PKG_VERSION")
        )
    };
    let body = ErrorBody {
        code: ErrorCode::E_NOTIMPL,
        status: Status::Permanent,
        message,
        detail: ebb_core::ErrorDetail::Remote,
    };
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}
