//! A killed agent: a deployment stopped where a crash would stop it leaves its journal, and
//! `recover` brings the target back to a matching pair, served.

use cmp_agent::{CrashPoint, Phase, Recovered, Step, deploy, deploy_interrupted, recover};
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
