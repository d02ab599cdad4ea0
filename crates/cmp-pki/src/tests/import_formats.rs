//! `decode_import` over PEM, DER and PKCS#7 input, and every rejection reason except the
//! PKCS#12 and nesting ones (see `pkcs12_import` and `robustness`).

use rcgen::{CertificateParams, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};

use super::fixtures::{Scratch, chain, openssl, openssl_text};
use crate::asn1::{self, Children};
use crate::{ImportDecoded, decode_import, decode_import_each, parse_certificate, reason};

fn fingerprints(decoded: &ImportDecoded) -> Vec<String> {
    decoded.certificates.iter().map(|c| c.fingerprint_sha256.clone()).collect()
}

fn rejections(decoded: &ImportDecoded) -> Vec<(&str, &str)> {
    decoded.rejected.iter().map(|r| (r.item.as_str(), r.reason)).collect()
}

fn fp(der: &[u8]) -> String {
    crate::sha256_hex(der)
}

/// Replaces a PEM label, keeping the body.
fn relabel(pem: &str, from: &str, to: &str) -> String {
    pem.replace(&format!("BEGIN {from}-----"), &format!("BEGIN {to}-----"))
        .replace(&format!("END {from}-----"), &format!("END {to}-----"))
}

/// The base64 lines of a PEM text, for checking that nothing of them is echoed.
fn body_lines(pem: &str) -> Vec<String> {
    pem.lines().filter(|l| !l.starts_with("-----") && l.len() > 16).map(str::to_owned).collect()
}

fn assert_not_echoed(decoded: &ImportDecoded, secret_pem: &str) {
    for rejection in &decoded.rejected {
        for line in body_lines(secret_pem) {
            assert!(!rejection.detail.contains(&line[..16]), "key material in {rejection:?}");
        }
    }
}

#[test]
fn one_pem_certificate() {
    let chain = chain();
    let decoded = decode_import(chain.leaf.pem.as_bytes(), None);
    assert!(decoded.rejected.is_empty());
    assert_eq!(decoded.certificates, vec![parse_certificate(&chain.leaf.der).unwrap()]);
}

#[test]
fn pem_bundle_with_crlf_text_and_duplicates() {
    let chain = chain();
    let crlf = |s: &str| s.replace('\n', "\r\n");
    let input = format!(
        "subject=CN=example.com\r\nSome notes before.\r\n{}between blocks\r\n{}{}trailing text",
        crlf(&chain.leaf.pem),
        crlf(&chain.ca.pem),
        crlf(&chain.leaf.pem)
    );
    let decoded = decode_import(input.as_bytes(), None);
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    let (leaf, ca) = (fp(&chain.leaf.der), fp(&chain.ca.der));
    assert_eq!(fingerprints(&decoded), vec![leaf.clone(), ca, leaf]);
}

#[test]
fn alternative_certificate_labels() {
    let chain = chain();
    let x509 = relabel(&chain.leaf.pem, "CERTIFICATE", "X509 CERTIFICATE");
    assert_eq!(fingerprints(&decode_import(x509.as_bytes(), None)), vec![fp(&chain.leaf.der)]);

    let scratch = Scratch::new();
    let path = scratch.write("leaf.pem", &chain.leaf.pem);
    let trusted = openssl_text(&["x509", "-in", &path, "-trustout", "-addtrust", "serverAuth"]);
    assert!(trusted.contains("BEGIN TRUSTED CERTIFICATE"));
    let decoded = decode_import(trusted.as_bytes(), None);
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    assert_eq!(fingerprints(&decoded), vec![fp(&chain.leaf.der)]);
}

#[test]
fn pem_flattened_onto_one_line() {
    let chain = chain();
    let flat = chain.leaf.pem.replace('\n', " ");
    assert_eq!(fingerprints(&decode_import(flat.as_bytes(), None)), vec![fp(&chain.leaf.der)]);
}

#[test]
fn text_starting_with_zero_is_still_pem() {
    let chain = chain();
    let input = format!("0 problems\n{}", chain.leaf.pem);
    assert_eq!(fingerprints(&decode_import(input.as_bytes(), None)), vec![fp(&chain.leaf.der)]);
}

#[test]
fn raw_der_certificate_and_trailing_data() {
    let chain = chain();
    let decoded = decode_import(&chain.leaf.der, None);
    assert_eq!(fingerprints(&decoded), vec![fp(&chain.leaf.der)]);

    for extra in [vec![0u8], chain.ca.der.clone()] {
        let mut input = chain.leaf.der.clone();
        input.extend(&extra);
        let decoded = decode_import(&input, None);
        assert!(decoded.certificates.is_empty());
        assert_eq!(rejections(&decoded), vec![("input", reason::TRAILING_DATA)]);
        let error = parse_certificate(&input).unwrap_err();
        assert_eq!(error.reason(), reason::TRAILING_DATA);
    }
}

fn pkcs7(scratch: &Scratch, pems: &[&str], outform: &str) -> Vec<u8> {
    let certs = scratch.write("bundle-in.pem", pems.concat());
    openssl(&["crl2pkcs7", "-nocrl", "-certfile", &certs, "-outform", outform])
}

#[test]
fn pkcs7_bundles_der_and_pem() {
    let chain = chain();
    let scratch = Scratch::new();
    let expected = vec![fp(&chain.leaf.der), fp(&chain.ca.der)];

    let der = pkcs7(&scratch, &[&chain.leaf.pem, &chain.ca.pem], "DER");
    let decoded = decode_import(&der, None);
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    assert_eq!(fingerprints(&decoded), expected);

    let pem = pkcs7(&scratch, &[&chain.leaf.pem, &chain.ca.pem], "PEM");
    assert!(String::from_utf8_lossy(&pem).contains("BEGIN PKCS7"));
    let decoded = decode_import(&pem, None);
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    assert_eq!(fingerprints(&decoded), expected);
}

/// Re-encodes the constructed elements of the top `levels` levels with BER indefinite lengths.
fn to_indefinite(der: &[u8], levels: usize) -> Vec<u8> {
    let (tlv, _) = asn1::read_tlv(der).unwrap();
    if levels == 0 || !tlv.tag.constructed {
        return tlv.raw.to_vec();
    }
    let mut out = vec![tlv.raw[0], 0x80];
    for child in Children::of(&tlv).collect_all().unwrap() {
        out.extend(to_indefinite(child.raw, levels - 1));
    }
    out.extend([0, 0]);
    out
}

#[test]
fn pkcs7_with_ber_indefinite_lengths() {
    let chain = chain();
    let scratch = Scratch::new();
    let der = pkcs7(&scratch, &[&chain.leaf.pem, &chain.ca.pem], "DER");
    let ber = to_indefinite(&der, 4);
    assert_ne!(ber, der);
    let decoded = decode_import(&ber, None);
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    assert_eq!(fingerprints(&decoded), vec![fp(&chain.leaf.der), fp(&chain.ca.der)]);
}

#[test]
fn empty_pkcs7_has_no_certificates() {
    let der = openssl(&["crl2pkcs7", "-nocrl", "-outform", "DER"]);
    let decoded = decode_import(&der, None);
    assert_eq!(rejections(&decoded), vec![("input", reason::NO_CERTIFICATES)]);
}

#[test]
fn mixed_pem_reports_each_block() {
    let chain = chain();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(vec!["csr.example".to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "csr.example");
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let input = format!(
        "{}{}{}{}-----BEGIN CERTIFICATE-----\nMIIB\n",
        chain.leaf.pem, chain.leaf.key_pem, csr, chain.ca.pem
    );
    let decoded = decode_import(input.as_bytes(), None);
    assert_eq!(fingerprints(&decoded), vec![fp(&chain.leaf.der), fp(&chain.ca.der)]);
    assert_eq!(
        rejections(&decoded),
        vec![
            ("PEM block 2", reason::PRIVATE_KEY_NOT_CERTIFICATE),
            ("PEM block 3", reason::CSR_NOT_CERTIFICATE),
            ("PEM block 5", reason::MALFORMED_PEM),
        ]
    );
    assert_not_echoed(&decoded, &chain.leaf.key_pem);
}

/// [`decode_import_each`] hands over what [`decode_import`] collects, in the same order, and
/// rejects the same parts: for PEM, for binary input, and for text that starts like DER.
#[test]
fn certificates_handed_over_one_by_one_are_those_collected() {
    let chain = chain();
    let scratch = Scratch::new();
    let inputs = [
        format!(
            "{}{}{}-----BEGIN CERTIFICATE-----\nMIIB\n",
            chain.leaf.pem, chain.leaf.key_pem, chain.ca.pem
        )
        .into_bytes(),
        chain.leaf.der.clone(),
        pkcs7(&scratch, &[&chain.leaf.pem, &chain.ca.pem], "DER"),
        format!("0 text first\n{}", chain.ca.pem).into_bytes(),
    ];
    for input in inputs {
        let collected = decode_import(&input, None);
        let mut handed = Vec::new();
        let rejected = decode_import_each(&input, None, &mut |facts| handed.push(facts));
        assert!(!handed.is_empty());
        assert_eq!(handed, collected.certificates);
        assert_eq!(rejected, collected.rejected);
    }
}

#[test]
fn every_private_key_label_is_rejected_without_echo() {
    let scratch = Scratch::new();
    let rsa = scratch.file("rsa.key");
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", &rsa]);
    let ec = scratch.file("ec.key");
    openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", &ec]);
    let keys = [
        openssl_text(&["pkey", "-in", &rsa]),
        openssl_text(&["pkey", "-in", &rsa, "-traditional"]),
        openssl_text(&["pkey", "-in", &ec, "-traditional"]),
        openssl_text(&["pkey", "-in", &ec, "-aes256", "-passout", "pass:hunter2"]),
    ];
    let labels = ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY"];
    for (key, label) in keys.iter().zip(labels) {
        assert!(key.contains(&format!("BEGIN {label}-----")), "{key}");
        let decoded = decode_import(key.as_bytes(), Some("hunter2"));
        assert!(decoded.certificates.is_empty());
        assert_eq!(
            rejections(&decoded),
            vec![("PEM block 1", reason::PRIVATE_KEY_NOT_CERTIFICATE)]
        );
        assert!(decoded.rejected[0].detail.contains(label));
        assert!(!decoded.rejected[0].detail.contains("hunter2"));
        assert_not_echoed(&decoded, key);
    }

    // The same keys as DER are recognised too.
    let der = openssl(&["pkey", "-in", &rsa, "-outform", "DER"]);
    let decoded = decode_import(&der, None);
    assert_eq!(rejections(&decoded), vec![("input", reason::PRIVATE_KEY_NOT_CERTIFICATE)]);
    let der = openssl(&["pkey", "-in", &ec, "-traditional", "-outform", "DER"]);
    let decoded = decode_import(&der, None);
    assert_eq!(rejections(&decoded), vec![("input", reason::PRIVATE_KEY_NOT_CERTIFICATE)]);
}

#[test]
fn certificate_requests_are_rejected() {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let params = CertificateParams::new(vec!["csr.example".to_owned()]).unwrap();
    let csr = params.serialize_request(&key).unwrap();
    let pem = csr.pem().unwrap();
    let new_label = relabel(&pem, "CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST");
    for input in [pem.as_bytes(), new_label.as_bytes()] {
        let decoded = decode_import(input, None);
        assert_eq!(rejections(&decoded), vec![("PEM block 1", reason::CSR_NOT_CERTIFICATE)]);
    }
    let decoded = decode_import(csr.der(), None);
    assert_eq!(rejections(&decoded), vec![("input", reason::CSR_NOT_CERTIFICATE)]);
    // A CSR mislabelled as a certificate is still called a CSR.
    let mislabelled = relabel(&pem, "CERTIFICATE REQUEST", "CERTIFICATE");
    let decoded = decode_import(mislabelled.as_bytes(), None);
    assert_eq!(rejections(&decoded), vec![("PEM block 1", reason::CSR_NOT_CERTIFICATE)]);
}

#[test]
fn other_pem_blocks_are_not_certificates() {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let public = key.public_key_pem();
    let input = format!("{public}-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n");
    let decoded = decode_import(input.as_bytes(), None);
    assert_eq!(
        rejections(&decoded),
        vec![
            ("PEM block 1", reason::NOT_A_CERTIFICATE),
            ("PEM block 2", reason::NOT_A_CERTIFICATE)
        ]
    );
    // A bare public key as DER.
    let decoded = decode_import(&rcgen::PublicKeyData::subject_public_key_info(&key), None);
    assert_eq!(rejections(&decoded), vec![("input", reason::NOT_A_CERTIFICATE)]);
}

#[test]
fn malformed_pem_blocks() {
    let chain = chain();
    let truncated: String = chain.leaf.pem.lines().take(3).map(|l| format!("{l}\n")).collect();
    let mismatched = chain.leaf.pem.replace("END CERTIFICATE", "END PKCS7");
    let cases = [
        truncated,
        mismatched,
        "-----BEGIN CERTIFICATE-----\nnot*base64!\n-----END CERTIFICATE-----\n".to_owned(),
        "-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----\n".to_owned(),
        "-----BEGIN CERTIFICATE\nMIIB\n".to_owned(),
    ];
    for case in &cases {
        let decoded = decode_import(case.as_bytes(), None);
        assert!(decoded.certificates.is_empty());
        assert_eq!(decoded.rejected.len(), 1, "{case}");
        assert_eq!(decoded.rejected[0].reason, reason::MALFORMED_PEM, "{case}");
    }
}

#[test]
fn malformed_der_certificates() {
    let chain = chain();
    // Cut short: the outer length no longer fits.
    let cut = &chain.leaf.der[..chain.leaf.der.len() - 10];
    let decoded = decode_import(cut, None);
    assert_eq!(rejections(&decoded), vec![("input", reason::MALFORMED_DER)]);

    // Well-formed DER with the right shape that is not a valid certificate: a bad date.
    let mut bad = chain.leaf.der.clone();
    let time_at = bad.windows(2).position(|w| w == [0x17, 0x0d]).unwrap();
    bad[time_at + 2 + 12] = b'X';
    let decoded = decode_import(&bad, None);
    assert_eq!(rejections(&decoded), vec![("input", reason::MALFORMED_DER)]);
    assert_eq!(parse_certificate(&bad).unwrap_err().reason(), reason::MALFORMED_DER);

    // The same inside a PEM block.
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bad)
    );
    let decoded = decode_import(pem.as_bytes(), None);
    assert_eq!(rejections(&decoded), vec![("PEM block 1", reason::MALFORMED_DER)]);
}

#[test]
fn empty_input() {
    for input in [&b""[..], b"   ", b"\r\n\t \n"] {
        let decoded = decode_import(input, None);
        assert_eq!(rejections(&decoded), vec![("input", reason::EMPTY_INPUT)]);
    }
    assert_eq!(parse_certificate(b"").unwrap_err().reason(), reason::EMPTY_INPUT);
}

#[test]
fn unsupported_formats() {
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    let cases: Vec<Vec<u8>> = vec![
        b"hello, world".to_vec(),
        png,
        vec![0x02, 0x01, 0x05],
        asn1::encode(0x30, &asn1::encode(0x02, &[7])),
    ];
    for case in &cases {
        let decoded = decode_import(case, None);
        assert_eq!(rejections(&decoded), vec![("input", reason::UNSUPPORTED_FORMAT)], "{case:?}");
    }
}
