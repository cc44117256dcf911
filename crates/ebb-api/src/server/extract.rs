//! What every handler shares: errors as JSON answers, and request extractors whose rejections
//! are JSON errors too.

use axum::Json;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ebb_core::{Error, JobId};

use crate::error::ErrorBody;

/// An engine error as an HTTP response: a status for the kind, a JSON [`ErrorBody`].
#[derive(Debug)]
pub(super) struct ApiError(pub Error);

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
            Error::InvalidArgument(_) | Error::InvalidRange { .. } | Error::TooLarge { .. } => {
                StatusCode::BAD_REQUEST
            }
            Error::NotSupported(_) => StatusCode::NOT_IMPLEMENTED,
            Error::Locked { .. } | Error::ShutDown => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(ErrorBody::from(&self.0))).into_response()
    }
}

pub(super) type ApiResult<T> = Result<Json<T>, ApiError>;

/// A JSON request body whose rejection (bad JSON, a wrong content type, a missing field) is
/// answered with the API's JSON error body, as every other error is, not axum's plain text.
pub(super) struct JsonBody<T>(pub T);

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
pub(super) struct QueryArgs<T>(pub T);

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

pub(super) fn job_id(text: &str) -> Result<JobId, ApiError> {
    text.parse()
        .map_err(|e: String| ApiError(Error::InvalidArgument(e)))
}
