//! The client side of OCSP: a request for one certificate, and the signed answer checked
//! against the issuer's key (what `cmpctl pki check` shows).

use der::asn1::OctetString;
use der::{Decode, Encode};
use sha1::{Digest, Sha1};
use x509_cert::Certificate;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    TbsRequest, Version,
};
use x509_parser::prelude::FromDer;

/// What a responder said about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OcspAnswer {
    Good,
    /// Revocation time (RFC 3339) and RFC 5280 reason code, if given.
    Revoked {
        at: String,
        reason: Option<u8>,
    },
    Unknown,
}

fn bad(what: impl std::fmt::Display) -> String {
    what.to_string()
}

/// A DER OCSPRequest (SHA-1 CertID, no nonce) for `leaf`, issued by `issuer` (both DER).
pub fn ocsp_request(leaf_der: &[u8], issuer_der: &[u8]) -> Result<Vec<u8>, String> {
    let leaf = Certificate::from_der(leaf_der).map_err(bad)?;
    let issuer = Certificate::from_der(issuer_der).map_err(bad)?;
    let name_hash = Sha1::digest(issuer.tbs_certificate.subject.to_der().map_err(bad)?);
    let key = issuer.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
    let cert_id = CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: der::oid::db::rfc5912::ID_SHA_1,
            parameters: Some(der::asn1::Null.into()),
        },
        issuer_name_hash: OctetString::new(name_hash.to_vec()).map_err(bad)?,
        issuer_key_hash: OctetString::new(Sha1::digest(key).to_vec()).map_err(bad)?,
        serial_number: leaf.tbs_certificate.serial_number.clone(),
    };
    let request = OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: vec![Request { req_cert: cert_id, single_request_extensions: None }],
            request_extensions: None,
        },
        optional_signature: None,
    };
    request.to_der().map_err(bad)
}

/// Reads a DER OCSPResponse, checks its signature with the issuer's key, and returns the
/// status of its first certificate.
pub fn read_ocsp_response(response_der: &[u8], issuer_der: &[u8]) -> Result<OcspAnswer, String> {
    let response = OcspResponse::from_der(response_der).map_err(bad)?;
    if response.response_status != OcspResponseStatus::Successful {
        return Err(format!("the responder answered {:?}", response.response_status));
    }
    let bytes = response.response_bytes.ok_or("a successful answer without a response")?;
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(bad)?;
    let (_, issuer) =
        x509_parser::certificate::X509Certificate::from_der(issuer_der).map_err(bad)?;
    let algorithm_der = basic.signature_algorithm.to_der().map_err(bad)?;
    let (_, algorithm) =
        x509_parser::x509::AlgorithmIdentifier::from_der(&algorithm_der).map_err(bad)?;
    let signature =
        x509_parser::der_parser::asn1_rs::BitString::new(0, basic.signature.raw_bytes());
    let tbs = basic.tbs_response_data.to_der().map_err(bad)?;
    x509_parser::verify::verify_signature(issuer.public_key(), &algorithm, &signature, &tbs)
        .map_err(|_| "the response signature does not verify with the issuer's key".to_string())?;
    let single = basic.tbs_response_data.responses.first().ok_or("an answer about nothing")?;
    Ok(match &single.cert_status {
        CertStatus::Good(_) => OcspAnswer::Good,
        CertStatus::Unknown(_) => OcspAnswer::Unknown,
        CertStatus::Revoked(info) => OcspAnswer::Revoked {
            at: info.revocation_time.0.to_date_time().to_string(),
            reason: info.revocation_reason.map(|r| r as u8),
        },
    })
}
