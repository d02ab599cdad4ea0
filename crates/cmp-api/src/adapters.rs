//! CA adapters: configuration, health, Vault tokens for agents, and the adapter role's
//! signing, revocation and renewal-window calls.

use cmp_domain::Secret;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

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
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentToken {
    #[schema(value_type = String)]
    pub token: Secret<String>,
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
