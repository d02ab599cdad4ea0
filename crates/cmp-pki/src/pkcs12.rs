//! PKCS#12 (PFX): checks the password against the MAC, decrypts the safes that hold
//! certificates and returns every certificate bag. Key bags are skipped unread: private keys
//! are never decrypted, returned or stored.
//!
//! The PFX is walked here rather than through `p12-keystore`'s `KeyStore`, because that API
//! only surfaces certificates that chain from a private key or carry Java's trusted-cert
//! attribute: a certs-only PFX (`openssl pkcs12 -export -nokeys`) came back empty, extra CA
//! certificates were dropped, and it decrypts every private key on the way. The cryptography
//! is the same RustCrypto code p12-keystore uses (pkcs12 KDF, pkcs5 PBES2, HMAC, 3DES, RC2).

use std::borrow::Cow;

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockCipher, BlockDecrypt, BlockDecryptMut, KeyInit, KeyIvInit};
use hmac::{Mac, SimpleHmac};
use pkcs12::kdf::{Pkcs12KeyType, derive_key};
use sha2::digest::core_api::BlockSizeUser;
use sha2::digest::{Digest, FixedOutputReset};

use crate::asn1::{self, Asn1Error, Children, Tag, Tlv};

/// Highest KDF iteration count accepted (OpenSSL uses 2048, Java 10000); bounds the CPU a
/// hostile file can demand.
const MAX_ITERATIONS: u64 = 1_000_000;
/// Deepest nesting of safeContents bags.
const MAX_SAFE_NESTING: usize = 4;

const ID_DATA: &str = "1.2.840.113549.1.7.1";
const ID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const ID_ENCRYPTED_DATA: &str = "1.2.840.113549.1.7.6";
const CERT_BAG: &str = "1.2.840.113549.1.12.10.1.3";
const SAFE_CONTENTS_BAG: &str = "1.2.840.113549.1.12.10.1.6";
const X509_CERTIFICATE: &str = "1.2.840.113549.1.9.22.1";
const PBES2: &str = "1.2.840.113549.1.5.13";

/// Why a PFX yielded nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Pkcs12Error {
    /// The MAC does not verify, or decryption fails, with the password(s) tried.
    #[error("wrong password")]
    WrongPassword,
    /// An algorithm or mode this crate does not implement.
    #[error("{0}")]
    Unsupported(String),
    /// The structure is not a well-formed PFX.
    #[error("{0}")]
    Malformed(#[from] Asn1Error),
}

/// One certificate bag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CertBag {
    /// An X.509 certificate's DER.
    X509(Vec<u8>),
    /// Another certificate type (e.g. SDSI), by OID.
    Other(String),
}

/// Everything found in a PFX.
#[derive(Debug, Default)]
pub(crate) struct Contents {
    /// Certificate bags in file order.
    pub certificates: Vec<CertBag>,
    /// Safes that could not be opened: (1-based safe number, why).
    pub skipped: Vec<(usize, String)>,
}

/// True for `PFX ::= SEQUENCE { version INTEGER (3), authSafe ContentInfo, ... }`.
pub(crate) fn is_pfx(tlv: &Tlv<'_>) -> bool {
    let mut fields = Children::of(tlv);
    let version = fields.expect(Tag::INTEGER).ok().and_then(|v| asn1::small_uint(&v).ok());
    version == Some(3) && fields.expect(Tag::SEQUENCE).is_ok()
}

/// Certificates of the PFX. Without a password (or with an empty one) both the empty
/// password and the absent password are tried, as OpenSSL does.
pub(crate) fn extract(pfx: &Tlv<'_>, password: Option<&str>) -> Result<Contents, Pkcs12Error> {
    let (auth_safe, mac) = read_pfx(pfx)?;
    let candidates = Password::candidates(password);
    let passwords: Vec<&Password> = match mac {
        Some(mac) => {
            let mut matching = None;
            for candidate in &candidates {
                if mac.verifies(&auth_safe, candidate)? {
                    matching = Some(candidate);
                    break;
                }
            }
            vec![matching.ok_or(Pkcs12Error::WrongPassword)?]
        }
        None => candidates.iter().collect(),
    };
    let (safes, _) = asn1::read_tlv(&auth_safe)?;
    if safes.tag != Tag::SEQUENCE {
        return Err(Asn1Error::Unexpected.into());
    }
    asn1::check_depth(safes.raw)?;
    let mut contents = Contents::default();
    for (index, safe) in Children::of(&safes).collect_all()?.iter().enumerate() {
        match open_safe(safe, &passwords) {
            Ok(bags) if bags.is_empty() => {}
            Ok(bags) => read_safe_contents(&bags, &mut contents, 0)?,
            Err(Pkcs12Error::Unsupported(why)) => contents.skipped.push((index + 1, why)),
            Err(other) => return Err(other),
        }
    }
    Ok(contents)
}

/// The authSafe content octets and the MAC data, if any.
fn read_pfx<'a>(pfx: &Tlv<'a>) -> Result<(Cow<'a, [u8]>, Option<MacData<'a>>), Pkcs12Error> {
    let mut fields = Children::of(pfx);
    fields.expect(Tag::INTEGER)?;
    let auth_safe = fields.expect(Tag::SEQUENCE)?;
    let mac = fields.optional(Tag::SEQUENCE)?.map(|t| MacData::read(&t)).transpose()?;
    let (content_type, content) = content_info(&auth_safe)?;
    match content_type.as_str() {
        ID_DATA => Ok((asn1::octets(&content)?, mac)),
        ID_SIGNED_DATA => Err(Pkcs12Error::Unsupported(
            "PKCS#12 files protected by a signature (public-key integrity mode) are not supported"
                .into(),
        )),
        other => {
            Err(Pkcs12Error::Unsupported(format!("PKCS#12 content type {other} is not supported")))
        }
    }
}

/// `ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY }`.
fn content_info<'a>(tlv: &Tlv<'a>) -> Result<(String, Tlv<'a>), Asn1Error> {
    let mut fields = Children::of(tlv);
    let oid = fields.expect(Tag::OID)?;
    let explicit = fields.expect(Tag::context(0, true))?;
    let text = asn1::oid_to_string(oid.content).ok_or(Asn1Error::Unexpected)?;
    Ok((text, asn1::single_child(&explicit)?))
}

/// The SafeContents bytes of one authenticated-safe entry, decrypting if needed.
fn open_safe<'a>(safe: &Tlv<'a>, passwords: &[&Password]) -> Result<Cow<'a, [u8]>, Pkcs12Error> {
    let (content_type, content) = content_info(safe)?;
    match content_type.as_str() {
        ID_DATA => Ok(asn1::octets(&content)?),
        ID_ENCRYPTED_DATA => decrypt_safe(&content, passwords).map(Cow::Owned),
        other => Err(Pkcs12Error::Unsupported(format!(
            "a safe protected with content type {other} (e.g. public-key privacy) is not supported"
        ))),
    }
}

/// `EncryptedData ::= SEQUENCE { version, EncryptedContentInfo ::= SEQUENCE {
///   contentType, contentEncryptionAlgorithm, encryptedContent [0] IMPLICIT OCTET STRING } }`
fn decrypt_safe(encrypted_data: &Tlv<'_>, passwords: &[&Password]) -> Result<Vec<u8>, Pkcs12Error> {
    let mut fields = Children::of(encrypted_data);
    fields.expect(Tag::INTEGER)?;
    let info = fields.expect(Tag::SEQUENCE)?;
    let mut parts = Children::of(&info);
    parts.expect(Tag::OID)?;
    let algorithm = parts.expect(Tag::SEQUENCE)?;
    let ciphertext = match parts.next_tlv()? {
        Some(t) if t.tag.class == asn1::Class::Context && t.tag.number == 0 => asn1::octets(&t)?,
        _ => return Ok(Vec::new()),
    };
    for password in passwords {
        if let Some(plain) = decrypt(&algorithm, &ciphertext, password)? {
            // Without a MAC a wrong password can still unpad cleanly; require a readable result.
            if asn1::read_tlv(&plain).is_ok_and(|(t, _)| t.tag == Tag::SEQUENCE) {
                return Ok(plain);
            }
        }
    }
    Err(Pkcs12Error::WrongPassword)
}

/// Walks `SafeContents ::= SEQUENCE OF SafeBag`, collecting certificate bags.
fn read_safe_contents(
    bytes: &[u8],
    contents: &mut Contents,
    nesting: usize,
) -> Result<(), Pkcs12Error> {
    let (sequence, _) = asn1::read_tlv(bytes)?;
    if nesting == 0 {
        asn1::check_depth(sequence.raw)?;
    }
    read_bags(&sequence, contents, nesting)
}

fn read_bags(
    sequence: &Tlv<'_>,
    contents: &mut Contents,
    nesting: usize,
) -> Result<(), Pkcs12Error> {
    if sequence.tag != Tag::SEQUENCE {
        return Err(Asn1Error::Unexpected.into());
    }
    let mut bags = Children::of(sequence);
    while let Some(bag) = bags.next_tlv()? {
        // SafeBag ::= SEQUENCE { bagId OID, bagValue [0] EXPLICIT ANY, bagAttributes SET OPTIONAL }
        let (bag_id, value) = content_info(&bag)?;
        match bag_id.as_str() {
            CERT_BAG => contents.certificates.push(read_cert_bag(&value)?),
            SAFE_CONTENTS_BAG if nesting + 1 >= MAX_SAFE_NESTING => {
                return Err(Asn1Error::TooDeep.into());
            }
            SAFE_CONTENTS_BAG => read_bags(&value, contents, nesting + 1)?,
            // Key bags, shrouded key bags, CRL and secret bags: not read.
            _ => {}
        }
    }
    Ok(())
}

/// `CertBag ::= SEQUENCE { certId OID, certValue [0] EXPLICIT OCTET STRING }`.
fn read_cert_bag(value: &Tlv<'_>) -> Result<CertBag, Pkcs12Error> {
    let (cert_type, cert_value) = content_info(value)?;
    if cert_type != X509_CERTIFICATE {
        return Ok(CertBag::Other(cert_type));
    }
    if !cert_value.tag.is_universal(4) {
        return Err(Asn1Error::Unexpected.into());
    }
    Ok(CertBag::X509(asn1::octets(&cert_value)?.into_owned()))
}

/// A password in the two encodings PKCS#12 uses.
struct Password {
    /// BMPString with a two-byte terminator, for the PKCS#12 KDF (MAC and PKCS#12 PBE);
    /// empty for the "absent" password.
    bmp: Vec<u8>,
    /// The bytes PBKDF2 gets (PBES2).
    utf8: Vec<u8>,
}

impl Password {
    fn candidates(password: Option<&str>) -> Vec<Password> {
        match password {
            Some(p) if !p.is_empty() => vec![Password::new(p)],
            _ => vec![Password::new(""), Password { bmp: Vec::new(), utf8: Vec::new() }],
        }
    }

    fn new(text: &str) -> Password {
        let mut bmp: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        bmp.extend([0, 0]);
        Password { bmp, utf8: text.as_bytes().to_vec() }
    }
}

/// `MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations INTEGER DEFAULT 1 }`.
struct MacData<'a> {
    digest_algorithm: String,
    digest: &'a [u8],
    salt: &'a [u8],
    iterations: u64,
}

impl<'a> MacData<'a> {
    fn read(tlv: &Tlv<'a>) -> Result<MacData<'a>, Pkcs12Error> {
        let mut fields = Children::of(tlv);
        let digest_info = fields.expect(Tag::SEQUENCE)?;
        let salt = fields.expect(Tag::OCTET_STRING)?.content;
        let iterations = match fields.optional(Tag::INTEGER)? {
            Some(count) => asn1::small_uint(&count)?,
            None => 1,
        };
        let mut info = Children::of(&digest_info);
        let algorithm = info.expect(Tag::SEQUENCE)?;
        let digest = info.expect(Tag::OCTET_STRING)?.content;
        let oid = Children::of(&algorithm).expect(Tag::OID)?;
        let digest_algorithm = asn1::oid_to_string(oid.content).ok_or(Asn1Error::Unexpected)?;
        Ok(MacData { digest_algorithm, digest, salt, iterations })
    }

    fn verifies(&self, data: &[u8], password: &Password) -> Result<bool, Pkcs12Error> {
        let rounds = rounds(self.iterations)?;
        let (salt, expected, pass) = (self.salt, self.digest, password.bmp.as_slice());
        Ok(match self.digest_algorithm.as_str() {
            "1.3.14.3.2.26" => hmac_matches::<sha1::Sha1>(pass, salt, rounds, data, expected),
            "2.16.840.1.101.3.4.2.4" => {
                hmac_matches::<sha2::Sha224>(pass, salt, rounds, data, expected)
            }
            "2.16.840.1.101.3.4.2.1" => {
                hmac_matches::<sha2::Sha256>(pass, salt, rounds, data, expected)
            }
            "2.16.840.1.101.3.4.2.2" => {
                hmac_matches::<sha2::Sha384>(pass, salt, rounds, data, expected)
            }
            "2.16.840.1.101.3.4.2.3" => {
                hmac_matches::<sha2::Sha512>(pass, salt, rounds, data, expected)
            }
            other => {
                return Err(Pkcs12Error::Unsupported(format!(
                    "the PKCS#12 MAC algorithm {other} is not supported"
                )));
            }
        })
    }
}

fn rounds(iterations: u64) -> Result<i32, Pkcs12Error> {
    if iterations > MAX_ITERATIONS {
        return Err(Pkcs12Error::Unsupported(format!(
            "the PKCS#12 iteration count {iterations} is above the limit of {MAX_ITERATIONS}"
        )));
    }
    i32::try_from(iterations).map_err(|_| Asn1Error::Unexpected.into())
}

fn hmac_matches<D>(password: &[u8], salt: &[u8], rounds: i32, data: &[u8], expected: &[u8]) -> bool
where
    D: Digest + FixedOutputReset + BlockSizeUser,
{
    let key =
        derive_key::<D>(password, salt, Pkcs12KeyType::Mac, rounds, <D as Digest>::output_size());
    let Ok(mut mac) = <SimpleHmac<D> as KeyInit>::new_from_slice(&key) else {
        return false;
    };
    mac.update(data);
    mac.verify_slice(expected).is_ok()
}

/// Decrypts with PBES2 or a PKCS#12 PBE scheme. `Err` for unsupported algorithms;
/// `Ok(None)` when decryption fails (a wrong password).
fn decrypt(
    algorithm: &Tlv<'_>,
    ciphertext: &[u8],
    password: &Password,
) -> Result<Option<Vec<u8>>, Pkcs12Error> {
    let mut fields = Children::of(algorithm);
    let oid = fields.expect(Tag::OID)?;
    let oid = asn1::oid_to_string(oid.content).ok_or(Asn1Error::Unexpected)?;
    if oid == PBES2 {
        return decrypt_pbes2(algorithm.raw, ciphertext, password);
    }
    let params = fields.expect(Tag::SEQUENCE)?;
    let mut p = Children::of(&params);
    let salt = p.expect(Tag::OCTET_STRING)?.content;
    let rounds = rounds(asn1::small_uint(&p.expect(Tag::INTEGER)?)?)?;
    let pbe = Pbe { password: &password.bmp, salt, rounds };
    Ok(match oid.as_str() {
        "1.2.840.113549.1.12.1.3" => pbe.decrypt::<des::TdesEde3>(24, ciphertext),
        "1.2.840.113549.1.12.1.4" => pbe.decrypt::<des::TdesEde2>(16, ciphertext),
        "1.2.840.113549.1.12.1.5" => pbe.decrypt::<rc2::Rc2>(16, ciphertext),
        "1.2.840.113549.1.12.1.6" => pbe.decrypt::<rc2::Rc2>(5, ciphertext),
        other => {
            return Err(Pkcs12Error::Unsupported(format!(
                "the PKCS#12 encryption algorithm {other} is not supported"
            )));
        }
    })
}

fn decrypt_pbes2(
    algorithm_der: &[u8],
    ciphertext: &[u8],
    password: &Password,
) -> Result<Option<Vec<u8>>, Pkcs12Error> {
    let unsupported = |why: String| Pkcs12Error::Unsupported(why);
    let scheme = pkcs5::EncryptionScheme::try_from(algorithm_der)
        .map_err(|e| unsupported(format!("unsupported PBES2 parameters: {e}")))?;
    let pkcs5::EncryptionScheme::Pbes2(params) = scheme else {
        return Err(unsupported("PKCS#5 PBES1 encryption is not supported".into()));
    };
    match &params.kdf {
        pkcs5::pbes2::Kdf::Pbkdf2(kdf) => {
            rounds(u64::from(kdf.iteration_count))?;
        }
        // scrypt's cost parameters could demand gigabytes; no PKCS#12 producer uses it.
        _ => {
            return Err(unsupported("only PBKDF2 is supported as the PBES2 key derivation".into()));
        }
    }
    Ok(params.decrypt(&password.utf8, ciphertext).ok())
}

/// PKCS#12 password-based encryption (RFC 7292 appendix B, CBC with SHA-1 KDF).
struct Pbe<'a> {
    password: &'a [u8],
    salt: &'a [u8],
    rounds: i32,
}

impl Pbe<'_> {
    fn decrypt<C>(&self, key_len: usize, ciphertext: &[u8]) -> Option<Vec<u8>>
    where
        C: BlockCipher + BlockDecrypt + KeyInit,
    {
        let derive =
            |kind, len| derive_key::<sha1::Sha1>(self.password, self.salt, kind, self.rounds, len);
        let key = derive(Pkcs12KeyType::EncryptionKey, key_len);
        let iv = derive(Pkcs12KeyType::Iv, 8);
        let cipher = cbc::Decryptor::<C>::new_from_slices(&key, &iv).ok()?;
        cipher.decrypt_padded_vec_mut::<Pkcs7>(ciphertext).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_pfx_shape() {
        let der = [0x30, 0x07, 0x02, 0x01, 0x03, 0x30, 0x02, 0x05, 0x00];
        let (tlv, _) = asn1::read_tlv(&der).unwrap();
        assert!(is_pfx(&tlv));
        let der = [0x30, 0x07, 0x02, 0x01, 0x01, 0x30, 0x02, 0x05, 0x00];
        let (tlv, _) = asn1::read_tlv(&der).unwrap();
        assert!(!is_pfx(&tlv));
    }

    #[test]
    fn bounds_iterations() {
        assert!(rounds(2048).is_ok());
        assert!(matches!(rounds(MAX_ITERATIONS + 1), Err(Pkcs12Error::Unsupported(_))));
    }

    #[test]
    fn passwords_are_encoded_as_bmp_with_terminator() {
        assert_eq!(Password::new("ab").bmp, vec![0, b'a', 0, b'b', 0, 0]);
        assert_eq!(Password::candidates(None).len(), 2);
        assert_eq!(Password::candidates(Some("x")).len(), 1);
    }
}
