//! Issuance requests: what is asked, approvals, revocation.

use cmp_domain::{KeySource, RequestKind, RequestSpec, RequestState};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// Names and lifetime asked of the CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// Subject common name; optional (names go in the SAN).
    #[serde(default)]
    pub common_name: Option<String>,
    /// DNS names. When empty, the CSR's names are used.
    #[serde(default)]
    pub dns_names: Vec<String>,
    #[serde(default)]
    pub ip_addresses: Vec<String>,
    /// Lifetime in days (default 90).
    #[serde(default)]
    pub validity_days: Option<i64>,
    /// ACME adapters: the `id` of the solver that proves these names, instead of the first
    /// solver whose name patterns admit them.
    #[serde(default)]
    pub acme_solver: Option<String>,
}

/// `POST /api/v1/requests`: a certificate for a CSR (preferred), or with a key the server
/// makes (`key_type`) and keeps in the secret store.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestCreate {
    /// Owner id or name.
    pub owner: String,
    /// Adapter id or name; the builtin CA when absent.
    #[serde(default)]
    pub adapter: Option<String>,
    /// PKCS#10 CSR, PEM.
    #[serde(default)]
    pub csr: Option<String>,
    /// Server-side key generation: `ecdsa_p256`, `ecdsa_p384`, `rsa2048`, `rsa3072`,
    /// `rsa4096` or `ed25519`. Exclusive with `csr`.
    #[serde(default)]
    pub key_type: Option<String>,
    #[serde(flatten)]
    pub subject: Subject,
}

/// An issuance request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Request {
    pub id: String,
    pub kind: RequestKind,
    pub state: RequestState,
    pub owner_id: Option<String>,
    pub adapter_id: String,
    pub managed_certificate_id: Option<String>,
    /// The certificate issued (issue, renew) or revoked (revoke).
    pub certificate_id: Option<String>,
    /// What was asked (names, validity, key source, reason).
    pub spec: RequestSpec,
    /// Who holds the key: the requester (`csr`), the server's secret store (`server`), or the
    /// host of an agent (`agent`); the same as `spec.key_source`.
    pub key_source: KeySource,
    pub requested_by: String,
    pub decided_by: Option<String>,
    pub decision_comment: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// `POST /api/v1/requests/{id}/approve|reject`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    #[serde(default)]
    pub comment: Option<String>,
}

/// `POST /api/v1/certificates/{id}/revoke`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    /// RFC 5280 reason: `unspecified`, `key_compromise`, `ca_compromise`,
    /// `affiliation_changed`, `superseded`, `cessation_of_operation`, `certificate_hold`,
    /// `privilege_withdrawn`, `aa_compromise`.
    #[serde(default = "unspecified")]
    pub reason: String,
    /// Also delete the private key the server made for it (from the secret store, every
    /// version), once the revocation is done. Off by default: keys are kept.
    #[serde(default)]
    pub purge_key: bool,
}

fn unspecified() -> String {
    "unspecified".into()
}

/// Filters and page of `GET /api/v1/requests`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RequestListParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<RequestState>)]
    pub state: Option<RequestState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<RequestKind>)]
    pub kind: Option<RequestKind>,
    /// Managed certificate id, name, or `owner/name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_certificate: Option<String>,
    /// Page size, 1 to 500 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}
