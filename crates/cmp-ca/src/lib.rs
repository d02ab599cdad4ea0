//! The CA adapter contract: [`CaAdapter`] and the types it speaks (profiles, sign requests,
//! issued certificates, status, errors), and the [`CaLedger`] every adapter records its serials
//! in.
//!
//! The issuer role drives every CA through [`CaAdapter`]: sign a CSR under a profile, revoke a
//! serial, report health and capabilities. The workflow around signing (policy, approval,
//! inventory, audit) lives once, in the issuer role, never in an adapter. Each CA is its own
//! crate on this one (`cmp-ca-builtin`, `cmp-ca-vault`, `cmp-ca-acme`), so what needs only the
//! contract links none of them.

mod ledger;

pub use cmp_domain::RevocationReason;
pub use ledger::{CaLedger, LedgerEntry, MemoryLedger};

use std::net::IpAddr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What the CA is asked to put in the certificate. The CSR only supplies the public key: names
/// and usages come from here, after the issuer checked them against policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Subject common name; `None` leaves the subject empty (names are in the SAN).
    pub common_name: Option<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    /// Extended key usages.
    pub usages: Vec<Usage>,
    /// Requested lifetime in seconds. A CA clamps nothing silently: if it cannot honour the
    /// lifetime (e.g. it would outlive the issuer) it refuses with [`CaError::Refused`].
    pub validity_secs: i64,
}

/// Extended key usages a profile can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Usage {
    ServerAuth,
    ClientAuth,
}

/// A request to sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignRequest {
    /// The issuance request this signature belongs to. Signing the same request id twice
    /// returns the first certificate (a retry after a crash never makes a second one).
    pub request_id: String,
    /// PKCS#10 CSR, DER. Its signature has been verified by the caller and is verified again.
    pub csr_der: Vec<u8>,
    pub profile: Profile,
    /// The certificate this one renews, DER, when it renews one (ACME sends it as ARI's
    /// `replaces`).
    #[serde(default)]
    pub replaces: Option<Vec<u8>>,
    /// ACME: the solver (by id) that proves the names; `None` chooses by name pattern.
    #[serde(default)]
    pub acme_solver: Option<String>,
}

/// A signed certificate and the chain above it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCertificate {
    /// The leaf, DER.
    pub certificate_der: Vec<u8>,
    /// Issuing CA first, up to (and including) the root, DER.
    pub chain_der: Vec<Vec<u8>>,
    /// Serial number, lowercase hex (as `openssl x509 -serial` prints it, lowercased).
    pub serial: String,
}

impl IssuedCertificate {
    /// A ledger entry with the chain above it.
    pub fn recorded(entry: LedgerEntry, chain_der: Vec<Vec<u8>>) -> IssuedCertificate {
        IssuedCertificate {
            certificate_der: entry.certificate_der,
            chain_der,
            serial: entry.serial,
        }
    }
}

/// What an adapter can do, for the issuer's checks and the UI (default: nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    pub supports_csr: bool,
    pub supports_revocation: bool,
    pub publishes_crl: bool,
    pub answers_ocsp: bool,
    /// Longest lifetime it will issue now, in seconds (for the builtin CA: until the issuing
    /// certificate expires).
    pub max_validity_secs: i64,
    /// Key types it signs, e.g. `rsa`, `ec`, `ed25519`.
    pub key_types: Vec<String>,
    /// Whether it issues for the lifetime asked (builtin, Vault: always; ACME: when it sends
    /// `notAfter` and the CA's last certificate kept to it). When false, certificates may run
    /// longer than asked: they are stored with a `validity_exceeds_*` finding and renewed on
    /// the lifetime asked.
    #[serde(default)]
    pub honours_validity: bool,
    /// The lifetime of the last certificate it issued (in this process), in seconds; `None`
    /// before the first.
    #[serde(default)]
    pub issued_validity_secs: Option<i64>,
}

/// Health, capabilities and the issuer chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterStatus {
    pub healthy: bool,
    /// A short human sentence, e.g. "issuing CA valid until 2031-11-28".
    pub message: String,
    pub capabilities: Capabilities,
    /// The CA certificates above its leaves, issuer first, DER; empty when unknown (e.g. the
    /// CA cannot be reached).
    #[serde(default)]
    pub chain_der: Vec<Vec<u8>>,
}

/// Why an adapter call failed. Messages never hold key material or credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum CaError {
    /// The CSR cannot be parsed, its signature does not verify, or its key type is not signed.
    #[error("invalid CSR: {0}")]
    InvalidCsr(String),
    /// The CA refuses the profile (e.g. a lifetime beyond its own).
    #[error("refused by the CA: {0}")]
    Refused(String),
    /// No adapter has this id or name.
    #[error("no adapter {0}")]
    UnknownAdapter(String),
    /// The serial is already revoked.
    #[error("certificate {0} is already revoked")]
    AlreadyRevoked(String),
    /// The CA never issued this serial.
    #[error("this CA did not issue serial {0}")]
    UnknownSerial(String),
    /// The CA cannot be reached or is not ready; retrying later can help.
    #[error("CA unavailable: {0}")]
    Unavailable(String),
    /// The CA asked to be left alone until `retry_at` (Unix seconds): a rate limit.
    #[error("CA asks to wait: {message}")]
    Throttled { message: String, retry_at: i64 },
    /// Anything else (a bug, corrupt CA material).
    #[error("CA failure: {0}")]
    Internal(String),
}

impl CaError {
    /// Whether retrying the same call later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, CaError::Unavailable(_) | CaError::Throttled { .. })
    }

    /// Not before when to retry (Unix seconds), when the CA said.
    pub fn retry_at(&self) -> Option<i64> {
        match self {
            CaError::Throttled { retry_at, .. } => Some(*retry_at),
            _ => None,
        }
    }

    /// The stable name of the kind of error: the last segment of the problem `type` the API
    /// answers with, and what an adapter role's caller reads back with [`CaError::from_slug`].
    pub fn slug(&self) -> &'static str {
        match self {
            CaError::InvalidCsr(_) => "ca-invalid-csr",
            CaError::Refused(_) => "ca-refused",
            CaError::UnknownAdapter(_) => "ca-unknown-adapter",
            CaError::AlreadyRevoked(_) => "ca-already-revoked",
            CaError::UnknownSerial(_) => "ca-unknown-serial",
            CaError::Unavailable(_) => "ca-unavailable",
            CaError::Throttled { .. } => "ca-throttled",
            CaError::Internal(_) => "ca-internal",
        }
    }

    /// The error a slug of [`CaError::slug`] stands for, with `message`; a throttle needs
    /// `retry_at`. `None` for a slug that is not a CA error's.
    pub fn from_slug(slug: &str, message: String, retry_at: Option<i64>) -> Option<CaError> {
        Some(match slug {
            "ca-invalid-csr" => CaError::InvalidCsr(message),
            "ca-refused" => CaError::Refused(message),
            "ca-unknown-adapter" => CaError::UnknownAdapter(message),
            "ca-already-revoked" => CaError::AlreadyRevoked(message),
            "ca-unknown-serial" => CaError::UnknownSerial(message),
            "ca-unavailable" => CaError::Unavailable(message),
            "ca-throttled" => CaError::Throttled { message, retry_at: retry_at? },
            "ca-internal" => CaError::Internal(message),
            _ => return None,
        })
    }
}

/// One configured CA connection.
#[async_trait]
pub trait CaAdapter: Send + Sync {
    /// Signs a CSR under a profile. Idempotent per `request.request_id`.
    async fn create_certificate(&self, request: &SignRequest)
    -> Result<IssuedCertificate, CaError>;
    /// Revokes a certificate this CA issued, by serial (lowercase hex).
    async fn revoke_certificate(
        &self,
        serial: &str,
        reason: RevocationReason,
    ) -> Result<(), CaError>;
    /// Health and capabilities.
    async fn get_status(&self) -> AdapterStatus;
    /// The CA's suggested renewal window (Unix seconds) for a certificate it issued, when it
    /// suggests one (ACME ARI, RFC 9773). Default: none, renewal follows the lifetime rule.
    async fn renewal_window(&self, _certificate_der: &[u8]) -> Result<Option<(i64, i64)>, CaError> {
        Ok(None)
    }
    /// For a CA whose signatures exist only in its answers until the caller stores them:
    /// the way to sign without recording (see [`SignsUnrecorded`]). Default: none, the CA
    /// records every signature itself (or the signature exists at a CA outside CMP), and the
    /// caller must store its request before asking.
    fn unrecorded(&self) -> Option<&dyn SignsUnrecorded> {
        None
    }
}

/// Signing whose only trace is the answer: the caller stores the returned ledger entry with
/// the certificate, in its own transaction, so that a crash before that leaves nothing behind
/// and the caller may sign before it stores anything (the builtin CA in this process).
pub trait SignsUnrecorded: Send + Sync {
    /// Signs `request`; returns the ledger entry to store and the certificate with its chain.
    /// `csr` is `request.csr_der` as the caller already parsed and verified it, if it did
    /// (its signature is not checked twice; other bytes are refused).
    fn sign_unrecorded(
        &self,
        request: &SignRequest,
        csr: Option<&cmp_pki::CsrInfo>,
    ) -> Result<(LedgerEntry, IssuedCertificate), CaError>;
}

#[cfg(test)]
mod tests {
    use super::CaError;

    #[test]
    fn every_error_comes_back_from_its_slug() {
        let all = [
            CaError::InvalidCsr("m".into()),
            CaError::Refused("m".into()),
            CaError::UnknownAdapter("m".into()),
            CaError::AlreadyRevoked("m".into()),
            CaError::UnknownSerial("m".into()),
            CaError::Unavailable("m".into()),
            CaError::Throttled { message: "m".into(), retry_at: 7 },
            CaError::Internal("m".into()),
        ];
        for e in all {
            assert_eq!(CaError::from_slug(e.slug(), "m".into(), Some(7)), Some(e));
        }
        assert_eq!(CaError::from_slug("not-found", "m".into(), None), None);
        assert_eq!(CaError::from_slug("ca-throttled", "m".into(), None), None, "no time given");
    }
}
