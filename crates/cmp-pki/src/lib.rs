//! X.509 parsing and import for CMP: one DER certificate into [`CertificateFacts`], import
//! bodies (PEM, DER, PKCS#7, PKCS#12) into certificates plus a reason for everything rejected,
//! PKCS#10 requests into a verified [`CsrInfo`], and OCSP requests and their checked answers
//! ([`ocsp`]).
//!
//! Parsing never panics and bounds ASN.1 nesting before any parser recurses. Subjects and
//! issuers are printed exactly as `openssl x509 -nameopt RFC2253` prints them, serials as
//! `openssl x509 -serial` (lowercased). `self_signed` is a heuristic, not a signature check:
//! see [`parse_certificate`] and the module notes in `parse.rs`.

mod algorithms;
mod asn1;
pub mod csr;
mod detect;
mod import;
pub mod keygen;
mod names;
pub mod ocsp;
mod parse;
mod pem;
mod pkcs12;
mod pkcs7;
pub mod seal;

#[cfg(test)]
mod tests;

pub use cmp_domain::CertificateFacts;
pub use csr::{CsrError, CsrInfo, MAX_CSR_BYTES, parse_csr};
pub use import::{ImportDecoded, Rejection, decode_import, decode_import_each};
pub use keygen::{
    GeneratedKey, KeySpec, KeygenError, MIN_PKCS12_PASSWORD_CHARS, PKCS12_ITERATIONS,
    export_pkcs12, generate_key, make_csr,
};
pub use ocsp::{OcspAnswer, OcspError, ocsp_request, read_ocsp_response};
pub use parse::{ParseError, parse_certificate, serial_hex};
pub use seal::{SEAL_ALGORITHM, SealError, Sealed, certificate_public_key, open, seal};

use sha2::{Digest, Sha256};

/// SHA-256 of `bytes`, lowercase hex without colons.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The stable reason codes of [`Rejection::reason`].
pub mod reason {
    /// A PEM block or DER structure holds a private key; keys are never imported.
    pub const PRIVATE_KEY_NOT_CERTIFICATE: &str = "private_key_not_certificate";
    /// A certificate signing request was given instead of a certificate.
    pub const CSR_NOT_CERTIFICATE: &str = "csr_not_certificate";
    /// A PEM block is truncated, mismatched, empty or not base64.
    pub const MALFORMED_PEM: &str = "malformed_pem";
    /// DER that is truncated, not well-formed, or not a valid X.509 certificate.
    pub const MALFORMED_DER: &str = "malformed_der";
    /// Something recognisable that is not a certificate (CRL, public key, other PEM label).
    pub const NOT_A_CERTIFICATE: &str = "not_a_certificate";
    /// A PKCS#12 file that the given password (or no password) does not open.
    pub const WRONG_PASSWORD: &str = "wrong_password";
    /// Not PEM, DER certificate, PKCS#7 or PKCS#12; or a variant of those this crate lacks.
    pub const UNSUPPORTED_FORMAT: &str = "unsupported_format";
    /// Empty or whitespace-only input.
    pub const EMPTY_INPUT: &str = "empty_input";
    /// ASN.1 nested deeper than the parser accepts.
    pub const NESTING_TOO_DEEP: &str = "nesting_too_deep";
    /// Bytes after the end of a DER structure.
    pub const TRAILING_DATA: &str = "trailing_data";
    /// A PKCS#7 or PKCS#12 container that holds no certificates at all.
    pub const NO_CERTIFICATES: &str = "no_certificates";

    /// Every reason code.
    pub const ALL: [&str; 11] = [
        PRIVATE_KEY_NOT_CERTIFICATE,
        CSR_NOT_CERTIFICATE,
        MALFORMED_PEM,
        MALFORMED_DER,
        NOT_A_CERTIFICATE,
        WRONG_PASSWORD,
        UNSUPPORTED_FORMAT,
        EMPTY_INPUT,
        NESTING_TOO_DEEP,
        TRAILING_DATA,
        NO_CERTIFICATES,
    ];
}
