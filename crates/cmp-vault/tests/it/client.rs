//! Logging in, staying logged in, and telling failures apart.

use std::time::Duration;

use cmp_testkit::openbao::OpenBao;
use cmp_vault::{Credentials, Secret, VaultClient, VaultError, VaultSettings};
use serde_json::json;

use super::client_with_token;

#[tokio::test]
async fn a_renewable_token_is_renewed_before_it_expires() {
    let bao = OpenBao::start().await;
    bao.policy("reader", "path \"auth/token/lookup-self\" { capabilities = [\"read\"] }\npath \"auth/token/renew-self\" { capabilities = [\"update\"] }").await;
    let token = bao.token(&["reader"], "4s", true).await;
    let client = client_with_token(&bao, &token);
    let _renewal = client.spawn_renewal();
    // Three lifetimes later the token still works: it was renewed (twice or more).
    tokio::time::sleep(Duration::from_secs(10)).await;
    client.check().await.unwrap();
}

#[tokio::test]
async fn an_expired_fixed_token_is_reported_as_such_without_the_token() {
    let bao = OpenBao::start().await;
    let token = bao.token(&["default"], "2s", false).await;
    let client = client_with_token(&bao, &token);
    client.check().await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let err = client.check().await.unwrap_err();
    assert!(matches!(err, VaultError::TokenInvalid(_)), "{err:?}");
    assert!(err.is_retryable());
    assert!(!format!("{err} {err:?}").contains(&token));
}

#[tokio::test]
async fn approle_logs_in_again_when_its_token_expired() {
    let bao = OpenBao::start().await;
    let (role_id, secret_id) = bao
        .approle(
            "cmp",
            json!({"token_policies": ["default"], "token_ttl": "2s", "token_max_ttl": "2s"}),
        )
        .await;
    let credentials = Credentials::AppRole {
        mount: "approle".into(),
        role_id,
        secret_id: Secret::new(secret_id.clone()),
    };
    let client = VaultClient::new(&VaultSettings::new(&bao.address), credentials).unwrap();
    client.check().await.unwrap();
    // No renewal task: the token dies, and the next call logs in again by itself.
    tokio::time::sleep(Duration::from_secs(3)).await;
    client.check().await.unwrap();

    let wrong = Credentials::AppRole {
        mount: "approle".into(),
        role_id: "nobody".into(),
        secret_id: Secret::new("wrong-secret-id"),
    };
    let client = VaultClient::new(&VaultSettings::new(&bao.address), wrong).unwrap();
    let err = client.check().await.unwrap_err();
    assert!(matches!(err, VaultError::LoginFailed(_)), "{err:?}");
    assert!(!err.to_string().contains("wrong-secret-id"));
}

#[tokio::test]
async fn denied_sealed_and_unreachable_are_told_apart() {
    let bao = OpenBao::start().await;
    let token = bao.token(&["default"], "1h", false).await;
    let client = client_with_token(&bao, &token);
    let err = client.kv_get("secret", "elsewhere").await.unwrap_err();
    assert!(
        matches!(&err, VaultError::Denied { path, .. } if path == "secret/data/elsewhere"),
        "{err:?}"
    );
    assert!(!err.is_retryable());

    bao.seal().await;
    let err = client.kv_get("secret", "elsewhere").await.unwrap_err();
    assert_eq!(err, VaultError::Sealed);
    assert!(client.health().await.unwrap().sealed);
    bao.unseal().await;
    assert!(!client.health().await.unwrap().sealed);

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let nowhere = VaultClient::new(
        &VaultSettings::new(&format!("http://127.0.0.1:{port}")),
        Credentials::Token(Secret::new(token.clone())),
    )
    .unwrap();
    drop(client);
    let err = nowhere.check().await.unwrap_err();
    assert!(matches!(err, VaultError::Unreachable { .. }) && err.is_retryable(), "{err:?}");
}

#[test]
fn settings_are_checked() {
    let err =
        VaultClient::new(&VaultSettings::new("ftp://vault"), Credentials::Token(Secret::new("t")))
            .unwrap_err();
    assert!(matches!(err, VaultError::InvalidConfig(_)), "{err:?}");
    let mut settings = VaultSettings::new("https://vault:8200");
    settings.ca_bundle_pem = Some("not a certificate".into());
    let err = VaultClient::new(&settings, Credentials::Token(Secret::new("t"))).unwrap_err();
    assert!(matches!(err, VaultError::InvalidConfig(_)), "{err:?}");
    assert!(cmp_vault::check_path_segment("role", "web/../sys", true).is_err());
    assert!(cmp_vault::check_path_segment("role", "web", false).is_ok());
    assert_eq!(format!("{:?}", Secret::new("s.abc")), "Secret(<redacted>)");
}

#[tokio::test]
async fn tls_is_verified_against_the_given_ca_bundle() {
    let bao = OpenBao::start_tls().await;
    let mut settings = VaultSettings::new(&bao.address);
    settings.ca_bundle_pem = bao.tls_ca_pem.clone();
    let client = VaultClient::new(&settings, Credentials::Token(Secret::new("root"))).unwrap();
    client.check().await.unwrap();

    // The system roots do not know the dev server's CA.
    let untrusted = client_with_token(&bao, "root");
    let err = untrusted.check().await.unwrap_err();
    assert!(
        matches!(&err, VaultError::Unreachable { reason, .. } if reason.contains("certificate")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_namespace_keeps_calls_inside_it() {
    let bao = OpenBao::start().await;
    bao.api("POST", "sys/namespaces/team-a", None).await;
    let (status, answer) = bao.try_api("GET", "sys/namespaces/team-a", None).await;
    assert_eq!(status, 200, "{answer}");
    let mut settings = VaultSettings::new(&bao.address);
    settings.namespace = Some("team-a".into());
    let client = VaultClient::new(&settings, Credentials::Token(Secret::new("root"))).unwrap();
    // KV v2 inside the namespace, written through the client.
    let mount = serde_json::json!({"type": "kv", "options": {"version": "2"}});
    let (http, url) = (reqwest::Client::new(), format!("{}/v1/sys/mounts/kv", bao.address));
    let r = http
        .post(url)
        .header("X-Vault-Token", "root")
        .header("X-Vault-Namespace", "team-a")
        .json(&mount)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    client.kv_put("kv", "cmp/x", &json!({"v": 1})).await.unwrap();
    assert_eq!(client.kv_get("kv", "cmp/x").await.unwrap(), Some(json!({"v": 1})));
    let (status, _) = bao.try_api("GET", "kv/data/cmp/x", None).await;
    assert_eq!(status, 404, "not in the root namespace");
}
