//! Server-side key generation, CSRs and PKCS#12 export, checked with the `openssl` CLI and
//! with this crate's own PKCS#12 reader.

use std::net::IpAddr;
use std::process::Command;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use super::fixtures::{OPENSSL, Scratch, openssl, openssl_text};
use crate::keygen::{KeySpec, KeygenError, export_pkcs12, generate_key, make_csr};
use crate::{decode_import, reason, sha256_hex};

const PASSWORD: &str = "correct-horse";

/// Runs `openssl` and returns (success, stdout + stderr).
fn openssl_status(args: &[&str]) -> (bool, String) {
    let output = Command::new(OPENSSL).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn key_spec_names() {
    let names = ["rsa2048", "rsa3072", "rsa4096", "ecdsa_p256", "ecdsa_p384", "ed25519"];
    for (spec, name) in KeySpec::ALL.into_iter().zip(names) {
        assert_eq!(spec.as_str(), name);
        assert_eq!(spec.to_string(), name);
        assert_eq!(KeySpec::parse(name).unwrap(), spec);
        assert_eq!(name.parse::<KeySpec>().unwrap(), spec);
        assert_eq!(serde_json::to_string(&spec).unwrap(), format!("\"{name}\""));
        assert_eq!(serde_json::from_str::<KeySpec>(&format!("\"{name}\"")).unwrap(), spec);
    }
    for bad in ["", "RSA2048", "rsa1024", "ecdsa-p256", "p256"] {
        assert!(matches!(KeySpec::parse(bad), Err(KeygenError::UnknownKeySpec(_))), "{bad}");
    }
}

#[test]
fn every_key_spec_generates_a_key_openssl_reads() {
    let scratch = Scratch::new();
    let expected: [(KeySpec, &[&str]); 6] = [
        (KeySpec::Rsa2048, &["Private-Key: (2048 bit, 2 primes)"]),
        (KeySpec::Rsa3072, &["Private-Key: (3072 bit, 2 primes)"]),
        (KeySpec::Rsa4096, &["Private-Key: (4096 bit, 2 primes)"]),
        (KeySpec::EcdsaP256, &["Private-Key: (256 bit)", "NIST CURVE: P-256"]),
        (KeySpec::EcdsaP384, &["Private-Key: (384 bit)", "NIST CURVE: P-384"]),
        (KeySpec::Ed25519, &["ED25519 Private-Key:"]),
    ];
    for (spec, needles) in expected {
        let key = generate_key(spec).unwrap();
        assert_eq!(key.spec(), spec);
        let pem = key.to_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{spec}");
        assert!(pem.ends_with("\n-----END PRIVATE KEY-----\n"), "{spec}");
        assert!(pem.lines().all(|l| l.len() <= 64), "{spec}");
        let path = scratch.write(&format!("{spec}.pem"), pem.as_bytes());
        let text = openssl_text(&["pkey", "-in", &path, "-noout", "-text"]);
        for needle in needles {
            assert!(text.contains(needle), "{spec}: {needle:?} not in\n{text}");
        }
        // The DER is the PEM's body, and PKCS#8 (openssl would say so on -inform DER).
        let der_path = scratch.write(&format!("{spec}.der"), key.pkcs8_der());
        let from_der = openssl(&["pkey", "-inform", "DER", "-in", &der_path]);
        assert_eq!(from_der, pem.as_bytes(), "{spec}");
        // The public key is the private key's.
        let spki = openssl(&["pkey", "-in", &path, "-pubout", "-outform", "DER"]);
        assert_eq!(spki, key.public_key_der(), "{spec}");
    }
}

#[test]
fn generated_key_debug_is_redacted() {
    let key = generate_key(KeySpec::EcdsaP256).unwrap();
    let debug = format!("{key:?}");
    assert!(debug.contains("EcdsaP256") && debug.contains("<redacted>"), "{debug}");
    let pem = key.to_pem();
    let body_line = pem.lines().nth(1).unwrap();
    assert!(!debug.contains(&body_line[..16]));
    assert!(!debug.contains(&hex::encode(&key.pkcs8_der()[..16])));
}

#[test]
fn csr_without_common_name_has_an_empty_subject_and_verifies() {
    let scratch = Scratch::new();
    for spec in [KeySpec::EcdsaP256, KeySpec::EcdsaP384, KeySpec::Rsa2048, KeySpec::Ed25519] {
        let key = generate_key(spec).unwrap();
        let dns = vec!["example.com".to_owned(), "www.example.com".to_owned()];
        let ips: Vec<IpAddr> = vec!["192.0.2.7".parse().unwrap(), "2001:db8::1".parse().unwrap()];
        let csr = make_csr(key.pkcs8_der(), None, &dns, &ips).unwrap();
        let path = scratch.write(&format!("{spec}.csr"), &csr);
        let (ok, out) =
            openssl_status(&["req", "-inform", "DER", "-in", &path, "-verify", "-noout"]);
        assert!(ok && out.contains("verify OK"), "{spec}: {out}");
        let subject = openssl_text(&["req", "-inform", "DER", "-in", &path, "-noout", "-subject"]);
        assert_eq!(subject.trim(), "subject=", "{spec}");
        let text = openssl_text(&["req", "-inform", "DER", "-in", &path, "-noout", "-text"]);
        assert!(
            text.contains(
                "DNS:example.com, DNS:www.example.com, IP Address:192.0.2.7, \
                 IP Address:2001:DB8:0:0:0:0:0:1"
            ),
            "{spec}: {text}"
        );
        // An empty subject makes the SAN extension critical (RFC 5280 4.2.1.6).
        assert!(text.contains("X509v3 Subject Alternative Name: critical"), "{spec}: {text}");
        // The CSR carries the generated key.
        let spki = openssl(&["req", "-inform", "DER", "-in", &path, "-noout", "-pubkey"]);
        let key_path = scratch.write(&format!("{spec}.key"), key.to_pem().as_bytes());
        assert_eq!(spki, openssl(&["pkey", "-in", &key_path, "-pubout"]), "{spec}");
    }
}

#[test]
fn csr_with_common_name() {
    let scratch = Scratch::new();
    let key = generate_key(KeySpec::EcdsaP256).unwrap();
    let csr = make_csr(key.pkcs8_der(), Some("api.example.com"), &[], &[]).unwrap();
    let path = scratch.write("cn.csr", &csr);
    let (ok, out) = openssl_status(&["req", "-inform", "DER", "-in", &path, "-verify", "-noout"]);
    assert!(ok, "{out}");
    let subject = openssl_text(&["req", "-inform", "DER", "-in", &path, "-noout", "-subject"]);
    assert_eq!(subject.trim(), "subject=CN = api.example.com");
    let text = openssl_text(&["req", "-inform", "DER", "-in", &path, "-noout", "-text"]);
    assert!(!text.contains("Subject Alternative Name"), "{text}");
}

#[test]
fn csr_errors() {
    let key = generate_key(KeySpec::EcdsaP256).unwrap();
    assert_eq!(make_csr(key.pkcs8_der(), None, &[], &[]), Err(KeygenError::EmptyRequest));
    assert_eq!(make_csr(b"not a key", Some("x"), &[], &[]), Err(KeygenError::InvalidKey));
    let bad_dns = ["exämple.com".to_owned()];
    assert!(matches!(
        make_csr(key.pkcs8_der(), None, &bad_dns, &[]),
        Err(KeygenError::InvalidName(_))
    ));
    assert!(matches!(
        make_csr(key.pkcs8_der(), None, &[String::new()], &[]),
        Err(KeygenError::InvalidName(_))
    ));
    assert!(matches!(
        make_csr(key.pkcs8_der(), Some(""), &[], &[]),
        Err(KeygenError::InvalidName(_))
    ));
}

/// A CA and a leaf for `key`, DER, leaf first.
fn chain_for(key_pkcs8: &[u8]) -> Vec<Vec<u8>> {
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name.push(DnType::CommonName, "CMP Keygen Test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::try_from(key_pkcs8).unwrap();
    let mut leaf_params = CertificateParams::new(vec!["app.example.com".to_owned()]).unwrap();
    leaf_params.distinguished_name = rcgen::DistinguishedName::new();
    leaf_params.distinguished_name.push(DnType::CommonName, "app.example.com");
    let leaf = leaf_params.signed_by(&leaf_key, &Issuer::from_params(&ca_params, &ca_key)).unwrap();
    vec![leaf.der().to_vec(), ca.der().to_vec()]
}

#[test]
fn pkcs12_export_opens_in_openssl_and_in_decode_import() {
    let scratch = Scratch::new();
    for spec in [KeySpec::EcdsaP256, KeySpec::Rsa2048, KeySpec::Ed25519] {
        let key = generate_key(spec).unwrap();
        let chain = chain_for(key.pkcs8_der());
        let p12 = export_pkcs12(key.pkcs8_der(), &chain, PASSWORD, "app.example.com").unwrap();
        let path = scratch.write(&format!("{spec}.p12"), &p12);
        let pass = format!("pass:{PASSWORD}");

        // Modern algorithms only: no -legacy needed.
        let (ok, info) =
            openssl_status(&["pkcs12", "-in", &path, "-info", "-noout", "-passin", &pass]);
        assert!(ok, "{spec}: {info}");
        assert!(info.contains("MAC: sha256, Iteration 100000"), "{spec}: {info}");
        assert!(
            info.contains(
                "PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration 100000, PRF hmacWithSHA256"
            ),
            "{spec}: {info}"
        );
        assert!(
            info.contains(
                "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 100000, PRF hmacWithSHA256"
            ),
            "{spec}: {info}"
        );

        // The key and both certificates come back out.
        let dump = openssl_text(&["pkcs12", "-in", &path, "-passin", &pass, "-nodes"]);
        assert_eq!(dump.matches("-----BEGIN CERTIFICATE-----").count(), 2, "{spec}: {dump}");
        assert!(dump.contains("friendlyName: app.example.com"), "{spec}: {dump}");
        let key_start = dump.find("-----BEGIN PRIVATE KEY-----").unwrap();
        let key_end = dump.find("-----END PRIVATE KEY-----").unwrap() + 26;
        let exported_key = scratch.write(&format!("{spec}-out.key"), &dump[key_start..key_end]);
        let original_key = scratch.write(&format!("{spec}-in.key"), key.to_pem().as_bytes());
        assert_eq!(
            openssl(&["pkey", "-in", &exported_key, "-pubout"]),
            openssl(&["pkey", "-in", &original_key, "-pubout"]),
            "{spec}"
        );
        if matches!(spec, KeySpec::Rsa2048) {
            assert_eq!(
                openssl(&["rsa", "-in", &exported_key, "-noout", "-modulus"]),
                openssl(&["rsa", "-in", &original_key, "-noout", "-modulus"])
            );
        }
        // The leaf is the certificate with the key's localKeyID.
        let leaf_only =
            openssl_text(&["pkcs12", "-in", &path, "-passin", &pass, "-clcerts", "-nokeys"]);
        assert!(leaf_only.contains("subject=CN = app.example.com"), "{spec}: {leaf_only}");
        assert_eq!(leaf_only.matches("-----BEGIN CERTIFICATE-----").count(), 1);

        // A wrong password fails.
        let (ok, _) =
            openssl_status(&["pkcs12", "-in", &path, "-passin", "pass:wrong-horse", "-noout"]);
        assert!(!ok, "{spec}: a wrong password opened the file");

        // This crate's importer reads the certificates back (and never the key).
        let decoded = decode_import(&p12, Some(PASSWORD));
        assert!(decoded.rejected.is_empty(), "{spec}: {:?}", decoded.rejected);
        let mut got: Vec<String> =
            decoded.certificates.iter().map(|c| c.fingerprint_sha256.clone()).collect();
        let mut want: Vec<String> = chain.iter().map(|der| sha256_hex(der)).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{spec}");
        let wrong = decode_import(&p12, Some("wrong-horse"));
        assert!(wrong.certificates.is_empty());
        assert_eq!(wrong.rejected[0].reason, reason::WRONG_PASSWORD);
    }
}

#[test]
fn pkcs12_export_refusals() {
    let key = generate_key(KeySpec::EcdsaP256).unwrap();
    let chain = chain_for(key.pkcs8_der());
    for weak in ["", "short", "1234567", "ünïcöd"] {
        assert_eq!(
            export_pkcs12(key.pkcs8_der(), &chain, weak, "x"),
            Err(KeygenError::WeakPassword),
            "{weak:?}"
        );
    }
    // Eight characters is enough, counted as characters, not bytes.
    export_pkcs12(key.pkcs8_der(), &chain, "ünïcödé!", "x").unwrap();
    assert_eq!(export_pkcs12(key.pkcs8_der(), &[], PASSWORD, "x"), Err(KeygenError::NoCertificate));
    let other = generate_key(KeySpec::EcdsaP256).unwrap();
    assert_eq!(
        export_pkcs12(other.pkcs8_der(), &chain, PASSWORD, "x"),
        Err(KeygenError::KeyMismatch)
    );
    assert_eq!(export_pkcs12(b"junk", &chain, PASSWORD, "x"), Err(KeygenError::InvalidKey));
    let broken = vec![chain[0].clone(), b"not a certificate".to_vec()];
    assert!(matches!(
        export_pkcs12(key.pkcs8_der(), &broken, PASSWORD, "x"),
        Err(KeygenError::InvalidCertificate { index: 1, .. })
    ));
    let err = export_pkcs12(key.pkcs8_der(), &chain, "1234567", "x").unwrap_err();
    assert!(!err.to_string().contains("1234567"));
}
