//! The OCSP responder, checked by `openssl ocsp`: good before and revoked (with reason) after
//! revocation, unknown for serials never issued or other issuers, SHA-1 and SHA-256 CertIDs,
//! nonces echoed, and a malformedRequest status (never a panic) for garbage. cmp-pki's OCSP
//! client (what `cmpctl pki ocsp` uses) asks as openssl does and reads the same answers.

use cmp_ca::{CaAdapter, RevocationReason};
use cmp_ca_builtin::KeyAlgorithm;
use cmp_pki::{OcspAnswer, OcspError, ocsp_request, read_ocsp_response};
use der::{Decode, Encode};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_ocsp::{BasicOcspResponse, OcspRequest, OcspResponse, OcspResponseStatus};

use crate::support::{LeafKey, TestCa, openssl, openssl_ok, pem, profile};

/// Builds a request with `openssl ocsp` (`args` name the certificate), answers it, and returns
/// what `openssl ocsp` says about the response (verified against the chain).
async fn ask(ca: &TestCa, name: &str, args: &[&str]) -> String {
    let request = ca.path(&format!("{name}.req"));
    let response = ca.path(&format!("{name}.resp"));
    let issuing = ca.path("issuing.pem");
    let chain = ca.path("chain.pem");
    let mut build = vec!["ocsp", "-issuer", &issuing];
    build.extend_from_slice(args);
    build.extend_from_slice(&["-no_nonce", "-reqout", &request]);
    openssl_ok(&build);
    let der = ca.ca.ocsp_response(&std::fs::read(&request).unwrap()).await;
    std::fs::write(&response, der).unwrap();
    let mut check = vec!["ocsp", "-respin", &response, "-issuer", &issuing];
    check.extend_from_slice(args);
    check.extend_from_slice(&["-no_nonce", "-CAfile", &chain, "-resp_text"]);
    openssl_ok(&check)
}

#[tokio::test]
async fn good_then_revoked_with_its_reason() {
    for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048, KeyAlgorithm::EcdsaP384] {
        let ca = TestCa::new(algorithm);
        let issued = ca.issue("leaf", &LeafKey::P256.generate(), profile()).await;
        let leaf = ca.write("leaf.pem", pem(&issued.certificate_der));

        let good = ask(&ca, "good", &["-cert", &leaf]).await;
        assert!(good.contains("Response verify OK"), "{algorithm:?}: {good}");
        assert!(good.contains(&format!("{leaf}: good")), "{algorithm:?}: {good}");
        assert!(good.contains("Next Update:"), "{good}");
        assert!(good.contains("Responder Id: "), "{good}");

        ca.ca.revoke_certificate(&issued.serial, RevocationReason::KeyCompromise).await.unwrap();
        let revoked = ask(&ca, "revoked", &["-cert", &leaf]).await;
        assert!(revoked.contains("Response verify OK"), "{algorithm:?}: {revoked}");
        assert!(revoked.contains(&format!("{leaf}: revoked")), "{algorithm:?}: {revoked}");
        assert!(revoked.contains("Reason: keyCompromise"), "{revoked}");
        assert!(revoked.contains("Revocation Time:"), "{revoked}");

        // SHA-256 CertIDs are answered as well.
        let sha256 = ask(&ca, "sha256", &["-sha256", "-cert", &leaf]).await;
        assert!(sha256.contains(&format!("{leaf}: revoked")), "{sha256}");
        assert!(sha256.contains("Hash Algorithm: sha256"), "{sha256}");
    }
}

#[tokio::test]
async fn verified_with_the_issuing_ca_as_responder() {
    let ca = TestCa::new(KeyAlgorithm::EcdsaP256);
    let issued = ca.issue("leaf", &LeafKey::Ed25519.generate(), profile()).await;
    let leaf = ca.write("leaf.pem", pem(&issued.certificate_der));
    let request = ca.path("va.req");
    let response = ca.path("va.resp");
    let issuing = ca.path("issuing.pem");
    openssl_ok(&["ocsp", "-issuer", &issuing, "-cert", &leaf, "-no_nonce", "-reqout", &request]);
    std::fs::write(&response, ca.ca.ocsp_response(&std::fs::read(&request).unwrap()).await)
        .unwrap();
    let out = openssl_ok(&[
        "ocsp",
        "-respin",
        &response,
        "-issuer",
        &issuing,
        "-cert",
        &leaf,
        "-no_nonce",
        "-VAfile",
        &issuing,
    ]);
    assert!(out.contains("Response verify OK") && out.contains(": good"), "{out}");
}

#[tokio::test]
async fn unknown_serials_and_other_issuers() {
    let ca = TestCa::new(KeyAlgorithm::EcdsaP256);
    let never = ask(&ca, "never", &["-serial", "0x0123456789"]).await;
    assert!(never.contains("0x0123456789: unknown"), "{never}");
    assert!(never.contains("Response verify OK"), "{never}");

    // A leaf of this CA, asked about as if the root had issued it.
    let issued = ca.issue("leaf", &LeafKey::P256.generate(), profile()).await;
    let leaf = ca.write("leaf.pem", pem(&issued.certificate_der));
    let request = ca.path("other.req");
    openssl_ok(&[
        "ocsp",
        "-issuer",
        &ca.path("root.pem"),
        "-cert",
        &leaf,
        "-no_nonce",
        "-reqout",
        &request,
    ]);
    let response = ca.ca.ocsp_response(&std::fs::read(&request).unwrap()).await;
    let response_path = ca.write("other.resp", &response);
    let text = openssl_ok(&["ocsp", "-respin", &response_path, "-resp_text", "-noverify"]);
    assert!(text.contains("Cert Status: unknown"), "{text}");
}

#[tokio::test]
async fn nonces_are_echoed() {
    let ca = TestCa::new(KeyAlgorithm::EcdsaP256);
    let issued = ca.issue("leaf", &LeafKey::P384.generate(), profile()).await;
    let leaf = ca.write("leaf.pem", pem(&issued.certificate_der));
    let request_path = ca.path("nonce.req");
    let issuing = ca.path("issuing.pem");
    openssl_ok(&["ocsp", "-issuer", &issuing, "-cert", &leaf, "-reqout", &request_path]);
    let request_der = std::fs::read(&request_path).unwrap();
    let request = OcspRequest::from_der(&request_der).unwrap();
    let nonce = request.nonce().expect("openssl adds a nonce by default");

    let response_der = ca.ca.ocsp_response(&request_der).await;
    let basic = basic_response(&response_der);
    assert_eq!(basic.nonce(), Some(nonce));

    // openssl checks the nonce against the request it is given.
    let response_path = ca.write("nonce.resp", &response_der);
    let out = openssl_ok(&[
        "ocsp",
        "-reqin",
        &request_path,
        "-respin",
        &response_path,
        "-CAfile",
        &ca.path("chain.pem"),
        "-resp_text",
    ]);
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("OCSP Nonce"), "{out}");
    assert!(!out.contains("WARNING"), "{out}");

    // Without a nonce in the request there is none in the response.
    openssl_ok(&[
        "ocsp",
        "-issuer",
        &issuing,
        "-cert",
        &leaf,
        "-no_nonce",
        "-reqout",
        &request_path,
    ]);
    let plain = ca.ca.ocsp_response(&std::fs::read(&request_path).unwrap()).await;
    assert_eq!(basic_response(&plain).nonce(), None);
}

fn basic_response(der: &[u8]) -> BasicOcspResponse {
    let response = OcspResponse::from_der(der).unwrap();
    assert_eq!(response.response_status, OcspResponseStatus::Successful);
    let bytes = response.response_bytes.unwrap();
    BasicOcspResponse::from_der(bytes.response.as_bytes()).unwrap()
}

fn status_of(der: &[u8]) -> OcspResponseStatus {
    OcspResponse::from_der(der).unwrap().response_status
}

#[tokio::test]
async fn garbage_gets_malformed_request() {
    let ca = TestCa::new(KeyAlgorithm::EcdsaP256);
    for garbage in [&b""[..], b"garbage", &[0x30, 0x00], &[0x30, 0x80, 0x00, 0x00], &[0xff; 100]] {
        let response = ca.ca.ocsp_response(garbage).await;
        assert_eq!(status_of(&response), OcspResponseStatus::MalformedRequest, "{garbage:?}");
    }
    let path = ca.write("malformed.resp", ca.ca.ocsp_response(b"garbage").await);
    let run = openssl(&["ocsp", "-respin", &path, "-resp_text", "-noverify"]);
    assert!(run.output.contains("Responder Error: malformedrequest (1)"), "{}", run.output);

    // Every truncation and many bit flips of a real request: a response, never a panic.
    let issued = ca.issue("leaf", &LeafKey::P256.generate(), profile()).await;
    let leaf = ca.write("leaf.pem", pem(&issued.certificate_der));
    let request_path = ca.path("real.req");
    openssl_ok(&[
        "ocsp",
        "-issuer",
        &ca.path("issuing.pem"),
        "-cert",
        &leaf,
        "-reqout",
        &request_path,
    ]);
    let request = std::fs::read(&request_path).unwrap();
    for len in 0..request.len() {
        let status = status_of(&ca.ca.ocsp_response(&request[..len]).await);
        assert_eq!(status, OcspResponseStatus::MalformedRequest, "truncated to {len}");
    }
    for position in 0..request.len() {
        let mut mutated = request.clone();
        mutated[position] ^= 0x55;
        let status = status_of(&ca.ca.ocsp_response(&mutated).await);
        assert!(
            matches!(status, OcspResponseStatus::MalformedRequest | OcspResponseStatus::Successful),
            "{status:?}"
        );
    }

    // An empty request list is malformed too.
    let mut empty = OcspRequest::from_der(&request).unwrap();
    empty.tbs_request.request_list.clear();
    let response = ca.ca.ocsp_response(&empty.to_der().unwrap()).await;
    assert_eq!(status_of(&response), OcspResponseStatus::MalformedRequest);
}

#[tokio::test]
async fn the_cmp_pki_client_asks_as_openssl_does_and_reads_every_answer() {
    let ca = TestCa::new(KeyAlgorithm::EcdsaP256);
    let issued = ca.issue("leaf", &LeafKey::P256.generate(), profile()).await;
    let issuing = &ca.material.issuing_der;
    let request = ocsp_request(&issued.certificate_der, issuing).unwrap();
    // Byte for byte the request `openssl ocsp -no_nonce` makes.
    let leaf = ca.write("leaf.pem", pem(&issued.certificate_der));
    let openssl_request = ca.path("openssl.req");
    openssl_ok(&[
        "ocsp",
        "-issuer",
        &ca.path("issuing.pem"),
        "-cert",
        &leaf,
        "-no_nonce",
        "-reqout",
        &openssl_request,
    ]);
    assert_eq!(request, std::fs::read(&openssl_request).unwrap());

    let response = ca.ca.ocsp_response(&request).await;
    assert_eq!(read_ocsp_response(&response, issuing), Ok(OcspAnswer::Good));

    ca.ca.revoke_certificate(&issued.serial, RevocationReason::Superseded).await.unwrap();
    let response = ca.ca.ocsp_response(&request).await;
    let OcspAnswer::Revoked { at, reason } = read_ocsp_response(&response, issuing).unwrap() else {
        panic!("expected revoked")
    };
    assert_eq!(reason, Some(RevocationReason::Superseded.code()));
    assert_eq!(OffsetDateTime::parse(&at, &Rfc3339).unwrap(), ca.created, "{at}");
    // The same answer checked with the root's key instead of the responder's.
    let wrong_key = read_ocsp_response(&response, &ca.material.root_der);
    assert_eq!(wrong_key, Err(OcspError::BadSignature));

    // The leaf asked about under the root, which did not issue it.
    let other = ocsp_request(&issued.certificate_der, &ca.material.root_der).unwrap();
    let response = ca.ca.ocsp_response(&other).await;
    assert_eq!(read_ocsp_response(&response, issuing), Ok(OcspAnswer::Unknown));

    let refused = ca.ca.ocsp_response(b"garbage").await;
    let error = read_ocsp_response(&refused, issuing).unwrap_err();
    assert_eq!(error, OcspError::Unsuccessful("MalformedRequest".into()));
}
