//! Test support: a settable clock, a builtin CA per key algorithm, leaf keys and CSRs, and the
//! `openssl` CLI on files in a scratch directory.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use cmp_ca::{CaAdapter, IssuedCertificate, MemoryLedger, Profile, SignRequest, Usage};
use cmp_ca_builtin::{BuiltinCa, BuiltinConfig, CaMaterial, KeyAlgorithm, create_material};
use cmp_domain::Clock;
use rcgen::{
    CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519,
    PKCS_RSA_SHA256, RsaKeySize,
};
use time::{Duration, OffsetDateTime};

pub const BASE_URL: &str = "http://ca.test:3000";

/// A clock the test moves by hand.
#[derive(Debug)]
pub struct TestClock(Mutex<OffsetDateTime>);

impl TestClock {
    pub fn set(&self, now: OffsetDateTime) {
        *self.0.lock().unwrap() = now;
    }

    pub fn advance(&self, by: Duration) {
        let now = self.now();
        self.set(now + by);
    }
}

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

/// Now, to the second (openssl checks times against the real clock).
pub fn real_now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now - Duration::nanoseconds(i64::from(now.nanosecond()))
}

/// A builtin CA with its clock, ledger and a scratch directory holding its PEM files.
pub struct TestCa {
    pub ca: BuiltinCa,
    pub clock: Arc<TestClock>,
    pub ledger: Arc<MemoryLedger>,
    pub material: CaMaterial,
    pub created: OffsetDateTime,
    pub dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new(algorithm: KeyAlgorithm) -> TestCa {
        let config = BuiltinConfig {
            key_algorithm: algorithm,
            base_url: BASE_URL.into(),
            ..BuiltinConfig::default()
        };
        let created = real_now();
        let material = create_material(&config, created).unwrap();
        TestCa::from_material(material, created)
    }

    pub fn from_material(material: CaMaterial, created: OffsetDateTime) -> TestCa {
        let clock = Arc::new(TestClock(Mutex::new(created)));
        let ledger = Arc::new(MemoryLedger::default());
        let ca = BuiltinCa::new(
            "ca-1".into(),
            "builtin".into(),
            &material,
            format!("{BASE_URL}/"),
            ledger.clone(),
            clock.clone(),
        )
        .unwrap();
        let dir = tempfile::Builder::new().prefix("cmp-ca-test").tempdir().unwrap();
        let test_ca = TestCa { ca, clock, ledger, material, created, dir };
        test_ca.write("root.pem", pem(&test_ca.material.root_der));
        test_ca.write("issuing.pem", pem(&test_ca.material.issuing_der));
        test_ca.write("chain.pem", test_ca.ca.chain_pem());
        test_ca
    }

    /// Writes a file in the scratch directory; returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    pub fn path(&self, name: &str) -> String {
        let path: PathBuf = self.dir.path().join(name);
        path.to_str().unwrap().to_owned()
    }

    /// Issues a certificate for `key` under `profile`.
    pub async fn issue(
        &self,
        request_id: &str,
        key: &KeyPair,
        profile: Profile,
    ) -> IssuedCertificate {
        self.ca.create_certificate(&sign_request(request_id, key, profile)).await.unwrap()
    }
}

/// PEM of a DER certificate.
pub fn pem(der: &[u8]) -> String {
    ::pem::encode(&::pem::Pem::new("CERTIFICATE", der.to_vec()))
}

/// Leaf key types the CA signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafKey {
    Rsa2048,
    P256,
    P384,
    Ed25519,
}

impl LeafKey {
    pub const ALL: [LeafKey; 4] =
        [LeafKey::Rsa2048, LeafKey::P256, LeafKey::P384, LeafKey::Ed25519];

    pub fn generate(self) -> KeyPair {
        match self {
            LeafKey::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048),
            LeafKey::P256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
            LeafKey::P384 => KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384),
            LeafKey::Ed25519 => KeyPair::generate_for(&PKCS_ED25519),
        }
        .unwrap()
    }
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

/// www.example.com and example.com, 192.0.2.10, serverAuth + clientAuth, 30 days.
pub fn profile() -> Profile {
    Profile {
        common_name: Some("www.example.com".into()),
        dns_names: vec!["www.example.com".into(), "example.com".into()],
        ip_addresses: vec!["192.0.2.10".parse().unwrap()],
        usages: vec![Usage::ServerAuth, Usage::ClientAuth],
        validity_secs: 30 * 86_400,
    }
}

/// What `openssl` printed, and whether it succeeded.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    /// stdout then stderr.
    pub output: String,
}

pub fn openssl(args: &[&str]) -> Run {
    let out = Command::new("openssl").args(args).output().unwrap();
    Run {
        ok: out.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Runs `openssl` and fails the test unless it succeeds; returns what it printed.
pub fn openssl_ok(args: &[&str]) -> String {
    let run = openssl(args);
    assert!(run.ok, "openssl {args:?} failed:\n{}", run.output);
    run.output
}

/// Generates a CSR with the `openssl` CLI for a key made by `openssl genpkey <genpkey>`.
pub fn openssl_csr(ca: &TestCa, name: &str, genpkey: &[&str]) -> Vec<u8> {
    let key = ca.path(&format!("{name}.key"));
    let csr = ca.path(&format!("{name}.csr"));
    let mut args = vec!["genpkey"];
    args.extend_from_slice(genpkey);
    args.extend_from_slice(&["-out", &key]);
    openssl_ok(&args);
    openssl_ok(&["req", "-new", "-key", &key, "-subj", "/CN=x", "-outform", "DER", "-out", &csr]);
    std::fs::read(&csr).unwrap()
}
