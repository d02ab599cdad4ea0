//! The client side of OCSP (RFC 6960): a request for one certificate, and the signed answer
//! checked against the issuer's key (what `cmpctl pki ocsp` shows). No network: the caller
//! sends the request and hands back the response.

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
    /// Not revoked.
    Good,
    /// Revocation time (RFC 3339) and RFC 5280 reason code, if given.
    Revoked { at: String, reason: Option<u8> },
    /// The responder does not know the certificate.
    Unknown,
}

/// Why a request could not be built or an answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OcspError {
    /// A certificate or the response is not the DER it should be (the decoder's words).
    #[error("{0}")]
    Malformed(String),
    /// The responder answered with an error status (e.g. `Unauthorized`) instead of a response.
    #[error("the responder answered {0}")]
    Unsuccessful(String),
    /// A successful answer that holds no response, or no certificate status.
    #[error("{0}")]
    Empty(&'static str),
    /// The response's signature does not verify with the issuer's public key.
    #[error("the response signature does not verify with the issuer's key")]
    BadSignature,
}

fn malformed(what: impl std::fmt::Display) -> OcspError {
    OcspError::Malformed(what.to_string())
}

/// A DER OCSPRequest (SHA-1 CertID, no nonce) for `leaf`, issued by `issuer` (both DER).
pub fn ocsp_request(leaf_der: &[u8], issuer_der: &[u8]) -> Result<Vec<u8>, OcspError> {
    let leaf = Certificate::from_der(leaf_der).map_err(malformed)?;
    let issuer = Certificate::from_der(issuer_der).map_err(malformed)?;
    let name_hash = Sha1::digest(issuer.tbs_certificate.subject.to_der().map_err(malformed)?);
    let key = issuer.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
    let cert_id = CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: der::oid::db::rfc5912::ID_SHA_1,
            parameters: Some(der::asn1::Null.into()),
        },
        issuer_name_hash: OctetString::new(name_hash.to_vec()).map_err(malformed)?,
        issuer_key_hash: OctetString::new(Sha1::digest(key).to_vec()).map_err(malformed)?,
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
    request.to_der().map_err(malformed)
}

/// Reads a DER OCSPResponse, checks its signature with the issuer's key, and returns the
/// status of its first certificate.
pub fn read_ocsp_response(response_der: &[u8], issuer_der: &[u8]) -> Result<OcspAnswer, OcspError> {
    let response = OcspResponse::from_der(response_der).map_err(malformed)?;
    if response.response_status != OcspResponseStatus::Successful {
        return Err(OcspError::Unsuccessful(format!("{:?}", response.response_status)));
    }
    let bytes = response
        .response_bytes
        .ok_or(OcspError::Empty("a successful answer without a response"))?;
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(malformed)?;
    let (_, issuer) =
        x509_parser::certificate::X509Certificate::from_der(issuer_der).map_err(malformed)?;
    let algorithm_der = basic.signature_algorithm.to_der().map_err(malformed)?;
    let (_, algorithm) =
        x509_parser::x509::AlgorithmIdentifier::from_der(&algorithm_der).map_err(malformed)?;
    let signature =
        x509_parser::der_parser::asn1_rs::BitString::new(0, basic.signature.raw_bytes());
    let tbs = basic.tbs_response_data.to_der().map_err(malformed)?;
    x509_parser::verify::verify_signature(issuer.public_key(), &algorithm, &signature, &tbs)
        .map_err(|_| OcspError::BadSignature)?;
    let single = basic
        .tbs_response_data
        .responses
        .first()
        .ok_or(OcspError::Empty("an answer about nothing"))?;
    Ok(match &single.cert_status {
        CertStatus::Good(_) => OcspAnswer::Good,
        CertStatus::Unknown(_) => OcspAnswer::Unknown,
        CertStatus::Revoked(info) => OcspAnswer::Revoked {
            at: info.revocation_time.0.to_date_time().to_string(),
            reason: info.revocation_reason.map(|r| r as u8),
        },
    })
}

#[cfg(test)]
mod tests {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    use super::*;

    #[test]
    fn a_request_names_the_leaf_serial_under_its_issuer() {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_params = CertificateParams::new(vec!["a.example".into()]).unwrap();
        let leaf =
            leaf_params.signed_by(&leaf_key, &Issuer::from_params(&ca_params, &ca_key)).unwrap();

        let der = ocsp_request(leaf.der(), ca.der()).unwrap();
        let request = OcspRequest::from_der(&der).unwrap();
        let [one] = request.tbs_request.request_list.as_slice() else { panic!("{request:?}") };
        let leaf = Certificate::from_der(leaf.der()).unwrap();
        assert_eq!(one.req_cert.serial_number, leaf.tbs_certificate.serial_number);
        assert_eq!(one.req_cert.hash_algorithm.oid, der::oid::db::rfc5912::ID_SHA_1);
        assert!(request.optional_signature.is_none() && request.nonce().is_none());

        assert!(matches!(ocsp_request(b"garbage", ca.der()), Err(OcspError::Malformed(_))));
    }

    #[test]
    fn error_answers_and_garbage_are_errors() {
        // OCSPResponse { responseStatus: malformedRequest (1) }.
        let malformed_request = [0x30, 0x03, 0x0a, 0x01, 0x01];
        let error = read_ocsp_response(&malformed_request, b"").unwrap_err();
        assert_eq!(error, OcspError::Unsuccessful("MalformedRequest".into()));
        assert_eq!(error.to_string(), "the responder answered MalformedRequest");
        assert!(matches!(read_ocsp_response(b"garbage", b""), Err(OcspError::Malformed(_))));
    }
}
