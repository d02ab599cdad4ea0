//! The Vault / OpenBao PKI adapter (kind `vault_pki`): signs CSRs with `<mount>/sign/<role>`,
//! revokes by serial (or by the certificate itself, for `no_store` roles), and reports Vault's
//! health, seal state, issuer chain and the role's limits.
//!
//! Vault has no idempotency key, so every certificate it signs is recorded in a [`CaLedger`]
//! by request id: a retried request gets the first certificate back, never a second one.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cmp_ca::{
    AdapterStatus, CaAdapter, CaError, CaLedger, Capabilities, IssuedCertificate, LedgerEntry,
    Profile, RevocationReason, SignRequest, Usage,
};
use cmp_domain::Clock;
use cmp_pki::CsrInfo;
use cmp_vault::{PkiRole, Revoke, VaultClient, VaultError};
use serde::{Deserialize, Serialize};

/// Kind name of this adapter in the `adapters` table.
pub const KIND: &str = "vault_pki";

/// How long a role's limits are trusted before they are read again.
const ROLE_CACHE: Duration = Duration::from_secs(30);

/// Which PKI engine and role to sign with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultPkiTarget {
    /// The PKI engine's mount path.
    #[serde(default = "default_mount")]
    pub mount: String,
    /// The role that signs.
    pub role: String,
}

fn default_mount() -> String {
    "pki".into()
}

/// One Vault PKI role, as a CA.
pub struct VaultPki {
    ca_id: String,
    client: Arc<VaultClient>,
    target: VaultPkiTarget,
    ledger: Arc<dyn CaLedger>,
    clock: Arc<dyn Clock>,
    role: Mutex<Option<(Instant, PkiRole)>>,
}

impl std::fmt::Debug for VaultPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultPki")
            .field("ca_id", &self.ca_id)
            .field("address", &self.client.shown_address())
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Vault's failures as CA errors: what a retry can fix stays retryable. (A function, not a
/// `From`: neither type is this crate's.)
pub fn ca_error(e: VaultError) -> CaError {
    if e.is_retryable() {
        return CaError::Unavailable(e.to_string());
    }
    match e {
        VaultError::Protocol(_) => CaError::Internal(e.to_string()),
        _ => CaError::Refused(e.to_string()),
    }
}

fn der_of(pem_text: &str) -> Result<Vec<u8>, CaError> {
    pem::parse(pem_text).map(pem::Pem::into_contents).map_err(|e| {
        CaError::Internal(format!("Vault returned a certificate that is not PEM: {e}"))
    })
}

/// Lowercase hex without separators, padded to whole bytes.
fn plain_serial(serial: &str) -> String {
    let hex: String =
        serial.trim().chars().filter(|c| *c != ':').map(|c| c.to_ascii_lowercase()).collect();
    if hex.len() % 2 == 1 { format!("0{hex}") } else { hex }
}

/// Vault's serial form: colon-separated byte pairs.
fn colon_serial(plain: &str) -> String {
    plain.as_bytes().chunks(2).map(|p| String::from_utf8_lossy(p)).collect::<Vec<_>>().join(":")
}

impl VaultPki {
    pub fn new(
        ca_id: &str,
        client: Arc<VaultClient>,
        target: VaultPkiTarget,
        ledger: Arc<dyn CaLedger>,
        clock: Arc<dyn Clock>,
    ) -> Result<VaultPki, CaError> {
        cmp_vault::check_path_segment("mount", &target.mount, true).map_err(ca_error)?;
        cmp_vault::check_path_segment("role", &target.role, false).map_err(ca_error)?;
        Ok(VaultPki {
            ca_id: ca_id.to_string(),
            client,
            target,
            ledger,
            clock,
            role: Mutex::default(),
        })
    }

    /// Checks that Vault answers unsealed, accepts the credentials, and has the role and an
    /// issuer: what must hold before CMP relies on this adapter.
    pub async fn check(&self) -> Result<(), CaError> {
        self.client.check().await.map_err(ca_error)?;
        self.role(true).await?;
        self.chain().await?;
        Ok(())
    }

    /// The logged-in client (for agent tokens on the same Vault).
    pub fn client(&self) -> &Arc<VaultClient> {
        &self.client
    }

    /// The mount and role this adapter signs with.
    pub fn target(&self) -> &VaultPkiTarget {
        &self.target
    }

    /// The role's limits, read at most every [`ROLE_CACHE`].
    async fn role(&self, fresh: bool) -> Result<PkiRole, CaError> {
        if !fresh
            && let Ok(cached) = self.role.lock()
            && let Some((read_at, role)) = cached.as_ref()
            && read_at.elapsed() < ROLE_CACHE
        {
            return Ok(role.clone());
        }
        let role =
            self.client.pki_role(&self.target.mount, &self.target.role).await.map_err(ca_error)?;
        if let Ok(mut cached) = self.role.lock() {
            *cached = Some((Instant::now(), role.clone()));
        }
        Ok(role)
    }

    async fn chain(&self) -> Result<Vec<Vec<u8>>, CaError> {
        let chain = self.client.pki_ca_chain(&self.target.mount).await.map_err(ca_error)?;
        pem::parse_many(chain.as_bytes())
            .map(|blocks| blocks.into_iter().map(pem::Pem::into_contents).collect())
            .map_err(|e| CaError::Internal(format!("Vault's CA chain is not PEM: {e}")))
    }

    /// Refuses before signing what Vault would sign differently from what was asked.
    fn check_request(
        &self,
        role: &PkiRole,
        csr: &CsrInfo,
        profile: &Profile,
        cn: &str,
    ) -> Result<(), CaError> {
        let role_name = &self.target.role;
        if role.use_csr_common_name && csr.common_name.as_deref() != Some(cn) {
            return Err(CaError::Refused(format!(
                "role {role_name} takes the common name from the CSR (use_csr_common_name), and \
                 the CSR's {:?} is not the requested {cn:?}; set use_csr_common_name=false on the \
                 role so that names come from the checked request",
                csr.common_name.as_deref().unwrap_or("")
            )));
        }
        let wanted: BTreeSet<String> = profile.dns_names.iter().cloned().collect();
        let in_csr: BTreeSet<String> = csr.dns_names.iter().cloned().collect();
        let wanted_ips: BTreeSet<IpAddr> = profile.ip_addresses.iter().copied().collect();
        let csr_ips: BTreeSet<IpAddr> = csr.ip_addresses.iter().copied().collect();
        if role.use_csr_sans && (wanted != in_csr || wanted_ips != csr_ips) {
            return Err(CaError::Refused(format!(
                "role {role_name} takes the names from the CSR (use_csr_sans), and the CSR's \
                 names differ from the requested ones; set use_csr_sans=false on the role"
            )));
        }
        for usage in &profile.usages {
            let (allowed, flag) = match usage {
                Usage::ServerAuth => (role.server_flag, "server_flag"),
                Usage::ClientAuth => (role.client_flag, "client_flag"),
            };
            if !allowed {
                return Err(CaError::Refused(format!("role {role_name} does not set {flag}")));
            }
        }
        if role.max_ttl_secs > 0 && profile.validity_secs > role.max_ttl_secs {
            return Err(CaError::Refused(format!(
                "a lifetime of {} s is over role {role_name}'s max_ttl of {} s",
                profile.validity_secs, role.max_ttl_secs
            )));
        }
        Ok(())
    }

    /// Signs at Vault; returns the ledger entry and the chain Vault sent with the certificate.
    async fn sign(&self, request: &SignRequest) -> Result<(LedgerEntry, Vec<Vec<u8>>), CaError> {
        let csr =
            cmp_pki::parse_csr(&request.csr_der).map_err(|e| CaError::InvalidCsr(e.to_string()))?;
        let profile = &request.profile;
        let cn = profile
            .common_name
            .clone()
            .or_else(|| profile.dns_names.first().cloned())
            .or_else(|| profile.ip_addresses.first().map(ToString::to_string))
            .ok_or_else(|| CaError::Refused("Vault needs at least one name".into()))?;
        let role = self.role(false).await?;
        self.check_request(&role, &csr, profile, &cn)?;
        let csr_pem = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", request.csr_der.clone()));
        let ip_sans: Vec<String> = profile.ip_addresses.iter().map(ToString::to_string).collect();
        let call = cmp_vault::SignRequest {
            csr_pem: &csr_pem,
            common_name: &cn,
            alt_names: &profile.dns_names,
            ip_sans: &ip_sans,
            ttl_secs: profile.validity_secs,
        };
        let now = self.clock.now();
        let signed = self
            .client
            .pki_sign(&self.target.mount, &self.target.role, &call)
            .await
            .map_err(ca_error)?;
        let der = der_of(&signed.certificate_pem)?;
        let facts = cmp_pki::parse_certificate(&der).map_err(|e| {
            CaError::Internal(format!("Vault returned an unreadable certificate: {e}"))
        })?;
        // Vault cuts a lifetime down to a limit it knows (mount, issuer) with only a warning.
        let lifetime = (facts.not_after - now).whole_seconds();
        if lifetime < profile.validity_secs - 300 {
            let _ = self
                .client
                .pki_revoke(&self.target.mount, Revoke::Certificate(&signed.certificate_pem))
                .await;
            return Err(CaError::Refused(format!(
                "Vault would issue {lifetime} s instead of the requested {} s ({}); the \
                 certificate it made was revoked",
                profile.validity_secs,
                signed.warnings.join("; ")
            )));
        }
        let chain = signed.ca_chain_pem.iter().map(|pem| der_of(pem)).collect::<Result<_, _>>()?;
        let entry = LedgerEntry {
            ca_id: self.ca_id.clone(),
            serial: facts.serial_number,
            request_id: request.request_id.clone(),
            certificate_der: der,
            not_after: facts.not_after.unix_timestamp(),
            revoked_at: None,
            revocation_reason: None,
        };
        Ok((entry, chain))
    }
}

#[async_trait]
impl CaAdapter for VaultPki {
    /// The ledger's certificate for a known request id; otherwise signs at Vault and records.
    async fn create_certificate(
        &self,
        request: &SignRequest,
    ) -> Result<IssuedCertificate, CaError> {
        let (recorded, chain_der) =
            match self.ledger.find_by_request(&self.ca_id, &request.request_id).await? {
                Some(entry) => (entry, self.chain().await?),
                None => {
                    let (entry, chain) = self.sign(request).await?;
                    let recorded = self.ledger.record_issued(&entry).await?;
                    if recorded.serial != entry.serial {
                        // Another worker signed the same request first: ours is never used.
                        let superseded = RevocationReason::Superseded;
                        let _ = self.revoke_certificate(&entry.serial, superseded).await;
                    }
                    (recorded, chain)
                }
            };
        Ok(IssuedCertificate::recorded(recorded, chain_der))
    }

    /// Revokes by serial; for a certificate Vault did not store (`no_store` roles), by the
    /// certificate from the ledger. Vault's CRL carries no reason: the reason stays in CMP.
    async fn revoke_certificate(
        &self,
        serial: &str,
        reason: RevocationReason,
    ) -> Result<(), CaError> {
        let serial = plain_serial(serial);
        let mount = &self.target.mount;
        match self.client.pki_revoke(mount, Revoke::Serial(&colon_serial(&serial))).await {
            Ok(()) => {}
            Err(VaultError::Rejected { message, .. }) if message.contains("not found") => {
                let entry = self
                    .ledger
                    .find_by_serial(&self.ca_id, &serial)
                    .await?
                    .ok_or_else(|| CaError::UnknownSerial(serial.clone()))?;
                let certificate = pem::encode(&pem::Pem::new("CERTIFICATE", entry.certificate_der));
                self.client
                    .pki_revoke(mount, Revoke::Certificate(&certificate))
                    .await
                    .map_err(ca_error)?;
            }
            Err(e) => return Err(ca_error(e)),
        }
        let now = self.clock.now().unix_timestamp();
        match self.ledger.revoke(&self.ca_id, &serial, reason, now).await {
            // Vault revokes idempotently; a serial CMP never signed may still be Vault's.
            Ok(()) | Err(CaError::AlreadyRevoked(_) | CaError::UnknownSerial(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Healthy when Vault is unsealed, the role is readable and the issuer is valid.
    async fn get_status(&self) -> AdapterStatus {
        let mut capabilities = Capabilities {
            supports_csr: true,
            supports_revocation: true,
            publishes_crl: true,
            answers_ocsp: true,
            max_validity_secs: 0,
            key_types: Vec::new(),
            // The ttl asked is sent; Vault refuses (or caps at the role's max, which
            // max_validity_secs shows) rather than extends it.
            honours_validity: true,
            issued_validity_secs: None,
        };
        let where_ = format!(
            "{}/roles/{} at {}",
            self.target.mount,
            self.target.role,
            self.client.shown_address()
        );
        let unhealthy = |message: String, capabilities| AdapterStatus {
            healthy: false,
            message,
            capabilities,
            chain_der: Vec::new(),
        };
        match self.client.health().await {
            Ok(health) if health.sealed => {
                return unhealthy(
                    format!("Vault at {} is sealed", self.client.shown_address()),
                    capabilities,
                );
            }
            Ok(_) => {}
            Err(e) => return unhealthy(e.to_string(), capabilities),
        }
        let role = match self.role(true).await {
            Ok(role) => role,
            Err(e) => return unhealthy(format!("{where_}: {e}"), capabilities),
        };
        let chain = match self.chain().await {
            Ok(chain) => chain,
            Err(e) => return unhealthy(format!("{where_}: {e}"), capabilities),
        };
        let Some(issuer) = chain.first().and_then(|der| cmp_pki::parse_certificate(der).ok())
        else {
            return unhealthy(format!("{where_}: the mount has no readable issuer"), capabilities);
        };
        let now = self.clock.now();
        let issuer_left = (issuer.not_after - now).whole_seconds().max(0);
        capabilities.max_validity_secs = match role.max_ttl_secs {
            0 => issuer_left,
            max => max.min(issuer_left),
        };
        capabilities.key_types = match role.key_type.as_str() {
            "any" => ["rsa", "ec", "ed25519"].map(String::from).to_vec(),
            one => vec![one.to_string()],
        };
        let issuer_name = issuer.common_name.unwrap_or(issuer.subject);
        AdapterStatus {
            healthy: issuer_left > 0,
            message: format!(
                "{where_}; issuer {issuer_name} valid until {}",
                issuer.not_after.date()
            ),
            capabilities,
            chain_der: chain,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_convert_both_ways() {
        assert_eq!(plain_serial("54:55:9B:d2"), "54559bd2");
        assert_eq!(plain_serial("abc"), "0abc");
        assert_eq!(colon_serial("54559bd2"), "54:55:9b:d2");
    }
}
