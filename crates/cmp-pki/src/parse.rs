//! One DER certificate into [`CertificateFacts`]: fingerprint, serial, names, validity,
//! SANs, key, signature algorithm, CA flag and the self-signed heuristic.

use std::net::{Ipv4Addr, Ipv6Addr};

use cmp_domain::{CertificateFacts, San, SanType};
use time::{OffsetDateTime, UtcOffset};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};

use crate::algorithms;
use crate::asn1::{self, Asn1Error, Tag};
use crate::names;
use crate::reason;

/// Why bytes could not be read as one certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// There are no bytes at all.
    #[error("the input is empty")]
    Empty,
    /// The bytes are not well-formed DER (truncated, bad length, not a SEQUENCE, ...).
    #[error("the certificate is not well-formed DER: {0}")]
    MalformedDer(String),
    /// The ASN.1 nests deeper than this crate accepts.
    #[error("the ASN.1 structure is nested more than {} levels deep", asn1::MAX_DEPTH)]
    NestingTooDeep,
    /// Bytes follow the certificate's outer SEQUENCE.
    #[error("{} after the end of the certificate", crate::import::byte_count(*extra))]
    TrailingData {
        /// How many bytes follow.
        extra: usize,
    },
    /// The DER is well-formed but is not a valid X.509 certificate.
    #[error("the DER is not a valid X.509 certificate: {0}")]
    InvalidCertificate(String),
}

impl ParseError {
    /// The stable reason code used in import rejections.
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::Empty => reason::EMPTY_INPUT,
            ParseError::MalformedDer(_) | ParseError::InvalidCertificate(_) => {
                reason::MALFORMED_DER
            }
            ParseError::NestingTooDeep => reason::NESTING_TOO_DEEP,
            ParseError::TrailingData { .. } => reason::TRAILING_DATA,
        }
    }
}

impl From<Asn1Error> for ParseError {
    fn from(error: Asn1Error) -> Self {
        match error {
            Asn1Error::TooDeep => ParseError::NestingTooDeep,
            other => ParseError::MalformedDer(other.to_string()),
        }
    }
}

/// Parse one DER certificate into facts. Never panics on any input.
///
/// The input must be exactly one certificate: bytes after its outer SEQUENCE are an error.
///
/// How the facts are filled:
/// - `subject`/`issuer`: exactly `openssl x509 -nameopt RFC2253` (non-ASCII as `\XX` escapes);
///   `common_name`: the last CN, decoded to text.
/// - `serial_number`: `openssl x509 -serial`, lowercased (`-` prefix for negative serials).
/// - `sans`: DNS, IP (canonical text), email and URI entries, in certificate order.
/// - `self_signed`: subject DER == issuer DER, and no authority key id or one equal to the
///   subject key id. The signature is **not** verified (no verifier in this crate).
/// - `key.bits`: RSA modulus, DSA `p`, EC field size (P-256/384/521; other curves from the
///   point size), 256/456 for Ed25519/Ed448.
pub fn parse_certificate(der: &[u8]) -> Result<CertificateFacts, ParseError> {
    let (facts, rest) = parse_leading_certificate(der)?;
    if rest.is_empty() { Ok(facts) } else { Err(ParseError::TrailingData { extra: rest.len() }) }
}

/// Parses the certificate at the start of `der` and returns the bytes after it
/// (OpenSSL's "TRUSTED CERTIFICATE" puts trust settings there).
pub(crate) fn parse_leading_certificate(
    der: &[u8],
) -> Result<(CertificateFacts, &[u8]), ParseError> {
    if der.is_empty() {
        return Err(ParseError::Empty);
    }
    let (outer, rest) = asn1::read_tlv(der)?;
    if outer.tag != Tag::SEQUENCE {
        return Err(ParseError::MalformedDer("it does not start with a SEQUENCE".into()));
    }
    // Bound the nesting before x509-parser sees the bytes.
    asn1::check_depth(outer.raw)?;
    Ok((guarded_facts(outer.raw)?, rest))
}

/// Runs the third-party parser so that even a bug in it cannot take the caller down.
fn guarded_facts(der: &[u8]) -> Result<CertificateFacts, ParseError> {
    std::panic::catch_unwind(|| facts(der)).unwrap_or_else(|_| {
        Err(ParseError::InvalidCertificate("the X.509 parser failed on this input".into()))
    })
}

fn facts(der: &[u8]) -> Result<CertificateFacts, ParseError> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| ParseError::InvalidCertificate(e.to_string()))?;
    if !rest.is_empty() {
        return Err(ParseError::TrailingData { extra: rest.len() });
    }
    let invalid_name =
        |e: Asn1Error| ParseError::InvalidCertificate(format!("unreadable name: {e}"));
    Ok(CertificateFacts {
        fingerprint_sha256: crate::sha256_hex(der),
        serial_number: serial_hex(cert.raw_serial()),
        subject: names::format_name(cert.subject().as_raw()).map_err(invalid_name)?,
        issuer: names::format_name(cert.issuer().as_raw()).map_err(invalid_name)?,
        common_name: names::common_name(cert.subject().as_raw()).map_err(invalid_name)?,
        not_before: utc(cert.validity().not_before.to_datetime()),
        not_after: utc(cert.validity().not_after.to_datetime()),
        sans: sans(&cert),
        key: algorithms::key_info(cert.public_key().raw),
        signature_algorithm: algorithms::signature_name(
            cert.signature_algorithm.algorithm.as_bytes(),
        ),
        is_ca: cert.basic_constraints().ok().flatten().is_some_and(|bc| bc.value.ca),
        self_signed: self_signed(&cert),
        der: der.to_vec(),
    })
}

fn utc(time: OffsetDateTime) -> OffsetDateTime {
    time.to_offset(UtcOffset::UTC)
}

/// The serial as `openssl x509 -serial` prints it, lowercased: the bytes of the INTEGER's
/// magnitude, one sign-padding byte dropped, `-` for negative serials.
///
/// OpenSSL refuses certificates whose serial has superfluous padding; for those (which
/// x509-parser accepts) the content octets are printed as they are.
pub fn serial_hex(content: &[u8]) -> String {
    let Some((&first, tail)) = content.split_first() else {
        return "00".to_owned();
    };
    let negative = first & 0x80 != 0;
    let padded = match first {
        0x00 => !tail.is_empty(),
        0xff => tail.iter().any(|&b| b != 0),
        _ => false,
    };
    let digits = match tail.first() {
        Some(&next) if padded && negative == (next & 0x80 != 0) => return hex::encode(content),
        _ if padded => tail,
        _ => content,
    };
    if negative {
        format!("-{}", hex::encode(twos_complement(digits)))
    } else {
        hex::encode(digits)
    }
}

/// `~value + 1` over the whole byte string (the magnitude of a negative INTEGER).
fn twos_complement(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; bytes.len()];
    let mut carry = 1u16;
    for (dst, &src) in out.iter_mut().zip(bytes).rev() {
        let sum = u16::from(!src) + carry;
        *dst = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
    out
}

/// DNS, IP, email and URI subject alternative names, in certificate order. A SAN extension
/// that is duplicated or unreadable yields no SANs.
fn sans(cert: &X509Certificate<'_>) -> Vec<San> {
    let Ok(Some(extension)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    extension
        .value
        .general_names
        .iter()
        .filter_map(|name| {
            let (kind, value) = match name {
                GeneralName::DNSName(v) => (SanType::Dns, (*v).to_owned()),
                GeneralName::RFC822Name(v) => (SanType::Email, (*v).to_owned()),
                GeneralName::URI(v) => (SanType::Uri, (*v).to_owned()),
                GeneralName::IPAddress(bytes) => (SanType::Ip, ip_text(bytes)?),
                _ => return None,
            };
            Some(San { kind, value })
        })
        .collect()
}

/// Canonical text of a 4- or 16-byte address (RFC 5952 for IPv6); other lengths are skipped.
fn ip_text(bytes: &[u8]) -> Option<String> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(Ipv4Addr::from(v4).to_string());
    }
    <[u8; 16]>::try_from(bytes).ok().map(|v6| Ipv6Addr::from(v6).to_string())
}

/// Self-signed without verifying the signature (this crate does not carry a signature
/// verifier): the subject and issuer DER are identical and, when the certificate has an
/// authority key identifier with a key id, that key id equals its subject key identifier.
fn self_signed(cert: &X509Certificate<'_>) -> bool {
    if cert.subject().as_raw() != cert.issuer().as_raw() {
        return false;
    }
    let mut authority_key_id = None;
    let mut subject_key_id = None;
    for extension in cert.iter_extensions() {
        match extension.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                authority_key_id = aki.key_identifier.as_ref().map(|k| k.0);
            }
            ParsedExtension::SubjectKeyIdentifier(ski) => subject_key_id = Some(ski.0),
            _ => {}
        }
    }
    match authority_key_id {
        None => true,
        Some(aki) => subject_key_id == Some(aki),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_match_openssl_rules() {
        assert_eq!(serial_hex(&[0x01]), "01");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[0x00, 0x8f, 0x01]), "8f01");
        assert_eq!(serial_hex(&[0x7f, 0x00]), "7f00");
        assert_eq!(serial_hex(&[0xff]), "-01");
        assert_eq!(serial_hex(&[0x80]), "-80");
        assert_eq!(serial_hex(&[0xff, 0x7f]), "-81");
        assert_eq!(serial_hex(&[0x80, 0x00]), "-8000");
        assert_eq!(serial_hex(&[0xff, 0x00]), "-0100");
        // Superfluous padding, which OpenSSL rejects outright.
        assert_eq!(serial_hex(&[0x00, 0x01]), "0001");
        assert_eq!(serial_hex(&[]), "00");
    }

    #[test]
    fn ip_addresses_are_canonical() {
        assert_eq!(ip_text(&[192, 0, 2, 1]).as_deref(), Some("192.0.2.1"));
        let v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(ip_text(&v6).as_deref(), Some("2001:db8::1"));
        assert_eq!(ip_text(&[1, 2, 3]), None);
    }

    #[test]
    fn errors_carry_reasons() {
        assert_eq!(parse_certificate(&[]).unwrap_err().reason(), "empty_input");
        assert_eq!(parse_certificate(&[0x30, 0x05]).unwrap_err().reason(), "malformed_der");
        assert_eq!(parse_certificate(&[0x02, 0x01, 0x00]).unwrap_err().reason(), "malformed_der");
    }
}
