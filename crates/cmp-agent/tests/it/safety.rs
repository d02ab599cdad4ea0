//! Paths the engine refuses: a symlinked directory or file is never written through.

use std::collections::BTreeMap;
use std::path::Path;

use cmp_agent::{Step, deploy};
use cmp_testkit::targets::TestCa;

use crate::support::*;

fn file_target(cert: &Path, key: &Path) -> BTreeMap<&'static str, String> {
    let mut fields = BTreeMap::new();
    fields.insert("kind", quoted("file"));
    fields.insert("cert", quoted(cert.display().to_string()));
    fields.insert("key", quoted(key.display().to_string()));
    fields
}

#[tokio::test]
async fn a_directory_that_is_a_symlink_is_refused() {
    cmp_testkit::install_crypto_provider();
    let ca = TestCa::new();
    let root = tempfile::tempdir().unwrap();
    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let link = root.path().join("tls");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let state = tempfile::tempdir().unwrap();
    let config =
        config_with(state.path(), &file_target(&link.join("app.crt"), &link.join("app.key")));

    let failure =
        deploy(&config.target("web").unwrap(), &material(&ca.leaf("v1"), "")).await.unwrap_err();

    assert_eq!(failure.step, Step::Write, "{failure}");
    assert!(failure.message.contains("is a symlink"), "{}", failure.message);
    assert!(!failure.changed_files);
    assert_eq!(listing(&elsewhere), Vec::<String>::new(), "nothing written through the link");
    assert!(!state.path().join("journal/web.json").exists());
}

#[tokio::test]
async fn a_target_file_that_is_a_symlink_is_refused() {
    cmp_testkit::install_crypto_provider();
    let ca = TestCa::new();
    let root = tempfile::tempdir().unwrap();
    let (tls, elsewhere) = (root.path().join("tls"), root.path().join("elsewhere"));
    std::fs::create_dir(&tls).unwrap();
    std::fs::create_dir(&elsewhere).unwrap();
    let victim = elsewhere.join("passwd");
    std::fs::write(&victim, "root:x:0:0\n").unwrap();
    std::os::unix::fs::symlink(&victim, tls.join("app.crt")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let config =
        config_with(state.path(), &file_target(&tls.join("app.crt"), &tls.join("app.key")));

    let failure =
        deploy(&config.target("web").unwrap(), &material(&ca.leaf("v1"), "")).await.unwrap_err();

    assert_eq!(failure.step, Step::Write, "{failure}");
    assert!(failure.message.contains("app.crt is a symlink"), "{}", failure.message);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root:x:0:0\n");
    assert!(std::fs::symlink_metadata(tls.join("app.crt")).unwrap().file_type().is_symlink());
    assert_eq!(listing(&tls), ["app.crt"], "no key, temp or backup file written");
    assert_eq!(listing(&elsewhere), ["passwd"]);
}

#[tokio::test]
async fn a_target_path_that_is_a_directory_is_refused() {
    cmp_testkit::install_crypto_provider();
    let ca = TestCa::new();
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("app.key")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let config = config_with(
        state.path(),
        &file_target(&root.path().join("app.crt"), &root.path().join("app.key")),
    );

    let failure =
        deploy(&config.target("web").unwrap(), &material(&ca.leaf("v1"), "")).await.unwrap_err();

    assert_eq!(failure.step, Step::Write);
    assert!(failure.message.contains("not a regular file"), "{}", failure.message);
    assert_eq!(listing(root.path()), ["app.key"]);
}
