//! Issuance: requests, approvals, managed certificates, policies, revocation, adapters.

use cmp_domain::{Policy, RenewalDecision, RequestKind, RequestState};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

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
    pub spec: serde_json::Value,
    /// `csr` (the requester holds the key) or `server` (in the secret store).
    pub key_source: Option<String>,
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
    pub spec: serde_json::Value,
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

/// `POST /api/v1/adapters`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdapterCreate {
    pub name: String,
    /// `builtin` or `vault_pki`.
    pub kind: String,
    /// Kind-specific settings.
    /// - `builtin`: `key_algorithm` (`ecdsa_p256`, `ecdsa_p384`, `rsa2048`, `rsa3072`,
    ///   `rsa4096`), `common_name`, `root_validity_days`, `issuing_validity_days`.
    /// - `vault_pki`: `address`, `mount` (default `pki`), `role`, `namespace`, `ca_bundle`
    ///   (PEM), and `auth`: `{"method": "token", "token": ...}` or
    ///   `{"method": "approle", "role_id": ..., "secret_id": ..., "mount": "approle"}`. The
    ///   token or secret id goes to the secret store and is never returned.
    #[serde(default)]
    pub config: serde_json::Value,
}

/// `PATCH /api/v1/adapters/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdapterPatch {
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `vault_pki` only: new credentials, `{"token": ...}` or `{"secret_id": ...}`, checked
    /// against Vault before they replace the stored ones.
    #[serde(default)]
    pub credentials: Option<serde_json::Value>,
}

/// `POST /api/v1/adapters/{id}/agent-tokens`: a Vault token for one agent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentTokenCreate {
    /// The agent's name: 1-64 characters of a-z, 0-9 and '-'.
    pub agent: String,
    /// Lifetime before renewal, seconds (60 to 86400; default 3600). How long renewals may
    /// extend it is the token role's `token_explicit_max_ttl`.
    #[serde(default)]
    pub ttl_secs: Option<i64>,
}

/// A Vault token that may sign with the adapter's role and read the agent's own KV path.
/// Shown once; CMP keeps only its accessor.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentToken {
    pub token: String,
    /// Vault's handle on the token (to look it up or revoke it), not a secret.
    pub accessor: String,
    pub ttl_secs: i64,
    pub renewable: bool,
    /// The Vault policy the token carries.
    pub policy: String,
    pub vault_address: String,
    /// `<mount>/sign/<role>`.
    pub sign_path: String,
    /// `<kv mount>/data/<prefix>/agents/<agent>/`: the subtree it may read.
    pub kv_path: String,
}

impl std::fmt::Debug for AgentToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentToken")
            .field("token", &"<redacted>")
            .field("accessor", &self.accessor)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A configured CA. Credentials are never returned.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Adapter {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub config: serde_json::Value,
    pub enabled: bool,
    pub has_credentials: bool,
    /// Where the CA publishes its CRL and answers OCSP (builtin: this server; Vault: its mount).
    pub crl_url: Option<String>,
    pub ocsp_url: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Health and capabilities of an adapter.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AdapterHealth {
    pub healthy: bool,
    pub message: String,
    pub supports_csr: bool,
    pub supports_revocation: bool,
    pub publishes_crl: bool,
    pub answers_ocsp: bool,
    pub max_validity_secs: i64,
    pub key_types: Vec<String>,
    /// Whether it issues for the lifetime asked. ACME: true while it sends `notAfter` in its
    /// orders and the CA's last certificate kept to it; false when it does not send it or the
    /// CA ignored it (those certificates carry a `validity_exceeds_*` finding).
    #[serde(default)]
    pub honours_validity: bool,
    /// The lifetime of the last certificate it issued (since the adapter was loaded), seconds.
    #[serde(default)]
    pub issued_validity_secs: Option<i64>,
    /// The CA certificates above its leaves, issuer first, PEM; empty when unknown (ACME: the
    /// chain comes with each certificate and is kept with it, see `/certificates/{id}/pem`).
    #[serde(default)]
    pub chain: Vec<String>,
}

/// The adapter role's signing call (issuer -> adapter, service to service).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignCall {
    pub request_id: String,
    /// PKCS#10, base64 DER.
    pub csr: String,
    pub common_name: Option<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<String>,
    pub usages: Vec<String>,
    pub validity_secs: i64,
    /// The certificate this one renews, base64 DER (ACME's ARI `replaces`).
    #[serde(default)]
    pub replaces: Option<String>,
    /// The ACME solver to prove the names with (its id).
    #[serde(default)]
    pub acme_solver: Option<String>,
}

/// A signed certificate with its chain, base64 DER each.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignedChain {
    pub certificate: String,
    pub chain: Vec<String>,
    pub serial: String,
}

/// The adapter role's renewal-window call: the CA's suggested window for a certificate it
/// issued (ACME ARI).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewalWindowCall {
    /// The certificate, base64 DER.
    pub certificate: String,
}

/// A suggested renewal window, Unix seconds; `null` when the CA suggests none.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RenewalWindowAnswer {
    pub window: Option<RenewalWindowSpan>,
}

/// Start and end of a suggested renewal window, Unix seconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct RenewalWindowSpan {
    pub start: i64,
    pub end: i64,
}

/// The adapter role's revocation call.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeCall {
    pub serial: String,
    pub reason: String,
}
