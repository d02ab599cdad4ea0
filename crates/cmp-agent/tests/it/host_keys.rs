//! What the agent keeps and reads on its host without the server: keys made for
//! `renew_with_local_key` jobs, and the certificates discovery reads.

use cmp_agent::discovery::discover;
use cmp_agent::local_keys::LocalKeys;
use cmp_api::LocalKeyRequest;
use cmp_testkit::targets::TestCa;

fn asked(key_type: &str) -> LocalKeyRequest {
    LocalKeyRequest {
        key_type: key_type.into(),
        common_name: None,
        dns_names: vec!["localhost".into()],
        ip_addresses: vec!["127.0.0.1".into()],
    }
}

#[test]
fn a_retried_job_sends_a_csr_for_the_key_it_made_before() {
    let state = tempfile::tempdir().unwrap();
    let keys = LocalKeys::new(state.path());
    let first =
        cmp_pki::parse_csr(keys.csr_for_job("job-1", &asked("ecdsa_p256")).unwrap().as_bytes())
            .unwrap();
    let again =
        cmp_pki::parse_csr(keys.csr_for_job("job-1", &asked("ecdsa_p256")).unwrap().as_bytes())
            .unwrap();
    let other =
        cmp_pki::parse_csr(keys.csr_for_job("job-2", &asked("rsa2048")).unwrap().as_bytes())
            .unwrap();
    assert_eq!(first.spki_der, again.spki_der, "the same key");
    assert_ne!(first.spki_der, other.spki_der);
    assert_eq!(first.dns_names, ["localhost"]);
    assert_eq!(other.key.bits, Some(2048));
    // Kept for the owner of the state directory only.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state.path().join("keys")), 0o700);
    assert_eq!(mode(&state.path().join("keys/job-1.key")), 0o600);
    // A job id that is not a plain name never becomes a path.
    assert!(keys.csr_for_job("../escape", &asked("ecdsa_p256")).is_err());
    assert!(!state.path().join("escape.key").exists());
    // An unknown key type makes nothing.
    assert!(keys.csr_for_job("job-3", &asked("dsa1024")).is_err());
    assert!(!state.path().join("keys/job-3.key").exists());
    // A certificate no kept key belongs to finds nothing.
    let stranger = TestCa::new().leaf("stranger");
    assert!(keys.find(&stranger.cert_pem, "").unwrap().is_none());
}

#[test]
fn discovery_reports_certificates_only_and_never_follows_links() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (ca.leaf("a"), ca.leaf("b"));
    std::fs::write(dir.path().join("a.pem"), format!("{}{}", a.key_pem, a.cert_pem)).unwrap();
    std::fs::create_dir(dir.path().join("deep")).unwrap();
    let der = pem::parse(&b.cert_pem).unwrap().into_contents();
    std::fs::write(dir.path().join("deep/b.cer"), der).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "nothing here").unwrap();
    std::fs::write(
        dir.path().join("bad.crt"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("c.pem"), ca.leaf("c").cert_pem).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("c.pem"), dir.path().join("c.pem")).unwrap();

    let report = discover(&[dir.path().to_path_buf(), dir.path().join("missing")]);
    let paths: Vec<_> = report.files.iter().map(|f| f.path.clone()).collect();
    let path = |p: &str| dir.path().join(p).display().to_string();
    assert_eq!(paths, [path("a.pem"), path("deep/b.cer")]);
    assert!(report.files.iter().all(|f| !f.certificates_pem.contains("PRIVATE KEY")));
    assert_eq!(report.files[0].certificates_pem.matches("BEGIN CERTIFICATE").count(), 1);
    let unreadable: Vec<_> = report.unreadable.iter().map(|u| u.name.clone()).collect();
    assert!(unreadable.contains(&path("bad.crt")), "{unreadable:?}");
    assert!(unreadable.contains(&path("missing")), "{unreadable:?}");
    assert!(
        !unreadable.iter().any(|u| u.contains("notes.txt") || u.contains("c.pem")),
        "{unreadable:?}"
    );
}
