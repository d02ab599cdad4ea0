//! Server-side key generation (only when a user asks for it), a CSR for such a key, and export
//! of a key with its chain as PKCS#12.
//!
//! Key bytes live in zeroizing buffers here and never appear in `Debug` output or errors. The
//! libraries underneath (rcgen's `KeyPair`, p12-keystore's `KeyStore`) keep short-lived copies
//! of their own that are not zeroized; they are dropped before these functions return.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::Ed25519KeyPair;
use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKeyChain,
};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256,
    PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256, PublicKeyData, RsaKeySize, SanType,
};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

/// Shortest PKCS#12 password accepted, in characters.
pub const MIN_PKCS12_PASSWORD_CHARS: usize = 8;

/// PBKDF2 (key and certificate safes) and PKCS#12 KDF (MAC) iterations of an exported file:
/// far above OpenSSL's default of 2048, and within what readers accept (Java caps at
/// 5,000,000, this crate's own reader at 1,000,000).
pub const PKCS12_ITERATIONS: u64 = 100_000;

/// The kinds of key the server generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySpec {
    /// RSA, 2048-bit modulus.
    Rsa2048,
    /// RSA, 3072-bit modulus.
    Rsa3072,
    /// RSA, 4096-bit modulus.
    Rsa4096,
    /// ECDSA on NIST P-256.
    EcdsaP256,
    /// ECDSA on NIST P-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
}

impl KeySpec {
    /// Every key spec.
    pub const ALL: [KeySpec; 6] = [
        KeySpec::Rsa2048,
        KeySpec::Rsa3072,
        KeySpec::Rsa4096,
        KeySpec::EcdsaP256,
        KeySpec::EcdsaP384,
        KeySpec::Ed25519,
    ];

    /// The spec named `s` (`rsa2048`, `rsa3072`, `rsa4096`, `ecdsa_p256`, `ecdsa_p384`,
    /// `ed25519`; the serde names).
    pub fn parse(s: &str) -> Result<KeySpec, KeygenError> {
        KeySpec::ALL
            .into_iter()
            .find(|spec| spec.as_str() == s)
            .ok_or_else(|| KeygenError::UnknownKeySpec(s.chars().take(32).collect()))
    }

    /// The name of the spec, as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            KeySpec::Rsa2048 => "rsa2048",
            KeySpec::Rsa3072 => "rsa3072",
            KeySpec::Rsa4096 => "rsa4096",
            KeySpec::EcdsaP256 => "ecdsa_p256",
            KeySpec::EcdsaP384 => "ecdsa_p384",
            KeySpec::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeySpec {
    type Err = KeygenError;

    fn from_str(s: &str) -> Result<KeySpec, KeygenError> {
        KeySpec::parse(s)
    }
}

/// Why key generation, a CSR or an export failed. Never holds key bytes or passwords.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeygenError {
    /// A key spec name that is not one of [`KeySpec::ALL`]; holds (the start of) the name.
    #[error(
        "unknown key type {0:?}; expected one of rsa2048, rsa3072, rsa4096, ecdsa_p256, \
         ecdsa_p384, ed25519"
    )]
    UnknownKeySpec(String),
    /// The cryptographic library failed to generate a key; holds its reason.
    #[error("key generation failed: {0}")]
    Generation(String),
    /// The private key is not a PKCS#8 (or PKCS#1 / SEC1) DER key of a supported type.
    #[error("the private key is not a supported PKCS#8 key")]
    InvalidKey,
    /// A common name or DNS name that cannot go into a CSR; holds which and why.
    #[error("invalid name for the CSR: {0}")]
    InvalidName(String),
    /// A CSR with neither a common name nor any subject alternative name.
    #[error("a CSR needs a common name or at least one DNS name or IP address")]
    EmptyRequest,
    /// Signing or encoding the CSR failed; holds the reason.
    #[error("creating the CSR failed: {0}")]
    Csr(String),
    /// A PKCS#12 password that is empty or shorter than [`MIN_PKCS12_PASSWORD_CHARS`].
    #[error("the PKCS#12 password must have at least {MIN_PKCS12_PASSWORD_CHARS} characters")]
    WeakPassword,
    /// A PKCS#12 export without any certificate.
    #[error("a PKCS#12 export needs at least the leaf certificate")]
    NoCertificate,
    /// A certificate of the chain is not valid DER; holds its index (0 = leaf) and why.
    #[error("certificate {index} of the chain cannot be parsed: {reason}")]
    InvalidCertificate {
        /// Position in the chain, 0 being the leaf.
        index: usize,
        /// The parser's reason.
        reason: String,
    },
    /// The leaf certificate certifies a different public key than the private key's.
    #[error("the leaf certificate does not belong to the private key")]
    KeyMismatch,
    /// Writing the PKCS#12 structure failed; holds the reason.
    #[error("writing the PKCS#12 file failed: {0}")]
    Pkcs12(String),
}

/// A freshly generated private key: PKCS#8 DER in a buffer zeroed on drop; `Debug` shows only
/// the spec.
pub struct GeneratedKey {
    spec: KeySpec,
    pkcs8: Zeroizing<Vec<u8>>,
    public_key_der: Vec<u8>,
}

impl GeneratedKey {
    /// The kind of key.
    pub fn spec(&self) -> KeySpec {
        self.spec
    }

    /// The private key as PKCS#8 (`PrivateKeyInfo`) DER.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key as `SubjectPublicKeyInfo` DER.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_key_der
    }

    /// The private key as PEM (`-----BEGIN PRIVATE KEY-----`), in a buffer zeroed on drop.
    pub fn to_pem(&self) -> Zeroizing<String> {
        pkcs8_pem(&self.pkcs8)
    }
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("spec", &self.spec)
            .field("pkcs8", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Generates a key of `spec` with aws-lc-rs (through rcgen). Ed25519 keys are PKCS#8 v1
/// (no embedded public key), the form OpenSSL 3.0 reads; rcgen alone would write v2.
pub fn generate_key(spec: KeySpec) -> Result<GeneratedKey, KeygenError> {
    let failed = |e: rcgen::Error| KeygenError::Generation(e.to_string());
    let rsa = |size| KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, size).map_err(failed);
    let key_pair = match spec {
        KeySpec::Rsa2048 => rsa(RsaKeySize::_2048)?,
        KeySpec::Rsa3072 => rsa(RsaKeySize::_3072)?,
        KeySpec::Rsa4096 => rsa(RsaKeySize::_4096)?,
        KeySpec::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(failed)?,
        KeySpec::EcdsaP384 => KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).map_err(failed)?,
        KeySpec::Ed25519 => {
            // The Document zeroes itself on drop.
            let pkcs8 = Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new())
                .map_err(|_| KeygenError::Generation("Ed25519 key generation failed".into()))?;
            KeyPair::try_from(pkcs8.as_ref()).map_err(failed)?
        }
    };
    Ok(GeneratedKey {
        spec,
        pkcs8: Zeroizing::new(key_pair.serialize_der()),
        public_key_der: key_pair.subject_public_key_info(),
    })
}

/// A PKCS#10 CSR (DER) for the key, signed by it: the subject is empty unless `common_name`
/// is given (then it is just that CN), and the subject alternative names are `dns_names` and
/// `ip_addresses` (marked critical when the subject is empty, as RFC 5280 requires).
pub fn make_csr(
    key_pkcs8_der: &[u8],
    common_name: Option<&str>,
    dns_names: &[String],
    ip_addresses: &[IpAddr],
) -> Result<Vec<u8>, KeygenError> {
    if common_name.is_none() && dns_names.is_empty() && ip_addresses.is_empty() {
        return Err(KeygenError::EmptyRequest);
    }
    let key_pair = KeyPair::try_from(key_pkcs8_der).map_err(|_| KeygenError::InvalidKey)?;
    let mut params = CertificateParams::default();
    // rcgen's default subject is "CN=rcgen self signed cert".
    params.distinguished_name = DistinguishedName::new();
    if let Some(cn) = common_name {
        if cn.is_empty() || cn.chars().count() > 64 {
            return Err(KeygenError::InvalidName(
                "the common name must have 1 to 64 characters".into(),
            ));
        }
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    for name in dns_names {
        let ia5 = name.clone().try_into().ok().filter(|_| !name.is_empty()).ok_or_else(|| {
            KeygenError::InvalidName(format!("DNS name {name:?} is empty or not ASCII"))
        })?;
        params.subject_alt_names.push(SanType::DnsName(ia5));
    }
    params.subject_alt_names.extend(ip_addresses.iter().copied().map(SanType::IpAddress));
    let csr = params.serialize_request(&key_pair).map_err(|e| KeygenError::Csr(e.to_string()))?;
    Ok(csr.der().to_vec())
}

/// A PKCS#12 file holding the key and `chain_der` (leaf first), readable by OpenSSL 3 without
/// `-legacy`: key bag and certificate safe encrypted with PBES2 (PBKDF2-HMAC-SHA256,
/// AES-256-CBC), integrity by HMAC-SHA256, [`PKCS12_ITERATIONS`] iterations each. The key and
/// the leaf share a localKeyId (SHA-1 of the leaf, as OpenSSL does); `friendly_name` labels the
/// key. Refuses passwords under [`MIN_PKCS12_PASSWORD_CHARS`] characters and a leaf that is
/// not the key's.
pub fn export_pkcs12(
    key_pkcs8_der: &[u8],
    chain_der: &[Vec<u8>],
    password: &str,
    friendly_name: &str,
) -> Result<Vec<u8>, KeygenError> {
    if password.chars().count() < MIN_PKCS12_PASSWORD_CHARS {
        return Err(KeygenError::WeakPassword);
    }
    let leaf_der = chain_der.first().ok_or(KeygenError::NoCertificate)?;
    let key_pair = KeyPair::try_from(key_pkcs8_der).map_err(|_| KeygenError::InvalidKey)?;
    let (_, leaf) = x509_parser::parse_x509_certificate(leaf_der)
        .map_err(|e| KeygenError::InvalidCertificate { index: 0, reason: e.to_string() })?;
    // The subjectPublicKey bits, not the whole SPKI: issuers may encode the algorithm's
    // parameters differently (absent versus NULL) for the same key.
    if leaf.public_key().subject_public_key.data.as_ref() != key_pair.public_key_raw() {
        return Err(KeygenError::KeyMismatch);
    }
    drop(key_pair);
    let certificates = chain_der
        .iter()
        .enumerate()
        .map(|(index, der)| {
            Certificate::from_der(der)
                .map_err(|e| KeygenError::InvalidCertificate { index, reason: e.to_string() })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let local_key_id = Sha1::digest(leaf_der);
    let chain = PrivateKeyChain::new(key_pkcs8_der, local_key_id, certificates);
    let mut store = KeyStore::new();
    store.add_entry(friendly_name, KeyStoreEntry::PrivateKeyChain(chain));
    store
        .writer(password)
        .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .encryption_iterations(PKCS12_ITERATIONS)
        .mac_algorithm(MacAlgorithm::HmacSha256)
        .mac_iterations(PKCS12_ITERATIONS)
        .write()
        .map_err(|e| KeygenError::Pkcs12(e.to_string()))
}

/// PEM of a PKCS#8 key, built in zeroizing buffers sized up front so nothing reallocates.
fn pkcs8_pem(der: &[u8]) -> Zeroizing<String> {
    use base64::Engine as _;
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----\n";
    const END: &str = "-----END PRIVATE KEY-----\n";
    let body = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let lines = body.len().div_ceil(64);
    let mut pem =
        Zeroizing::new(String::with_capacity(BEGIN.len() + body.len() + lines + END.len()));
    pem.push_str(BEGIN);
    for (i, c) in body.chars().enumerate() {
        if i > 0 && i % 64 == 0 {
            pem.push('\n');
        }
        pem.push(c);
    }
    if !body.is_empty() {
        pem.push('\n');
    }
    pem.push_str(END);
    pem
}
