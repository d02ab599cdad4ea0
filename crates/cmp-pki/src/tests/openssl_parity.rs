//! Every fact that has an OpenSSL counterpart is compared with what `openssl x509` prints:
//! the Mozilla root store, and certificates generated to hit the awkward cases (negative
//! serials, odd key types, escaping, every DN string type).

use cmp_domain::{CertificateFacts, KeyType, San, SanType};
use rcgen::{CertificateParams, DnType, DnValue, KeyPair, PKCS_ECDSA_P256_SHA256};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use cmp_testkit::openssl::{X509View, mozilla_roots, x509_view};

use super::fixtures::{Scratch, chain, openssl};
use crate::{decode_import, parse_certificate};

const ISO: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");

/// Differences between our facts and OpenSSL's view, one line each.
fn differences(facts: &CertificateFacts, view: &X509View) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |what: &str, ours: &str, theirs: &str| {
        if ours != theirs {
            out.push(format!("{what}: ours {ours:?} openssl {theirs:?}"));
        }
    };
    check("fingerprint", &facts.fingerprint_sha256, &view.fingerprint);
    check("serial", &facts.serial_number, &view.serial);
    check("subject", &facts.subject, &view.subject);
    check("issuer", &facts.issuer, &view.issuer);
    check("notBefore", &facts.not_before.format(ISO).unwrap(), &view.not_before);
    check("notAfter", &facts.not_after.format(ISO).unwrap(), &view.not_after);
    check("signature algorithm", &facts.signature_algorithm, &view.signature_algorithm);
    check("is_ca", &facts.is_ca.to_string(), &view.is_ca.to_string());
    if let Some(bits) = view.key_bits {
        check("key bits", &format!("{:?}", facts.key.bits), &format!("{:?}", Some(bits)));
    }
    out
}

#[test]
fn every_mozilla_root_matches_openssl() {
    let paths = mozilla_roots();

    let mut failures = Vec::new();
    for path in &paths {
        let decoded = decode_import(&std::fs::read(path).unwrap(), None);
        assert!(decoded.rejected.is_empty(), "{path:?}: {:?}", decoded.rejected);
        assert_eq!(decoded.certificates.len(), 1, "{path:?}");
        let facts = &decoded.certificates[0];
        let view = x509_view(path);
        for difference in differences(facts, &view) {
            failures.push(format!("{}: {difference}", path.display()));
        }
        if !facts.self_signed {
            failures.push(format!("{}: root not recognised as self-signed", path.display()));
        }
    }
    assert!(failures.is_empty(), "{} differences:\n{}", failures.len(), failures.join("\n"));
}

/// One certificate made by `openssl req -x509`.
struct Made {
    name: &'static str,
    key_args: Vec<&'static str>,
    req_args: Vec<&'static str>,
}

fn made(name: &'static str, key_args: &[&'static str], req_args: &[&'static str]) -> Made {
    Made { name, key_args: key_args.to_vec(), req_args: req_args.to_vec() }
}

fn openssl_made() -> Vec<Made> {
    let ec = |curve| vec!["-algorithm", "EC", "-pkeyopt", curve];
    let rsa = |bits| vec!["-algorithm", "RSA", "-pkeyopt", bits];
    vec![
        made("rsa1024-md5", &rsa("rsa_keygen_bits:1024"), &["-md5", "-set_serial", "-1"]),
        made("rsa2048-sha1", &rsa("rsa_keygen_bits:2048"), &["-sha1", "-set_serial", "-256"]),
        made(
            "rsa-pss-padding",
            &rsa("rsa_keygen_bits:2048"),
            &["-sha256", "-sigopt", "rsa_padding_mode:pss", "-set_serial", "0"],
        ),
        made("rsa-pss-key", &["-algorithm", "RSA-PSS"], &["-set_serial", "0x80"]),
        made("p384", &ec("ec_paramgen_curve:P-384"), &["-sha384", "-set_serial", "-0x8000"]),
        made("p521", &ec("ec_paramgen_curve:P-521"), &["-sha512", "-set_serial", "-129"]),
        made("secp256k1", &ec("ec_paramgen_curve:secp256k1"), &["-set_serial", "255"]),
        made("brainpool", &ec("ec_paramgen_curve:brainpoolP256r1"), &[]),
        made(
            "ed25519",
            &["-algorithm", "ED25519"],
            &["-set_serial", "0xff00000000000000000000000000000000000001"],
        ),
        made("ed448", &["-algorithm", "ED448"], &[]),
        made(
            "escapes",
            &ec("ec_paramgen_curve:P-256"),
            &[
                "-subj",
                "/CN=\\ lead#ing/O=Comma\\, Inc./OU=plus\\+sign/L=semi;colon/ST=quo\"te/street=less<gr>/title=back\\\\slash/description=#hash/serialNumber=eq=ual",
            ],
        ),
        made(
            "multi-valued",
            &ec("ec_paramgen_curve:P-256"),
            &["-multivalue-rdn", "-subj", "/CN=a+OU=b+O=c/C=US/DC=example+DC=com"],
        ),
        made(
            "utf8",
            &ec("ec_paramgen_curve:P-256"),
            &[
                "-utf8",
                "-subj",
                "/CN=Grüße €/O=日本/emailAddress=a@b.example/UID=jdoe/jurisdictionC=DE",
            ],
        ),
    ]
}

#[test]
fn openssl_made_certificates_match_openssl() {
    let scratch = Scratch::new();
    let mut failures = Vec::new();
    for case in openssl_made() {
        let key = scratch.file(&format!("{}.key", case.name));
        let cert = scratch.file(&format!("{}.pem", case.name));
        let mut key_args = vec!["genpkey", "-out", &key];
        key_args.extend(&case.key_args);
        openssl(&key_args);
        let mut req_args = vec!["req", "-x509", "-new", "-key", &key, "-out", &cert, "-days", "30"];
        if !case.req_args.contains(&"-subj") {
            req_args.extend(["-subj", "/CN=generated"]);
        }
        req_args.extend(&case.req_args);
        openssl(&req_args);

        let decoded = decode_import(&std::fs::read(&cert).unwrap(), None);
        assert_eq!(decoded.certificates.len(), 1, "{}: {:?}", case.name, decoded.rejected);
        let facts = &decoded.certificates[0];
        for difference in differences(facts, &x509_view(&cert)) {
            failures.push(format!("{}: {difference}", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn key_facts_per_algorithm() {
    let scratch = Scratch::new();
    let expect = |name: &str, kind: KeyType, bits: Option<u32>, curve: Option<&str>, sig: &str| {
        let key = scratch.file(&format!("{name}.key"));
        let cert = scratch.file(&format!("{name}.pem"));
        let args: Vec<&str> = match name {
            "rsa" => vec!["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
            "rsa-pss" => vec!["-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:1024"],
            "p256" => vec!["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            "p521" => vec!["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"],
            "k256" => vec!["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1"],
            "ed25519" => vec!["-algorithm", "ED25519"],
            "ed448" => vec!["-algorithm", "ED448"],
            _ => unreachable!(),
        };
        let mut key_args = vec!["genpkey", "-out", &key];
        key_args.extend(args);
        openssl(&key_args);
        openssl(&[
            "req", "-x509", "-new", "-key", &key, "-out", &cert, "-subj", "/CN=k", "-days", "1",
        ]);
        let facts = &decode_import(&std::fs::read(&cert).unwrap(), None).certificates[0];
        assert_eq!(facts.key.kind, kind, "{name}");
        assert_eq!(facts.key.bits, bits, "{name}");
        assert_eq!(facts.key.curve.as_deref(), curve, "{name}");
        assert_eq!(facts.signature_algorithm, sig, "{name}");
    };
    expect("rsa", KeyType::Rsa, Some(1024), None, "sha256WithRSAEncryption");
    expect("rsa-pss", KeyType::Rsa, Some(1024), None, "rsassaPss");
    expect("p256", KeyType::Ec, Some(256), Some("P-256"), "ecdsa-with-SHA256");
    expect("p521", KeyType::Ec, Some(521), Some("P-521"), "ecdsa-with-SHA256");
    expect("k256", KeyType::Ec, Some(256), Some("1.3.132.0.10"), "ecdsa-with-SHA256");
    expect("ed25519", KeyType::Ed25519, Some(256), None, "ED25519");
    expect("ed448", KeyType::Ed448, Some(456), None, "ED448");
}

#[test]
fn dsa_keys_are_recognised() {
    let scratch = Scratch::new();
    let params = scratch.file("dsa.params");
    let key = scratch.file("dsa.key");
    let cert = scratch.file("dsa.pem");
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
    openssl(&["genpkey", "-paramfile", &params, "-out", &key]);
    openssl(&[
        "req", "-x509", "-new", "-key", &key, "-out", &cert, "-subj", "/CN=dsa", "-days", "1",
        "-sha256",
    ]);
    let facts = &decode_import(&std::fs::read(&cert).unwrap(), None).certificates[0];
    assert_eq!(facts.key.kind, KeyType::Dsa);
    assert_eq!(facts.key.bits, Some(1024));
    assert!(
        differences(facts, &x509_view(&cert)).is_empty(),
        "{:?}",
        differences(facts, &x509_view(&cert))
    );
}

/// Names built with every DN string type rcgen can write, compared with OpenSSL's output.
#[test]
fn every_string_type_is_printed_like_openssl() {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let dn = &mut params.distinguished_name;
    dn.push(DnType::CommonName, DnValue::BmpString("Grüße € ".try_into().unwrap()));
    dn.push(DnType::OrganizationName, DnValue::UniversalString("𝄞 clef, ok".try_into().unwrap()));
    dn.push(DnType::OrganizationalUnitName, DnValue::TeletexString("tele#tex".try_into().unwrap()));
    dn.push(DnType::LocalityName, DnValue::PrintableString("Print able".try_into().unwrap()));
    dn.push(DnType::StateOrProvinceName, DnValue::Utf8String("ctrl\u{1}\u{7f}end".into()));
    dn.push(DnType::CountryName, DnValue::PrintableString("DE".try_into().unwrap()));
    dn.push(
        DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
        DnValue::Ia5String("mail@example.com".try_into().unwrap()),
    );
    dn.push(DnType::CustomDnType(vec![1, 2, 3, 4]), DnValue::Utf8String("unknown".into()));
    dn.push(DnType::CustomDnType(vec![2, 5, 4, 45]), DnValue::Utf8String("".into()));
    let cert = params.self_signed(&key).unwrap();

    let scratch = Scratch::new();
    let path = scratch.write("names.pem", cert.pem());
    let facts = parse_certificate(cert.der()).unwrap();
    let view = x509_view(&path);
    assert_eq!(facts.subject, view.subject);
    assert_eq!(facts.issuer, view.issuer);
    assert_eq!(facts.common_name.as_deref(), Some("Grüße € "));
}

#[test]
fn chain_facts_are_complete() {
    let chain = chain();
    let ca = parse_certificate(&chain.ca.der).unwrap();
    let leaf = parse_certificate(&chain.leaf.der).unwrap();

    assert!(ca.is_ca && ca.self_signed);
    assert!(!leaf.is_ca && !leaf.self_signed);
    assert_eq!(leaf.issuer, ca.subject);
    assert_eq!(ca.subject, r"O=CMP\, Testing,CN=CMP Test CA");
    assert_eq!(leaf.common_name.as_deref(), Some("example.com"));
    assert_eq!(leaf.fingerprint_sha256, crate::sha256_hex(&chain.leaf.der));
    assert_eq!(leaf.der, chain.leaf.der);
    assert_eq!(leaf.key.kind, KeyType::Ec);
    assert_eq!(leaf.key.curve.as_deref(), Some("P-256"));
    let san = |kind, value: &str| San { kind, value: value.to_owned() };
    assert_eq!(
        leaf.sans,
        vec![
            san(SanType::Dns, "example.com"),
            san(SanType::Ip, "192.0.2.7"),
            san(SanType::Ip, "2001:db8::1"),
            san(SanType::Email, "ops@example.com"),
            san(SanType::Uri, "https://example.com/x"),
        ]
    );

    let scratch = Scratch::new();
    for (name, facts, pem) in [("ca", &ca, &chain.ca.pem), ("leaf", &leaf, &chain.leaf.pem)] {
        let path = scratch.write(&format!("{name}.pem"), pem);
        assert!(differences(facts, &x509_view(&path)).is_empty(), "{name}");
    }
}

#[test]
fn self_issued_but_not_self_signed() {
    // Same DN as the CA, signed by the CA's key: subject == issuer, but the AKI names the CA key.
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name.push(DnType::CommonName, "Same Name");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);

    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(vec!["x.example".to_owned()]).unwrap();
    params.distinguished_name = ca_params.distinguished_name.clone();
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &issuer).unwrap();
    let facts = parse_certificate(cert.der()).unwrap();
    assert_eq!(facts.subject, facts.issuer);
    assert!(!facts.self_signed);
}
