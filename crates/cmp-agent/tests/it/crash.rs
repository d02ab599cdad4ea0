//! A killed agent: a deployment stopped where a crash would stop it leaves its journal, and
//! `recover` brings the target back to a matching pair, served.

use cmp_agent::{CrashPoint, Phase, Recovered, Step, deploy, deploy_interrupted, recover};
use std::path::Path;

use cmp_testkit::targets::{TestCa, TlsServer};

use crate::support::*;

#[tokio::test]
async fn a_crash_between_the_key_and_the_certificate_renames_is_undone() {
    cmp_testkit::install_crypto_provider();
    let ca = TestCa::new();
    let (v1, v2) = (ca.leaf("v1"), ca.leaf("v2"));
    let nginx = TlsServer::nginx(&v1);
    let state = tempfile::tempdir().unwrap();
    let config = config_with(state.path(), &server_fields(&nginx));
    let target = config.target("web").unwrap();
    let key = nginx.key.as_ref().unwrap();
    let (cert_before, key_before) =
        (std::fs::read(&nginx.cert).unwrap(), std::fs::read(key).unwrap());

    deploy_interrupted(&target, &material(&v2, ""), CrashPoint::AfterFirstRename).await.unwrap();
    // What the crash left: the new key beside the old certificate, a journal, a temp file.
    assert!(!openssl_pair_matches(&nginx.cert, key));
    assert!(state.path().join("journal/web.json").exists());
    assert!(nginx.cert.with_extension("pem.cmp-new").exists());
    // No deployment starts over an interrupted one.
    let refused = deploy(&target, &material(&v2, "")).await.unwrap_err();
    assert_eq!(refused.step, Step::Write);
    assert!(refused.message.contains("awaits recovery"), "{}", refused.message);

    let recovered = recover(&target).await.unwrap();

    assert!(matches!(recovered, Recovered::Undone { phase: Phase::Renaming, .. }), "{recovered:?}");
    assert!(openssl_pair_matches(&nginx.cert, key));
    assert_eq!(std::fs::read(&nginx.cert).unwrap(), cert_before);
    assert_eq!(std::fs::read(key).unwrap(), key_before);
    assert_eq!(
        listing(nginx.cert.parent().unwrap()).iter().filter(|n| n.ends_with(".cmp-new")).count(),
        0
    );
    assert!(!state.path().join("journal/web.json").exists());
    assert_serves(&nginx, &v1);
    assert!(matches!(recover(&target).await.unwrap(), Recovered::Nothing));

    // And the job, sent again, goes through.
    deploy(&target, &material(&v2, "")).await.unwrap();
    assert_serves(&nginx, &v2);
}

#[tokio::test]
async fn a_crash_after_the_reload_is_undone_and_the_old_pair_reloaded() {
    cmp_testkit::install_crypto_provider();
    let ca = TestCa::new();
    let (v1, v2) = (ca.leaf("v1"), ca.leaf("v2"));
    let mut apache = TlsServer::apache(&v1);
    let state = tempfile::tempdir().unwrap();
    let config = config_with(state.path(), &server_fields(&apache));
    let target = config.target("web").unwrap();

    deploy_interrupted(&target, &material(&v2, ""), CrashPoint::AfterReload).await.unwrap();
    assert_serves(&apache, &v2);

    let recovered = recover(&target).await.unwrap();

    let Recovered::Undone { phase: Phase::Reloading, steps } = recovered else {
        panic!("{recovered:?}");
    };
    assert!(
        steps[0].ok && steps[0].output.contains("previous certificate is served again"),
        "{steps:?}"
    );
    assert_serves(&apache, &v1);
    assert!(apache.is_running());
    assert!(openssl_pair_matches(&apache.cert, apache.key.as_ref().unwrap()));
}

#[tokio::test]
async fn a_crash_before_any_rename_only_leaves_temp_files_to_remove() {
    cmp_testkit::install_crypto_provider();
    let ca = TestCa::new();
    let (v1, v2) = (ca.leaf("v1"), ca.leaf("v2"));
    let haproxy = TlsServer::haproxy(&v1);
    let state = tempfile::tempdir().unwrap();
    let config = config_with(state.path(), &server_fields(&haproxy));
    let target = config.target("web").unwrap();
    let pem = haproxy.pem.as_ref().unwrap();
    let before = std::fs::read(pem).unwrap();

    deploy_interrupted(&target, &material(&v2, ""), CrashPoint::AfterTempFiles).await.unwrap();
    assert!(pem.with_extension("pem.cmp-new").exists());

    let recovered = recover(&target).await.unwrap();

    assert!(matches!(recovered, Recovered::Undone { phase: Phase::Writing, .. }), "{recovered:?}");
    assert_eq!(std::fs::read(pem).unwrap(), before);
    assert!(!pem.with_extension("pem.cmp-new").exists());
    assert_serves(&haproxy, &v1);
}

#[test]
fn the_real_binary_killed_mid_deployment_is_undone_by_its_next_start() {
    use cmp_testkit::targets::served_fingerprint;
    let ca = TestCa::new();
    let (v1, v2) = (ca.leaf("v1"), ca.leaf("v2"));
    let nginx = TlsServer::nginx(&v1);
    let (state, files) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (cert, key) = (files.path().join("v2.pem"), files.path().join("v2.key"));
    std::fs::write(&cert, &v2.cert_pem).unwrap();
    std::fs::write(&key, &v2.key_pem).unwrap();
    // The configuration test says it started (with its pid) and hangs: the agent is killed
    // there, with v2's files renamed into place and nginx not reloaded.
    let started = state.path().join("test.pid");
    let mut fields = server_fields(&nginx);
    let hang = format!("echo $$ > {}; exec sleep 60", started.display());
    fields.insert("test", format!("[\"sh\", \"-c\", {}]", quoted(&hang)));
    let hanging = files.path().join("hanging.toml");
    std::fs::write(&hanging, config_text(state.path(), &fields)).unwrap();
    let deploy_file = |config: &Path| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cmp-agent"));
        command.arg("deploy-file").arg("--config").arg(config).args(["--target", "web"]);
        command.arg("--cert").arg(&cert).arg("--key").arg(&key);
        command
    };
    let mut agent = deploy_file(&hanging).stdout(std::process::Stdio::null()).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read_to_string(&started).map_or(true, |pid| !pid.ends_with('\n')) {
        assert!(std::time::Instant::now() < deadline, "the configuration test never ran");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    agent.kill().unwrap(); // SIGKILL
    agent.wait().unwrap();
    let test_pid = std::fs::read_to_string(&started).unwrap();
    std::process::Command::new("kill").arg(test_pid.trim()).status().unwrap();
    // What the kill left: v2's pair in place but not served, and the journal.
    let nginx_key = nginx.key.as_ref().unwrap();
    assert!(openssl_pair_matches(&nginx.cert, nginx_key));
    assert_eq!(std::fs::read_to_string(&nginx.cert).unwrap().trim(), v2.cert_pem.trim());
    assert!(state.path().join("journal/web.json").exists());
    assert_eq!(
        served_fingerprint(nginx.port, "localhost").as_deref(),
        Some(v1.fingerprint.as_str())
    );

    // The next start undoes it first, then deploys again, this time to the end.
    let working = files.path().join("working.toml");
    std::fs::write(&working, config_text(state.path(), &server_fields(&nginx))).unwrap();
    let again = deploy_file(&working).output().unwrap();
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{said}{}", String::from_utf8_lossy(&again.stderr));
    assert!(said.contains("undid an interrupted deployment"), "{said}");
    assert!(openssl_pair_matches(&nginx.cert, nginx_key));
    assert!(!state.path().join("journal/web.json").exists());
    assert_eq!(
        served_fingerprint(nginx.port, "localhost").as_deref(),
        Some(v2.fingerprint.as_str())
    );
    let dir = nginx.cert.parent().unwrap();
    assert!(listing(dir).iter().all(|n| !n.ends_with(".cmp-new")), "{:?}", listing(dir));
}
