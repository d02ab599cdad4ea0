//! The builtin CA (kind `builtin`): a root and an issuing CA kept by CMP itself. Signs CSRs under a profile,
//! records every serial in a [`CaLedger`], revokes, and publishes a CRL and an OCSP responder.
//!
//! Leaves point relying parties at `{base_url}/pki/{name}/crl` (DER CRL),
//! `{base_url}/pki/{name}/ocsp` (OCSP, RFC 6960) and `{base_url}/pki/{name}/ca` (caIssuers:
//! the issuing CA certificate, DER). The server serves those paths from [`BuiltinCa::crl_der`],
//! [`BuiltinCa::ocsp_response`] and [`BuiltinCa::issuing_der`].
//!
//! Signing is synchronous CPU work (microseconds for ECDSA, about a millisecond for RSA-2048
//! CA keys) inside the async methods.

mod config;
mod crl;
mod issuing;
mod leaf;
mod material;
mod ocsp;
mod serial;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use cmp_ca::{
    AdapterStatus, CaAdapter, CaError, CaLedger, Capabilities, IssuedCertificate, LedgerEntry,
    RevocationReason, SignRequest, SignsUnrecorded,
};
use cmp_domain::Clock;
use cmp_pki::CsrInfo;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

pub use config::{BuiltinConfig, KeyAlgorithm};
pub use crl::{CRL_LIFETIME, CRL_REFRESH};
pub use material::{CaMaterial, create_material};
pub use ocsp::OCSP_VALIDITY;

use crl::CrlCache;
use issuing::IssuingCa;
use leaf::{CsrKey, LeafTemplate, LeafUrls};

/// Leaves start this much before the moment they are signed, for clock skew.
pub const LEAF_BACKDATE: Duration = Duration::seconds(60);

/// The builtin CA, loaded and ready to sign.
pub struct BuiltinCa {
    ca_id: String,
    name: String,
    ca: IssuingCa,
    urls: LeafUrls,
    template: LeafTemplate,
    ledger: Arc<dyn CaLedger>,
    clock: Arc<dyn Clock>,
    crl: CrlCache,
}

impl fmt::Debug for BuiltinCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuiltinCa")
            .field("ca_id", &self.ca_id)
            .field("name", &self.name)
            .field("issuing_ca", &self.ca.common_name)
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

impl BuiltinCa {
    /// Loads `material` (parsing the keys once) for the adapter `ca_id`, published under the
    /// URL slug `name` (e.g. `builtin`) below `base_url` (e.g. `http://127.0.0.1:3000`).
    ///
    /// Fails with [`CaError::Internal`] if the slug or URL cannot go into a certificate, or
    /// the material does not hold together (see the checks in `issuing.rs`).
    pub fn new(
        ca_id: String,
        name: String,
        material: &CaMaterial,
        base_url: String,
        ledger: Arc<dyn CaLedger>,
        clock: Arc<dyn Clock>,
    ) -> Result<BuiltinCa, CaError> {
        let slug_ok = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !slug_ok {
            return Err(CaError::Internal(format!(
                "the CA name {name:?} is not a URL slug (letters, digits, '-', '_', '.')"
            )));
        }
        let base = base_url.trim_end_matches('/');
        let url_ok = (base.starts_with("http://") || base.starts_with("https://"))
            && base.bytes().all(|b| b.is_ascii_graphic());
        if !url_ok {
            return Err(CaError::Internal(format!(
                "the base URL {base_url:?} is not an http(s) URL of printable ASCII"
            )));
        }
        let urls = LeafUrls {
            crl: format!("{base}/pki/{name}/crl"),
            ocsp: format!("{base}/pki/{name}/ocsp"),
            ca_issuers: format!("{base}/pki/{name}/ca"),
        };
        Ok(BuiltinCa {
            template: LeafTemplate::new(&urls)?,
            ca: IssuingCa::load(material)?,
            urls,
            ca_id,
            name,
            ledger,
            clock,
            crl: CrlCache::default(),
        })
    }

    /// The adapter id this CA records its serials under.
    pub fn ca_id(&self) -> &str {
        &self.ca_id
    }

    /// The URL slug.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The CRL distribution point written into leaves.
    pub fn crl_url(&self) -> &str {
        &self.urls.crl
    }

    /// The OCSP responder URL written into leaves.
    pub fn ocsp_url(&self) -> &str {
        &self.urls.ocsp
    }

    /// The caIssuers URL written into leaves (serves [`BuiltinCa::issuing_der`]).
    pub fn ca_issuers_url(&self) -> &str {
        &self.urls.ca_issuers
    }

    /// The issuing CA certificate, DER.
    pub fn issuing_der(&self) -> &[u8] {
        &self.ca.issuing_der
    }

    /// The root certificate, DER.
    pub fn root_der(&self) -> &[u8] {
        &self.ca.root_der
    }

    /// Issuing CA then root, PEM.
    pub fn chain_pem(&self) -> String {
        [&self.ca.issuing_der, &self.ca.root_der]
            .into_iter()
            .map(|der| pem::encode(&pem::Pem::new("CERTIFICATE", der.clone())))
            .collect()
    }

    /// When the issuing CA certificate expires.
    pub fn issuing_not_after(&self) -> OffsetDateTime {
        self.ca.not_after
    }

    /// The current CRL, DER: every revoked, unexpired serial of the ledger with its reason,
    /// signed by the issuing CA. Cached; see [`CRL_REFRESH`] for when it is re-signed.
    pub async fn crl_der(&self) -> Result<Vec<u8>, CaError> {
        let now = self.clock.now();
        // Read the epoch first: a revocation while this CRL is built leaves it stale.
        let epoch = self.crl.epoch();
        let revoked = self.ledger.revoked(&self.ca_id, now.unix_timestamp()).await?;
        let content = crl::content_digest(&revoked);
        if let Some(der) = self.crl.fresh(now, content) {
            return Ok(der);
        }
        let der = crl::build_crl(&self.ca, &revoked, now, self.crl.next_number(now))?;
        self.crl.store(der.clone(), now, epoch, content);
        Ok(der)
    }

    /// Answers a DER OCSPRequest with a DER OCSPResponse (always a response: malformed
    /// requests get `malformedRequest`, failures `internalError`). Never panics.
    pub async fn ocsp_response(&self, request_der: &[u8]) -> Vec<u8> {
        let now = self.clock.now();
        ocsp::respond(&self.ca, self.ledger.as_ref(), &self.ca_id, now, request_der).await
    }

    fn issued(&self, entry: LedgerEntry) -> IssuedCertificate {
        let chain_der = vec![self.ca.issuing_der.clone(), self.ca.root_der.clone()];
        IssuedCertificate::recorded(entry, chain_der)
    }

    /// Signs the leaf for `request` at `now`: the checks, then the signature.
    fn sign(&self, request: &SignRequest, now: OffsetDateTime) -> Result<LedgerEntry, CaError> {
        let csr = cmp_pki::parse_csr(&request.csr_der)
            .map_err(|error| CaError::InvalidCsr(error.to_string()))?;
        self.sign_csr(request, &csr, now)
    }

    /// [`Self::sign`] with the CSR parsed and its signature verified.
    fn sign_csr(
        &self,
        request: &SignRequest,
        csr: &CsrInfo,
        now: OffsetDateTime,
    ) -> Result<LedgerEntry, CaError> {
        let key = CsrKey::from_csr(csr)?;
        let validity = request.profile.validity_secs;
        if validity <= 0 {
            return Err(CaError::Refused(format!(
                "the requested lifetime must be positive, not {validity} s"
            )));
        }
        let now = now - Duration::nanoseconds(i64::from(now.nanosecond()));
        let ca_not_after = self.ca.not_after;
        let not_after = now
            .checked_add(Duration::seconds(validity))
            .filter(|not_after| *not_after <= ca_not_after);
        let Some(not_after) = not_after else {
            let until = ca_not_after.format(&Rfc3339).unwrap_or_else(|_| ca_not_after.to_string());
            let room = (ca_not_after - now).whole_seconds().max(0);
            return Err(CaError::Refused(format!(
                "a certificate valid for {validity} s would outlive its issuer (valid until \
                 {until}); at most {room} s can be issued now"
            )));
        };
        let serial = serial::random_serial();
        let params = leaf::leaf_params(
            &request.profile,
            &key,
            &serial,
            now - LEAF_BACKDATE,
            not_after,
            &self.template,
        )?;
        let certificate = params
            .signed_by(&key, &self.ca.issuer)
            .map_err(material::internal("sign the certificate"))?;
        Ok(LedgerEntry {
            ca_id: self.ca_id.clone(),
            serial: hex::encode(serial),
            request_id: request.request_id.clone(),
            certificate_der: certificate.der().to_vec(),
            not_after: not_after.unix_timestamp(),
            revoked_at: None,
            revocation_reason: None,
        })
    }
}

#[async_trait]
impl CaAdapter for BuiltinCa {
    /// Returns the ledger's certificate for a known request id; otherwise verifies the CSR,
    /// signs under the profile and records the serial (a lost race returns the winner).
    async fn create_certificate(
        &self,
        request: &SignRequest,
    ) -> Result<IssuedCertificate, CaError> {
        if let Some(entry) = self.ledger.find_by_request(&self.ca_id, &request.request_id).await? {
            return Ok(self.issued(entry));
        }
        let entry = self.sign(request, self.clock.now())?;
        let recorded = self.ledger.record_issued(&entry).await?;
        Ok(self.issued(recorded))
    }

    /// Revokes through the ledger and makes the next CRL fetch re-sign. The serial is
    /// lowercase hex; uppercase and `:` separators are accepted too.
    async fn revoke_certificate(
        &self,
        serial: &str,
        reason: RevocationReason,
    ) -> Result<(), CaError> {
        let serial: String =
            serial.trim().chars().filter(|c| *c != ':').map(|c| c.to_ascii_lowercase()).collect();
        let now = self.clock.now().unix_timestamp();
        self.ledger.revoke(&self.ca_id, &serial, reason, now).await?;
        self.crl.invalidate();
        Ok(())
    }

    /// Signs without recording: the issuer stores the ledger row with the certificate.
    fn unrecorded(&self) -> Option<&dyn SignsUnrecorded> {
        Some(self)
    }

    /// Healthy while the issuing CA certificate is valid; the longest lifetime is what is
    /// left of it.
    async fn get_status(&self) -> AdapterStatus {
        let now = self.clock.now();
        let date = |t: OffsetDateTime| t.date().to_string();
        let (healthy, message) = if now < self.ca.not_before {
            (false, format!("issuing CA not valid before {}", date(self.ca.not_before)))
        } else if now >= self.ca.not_after {
            (false, format!("issuing CA expired on {}", date(self.ca.not_after)))
        } else {
            (true, format!("issuing CA valid until {}", date(self.ca.not_after)))
        };
        AdapterStatus {
            healthy,
            message,
            capabilities: Capabilities {
                supports_csr: true,
                supports_revocation: true,
                publishes_crl: true,
                answers_ocsp: true,
                max_validity_secs: if healthy {
                    (self.ca.not_after - now).whole_seconds().max(0)
                } else {
                    0
                },
                key_types: ["rsa", "ec", "ed25519"].map(String::from).to_vec(),
                honours_validity: true,
                issued_validity_secs: None,
            },
            chain_der: vec![self.ca.issuing_der.clone(), self.ca.root_der.clone()],
        }
    }
}

impl SignsUnrecorded for BuiltinCa {
    fn sign_unrecorded(
        &self,
        request: &SignRequest,
        csr: Option<&CsrInfo>,
    ) -> Result<(LedgerEntry, IssuedCertificate), CaError> {
        let now = self.clock.now();
        let entry = match csr {
            Some(csr) if csr.der == request.csr_der => self.sign_csr(request, csr, now)?,
            Some(_) => {
                return Err(CaError::InvalidCsr("the parsed CSR is not the request's".into()));
            }
            None => self.sign(request, now)?,
        };
        Ok((entry.clone(), self.issued(entry)))
    }
}
