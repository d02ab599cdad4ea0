//! The builtin CA's key material: a self-signed root and an issuing CA signed by it, with
//! their PKCS#8 keys. Created once; the server stores it (encrypted) and loads it at start.

use std::fmt;

use cmp_ca::CaError;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256, RsaKeySize,
    SerialNumber,
};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::config::{BuiltinConfig, KeyAlgorithm};
use crate::serial::random_serial;

/// Longest CA lifetime accepted, in days (100 years).
const MAX_VALIDITY_DAYS: i64 = 36_525;
/// X.520's upper bound on a common name.
const MAX_COMMON_NAME_LEN: usize = 64;
/// CA certificates start this much before their creation, for clock skew.
const BACKDATE: Duration = Duration::seconds(60);

/// The root and issuing CA certificates (DER) and keys (PKCS#8 DER, wiped on drop).
///
/// `Debug` never prints the keys.
#[derive(Clone)]
pub struct CaMaterial {
    /// Self-signed root certificate, DER.
    pub root_der: Vec<u8>,
    /// Issuing CA certificate, signed by the root, DER.
    pub issuing_der: Vec<u8>,
    /// The root's private key, PKCS#8 DER. Only needed to re-issue the issuing CA.
    pub root_key_pkcs8: Zeroizing<Vec<u8>>,
    /// The issuing CA's private key, PKCS#8 DER.
    pub issuing_key_pkcs8: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for CaMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaMaterial")
            .field("root_der", &format_args!("{} bytes", self.root_der.len()))
            .field("issuing_der", &format_args!("{} bytes", self.issuing_der.len()))
            .field("root_key_pkcs8", &"[redacted]")
            .field("issuing_key_pkcs8", &"[redacted]")
            .finish()
    }
}

/// Creates a new root and issuing CA.
///
/// The root is self-signed, `pathlen:1`, key usage keyCertSign and cRLSign; the issuing CA is
/// signed by it, `pathlen:0`, same key usages. Both carry subject and authority key
/// identifiers and random positive 20-octet serials, and start 60 s before `now`.
pub fn create_material(config: &BuiltinConfig, now: OffsetDateTime) -> Result<CaMaterial, CaError> {
    let base = config.common_name.trim();
    if base.is_empty() {
        return Err(CaError::Refused("the CA common name is empty".into()));
    }
    let root_name = format!("{base} Root CA");
    let issuing_name = format!("{base} Issuing CA");
    if issuing_name.chars().count() > MAX_COMMON_NAME_LEN {
        return Err(CaError::Refused(format!(
            "the CA common name \"{base}\" is too long (CA names must stay within \
             {MAX_COMMON_NAME_LEN} characters)"
        )));
    }
    let root_days = validity_days("root", config.root_validity_days)?;
    let issuing_days = validity_days("issuing CA", config.issuing_validity_days)?;
    if issuing_days > root_days {
        return Err(CaError::Refused(format!(
            "the issuing CA ({issuing_days} days) would outlive the root ({root_days} days)"
        )));
    }

    let root_key = generate_key(config.key_algorithm)?;
    let root_params = ca_params(&root_name, 1, now, root_days);
    let root = root_params.self_signed(&root_key).map_err(internal("sign the root"))?;

    let issuing_key = generate_key(config.key_algorithm)?;
    let issuing_params = ca_params(&issuing_name, 0, now, issuing_days);
    let issuer = Issuer::from_params(&root_params, &root_key);
    let issuing =
        issuing_params.signed_by(&issuing_key, &issuer).map_err(internal("sign the issuing CA"))?;

    Ok(CaMaterial {
        root_der: root.der().to_vec(),
        issuing_der: issuing.der().to_vec(),
        root_key_pkcs8: Zeroizing::new(root_key.serialize_der()),
        issuing_key_pkcs8: Zeroizing::new(issuing_key.serialize_der()),
    })
}

fn validity_days(which: &str, days: i64) -> Result<i64, CaError> {
    if (1..=MAX_VALIDITY_DAYS).contains(&days) {
        Ok(days)
    } else {
        Err(CaError::Refused(format!(
            "the {which} lifetime must be 1 to {MAX_VALIDITY_DAYS} days, not {days}"
        )))
    }
}

fn ca_params(common_name: &str, path_len: u8, now: OffsetDateTime, days: i64) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(days);
    params
}

fn generate_key(algorithm: KeyAlgorithm) -> Result<KeyPair, CaError> {
    let rsa = |size| KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, size);
    match algorithm {
        KeyAlgorithm::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
        KeyAlgorithm::EcdsaP384 => KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384),
        KeyAlgorithm::Rsa2048 => rsa(RsaKeySize::_2048),
        KeyAlgorithm::Rsa3072 => rsa(RsaKeySize::_3072),
        KeyAlgorithm::Rsa4096 => rsa(RsaKeySize::_4096),
    }
    .map_err(internal("generate a CA key"))
}

/// Maps an rcgen failure to an internal error saying what was being done.
pub(crate) fn internal(doing: &'static str) -> impl Fn(rcgen::Error) -> CaError {
    move |error| CaError::Internal(format!("could not {doing}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_keys() {
        let material = CaMaterial {
            root_der: vec![1, 2],
            issuing_der: vec![3],
            root_key_pkcs8: Zeroizing::new(vec![0xde, 0xad]),
            issuing_key_pkcs8: Zeroizing::new(vec![0xbe, 0xef]),
        };
        let text = format!("{material:?}");
        assert!(text.contains("[redacted]"), "{text}");
        assert!(!text.contains("222") && !text.contains("173") && !text.contains("190"), "{text}");
        assert!(!text.contains("dead") && !text.contains("beef"), "{text}");
    }

    #[test]
    fn refuses_bad_configuration() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let refuse = |config: BuiltinConfig| match create_material(&config, now) {
            Err(CaError::Refused(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let base = BuiltinConfig::default();
        assert!(
            refuse(BuiltinConfig { common_name: " ".into(), ..base.clone() }).contains("empty")
        );
        assert!(
            refuse(BuiltinConfig { common_name: "x".repeat(60), ..base.clone() })
                .contains("too long")
        );
        assert!(refuse(BuiltinConfig { root_validity_days: 0, ..base.clone() }).contains("root"));
        assert!(
            refuse(BuiltinConfig { issuing_validity_days: i64::MAX, ..base.clone() })
                .contains("issuing CA")
        );
        assert!(refuse(BuiltinConfig { issuing_validity_days: 4000, ..base }).contains("outlive"));
    }
}
