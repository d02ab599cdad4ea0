//! `/api/v1/audit`: read and verify the hash-chained trail.

use axum::Json;
use axum::extract::State;
use cmp_api::{AuditEvent, AuditListParams, AuditVerification, Page, Problem};
use cmp_store::AuditQuery;

use crate::core::wire::{page_limit, parse_time};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::state::AppState;

fn view(e: cmp_store::AuditEvent) -> AuditEvent {
    AuditEvent {
        seq: e.seq,
        occurred_at: time::OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(e.occurred_us) * 1000,
        )
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
        actor: e.actor,
        action: e.action,
        entity_type: e.entity_type,
        entity_id: e.entity_id,
        request_id: e.request_id,
        details: e.details,
        prev_hash: e.prev_hash,
        hash: e.hash,
    }
}

fn micros(field: &str, value: &str) -> ApiResult<i64> {
    let t = parse_time(field, value)?;
    i64::try_from(t.unix_timestamp_nanos() / 1000)
        .map_err(|_| ApiError::bad_field(field, "out of range"))
}

/// Audit events, newest first, with filters.
#[utoipa::path(
    get, path = "/api/v1/audit", tag = "audit",
    params(AuditListParams),
    responses((status = 200, body = Page<AuditEvent>), (status = 400, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security"]))
)]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<AuditListParams>,
) -> ApiResult<Json<Page<AuditEvent>>> {
    let limit = page_limit(p.limit)?;
    let before_seq = p
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::bad_field("cursor", "not a cursor this server issued"))
        })
        .transpose()?;
    let query = AuditQuery {
        actor: p.actor,
        action: p.action,
        entity_type: p.entity_type,
        entity_id: p.entity_id,
        since_us: p.since.as_deref().map(|v| micros("since", v)).transpose()?,
        until_us: p.until.as_deref().map(|v| micros("until", v)).transpose()?,
        limit,
        before_seq,
    };
    let page = state.store.list_audit(&query).await?;
    Ok(Json(Page {
        items: page.items.into_iter().map(view).collect(),
        next_cursor: page.next_cursor.map(|c| c.key.to_string()),
    }))
}

/// Recompute every hash of the chain and report the first broken link.
#[utoipa::path(
    get, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, body = AuditVerification)),
    security(("bearer" = ["admin", "security"]))
)]
pub async fn verify(State(state): State<AppState>) -> ApiResult<Json<AuditVerification>> {
    let (checked, broken) = state.store.verify_audit_chain().await?;
    Ok(Json(AuditVerification {
        intact: broken.is_none(),
        checked,
        first_broken_seq: broken.as_ref().map(|b| b.seq),
        reason: broken.map(|b| b.reason),
    }))
}
