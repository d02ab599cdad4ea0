//! The ACME adapter (kind `acme`): any RFC 8555 CA (Let's Encrypt, ZeroSSL, an internal
//! step-ca or Pebble) as a [`CaAdapter`].
//!
//! An order takes seconds and crosses the network several times, so it must survive a restart
//! without leaking or duplicating a certificate (cert-manager#3990): its URL is written to an
//! [`OrderJournal`] as soon as the CA accepts it, and an attempt for the same request resumes
//! that order instead of placing another. The certificate goes to the [`CaLedger`] by request
//! id, like every adapter's.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cmp_acme::{AcmeClient, AcmeError, Order, Solvers};
use cmp_ca::{
    AdapterStatus, CaAdapter, CaError, CaLedger, Capabilities, IssuedCertificate, LedgerEntry,
    RevocationReason, SignRequest,
};
use cmp_domain::{Clock, VALIDITY_SLACK_SECS};

/// Kind name of this adapter in the `adapters` table.
pub const KIND: &str = "acme";

/// Where the URL of each request's order is kept.
#[async_trait]
pub trait OrderJournal: Send + Sync {
    /// The order placed for this request, if any.
    async fn find(&self, ca_id: &str, request_id: &str) -> Result<Option<String>, CaError>;
    /// Records an order; if one was recorded first (a race), returns that one's URL.
    async fn record(&self, ca_id: &str, request_id: &str, url: &str) -> Result<String, CaError>;
}

/// An in-memory journal, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct MemoryJournal {
    orders: Mutex<HashMap<(String, String), String>>,
}

#[async_trait]
impl OrderJournal for MemoryJournal {
    async fn find(&self, ca_id: &str, request_id: &str) -> Result<Option<String>, CaError> {
        let orders =
            self.orders.lock().map_err(|_| CaError::Internal("journal poisoned".into()))?;
        Ok(orders.get(&(ca_id.to_string(), request_id.to_string())).cloned())
    }

    async fn record(&self, ca_id: &str, request_id: &str, url: &str) -> Result<String, CaError> {
        let mut orders =
            self.orders.lock().map_err(|_| CaError::Internal("journal poisoned".into()))?;
        let key = (ca_id.to_string(), request_id.to_string());
        Ok(orders.entry(key).or_insert_with(|| url.to_string()).clone())
    }
}

/// ACME's failures as CA errors: what a retry can fix stays retryable, with the CA's
/// `Retry-After` when it gave one; the CA's problem detail is kept word for word. (A function,
/// not a `From`: neither type is this crate's.)
pub fn ca_error(e: AcmeError) -> CaError {
    let message = e.to_string();
    if e.is_retryable() {
        return match e.retry_at() {
            Some(retry_at) => CaError::Throttled { message, retry_at },
            None => CaError::Unavailable(message),
        };
    }
    match e {
        AcmeError::Protocol(_) => CaError::Internal(message),
        _ => CaError::Refused(message),
    }
}

/// One ACME account at one CA, with its solvers.
pub struct AcmeCa {
    ca_id: String,
    client: Arc<AcmeClient>,
    solvers: Arc<Solvers>,
    ledger: Arc<dyn CaLedger>,
    journal: Arc<dyn OrderJournal>,
    clock: Arc<dyn Clock>,
    /// The last certificate's lifetime, and whether it ran longer than asked.
    last_issued: Mutex<Option<(i64, bool)>>,
}

impl std::fmt::Debug for AcmeCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeCa")
            .field("ca_id", &self.ca_id)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// The names a request orders: DNS names, then IP addresses.
fn order_names(request: &SignRequest) -> Vec<String> {
    let profile = &request.profile;
    let mut names: Vec<String> = profile.dns_names.iter().map(|n| n.to_ascii_lowercase()).collect();
    names.extend(profile.ip_addresses.iter().map(IpAddr::to_string));
    names
}

/// An ACME CA takes the names from the CSR, so the CSR must name exactly what was checked.
fn check_csr(request: &SignRequest, names: &[String]) -> Result<(), CaError> {
    if names.is_empty() {
        return Err(CaError::Refused("an ACME order needs at least one name".into()));
    }
    let csr =
        cmp_pki::parse_csr(&request.csr_der).map_err(|e| CaError::InvalidCsr(e.to_string()))?;
    let mut in_csr: BTreeSet<String> =
        csr.dns_names.iter().map(|n| n.to_ascii_lowercase()).collect();
    in_csr.extend(csr.ip_addresses.iter().map(IpAddr::to_string));
    let wanted: BTreeSet<String> = names.iter().cloned().collect();
    if in_csr != wanted {
        let list = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(", ");
        return Err(CaError::InvalidCsr(format!(
            "an ACME CA issues for the names in the CSR, and the CSR names [{}] where the request \
             asks for [{}]",
            list(&in_csr),
            list(&wanted)
        )));
    }
    Ok(())
}

/// Splits a PEM chain (leaf first) into DER certificates.
fn split_chain(chain_pem: &str) -> Result<(Vec<u8>, Vec<Vec<u8>>), CaError> {
    let blocks = pem::parse_many(chain_pem)
        .map_err(|e| CaError::Internal(format!("the ACME CA sent a chain that is not PEM: {e}")))?;
    let mut ders =
        blocks.into_iter().filter(|b| b.tag() == "CERTIFICATE").map(pem::Pem::into_contents);
    let leaf =
        ders.next().ok_or_else(|| CaError::Internal("the ACME CA sent an empty chain".into()))?;
    Ok((leaf, ders.collect()))
}

impl AcmeCa {
    pub fn new(
        ca_id: &str,
        client: Arc<AcmeClient>,
        solvers: Arc<Solvers>,
        ledger: Arc<dyn CaLedger>,
        journal: Arc<dyn OrderJournal>,
        clock: Arc<dyn Clock>,
    ) -> AcmeCa {
        AcmeCa {
            ca_id: ca_id.to_string(),
            client,
            solvers,
            ledger,
            journal,
            clock,
            last_issued: Mutex::new(None),
        }
    }

    /// The request's order: the one placed before (resumed), or a new one, journaled.
    async fn order(&self, request: &SignRequest) -> Result<Order, CaError> {
        if let Some(url) = self.journal.find(&self.ca_id, &request.request_id).await? {
            return self.client.resume_order(&url).await.map_err(ca_error);
        }
        let names = order_names(request);
        // The lifetime asked, as the end date ACME lets a client ask for (`notAfter`).
        let not_after = (request.profile.validity_secs > 0).then(|| {
            self.clock.now().unix_timestamp().saturating_add(request.profile.validity_secs)
        });
        let replaces = request.replaces.as_deref();
        let order =
            self.client.new_order_until(&names, replaces, not_after).await.map_err(ca_error)?;
        let url = self.journal.record(&self.ca_id, &request.request_id, order.url()).await?;
        if url == order.url() {
            return Ok(order);
        }
        // Another attempt journaled its order first: that one is carried on, ours left unused.
        self.client.resume_order(&url).await.map_err(ca_error)
    }

    /// Carries the request's order to its certificate: the ledger entry and the chain above.
    async fn order_certificate(
        &self,
        request: &SignRequest,
    ) -> Result<(LedgerEntry, Vec<Vec<u8>>), CaError> {
        let names = order_names(request);
        check_csr(request, &names)?;
        let mut order = self.order(request).await?;
        let chosen = request.acme_solver.as_deref();
        let chain = self
            .client
            .complete(&mut order, &self.solvers, chosen, &request.csr_der)
            .await
            .map_err(ca_error)?;
        let (leaf, chain_der) = split_chain(&chain)?;
        let facts = cmp_pki::parse_certificate(&leaf).map_err(|e| {
            CaError::Internal(format!("the ACME CA sent an unreadable certificate: {e}"))
        })?;
        let lifetime = (facts.not_after - facts.not_before).whole_seconds();
        let longer = request.profile.validity_secs > 0
            && lifetime > request.profile.validity_secs.saturating_add(VALIDITY_SLACK_SECS);
        if let Ok(mut last) = self.last_issued.lock() {
            *last = Some((lifetime, longer));
        }
        let entry = LedgerEntry {
            ca_id: self.ca_id.clone(),
            serial: facts.serial_number,
            request_id: request.request_id.clone(),
            certificate_der: leaf,
            not_after: facts.not_after.unix_timestamp(),
            revoked_at: None,
            revocation_reason: None,
        };
        Ok((entry, chain_der))
    }
}

#[async_trait]
impl CaAdapter for AcmeCa {
    /// The ledger's certificate for a known request; otherwise the request's order (resumed if
    /// one was placed) carried to its certificate. The chain is the one the CA sends.
    async fn create_certificate(
        &self,
        request: &SignRequest,
    ) -> Result<IssuedCertificate, CaError> {
        if let Some(entry) = self.ledger.find_by_request(&self.ca_id, &request.request_id).await? {
            // Issued before: the (valid) order gives the chain again; the CA may have dropped
            // the order since, and the certificate stands without it.
            let chain_der = match self.order_certificate(request).await {
                Ok((_, chain)) => chain,
                Err(_) => Vec::new(),
            };
            return Ok(IssuedCertificate::recorded(entry, chain_der));
        }
        let (entry, chain_der) = self.order_certificate(request).await?;
        let recorded = self.ledger.record_issued(&entry).await?;
        Ok(IssuedCertificate::recorded(recorded, chain_der))
    }

    /// Revokes through ACME (signed with the account key) with the reason; the ledger keeps it.
    async fn revoke_certificate(
        &self,
        serial: &str,
        reason: RevocationReason,
    ) -> Result<(), CaError> {
        let entry = self
            .ledger
            .find_by_serial(&self.ca_id, serial)
            .await?
            .ok_or_else(|| CaError::UnknownSerial(serial.to_string()))?;
        match self.client.revoke(&entry.certificate_der, reason.code()).await {
            Ok(()) => {}
            Err(AcmeError::Problem(p)) if p.r#type == "alreadyRevoked" => {
                return Err(CaError::AlreadyRevoked(serial.to_string()));
            }
            Err(e) => return Err(ca_error(e)),
        }
        let now = self.clock.now().unix_timestamp();
        self.ledger.revoke(&self.ca_id, serial, reason, now).await
    }

    /// Healthy when the directory answers; says whether the CA offers ARI and profiles, and
    /// whether it keeps to the lifetime asked (`notAfter` sent, and the last certificate no
    /// longer than asked).
    async fn get_status(&self) -> AdapterStatus {
        let settings = self.client.settings();
        let last = self.last_issued.lock().ok().and_then(|last| *last);
        let sends = self.client.sends_not_after();
        let capabilities = Capabilities {
            supports_csr: true,
            supports_revocation: true,
            key_types: vec!["rsa".into(), "ec".into()],
            honours_validity: sends && !last.is_some_and(|(_, longer)| longer),
            issued_validity_secs: last.map(|(lifetime, _)| lifetime),
            ..Capabilities::default()
        };
        let validity = match (sends, last) {
            (_, Some((_, true))) => "the CA issued longer than asked (notAfter ignored)",
            (true, _) => "asks for the lifetime with notAfter",
            (false, _) => "does not send notAfter: the CA chooses the lifetime",
        };
        match self.client.probe().await {
            Ok(facts) => {
                let mut message = format!(
                    "ACME directory {} answers; account {}; ARI {}",
                    settings.directory_url,
                    self.client.account_url(),
                    if facts.renewal_info { "offered" } else { "not offered" },
                );
                if !facts.profiles.is_empty() {
                    message.push_str(&format!("; profiles {}", facts.profiles.join(", ")));
                }
                message.push_str(&format!("; {validity}"));
                AdapterStatus { healthy: true, message, capabilities, chain_der: Vec::new() }
            }
            Err(e) => AdapterStatus {
                healthy: false,
                message: format!("ACME directory {}: {e}", settings.directory_url),
                capabilities,
                chain_der: Vec::new(),
            },
        }
    }

    /// The CA's ARI window for a certificate, when it offers ARI.
    async fn renewal_window(&self, certificate_der: &[u8]) -> Result<Option<(i64, i64)>, CaError> {
        let window = self.client.renewal_window(certificate_der).await.map_err(ca_error)?;
        Ok(window.map(|w| (w.start, w.end)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmp_ca::{Profile, Usage};

    fn problem(kind: cmp_acme::ProblemKind, retry_after: Option<i64>) -> cmp_acme::Problem {
        cmp_acme::Problem {
            kind,
            r#type: format!("{kind:?}"),
            detail: "the CA's words".into(),
            subproblems: Vec::new(),
            retry_after,
        }
    }

    #[test]
    fn acme_errors_keep_their_retry_time_and_their_finality() {
        let limited = AcmeError::Problem(problem(cmp_acme::ProblemKind::RateLimited, Some(99)));
        let e = ca_error(limited);
        assert_eq!((e.is_retryable(), e.retry_at()), (true, Some(99)));
        assert!(e.to_string().contains("the CA's words"), "{e}");
        let down = ca_error(AcmeError::Unreachable("connection refused".into()));
        assert!(matches!(down, CaError::Unavailable(_)));
        let failed = ca_error(AcmeError::ChallengeFailed {
            challenge: "http-01 for a.example".into(),
            problem: problem(cmp_acme::ProblemKind::Unauthorized, None),
        });
        assert!(matches!(&failed, CaError::Refused(m) if m.contains("http-01 for a.example")));
        assert!(!failed.is_retryable());
        let nonsense = ca_error(AcmeError::Protocol("no certificate URL".into()));
        assert!(matches!(nonsense, CaError::Internal(_)));
    }

    #[test]
    fn the_csr_must_name_exactly_what_was_checked() {
        let mut params = rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let key = rcgen::KeyPair::generate().unwrap();
        let csr_der = params.serialize_request(&key).unwrap().der().to_vec();
        let request = |names: &[&str]| SignRequest {
            request_id: "r".into(),
            csr_der: csr_der.clone(),
            profile: Profile {
                common_name: None,
                dns_names: names.iter().map(|n| n.to_string()).collect(),
                ip_addresses: Vec::new(),
                usages: vec![Usage::ServerAuth],
                validity_secs: 86_400,
            },
            replaces: None,
            acme_solver: None,
        };
        let same = request(&["A.example"]);
        assert!(check_csr(&same, &order_names(&same)).is_ok());
        let other = request(&["a.example", "b.example"]);
        let e = check_csr(&other, &order_names(&other)).unwrap_err();
        assert!(matches!(&e, CaError::InvalidCsr(m) if m.contains("[a.example]")), "{e}");
        let none = request(&[]);
        assert!(matches!(check_csr(&none, &order_names(&none)), Err(CaError::Refused(_))));
    }
}
