//! PKCS#10 certificate signing requests: PEM or DER in, signature verified, key and requested
//! names out. Nothing that fails verification, or whose key cannot be verified, gets through.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cmp_domain::{KeyInfo, KeyType};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::error::X509Error;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::algorithms;
use crate::asn1::{self, Asn1Error, Tag};
use crate::detect::{self, Kind};
use crate::names;
use crate::pem::{self, Body};

/// Largest CSR accepted, PEM or DER. Real CSRs (RSA-4096 with many names) stay under 8 KiB.
pub const MAX_CSR_BYTES: usize = 64 * 1024;

/// Smallest and largest RSA modulus accepted (what the signature verifier accepts).
const RSA_MIN_BITS: u32 = 2048;
const RSA_MAX_BITS: u32 = 8192;

/// PEM labels of a PKCS#10 request (the second is Netscape's, still written by some tools).
const CSR_LABELS: [&str; 2] = ["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"];

/// A verified certificate signing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrInfo {
    /// The whole request, DER.
    pub der: Vec<u8>,
    /// The requested key, a DER SubjectPublicKeyInfo exactly as in the request.
    pub spki_der: Vec<u8>,
    /// Key type, size and curve, filled as for certificates.
    pub key: KeyInfo,
    /// The last common name of the subject, if any.
    pub common_name: Option<String>,
    /// DNS names of the subjectAltName in the extensionRequest attribute, in request order.
    pub dns_names: Vec<String>,
    /// IP addresses of that subjectAltName, in request order.
    pub ip_addresses: Vec<IpAddr>,
}

/// Why bytes are not an acceptable CSR. Messages are safe to show to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    /// There are no bytes (or only whitespace).
    #[error("the CSR is empty")]
    Empty,
    /// The input is larger than [`MAX_CSR_BYTES`].
    #[error("the CSR is larger than {} KiB", MAX_CSR_BYTES / 1024)]
    TooLarge,
    /// Something other than a CSR was given (a certificate, a key, other text).
    #[error("this is not a certificate signing request: it is {0}")]
    NotACsr(String),
    /// The input looks like a CSR but cannot be read (truncated, bad base64, bad DER).
    #[error("the CSR is malformed: {0}")]
    Malformed(String),
    /// The requested key's type or size is not accepted.
    #[error("the CSR's key is not supported: {0}")]
    UnsupportedKey(String),
    /// The request is signed with an algorithm that cannot be verified.
    #[error("the CSR's signature algorithm is not supported: {0}")]
    UnsupportedSignatureAlgorithm(String),
    /// The signature does not verify with the request's own key.
    #[error("the CSR's signature does not verify with its public key")]
    BadSignature,
}

/// Parses and verifies a CSR given as PEM (`CERTIFICATE REQUEST` or `NEW CERTIFICATE REQUEST`)
/// or DER. Never panics on any input.
///
/// Accepted keys are those whose signature can be verified: RSA of 2048 to 8192 bits, EC on
/// P-256 or P-384, and Ed25519. In PEM text, other blocks around the request are ignored
/// (and never decoded); exactly one request block must be present.
pub fn parse_csr(input: &[u8]) -> Result<CsrInfo, CsrError> {
    if input.len() > MAX_CSR_BYTES {
        return Err(CsrError::TooLarge);
    }
    if input.trim_ascii().is_empty() {
        return Err(CsrError::Empty);
    }
    if input.first() == Some(&0x30) {
        return parse_der(input);
    }
    if pem::looks_like_pem(input) {
        return parse_der(&pem_body(input)?);
    }
    Err(CsrError::NotACsr("neither PEM text nor DER".into()))
}

/// The decoded body of the single request block in PEM text.
fn pem_body(input: &[u8]) -> Result<Vec<u8>, CsrError> {
    let blocks = pem::scan(input);
    let mut requests = blocks.iter().filter(|b| CSR_LABELS.contains(&b.label.as_str()));
    let Some(block) = requests.next() else {
        return Err(CsrError::NotACsr(match blocks.first() {
            Some(block) => format!("a PEM block labelled \"{}\"", block.label),
            None => "text with no well-formed PEM block".into(),
        }));
    };
    if requests.next().is_some() {
        return Err(CsrError::Malformed("the text holds more than one request block".into()));
    }
    match block.body {
        Body::Complete(body) => pem::decode(body).map_err(|error| {
            CsrError::Malformed(match error {
                pem::DecodeError::Empty => "the PEM block is empty".into(),
                pem::DecodeError::BadBase64 => "the PEM block is not valid base64".into(),
            })
        }),
        Body::Unterminated => Err(CsrError::Malformed("the PEM block has no END line".into())),
        Body::MismatchedEnd => {
            Err(CsrError::Malformed("the PEM block ends with another label".into()))
        }
    }
}

fn parse_der(der: &[u8]) -> Result<CsrInfo, CsrError> {
    let asn1_error = |e: Asn1Error| CsrError::Malformed(format!("the DER is not well-formed: {e}"));
    let (outer, rest) = asn1::read_tlv(der).map_err(asn1_error)?;
    if outer.tag != Tag::SEQUENCE {
        return Err(CsrError::NotACsr("DER that does not start with a SEQUENCE".into()));
    }
    if !rest.is_empty() {
        return Err(CsrError::Malformed(format!(
            "{} after the end of the request",
            crate::import::byte_count(rest.len())
        )));
    }
    // Bound the nesting before x509-parser sees the bytes.
    asn1::check_depth(outer.raw).map_err(asn1_error)?;
    match detect::classify(&outer) {
        Kind::Csr => {}
        other => return Err(CsrError::NotACsr(describe(other).into())),
    }
    // Even a bug in the third-party parser must not take the caller down.
    std::panic::catch_unwind(|| verified(outer.raw)).unwrap_or_else(|_| {
        Err(CsrError::Malformed("the PKCS#10 parser failed on this input".into()))
    })
}

fn describe(kind: Kind) -> &'static str {
    match kind {
        Kind::Certificate => "a certificate",
        Kind::Pkcs7 => "a PKCS#7 bundle",
        Kind::OtherCms => "a CMS message",
        Kind::Pkcs12 => "a PKCS#12 file",
        Kind::Crl => "a certificate revocation list",
        Kind::PrivateKey => "a private key",
        Kind::PublicKey => "a bare public key",
        Kind::Csr | Kind::Unknown => "DER of an unknown kind",
    }
}

fn verified(der: &[u8]) -> Result<CsrInfo, CsrError> {
    let (rest, csr) = X509CertificationRequest::from_der(der)
        .map_err(|e| CsrError::Malformed(format!("not a valid PKCS#10 request: {e}")))?;
    if !rest.is_empty() {
        return Err(CsrError::Malformed("bytes after the end of the request".into()));
    }
    let info = &csr.certification_request_info;
    let spki_der = info.subject_pki.raw;
    let key = algorithms::key_info(spki_der);
    check_key(&key)?;
    csr.verify_signature().map_err(|error| match error {
        X509Error::SignatureUnsupportedAlgorithm => CsrError::UnsupportedSignatureAlgorithm(
            algorithms::signature_name(csr.signature_algorithm.algorithm.as_bytes()),
        ),
        _ => CsrError::BadSignature,
    })?;
    let common_name = names::common_name(info.subject.as_raw())
        .map_err(|e| CsrError::Malformed(format!("unreadable subject: {e}")))?;
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    for extension in csr.requested_extensions().into_iter().flatten() {
        let ParsedExtension::SubjectAlternativeName(san) = extension else { continue };
        for name in &san.general_names {
            match name {
                GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
                GeneralName::IPAddress(bytes) => ip_addresses.push(ip_address(bytes)?),
                _ => {}
            }
        }
    }
    Ok(CsrInfo {
        der: der.to_vec(),
        spki_der: spki_der.to_vec(),
        key,
        common_name,
        dns_names,
        ip_addresses,
    })
}

/// Refuses keys whose signatures cannot be verified, with a sentence saying why.
fn check_key(key: &KeyInfo) -> Result<(), CsrError> {
    let refuse = |why: String| Err(CsrError::UnsupportedKey(why));
    match (key.kind, key.bits, key.curve.as_deref()) {
        (KeyType::Rsa, Some(bits), _) if bits < RSA_MIN_BITS => {
            refuse(format!("RSA keys need at least {RSA_MIN_BITS} bits; this one has {bits}"))
        }
        (KeyType::Rsa, Some(bits), _) if bits > RSA_MAX_BITS => {
            refuse(format!("RSA keys of more than {RSA_MAX_BITS} bits are not accepted ({bits})"))
        }
        (KeyType::Rsa, Some(_), _) => Ok(()),
        (KeyType::Ec, _, Some("P-256" | "P-384")) => Ok(()),
        (KeyType::Ec, _, curve) => refuse(format!(
            "EC curve {} is not accepted (P-256 and P-384 are)",
            curve.unwrap_or("with explicit parameters")
        )),
        (KeyType::Ed25519, _, _) => Ok(()),
        (KeyType::Rsa, None, _) => refuse("the RSA key cannot be read".into()),
        (KeyType::Ed448, ..) => refuse("Ed448 keys are not accepted".into()),
        (KeyType::Dsa, ..) => refuse("DSA keys are not accepted".into()),
        (KeyType::Other, ..) => refuse("the key algorithm is not recognised".into()),
    }
}

fn ip_address(bytes: &[u8]) -> Result<IpAddr, CsrError> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Ok(IpAddr::V4(Ipv4Addr::from(v4)));
    }
    <[u8; 16]>::try_from(bytes)
        .map(|v6| IpAddr::V6(Ipv6Addr::from(v6)))
        .map_err(|_| CsrError::Malformed(format!("an IP address SAN has {} bytes", bytes.len())))
}
