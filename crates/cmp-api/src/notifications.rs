//! Notifications: rules (who hears what, by email or webhook) and their deliveries.

use cmp_domain::{DeliveryState, NotificationEvent};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::OwnerRef;

/// How a rule's messages travel. Its secret (the SMTP password, the webhook signing key) is
/// given apart (`secret`), kept in the secret store, and never shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NotificationChannel {
    Email(EmailChannel),
    Webhook(WebhookChannel),
}

/// Email through an SMTP relay. (The channels do not refuse unknown fields: in the OpenAPI
/// document that would forbid the `kind` tag beside them.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EmailChannel {
    pub smtp_host: String,
    /// Default: 587 with STARTTLS, 465 with TLS, 25 without.
    #[serde(default)]
    pub smtp_port: Option<u16>,
    /// `starttls` (default), `tls` (implicit TLS) or `none` (a relay on a trusted network).
    #[serde(default)]
    pub tls: SmtpTls,
    /// Log in with this name and the rule's secret as the password.
    #[serde(default)]
    pub username: Option<String>,
    pub from: String,
    pub to: Vec<String>,
    /// PEM of the CA that signs the relay's certificate, when the system does not trust it.
    #[serde(default)]
    pub ca_pem: Option<String>,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    #[default]
    Starttls,
    Tls,
    None,
}

/// An HTTP POST of JSON. With a secret, each one is signed: `X-CMP-Signature: t=<unix
/// seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the secret>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookChannel {
    /// `https://` (or `http://`) URL.
    pub url: String,
    /// `json` (default): CMP's own body; `slack`: `{"text": ...}`, for Slack and compatible
    /// incoming webhooks.
    #[serde(default)]
    pub format: WebhookFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    #[default]
    Json,
    Slack,
}

/// A notification rule.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NotificationRule {
    pub id: String,
    pub name: String,
    /// The team whose certificates it covers; absent: every team, and the platform's own
    /// events (adapters, agents).
    pub owner: Option<OwnerRef>,
    pub events: Vec<NotificationEvent>,
    pub channel: NotificationChannel,
    /// Whether a secret is kept for the channel (never shown).
    pub has_secret: bool,
    /// Days before expiry at which a certificate is announced.
    pub thresholds_days: Vec<u32>,
    pub enabled: bool,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A rule to create.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationRuleCreate {
    /// 1-100 letters, digits, `-`, `_` or `.`.
    pub name: String,
    /// Owner (id or name); absent: every owner.
    #[serde(default)]
    pub owner: Option<String>,
    /// Event names (`certificate_expiring`, `renewal_overdue`, `request_failed`,
    /// `request_awaiting_approval`, `adapter_unhealthy`, `deployment_failed`,
    /// `agent_offline`, and opt-in `certificate_issued`, `certificate_renewed`,
    /// `certificate_revoked`); absent: all but the opt-in ones.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    pub channel: NotificationChannel,
    /// Days before expiry (default 30, 14, 7, 1).
    #[serde(default)]
    pub thresholds_days: Option<Vec<u32>>,
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The SMTP password, or the webhook signing key.
    #[serde(default)]
    pub secret: Option<String>,
}

/// Changes to a rule: what is given is replaced; `owner: null` makes it cover every owner,
/// `secret: null` removes the secret.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationRulePatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::double_option")]
    #[schema(value_type = Option<String>)]
    pub owner: Option<Option<String>>,
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub channel: Option<NotificationChannel>,
    #[serde(default)]
    pub thresholds_days: Option<Vec<u32>>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "crate::double_option")]
    #[schema(value_type = Option<String>)]
    pub secret: Option<Option<String>>,
}

/// One thing told: what happened, to what, in a sentence, with its facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NoticeView {
    pub event: NotificationEvent,
    /// What it is about (a certificate, request, version, agent...).
    pub subject: String,
    /// The expiry threshold in days; 0 for other events.
    pub level: i64,
    pub summary: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// A message of a rule: one notice, or a digest of several for one owner.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NotificationDelivery {
    pub id: String,
    pub rule_id: String,
    pub owner_id: Option<String>,
    pub state: DeliveryState,
    pub attempts: i64,
    /// When it is tried next (pending only).
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub sent_at: Option<OffsetDateTime>,
    /// All the notices it stands for; up to 100 are listed.
    pub notice_count: i64,
    pub notices: Vec<NoticeView>,
}

/// Filters and page of `GET /api/v1/notifications/deliveries`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryListParams {
    /// Rule id or name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<DeliveryState>)]
    pub state: Option<DeliveryState>,
    /// Page size, 1 to 500 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}
