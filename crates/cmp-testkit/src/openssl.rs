//! What `openssl x509` says about a certificate: the independent verifier tests compare with.

use std::path::Path;
use std::process::Command;

/// The facts `openssl x509` prints, as it prints them (hex lowercased, no colons).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct X509View {
    pub fingerprint: String,
    pub serial: String,
    /// RFC 2253 (`-nameopt RFC2253`).
    pub subject: String,
    pub issuer: String,
    /// `2015-06-04 11:04:38Z` (`-dateopt iso_8601`).
    pub not_before: String,
    pub not_after: String,
    pub signature_algorithm: String,
    pub key_bits: Option<u32>,
    pub is_ca: bool,
}

/// Runs `openssl x509` on a PEM file and reads its answer.
pub fn x509_view(pem_path: impl AsRef<Path>) -> X509View {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-serial", "-subject", "-issuer"])
        .args(["-nameopt", "RFC2253", "-startdate", "-enddate", "-dateopt", "iso_8601", "-text"])
        .arg("-in")
        .arg(pem_path.as_ref())
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("openssl prints text");
    let mut view = X509View::default();
    for line in text.lines() {
        let field = |prefix: &str| line.strip_prefix(prefix).map(str::to_owned);
        if let Some(v) = field("sha256 Fingerprint=") {
            view.fingerprint = v.replace(':', "").to_lowercase();
        } else if let Some(v) = field("serial=") {
            view.serial = v.to_lowercase();
        } else if let Some(v) = field("subject=") {
            view.subject = v;
        } else if let Some(v) = field("issuer=") {
            view.issuer = v;
        } else if let Some(v) = field("notBefore=") {
            view.not_before = v;
        } else if let Some(v) = field("notAfter=") {
            view.not_after = v;
        }
        let trimmed = line.trim();
        if let Some(v) = trimmed.strip_prefix("Signature Algorithm: ")
            && view.signature_algorithm.is_empty()
        {
            view.signature_algorithm = v.to_owned();
        }
        if let Some(bits) =
            trimmed.split("Public-Key: (").nth(1).and_then(|rest| rest.strip_suffix(" bit)"))
        {
            view.key_bits = bits.parse().ok();
        }
        if trimmed.starts_with("CA:TRUE") {
            view.is_ca = true;
        }
    }
    view
}

/// The Mozilla root certificates Debian ships, sorted.
pub fn mozilla_roots() -> Vec<std::path::PathBuf> {
    let mut paths: Vec<_> = std::fs::read_dir("/usr/share/ca-certificates/mozilla")
        .expect("Debian's ca-certificates is installed")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 100, "expected the Mozilla store, found {} files", paths.len());
    paths
}

/// A P-256 CSR for `common_name` made by the openssl CLI (an independent CSR writer), PEM.
pub fn csr_pem(common_name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new("openssl")
        .args(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"])
        .arg("-keyout")
        .arg(dir.path().join("key.pem"))
        .args(["-subj", &format!("/CN={common_name}")])
        .output()
        .unwrap();
    assert!(output.status.success(), "openssl req: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// A P-256 CSR (PEM) with an empty subject and `names` (DNS names or IPs) as its SAN, as an ACME
/// CA wants it.
pub fn csr_pem_for_names(names: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let san: Vec<String> = names
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(_) => format!("IP:{n}"),
            Err(_) => format!("DNS:{n}"),
        })
        .collect();
    let output = std::process::Command::new("openssl")
        .args(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"])
        .arg("-keyout")
        .arg(dir.path().join("key.pem"))
        .args(["-subj", "/", "-addext", &format!("subjectAltName={}", san.join(","))])
        .output()
        .unwrap();
    assert!(output.status.success(), "openssl req: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// `openssl verify` of a PEM chain (leaf first, intermediates after) against one root, PEM.
/// `Err` holds what openssl said.
pub fn verify_chain(chain_pem: &str, root_pem: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let blocks: Vec<&str> = chain_pem
        .split_inclusive("-----END CERTIFICATE-----")
        .filter(|b| b.contains("BEGIN CERTIFICATE"))
        .collect();
    let (leaf, rest) = blocks.split_first().ok_or("the chain holds no certificate")?;
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let (leaf, untrusted, root) =
        (write("leaf.pem", leaf), write("chain.pem", &rest.concat()), write("root.pem", root_pem));
    let mut command = std::process::Command::new("openssl");
    command.arg("verify").arg("-CAfile").arg(root);
    if !rest.is_empty() {
        command.arg("-untrusted").arg(untrusted);
    }
    let output = command.arg(leaf).output().unwrap();
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
