//! Test fixtures: certificates from rcgen, files and bundles from the `openssl` CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256,
};

pub const OPENSSL: &str = "/usr/bin/openssl";

/// A generated certificate with its key.
pub struct Generated {
    pub der: Vec<u8>,
    pub pem: String,
    pub key_pem: String,
}

/// A self-signed CA and a leaf it issued (P-256), with SANs on the leaf.
pub struct Chain {
    pub ca: Generated,
    pub leaf: Generated,
}

pub fn chain() -> Chain {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name.push(DnType::CommonName, "CMP Test CA");
    ca_params.distinguished_name.push(DnType::OrganizationName, "CMP, Testing");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca = Generated {
        der: ca_cert.der().to_vec(),
        pem: ca_cert.pem(),
        key_pem: ca_key.serialize_pem(),
    };

    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let sans =
        vec!["example.com".to_owned(), "192.0.2.7".to_owned(), "2001:db8:0:0:0:0:0:1".to_owned()];
    let mut leaf_params = CertificateParams::new(sans).unwrap();
    leaf_params.distinguished_name = rcgen::DistinguishedName::new();
    leaf_params.distinguished_name.push(DnType::CommonName, "example.com");
    leaf_params.use_authority_key_identifier_extension = true;
    leaf_params
        .subject_alt_names
        .push(rcgen::SanType::Rfc822Name("ops@example.com".try_into().unwrap()));
    leaf_params
        .subject_alt_names
        .push(rcgen::SanType::URI("https://example.com/x".try_into().unwrap()));
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let leaf = Generated {
        der: leaf_cert.der().to_vec(),
        pem: leaf_cert.pem(),
        key_pem: leaf_key.serialize_pem(),
    };
    Chain { ca, leaf }
}

/// A scratch directory for files handed to `openssl`.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch { dir: tempfile::Builder::new().prefix("cmp-pki-test").tempdir().unwrap() }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `contents` to `name` and returns its path as a string.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path_str(&path)
    }

    pub fn file(&self, name: &str) -> String {
        path_str(&self.path(name))
    }
}

fn path_str(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

/// Runs `openssl` and returns stdout; fails the test if it fails.
pub fn openssl(args: &[&str]) -> Vec<u8> {
    let output = Command::new(OPENSSL).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Runs `openssl` and returns stdout as text.
pub fn openssl_text(args: &[&str]) -> String {
    String::from_utf8(openssl(args)).unwrap()
}
