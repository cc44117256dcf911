//! The HTTP/JSON API: one route per backend operation, plus an NDJSON event stream.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use ebb_core::bandwidth::{BandwidthChange, BandwidthStatus};
use ebb_core::protocol::{
    API_PREFIX, API_VERSION, AddFiles, CreateJob, ErrorBody, ListQuery, RemoteUrl, ReplacePrefix,
    Value, VersionInfo, WaitQuery,
};
use ebb_core::{Engine, Error, JobId, PropertyChange};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

/// An engine error as an HTTP response: a status for the kind, a JSON [`ErrorBody`].
#[derive(Debug)]
pub(crate) struct ApiError(Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::InvalidState { .. } | Error::Empty(_) | Error::TooManyFiles => {
                StatusCode::CONFLICT
            }
            Error::InvalidArgument(_) | Error::InvalidRange { .. } => StatusCode::BAD_REQUEST,
            Error::NotSupported(_) => StatusCode::NOT_IMPLEMENTED,
            Error::Locked { .. } | Error::ShutDown => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(ErrorBody::from(&self.0))).into_response()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// A JSON request body whose rejection (bad JSON, a wrong content type, a missing field) is
/// answered with the API's JSON error body, as every other error is, not axum's plain text.
pub(crate) struct JsonBody<T>(T);

impl<T, S> axum::extract::FromRequest<S> for JsonBody<T>
where
    Json<T>: axum::extract::FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(ApiError(Error::InvalidArgument(format!(
                "request body: {}",
                rejection.body_text()
            )))),
        }
    }
}

/// A query string, rejected (say `timeout_ms=soon`) with the API's JSON error body.
pub(crate) struct QueryArgs<T>(T);

impl<T, S> axum::extract::FromRequestParts<S> for QueryArgs<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Self(v)),
            Err(rejection) => Err(ApiError(Error::InvalidArgument(format!(
                "query: {}",
                rejection.body_text()
            )))),
        }
    }
}

fn job_id(text: &str) -> Result<JobId, ApiError> {
    text.parse()
        .map_err(|e: String| ApiError(Error::InvalidArgument(e)))
}

/// The router of API version 1, over one engine.
pub fn router(engine: Engine) -> Router {
    Router::new()
        .route(&format!("{API_PREFIX}/version"), get(version))
        .route(&format!("{API_PREFIX}/jobs"), get(list).post(create))
        .route(&format!("{API_PREFIX}/find/{{name}}"), get(find))
        .route(
            &format!("{API_PREFIX}/jobs/{{id}}"),
            get(job).patch(set_property),
        )
        .route(&format!("{API_PREFIX}/jobs/{{id}}/files"), post(add_files))
        .route(&format!("{API_PREFIX}/jobs/{{id}}/resume"), post(resume))
        .route(&format!("{API_PREFIX}/jobs/{{id}}/suspend"), post(suspend))
        .route(&format!("{API_PREFIX}/jobs/{{id}}/cancel"), post(cancel))
        .route(
            &format!("{API_PREFIX}/jobs/{{id}}/complete"),
            post(complete),
        )
        .route(
            &format!("{API_PREFIX}/jobs/{{id}}/replace-remote-prefix"),
            post(replace_prefix),
        )
        .route(
            &format!("{API_PREFIX}/jobs/{{id}}/files/{{index}}/remote-url"),
            put(set_remote_url),
        )
        .route(&format!("{API_PREFIX}/jobs/{{id}}/wait"), get(wait))
        .route(&format!("{API_PREFIX}/events"), get(events))
        .route(
            &format!("{API_PREFIX}/bandwidth"),
            get(bandwidth).patch(set_bandwidth),
        )
        .fallback(unknown)
        .with_state(engine)
}

async fn version() -> Json<VersionInfo> {
    Json(VersionInfo {
        api: API_VERSION,
        ebbd: env!("CARGO_PKG_VERSION").to_owned(),
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
        code: ebb_core::ErrorCode::E_NOTIMPL,
        status: ebb_core::Status::Permanent,
        message,
    };
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

async fn list(
    State(e): State<Engine>,
    QueryArgs(q): QueryArgs<ListQuery>,
) -> ApiResult<Vec<ebb_core::JobInfo>> {
    if q.all {
        // Final jobs live only in the store: read it as any other reader would.
        return Ok(Json(ebb_core::read_jobs(&e.config().data_dir)?));
    }
    Ok(Json(e.jobs().await))
}

async fn create(
    State(e): State<Engine>,
    JsonBody(req): JsonBody<CreateJob>,
) -> ApiResult<Value<JobId>> {
    let id = e.create_job(&req.display_name, req.job_type).await?;
    Ok(Json(Value { value: id }))
}

async fn find(State(e): State<Engine>, Path(name): Path<String>) -> ApiResult<Value<JobId>> {
    Ok(Json(Value {
        value: e.find(&name).await?,
    }))
}

async fn job(State(e): State<Engine>, Path(id): Path<String>) -> ApiResult<ebb_core::JobInfo> {
    Ok(Json(e.job(job_id(&id)?).await?))
}

async fn set_property(
    State(e): State<Engine>,
    Path(id): Path<String>,
    JsonBody(change): JsonBody<PropertyChange>,
) -> ApiResult<()> {
    e.set_property(job_id(&id)?, change).await?;
    Ok(Json(()))
}

async fn bandwidth(State(e): State<Engine>) -> Json<BandwidthStatus> {
    Json(e.bandwidth())
}

async fn set_bandwidth(
    State(e): State<Engine>,
    JsonBody(change): JsonBody<BandwidthChange>,
) -> ApiResult<BandwidthStatus> {
    Ok(Json(e.set_bandwidth(change).await?))
}

async fn add_files(
    State(e): State<Engine>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<AddFiles>,
) -> ApiResult<()> {
    e.add_files(job_id(&id)?, req.files).await?;
    Ok(Json(()))
}

async fn resume(
    State(e): State<Engine>,
    Path(id): Path<String>,
) -> ApiResult<Value<ebb_core::ResumeOutcome>> {
    Ok(Json(Value {
        value: e.resume(job_id(&id)?).await?,
    }))
}

async fn suspend(State(e): State<Engine>, Path(id): Path<String>) -> ApiResult<()> {
    e.suspend(job_id(&id)?).await?;
    Ok(Json(()))
}

async fn cancel(State(e): State<Engine>, Path(id): Path<String>) -> ApiResult<()> {
    e.cancel(job_id(&id)?).await?;
    Ok(Json(()))
}

async fn complete(
    State(e): State<Engine>,
    Path(id): Path<String>,
) -> ApiResult<ebb_core::Completion> {
    Ok(Json(e.complete(job_id(&id)?).await?))
}

async fn replace_prefix(
    State(e): State<Engine>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ReplacePrefix>,
) -> ApiResult<Value<usize>> {
    Ok(Json(Value {
        value: e
            .replace_remote_prefix(job_id(&id)?, &req.old, &req.new)
            .await?,
    }))
}

async fn set_remote_url(
    State(e): State<Engine>,
    Path((id, index)): Path<(String, usize)>,
    JsonBody(req): JsonBody<RemoteUrl>,
) -> ApiResult<()> {
    e.set_remote_name(job_id(&id)?, index, &req.url).await?;
    Ok(Json(()))
}

async fn wait(
    State(e): State<Engine>,
    Path(id): Path<String>,
    QueryArgs(q): QueryArgs<WaitQuery>,
) -> ApiResult<Value<ebb_core::JobState>> {
    let timeout = q.timeout_ms.map(Duration::from_millis);
    Ok(Json(Value {
        value: e.wait(job_id(&id)?, timeout).await?,
    }))
}

/// Every event from now on, one JSON document per line.
async fn events(State(e): State<Engine>) -> Response {
    let lines = BroadcastStream::new(e.subscribe()).filter_map(|ev| {
        // A subscriber that lags loses events rather than slowing the engine.
        let ev = ev.ok()?;
        let mut line = serde_json::to_vec(&ev).ok()?;
        line.push(b'\n');
        Some(Ok::<_, std::convert::Infallible>(line))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response()
}
