//! `/api/v1/owners/{id}/policy`: what an owner's certificates may look like.

use axum::Json;
use axum::extract::{Path, State};
use cmp_api::{PolicyView, Problem};
use cmp_domain::Policy;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

/// An owner's policy (the default one when none is set).
#[utoipa::path(get, path = "/api/v1/owners/{id}/policy", tag = "policies",
    params(("id" = String, Path, description = "Owner id or name")),
    responses((status = 200, body = PolicyView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security", "developer"])))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<PolicyView>> {
    let owner = state.store.get_owner(&id).await?;
    let (policy, explicit) = state.issuer.policy_of(&owner.id).await?;
    Ok(Json(PolicyView { owner_id: owner.id, policy, explicit }))
}

/// Set an owner's policy.
#[utoipa::path(put, path = "/api/v1/owners/{id}/policy", tag = "policies",
    params(("id" = String, Path, description = "Owner id or name")),
    request_body = Policy,
    responses((status = 200, body = PolicyView), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security"])))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(policy): ApiJson<Policy>,
) -> ApiResult<Json<PolicyView>> {
    if !(1..=3650).contains(&policy.max_validity_days) {
        return Err(ApiError::bad_field("max_validity_days", "between 1 and 3650"));
    }
    if policy.allowed_names.len() > 1000
        || policy.allowed_names.iter().any(|n| n.is_empty() || n.len() > 253)
    {
        return Err(ApiError::bad_field("allowed_names", "at most 1000 rules of 1-253 characters"));
    }
    let owner = state.store.get_owner(&id).await?;
    let rules = serde_json::to_value(&policy).map_err(|e| ApiError::Internal(e.to_string()))?;
    state.store.put_policy(&state.audit_context(&caller), &owner.id, &rules).await?;
    Ok(Json(PolicyView { owner_id: owner.id, policy, explicit: true }))
}
