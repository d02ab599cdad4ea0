//! No input makes the parsers panic, recurse without bound or return an unknown reason:
//! random bytes, random PEM-ish text, mutated real structures and very deep nesting.

use super::fixtures::{Scratch, chain, openssl};
use crate::asn1;
use crate::{ImportDecoded, ParseError, decode_import, parse_certificate, reason};

/// xorshift64*: small, deterministic, good enough to spread inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn assert_sane(decoded: &ImportDecoded) {
    for rejection in &decoded.rejected {
        assert!(reason::ALL.contains(&rejection.reason), "{rejection:?}");
        assert!(!rejection.item.is_empty() && !rejection.detail.is_empty(), "{rejection:?}");
    }
    for certificate in &decoded.certificates {
        assert_eq!(certificate.fingerprint_sha256, crate::sha256_hex(&certificate.der));
    }
}

fn exercise(input: &[u8]) {
    assert_sane(&decode_import(input, None));
    assert_sane(&decode_import(input, Some("password")));
    if let Err(error) = parse_certificate(input) {
        assert!(reason::ALL.contains(&error.reason()));
    }
}

#[test]
fn random_bytes() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for round in 0..3000 {
        let len = rng.below(if round % 10 == 0 { 8192 } else { 600 });
        let mut input = rng.bytes(len);
        // Half of the inputs look like a DER SEQUENCE, so they get past the first check.
        if round % 2 == 0 && input.len() > 4 {
            let body = input.len() - 4;
            input[..4].copy_from_slice(&[0x30, 0x82, (body >> 8) as u8, body as u8]);
        }
        exercise(&input);
    }
}

#[test]
fn random_pem_like_text() {
    let pieces: [&[u8]; 10] = [
        b"-----BEGIN CERTIFICATE-----",
        b"-----END CERTIFICATE-----",
        b"-----BEGIN PKCS7-----",
        b"-----BEGIN PRIVATE KEY-----",
        b"-----END ",
        b"MIIBkTCB+wIJAK",
        b"\r\n",
        b"\n",
        b"====",
        b"-----",
    ];
    let mut rng = Rng(42);
    for _ in 0..3000 {
        let count = rng.below(12);
        let input: Vec<u8> =
            (0..count).flat_map(|_| pieces[rng.below(pieces.len())].to_vec()).collect();
        exercise(&input);
    }
}

/// Flips, truncates and splices bytes of a real structure.
fn mutate(rng: &mut Rng, original: &[u8]) -> Vec<u8> {
    let mut input = original.to_vec();
    match rng.below(4) {
        0 => {
            for _ in 0..=rng.below(4) {
                let at = rng.below(input.len());
                input[at] ^= 1 << rng.below(8);
            }
        }
        1 => input.truncate(rng.below(input.len())),
        2 => {
            let at = rng.below(input.len());
            input[at] = rng.next() as u8;
        }
        _ => {
            let at = rng.below(input.len());
            let len = rng.below(8) + 1;
            let extra = rng.bytes(len);
            input.splice(at..at, extra);
        }
    }
    input
}

#[test]
fn mutated_certificates_bundles_and_pfx() {
    let chain = chain();
    let scratch = Scratch::new();
    let certs = scratch.write("chain.pem", format!("{}{}", chain.leaf.pem, chain.ca.pem));
    let p7 = openssl(&["crl2pkcs7", "-nocrl", "-certfile", &certs, "-outform", "DER"]);
    let key = scratch.write("leaf.key", &chain.leaf.key_pem);
    let p12_path = scratch.file("x.p12");
    openssl(&[
        "pkcs12",
        "-export",
        "-in",
        &certs,
        "-inkey",
        &key,
        "-passout",
        "pass:password",
        "-out",
        &p12_path,
        "-nomac",
    ]);
    let p12 = std::fs::read(&p12_path).unwrap();
    let p12_path = scratch.file("mac.p12");
    openssl(&[
        "pkcs12",
        "-export",
        "-in",
        &certs,
        "-inkey",
        &key,
        "-passout",
        "pass:password",
        "-out",
        &p12_path,
    ]);
    let p12_mac = std::fs::read(&p12_path).unwrap();

    let mut rng = Rng(7);
    for (original, rounds) in [(&chain.leaf.der, 2000), (&p7, 800), (&p12, 300), (&p12_mac, 100)] {
        for _ in 0..rounds {
            exercise(&mutate(&mut rng, original));
        }
    }
}

/// `levels` nested SEQUENCEs with definite lengths, built inside out in linear time.
fn deep_sequence(levels: usize) -> Vec<u8> {
    let mut headers = Vec::with_capacity(levels);
    let mut inner_len = 0usize;
    for _ in 0..levels {
        let header = sequence_header(inner_len);
        inner_len += header.len();
        headers.push(header);
    }
    headers.reverse();
    headers.concat()
}

fn sequence_header(len: usize) -> Vec<u8> {
    if len < 0x80 {
        return vec![0x30, len as u8];
    }
    let digits: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|&b| b == 0).collect();
    [vec![0x30, 0x80 | digits.len() as u8], digits].concat()
}

#[test]
fn deep_nesting_is_rejected_not_recursed() {
    let deep = deep_sequence(100_000);
    assert_eq!(asn1::read_tlv(&deep).unwrap().1.len(), 0);

    let decoded = decode_import(&deep, None);
    assert_eq!(decoded.rejected.len(), 1);
    assert_eq!(decoded.rejected[0].reason, reason::NESTING_TOO_DEEP);
    assert_eq!(parse_certificate(&deep).unwrap_err(), ParseError::NestingTooDeep);

    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &deep)
    );
    let decoded = decode_import(pem.as_bytes(), None);
    assert_eq!(decoded.rejected[0].reason, reason::NESTING_TOO_DEEP);

    let mut indefinite = [0x30, 0x80].repeat(100_000);
    indefinite.extend(vec![0u8; 200_000]);
    let decoded = decode_import(&indefinite, None);
    assert_eq!(decoded.rejected[0].reason, reason::NESTING_TOO_DEEP);
    assert_eq!(parse_certificate(&indefinite).unwrap_err(), ParseError::NestingTooDeep);

    // Inside a real certificate: the subject replaced by a deep structure.
    let chain = chain();
    let (outer, _) = asn1::read_tlv(&chain.leaf.der).unwrap();
    let mut crafted = outer.content.to_vec();
    crafted.splice(0..0, deep_sequence(1_000));
    let crafted = asn1::encode(0x30, &crafted);
    assert_eq!(decode_import(&crafted, None).rejected[0].reason, reason::NESTING_TOO_DEEP);
}

#[test]
fn deep_nesting_inside_extension_values() {
    // Extension values are OCTET STRINGs, which the depth check does not enter; x509-parser
    // must cope with whatever is inside them.
    let deep = deep_sequence(100_000);
    let oids: [&[u64]; 6] = [
        &[2, 5, 29, 17],
        &[2, 5, 29, 32],
        &[2, 5, 29, 30],
        &[2, 5, 29, 31],
        &[1, 3, 6, 1, 5, 5, 7, 1, 1],
        &[1, 2, 3, 4],
    ];
    for oid in oids {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.custom_extensions.push(rcgen::CustomExtension::from_oid_content(oid, deep.clone()));
        let cert = params.self_signed(&key).unwrap();
        exercise(cert.der());
    }
}
