//! ACME Renewal Information (RFC 9773): the CA's suggested renewal window for a certificate.
//! Choosing the moment inside the window is the renewal scheduler's job (cmp-domain); this
//! reads the window and names the certificate the way the CA expects.

use instant_acme::CertificateIdentifier;
use rustls_pki_types::CertificateDer;

use crate::AcmeError;

/// A suggested window, Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalWindow {
    pub start: i64,
    pub end: i64,
    /// Why the CA suggests this window (e.g. a revocation incident), when it says.
    pub explanation_url: Option<String>,
    /// When to ask again (the answer's `Retry-After`).
    pub recheck_at: i64,
}

/// The RFC 9773 identifier of a certificate: `base64url(AKI keyIdentifier).base64url(serial)`.
pub fn certificate_id(certificate_der: &[u8]) -> Result<CertificateIdentifier<'static>, AcmeError> {
    let der = CertificateDer::from(certificate_der);
    CertificateIdentifier::try_from(&der)
        .map(CertificateIdentifier::into_owned)
        .map_err(|e| AcmeError::Config(format!("no ARI identifier for this certificate: {e}")))
}

/// A window the CA sent, checked: one that ends before it starts is ignored, as RFC 9773
/// section 4.2 asks.
pub(crate) fn window_of(
    info: &instant_acme::RenewalInfo,
    recheck_at: i64,
) -> Option<RenewalWindow> {
    let (start, end) = (info.suggested_window.start, info.suggested_window.end);
    (end > start).then(|| RenewalWindow {
        start: start.unix_timestamp(),
        end: end.unix_timestamp(),
        explanation_url: info.explanation_url.clone(),
        recheck_at,
    })
}

/// Reads a `renewalInfo` document as a CA sends it (used with recorded documents in tests, and
/// by anything that fetched one itself).
pub fn parse_renewal_info(
    body: &[u8],
    recheck_at: i64,
) -> Result<Option<RenewalWindow>, AcmeError> {
    let info: instant_acme::RenewalInfo = serde_json::from_slice(body)
        .map_err(|e| AcmeError::Protocol(format!("unreadable renewalInfo: {e}")))?;
    Ok(window_of(&info, recheck_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Let's Encrypt's answer shape (RFC 9773 section 4.2 example).
    const RECORDED: &str = r#"{
        "suggestedWindow": {"start": "2025-01-02T04:00:00Z", "end": "2025-01-03T04:00:00Z"},
        "explanationURL": "https://acme.example.com/docs/ari"
    }"#;

    #[test]
    fn a_recorded_document_gives_its_window() {
        let window = parse_renewal_info(RECORDED.as_bytes(), 1_735_800_000).unwrap().unwrap();
        assert_eq!(window.start, 1_735_790_400);
        assert_eq!(window.end - window.start, 86_400);
        assert_eq!(window.explanation_url.as_deref(), Some("https://acme.example.com/docs/ari"));
        assert_eq!(window.recheck_at, 1_735_800_000);
    }

    #[test]
    fn a_window_that_ends_before_it_starts_is_ignored_and_junk_is_an_error() {
        let backwards = r#"{"suggestedWindow":{"start":"2025-01-03T00:00:00Z",
            "end":"2025-01-02T00:00:00Z"}}"#;
        assert_eq!(parse_renewal_info(backwards.as_bytes(), 0).unwrap(), None);
        assert!(parse_renewal_info(b"{\"suggestedWindow\":{}}", 0).is_err());
    }
}
