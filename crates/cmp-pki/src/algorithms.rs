//! Algorithm names and public-key facts: OpenSSL long names for signature algorithms, and
//! key type, size and curve read from a SubjectPublicKeyInfo.

use cmp_domain::{KeyInfo, KeyType};

use crate::asn1::{self, Asn1Error, Children, Tag};

/// OpenSSL's long name for a signature algorithm OID (as `openssl x509 -text` prints it),
/// falling back to the dotted OID.
pub(crate) fn signature_name(oid_content: &[u8]) -> String {
    let Some(dotted) = asn1::oid_to_string(oid_content) else {
        return hex::encode(oid_content);
    };
    SIGNATURE_NAMES
        .iter()
        .find(|(oid, _)| *oid == dotted)
        .map(|(_, name)| (*name).to_owned())
        .unwrap_or(dotted)
}

const SIGNATURE_NAMES: &[(&str, &str)] = &[
    ("1.2.840.113549.1.1.1", "rsaEncryption"),
    ("1.2.840.113549.1.1.2", "md2WithRSAEncryption"),
    ("1.2.840.113549.1.1.3", "md4WithRSAEncryption"),
    ("1.2.840.113549.1.1.4", "md5WithRSAEncryption"),
    ("1.2.840.113549.1.1.5", "sha1WithRSAEncryption"),
    ("1.2.840.113549.1.1.10", "rsassaPss"),
    ("1.2.840.113549.1.1.11", "sha256WithRSAEncryption"),
    ("1.2.840.113549.1.1.12", "sha384WithRSAEncryption"),
    ("1.2.840.113549.1.1.13", "sha512WithRSAEncryption"),
    ("1.2.840.113549.1.1.14", "sha224WithRSAEncryption"),
    ("1.2.840.113549.1.1.15", "sha512-224WithRSAEncryption"),
    ("1.2.840.113549.1.1.16", "sha512-256WithRSAEncryption"),
    ("1.3.14.3.2.3", "md5WithRSA"),
    ("1.3.14.3.2.13", "dsaWithSHA"),
    ("1.3.14.3.2.15", "shaWithRSAEncryption"),
    ("1.3.14.3.2.27", "dsaWithSHA1-old"),
    ("1.3.14.3.2.29", "sha1WithRSA"),
    ("1.2.840.10040.4.3", "dsaWithSHA1"),
    ("2.16.840.1.101.3.4.3.1", "dsa_with_SHA224"),
    ("2.16.840.1.101.3.4.3.2", "dsa_with_SHA256"),
    ("2.16.840.1.101.3.4.3.3", "dsa_with_SHA384"),
    ("2.16.840.1.101.3.4.3.4", "dsa_with_SHA512"),
    ("2.16.840.1.101.3.4.3.5", "dsa_with_SHA3-224"),
    ("2.16.840.1.101.3.4.3.6", "dsa_with_SHA3-256"),
    ("2.16.840.1.101.3.4.3.7", "dsa_with_SHA3-384"),
    ("2.16.840.1.101.3.4.3.8", "dsa_with_SHA3-512"),
    ("2.16.840.1.101.3.4.3.9", "ecdsa_with_SHA3-224"),
    ("2.16.840.1.101.3.4.3.10", "ecdsa_with_SHA3-256"),
    ("2.16.840.1.101.3.4.3.11", "ecdsa_with_SHA3-384"),
    ("2.16.840.1.101.3.4.3.12", "ecdsa_with_SHA3-512"),
    ("2.16.840.1.101.3.4.3.13", "RSA-SHA3-224"),
    ("2.16.840.1.101.3.4.3.14", "RSA-SHA3-256"),
    ("2.16.840.1.101.3.4.3.15", "RSA-SHA3-384"),
    ("2.16.840.1.101.3.4.3.16", "RSA-SHA3-512"),
    ("1.2.840.10045.4.1", "ecdsa-with-SHA1"),
    ("1.2.840.10045.4.3.1", "ecdsa-with-SHA224"),
    ("1.2.840.10045.4.3.2", "ecdsa-with-SHA256"),
    ("1.2.840.10045.4.3.3", "ecdsa-with-SHA384"),
    ("1.2.840.10045.4.3.4", "ecdsa-with-SHA512"),
    ("1.3.101.112", "ED25519"),
    ("1.3.101.113", "ED448"),
    ("1.2.156.10197.1.501", "SM2-with-SM3"),
];

const RSA: &str = "1.2.840.113549.1.1.1";
const RSA_PSS: &str = "1.2.840.113549.1.1.10";
const EC: &str = "1.2.840.10045.2.1";
const DSA: &str = "1.2.840.10040.4.1";
const ED25519: &str = "1.3.101.112";
const ED448: &str = "1.3.101.113";

/// Key type, size and curve from a DER SubjectPublicKeyInfo. Parts that cannot be read
/// leave `bits`/`curve` empty rather than failing the certificate.
pub(crate) fn key_info(spki: &[u8]) -> KeyInfo {
    match read_spki(spki) {
        Ok(parts) => classify(&parts),
        Err(_) => KeyInfo { kind: KeyType::Other, bits: None, curve: None },
    }
}

struct SpkiParts<'a> {
    algorithm: String,
    parameters: Option<asn1::Tlv<'a>>,
    /// The BIT STRING value without its unused-bits octet.
    key: &'a [u8],
}

fn read_spki(spki: &[u8]) -> Result<SpkiParts<'_>, Asn1Error> {
    let (outer, _) = asn1::read_tlv(spki)?;
    let mut fields = Children::of(&outer);
    let algorithm_id = fields.expect(Tag::SEQUENCE)?;
    let bits = fields.expect(Tag::BIT_STRING)?;
    let mut alg = Children::of(&algorithm_id);
    let oid = alg.expect(Tag::OID)?;
    let parameters = alg.next_tlv()?;
    let algorithm = asn1::oid_to_string(oid.content).ok_or(Asn1Error::Unexpected)?;
    let key = bits.content.get(1..).ok_or(Asn1Error::Unexpected)?;
    Ok(SpkiParts { algorithm, parameters, key })
}

fn classify(parts: &SpkiParts<'_>) -> KeyInfo {
    let (kind, bits, curve) = match parts.algorithm.as_str() {
        RSA | RSA_PSS => (KeyType::Rsa, rsa_bits(parts.key), None),
        EC => {
            let (curve, bits) = ec_curve(parts);
            (KeyType::Ec, bits, curve)
        }
        DSA => (KeyType::Dsa, dsa_bits(parts), None),
        // The length of the encoded public key (32 and 57 bytes).
        ED25519 => (KeyType::Ed25519, Some(256), None),
        ED448 => (KeyType::Ed448, Some(456), None),
        _ => (KeyType::Other, None, None),
    };
    KeyInfo { kind, bits, curve }
}

/// RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
fn rsa_bits(key: &[u8]) -> Option<u32> {
    let (seq, _) = asn1::read_tlv(key).ok()?;
    let modulus = Children::of(&seq).expect(Tag::INTEGER).ok()?;
    Some(asn1::bit_length(modulus.content))
}

/// Dss-Parms ::= SEQUENCE { p INTEGER, q INTEGER, g INTEGER }; size is that of p.
fn dsa_bits(parts: &SpkiParts<'_>) -> Option<u32> {
    let params = parts.parameters.filter(|p| p.tag == Tag::SEQUENCE)?;
    let p = Children::of(&params).expect(Tag::INTEGER).ok()?;
    Some(asn1::bit_length(p.content))
}

/// Named curve and field size. Unknown named curves keep their OID; their size is inferred
/// from the encoded point. Explicit curve parameters give no curve name.
fn ec_curve(parts: &SpkiParts<'_>) -> (Option<String>, Option<u32>) {
    let named =
        parts.parameters.filter(|p| p.tag == Tag::OID).and_then(|p| asn1::oid_to_string(p.content));
    let known = named.as_deref().and_then(|oid| match oid {
        "1.2.840.10045.3.1.7" => Some(("P-256", 256)),
        "1.3.132.0.34" => Some(("P-384", 384)),
        "1.3.132.0.35" => Some(("P-521", 521)),
        _ => None,
    });
    match known {
        Some((name, bits)) => (Some(name.to_owned()), Some(bits)),
        None => (named, point_bits(parts.key)),
    }
}

/// Field size from an encoded EC point: `04 || X || Y` or `02/03 || X`.
fn point_bits(point: &[u8]) -> Option<u32> {
    let (&form, coordinates) = point.split_first()?;
    let coordinate_len = match form {
        0x04 if coordinates.len() % 2 == 0 => coordinates.len() / 2,
        0x02 | 0x03 => coordinates.len(),
        _ => return None,
    };
    u32::try_from(coordinate_len).ok()?.checked_mul(8).filter(|&b| b > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asn1::oid_from_str;

    #[test]
    fn names_signature_algorithms() {
        assert_eq!(
            signature_name(&oid_from_str("1.2.840.113549.1.1.11")),
            "sha256WithRSAEncryption"
        );
        assert_eq!(signature_name(&oid_from_str("1.2.840.10045.4.3.2")), "ecdsa-with-SHA256");
        assert_eq!(signature_name(&oid_from_str("1.2.3.4")), "1.2.3.4");
    }

    #[test]
    fn unreadable_keys_are_other() {
        assert_eq!(key_info(&[0x30, 0x00]).kind, KeyType::Other);
        assert_eq!(key_info(&[]).kind, KeyType::Other);
    }

    #[test]
    fn point_sizes() {
        assert_eq!(point_bits(&[0x04; 65]), Some(256));
        assert_eq!(point_bits(&[0x02; 33]), Some(256));
        assert_eq!(point_bits(&[0x04]), None);
        assert_eq!(point_bits(&[]), None);
    }
}
