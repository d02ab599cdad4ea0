//! `cmpctl login` by the device flow at a real OpenID provider, a pasted token, `whoami`,
//! `logout`, and the kept credentials file.

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use cmp_domain::Role;
use cmp_server::config::OidcProviderConfig;
use cmp_testkit::DbKind;
use cmp_testkit::oidc::{CLI_CLIENT_ID, OidcOptions, OidcProvider, WEB_CLIENT_ID};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// cmpctl with the server in the environment, no token, and its config in `dir`.
fn cmpctl_in(base: &str, dir: &std::path::Path, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_cmpctl"));
    command
        .args(args)
        .env("CMP_SERVER", base)
        .env_remove("CMP_TOKEN")
        .env("CMP_CONFIG_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[tokio::test]
async fn cmpctl_logs_in_by_device_flow_keeps_the_token_privately_and_logs_out() {
    let op = OidcProvider::start(OidcOptions::default()).await;
    let db = cmp_testkit::TestDb::new(DbKind::Sqlite).await;
    let data = tempfile::tempdir().unwrap();
    let mut config = cmp_server::config::Config::default();
    config.listen = Some("127.0.0.1:0".parse().unwrap());
    config.data_dir = data.path().to_path_buf();
    config.database.url = Some(db.url.clone());
    config.auth.oidc.providers = vec![OidcProviderConfig {
        name: "corp".into(),
        issuer: op.issuer.clone(),
        client_id: WEB_CLIENT_ID.into(),
        client_secret: Default::default(),
        scopes: vec![],
        audience: Some(op.options.audience.clone()),
        cli_client_id: Some(CLI_CLIENT_ID.into()),
        groups_claim: "groups".into(),
        roles: [("cmp-security".to_string(), Role::Security)].into(),
        teams: Default::default(),
        leeway_secs: 5,
        key_refetch_secs: 1,
    }];
    let server = cmp_server::start(config).await.unwrap();
    let base = format!("http://{}", server.addr);
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("cmp");

    let mut login = cmpctl_in(&base, &dir, &["login"]).spawn().unwrap();
    let mut said = BufReader::new(login.stderr.take().unwrap()).lines();
    let mut code = None;
    while let Some(line) = said.next_line().await.unwrap() {
        if let Some(c) = line.strip_prefix("and confirm the code ") {
            code = Some(c.trim().to_string());
            break;
        }
    }
    let code = code.expect("cmpctl shows the user code");
    op.approve_device(&code, "sam").await;
    let mut rest = String::new();
    while let Some(line) = said.next_line().await.unwrap() {
        rest.push_str(&line);
    }
    let done = login.wait_with_output().await.unwrap();
    assert!(done.status.success(), "{rest}");
    assert!(rest.contains("as oidc:corp:sam (security)"), "{rest}");
    let file = dir.join("credentials.json");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);

    let whoami = cmpctl_in(&base, &dir, &["whoami"]).output().await.unwrap();
    let shown = String::from_utf8_lossy(&whoami.stdout).to_string();
    assert!(shown.contains("oidc:corp:sam") && shown.contains("jwt"), "{shown}");
    let kept = std::fs::read_to_string(&file).unwrap();
    let token = serde_json::from_str::<serde_json::Value>(&kept).unwrap()[&base]["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!shown.contains(&token), "whoami never prints the token");
    let listed = cmpctl_in(&base, &dir, &["owner", "list"]).output().await.unwrap();
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));

    assert!(cmpctl_in(&base, &dir, &["logout"]).output().await.unwrap().status.success());
    let after = cmpctl_in(&base, &dir, &["whoami"]).output().await.unwrap();
    assert_eq!(after.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&after.stderr).contains("401"));

    // A pasted token: checked before it is kept; a bad one keeps nothing.
    for (pasted, ok) in [("cmp_not-a-token", false), (server.admin_token.as_deref().unwrap(), true)]
    {
        let mut child = cmpctl_in(&base, &dir, &["login", "--with-token"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(pasted.as_bytes()).await.unwrap();
        let out = child.wait_with_output().await.unwrap();
        assert_eq!(out.status.success(), ok, "{}", String::from_utf8_lossy(&out.stderr));
        let kept = std::fs::read_to_string(&file).unwrap();
        assert_eq!(kept.contains(pasted), ok);
    }
    let whoami = cmpctl_in(&base, &dir, &["whoami", "-o", "json"]).output().await.unwrap();
    let me: serde_json::Value = serde_json::from_slice(&whoami.stdout).unwrap();
    assert_eq!((me["role"].as_str(), me["auth"].as_str()), (Some("admin"), Some("api_token")));
    server.shutdown().await.unwrap();
}
