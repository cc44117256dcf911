//! Events: every job and file event from now on, one JSON document per line.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ebb_core::Engine;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

pub(super) async fn stream(State(e): State<Engine>) -> Response {
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
