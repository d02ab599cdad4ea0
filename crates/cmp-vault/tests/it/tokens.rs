//! Agent tokens: sign with one role, read one KV subtree, renew themselves, nothing more.

use std::collections::BTreeMap;

use cmp_testkit::openbao::OpenBao;
use cmp_vault::{TokenRequest, agent_policy};
use serde_json::json;

use super::client_with_token;

#[tokio::test]
async fn an_agent_token_can_do_what_its_policy_says_and_nothing_else() {
    let bao = OpenBao::start().await;
    bao.enable_pki("pki").await;
    bao.pki_role("pki", "web", json!({})).await;
    bao.pki_role("pki", "other", json!({})).await;
    bao.api("POST", "secret/data/cmp/agents/web-01/tls", Some(json!({"data": {"v": "mine"}})))
        .await;
    bao.api("POST", "secret/data/cmp/agents/web-02/tls", Some(json!({"data": {"v": "theirs"}})))
        .await;

    bao.agent_token_role().await;
    bao.policy("cmp", "path \"sys/policies/acl/cmp-agent-*\" { capabilities = [\"create\", \"update\"] }\npath \"auth/token/create/cmp-agent\" { capabilities = [\"update\"] }\npath \"auth/token/revoke-accessor\" { capabilities = [\"update\"] }").await;
    let cmp = client_with_token(&bao, &bao.token(&["cmp"], "1h", false).await);
    cmp.put_policy("cmp-agent-web-01", &agent_policy("pki", "web", "secret", "cmp/agents/web-01"))
        .await
        .unwrap();
    let request = TokenRequest {
        policies: vec!["cmp-agent-web-01".into()],
        ttl_secs: 600,
        display_name: "cmp-agent-web-01".into(),
        meta: BTreeMap::from([("agent".to_string(), "web-01".to_string())]),
    };
    let issued = cmp.create_token("cmp-agent", &request).await.unwrap();
    assert!(issued.renewable && (590..=600).contains(&issued.ttl_secs), "{issued:?}");
    assert!(!format!("{issued:?}").contains(issued.token.expose()));
    let token = issued.token.expose();

    let csr = cmp_testkit::openssl::csr_pem("a.example.com");
    let body = json!({"csr": csr, "common_name": "a.example.com"});
    let (status, answer) = bao.try_api_as(token, "POST", "pki/sign/web", Some(body.clone())).await;
    assert_eq!(status, 200, "{answer}");
    let (status, _) = bao.try_api_as(token, "POST", "pki/sign/other", Some(body)).await;
    assert_eq!(status, 403);
    let (status, answer) =
        bao.try_api_as(token, "GET", "secret/data/cmp/agents/web-01/tls", None).await;
    assert_eq!((status, answer["data"]["data"]["v"].clone()), (200, json!("mine")));
    let (status, _) = bao.try_api_as(token, "GET", "secret/data/cmp/agents/web-02/tls", None).await;
    assert_eq!(status, 403);
    let (status, _) = bao
        .try_api_as(token, "POST", "secret/data/cmp/agents/web-01/tls", Some(json!({"data": {}})))
        .await;
    assert_eq!(status, 403, "read only");
    let (status, _) = bao.try_api_as(token, "GET", "sys/policies/acl", None).await;
    assert_eq!(status, 403);
    let (status, _) = bao.try_api_as(token, "POST", "auth/token/renew-self", Some(json!({}))).await;
    assert_eq!(status, 200);

    // CMP's own token cannot make anything but agent tokens.
    let mut escalate = request.clone();
    escalate.policies = vec!["root".into()];
    let err = cmp.create_token("cmp-agent", &escalate).await.unwrap_err();
    assert!(err.to_string().contains("subset"), "{err}");

    cmp.revoke_token_accessor(&issued.accessor).await.unwrap();
    let (status, _) = bao.try_api_as(token, "GET", "auth/token/lookup-self", None).await;
    assert_eq!(status, 403, "revoked by accessor");
}
