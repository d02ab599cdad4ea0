//! Import bodies into certificates: detects the format (PEM text, DER certificate, PKCS#7,
//! PKCS#12), decodes what it can and gives every rejected part a reason code and a sentence.
//!
//! Private-key material is never decoded and never echoed; the password is never echoed.

use cmp_domain::CertificateFacts;

use crate::asn1::{self, Asn1Error, Tag, Tlv};
use crate::detect::{self, Kind};
use crate::parse::{self, ParseError};
use crate::pem::{self, Body};
use crate::pkcs7;
use crate::pkcs12::{self, CertBag, Pkcs12Error};
use crate::reason;

/// The outcome of [`decode_import`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportDecoded {
    /// Certificates that parsed, in input order (may contain duplicates; caller dedupes by fingerprint).
    pub certificates: Vec<CertificateFacts>,
    /// Inputs that were rejected, each with why.
    pub rejected: Vec<Rejection>,
}

/// One rejected part of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Where in the input: e.g. "PEM block 3", "input", "PKCS#7 certificate 2".
    pub item: String,
    /// Stable machine-readable reason code, one of [`reason::ALL`].
    pub reason: &'static str,
    /// Human sentence naming the cause; never contains key material or the password.
    pub detail: String,
}

/// Decode an import body into certificates. `password` is for PKCS#12.
///
/// Accepts PEM text (any number of blocks, CRLF, text around blocks; `CERTIFICATE`,
/// `X509 CERTIFICATE`, `TRUSTED CERTIFICATE`, `PKCS7` labels), a raw DER certificate, a DER
/// PKCS#7 SignedData bundle and a DER PKCS#12 file. Binary input is tried as a DER
/// certificate, then PKCS#7, then PKCS#12. Never panics.
pub fn decode_import(input: &[u8], password: Option<&str>) -> ImportDecoded {
    let mut importer = Importer { password, decoded: ImportDecoded::default(), each: None };
    importer.run(input);
    importer.decoded
}

/// [`decode_import`], handing each certificate to `each` as soon as it is read instead of
/// collecting them, so that a caller can store the start of a large bundle while the rest is
/// read. Returns the rejected parts.
pub fn decode_import_each(
    input: &[u8],
    password: Option<&str>,
    each: &mut dyn FnMut(CertificateFacts),
) -> Vec<Rejection> {
    let mut importer = Importer { password, decoded: ImportDecoded::default(), each: Some(each) };
    importer.run(input);
    importer.decoded.rejected
}

/// The item name of the whole input.
const INPUT: &str = "input";

struct Importer<'p> {
    password: Option<&'p str>,
    decoded: ImportDecoded,
    /// Where certificates go as they are read; `decoded.certificates` without one.
    each: Option<&'p mut dyn FnMut(CertificateFacts)>,
}

impl Importer<'_> {
    fn run(&mut self, input: &[u8]) {
        if input.trim_ascii().is_empty() {
            return self.reject(INPUT, reason::EMPTY_INPUT, "the input is empty".into());
        }
        if input.first() == Some(&0x30) {
            // Text can start with "0" (0x30), so a failed binary attempt falls back to PEM.
            let mut binary =
                Importer { password: self.password, decoded: ImportDecoded::default(), each: None };
            binary.der(INPUT, input);
            let unrecognised = binary.decoded.certificates.is_empty()
                && binary.decoded.rejected.iter().all(|r| {
                    [reason::UNSUPPORTED_FORMAT, reason::MALFORMED_DER, reason::TRAILING_DATA]
                        .contains(&r.reason)
                });
            if !unrecognised || !pem::looks_like_pem(input) {
                self.decoded.rejected = binary.decoded.rejected;
                binary.decoded.certificates.into_iter().for_each(|c| self.accept(c));
                return;
            }
        }
        if pem::looks_like_pem(input) {
            self.pem(input);
        } else {
            self.der(INPUT, input);
        }
    }

    fn reject(&mut self, item: &str, reason: &'static str, detail: String) {
        self.decoded.rejected.push(Rejection { item: item.to_owned(), reason, detail });
    }

    fn accept(&mut self, facts: CertificateFacts) {
        match &mut self.each {
            Some(each) => each(facts),
            None => self.decoded.certificates.push(facts),
        }
    }

    // --- PEM ---------------------------------------------------------------------------

    fn pem(&mut self, input: &[u8]) {
        let blocks = pem::scan(input);
        if blocks.is_empty() {
            let detail =
                "the text contains \"-----BEGIN \" but no well-formed PEM header line".into();
            return self.reject(INPUT, reason::MALFORMED_PEM, detail);
        }
        for block in blocks {
            self.pem_block(&block);
        }
    }

    fn pem_block(&mut self, block: &pem::Block<'_>) {
        let item = format!("PEM block {}", block.index);
        let label = block.label.as_str();
        let kind = match Label::of(label) {
            Label::PrivateKey => {
                let detail = format!(
                    "{item} is a private key (\"{label}\"); only certificates are imported"
                );
                return self.reject(&item, reason::PRIVATE_KEY_NOT_CERTIFICATE, detail);
            }
            Label::Csr => {
                let detail = format!(
                    "{item} is a certificate signing request (\"{label}\"), not a certificate"
                );
                return self.reject(&item, reason::CSR_NOT_CERTIFICATE, detail);
            }
            Label::Other => {
                let detail = format!("{item} is labelled \"{label}\", which is not a certificate");
                return self.reject(&item, reason::NOT_A_CERTIFICATE, detail);
            }
            kind => kind,
        };
        let body = match &block.body {
            Body::Complete(body) => *body,
            Body::Unterminated => {
                let detail =
                    format!("{item} (\"{label}\") has no matching \"-----END {label}-----\" line");
                return self.reject(&item, reason::MALFORMED_PEM, detail);
            }
            Body::MismatchedEnd => {
                let detail =
                    format!("{item} (\"{label}\") ends with an END line for another label");
                return self.reject(&item, reason::MALFORMED_PEM, detail);
            }
        };
        let der = match pem::decode(body) {
            Ok(der) => der,
            Err(pem::DecodeError::Empty) => {
                return self.reject(
                    &item,
                    reason::MALFORMED_PEM,
                    format!("{item} has an empty body"),
                );
            }
            Err(pem::DecodeError::BadBase64) => {
                let detail = format!("the body of {item} is not valid base64");
                return self.reject(&item, reason::MALFORMED_PEM, detail);
            }
        };
        if kind == Label::TrustedCertificate {
            self.trusted_certificate(&item, &der);
        } else {
            self.der(&item, &der);
        }
    }

    /// OpenSSL's TRUSTED CERTIFICATE: a certificate followed by trust settings, which are ignored.
    fn trusted_certificate(&mut self, item: &str, der: &[u8]) {
        match parse::parse_leading_certificate(der) {
            Ok((facts, _trust_settings)) => self.accept(facts),
            Err(error) => self.reject_parse(item, &error),
        }
    }

    // --- DER ---------------------------------------------------------------------------

    /// One DER structure: the whole binary input, or the body of a PEM block.
    fn der(&mut self, item: &str, der: &[u8]) {
        let Some(sequence) = self.outer_sequence(item, der) else {
            return;
        };
        match detect::classify(&sequence) {
            Kind::Certificate => self.certificate(item, sequence.raw),
            Kind::Pkcs7 => self.pkcs7(item, &sequence),
            Kind::Pkcs12 => self.pkcs12(item, &sequence),
            Kind::Csr => {
                let detail = "this is a certificate signing request (PKCS#10), not a certificate";
                self.reject(item, reason::CSR_NOT_CERTIFICATE, detail.into());
            }
            Kind::PrivateKey => {
                let detail = "this is a private key; only certificates are imported";
                self.reject(item, reason::PRIVATE_KEY_NOT_CERTIFICATE, detail.into());
            }
            Kind::Crl => {
                let detail = "this is a certificate revocation list, not a certificate";
                self.reject(item, reason::NOT_A_CERTIFICATE, detail.into());
            }
            Kind::PublicKey => {
                let detail = "this is a bare public key, not a certificate";
                self.reject(item, reason::NOT_A_CERTIFICATE, detail.into());
            }
            Kind::OtherCms => {
                let detail =
                    "this is a PKCS#7/CMS message other than SignedData; it holds no certificates";
                self.reject(item, reason::UNSUPPORTED_FORMAT, detail.into());
            }
            Kind::Unknown => self.reject(item, reason::UNSUPPORTED_FORMAT, unsupported_detail()),
        }
    }

    /// The single, well-formed, not-too-deep SEQUENCE that `der` must be; rejects otherwise.
    fn outer_sequence<'a>(&mut self, item: &str, der: &'a [u8]) -> Option<Tlv<'a>> {
        let starts_like_der = der.first() == Some(&0x30);
        let (tlv, rest) = match asn1::read_tlv(der) {
            Ok(found) => found,
            Err(error) if starts_like_der => {
                self.reject_asn1(item, error);
                return None;
            }
            Err(_) => {
                self.reject(item, reason::UNSUPPORTED_FORMAT, unsupported_detail());
                return None;
            }
        };
        if tlv.tag != Tag::SEQUENCE {
            self.reject(item, reason::UNSUPPORTED_FORMAT, unsupported_detail());
            return None;
        }
        if let Err(error) = asn1::check_depth(tlv.raw) {
            self.reject_asn1(item, error);
            return None;
        }
        if !rest.is_empty() {
            let detail = format!("{} after the end of the DER structure", byte_count(rest.len()));
            self.reject(item, reason::TRAILING_DATA, detail);
            return None;
        }
        Some(tlv)
    }

    fn certificate(&mut self, item: &str, der: &[u8]) {
        match parse::parse_certificate(der) {
            Ok(facts) => self.accept(facts),
            Err(error) => self.reject_parse(item, &error),
        }
    }

    fn pkcs7(&mut self, item: &str, content_info: &Tlv<'_>) {
        let choices = match pkcs7::certificate_choices(content_info) {
            Ok(choices) => choices,
            Err(error) => return self.reject_asn1(item, error),
        };
        if choices.is_empty() {
            let detail = "the PKCS#7 bundle holds no certificates".into();
            return self.reject(item, reason::NO_CERTIFICATES, detail);
        }
        for (index, choice) in choices.iter().enumerate() {
            let sub_item = nested(item, &format!("PKCS#7 certificate {}", index + 1));
            if choice.tag == Tag::SEQUENCE {
                self.certificate(&sub_item, choice.raw);
            } else {
                let detail = "this PKCS#7 entry is an attribute or other non-X.509 certificate";
                self.reject(&sub_item, reason::NOT_A_CERTIFICATE, detail.into());
            }
        }
    }

    fn pkcs12(&mut self, item: &str, pfx: &Tlv<'_>) {
        let password = self.password;
        let outcome =
            std::panic::catch_unwind(|| pkcs12::extract(pfx, password)).unwrap_or_else(|_| {
                Err(Pkcs12Error::Unsupported("the PKCS#12 reader failed on this input".into()))
            });
        let contents = match outcome {
            Ok(contents) => contents,
            Err(error) => return self.reject_pkcs12(item, error),
        };
        for (safe, why) in &contents.skipped {
            let sub_item = nested(item, &format!("PKCS#12 safe {safe}"));
            self.reject(&sub_item, reason::UNSUPPORTED_FORMAT, why.clone());
        }
        if contents.certificates.is_empty() && contents.skipped.is_empty() {
            let detail = "the PKCS#12 file holds no certificates".into();
            return self.reject(item, reason::NO_CERTIFICATES, detail);
        }
        for (index, bag) in contents.certificates.iter().enumerate() {
            let sub_item = nested(item, &format!("PKCS#12 certificate {}", index + 1));
            match bag {
                CertBag::X509(der) => self.certificate(&sub_item, der),
                CertBag::Other(kind) => {
                    let detail =
                        format!("this PKCS#12 entry is a certificate of type {kind}, not X.509");
                    self.reject(&sub_item, reason::NOT_A_CERTIFICATE, detail);
                }
            }
        }
    }

    // --- errors ------------------------------------------------------------------------

    fn reject_parse(&mut self, item: &str, error: &ParseError) {
        self.reject(item, error.reason(), error.to_string());
    }

    fn reject_asn1(&mut self, item: &str, error: Asn1Error) {
        match error {
            Asn1Error::TooDeep => {
                let detail = format!(
                    "the ASN.1 structure is nested more than {} levels deep",
                    asn1::MAX_DEPTH
                );
                self.reject(item, reason::NESTING_TOO_DEEP, detail);
            }
            other => {
                let detail = format!("the DER structure is not well-formed: {other}");
                self.reject(item, reason::MALFORMED_DER, detail);
            }
        }
    }

    fn reject_pkcs12(&mut self, item: &str, error: Pkcs12Error) {
        match error {
            Pkcs12Error::WrongPassword if self.password.is_none_or(str::is_empty) => {
                let detail = "the PKCS#12 file is password-protected and no password was given";
                self.reject(item, reason::WRONG_PASSWORD, detail.into());
            }
            Pkcs12Error::WrongPassword => {
                let detail = "the password given does not open this PKCS#12 file";
                self.reject(item, reason::WRONG_PASSWORD, detail.into());
            }
            Pkcs12Error::Unsupported(why) => self.reject(item, reason::UNSUPPORTED_FORMAT, why),
            Pkcs12Error::Malformed(error) => self.reject_asn1(item, error),
        }
    }
}

/// "1 byte" / "7 bytes".
pub(crate) fn byte_count(n: usize) -> String {
    if n == 1 { "1 byte".to_owned() } else { format!("{n} bytes") }
}

fn unsupported_detail() -> String {
    "the input is not PEM, a DER certificate, a PKCS#7 bundle or a PKCS#12 file".into()
}

/// `"PKCS#7 certificate 2"` inside `"PEM block 1"` is `"PEM block 1, PKCS#7 certificate 2"`.
fn nested(outer: &str, inner: &str) -> String {
    if outer == INPUT { inner.to_owned() } else { format!("{outer}, {inner}") }
}

/// What a PEM label promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Certificate,
    TrustedCertificate,
    Pkcs7,
    PrivateKey,
    Csr,
    Other,
}

impl Label {
    fn of(label: &str) -> Label {
        match label {
            "CERTIFICATE" | "X509 CERTIFICATE" => Label::Certificate,
            "TRUSTED CERTIFICATE" => Label::TrustedCertificate,
            "PKCS7" | "PKCS #7 SIGNED DATA" | "CMS" => Label::Pkcs7,
            "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => Label::Csr,
            _ if label.ends_with("PRIVATE KEY") => Label::PrivateKey,
            _ => Label::Other,
        }
    }
}
