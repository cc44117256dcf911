//! Jobs: list, create, find, read, change, and move through their states.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use ebb_core::{
    Completion, Engine, JobFilter, JobId, JobInfo, JobState, PropertyChange, ResumeOutcome,
};

use super::extract::{ApiResult, JsonBody, QueryArgs, job_id};
use crate::wire::{CreateJob, ListQuery, Value, WaitQuery};

pub(super) async fn list(
    State(e): State<Engine>,
    QueryArgs(q): QueryArgs<ListQuery>,
) -> ApiResult<Vec<JobInfo>> {
    let filter = JobFilter {
        final_jobs: q.all,
        all_users: q.all_users,
    };
    Ok(Json(e.list(filter).await?))
}

pub(super) async fn create(
    State(e): State<Engine>,
    JsonBody(req): JsonBody<CreateJob>,
) -> ApiResult<Value<JobId>> {
    let id = e.create_job(&req.display_name, req.job_type).await?;
    Ok(Json(Value { value: id }))
}

pub(super) async fn find(
    State(e): State<Engine>,
    Path(name): Path<String>,
) -> ApiResult<Value<JobId>> {
    Ok(Json(Value {
        value: e.find(&name)?,
    }))
}

pub(super) async fn job(State(e): State<Engine>, Path(id): Path<String>) -> ApiResult<JobInfo> {
    Ok(Json(e.job(job_id(&id)?).await?))
}

pub(super) async fn set_property(
    State(e): State<Engine>,
    Path(id): Path<String>,
    JsonBody(change): JsonBody<PropertyChange>,
) -> ApiResult<()> {
    e.set_property(job_id(&id)?, change).await?;
    Ok(Json(()))
}

pub(super) async fn resume(
    State(e): State<Engine>,
    Path(id): Path<String>,
) -> ApiResult<Value<ResumeOutcome>> {
    Ok(Json(Value {
        value: e.resume(job_id(&id)?).await?,
    }))
}

pub(super) async fn suspend(State(e): State<Engine>, Path(id): Path<String>) -> ApiResult<()> {
    e.suspend(job_id(&id)?).await?;
    Ok(Json(()))
}

pub(super) async fn cancel(State(e): State<Engine>, Path(id): Path<String>) -> ApiResult<()> {
    e.cancel(job_id(&id)?).await?;
    Ok(Json(()))
}

pub(super) async fn complete(
    State(e): State<Engine>,
    Path(id): Path<String>,
) -> ApiResult<Completion> {
    Ok(Json(e.complete(job_id(&id)?).await?))
}

pub(super) async fn wait(
    State(e): State<Engine>,
    Path(id): Path<String>,
    QueryArgs(q): QueryArgs<WaitQuery>,
) -> ApiResult<Value<JobState>> {
    let timeout = q.timeout_ms.map(Duration::from_millis);
    Ok(Json(Value {
        value: e.wait(job_id(&id)?, timeout).await?,
    }))
}
