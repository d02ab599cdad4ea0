//! Extractors whose rejections are problem documents, and the caller of a request.

use std::sync::Arc;
use std::time::Duration;

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

/// `read` (of a request's whole body) cut off after `http.body_timeout_secs` in all: a client
/// that trickles a byte now and then cannot hold its connection for longer.
async fn within_body_timeout<T>(
    state: &AppState,
    read: impl Future<Output = T>,
) -> Result<T, ApiError> {
    let secs = state.config.http.body_timeout_secs;
    tokio::time::timeout(Duration::from_secs(secs), read)
        .await
        .map_err(|_| ApiError::BodyTimeout { secs })
}

/// Whether any string (or key) in `value` holds a NUL, which no field accepts and PostgreSQL
/// cannot store.
fn has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(has_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// JSON body; unknown fields and bad values are 400 problems naming the field.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.config.http.body_limit_bytes;
        let read = axum::Json::<serde_json::Value>::from_request(req, state);
        let value = match within_body_timeout(state, read).await? {
            Ok(axum::Json(v)) => v,
            Err(JsonRejection::JsonDataError(e)) => {
                return Err(ApiError::bad_request(e.body_text()));
            }
            Err(e) => return Err(body_error(e.status(), e.body_text(), limit)),
        };
        if has_nul(&value) {
            return Err(ApiError::bad_request("text values must not contain NUL characters"));
        }
        serde_json::from_value(value).map(ApiJson).map_err(|e| ApiError::bad_request(e.to_string()))
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
        within_body_timeout(state, axum::body::Bytes::from_request(req, state))
            .await?
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

/// The `Idempotency-Key` header of a creating POST, if any (1-200 visible ASCII characters).
#[derive(Debug, Clone, Default)]
pub struct IdempotencyHeader(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyHeader(None));
        };
        let key = value
            .to_str()
            .ok()
            .filter(|k| (1..=200).contains(&k.len()) && k.chars().all(|c| c.is_ascii_graphic()))
            .ok_or_else(|| {
                ApiError::bad_field("Idempotency-Key", "1-200 visible ASCII characters")
            })?;
        Ok(IdempotencyHeader(Some(key.to_string())))
    }
}
