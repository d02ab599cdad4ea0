//! Health, readiness and Prometheus metrics.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::error::ApiError;
use crate::state::AppState;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// The process can serve: its database and its secret store answer.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = String),
        (status = 503, body = cmp_api::Problem, content_type = "application/problem+json")))]
pub async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "not ready");
        return Err(ApiError::Unavailable("database unavailable".into()));
    }
    // Keys live there: a sealed Vault makes this replica unable to issue or download.
    if let Err(e) = state.secrets.check().await {
        tracing::warn!(error = %e, "not ready");
        return Err(ApiError::Unavailable("secret store unavailable".into()));
    }
    Ok("ready")
}

/// Prometheus metrics (docs/API.md lists them).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let text = crate::metrics::scrape(&state).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// This role's OpenAPI document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, body = Object, content_type = "application/json")))]
pub async fn openapi(State(state): State<AppState>) -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(state.openapi.as_ref().clone())
}
