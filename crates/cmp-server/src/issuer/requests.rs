//! `/api/v1/requests`: create (idempotent), list, show, approve, reject.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cmp_api::{Decision, Page, Problem, Request, RequestCreate, RequestListParams};
use cmp_store::RequestQuery;

use super::Idempotency;
use super::views;
use crate::auth::Caller;
use crate::core::wire::{decode_tagged, encode_tagged, page_limit};
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery, IdempotencyHeader};
use crate::state::AppState;

/// Serializes a body back for the idempotency hash: the same request gives the same bytes.
pub fn idempotency<T: serde::Serialize>(
    header: IdempotencyHeader,
    body: &T,
) -> Option<Idempotency> {
    header.0.map(|key| Idempotency { key, body: serde_json::to_vec(body).unwrap_or_default() })
}

/// Request a certificate. With `Idempotency-Key`, a retry returns the same request.
#[utoipa::path(post, path = "/api/v1/requests", tag = "requests",
    request_body = RequestCreate,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe",
        min_length = 1, max_length = 200, pattern = "^[!-~]+$")),
    responses((status = 201, body = Request), (status = 200, body = Request, description = "A retry: the original request"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such owner or adapter", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security", "developer"])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    header: IdempotencyHeader,
    ApiJson(body): ApiJson<RequestCreate>,
) -> ApiResult<(StatusCode, Json<Request>)> {
    let idem = idempotency(header, &body);
    let (record, created) = state.issuer.create_request(&caller, &body, idem.as_ref()).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(views::request(record))))
}

/// Requests the caller may see, newest first.
#[utoipa::path(get, path = "/api/v1/requests", tag = "requests", params(RequestListParams),
    responses((status = 200, body = Page<Request>)),
    security(("bearer" = ["admin", "security", "developer"])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<RequestListParams>,
) -> ApiResult<Json<Page<Request>>> {
    let query = RequestQuery {
        scope: caller.scope.clone(),
        state: params.state,
        kind: params.kind,
        managed_certificate_id: match params.managed_certificate {
            Some(m) => Some(managed_filter(&state, &caller, m).await?),
            None => None,
        },
        limit: page_limit(params.limit)?,
        cursor: params.cursor.as_deref().map(|c| decode_tagged("r", c)).transpose()?,
    };
    let page = state.store.list_requests(&query).await?;
    Ok(Json(Page {
        next_cursor: page.next_cursor.as_ref().map(|c| encode_tagged("r", c)),
        items: page.items.into_iter().map(views::request).collect(),
    }))
}

/// The id a `managed_certificate` filter (id, name or `owner/name`) stands for. One the caller
/// cannot see is kept as given: it matches none of the requests the caller may see.
async fn managed_filter(state: &AppState, caller: &Caller, given: String) -> ApiResult<String> {
    match state.store.get_managed(&given, &caller.scope).await {
        Ok(managed) => Ok(managed.id),
        Err(cmp_store::StoreError::NotFound { .. }) => Ok(given),
        Err(e) => Err(e.into()),
    }
}

/// One request.
#[utoipa::path(get, path = "/api/v1/requests/{id}", tag = "requests",
    params(("id" = String, Path, description = "Request id")),
    responses((status = 200, body = Request), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security", "developer"])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Request>> {
    Ok(Json(views::request(state.store.get_request(&id, &caller.scope).await?)))
}

/// Approve a request awaiting approval (not one's own); it is then carried out.
#[utoipa::path(post, path = "/api/v1/requests/{id}/approve", tag = "requests",
    params(("id" = String, Path, description = "Request id")), request_body = Decision,
    responses((status = 200, body = Request), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security"])))]
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Decision>,
) -> ApiResult<Json<Request>> {
    let record = state.issuer.decide(&caller, &id, true, body.comment.as_deref()).await?;
    Ok(Json(views::request(record)))
}

/// Reject a request awaiting approval.
#[utoipa::path(post, path = "/api/v1/requests/{id}/reject", tag = "requests",
    params(("id" = String, Path, description = "Request id")), request_body = Decision,
    responses((status = 200, body = Request), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security"])))]
pub async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Decision>,
) -> ApiResult<Json<Request>> {
    let record = state.issuer.decide(&caller, &id, false, body.comment.as_deref()).await?;
    Ok(Json(views::request(record)))
}
