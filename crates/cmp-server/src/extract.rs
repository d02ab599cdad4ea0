//! Extractors whose rejections are problem documents, and the caller of a request.

use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Maps a body-reading failure, keeping 413 for oversize bodies.
fn body_error(status: StatusCode, text: String, limit: usize) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit },
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(text),
        _ => ApiError::bad_request(text),
    }
}

/// JSON body; unknown fields and bad values are 400 problems naming the field.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.config.http.body_limit_bytes;
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::bad_request(e.body_text())),
            Err(e) => Err(body_error(e.status(), e.body_text(), limit)),
        }
    }
}

/// Query string; unknown parameters and bad values are 400 problems.
#[derive(Debug, Clone, Default)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| ApiError::bad_request(e.body_text()))
    }
}

/// Raw body bytes, bounded by `http.body_limit_bytes`.
#[derive(Debug, Clone)]
pub struct ApiBytes(pub axum::body::Bytes);

impl FromRequest<AppState> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.config.http.body_limit_bytes;
        axum::body::Bytes::from_request(req, state)
            .await
            .map(ApiBytes)
            .map_err(|e: BytesRejection| body_error(e.status(), e.body_text(), limit))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Arc<Caller>>()
            .map(|c| Caller::clone(c))
            .ok_or(ApiError::Unauthorized)
    }
}
