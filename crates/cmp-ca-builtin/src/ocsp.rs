//! The OCSP responder (RFC 6960): decodes a request, answers each CertID of this issuing CA
//! from the ledger (good, revoked or unknown) and signs a BasicOCSPResponse with the CA key.
//!
//! Malformed requests get a `malformedRequest` response, internal failures `internalError`;
//! nothing here panics. Statuses are read from the ledger on every request (never cached).

use cmp_ca::{CaError, CaLedger, RevocationReason};
use der::asn1::{BitString, GeneralizedTime, ObjectIdentifier, OctetString};
use der::{DateTime, Decode, Encode};
use time::{Duration, OffsetDateTime};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::CrlReason;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    ResponderId, ResponseData, RevokedInfo, SingleResponse, Version,
};

use crate::issuing::IssuingCa;

/// nextUpdate - thisUpdate of every answer.
pub const OCSP_VALIDITY: Duration = Duration::hours(1);
/// Largest request accepted, in bytes.
pub(crate) const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Most CertIDs answered in one request (clients send one).
pub(crate) const MAX_CERT_IDS: usize = 64;

const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");

/// `OCSPResponse { responseStatus malformedRequest(1) }`, for when encoding itself fails.
const MALFORMED_REQUEST: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x01];
/// `OCSPResponse { responseStatus internalError(2) }`.
const INTERNAL_ERROR: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x02];

/// Answers one DER OCSPRequest with a DER OCSPResponse.
pub(crate) async fn respond(
    ca: &IssuingCa,
    ledger: &dyn CaLedger,
    ca_id: &str,
    now: OffsetDateTime,
    request_der: &[u8],
) -> Vec<u8> {
    let Some(request) = decode(request_der) else {
        return OcspResponse::malformed_request().to_der().unwrap_or(MALFORMED_REQUEST.to_vec());
    };
    match answer(ca, ledger, ca_id, now, &request).await {
        Ok(der) => der,
        Err(_) => OcspResponse::internal_error().to_der().unwrap_or(INTERNAL_ERROR.to_vec()),
    }
}

/// The request, if it is a well-formed OCSPRequest of 1 to [`MAX_CERT_IDS`] CertIDs.
fn decode(der: &[u8]) -> Option<OcspRequest> {
    if der.len() > MAX_REQUEST_BYTES {
        return None;
    }
    // The decoder is not expected to panic; this keeps a bug in it from reaching the caller.
    let request = std::panic::catch_unwind(|| OcspRequest::from_der(der)).ok()?.ok()?;
    let count = request.tbs_request.request_list.len();
    (1..=MAX_CERT_IDS).contains(&count).then_some(request)
}

async fn answer(
    ca: &IssuingCa,
    ledger: &dyn CaLedger,
    ca_id: &str,
    now: OffsetDateTime,
    request: &OcspRequest,
) -> Result<Vec<u8>, CaError> {
    let this_update = generalized(now)?;
    let next_update = generalized(now + OCSP_VALIDITY)?;
    let mut responses = Vec::with_capacity(request.tbs_request.request_list.len());
    for single in &request.tbs_request.request_list {
        let cert_id = &single.req_cert;
        responses.push(SingleResponse {
            cert_id: cert_id.clone(),
            cert_status: status(ca, ledger, ca_id, cert_id).await?,
            this_update,
            next_update: Some(next_update),
            single_extensions: None,
        });
    }
    let nonce: Vec<Extension> = request
        .tbs_request
        .request_extensions
        .iter()
        .flatten()
        .filter(|extension| extension.extn_id == NONCE)
        .take(1)
        .cloned()
        .collect();
    let tbs_response_data = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByKey(encoding(OctetString::new(ca.hashes.key_sha1.clone()))?),
        produced_at: this_update,
        responses,
        response_extensions: (!nonce.is_empty()).then_some(nonce),
    };
    let signature = ca.sign(&encoding(tbs_response_data.to_der())?)?;
    let basic = BasicOcspResponse {
        tbs_response_data,
        signature_algorithm: ca.signature_algorithm.clone(),
        signature: encoding(BitString::from_bytes(&signature))?,
        certs: Some(vec![ca.issuing_cert.clone()]),
    };
    encoding(OcspResponse::successful(basic).and_then(|response| response.to_der()))
}

/// Good if this CA issued the serial and it is not revoked, revoked (time, reason) if it is,
/// unknown if the CertID names another issuer, an unsupported hash, or a serial never issued.
async fn status(
    ca: &IssuingCa,
    ledger: &dyn CaLedger,
    ca_id: &str,
    cert_id: &CertId,
) -> Result<CertStatus, CaError> {
    let hashes = &ca.hashes;
    let algorithm = cert_id.hash_algorithm.oid;
    let (name_hash, key_hash) = if algorithm == SHA1 {
        (&hashes.name_sha1, &hashes.key_sha1)
    } else if algorithm == SHA256 {
        (&hashes.name_sha256, &hashes.key_sha256)
    } else {
        return Ok(CertStatus::unknown());
    };
    if cert_id.issuer_name_hash.as_bytes() != name_hash.as_slice()
        || cert_id.issuer_key_hash.as_bytes() != key_hash.as_slice()
    {
        return Ok(CertStatus::unknown());
    }
    // A negative or empty serial is never in the ledger: it comes back `unknown` below.
    let serial = cmp_pki::serial_hex(cert_id.serial_number.as_bytes());
    let Some(entry) = ledger.find_by_serial(ca_id, &serial).await? else {
        return Ok(CertStatus::unknown());
    };
    let Some(revoked_at) = entry.revoked_at else {
        return Ok(CertStatus::good());
    };
    let revoked_at = OffsetDateTime::from_unix_timestamp(revoked_at)
        .map_err(|_| CaError::Internal(format!("serial {serial} has an impossible time")))?;
    Ok(CertStatus::revoked(RevokedInfo {
        revocation_time: generalized(revoked_at)?,
        // As in the CRL, "unspecified" is written as no reason at all (RFC 5280 5.3.1).
        revocation_reason: entry
            .revocation_reason
            .filter(|reason| *reason != RevocationReason::Unspecified)
            .map(crl_reason),
    }))
}

fn generalized(time: OffsetDateTime) -> Result<OcspGeneralizedTime, CaError> {
    let seconds = u64::try_from(time.unix_timestamp())
        .map_err(|_| CaError::Internal("time before 1970 in an OCSP response".into()))?;
    let date = encoding(DateTime::from_unix_duration(std::time::Duration::from_secs(seconds)))?;
    Ok(OcspGeneralizedTime(GeneralizedTime::from_date_time(date)))
}

fn encoding<T>(result: der::Result<T>) -> Result<T, CaError> {
    result.map_err(|e| CaError::Internal(format!("OCSP encoding failed: {e}")))
}

fn crl_reason(reason: RevocationReason) -> CrlReason {
    match reason {
        RevocationReason::Unspecified => CrlReason::Unspecified,
        RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
        RevocationReason::CaCompromise => CrlReason::CaCompromise,
        RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
        RevocationReason::Superseded => CrlReason::Superseded,
        RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
        RevocationReason::CertificateHold => CrlReason::CertificateHold,
        RevocationReason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
        RevocationReason::AaCompromise => CrlReason::AaCompromise,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_statuses_match_x509_ocsp() {
        assert_eq!(OcspResponse::malformed_request().to_der().unwrap(), MALFORMED_REQUEST);
        assert_eq!(OcspResponse::internal_error().to_der().unwrap(), INTERNAL_ERROR);
    }

    #[test]
    fn every_reason_maps_to_its_code() {
        for reason in RevocationReason::ALL {
            assert_eq!(crl_reason(reason) as u8, reason.code());
        }
    }

    #[test]
    fn requests_are_bounded() {
        assert!(decode(&[]).is_none());
        assert!(decode(&[0x30, 0x00]).is_none());
        assert!(decode(&vec![0x30; MAX_REQUEST_BYTES + 1]).is_none());
    }
}
