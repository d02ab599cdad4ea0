//! Test support: a clock stopped at a given time, P-256 leaf keys and their CSRs, and the
//! `openssl` CLI.

use std::process::Command;

use cmp_ca::{Profile, SignRequest};
use cmp_domain::Clock;
use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};
use time::{Duration, OffsetDateTime};

/// A clock that stays where it was set.
#[derive(Debug)]
pub struct TestClock(OffsetDateTime);

impl TestClock {
    pub fn at(now: OffsetDateTime) -> TestClock {
        TestClock(now)
    }
}

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

/// Now, to the second (openssl checks times against the real clock).
pub fn real_now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now - Duration::nanoseconds(i64::from(now.nanosecond()))
}

/// PEM of a DER certificate.
pub fn pem(der: &[u8]) -> String {
    ::pem::encode(&::pem::Pem::new("CERTIFICATE", der.to_vec()))
}

/// A new ECDSA P-256 leaf key.
pub fn p256_key() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap()
}

/// A CSR for `key` that asks for a name the profile does not give (the CA must ignore it).
pub fn csr_der(key: &KeyPair) -> Vec<u8> {
    let params = CertificateParams::new(vec!["ignored.example".to_owned()]).unwrap();
    params.serialize_request(key).unwrap().der().to_vec()
}

pub fn sign_request(request_id: &str, key: &KeyPair, profile: Profile) -> SignRequest {
    SignRequest {
        request_id: request_id.into(),
        csr_der: csr_der(key),
        profile,
        replaces: None,
        acme_solver: None,
    }
}

/// Runs `openssl` and fails the test unless it succeeds; returns what it printed.
pub fn openssl_ok(args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).output().unwrap();
    let output =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "openssl {args:?} failed:\n{output}");
    output
}
