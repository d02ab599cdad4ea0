//! Certificate facts (what the X.509 says), and the rules that derive status and findings.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

/// Default window, in days, inside which a certificate counts as `expiring`.
pub const DEFAULT_EXPIRY_WINDOW_DAYS: i64 = 30;

/// The immutable facts of one X.509 certificate, as parsed from its DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// SHA-256 of the DER, lowercase hex without colons: the certificate's identity.
    pub fingerprint_sha256: String,
    /// Serial number as lowercase hex, the way `openssl x509 -serial` prints it.
    pub serial_number: String,
    /// Subject as an RFC 4514 string.
    pub subject: String,
    /// Issuer as an RFC 4514 string.
    pub issuer: String,
    /// Common name of the subject, if any.
    pub common_name: Option<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub sans: Vec<San>,
    pub key: KeyInfo,
    /// Signature algorithm name, e.g. `sha256WithRSAEncryption`, `ecdsa-with-SHA256`.
    pub signature_algorithm: String,
    /// basicConstraints cA=TRUE.
    pub is_ca: bool,
    /// Subject equals issuer (DER) and the authority key id, if any, is the subject key id.
    /// The signature is not checked.
    pub self_signed: bool,
    /// The DER encoding itself.
    pub der: Vec<u8>,
}

/// One subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct San {
    #[serde(rename = "type")]
    pub kind: SanType,
    pub value: String,
}

/// Kinds of subject alternative names the platform records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SanType {
    Dns,
    Ip,
    Email,
    Uri,
}

/// The certificate's public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyInfo {
    #[serde(rename = "type")]
    pub kind: KeyType,
    /// Key size in bits (modulus for RSA, field size for EC).
    pub bits: Option<u32>,
    /// Named curve for EC keys, e.g. `P-256`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curve: Option<String>,
}

/// Public key algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Rsa,
    Ec,
    Ed25519,
    Ed448,
    Dsa,
    Other,
}

impl KeyType {
    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Rsa => "rsa",
            KeyType::Ec => "ec",
            KeyType::Ed25519 => "ed25519",
            KeyType::Ed448 => "ed448",
            KeyType::Dsa => "dsa",
            KeyType::Other => "other",
        }
    }

    /// Parses the API name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Rsa, Self::Ec, Self::Ed25519, Self::Ed448, Self::Dsa, Self::Other]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// Where a certificate was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LocationKind {
    /// A TLS endpoint: host:port and SNI.
    Endpoint,
    /// A file on a host.
    File,
    /// A Kubernetes secret.
    K8s,
    /// A target of a host agent (`<agent>/<target>`), where a deployment put it and a TLS
    /// handshake saw it served.
    Agent,
}

impl LocationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LocationKind::Endpoint => "endpoint",
            LocationKind::File => "file",
            LocationKind::K8s => "k8s",
            LocationKind::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Endpoint, Self::File, Self::K8s, Self::Agent].into_iter().find(|k| k.as_str() == s)
    }
}

/// Lifecycle status derived from validity and the time of evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CertificateStatus {
    Valid,
    Expiring,
    Expired,
    NotYetValid,
    /// Revoked by its CA through the platform (takes precedence over the others).
    Revoked,
}

impl CertificateStatus {
    pub const ALL: [CertificateStatus; 5] =
        [Self::Valid, Self::Expiring, Self::Expired, Self::NotYetValid, Self::Revoked];

    pub fn as_str(self) -> &'static str {
        match self {
            CertificateStatus::Valid => "valid",
            CertificateStatus::Expiring => "expiring",
            CertificateStatus::Expired => "expired",
            CertificateStatus::NotYetValid => "not_yet_valid",
            CertificateStatus::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A problem worth a person's attention, found by looking at one certificate.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    Expired,
    NotYetValid,
    Expiring,
    WeakRsaKey,
    Sha1Signature,
    Md5Signature,
    SelfSignedLeaf,
    NoSan,
    CaCertificate,
    /// Issued for longer than the owner's policy allows (a CA that ignored the lifetime asked
    /// for): recorded when the certificate is stored, not derived from its facts.
    ValidityExceedsPolicy,
    /// Issued for longer than was asked; recorded when the certificate is stored.
    ValidityExceedsRequest,
    /// Served by an endpoint under a name it is not valid for (a network scan saw it).
    NameMismatch,
    /// Served without the intermediates needed to reach its root (a network scan saw it).
    IncompleteChain,
    /// Served with a chain that leads to no trusted root (a network scan saw it).
    UntrustedChain,
    /// Served by an endpoint that still accepts TLS 1.0 or 1.1 (a network scan probed it).
    LegacyTls,
}

impl Finding {
    /// Every finding. New ones go at the end: the store keeps fixed findings as bits by
    /// position.
    pub const ALL: [Finding; 15] = [
        Self::Expired,
        Self::NotYetValid,
        Self::Expiring,
        Self::WeakRsaKey,
        Self::Sha1Signature,
        Self::Md5Signature,
        Self::SelfSignedLeaf,
        Self::NoSan,
        Self::CaCertificate,
        Self::ValidityExceedsPolicy,
        Self::ValidityExceedsRequest,
        Self::NameMismatch,
        Self::IncompleteChain,
        Self::UntrustedChain,
        Self::LegacyTls,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Finding::Expired => "expired",
            Finding::NotYetValid => "not_yet_valid",
            Finding::Expiring => "expiring",
            Finding::WeakRsaKey => "weak_rsa_key",
            Finding::Sha1Signature => "sha1_signature",
            Finding::Md5Signature => "md5_signature",
            Finding::SelfSignedLeaf => "self_signed_leaf",
            Finding::NoSan => "no_san",
            Finding::CaCertificate => "ca_certificate",
            Finding::ValidityExceedsPolicy => "validity_exceeds_policy",
            Finding::ValidityExceedsRequest => "validity_exceeds_request",
            Finding::NameMismatch => "name_mismatch",
            Finding::IncompleteChain => "incomplete_chain",
            Finding::UntrustedChain => "untrusted_chain",
            Finding::LegacyTls => "legacy_tls",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Findings a network scan records on the endpoint that served the certificate; the
    /// certificate carries those of the endpoints still serving it.
    pub const ENDPOINT: [Finding; 4] =
        [Self::NameMismatch, Self::IncompleteChain, Self::UntrustedChain, Self::LegacyTls];

    /// Findings that depend on the time of evaluation; the others are fixed facts.
    pub fn is_time_dependent(self) -> bool {
        matches!(self, Finding::Expired | Finding::NotYetValid | Finding::Expiring)
    }
}

/// How much longer than asked a certificate may run before it counts as exceeding: CAs
/// backdate `notBefore` (Let's Encrypt by an hour) and round.
pub const VALIDITY_SLACK_SECS: i64 = 3_600 + 300;

/// Findings about a certificate's lifetime against what was asked (`requested_secs`) and the
/// policy's longest (`policy_max_secs`, none when the policy has no limit).
pub fn validity_findings(
    facts: &CertificateFacts,
    requested_secs: i64,
    policy_max_secs: Option<i64>,
) -> Vec<Finding> {
    let lifetime = (facts.not_after - facts.not_before).whole_seconds();
    let mut findings = Vec::new();
    if policy_max_secs.is_some_and(|max| lifetime > max.saturating_add(VALIDITY_SLACK_SECS)) {
        findings.push(Finding::ValidityExceedsPolicy);
    }
    if requested_secs > 0 && lifetime > requested_secs.saturating_add(VALIDITY_SLACK_SECS) {
        findings.push(Finding::ValidityExceedsRequest);
    }
    findings
}

/// Status and findings of a certificate at `now`, with `window` as the expiring horizon.
pub fn evaluate(
    facts: &CertificateFacts,
    now: OffsetDateTime,
    window: Duration,
) -> (CertificateStatus, Vec<Finding>) {
    let status = status_at(facts.not_before, facts.not_after, now, window);
    let mut findings = static_findings(facts);
    match status {
        CertificateStatus::Expired => findings.push(Finding::Expired),
        CertificateStatus::NotYetValid => findings.push(Finding::NotYetValid),
        CertificateStatus::Expiring => findings.push(Finding::Expiring),
        CertificateStatus::Valid | CertificateStatus::Revoked => {}
    }
    findings.sort();
    (status, findings)
}

/// Status from validity alone.
pub fn status_at(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
    window: Duration,
) -> CertificateStatus {
    if now < not_before {
        CertificateStatus::NotYetValid
    } else if now > not_after {
        CertificateStatus::Expired
    } else if not_after - now <= window {
        CertificateStatus::Expiring
    } else {
        CertificateStatus::Valid
    }
}

/// Findings that do not change with time.
pub fn static_findings(facts: &CertificateFacts) -> Vec<Finding> {
    let mut findings = Vec::new();
    if facts.key.kind == KeyType::Rsa && facts.key.bits.is_some_and(|b| b < 2048) {
        findings.push(Finding::WeakRsaKey);
    }
    let sig = facts.signature_algorithm.to_ascii_lowercase();
    if sig.contains("sha1") || sig.contains("sha-1") {
        findings.push(Finding::Sha1Signature);
    }
    if sig.contains("md5") || sig.contains("md2") {
        findings.push(Finding::Md5Signature);
    }
    if facts.is_ca {
        findings.push(Finding::CaCertificate);
    } else {
        if facts.self_signed {
            findings.push(Finding::SelfSignedLeaf);
        }
        if facts.sans.is_empty() {
            findings.push(Finding::NoSan);
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn facts() -> CertificateFacts {
        CertificateFacts {
            fingerprint_sha256: "00".repeat(32),
            serial_number: "01".into(),
            subject: "CN=example.com".into(),
            issuer: "CN=Example CA".into(),
            common_name: Some("example.com".into()),
            not_before: datetime!(2026-01-01 0:00 UTC),
            not_after: datetime!(2026-12-31 0:00 UTC),
            sans: vec![San { kind: SanType::Dns, value: "example.com".into() }],
            key: KeyInfo { kind: KeyType::Rsa, bits: Some(2048), curve: None },
            signature_algorithm: "sha256WithRSAEncryption".into(),
            is_ca: false,
            self_signed: false,
            der: vec![],
        }
    }

    #[test]
    fn status_follows_validity_and_window() {
        let f = facts();
        let window = Duration::days(30);
        let at = |t| status_at(f.not_before, f.not_after, t, window);
        assert_eq!(at(datetime!(2025-12-31 0:00 UTC)), CertificateStatus::NotYetValid);
        assert_eq!(at(datetime!(2026-06-01 0:00 UTC)), CertificateStatus::Valid);
        assert_eq!(at(datetime!(2026-12-15 0:00 UTC)), CertificateStatus::Expiring);
        assert_eq!(at(datetime!(2027-01-01 0:00 UTC)), CertificateStatus::Expired);
    }

    #[test]
    fn findings_name_every_weakness() {
        let mut f = facts();
        f.key.bits = Some(1024);
        f.signature_algorithm = "sha1WithRSAEncryption".into();
        f.self_signed = true;
        f.sans.clear();
        let (status, findings) = evaluate(&f, datetime!(2027-02-01 0:00 UTC), Duration::days(30));
        assert_eq!(status, CertificateStatus::Expired);
        assert_eq!(
            findings,
            vec![
                Finding::Expired,
                Finding::WeakRsaKey,
                Finding::Sha1Signature,
                Finding::SelfSignedLeaf,
                Finding::NoSan
            ]
        );
    }

    #[test]
    fn ca_certificates_are_not_flagged_as_self_signed_leaves() {
        let mut f = facts();
        f.is_ca = true;
        f.self_signed = true;
        f.sans.clear();
        assert_eq!(static_findings(&f), vec![Finding::CaCertificate]);
    }

    #[test]
    fn a_lifetime_longer_than_asked_or_allowed_is_named() {
        let mut f = facts();
        f.not_after = f.not_before + Duration::days(1825);
        let day = 86_400;
        assert_eq!(
            validity_findings(&f, 90 * day, Some(90 * day)),
            vec![Finding::ValidityExceedsPolicy, Finding::ValidityExceedsRequest]
        );
        assert_eq!(validity_findings(&f, 90 * day, None), vec![Finding::ValidityExceedsRequest]);
        // Backdated by an hour (Let's Encrypt): still what was asked.
        f.not_after = f.not_before + Duration::days(90) + Duration::hours(1);
        assert!(validity_findings(&f, 90 * day, Some(90 * day)).is_empty());
    }

    #[test]
    fn names_round_trip() {
        for s in CertificateStatus::ALL {
            assert_eq!(CertificateStatus::parse(s.as_str()), Some(s));
        }
        for f in Finding::ALL {
            assert_eq!(Finding::parse(f.as_str()), Some(f));
        }
    }
}
