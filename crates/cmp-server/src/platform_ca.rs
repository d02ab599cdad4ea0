//! The platform's own CAs: roots that CMP keeps for itself (not adapters, never issuing to
//! users). One signs `cmpd`'s server certificate in `http.tls.mode = "auto"`; the agent CA
//! signs the client certificates of enrolled agents, and is the only root their mTLS trusts.
//! Their keys are in the secret store, so replicas share them; the TLS root is exported for
//! clients.

use anyhow::Context;
use cmp_secrets::{SecretBytes, SecretError, SecretStore};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

const CERT_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
/// File in the data directory that holds the CA certificate, for `cmpctl --ca-file`.
pub const CA_FILE: &str = "ca.pem";
/// Lifetime of the platform root.
const CA_LIFETIME: Duration = Duration::days(3650);
/// Lifetime of a server certificate, and how long before its end it is replaced.
const SERVER_LIFETIME: Duration = Duration::days(30);
pub const SERVER_RENEW_BEFORE: Duration = Duration::days(10);
/// Lifetime of an agent's client certificate (the agent renews it at two thirds).
pub const AGENT_LIFETIME: Duration = Duration::days(30);

/// What a platform CA is for: its secret's name and its certificate's common name.
#[derive(Debug, Clone, Copy)]
pub enum CaPurpose {
    /// `cmpd`'s own server certificates.
    Tls,
    /// Enrolled agents' client certificates.
    Agents,
}

impl CaPurpose {
    fn secret(self) -> &'static str {
        match self {
            CaPurpose::Tls => "platform/ca",
            CaPurpose::Agents => "platform/agent-ca",
        }
    }

    fn common_name(self) -> &'static str {
        match self {
            CaPurpose::Tls => "CMP Platform CA",
            CaPurpose::Agents => "CMP Agent CA",
        }
    }
}

/// The platform CA, loaded or made.
pub struct PlatformCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A server certificate just issued.
pub struct IssuedServerCert {
    /// Leaf then the platform root.
    pub chain_pem: String,
    pub key_pem: zeroize::Zeroizing<String>,
    pub not_after: OffsetDateTime,
}

impl PlatformCa {
    /// Loads the CA from the secret store, or makes it on the first start. Key and certificate
    /// are one secret, written at once, so that replicas starting together cannot store one's
    /// key beside another's certificate. (Such replicas may each make a CA; what was stored
    /// last is what they all use from their next start.)
    pub async fn load_or_create(
        secrets: &dyn SecretStore,
        purpose: CaPurpose,
        now: OffsetDateTime,
    ) -> anyhow::Result<PlatformCa> {
        let secret = purpose.secret();
        match secrets.get(secret).await {
            Ok(stored) => Self::from_stored(&stored),
            Err(SecretError::NotFound(_)) => {
                let made = Self::create(purpose, now)?;
                let stored = format!("{}{}", made.issuer.key().serialize_pem(), made.cert_pem);
                secrets
                    .put(secret, &SecretBytes::new(stored.into_bytes()))
                    .await
                    .context("while keeping the platform CA")?;
                tracing::info!(ca = purpose.common_name(), "made a platform CA");
                let stored = secrets.get(secret).await.context("while reading the platform CA")?;
                Self::from_stored(&stored)
            }
            Err(e) => Err(e).context("while reading the platform CA"),
        }
    }

    /// The CA from its secret: the key's PEM, then the certificate's.
    fn from_stored(stored: &SecretBytes) -> anyhow::Result<PlatformCa> {
        let text = std::str::from_utf8(stored.expose()).context("platform CA secret")?;
        let at = text.find(CERT_BEGIN).context("the platform CA secret holds no certificate")?;
        let (key_pem, cert_pem) = text.split_at(at);
        let key = KeyPair::from_pem(key_pem).context("while reading the platform CA key")?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)
            .context("while reading the platform CA certificate")?;
        Ok(PlatformCa { cert_pem: cert_pem.to_string(), issuer })
    }

    fn create(purpose: CaPurpose, now: OffsetDateTime) -> anyhow::Result<PlatformCa> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, purpose.common_name());
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = now - Duration::hours(1);
        params.not_after = now + CA_LIFETIME;
        let key = KeyPair::generate().context("while making the platform CA key")?;
        let cert = params.self_signed(&key).context("while signing the platform CA")?;
        Ok(PlatformCa { cert_pem: cert.pem(), issuer: Issuer::new(params, key) })
    }

    /// The CA certificate, PEM: what clients trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A fresh key and server certificate for `names` (DNS names or IP addresses).
    pub fn issue_server_certificate(
        &self,
        names: &[String],
        now: OffsetDateTime,
    ) -> anyhow::Result<IssuedServerCert> {
        let mut params = CertificateParams::new(names.to_vec())
            .context("http.tls.auto_names holds a name that is neither DNS nor IP")?;
        params.distinguished_name = DistinguishedName::new();
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, first.as_str());
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + SERVER_LIFETIME;
        let key = KeyPair::generate().context("while making the server key")?;
        let cert =
            params.signed_by(&key, &self.issuer).context("while signing the server certificate")?;
        Ok(IssuedServerCert {
            chain_pem: format!("{}{}", cert.pem(), self.cert_pem),
            key_pem: zeroize::Zeroizing::new(key.serialize_pem()),
            not_after: params.not_after,
        })
    }
}

/// A client certificate just issued to an agent.
pub struct IssuedClientCert {
    pub cert_pem: String,
    /// SHA-256 of its DER, lowercase hex: how the server knows the agent on each call.
    pub fingerprint: String,
    pub not_after: OffsetDateTime,
}

impl PlatformCa {
    /// A client certificate for agent `name` on the public key of `csr_der` (whose signature the
    /// caller has checked). Only the key is taken from the CSR: the name and uses are the CA's.
    pub fn issue_client_certificate(
        &self,
        csr_der: &[u8],
        name: &str,
        now: OffsetDateTime,
    ) -> anyhow::Result<IssuedClientCert> {
        let csr = rcgen::CertificateSigningRequestParams::from_der(&csr_der.to_vec().into())
            .context("while reading the agent's CSR")?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + AGENT_LIFETIME;
        let cert = params
            .signed_by(&csr.public_key, &self.issuer)
            .context("while signing the agent's certificate")?;
        Ok(IssuedClientCert {
            fingerprint: cmp_pki::sha256_hex(cert.der()),
            cert_pem: cert.pem(),
            not_after: params.not_after,
        })
    }
}
