//! CSR parsing: requests from rcgen and the `openssl` CLI for every accepted key type, bad
//! signatures, refused keys, things that are not requests, and mutated input (never a panic).

use std::net::IpAddr;

use cmp_domain::{KeyInfo, KeyType};
use rcgen::{
    CertificateParams, DnType, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384,
    PKCS_ED25519, PKCS_RSA_SHA256, RsaKeySize,
};

use super::fixtures::{Scratch, chain, openssl};
use crate::{CsrError, MAX_CSR_BYTES, parse_csr};

/// A CSR from rcgen with a CN, two DNS names and two IP addresses.
fn rcgen_csr(key: &KeyPair) -> (Vec<u8>, String) {
    let names = ["www.example.com", "example.com", "192.0.2.10", "2001:db8::7"];
    let mut params = CertificateParams::new(names.map(str::to_owned).to_vec()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, "CMP Tests");
    params.distinguished_name.push(DnType::CommonName, "www.example.com");
    let csr = params.serialize_request(key).unwrap();
    (csr.der().to_vec(), csr.pem().unwrap())
}

fn key_info(kind: KeyType, bits: u32, curve: Option<&str>) -> KeyInfo {
    KeyInfo { kind, bits: Some(bits), curve: curve.map(str::to_owned) }
}

#[test]
fn rcgen_requests_of_every_accepted_key_type() {
    let cases = [
        (
            KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).unwrap(),
            key_info(KeyType::Rsa, 2048, None),
        ),
        (
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap(),
            key_info(KeyType::Ec, 256, Some("P-256")),
        ),
        (
            KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap(),
            key_info(KeyType::Ec, 384, Some("P-384")),
        ),
        (KeyPair::generate_for(&PKCS_ED25519).unwrap(), key_info(KeyType::Ed25519, 256, None)),
    ];
    for (key, expected_key) in cases {
        let (der, pem) = rcgen_csr(&key);
        for input in [der.as_slice(), pem.as_bytes()] {
            let info = parse_csr(input).unwrap();
            assert_eq!(info.key, expected_key);
            assert_eq!(info.der, der);
            assert_eq!(info.spki_der, rcgen::PublicKeyData::subject_public_key_info(&key));
            assert_eq!(info.common_name.as_deref(), Some("www.example.com"));
            assert_eq!(info.dns_names, ["www.example.com", "example.com"]);
            let ips: Vec<IpAddr> =
                ["192.0.2.10", "2001:db8::7"].iter().map(|s| s.parse().unwrap()).collect();
            assert_eq!(info.ip_addresses, ips);
        }
    }
}

#[test]
fn openssl_request_parses() {
    let scratch = Scratch::new();
    let csr = scratch.file("csr.pem");
    let key = scratch.file("key.pem");
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &key,
        "-subj",
        "/CN=x",
        "-addext",
        "subjectAltName=DNS:a.example",
        "-out",
        &csr,
    ]);
    let pem = std::fs::read(&csr).unwrap();
    let info = parse_csr(&pem).unwrap();
    assert_eq!(info.key, key_info(KeyType::Rsa, 2048, None));
    assert_eq!(info.common_name.as_deref(), Some("x"));
    assert_eq!(info.dns_names, ["a.example"]);
    assert!(info.ip_addresses.is_empty());

    // The same request as DER, and relabelled the Netscape way.
    let der = openssl(&["req", "-in", &csr, "-outform", "DER"]);
    assert_eq!(parse_csr(&der).unwrap(), info);
    let netscape =
        String::from_utf8(pem).unwrap().replace("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST");
    assert_eq!(parse_csr(netscape.as_bytes()).unwrap(), info);
}

#[test]
fn a_flipped_signature_byte_is_a_bad_signature() {
    for key in [
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap(),
        KeyPair::generate_for(&PKCS_ED25519).unwrap(),
    ] {
        let (mut der, _) = rcgen_csr(&key);
        let last = der.len() - 1;
        der[last] ^= 0x01;
        assert_eq!(parse_csr(&der), Err(CsrError::BadSignature));
    }
}

#[test]
fn a_request_whose_content_was_changed_is_a_bad_signature() {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let (der, _) = rcgen_csr(&key);
    let at = der.windows(11).position(|w| w == b"example.com").unwrap();
    let mut changed = der.clone();
    changed[at] = b'E';
    assert_eq!(parse_csr(&changed), Err(CsrError::BadSignature));
}

/// Generates a CSR with `openssl req` for a key made by `openssl genpkey` with `args`.
fn openssl_csr(scratch: &Scratch, name: &str, genpkey: &[&str]) -> Vec<u8> {
    let key = scratch.file(&format!("{name}.key"));
    let mut args = vec!["genpkey"];
    args.extend_from_slice(genpkey);
    args.extend_from_slice(&["-out", &key]);
    openssl(&args);
    openssl(&["req", "-new", "-key", &key, "-subj", "/CN=x", "-outform", "DER"])
}

#[test]
fn keys_that_are_not_accepted() {
    let scratch = Scratch::new();
    let rsa1024 = openssl_csr(
        &scratch,
        "rsa1024",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
    );
    let Err(CsrError::UnsupportedKey(why)) = parse_csr(&rsa1024) else { panic!("RSA-1024") };
    assert!(why.contains("2048") && why.contains("1024"), "{why}");

    let p521 =
        openssl_csr(&scratch, "p521", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"]);
    let Err(CsrError::UnsupportedKey(why)) = parse_csr(&p521) else { panic!("P-521") };
    assert!(why.contains("P-521"), "{why}");

    let params = scratch.file("dsa.params");
    openssl(&[
        "genpkey",
        "-genparam",
        "-algorithm",
        "DSA",
        "-pkeyopt",
        "dsa_paramgen_bits:1024",
        "-out",
        &params,
    ]);
    let dsa = openssl_csr(&scratch, "dsa", &["-paramfile", &params]);
    let Err(CsrError::UnsupportedKey(why)) = parse_csr(&dsa) else { panic!("DSA") };
    assert!(why.contains("DSA"), "{why}");

    let ed448 = openssl_csr(&scratch, "ed448", &["-algorithm", "ED448"]);
    assert!(matches!(parse_csr(&ed448), Err(CsrError::UnsupportedKey(_))));
}

#[test]
fn things_that_are_not_requests() {
    let chain = chain();
    let not_a_csr = |input: &[u8], what: &str| match parse_csr(input) {
        Err(error @ CsrError::NotACsr(_)) => {
            assert!(error.to_string().contains(what), "{error} should mention {what}")
        }
        other => panic!("expected NotACsr({what}), got {other:?}"),
    };
    not_a_csr(&chain.leaf.der, "a certificate");
    not_a_csr(chain.leaf.pem.as_bytes(), "\"CERTIFICATE\"");
    not_a_csr(chain.leaf.key_pem.as_bytes(), "\"PRIVATE KEY\"");
    not_a_csr(b"hello, world", "neither PEM text nor DER");
    not_a_csr(&[0x30, 0x03, 0x02, 0x01, 0x05], "unknown");
    not_a_csr(&[0x04, 0x01, 0x00], "neither PEM text nor DER");

    // A certificate's DER inside a request label is still a certificate.
    let relabelled = chain.leaf.pem.replace("CERTIFICATE", "CERTIFICATE REQUEST");
    not_a_csr(relabelled.as_bytes(), "a certificate");

    assert_eq!(parse_csr(b""), Err(CsrError::Empty));
    assert_eq!(parse_csr(b" \r\n\t"), Err(CsrError::Empty));
    assert_eq!(parse_csr(&vec![0x30; MAX_CSR_BYTES + 1]), Err(CsrError::TooLarge));
}

#[test]
fn truncated_and_malformed_requests() {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let (der, pem) = rcgen_csr(&key);
    for len in [1, 2, 10, der.len() / 2, der.len() - 1] {
        let error = parse_csr(&der[..len]).unwrap_err();
        assert!(matches!(error, CsrError::Malformed(_)), "{len}: {error:?}");
    }
    let mut trailing = der.clone();
    trailing.push(0);
    let Err(CsrError::Malformed(why)) = parse_csr(&trailing) else { panic!("trailing") };
    assert!(why.contains("after the end"), "{why}");

    let unterminated = pem.replace("-----END CERTIFICATE REQUEST-----", "");
    let Err(CsrError::Malformed(why)) = parse_csr(unterminated.as_bytes()) else { panic!() };
    assert!(why.contains("END"), "{why}");
    let bad_base64 = pem.replacen("MI", "M*", 1);
    assert!(matches!(parse_csr(bad_base64.as_bytes()), Err(CsrError::Malformed(_))));
    let twice = format!("{pem}{pem}");
    assert!(matches!(parse_csr(twice.as_bytes()), Err(CsrError::Malformed(_))));

    // Messages are sentences for a user, not debug dumps.
    let message = CsrError::Malformed("x".into()).to_string();
    assert_eq!(message, "the CSR is malformed: x");
}

#[test]
fn mutated_requests_never_panic_and_never_verify() {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let (der, _) = rcgen_csr(&key);
    for position in 0..der.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut mutated = der.clone();
            mutated[position] ^= flip;
            // A mutation may only be accepted if it left the request's meaning intact
            // (e.g. a flipped bit in an unused field); then it must still be this request.
            if let Ok(info) = parse_csr(&mutated) {
                assert_eq!(info.dns_names, ["www.example.com", "example.com"]);
            }
        }
    }
}
