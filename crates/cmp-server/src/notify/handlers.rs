//! `/api/v1/notifications` handlers: rules, test sends, deliveries.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cmp_api::{
    DeliveryListParams, NotificationDelivery, NotificationRule, NotificationRuleCreate,
    NotificationRulePatch, Page, Problem,
};
use cmp_store::DeliveryQuery;

use super::RuleInput;
use super::message::notice_view;
use crate::auth::Caller;
use crate::core::wire::{decode_tagged, encode_tagged, page_limit, time_of};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::inventory::optional_owner_id;
use crate::state::AppState;

/// The rule as the API shows it (its secret only as `has_secret`).
async fn view(state: &AppState, rule: cmp_store::NotificationRule) -> ApiResult<NotificationRule> {
    let owner = match &rule.owner_id {
        Some(id) => {
            let o = state.store.get_owner(id).await?;
            Some(cmp_api::OwnerRef { id: o.id, name: o.name })
        }
        None => None,
    };
    let channel = serde_json::from_value(rule.channel)
        .map_err(|e| ApiError::Internal(format!("stored channel unreadable: {e}")))?;
    Ok(NotificationRule {
        id: rule.id,
        name: rule.name,
        owner,
        events: rule.events,
        channel,
        has_secret: rule.has_secret,
        thresholds_days: rule.thresholds,
        enabled: rule.enabled,
        created_by: rule.created_by,
        created_at: time_of(rule.created_at),
        updated_at: time_of(rule.updated_at),
    })
}

fn delivery_view(d: cmp_store::Delivery) -> NotificationDelivery {
    NotificationDelivery {
        notices: d.notices.iter().map(notice_view).collect(),
        id: d.id,
        rule_id: d.rule_id,
        owner_id: d.owner_id,
        state: d.state,
        attempts: d.attempts,
        next_attempt_at: d.next_attempt_at.map(time_of),
        last_error: d.last_error,
        created_at: time_of(d.created_at),
        sent_at: d.sent_at.map(time_of),
        notice_count: d.notice_count,
    }
}

/// Every notification rule.
#[utoipa::path(get, path = "/api/v1/notifications/rules", tag = "notifications",
    responses((status = 200, body = Vec<NotificationRule>)),
    security(("bearer" = ["admin", "security"])))]
pub async fn list_rules(State(state): State<AppState>) -> ApiResult<Json<Vec<NotificationRule>>> {
    let mut rules = Vec::new();
    for rule in state.store.list_notification_rules().await? {
        rules.push(view(&state, rule).await?);
    }
    Ok(Json(rules))
}

/// Make a rule: which events (for one owner or all), by email or webhook. A refused event,
/// address, URL or threshold is a 422 naming it, and nothing is stored.
#[utoipa::path(post, path = "/api/v1/notifications/rules", tag = "notifications",
    request_body = NotificationRuleCreate,
    responses(
        (status = 201, body = NotificationRule),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such owner", body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security"])))]
pub async fn create_rule(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NotificationRuleCreate>,
) -> ApiResult<(StatusCode, Json<NotificationRule>)> {
    let owner = optional_owner_id(&state, body.owner.as_deref()).await?;
    let (input, secret) = RuleInput::from_create(body, owner);
    let ctx = state.audit_context(&caller);
    let rule = state.notifier.create_rule(&ctx, input, secret).await?;
    Ok((StatusCode::CREATED, Json(view(&state, rule).await?)))
}

/// One rule, by id or name.
#[utoipa::path(get, path = "/api/v1/notifications/rules/{id}", tag = "notifications",
    params(("id" = String, Path, description = "Rule id or name")),
    responses((status = 200, body = NotificationRule),
        (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security"])))]
pub async fn get_rule(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<NotificationRule>> {
    let rule = state.store.get_notification_rule(&id).await?;
    Ok(Json(view(&state, rule).await?))
}

/// Change a rule: what is given is replaced.
#[utoipa::path(patch, path = "/api/v1/notifications/rules/{id}", tag = "notifications",
    params(("id" = String, Path, description = "Rule id or name")),
    request_body = NotificationRulePatch,
    responses(
        (status = 200, body = NotificationRule),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security"])))]
pub async fn patch_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NotificationRulePatch>,
) -> ApiResult<Json<NotificationRule>> {
    let owner = match &body.owner {
        Some(owner) => Some(optional_owner_id(&state, owner.as_deref()).await?),
        None => None,
    };
    let ctx = state.audit_context(&caller);
    let rule = state.notifier.update_rule(&ctx, &id, body, owner).await?;
    Ok(Json(view(&state, rule).await?))
}

/// Delete a rule with its deliveries and its secret.
#[utoipa::path(delete, path = "/api/v1/notifications/rules/{id}", tag = "notifications",
    params(("id" = String, Path, description = "Rule id or name")),
    responses((status = 204),
        (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security"])))]
pub async fn delete_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let ctx = state.audit_context(&caller);
    state.notifier.delete_rule(&ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send a test message through the rule's channel now (once, no retry). The delivery comes
/// back with its outcome: `sent`, or `failed` with the reason in `last_error`.
#[utoipa::path(post, path = "/api/v1/notifications/rules/{id}/test", tag = "notifications",
    params(("id" = String, Path, description = "Rule id or name")),
    responses((status = 200, body = NotificationDelivery),
        (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security"])))]
pub async fn test_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<NotificationDelivery>> {
    let ctx = state.audit_context(&caller);
    let delivery = state.notifier.send_test(&ctx, &id).await?;
    Ok(Json(delivery_view(delivery)))
}

/// Deliveries, newest first: each message with its notices, state, attempts and last error.
#[utoipa::path(get, path = "/api/v1/notifications/deliveries", tag = "notifications",
    params(DeliveryListParams),
    responses((status = 200, body = Page<NotificationDelivery>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such rule", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security"])))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<DeliveryListParams>,
) -> ApiResult<Json<Page<NotificationDelivery>>> {
    let rule_id = match &params.rule {
        Some(rule) => Some(state.store.get_notification_rule(rule).await?.id),
        None => None,
    };
    let query = DeliveryQuery {
        rule_id,
        state: params.state,
        limit: page_limit(params.limit)?,
        cursor: params.cursor.as_deref().map(|c| decode_tagged("n", c)).transpose()?,
    };
    let page = state.store.list_deliveries(&query).await?;
    Ok(Json(Page {
        next_cursor: page.next_cursor.as_ref().map(|c| encode_tagged("n", c)),
        items: page.items.into_iter().map(delivery_view).collect(),
    }))
}

/// One delivery.
#[utoipa::path(get, path = "/api/v1/notifications/deliveries/{id}", tag = "notifications",
    params(("id" = String, Path, description = "Delivery id")),
    responses((status = 200, body = NotificationDelivery),
        (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security"])))]
pub async fn get_delivery(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<NotificationDelivery>> {
    Ok(Json(delivery_view(state.store.get_delivery(&id).await?)))
}
