//! A job's files: add them, and repair their remote names.

use axum::Json;
use axum::extract::{Path, State};
use ebb_core::Engine;

use super::extract::{ApiResult, JsonBody, job_id};
use crate::wire::{AddFiles, RemoteUrl, ReplacePrefix, Value};

pub(super) async fn add(
    State(e): State<Engine>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<AddFiles>,
) -> ApiResult<()> {
    e.add_files(job_id(&id)?, req.files).await?;
    Ok(Json(()))
}

pub(super) async fn replace_prefix(
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

pub(super) async fn set_remote_url(
    State(e): State<Engine>,
    Path((id, index)): Path<(String, usize)>,
    JsonBody(req): JsonBody<RemoteUrl>,
) -> ApiResult<()> {
    e.set_remote_name(job_id(&id)?, index, &req.url).await?;
    Ok(Json(()))
}
