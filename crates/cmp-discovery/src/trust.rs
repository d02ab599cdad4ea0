//! Judging a presented chain after the fact: does it lead to a trusted root (the system's or
//! the platform's own CAs), does it need intermediates the server did not send, and is the
//! leaf valid for the name asked for. The handshake itself trusts nothing (see `probe.rs`);
//! these checks run on what it read, with webpki, as a browser would.

use rustls::pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};

/// What the scanner trusts, and the intermediates it knows without being sent them.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    anchors: Vec<TrustAnchor<'static>>,
    known_intermediates: Vec<CertificateDer<'static>>,
}

/// Whether a chain leads to a trusted root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainVerdict {
    /// Trusted with what the server sent.
    Trusted,
    /// Trusted only with intermediates the server did not send (the platform's): browsers
    /// without them fail.
    Incomplete,
    /// No path to a trusted root.
    Untrusted,
}

impl TrustStore {
    /// `roots` become trust anchors (unparseable ones are skipped); `intermediates` are CA
    /// certificates used to complete chains that lack them.
    pub fn new(
        roots: impl IntoIterator<Item = CertificateDer<'static>>,
        intermediates: Vec<CertificateDer<'static>>,
    ) -> TrustStore {
        let anchors = roots
            .into_iter()
            .filter_map(|der| webpki::anchor_from_trusted_cert(&der).ok().map(|a| a.to_owned()))
            .collect();
        TrustStore { anchors, known_intermediates: intermediates }
    }

    /// The operating system's roots (`/etc/ssl/certs` on Debian); none when they cannot be read.
    pub fn system_roots() -> Vec<CertificateDer<'static>> {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(%error, "a system root certificate could not be read");
        }
        found.certs
    }

    /// Number of trust anchors.
    pub fn anchor_count(&self) -> usize {
        self.anchors.len()
    }

    /// Judges `chain` (leaf first) at `at`, a time inside the leaf's validity so that an expired
    /// leaf is judged on its path alone (expiry is a finding of its own).
    pub fn judge(&self, chain: &[CertificateDer<'static>], at: UnixTime) -> ChainVerdict {
        let Some((leaf, sent)) = chain.split_first() else {
            return ChainVerdict::Untrusted;
        };
        let Ok(leaf) = EndEntityCert::try_from(leaf) else {
            return ChainVerdict::Untrusted;
        };
        let Some(provider) = rustls::crypto::CryptoProvider::get_default() else {
            return ChainVerdict::Untrusted;
        };
        let verifies = |intermediates: &[CertificateDer<'static>]| {
            leaf.verify_for_usage(
                provider.signature_verification_algorithms.all,
                &self.anchors,
                intermediates,
                at,
                KeyUsage::server_auth(),
                None,
                None,
            )
            .is_ok()
        };
        if verifies(sent) {
            return ChainVerdict::Trusted;
        }
        if !self.known_intermediates.is_empty() {
            let completed: Vec<CertificateDer<'static>> =
                sent.iter().chain(&self.known_intermediates).cloned().collect();
            if verifies(&completed) {
                return ChainVerdict::Incomplete;
            }
        }
        ChainVerdict::Untrusted
    }
}

/// Whether `leaf` is valid for `name` (a DNS name or an address), by RFC 6125 as webpki reads
/// it; `None` when the leaf cannot be read.
pub fn name_matches(leaf: &CertificateDer<'_>, name: &ServerName<'_>) -> Option<bool> {
    let leaf = EndEntityCert::try_from(leaf).ok()?;
    Some(leaf.verify_is_valid_for_subject_name(name).is_ok())
}
