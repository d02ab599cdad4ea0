//! `/api/v1/tokens`: API tokens, created by admins, stored hashed.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cmp_api::{ApiToken, Problem, TokenCreate, TokenCreated};
use cmp_domain::{Role, Secret};
use cmp_store::NewApiToken;

use crate::auth::{Caller, new_token_secret, token_hash};
use crate::core::wire::time_of;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

/// Longest token lifetime, in days (100 years): a longer one would be past the years a time
/// can show, and no token needs it; leave the expiry out instead.
const MAX_TOKEN_DAYS: u32 = 36_500;

pub fn view(t: cmp_store::ApiToken) -> ApiToken {
    ApiToken {
        id: t.id,
        name: t.name,
        role: t.role,
        owners: t.owner_ids,
        expires_at: t.expires_at.map(time_of),
        created_by: t.created_by,
        created_at: time_of(t.created_at),
        revoked_at: t.revoked_at.map(time_of),
    }
}

/// All tokens (never their secrets).
#[utoipa::path(
    get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = Vec<ApiToken>)),
    security(("bearer" = ["admin"]))
)]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<ApiToken>>> {
    Ok(Json(state.store.list_tokens().await?.into_iter().map(view).collect()))
}

/// Create a token. The secret is in this answer only.
#[utoipa::path(
    post, path = "/api/v1/tokens", tag = "tokens",
    request_body = TokenCreate,
    responses((status = 201, body = TokenCreated), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"]))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<TokenCreate>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    if body.name.trim().is_empty() || body.name.len() > 100 {
        return Err(ApiError::bad_field("name", "1-100 characters"));
    }
    if body.role == Role::Agent {
        return Err(ApiError::bad_field(
            "role",
            "agents authenticate with the certificate they get at enrolment: make a bootstrap \
             token (POST /api/v1/agents/bootstrap-tokens, cmpctl agent token create)",
        ));
    }
    if body.role == Role::Developer && body.owners.is_empty() {
        return Err(ApiError::bad_field("owners", "a developer token needs at least one owner"));
    }
    let mut owner_ids = Vec::with_capacity(body.owners.len());
    for owner in &body.owners {
        owner_ids.push(state.store.get_owner(owner).await?.id);
    }
    let now = state.clock.now().unix_timestamp();
    let expires_at = match body.expires_in_days {
        Some(days @ 1..=MAX_TOKEN_DAYS) => Some(now + i64::from(days) * 86_400),
        Some(_) => {
            return Err(ApiError::bad_field(
                "expires_in_days",
                format!("between 1 and {MAX_TOKEN_DAYS}"),
            ));
        }
        None => None,
    };
    let secret = new_token_secret();
    let new = NewApiToken {
        name: body.name,
        token_hash: token_hash(&secret),
        role: body.role,
        owner_ids,
        expires_at,
    };
    let token = state.store.create_token(&state.audit_context(&caller), &new).await?;
    Ok((StatusCode::CREATED, Json(TokenCreated { token: Secret::new(secret), info: view(token) })))
}

/// Revoke a token.
#[utoipa::path(
    delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"]))
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let now = state.clock.now().unix_timestamp();
    state.store.revoke_token(&state.audit_context(&caller), &id, now).await?;
    Ok(StatusCode::NO_CONTENT)
}
