//! Managed certificates (desired state and versions) and per-owner policies.

use cmp_domain::{Policy, RenewalDecision, RequestSpec};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::Subject;

/// `POST /api/v1/managed-certificates`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManagedCreate {
    /// Unique among the owner's managed certificates, e.g. `shop-frontend`.
    pub name: String,
    pub owner: String,
    #[serde(default)]
    pub adapter: Option<String>,
    /// The requester's CSR, re-signed at each renewal; otherwise the server makes a new key
    /// (`key_type`, default `ecdsa_p256`) for each version.
    #[serde(default)]
    pub csr: Option<String>,
    #[serde(default)]
    pub key_type: Option<String>,
    #[serde(flatten)]
    pub subject: Subject,
    /// `30d`, `12h` or `33%` before expiry; default: at 2/3 of the lifetime. Must leave a
    /// version its minimum age, the longer of 1 hour and 10% of the lifetime (a 422 otherwise).
    #[serde(default)]
    pub renew_before: Option<String>,
    /// Make each version's key on the host of its one deployment (an agent), which sends a
    /// CSR: the private key never leaves that host. Needs exactly one deployment.
    #[serde(default)]
    pub key_on_agent: bool,
    /// Where to deploy it (`PUT .../deployments` sets it later).
    #[serde(default)]
    pub deployments: Vec<crate::DeploymentTarget>,
}

/// A managed certificate: desired state, current version, history, renewal status.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Managed {
    pub id: String,
    /// Unique per owner; `owner/name` names it for callers who see several owners.
    pub name: String,
    pub owner_id: Option<String>,
    #[serde(default)]
    pub owner_name: Option<String>,
    pub adapter_id: String,
    /// What each version asks for: names, validity, key source, when to renew.
    pub spec: RequestSpec,
    pub current_certificate_id: Option<String>,
    pub versions: Vec<ManagedVersion>,
    pub renewal_failures: i64,
    pub last_error: Option<String>,
    /// The scheduler's last decision, with its reason and message.
    pub renewal: Option<RenewalDecision>,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// One issued version of a managed certificate.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ManagedVersion {
    pub certificate_id: String,
    pub serial_number: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    pub revoked: bool,
}

/// `PUT /api/v1/owners/{id}/policy` and its answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyView {
    pub owner_id: String,
    pub policy: Policy,
    /// False when the owner has none and the default applies.
    pub explicit: bool,
}

/// Page of `GET /api/v1/managed-certificates`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ManagedListParams {
    /// Page size, 1 to 500 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}
