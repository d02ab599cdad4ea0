//! PKCS#12 files made by `openssl pkcs12 -export` in its modern (PBES2/AES-256, HMAC-SHA256)
//! and legacy (RC2-40 / 3DES, HMAC-SHA1) forms, with and without keys, MAC or password.

use super::fixtures::{Chain, Scratch, chain, openssl};
use crate::{ImportDecoded, decode_import, reason};

const PASSWORD: &str = "s3cret-Pässword";

struct Files {
    scratch: Scratch,
    chain: Chain,
    leaf: String,
    key: String,
    ca: String,
}

fn files() -> Files {
    let scratch = Scratch::new();
    let chain = chain();
    let leaf = scratch.write("leaf.pem", &chain.leaf.pem);
    let key = scratch.write("leaf.key", &chain.leaf.key_pem);
    let ca = scratch.write("ca.pem", &chain.ca.pem);
    Files { scratch, chain, leaf, key, ca }
}

impl Files {
    /// `openssl pkcs12 -export` with the leaf, its key and the CA, plus `extra` arguments.
    fn export(&self, password: &str, extra: &[&str]) -> Vec<u8> {
        let out = self.scratch.file("out.p12");
        let pass = format!("pass:{password}");
        let mut args = vec!["pkcs12", "-export", "-in", &self.leaf, "-certfile", &self.ca];
        args.extend(["-passout", &pass, "-out", &out]);
        if !extra.contains(&"-nokeys") {
            args.extend(["-inkey", &self.key]);
        }
        args.extend(extra);
        openssl(&args);
        std::fs::read(&out).unwrap()
    }

    fn expected(&self) -> Vec<String> {
        let mut expected =
            vec![crate::sha256_hex(&self.chain.leaf.der), crate::sha256_hex(&self.chain.ca.der)];
        expected.sort();
        expected
    }
}

fn sorted_fingerprints(decoded: &ImportDecoded) -> Vec<String> {
    let mut out: Vec<String> =
        decoded.certificates.iter().map(|c| c.fingerprint_sha256.clone()).collect();
    out.sort();
    out
}

fn assert_wrong_password(decoded: &ImportDecoded, secrets: &[&str]) {
    assert!(decoded.certificates.is_empty());
    assert_eq!(decoded.rejected.len(), 1, "{:?}", decoded.rejected);
    let rejection = &decoded.rejected[0];
    assert_eq!((rejection.item.as_str(), rejection.reason), ("input", reason::WRONG_PASSWORD));
    for secret in secrets {
        assert!(!rejection.detail.contains(secret), "password echoed: {rejection:?}");
    }
}

#[test]
fn modern_pkcs12_with_password() {
    let files = files();
    let p12 = files.export(PASSWORD, &[]);
    let decoded = decode_import(&p12, Some(PASSWORD));
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    assert_eq!(sorted_fingerprints(&decoded), files.expected());
}

#[test]
fn wrong_or_missing_password() {
    let files = files();
    let p12 = files.export(PASSWORD, &[]);
    assert_wrong_password(&decode_import(&p12, Some("not-it")), &["not-it", PASSWORD]);
    let decoded = decode_import(&p12, None);
    assert_wrong_password(&decoded, &[PASSWORD]);
    assert!(decoded.rejected[0].detail.contains("no password"));
    assert_wrong_password(&decode_import(&p12, Some("")), &[PASSWORD]);
}

#[test]
fn legacy_rc2_and_3des_pkcs12() {
    let files = files();
    let legacy = files.export(PASSWORD, &["-legacy"]);
    let decoded = decode_import(&legacy, Some(PASSWORD));
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    assert_eq!(sorted_fingerprints(&decoded), files.expected());
    assert_wrong_password(&decode_import(&legacy, Some("nope")), &["nope"]);

    let des = files.export(
        PASSWORD,
        &["-certpbe", "PBE-SHA1-3DES", "-keypbe", "PBE-SHA1-3DES", "-macalg", "sha1"],
    );
    let decoded = decode_import(&des, Some(PASSWORD));
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    assert_eq!(sorted_fingerprints(&decoded), files.expected());
}

#[test]
fn certificates_only_pkcs12() {
    let files = files();
    let p12 = files.export(PASSWORD, &["-nokeys"]);
    let decoded = decode_import(&p12, Some(PASSWORD));
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    assert_eq!(sorted_fingerprints(&decoded), files.expected());
}

#[test]
fn empty_password_pkcs12_opens_without_one() {
    let files = files();
    let p12 = files.export("", &[]);
    for password in [None, Some("")] {
        let decoded = decode_import(&p12, password);
        assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
        assert_eq!(sorted_fingerprints(&decoded), files.expected());
    }
    assert_wrong_password(&decode_import(&p12, Some("x")), &[]);
}

#[test]
fn pkcs12_without_mac() {
    let files = files();
    // Encrypted certificates and no MAC: a wrong password shows when decryption fails.
    let p12 = files.export(PASSWORD, &["-nomac", "-certpbe", "AES-256-CBC"]);
    let decoded = decode_import(&p12, Some(PASSWORD));
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    assert_eq!(sorted_fingerprints(&decoded), files.expected());
    assert_wrong_password(&decode_import(&p12, Some("wrong")), &["wrong"]);

    // No MAC and unencrypted certificates (OpenSSL's `-nomac` default): nothing protects
    // them, so they are returned whatever the password.
    let open = files.export(PASSWORD, &["-nomac"]);
    for password in [Some(PASSWORD), Some("wrong"), None] {
        assert_eq!(sorted_fingerprints(&decode_import(&open, password)), files.expected());
    }
}

#[test]
fn unencrypted_certificates_still_need_the_mac_password() {
    let files = files();
    let p12 = files.export(PASSWORD, &["-certpbe", "NONE"]);
    let decoded = decode_import(&p12, Some(PASSWORD));
    assert_eq!(sorted_fingerprints(&decoded), files.expected());
    assert_wrong_password(&decode_import(&p12, Some("wrong")), &["wrong"]);
}

#[test]
fn key_only_pkcs12_has_no_certificates() {
    let files = files();
    let out = files.scratch.file("keyonly.p12");
    let pass = format!("pass:{PASSWORD}");
    openssl(&[
        "pkcs12", "-export", "-nocerts", "-inkey", &files.key, "-passout", &pass, "-out", &out,
    ]);
    let decoded = decode_import(&std::fs::read(&out).unwrap(), Some(PASSWORD));
    assert!(decoded.certificates.is_empty());
    assert_eq!(decoded.rejected.len(), 1);
    assert_eq!(decoded.rejected[0].reason, reason::NO_CERTIFICATES);
}
