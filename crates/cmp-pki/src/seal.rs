//! Sealing a secret to the holder of one EC key: what the server does to a server-made private
//! key before it travels to an agent, so that only the agent whose key authenticated the
//! connection can open it, whatever sees the HTTP answer on the way (a TLS-terminating proxy,
//! a response log).
//!
//! The scheme is ECIES over aws-lc-rs, the process's one crypto backend: an ephemeral P-256
//! (or P-384) key agrees with the recipient's key (ECDH); HKDF-SHA256 over the shared secret,
//! salted with both public keys and bound to a context string, gives a fresh AES-256-GCM key
//! used once (so a zero nonce), with the context as associated data. The well-kept crates for
//! this (`hpke`, JOSE libraries) bring a second crypto backend (RustCrypto or OpenSSL).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, EphemeralPrivateKey, PrivateKey, UnparsedPublicKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use aws_lc_rs::rand::SystemRandom;
use zeroize::Zeroizing;

/// The scheme's name, in every sealed box.
pub const SEAL_ALGORITHM: &str = "ECDH-ES+HKDF-SHA256+A256GCM";
const INFO: &[u8] = b"cmp seal v1";

/// Why a secret could not be sealed or opened. Says nothing of the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The recipient's key is not an EC key on P-256 or P-384.
    #[error("the recipient's key is not a P-256 or P-384 EC key")]
    UnsupportedKey,
    /// The sealed box is not one this key, context and scheme open.
    #[error("the sealed secret cannot be opened with this key")]
    CannotOpen,
    #[error("sealing failed")]
    Failed,
}

/// A sealed secret: the ephemeral public key (uncompressed point) and the ciphertext with its
/// tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub ephemeral_public_key: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// The SubjectPublicKeyInfo (DER) of a certificate (DER): what [`seal`] seals to.
pub fn certificate_public_key(cert_der: &[u8]) -> Option<Vec<u8>> {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(cert_der).ok()?;
    Some(cert.tbs_certificate.subject_pki.raw.to_vec())
}

/// The curve of an EC SubjectPublicKeyInfo, and its point.
fn recipient(spki_der: &[u8]) -> Result<(&'static agreement::Algorithm, Vec<u8>), SealError> {
    use x509_parser::prelude::FromDer;
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|_| SealError::UnsupportedKey)?;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|oid| oid.to_id_string());
    let algorithm = match curve.as_deref() {
        Some("1.2.840.10045.3.1.7") => &agreement::ECDH_P256,
        Some("1.3.132.0.34") => &agreement::ECDH_P384,
        _ => return Err(SealError::UnsupportedKey),
    };
    Ok((algorithm, spki.subject_public_key.data.to_vec()))
}

/// The one-use AES key from the shared secret, bound to both public keys and `context`.
fn box_key(
    shared: &[u8],
    ephemeral: &[u8],
    recipient: &[u8],
    context: &[u8],
) -> Result<LessSafeKey, SealError> {
    let salt = Salt::new(HKDF_SHA256, &[ephemeral, recipient].concat());
    let info = [INFO, context];
    let prk = salt.extract(shared);
    let okm = prk.expand(&info, &AES_256_GCM).map_err(|_| SealError::Failed)?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

/// Seals `secret` for the holder of the private key of `recipient_spki_der`, bound to
/// `context` (what it is for: opening it under another context fails).
pub fn seal(recipient_spki_der: &[u8], secret: &[u8], context: &[u8]) -> Result<Sealed, SealError> {
    let (algorithm, point) = recipient(recipient_spki_der)?;
    let ephemeral = EphemeralPrivateKey::generate(algorithm, &SystemRandom::new())
        .map_err(|_| SealError::Failed)?;
    let ephemeral_public =
        ephemeral.compute_public_key().map_err(|_| SealError::Failed)?.as_ref().to_vec();
    let peer = UnparsedPublicKey::new(algorithm, &point);
    let key = agreement::agree_ephemeral(ephemeral, peer, SealError::UnsupportedKey, |shared| {
        box_key(shared, &ephemeral_public, &point, context)
    })?;
    let mut ciphertext = secret.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key([0; 12]),
        Aad::from(context),
        &mut ciphertext,
    )
    .map_err(|_| SealError::Failed)?;
    Ok(Sealed { ephemeral_public_key: ephemeral_public, ciphertext })
}

/// Opens a sealed secret with the recipient's private key (PKCS#8 or SEC1 DER) under the
/// `context` it was sealed for.
pub fn open(
    recipient_key_der: &[u8],
    sealed: &Sealed,
    context: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let (algorithm, private) = [&agreement::ECDH_P256, &agreement::ECDH_P384]
        .into_iter()
        .find_map(|alg| {
            PrivateKey::from_private_key_der(alg, recipient_key_der).ok().map(|k| (alg, k))
        })
        .ok_or(SealError::UnsupportedKey)?;
    let point = private.compute_public_key().map_err(|_| SealError::Failed)?.as_ref().to_vec();
    let peer = UnparsedPublicKey::new(algorithm, &sealed.ephemeral_public_key);
    let key = agreement::agree(&private, peer, SealError::CannotOpen, |shared| {
        box_key(shared, &sealed.ephemeral_public_key, &point, context)
    })?;
    let mut plain = Zeroizing::new(sealed.ciphertext.clone());
    let opened = key
        .open_in_place(Nonce::assume_unique_for_key([0; 12]), Aad::from(context), &mut plain)
        .map_err(|_| SealError::CannotOpen)?
        .len();
    plain.truncate(opened);
    Ok(plain)
}
