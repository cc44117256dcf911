//! Jobs: list, create, find, read, change, and move through their states.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ebb_core::{
    Completion, Engine, JobFilter, JobId, JobInfo, JobPage, JobState, PropertyChange, ResumeOutcome,
};

use super::extract::{ApiError, ApiResult, JsonBody, QueryArgs, job_id};
use crate::wire::{CreateJob, DEFAULT_PAGE, ListPageQuery, ListQuery, Value, WaitQuery};

/// Every job the query asks for, as one JSON array streamed a page at a time: the daemon holds
/// one page, whatever the queue's size. The first page is read before the answer starts, so
/// that an error there is an error answer; a later one cuts the body short.
pub(super) async fn list(
    State(e): State<Engine>,
    QueryArgs(q): QueryArgs<ListQuery>,
) -> Result<Response, ApiError> {
    let filter = JobFilter {
        final_jobs: q.all,
        all_users: q.all_users,
    };
    let first = e.list_page(filter, None, STREAM_PAGE).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(2);
    tokio::spawn(async move {
        let mut page = first;
        let mut chunk = new_chunk();
        chunk.push(b'[');
        let mut first_job = true;
        loop {
            for job in &page.jobs {
                if !std::mem::take(&mut first_job) {
                    chunk.push(b',');
                }
                if let Err(err) = serde_json::to_writer(&mut chunk, job) {
                    let _ = tx.send(Err(std::io::Error::other(err))).await;
                    return;
                }
                if chunk.len() >= CHUNK
                    && tx
                        .send(Ok(std::mem::replace(&mut chunk, new_chunk())))
                        .await
                        .is_err()
                {
                    return;
                }
            }
            let Some(next) = page.next else { break };
            page = match e.list_page(filter, Some(next), STREAM_PAGE).await {
                Ok(page) => page,
                Err(err) => {
                    let _ = tx.send(Err(std::io::Error::other(err))).await;
                    return;
                }
            };
        }
        chunk.push(b']');
        let _ = tx.send(Ok(chunk)).await;
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// How many jobs a streamed listing reads at a time. Small pages, and pieces of at most
/// [`CHUNK`] bytes sent as they fill: every buffer stays under the allocator's mmap threshold, so
/// a listing of 100,000 jobs leaves the daemon's memory where it found it (glibc raises that
/// threshold after freeing a large mapped block, and then keeps such blocks in its arenas).
const STREAM_PAGE: usize = 100;

/// A streamed piece is sent once it holds this many bytes.
const CHUNK: usize = 64 << 10;

/// A piece's buffer: room for [`CHUNK`] and one more job, under 128 KiB.
fn new_chunk() -> Vec<u8> {
    Vec::with_capacity(CHUNK + (32 << 10))
}

/// One page of jobs, and where the next starts.
pub(super) async fn page(
    State(e): State<Engine>,
    QueryArgs(q): QueryArgs<ListPageQuery>,
) -> ApiResult<JobPage> {
    let filter = JobFilter {
        final_jobs: q.all,
        all_users: q.all_users,
    };
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    Ok(Json(e.list_page(filter, q.after, limit).await?))
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
        value: e.find(&name).await?,
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
