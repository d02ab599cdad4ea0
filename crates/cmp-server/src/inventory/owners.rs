//! `/api/v1/owners` handlers.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cmp_api::{Owner, OwnerCreate, OwnerPatch, Problem};
use cmp_store::{NewOwner, OwnerUpdate};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::inventory::views;
use crate::state::AppState;

fn check_name(name: &str) -> ApiResult<()> {
    let ok = (1..=100).contains(&name.chars().count())
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ' '))
        && name.trim() == name;
    if !ok {
        return Err(ApiError::bad_field(
            "name",
            "1-100 letters, digits, '-', '_', '.' or inner spaces",
        ));
    }
    // Owners are addressed by id or name: a name that looks like an id could shadow another.
    if uuid::Uuid::parse_str(name).is_ok() {
        return Err(ApiError::bad_field("name", "must not look like an owner id"));
    }
    Ok(())
}

fn check_text(field: &str, value: Option<&str>, max: usize) -> ApiResult<()> {
    match value {
        Some(v) if v.len() > max => Err(ApiError::bad_field(field, format!("at most {max} bytes"))),
        _ => Ok(()),
    }
}

/// All owners.
#[utoipa::path(
    get, path = "/api/v1/owners", tag = "owners",
    responses((status = 200, body = Vec<Owner>)),
    security(("bearer" = ["admin", "security", "developer"]))
)]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<Owner>>> {
    Ok(Json(state.store.list_owners().await?.into_iter().map(views::owner).collect()))
}

/// Create an owner (team).
#[utoipa::path(
    post, path = "/api/v1/owners", tag = "owners",
    request_body = OwnerCreate,
    responses((status = 201, body = Owner), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security"]))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<OwnerCreate>,
) -> ApiResult<(StatusCode, Json<Owner>)> {
    check_name(&body.name)?;
    check_text("email", body.email.as_deref(), 254)?;
    check_text("description", body.description.as_deref(), 2000)?;
    let ctx = state.audit_context(&caller);
    let new = NewOwner { name: body.name, email: body.email, description: body.description };
    let owner = state.store.create_owner(&ctx, &new).await?;
    Ok((StatusCode::CREATED, Json(views::owner(owner))))
}

/// One owner, by id or name.
#[utoipa::path(
    get, path = "/api/v1/owners/{id}", tag = "owners",
    params(("id" = String, Path, description = "Owner id or name")),
    responses((status = 200, body = Owner), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security", "developer"]))
)]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Owner>> {
    Ok(Json(views::owner(state.store.get_owner(&id).await?)))
}

/// Change an owner's name, email or description.
#[utoipa::path(
    patch, path = "/api/v1/owners/{id}", tag = "owners",
    params(("id" = String, Path, description = "Owner id or name")),
    request_body = OwnerPatch,
    responses((status = 200, body = Owner), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security"]))
)]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<OwnerPatch>,
) -> ApiResult<Json<Owner>> {
    if body.name.is_none() && body.email.is_none() && body.description.is_none() {
        return Err(ApiError::bad_request("nothing to change: give name, email or description"));
    }
    if let Some(name) = &body.name {
        check_name(name)?;
    }
    check_text("email", body.email.as_ref().and_then(|e| e.as_deref()), 254)?;
    check_text("description", body.description.as_ref().and_then(|e| e.as_deref()), 2000)?;
    let ctx = state.audit_context(&caller);
    let update = OwnerUpdate { name: body.name, email: body.email, description: body.description };
    let owner = state.store.update_owner(&ctx, &id, &update).await?;
    Ok(Json(views::owner(owner)))
}

/// Delete an owner; its certificates stay, without an owner.
#[utoipa::path(
    delete, path = "/api/v1/owners/{id}", tag = "owners",
    params(("id" = String, Path, description = "Owner id or name")),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"]))
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let ctx = state.audit_context(&caller);
    state.store.delete_owner(&ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The id of an owner given by id or name, if one is given (an unknown one is a 404).
pub(crate) async fn optional_owner_id(
    state: &AppState,
    owner: Option<&str>,
) -> ApiResult<Option<String>> {
    Ok(match owner {
        Some(owner) => Some(state.store.get_owner(owner).await?.id),
        None => None,
    })
}
