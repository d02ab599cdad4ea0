//! Who is calling (`/api/v1/me`), the people known from logins (`/api/v1/users`), and the
//! identity providers one can log in with (`/auth/providers`).

use cmp_domain::Role;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A `cmp_` API token.
    ApiToken,
    /// A browser session from an OpenID Connect login.
    Session,
    /// A bearer JWT from an OpenID Connect provider.
    Jwt,
    /// An agent's client certificate.
    AgentCertificate,
}

/// The caller.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Me {
    /// As the audit trail names it: `token:<id>`, `oidc:<provider>:<sub>`, `agent:<id>`.
    pub actor: String,
    pub role: Role,
    /// Owner ids the caller acts for; empty for roles that see everything.
    pub owners: Vec<String>,
    pub auth: AuthMethod,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// For a session: send it as `X-CSRF-Token` on every write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    /// For a session: when it ends at the latest.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub session_expires_at: Option<OffsetDateTime>,
}

/// A person known from an OpenID Connect login.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: String,
    /// The provider's name in CMP's configuration.
    pub provider: String,
    /// The provider's `sub`.
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// What the last login's groups gave.
    pub role: Role,
    pub owners: Vec<String>,
    pub groups: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_login_at: OffsetDateTime,
}

/// An identity provider one can log in with.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuthProvider {
    pub name: String,
    pub issuer: String,
    /// Open this in a browser to log in.
    pub login_url: String,
    /// The public client for `cmpctl login` (device flow), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cli_client_id: Option<String>,
    /// Whether bearer JWTs of this provider are accepted (its access tokens' audience).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}
