//! API tokens.

use cmp_domain::{Role, Secret};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// An API token as listed: never the secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// Owner ids a developer token acts for.
    pub owners: Vec<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    pub name: String,
    pub role: Role,
    /// Owners (ids or names) a developer token may act for; required for developers.
    #[serde(default)]
    pub owners: Vec<String>,
    /// Lifetime in days, 1 to 36500; absent means the token does not expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 36500)]
    pub expires_in_days: Option<u32>,
}

/// The answer to a token creation: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    /// Send as `Authorization: Bearer <token>`. Shown once; only its hash is kept.
    #[schema(value_type = String)]
    pub token: Secret<String>,
    #[serde(flatten)]
    pub info: ApiToken,
}
