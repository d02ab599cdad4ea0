//! The platform's own CA: a root that CMP keeps for itself (not an adapter, never issuing to
//! users), used for `cmpd`'s server certificate in `http.tls.mode = "auto"`. Its key is in the
//! secret store, so replicas share it; its certificate is exported for clients.

use anyhow::Context;
use cmp_secrets::{SecretBytes, SecretError, SecretStore};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// Secret holding the CA's key and certificate.
const SECRET: &str = "platform/ca";
const CERT_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
/// File in the data directory that holds the CA certificate, for `cmpctl --ca-file`.
pub const CA_FILE: &str = "ca.pem";
/// Lifetime of the platform root.
const CA_LIFETIME: Duration = Duration::days(3650);
/// Lifetime of a server certificate, and how long before its end it is replaced.
const SERVER_LIFETIME: Duration = Duration::days(30);
pub const SERVER_RENEW_BEFORE: Duration = Duration::days(10);

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
        now: OffsetDateTime,
    ) -> anyhow::Result<PlatformCa> {
        match secrets.get(SECRET).await {
            Ok(stored) => Self::from_stored(&stored),
            Err(SecretError::NotFound(_)) => {
                let made = Self::create(now)?;
                let stored = format!("{}{}", made.issuer.key().serialize_pem(), made.cert_pem);
                secrets
                    .put(SECRET, &SecretBytes::new(stored.into_bytes()))
                    .await
                    .context("while keeping the platform CA")?;
                tracing::info!("made the platform CA (for CMP's own TLS)");
                let stored = secrets.get(SECRET).await.context("while reading the platform CA")?;
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

    fn create(now: OffsetDateTime) -> anyhow::Result<PlatformCa> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "CMP Platform CA");
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
