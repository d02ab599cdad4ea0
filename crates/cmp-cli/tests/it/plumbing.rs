//! What surrounds the commands: a standard output closed early, server URLs without a scheme,
//! CA bundles that are not, CA kinds the server does not know.

use tokio::io::AsyncReadExt;

use super::{Fixture, cmpctl, start, stdout};
use cmp_testkit::DbKind;

/// Runs cmpctl with `args` and the fixture's token, but no CMP_SERVER (the args say it).
async fn cmpctl_at(f: &Fixture, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_cmpctl"))
        .args(args)
        .env_remove("CMP_SERVER")
        .env_remove("CMP_CA_FILE")
        .env("CMP_TOKEN", &f.token)
        .output()
        .await
        .unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `cmpctl cert list -o json | head -c 100`: the reader goes away long before the listing ends
/// (far more than a pipe holds), and cmpctl stops without a panic, with a shell's SIGPIPE status.
#[tokio::test]
async fn a_reader_that_closes_early_ends_cmpctl_quietly() {
    let f = start(DbKind::Sqlite).await;
    let roots: Vec<String> = std::fs::read_dir("/usr/share/ca-certificates/mozilla")
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    let mut args = vec!["cert", "import", "--output", "json"];
    args.extend(roots.iter().map(String::as_str));
    let imported = cmpctl(&f, &args).await;
    assert!(imported.status.success(), "{}", stderr(&imported));
    let whole = cmpctl(&f, &["cert", "list", "--limit", "500", "-o", "json"]).await;
    assert!(
        whole.stdout.len() > 128 * 1024,
        "{} bytes: more than a pipe holds",
        whole.stdout.len()
    );

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cmpctl"))
        .args(["cert", "list", "--limit", "500", "-o", "json"])
        .env("CMP_SERVER", &f.base)
        .env("CMP_TOKEN", &f.token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 100];
    child.stdout.take().unwrap().read_exact(&mut head).await.unwrap();
    // The read end is dropped with the handle: every later write fails with EPIPE.
    let out = child.wait_with_output().await.unwrap();
    assert!(head.starts_with(b"{"), "{}", String::from_utf8_lossy(&head));
    let said = stderr(&out);
    assert!(!said.contains("panicked") && !said.contains("Broken pipe"), "{said}");
    assert_eq!(out.status.code(), Some(141), "as a shell reports a SIGPIPE death; {said}");
    f.server.shutdown().await.unwrap();
}

/// `--server localhost:PORT` reaches the local server over http://; a remote host without a
/// scheme is refused with the reason, not reqwest's "builder error"; a CA bundle that cannot
/// be read or holds no certificate says so.
#[tokio::test]
async fn server_urls_without_a_scheme_and_bad_ca_files_get_clear_errors() {
    let f = start(DbKind::Sqlite).await;
    let port = f.server.addr.port().to_string();
    for bare in [format!("localhost:{port}"), format!("127.0.0.1:{port}/")] {
        let out = cmpctl_at(&f, &["--server", &bare, "owner", "list"]).await;
        assert!(out.status.success(), "{bare}: {}", stderr(&out));
        assert!(stdout(&out).starts_with("ID"), "{}", stdout(&out));
    }
    // An argument far over what the server takes comes back cut, not as 100 KB of error.
    let long = "o".repeat(100_000);
    let server = format!("localhost:{port}");
    let out = cmpctl_at(&f, &["--server", &server, "cert", "list", "--owner", &long]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).len() < 2_000, "{} bytes of error", stderr(&out).len());
    let remote = cmpctl_at(&f, &["--server", "cmp.example.com:3000", "owner", "list"]).await;
    assert_eq!(remote.status.code(), Some(2));
    let said = stderr(&remote);
    assert!(said.contains("no scheme") && said.contains("https://"), "{said}");
    assert!(!said.contains("builder error"), "{said}");
    let ftp = cmpctl_at(&f, &["--server", "ftp://localhost", "owner", "list"]).await;
    assert!(stderr(&ftp).contains("must be http:// or https://"), "{}", stderr(&ftp));

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let not_pem = dir.path().join("hostname.pem");
    std::fs::write(&not_pem, "just some text\n").unwrap();
    let not_der = dir.path().join("broken.pem");
    std::fs::write(&not_der, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        .unwrap();
    let server = f.base.as_str();
    for (file, expected) in [
        (&missing, "while reading"),
        (&not_pem, "no \"-----BEGIN CERTIFICATE-----\" block"),
        (&not_der, "not valid X.509"),
    ] {
        let file = file.to_str().unwrap();
        let out = cmpctl_at(&f, &["--server", server, "--ca-file", file, "owner", "list"]).await;
        assert_eq!(out.status.code(), Some(2), "{file}");
        let said = stderr(&out);
        assert!(said.contains(file) && said.contains(expected), "{file}: {said}");
    }
    // The environment variable is the same setting; a good bundle is taken as it is.
    let chain = dir.path().join("chain.pem");
    let pem = cmpctl(&f, &["pki", "chain", "--out", chain.to_str().unwrap()]).await;
    assert!(pem.status.success(), "{}", stderr(&pem));
    let with_env = tokio::process::Command::new(env!("CARGO_BIN_EXE_cmpctl"))
        .args(["--server", server, "owner", "list"])
        .env("CMP_TOKEN", &f.token)
        .env("CMP_CA_FILE", &chain)
        .output()
        .await
        .unwrap();
    assert!(with_env.status.success(), "{}", stderr(&with_env));
    let bad_env = tokio::process::Command::new(env!("CARGO_BIN_EXE_cmpctl"))
        .args(["--server", server, "owner", "list"])
        .env("CMP_TOKEN", &f.token)
        .env("CMP_CA_FILE", &not_pem)
        .output()
        .await
        .unwrap();
    assert!(stderr(&bad_env).contains("CA bundle"), "{}", stderr(&bad_env));
    f.server.shutdown().await.unwrap();
}

/// cmpctl does not know the CA kinds (it links no CA crate): the server refuses one it does not
/// know, saying which it knows, and cmpctl shows that.
#[tokio::test]
async fn an_unknown_ca_kind_is_refused_by_the_server() {
    let f = start(DbKind::Sqlite).await;
    let out = cmpctl(&f, &["adapter", "create", "other", "--kind", "step_ca"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(said.contains(r#"unknown adapter kind "step_ca""#), "{said}");
    assert!(said.contains("known: builtin, vault_pki, acme"), "{said}");
    let listed = cmpctl(&f, &["adapter", "list"]).await;
    assert!(!stdout(&listed).contains("other"), "{}", stdout(&listed));
    f.server.shutdown().await.unwrap();
}
