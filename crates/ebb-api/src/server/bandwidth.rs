//! Bandwidth: what limits background transfers, and changes to it.

use axum::Json;
use axum::extract::State;
use ebb_core::Engine;
use ebb_core::{BandwidthChange, BandwidthStatus};

use super::extract::{ApiResult, JsonBody};

pub(super) async fn status(State(e): State<Engine>) -> Json<BandwidthStatus> {
    Json(e.bandwidth())
}

pub(super) async fn change(
    State(e): State<Engine>,
    JsonBody(change): JsonBody<BandwidthChange>,
) -> ApiResult<BandwidthStatus> {
    Ok(Json(e.set_bandwidth(change).await?))
}
