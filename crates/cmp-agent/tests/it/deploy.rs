//! Deployments to real servers: what they serve afterwards (by `openssl s_client`, not the
//! engine's word), the files' modes, refusals and rollbacks.

use std::os::unix::fs::MetadataExt;

use cmp_agent::{Step, deploy};
use cmp_testkit::targets::{TestCa, TlsServer};

use crate::support::*;

fn steps(report: &[cmp_agent::StepRecord]) -> Vec<&'static str> {
    report.iter().map(|s| s.step.as_str()).collect()
}

#[tokio::test]
async fn nginx_serves_the_new_certificate_with_the_configured_mode() {
    cmp_testkit::install_crypto_provider();
    let ca = TestCa::new();
    let (v1, v2) = (ca.leaf("v1"), ca.leaf("v2"));
    let nginx = TlsServer::nginx(&v1);
    let state = tempfile::tempdir().unwrap();
    let mut fields = server_fields(&nginx);
    fields.insert("mode", quoted("0640"));
    fields.insert("group", quoted("www-data"));
    let config = config_with(state.path(), &fields);
    let target = config.target("web").unwrap();
    assert_serves(&nginx, &v1);

    let report = deploy(&target, &material(&v2, &ca.ca_pem)).await.unwrap();

    assert_serves(&nginx, &v2);
    assert_eq!(report.fingerprint, v2.fingerprint);
    assert_eq!(steps(&report.steps), ["pair", "write", "pair", "test", "reload", "verify"]);
    let key = nginx.key.as_ref().unwrap();
    for path in [&nginx.cert, key] {
        assert_eq!(mode(path), 0o640, "{}", path.display());
        assert_eq!(std::fs::metadata(path).unwrap().gid(), 33, "group www-data");
    }
    // nginx's certificate file holds the leaf and then the chain.
    let cert = std::fs::read_to_string(&nginx.cert).unwrap();
    assert_eq!(cert.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(cert.ends_with(&ca.ca_pem), "the chain follows the leaf");
    // The replaced version stays beside it, for one manual rollback; the journal is gone.
    let previous = std::fs::read_to_string(nginx.cert.with_extension("pem.cmp-previous")).unwrap();
    assert_eq!(previous, v1.cert_pem);
    assert!(!state.path().join("journal/web.json").exists());
    // The agent's own handshake agrees with openssl's.
    let served =
        cmp_agent::served_fingerprint(&nginx.address(), "localhost", SERVED_WITHIN).await.unwrap();
    assert_eq!(served, v2.fingerprint);
}

#[tokio::test]
async fn apache_serves_the_new_certificate_and_keys_default_to_0600() {
    cmp_testkit::install_crypto_provider();
    let ca = TestCa::new();
    let (v1, v2) = (ca.leaf("v1"), ca.leaf("v2"));
    let mut apache = TlsServer::apache(&v1);
    let state = tempfile::tempdir().unwrap();
    let config = config_with(state.path(), &server_fields(&apache));
    assert_serves(&apache, &v1);

    let report = deploy(&config.target("web").unwrap(), &material(&v2, "")).await.unwrap();

    assert_eq!(report.fingerprint, v2.fingerprint);
    assert_serves(&apache, &v2);
    assert!(apache.is_running());
    assert_eq!(mode(&apache.cert), 0o644);
    assert_eq!(mode(apache.key.as_ref().unwrap()), 0o600);
    assert!(openssl_pair_matches(&apache.cert, apache.key.as_ref().unwrap()));
}

#[tokio::test]
async fn haproxy_serves_the_new_certificate_from_one_pem() {
    cmp_testkit::install_crypto_provider();
    let ca = TestCa::new();
    let (v1, v2) = (ca.leaf("v1"), ca.leaf("v2"));
    let haproxy = TlsServer::haproxy(&v1);
    let state = tempfile::tempdir().unwrap();
    let config = config_with(state.path(), &server_fields(&haproxy));
    assert_serves(&haproxy, &v1);

    deploy(&config.target("web").unwrap(), &material(&v2, &ca.ca_pem)).await.unwrap();

    assert_serves(&haproxy, &v2);
    let pem = haproxy.pem.as_ref().unwrap();
    assert_eq!(mode(pem), 0o600, "the PEM holds the key");
    let text = std::fs::read_to_string(pem).unwrap();
    assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 2, "leaf and chain");
    assert!(text.contains("BEGIN PRIVATE KEY"));
    assert!(openssl_pair_matches(pem, pem));
}

#[tokio::test]
async fn a_mismatched_key_is_refused_before_any_file_changes() {
    cmp_testkit::install_crypto_provider();
    let ca = TestCa::new();
    let (v1, v2, other) = (ca.leaf("v1"), ca.leaf("v2"), ca.leaf("other"));
    // Apache: the server a mismatched pair would stop on its graceful reload.
    let mut apache = TlsServer::apache(&v1);
    let state = tempfile::tempdir().unwrap();
    let config = config_with(state.path(), &server_fields(&apache));
    let before = listing(apache.cert.parent().unwrap());
    let (cert_before, key_before) = (
        std::fs::read(&apache.cert).unwrap(),
        std::fs::read(apache.key.as_ref().unwrap()).unwrap(),
    );

    let mismatched = cmp_agent::Material::from_pem(
        &v2.cert_pem,
        "",
        &cmp_domain::Secret::new(other.key_pem.clone()),
    )
    .unwrap();
    let failure = deploy(&config.target("web").unwrap(), &mismatched).await.unwrap_err();

    assert_eq!(failure.step, Step::Pair, "{failure}");
    assert!(failure.message.contains("do not match"), "{}", failure.message);
    assert!(!failure.changed_files);
    assert_eq!(steps(&failure.steps), ["pair"]);
    assert_eq!(std::fs::read(&apache.cert).unwrap(), cert_before);
    assert_eq!(std::fs::read(apache.key.as_ref().unwrap()).unwrap(), key_before);
    assert_eq!(listing(apache.cert.parent().unwrap()), before, "no temp or backup file");
    assert!(!state.path().join("journal/web.json").exists());
    assert_serves(&apache, &v1);
    assert!(apache.is_running());
}

#[tokio::test]
async fn a_failing_configuration_test_rolls_back_with_its_output() {
    cmp_testkit::install_crypto_provider();
    let ca = TestCa::new();
    let (v1, v2) = (ca.leaf("v1"), ca.leaf("v2"));
    let nginx = TlsServer::nginx(&v1);
    let state = tempfile::tempdir().unwrap();
    let mut fields = server_fields(&nginx);
    // The agent runs no shell; the operator's argv may.
    fields.insert("test", r#"["sh", "-c", "echo 'emerg: broken config' >&2; exit 1"]"#.into());
    let config = config_with(state.path(), &fields);
    let key = nginx.key.as_ref().unwrap();
    let (cert_before, key_before) =
        (std::fs::read(&nginx.cert).unwrap(), std::fs::read(key).unwrap());

    let failure = deploy(&config.target("web").unwrap(), &material(&v2, "")).await.unwrap_err();

    assert_eq!(failure.step, Step::Test, "{failure}");
    assert!(failure.output.contains("emerg: broken config"), "{failure:?}");
    assert!(failure.changed_files && failure.rolled_back, "{failure:?}");
    assert_eq!(steps(&failure.steps), ["pair", "write", "pair", "test", "rollback"]);
    assert_eq!(std::fs::read(&nginx.cert).unwrap(), cert_before);
    assert_eq!(std::fs::read(key).unwrap(), key_before);
    assert!(!nginx.cert.with_extension("pem.cmp-new").exists());
    assert!(!state.path().join("journal/web.json").exists());
    assert_serves(&nginx, &v1);
}

#[tokio::test]
async fn a_failed_verify_after_the_reload_reloads_the_old_files_again() {
    cmp_testkit::install_crypto_provider();
    let ca = TestCa::new();
    let (v1, v2) = (ca.leaf("v1"), ca.leaf("v2"));
    let haproxy = TlsServer::haproxy(&v1);
    // The check looks at another server, which keeps serving v1: the verify step fails after
    // HAProxy really reloaded v2, so the rollback must reload HAProxy onto v1 again.
    let decoy = TlsServer::nginx(&v1);
    let state = tempfile::tempdir().unwrap();
    let mut fields = server_fields(&haproxy);
    fields.insert(
        "verify",
        format!(
            "{{ address = {}, sni = \"localhost\", timeout_secs = 2 }}",
            quoted(decoy.address())
        ),
    );
    let config = config_with(state.path(), &fields);
    let pem = haproxy.pem.as_ref().unwrap();
    let before = std::fs::read(pem).unwrap();

    let failure = deploy(&config.target("web").unwrap(), &material(&v2, "")).await.unwrap_err();

    assert_eq!(failure.step, Step::Verify, "{failure}");
    assert!(failure.message.contains(&v1.fingerprint), "{}", failure.message);
    assert!(failure.rolled_back, "{failure:?}");
    let rollback = failure.steps.last().unwrap();
    assert!(rollback.output.contains("reloaded"), "{}", rollback.output);
    assert!(
        rollback.output.contains("previous certificate is served again"),
        "{}",
        rollback.output
    );
    assert_eq!(std::fs::read(pem).unwrap(), before);
    assert_serves(&haproxy, &v1);
}

#[tokio::test]
async fn a_failed_first_deployment_removes_its_files_and_says_when_the_reload_fails_again() {
    cmp_testkit::install_crypto_provider();
    let ca = TestCa::new();
    let v1 = ca.leaf("v1");
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut fields = std::collections::BTreeMap::new();
    fields.insert("kind", quoted("file"));
    fields.insert("cert", quoted(dir.path().join("app.crt").display().to_string()));
    fields.insert("chain", quoted(dir.path().join("chain.crt").display().to_string()));
    fields.insert("key", quoted(dir.path().join("app.key").display().to_string()));
    fields.insert("reload", r#"["sh", "-c", "echo cannot signal app; exit 3"]"#.into());
    let config = config_with(state.path(), &fields);

    let failure =
        deploy(&config.target("web").unwrap(), &material(&v1, &ca.ca_pem)).await.unwrap_err();

    assert_eq!(failure.step, Step::Reload, "{failure}");
    assert!(failure.output.contains("cannot signal app"), "{failure:?}");
    assert!(failure.message.contains("exit status: 3"), "{}", failure.message);
    // The files are gone again, but the reload of the rollback failed too: not rolled back.
    assert!(failure.changed_files && !failure.rolled_back, "{failure:?}");
    assert_eq!(listing(dir.path()), Vec::<String>::new());
}

#[test]
fn material_never_prints_its_key() {
    let ca = TestCa::new();
    let leaf = ca.leaf("v1");
    let shown = format!("{:?}", material(&leaf, ""));
    let key_line = leaf.key_pem.lines().nth(1).unwrap();
    assert!(shown.contains("<redacted>") && !shown.contains(key_line), "{shown}");
    assert!(shown.contains(&leaf.fingerprint), "{shown}");
}
