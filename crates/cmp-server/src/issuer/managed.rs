//! `/api/v1/managed-certificates`: desired state, versions, renewal status, manual renewal.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cmp_api::{DeploymentsSet, Managed, ManagedCreate, ManagedListParams, Page, Problem, Request};

use super::Renewal;
use super::requests::idempotency;
use super::views;
use crate::auth::Caller;
use crate::core::wire::{decode_tagged, encode_tagged, page_limit};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, IdempotencyHeader};
use crate::state::AppState;

/// Manage a certificate: it is issued now and renewed by the scheduler from then on.
#[utoipa::path(post, path = "/api/v1/managed-certificates", tag = "managed-certificates",
    request_body = ManagedCreate,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe",
        min_length = 1, max_length = 200, pattern = "^[!-~]+$")),
    responses((status = 201, body = Managed), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such owner, adapter or agent", body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security", "developer"])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    header: IdempotencyHeader,
    ApiJson(body): ApiJson<ManagedCreate>,
) -> ApiResult<(StatusCode, Json<Managed>)> {
    if body.key_on_agent && body.deployments.len() != 1 {
        return Err(ApiError::bad_field(
            "deployments",
            "a key made on an agent stays on its host: give exactly one deployment",
        ));
    }
    // Unknown agents are refused before anything is written.
    state.fleet.resolve_targets(&body.deployments).await?;
    let idem = idempotency(header, &body);
    let (managed, _) = state.issuer.create_managed(&caller, &body, idem.as_ref()).await?;
    if !body.deployments.is_empty() {
        let set = DeploymentsSet { deployments: body.deployments.clone() };
        state.fleet.set_deployments(&caller, &managed.id, &set).await?;
    }
    Ok((StatusCode::CREATED, Json(with_versions(&state, managed).await?)))
}

/// The view of one managed certificate with its versions.
async fn with_versions(state: &AppState, managed: cmp_store::ManagedRecord) -> ApiResult<Managed> {
    let mut versions = state.store.managed_versions(std::slice::from_ref(&managed.id)).await?;
    let of_managed = versions.remove(&managed.id).unwrap_or_default();
    Ok(views::managed(managed, of_managed))
}

/// Managed certificates the caller may see.
#[utoipa::path(get, path = "/api/v1/managed-certificates", tag = "managed-certificates", params(ManagedListParams),
    responses((status = 200, body = Page<Managed>)),
    security(("bearer" = ["admin", "security", "developer"])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ManagedListParams>,
) -> ApiResult<Json<Page<Managed>>> {
    let cursor = params.cursor.as_deref().map(|c| decode_tagged("m", c)).transpose()?;
    let page =
        state.store.list_managed(&caller.scope, page_limit(params.limit)?, cursor.as_ref()).await?;
    let ids: Vec<String> = page.items.iter().map(|m| m.id.clone()).collect();
    let mut versions = state.store.managed_versions(&ids).await?;
    let items = page
        .items
        .into_iter()
        .map(|m| {
            let of_m = versions.remove(&m.id).unwrap_or_default();
            views::managed(m, of_m)
        })
        .collect();
    Ok(Json(Page { items, next_cursor: page.next_cursor.as_ref().map(|c| encode_tagged("m", c)) }))
}

/// One managed certificate, by id, name or `owner/name`, with its versions and renewal decision.
/// A name is looked up among the caller's owners; one that several of them use is a 409.
#[utoipa::path(get, path = "/api/v1/managed-certificates/{id}", tag = "managed-certificates",
    params(("id" = String, Path, description = "Id, name, or owner/name (owner id or name; the '/' as %2F)")),
    responses((status = 200, body = Managed), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "ambiguous-name: several owners the caller sees use the name", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security", "developer"])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Managed>> {
    let managed = state.store.get_managed(&id, &caller.scope).await?;
    Ok(Json(with_versions(&state, managed).await?))
}

/// Renew now, whatever the schedule says.
#[utoipa::path(post, path = "/api/v1/managed-certificates/{id}/renew", tag = "managed-certificates",
    params(("id" = String, Path, description = "Id, name, or owner/name (owner id or name; the '/' as %2F)"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe",
            min_length = 1, max_length = 200, pattern = "^[!-~]+$")),
    responses((status = 201, body = Request), (status = 200, body = Request, description = "A retry: the original request"),
        (status = 202, body = Managed, description = "Its key is made on an agent's host: the agent was asked for a new key's CSR (a renew_with_local_key job)"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "ambiguous-name: several owners the caller sees use the name", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security", "developer"])))]
pub async fn renew(
    State(state): State<AppState>,
    caller: Caller,
    header: IdempotencyHeader,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let managed = state.store.get_managed(&id, &caller.scope).await?;
    let idem = idempotency(header, &managed.id);
    Ok(match state.issuer.renew_for(&caller, &managed, idem.as_ref()).await? {
        Renewal::Requested(record, created) => {
            let status = if created { StatusCode::CREATED } else { StatusCode::OK };
            (status, Json(views::request(*record))).into_response()
        }
        Renewal::OnAgent { .. } => {
            (StatusCode::ACCEPTED, Json(with_versions(&state, managed).await?)).into_response()
        }
    })
}
