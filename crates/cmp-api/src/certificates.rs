//! Certificates in the inventory, listing parameters, imports.

use std::collections::BTreeMap;

use cmp_domain::{CertificateStatus, Finding, KeyInfo, LocationKind, San};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// A certificate the platform knows.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Certificate {
    pub id: String,
    /// SHA-256 of the DER, lowercase hex without colons.
    pub fingerprint_sha256: String,
    /// Lowercase hex, as `openssl x509 -serial` prints it.
    pub serial_number: String,
    /// RFC 4514.
    pub subject: String,
    /// RFC 4514.
    pub issuer: String,
    pub common_name: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    pub sans: Vec<San>,
    pub key: KeyInfo,
    pub signature_algorithm: String,
    pub is_ca: bool,
    pub self_signed: bool,
    pub status: CertificateStatus,
    pub findings: Vec<Finding>,
    pub owner: Option<OwnerRef>,
    pub labels: BTreeMap<String, String>,
    pub locations: Vec<Location>,
    /// `import`, `discovery` or `issued`.
    pub source: String,
    /// When it was revoked through the platform, and why (RFC 5280 reason, snake_case).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub revocation_reason: Option<String>,
    /// The managed certificate this is a version of.
    #[serde(default)]
    pub managed_certificate_id: Option<String>,
    /// Whether the server made its private key and keeps it (sealed in the secret store): then
    /// `GET .../{id}/key` gives it to the roles that may have it.
    pub has_server_key: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// The owning team of a certificate.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct OwnerRef {
    pub id: String,
    pub name: String,
}

/// Where a certificate was seen.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Location {
    pub kind: LocationKind,
    /// `host:port[#sni]`, `agent:path` or `cluster/namespace/secret`.
    pub address: String,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// When a network scan found the endpoint serving another certificate, or nothing: the
    /// location is kept, as history.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub gone_at: Option<OffsetDateTime>,
    /// Findings of this endpoint (network scans): name mismatch, chain, legacy TLS.
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// What the last handshake with this endpoint showed (network scans).
    #[serde(default)]
    pub endpoint: Option<crate::EndpointFacts>,
}

/// Sort orders of the certificate listing.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CertificateSortKey {
    #[default]
    NotAfter,
    CreatedAt,
}

/// Filters, sort and page of `GET /api/v1/certificates`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CertificateListParams {
    /// Substring of the subject or of any SAN, case-insensitive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<CertificateStatus>)]
    pub status: Option<CertificateStatus>,
    /// Owner id or name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Issuer, RFC 4514, exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_before: Option<String>,
    /// RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_after: Option<String>,
    /// `rsa`, `ec`, `ed25519`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<Finding>)]
    pub finding: Option<Finding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<CertificateSortKey>)]
    pub sort: Option<CertificateSortKey>,
    /// Page size, 1 to 500 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// JSON form of an import, for PKCS#12 (or any format, base64-encoded).
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// The file, base64.
    pub data: String,
    /// PKCS#12 password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Owner (id or name) for the certificates this import creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl std::fmt::Debug for ImportRequest {
    // The data may hold private keys and the password unlocks them: print neither.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportRequest")
            .field("data_len", &self.data.len())
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("owner", &self.owner)
            .finish()
    }
}

/// Query of `GET /api/v1/certificates/{id}/pem`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PemParams {
    /// `true`: the leaf, then the chain its CA returned with it (issuing CA first), as a
    /// server sends it. A certificate without a recorded chain (an import) gives the leaf
    /// alone.
    #[serde(default)]
    pub chain: bool,
}

/// Query of `POST /api/v1/certificates/import`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// Owner (id or name) for the certificates this import creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Where these certificates were seen: `endpoint:host:port`, `file:host:/path` or
    /// `k8s:cluster/namespace/secret`. Recorded with first and last seen times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Store the good certificates even when some inputs are rejected (default: all or nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<bool>,
}

/// What an import did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportResponse {
    pub created: usize,
    /// Known already, and within the caller's scope.
    pub already_known: usize,
    /// Known already, but outside the caller's scope (another team's, or without an owner
    /// for a developer): nothing of them is told, not even their ids.
    #[serde(default)]
    pub known_elsewhere: usize,
    /// One entry per certificate in the input, in input order.
    pub certificates: Vec<ImportedCertificate>,
    /// Inputs that were not certificates, each with why.
    pub rejected: Vec<ImportRejection>,
}

/// What an import did with one certificate.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ImportOutcome {
    /// New to the inventory; it has the owner of the import.
    Created,
    /// In the inventory already, and the caller may see it: its id is given.
    AlreadyKnown,
    /// In the inventory already, outside the caller's scope: no id, and nothing changed.
    KnownElsewhere,
}

impl ImportOutcome {
    /// The wire name, e.g. `known_elsewhere`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportOutcome::Created => "created",
            ImportOutcome::AlreadyKnown => "already_known",
            ImportOutcome::KnownElsewhere => "known_elsewhere",
        }
    }
}

/// One certificate of an import.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportedCertificate {
    /// The platform id; absent for `known_elsewhere`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Of the certificate given (the caller's own input).
    pub fingerprint_sha256: String,
    /// Of the certificate given (the caller's own input).
    pub subject: String,
    pub outcome: ImportOutcome,
}

/// One rejected input item.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportRejection {
    pub item: String,
    pub reason: String,
    pub detail: String,
}

/// `PATCH /api/v1/certificates/{id}`: fields left out stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificatePatch {
    /// Owner id or name; `null` removes the owner.
    #[serde(
        default,
        deserialize_with = "crate::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub owner: Option<Option<String>>,
    /// Replaces all labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}
