//! The runtime without a server: the identity on disk, enrolment's refusals, jobs done on the
//! host, the agent's client, and the backoff. The conversation with a real server is tested
//! in `crates/cmp-server/tests/it/`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use cmp_agent::identity::{self, Identity, new_key_and_csr};
use cmp_agent::{AgentConfig, AgentError, Backoff, execute_job};
use cmp_api::JobAssignment;
use cmp_domain::{JobKind, Secret};
use cmp_testkit::targets::{Leaf, TestCa};
use rcgen::PublicKeyData;
use time::OffsetDateTime;

use crate::support::*;

fn identity_of(leaf: &Leaf, ca: &TestCa) -> Identity {
    Identity::from_parts(
        "web-01".into(),
        "agent-id-1".into(),
        "https://cmp.example:3000".into(),
        leaf.cert_pem.clone(),
        Secret::new(leaf.key_pem.clone()),
        ca.ca_pem.clone(),
    )
    .unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn file_config(state: &Path, dir: &Path) -> AgentConfig {
    let mut fields = BTreeMap::new();
    fields.insert("kind", quoted("file"));
    fields.insert("cert", quoted(dir.join("app.crt").display().to_string()));
    fields.insert("key", quoted(dir.join("app.key").display().to_string()));
    config_with(state, &fields)
}

/// A deploy job for `target`, and the key it opens to (the server seals it to the agent).
fn job(
    target: &str,
    leaf: Option<&Leaf>,
    with_key: bool,
) -> (JobAssignment, Option<Secret<String>>) {
    let key = leaf.filter(|_| with_key).map(|l| Secret::new(l.key_pem.clone()));
    let job = JobAssignment {
        id: "job-1".into(),
        kind: JobKind::Deploy,
        target: target.into(),
        attempt: 1,
        lease_until: OffsetDateTime::UNIX_EPOCH,
        certificate_id: Some("cert-1".into()),
        certificate_pem: leaf.map(|l| l.cert_pem.clone()),
        chain_pem: Some(String::new()),
        sealed_key: None,
        key_request: None,
    };
    (job, key)
}

async fn execute(
    config: &AgentConfig,
    (job, key): (JobAssignment, Option<Secret<String>>),
) -> cmp_api::JobResult {
    execute_job(config, job, key).await
}

#[test]
fn the_identity_round_trips_with_a_private_key_file() {
    let ca = TestCa::new();
    let leaf = ca.leaf("web-01");
    let state = tempfile::tempdir().unwrap();
    let saved = identity_of(&leaf, &ca);

    saved.save(state.path()).unwrap();

    let dir = identity::identity_dir(state.path());
    assert_eq!(
        listing(&dir),
        ["agent-ca.pem", "agent.json", "cert.pem", "key.pem"],
        "no temp file left"
    );
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("key.pem")), 0o600);
    assert_eq!(mode(&dir.join("cert.pem")), 0o644);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("agent.json")).unwrap()).unwrap();
    assert_eq!(
        meta,
        serde_json::json!({ "name": "web-01", "id": "agent-id-1", "server": "https://cmp.example:3000" })
    );
    let loaded = Identity::load(state.path()).unwrap();
    assert_eq!(loaded.name, "web-01");
    assert_eq!(loaded.id, "agent-id-1");
    assert_eq!(loaded.server, "https://cmp.example:3000");
    assert_eq!(loaded.cert_pem, leaf.cert_pem);
    assert_eq!(loaded.key_pem.expose(), &leaf.key_pem);
    assert_eq!(loaded.agent_ca_pem, ca.ca_pem);
    assert_eq!(loaded.not_after, saved.not_after);
    assert!(loaded.not_before < loaded.not_after);
    assert_eq!(loaded.fingerprint(), leaf.fingerprint);

    let debug = format!("{loaded:?}");
    let key_body = leaf.key_pem.lines().nth(1).unwrap();
    assert!(!debug.contains(key_body), "the key printed: {debug}");
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    assert!(debug.contains("redacted"), "{debug}");
}

#[test]
fn saving_again_keeps_the_key_private_and_replaces_the_pair() {
    let ca = TestCa::new();
    let state = tempfile::tempdir().unwrap();
    identity_of(&ca.leaf("v1"), &ca).save(state.path()).unwrap();
    let key_path = identity::identity_dir(state.path()).join("key.pem");
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let v2 = ca.leaf("v2");

    identity_of(&v2, &ca).save(state.path()).unwrap();

    assert_eq!(mode(&key_path), 0o600);
    assert_eq!(Identity::load(state.path()).unwrap().fingerprint(), v2.fingerprint);
}

#[test]
fn a_renewal_cut_short_is_finished_or_dropped_on_load() {
    let ca = TestCa::new();
    let state = tempfile::tempdir().unwrap();
    let (v1, v2) = (ca.leaf("v1"), ca.leaf("v2"));
    identity_of(&v1, &ca).save(state.path()).unwrap();
    let dir = identity::identity_dir(state.path());

    // The crash came after the new key was written, before the certificate: the old pair.
    std::fs::write(dir.join("key.pem.new"), &v2.key_pem).unwrap();
    assert_eq!(Identity::load(state.path()).unwrap().fingerprint(), v1.fingerprint);
    assert!(!dir.join("key.pem.new").exists());

    // Both written, not renamed: the new pair (the server only knows it now).
    std::fs::write(dir.join("key.pem.new"), &v2.key_pem).unwrap();
    std::fs::write(dir.join("cert.pem.new"), &v2.cert_pem).unwrap();
    assert_eq!(Identity::load(state.path()).unwrap().fingerprint(), v2.fingerprint);
    assert_eq!(listing(&dir), ["agent-ca.pem", "agent.json", "cert.pem", "key.pem"]);
}

#[test]
fn an_identity_whose_key_is_not_the_certificates_is_refused() {
    let ca = TestCa::new();
    let state = tempfile::tempdir().unwrap();
    identity_of(&ca.leaf("v1"), &ca).save(state.path()).unwrap();
    let dir = identity::identity_dir(state.path());
    std::fs::write(dir.join("key.pem"), &ca.leaf("other").key_pem).unwrap();

    let error = Identity::load(state.path()).unwrap_err();

    assert!(matches!(error, AgentError::BadIdentity { .. }), "{error}");
    assert!(error.to_string().contains("does not belong"), "{error}");
}

#[test]
fn no_identity_is_not_enrolled() {
    let state = tempfile::tempdir().unwrap();
    let error = Identity::load(state.path()).unwrap_err();
    assert!(matches!(error, AgentError::NotEnrolled(_)), "{error}");
}

#[test]
fn the_key_and_csr_are_made_here_and_name_the_agent() {
    let new = new_key_and_csr("web-01").unwrap();
    assert!(new.key_pem.expose().starts_with("-----BEGIN PRIVATE KEY-----"));
    let csr = rcgen::CertificateSigningRequestParams::from_pem(&new.csr_pem).unwrap();
    let subject = format!("{:?}", csr.params.distinguished_name);
    assert!(subject.contains("web-01"), "{subject}");
    let key = rcgen::KeyPair::from_pem(new.key_pem.expose()).unwrap();
    assert_eq!(key.public_key_raw(), csr.public_key.der_bytes());
}

#[test]
fn renewal_is_due_when_a_third_of_the_lifetime_is_left() {
    let start = OffsetDateTime::UNIX_EPOCH;
    let end = start + time::Duration::days(30);
    let due = |day: i64| identity::needs_renewal(start, end, start + time::Duration::days(day));
    assert!(!due(0));
    assert!(!due(19));
    assert!(due(21));
    assert!(due(31));
}

#[tokio::test]
async fn enrolment_refuses_an_existing_identity_and_plain_http() {
    cmp_testkit::install_crypto_provider();
    let ca = TestCa::new();
    let state = tempfile::tempdir().unwrap();
    let config = file_config(state.path(), state.path());
    identity_of(&ca.leaf("v1"), &ca).save(state.path()).unwrap();

    let error = cmp_agent::enroll(&config, "cmp_boot_x", "web-02", false).await.unwrap_err();
    assert!(matches!(error, AgentError::AlreadyEnrolled { ref name, .. } if name == "web-01"));

    let error = cmp_agent::enroll(&config, "cmp_boot_x", "no spaces", true).await.unwrap_err();
    assert!(matches!(error, AgentError::BadName(_)), "{error}");

    let mut http = config.clone();
    http.server = "http://cmp.example:3000".into();
    let error = cmp_agent::enroll(&http, "cmp_boot_x", "web-02", true).await.unwrap_err();
    assert!(matches!(error, AgentError::NotHttps(_)), "{error}");
}

#[tokio::test]
async fn a_job_for_an_unknown_target_touches_nothing() {
    cmp_testkit::install_crypto_provider();
    let ca = TestCa::new();
    let (state, tls) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = file_config(state.path(), tls.path());

    let result = execute(&config, job("db", Some(&ca.leaf("v1")), true)).await;

    assert!(!result.succeeded);
    assert_eq!(result.failed_step.as_deref(), Some("target"));
    assert!(result.message.as_deref().unwrap().contains("`db`"), "{:?}", result.message);
    assert_eq!(listing(tls.path()), Vec::<String>::new());
    assert_eq!(listing(state.path()), Vec::<String>::new());
}

#[tokio::test]
async fn a_job_without_a_key_fails_at_material() {
    cmp_testkit::install_crypto_provider();
    let ca = TestCa::new();
    let (state, tls) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = file_config(state.path(), tls.path());

    let result = execute(&config, job("web", Some(&ca.leaf("v1")), false)).await;
    assert_eq!(result.failed_step.as_deref(), Some("material"));
    assert!(result.message.as_deref().unwrap().contains("no key kept on this host"));

    let result = execute(&config, job("web", None, false)).await;
    assert_eq!(result.failed_step.as_deref(), Some("material"));
    assert_eq!(listing(tls.path()), Vec::<String>::new());
}

#[tokio::test]
async fn a_job_deploys_to_a_file_target() {
    cmp_testkit::install_crypto_provider();
    let ca = TestCa::new();
    let (state, tls) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = file_config(state.path(), tls.path());
    let leaf = ca.leaf("v1");

    let result = execute(&config, job("web", Some(&leaf), true)).await;

    assert!(result.succeeded, "{result:?}");
    assert_eq!(result.failed_step, None);
    assert_eq!(result.served_fingerprint, None, "no verify, so nothing was seen served");
    assert!(result.steps.iter().all(|s| s.ok && s.output.len() <= 4200), "{:?}", result.steps);
    assert!(result.steps.iter().any(|s| s.name == "write"));
    assert_eq!(std::fs::read_to_string(tls.path().join("app.crt")).unwrap(), leaf.cert_pem);
    let health = cmp_agent::target_status(&config.target("web").unwrap()).await;
    assert!(health.healthy(), "{:?}", health.message());
    assert_eq!(health.installed.as_deref(), Some(leaf.fingerprint.as_str()));
}

#[tokio::test]
async fn the_agent_loads_its_identity_and_backs_off_from_an_unreachable_server() {
    cmp_testkit::install_crypto_provider();
    let ca = TestCa::new();
    let state = tempfile::tempdir().unwrap();
    let ca_file = state.path().join("server-ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let text = format!(
        "server = \"https://127.0.0.1:1\"\nca_file = {}\nstate_dir = {}\n",
        quoted(ca_file.display().to_string()),
        quoted(state.path().display().to_string())
    );
    let config = AgentConfig::from_toml_str(&text).unwrap();
    let error = cmp_agent::Agent::load(config.clone()).unwrap_err();
    assert!(matches!(error, AgentError::NotEnrolled(_)), "{error}");
    identity_of(&ca.leaf("web-01"), &ca).save(state.path()).unwrap();

    let mut agent = cmp_agent::Agent::load(config).unwrap();
    assert_eq!(agent.identity().name, "web-01");
    assert!(!format!("{agent:?}").contains("PRIVATE"));
    let error = agent.run_once(1).await.unwrap_err();
    assert!(matches!(error, AgentError::Server(_)), "{error}");

    // `run` stops when told, even while the server is unreachable.
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(agent.run(stop));
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), running).await.unwrap().unwrap();
}

#[test]
fn the_backoff_doubles_to_a_minute_with_jitter_and_resets() {
    let mut backoff = Backoff::default();
    let delays: Vec<Duration> = (0..12).map(|_| backoff.next_delay()).collect();
    for (i, delay) in delays.iter().enumerate() {
        let base = (Backoff::MIN * 2u32.pow(i as u32)).min(Backoff::MAX);
        assert!(*delay >= base.mul_f64(0.8), "{i}: {delay:?} < 80 % of {base:?}");
        assert!(*delay <= base.mul_f64(1.2).min(Backoff::MAX), "{i}: {delay:?}");
    }
    assert!(delays[11] >= Duration::from_secs(48));
    // Jittered: a hundred first delays are not all the same.
    let firsts: std::collections::BTreeSet<Duration> = (0..100)
        .map(|_| {
            let mut b = Backoff::default();
            b.next_delay()
        })
        .collect();
    assert!(firsts.len() > 1);
    backoff.reset();
    assert!(backoff.next_delay() <= Duration::from_millis(1200));
}
