//! Vault end to end, against a real OpenBao and with CMP holding only the documented policy
//! (`docs/vault/cmp-policy.hcl`): a vault_pki adapter configured through the API, issuance and
//! revocation through it (in-process and over the adapter role), Vault's faults, keys kept in
//! Vault KV only, and Vault tokens for agents. Each runs on both databases.

use std::time::Duration;

use cmp_domain::Role;
use cmp_server::issuer::scheduler;
use cmp_testkit::DbKind;
use cmp_testkit::openbao::OpenBao;
use serde_json::{Value, json};

use crate::issuance::{call, csr_for, fast_scheduler, openssl, unix};
use crate::support::{TestApp, TestClock};

const CMP_POLICY: &str = include_str!("../../../../docs/vault/cmp-policy.hcl");

/// OpenBao with a PKI mount, role `web` (names under example.com, 90 days), the CMP policy
/// and the agent token role; returns the server, its root certificate and a CMP token.
async fn vault() -> (OpenBao, String, String) {
    let bao = OpenBao::start().await;
    let root = bao.enable_pki("pki").await;
    bao.pki_role(
        "pki",
        "web",
        json!({"allow_any_name": false, "allowed_domains": "example.com",
               "allow_subdomains": true, "max_ttl": "2160h"}),
    )
    .await;
    bao.policy("cmp", CMP_POLICY).await;
    bao.agent_token_role().await;
    let token = bao.token(&["cmp"], "24h", true).await;
    (bao, root, token)
}

fn vault_adapter(name: &str, bao: &OpenBao, auth: Value) -> Value {
    json!({"name": name, "kind": "vault_pki",
           "config": {"address": bao.address, "role": "web", "auth": auth}})
}

/// Polls a request until it leaves the states that still change by themselves.
async fn settled(app: &TestApp, id: &str) -> Value {
    let admin = app.admin_token.clone();
    for _ in 0..300 {
        let (_, r) = call(app, &admin, "GET", &format!("/api/v1/requests/{id}"), None).await;
        let state = r["state"].as_str().unwrap_or_default();
        if state == "issued" || state == "failed" || state == "rejected" {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("request {id} did not settle");
}

async fn request(app: &TestApp, names: &[&str]) -> Value {
    let body = json!({"owner": "web", "adapter": "vault", "csr": csr_for(names)});
    let (s, r) = call(app, &app.admin_token, "POST", "/api/v1/requests", Some(body)).await;
    assert_eq!(s, 201, "{r}");
    r
}

/// Configure, issue, verify with openssl, revoke, see it in Vault's CRL; refusals.
async fn issue_and_revoke(app: &TestApp, bao: &OpenBao, root: &str, cmp_token: &str) {
    let admin = app.admin_token.clone();
    call(app, &admin, "POST", "/api/v1/owners", Some(json!({"name": "web"}))).await;

    // Vault unreachable, or a token that may not read the role: refused, nothing written.
    let adapters_before = call(app, &admin, "GET", "/api/v1/adapters", None).await.1;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut nowhere = vault_adapter("nowhere", bao, json!({"method": "token", "token": cmp_token}));
    nowhere["config"]["address"] = json!(format!("http://127.0.0.1:{port}"));
    let (s, problem) = call(app, &admin, "POST", "/api/v1/adapters", Some(nowhere)).await;
    assert_eq!(s, 503, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("unreachable"), "{problem}");
    let narrow = bao.token(&["default"], "1h", false).await;
    let body = vault_adapter("narrow", bao, json!({"method": "token", "token": narrow}));
    let (s, problem) = call(app, &admin, "POST", "/api/v1/adapters", Some(body)).await;
    assert_eq!(s, 422, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("permission denied"), "{problem}");
    assert!(!problem.to_string().contains(&narrow), "no token in errors");
    let (s, problem) = call(
        app,
        &admin,
        "POST",
        "/api/v1/adapters",
        Some(vault_adapter("bad", bao, json!({"method": "token", "token": 42}))),
    )
    .await;
    assert_eq!(s, 400, "{problem}");
    assert_eq!(call(app, &admin, "GET", "/api/v1/adapters", None).await.1, adapters_before);

    let body = vault_adapter("vault", bao, json!({"method": "token", "token": cmp_token}));
    let (s, adapter) = call(app, &admin, "POST", "/api/v1/adapters", Some(body)).await;
    assert_eq!(s, 201, "{adapter}");
    assert_eq!(adapter["has_credentials"], true);
    assert_eq!(adapter["crl_url"], format!("{}/v1/pki/crl", bao.address));
    let listed = call(app, &admin, "GET", "/api/v1/adapters", None).await.1.to_string();
    assert!(!listed.contains(cmp_token) && !adapter.to_string().contains(cmp_token));
    let (_, status) = call(app, &admin, "GET", "/api/v1/adapters/vault/status", None).await;
    assert_eq!(status["healthy"], true, "{status}");
    assert_eq!(status["max_validity_secs"], 2160 * 3600);
    let chain: Vec<Vec<u8>> = status["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| pem::parse(c.as_str().unwrap()).unwrap().into_contents())
        .collect();
    assert_eq!(chain, [pem::parse(root).unwrap().into_contents()], "the issuer chain");

    let issued =
        settled(app, request(app, &["api.example.com"]).await["id"].as_str().unwrap()).await;
    assert_eq!(issued["state"], "issued", "{issued}");
    assert_eq!(issued["adapter_id"], adapter["id"]);
    let cert_id = issued["certificate_id"].as_str().unwrap();
    let (_, cert) =
        call(app, &admin, "GET", &format!("/api/v1/certificates/{cert_id}"), None).await;
    assert_eq!(cert["source"], "issued", "{cert}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("root.pem"), root).unwrap();
    let (_, pem) =
        call(app, &admin, "GET", &format!("/api/v1/certificates/{cert_id}/pem"), None).await;
    std::fs::write(dir.path().join("leaf.pem"), pem.as_str().unwrap()).unwrap();
    let verified = openssl(&["verify", "-CAfile", "root.pem", "leaf.pem"], dir.path());
    assert!(verified.contains("leaf.pem: OK"), "{verified}");
    // The chain Vault returned is kept with the certificate: leaf, then Vault's CA.
    let chain = app.admin.certificate_pem_chain(cert_id).await.unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2, "{chain}");
    assert!(chain.starts_with(pem.as_str().unwrap()), "leaf first: {chain}");
    cmp_testkit::openssl::verify_chain(&chain, root).unwrap();

    // A server-made key for a Vault certificate: its PKCS#12 carries Vault's chain.
    let body = json!({"owner": "web", "adapter": "vault", "key_type": "ecdsa_p256",
                      "dns_names": ["k.example.com"]});
    let (_, made) = call(app, &admin, "POST", "/api/v1/requests", Some(body)).await;
    assert_eq!(made["state"], "issued", "{made}");
    let made_id = made["certificate_id"].as_str().unwrap();
    let p12 = app.admin.download_key(made_id, Some("correct horse")).await.unwrap();
    std::fs::write(dir.path().join("k.p12"), p12).unwrap();
    let certs = openssl(
        &["pkcs12", "-in", "k.p12", "-nokeys", "-passin", "pass:correct horse"],
        dir.path(),
    );
    assert_eq!(certs.matches("BEGIN CERTIFICATE").count(), 2, "leaf and Vault's root:\n{certs}");
    assert!(certs.contains("test root"), "{certs}");

    // A name the role refuses: failed at once with Vault's reason, no certificate.
    let refused = settled(app, request(app, &["evil.org"]).await["id"].as_str().unwrap()).await;
    assert_eq!(refused["state"], "failed", "{refused}");
    assert_eq!(refused["attempts"], 1);
    assert!(refused["last_error"].as_str().unwrap().contains("not allowed by this role"));
    assert!(refused["certificate_id"].is_null());

    // A token that may read the role but not sign: failed at once with Vault's 403.
    bao.policy(
        "read-only",
        "path \"pki/roles/*\" { capabilities = [\"read\"] }\n\
         path \"pki/cert/ca_chain\" { capabilities = [\"read\"] }\n\
         path \"auth/token/lookup-self\" { capabilities = [\"read\"] }",
    )
    .await;
    let reader = bao.token(&["read-only"], "1h", false).await;
    let body = vault_adapter("reader", bao, json!({"method": "token", "token": reader}));
    assert_eq!(call(app, &admin, "POST", "/api/v1/adapters", Some(body)).await.0, 201);
    let body = json!({"owner": "web", "adapter": "reader", "csr": csr_for(&["r.example.com"])});
    let (_, denied) = call(app, &admin, "POST", "/api/v1/requests", Some(body)).await;
    let denied = settled(app, denied["id"].as_str().unwrap()).await;
    assert_eq!((denied["state"].as_str(), denied["attempts"].as_i64()), (Some("failed"), Some(1)));
    let error = denied["last_error"].as_str().unwrap();
    assert!(error.contains("permission denied") && !error.contains(&reader), "{error}");

    // A managed certificate on Vault, renewed by the scheduler through Vault once it is due
    // (on a clock the test moves).
    let body = json!({"name": "web-api", "owner": "web", "adapter": "vault",
                      "dns_names": ["m.example.com"], "validity_days": 1, "renew_before": "12h"});
    let (s, managed) = call(app, &admin, "POST", "/api/v1/managed-certificates", Some(body)).await;
    assert_eq!(s, 201, "{managed}");
    let due = unix(&managed["versions"][0]["not_after"]) - 12 * 3_600 + 60;
    let state = app.issuer_state(TestClock::at(due)).await;
    scheduler::tick(&state).await;
    let (_, m) = call(app, &admin, "GET", "/api/v1/managed-certificates/web-api", None).await;
    let versions = m["versions"].as_array().unwrap().clone();
    assert_eq!(versions.len(), 2, "renewed through Vault: {m}");
    for version in &versions {
        let serial = version["serial_number"].as_str().unwrap();
        let colon: Vec<String> =
            serial.as_bytes().chunks(2).map(|p| String::from_utf8_lossy(p).into_owned()).collect();
        assert!(
            bao.stored_serials("pki").await.contains(&colon.join(":")),
            "{serial} signed by Vault"
        );
    }

    let serial = cert["serial_number"].as_str().unwrap().to_string();
    let revoke = json!({"reason": "key_compromise"});
    let path = format!("/api/v1/certificates/{cert_id}/revoke");
    let (s, r) = call(app, &admin, "POST", &path, Some(revoke.clone())).await;
    assert_eq!((s, r["state"].as_str()), (200, Some("issued")), "{r}");
    let crl = bao.api("GET", "pki/cert/crl", None).await;
    std::fs::write(dir.path().join("crl.pem"), crl["data"]["certificate"].as_str().unwrap())
        .unwrap();
    let crl_text =
        openssl(&["crl", "-in", "crl.pem", "-noout", "-text"], dir.path()).to_lowercase();
    assert!(crl_text.contains(&serial), "{serial} in Vault's CRL:\n{crl_text}");
    assert_eq!(call(app, &admin, "POST", &path, Some(revoke)).await.0, 409, "revoking twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_and_revoke_through_vault_in_process_and_over_the_adapter_role() {
    for kind in DbKind::ALL {
        let (bao, root, token) = vault().await;
        let app = TestApp::spawn_with(kind, fast_scheduler).await;
        issue_and_revoke(&app, &bao, &root, &token).await;
        app.stop().await;

        let (bao, root, token) = vault().await;
        let (app, adapter) = TestApp::spawn_with_adapter_role(kind, fast_scheduler).await;
        issue_and_revoke(&app, &bao, &root, &token).await;
        app.stop().await;
        adapter.shutdown().await.unwrap();
    }
}

/// Vault sealed in the middle of a batch: every request ends issued exactly once (retried
/// after the unseal) or failed with a reason, and Vault holds exactly the certificates CMP has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_sealed_mid_batch_leaves_every_request_issued_once_or_failed() {
    for kind in DbKind::ALL {
        let (bao, _, token) = vault().await;
        let app = TestApp::spawn_with(kind, fast_scheduler).await;
        let admin = app.admin_token.clone();
        call(&app, &admin, "POST", "/api/v1/owners", Some(json!({"name": "web"}))).await;
        let body = vault_adapter("vault", &bao, json!({"method": "token", "token": token}));
        assert_eq!(call(&app, &admin, "POST", "/api/v1/adapters", Some(body)).await.0, 201);
        let stored_before = bao.stored_serials("pki").await.len();

        let batch: Vec<_> = (0..16)
            .map(|i| {
                let names = [format!("n{i}.example.com")];
                let (http, url, admin) = (app.http(), app.url("/api/v1/requests"), admin.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(40 * i)).await;
                    let body = json!({"owner": "web", "adapter": "vault",
                                      "csr": csr_for(&[names[0].as_str()])});
                    let r = http.post(url).bearer_auth(admin).json(&body).send().await.unwrap();
                    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(250)).await;
        bao.seal().await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        bao.unseal().await;
        let mut issued = 0;
        let mut certificates = std::collections::HashSet::new();
        let mut retried = 0;
        for handle in batch {
            let id = handle.await.unwrap();
            let r = settled(&app, &id).await;
            match r["state"].as_str().unwrap() {
                "issued" => {
                    issued += 1;
                    assert!(certificates.insert(r["certificate_id"].as_str().unwrap().to_string()));
                    if r["attempts"].as_i64().unwrap() > 1 {
                        retried += 1;
                    }
                }
                _ => assert!(!r["last_error"].as_str().unwrap_or_default().is_empty(), "{r}"),
            }
        }
        assert!(retried > 0, "some requests met the sealed Vault and were retried");
        assert_eq!(issued, 16, "the unseal came long before the last attempt on {kind:?}");
        let stored = bao.stored_serials("pki").await.len() - stored_before;
        assert_eq!(stored, issued, "Vault signed once per issued request, nothing extra");

        // Vault gone: the request says so and waits for a retry; nothing is half-written.
        drop(bao);
        let before = app.counts().await.0;
        let r = request(&app, &["late.example.com"]).await;
        assert_eq!(r["state"], "approved", "{r}");
        assert!(r["last_error"].as_str().unwrap().contains("unreachable"), "{r}");
        assert!(r["certificate_id"].is_null() && r["next_attempt_at"].is_string());
        assert_eq!(app.counts().await.0, before);
        app.stop().await;
    }
}

/// AppRole logs in again when its token expires; a fixed token that expired fails the
/// attempt with a clear message (no token in it) until new credentials are given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_replaced_or_reported() {
    for kind in DbKind::ALL {
        let (bao, _, _) = vault().await;
        let (role_id, secret_id) = bao
            .approle(
                "cmp",
                json!({"token_policies": ["cmp"], "token_ttl": "2s", "token_max_ttl": "2s"}),
            )
            .await;
        let app = TestApp::spawn_with(kind, fast_scheduler).await;
        let admin = app.admin_token.clone();
        call(&app, &admin, "POST", "/api/v1/owners", Some(json!({"name": "web"}))).await;
        let approle = json!({"method": "approle", "role_id": role_id, "secret_id": secret_id});
        let body = vault_adapter("vault", &bao, approle);
        let (s, adapter) = call(&app, &admin, "POST", "/api/v1/adapters", Some(body)).await;
        assert_eq!(s, 201, "{adapter}");
        assert!(!adapter.to_string().contains(&secret_id));
        assert_eq!(adapter["config"]["auth"]["role_id"], role_id.as_str());
        for round in 0..2 {
            let r = settled(&app, request(&app, &["a.example.com"]).await["id"].as_str().unwrap())
                .await;
            assert_eq!(r["state"], "issued", "round {round}: {r}");
            tokio::time::sleep(Duration::from_secs(3)).await;
        }

        let short = bao.token(&["cmp"], "3s", false).await;
        let body = vault_adapter("fixed", &bao, json!({"method": "token", "token": short}));
        assert_eq!(call(&app, &admin, "POST", "/api/v1/adapters", Some(body)).await.0, 201);
        tokio::time::sleep(Duration::from_secs(4)).await;
        let body = json!({"owner": "web", "adapter": "fixed", "csr": csr_for(&["b.example.com"])});
        let (_, r) = call(&app, &admin, "POST", "/api/v1/requests", Some(body)).await;
        assert_eq!(r["state"], "approved", "waiting for a retry: {r}");
        let error = r["last_error"].as_str().unwrap();
        assert!(error.contains("expired or revoked") && !error.contains(&short), "{error}");
        let fresh = bao.token(&["cmp"], "1h", false).await;
        let patch = json!({"credentials": {"token": fresh}});
        let (s, patched) = call(&app, &admin, "PATCH", "/api/v1/adapters/fixed", Some(patch)).await;
        assert_eq!(s, 200, "{patched}");
        let r = settled(&app, r["id"].as_str().unwrap()).await;
        assert_eq!(r["state"], "issued", "retried with the new token: {r}");
        app.stop().await;
    }
}

/// With secrets.backend = "vault", nothing secret is written to the data directory or the
/// database: the CA keys, a server-made key and the bootstrap token are in KV; a revoke with
/// purge_key destroys the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_live_only_in_vault_kv() {
    for kind in DbKind::ALL {
        let (bao, _, token) = vault().await;
        let address = bao.address.clone();
        let app = TestApp::spawn_with(kind, |c| {
            fast_scheduler(c);
            c.secrets.backend = cmp_server::config::SecretsBackend::Vault;
            c.vault.address = address;
            c.vault.token = token.as_str().into();
        })
        .await;
        let admin = app.admin_token.clone();
        let files: Vec<_> = walk(app.data_dir());
        assert!(
            files.iter().all(|f| f.ends_with("cmp.db") || f.contains("cmp.db-")),
            "only the database is on disk: {files:?}"
        );
        let kept = bao.api("GET", "secret/data/cmp/bootstrap/admin-token", None).await;
        assert!(kept.to_string().contains(&base64(admin.as_bytes())), "the admin token is in KV");
        let (_, builtin) = call(&app, &admin, "GET", "/api/v1/adapters/builtin", None).await;
        let ca_key = format!("secret/data/cmp/ca/{}/issuing-key", builtin["id"].as_str().unwrap());
        assert_eq!(bao.try_api("GET", &ca_key, None).await.0, 200);

        call(&app, &admin, "POST", "/api/v1/owners", Some(json!({"name": "web"}))).await;
        let body =
            json!({"owner": "web", "key_type": "ecdsa_p256", "dns_names": ["k.example.com"]});
        let (s, r) = call(&app, &admin, "POST", "/api/v1/requests", Some(body)).await;
        assert_eq!((s, r["state"].as_str()), (201, Some("issued")), "{r}");
        let cert_id = r["certificate_id"].as_str().unwrap();
        let key_path = format!("secret/metadata/cmp/keys/{}", r["id"].as_str().unwrap());
        assert_eq!(bao.try_api("GET", &key_path, None).await.0, 200, "the key is in KV");
        let key_url = format!("/api/v1/certificates/{cert_id}/key");
        let (s, pem) = call(&app, &admin, "GET", &key_url, None).await;
        assert!(s == 200 && pem.as_str().unwrap().contains("PRIVATE KEY"));
        assert!(walk(app.data_dir()).iter().all(|f| f.contains("cmp.db")), "still nothing else");

        let revoke = json!({"reason": "cessation_of_operation", "purge_key": true});
        let path = format!("/api/v1/certificates/{cert_id}/revoke");
        assert_eq!(call(&app, &admin, "POST", &path, Some(revoke)).await.0, 200);
        assert_eq!(bao.try_api("GET", &key_path, None).await.0, 404, "every version destroyed");
        assert_eq!(call(&app, &admin, "GET", &key_url, None).await.0, 404);
        let (_, audit) =
            call(&app, &admin, "GET", "/api/v1/audit?action=certificate.key_purged", None).await;
        assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");
        app.stop().await;
    }
}

/// An agent's Vault token signs with the adapter's role and reads its own KV path only; the
/// audit trail has its accessor, never the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_tokens_are_narrow_and_audited() {
    for kind in DbKind::ALL {
        let (bao, _, token) = vault().await;
        bao.pki_role("pki", "other", json!({})).await;
        let app = TestApp::spawn(kind).await;
        let admin = app.admin_token.clone();
        let body = vault_adapter("vault", &bao, json!({"method": "token", "token": token}));
        assert_eq!(call(&app, &admin, "POST", "/api/v1/adapters", Some(body)).await.0, 201);
        let ask = json!({"agent": "web-01", "ttl_secs": 600});
        let (s, issued) =
            call(&app, &admin, "POST", "/api/v1/adapters/vault/agent-tokens", Some(ask.clone()))
                .await;
        assert_eq!(s, 201, "{issued}");
        assert_eq!(issued["sign_path"], "pki/sign/web");
        assert_eq!(issued["kv_path"], "secret/data/cmp/agents/web-01/");
        assert!(issued["renewable"].as_bool().unwrap());
        let agent = issued["token"].as_str().unwrap();
        let csr = csr_for(&["a.example.com"]);
        let sign = json!({"csr": csr, "common_name": "a.example.com"});
        assert_eq!(bao.try_api_as(agent, "POST", "pki/sign/web", Some(sign.clone())).await.0, 200);
        assert_eq!(bao.try_api_as(agent, "POST", "pki/sign/other", Some(sign)).await.0, 403);
        bao.api("POST", "secret/data/cmp/agents/web-02/key", Some(json!({"data": {"v": 1}}))).await;
        assert_eq!(
            bao.try_api_as(agent, "GET", "secret/data/cmp/agents/web-02/key", None).await.0,
            403
        );

        let (_, audit) =
            call(&app, &admin, "GET", "/api/v1/audit?action=adapter.agent_token_issued", None)
                .await;
        let events = audit.to_string();
        assert!(events.contains(issued["accessor"].as_str().unwrap()) && !events.contains(agent));

        let bad = json!({"agent": "Web 01"});
        let (s, _) =
            call(&app, &admin, "POST", "/api/v1/adapters/vault/agent-tokens", Some(bad)).await;
        assert_eq!(s, 400);
        let (s, _) =
            call(&app, &admin, "POST", "/api/v1/adapters/builtin/agent-tokens", Some(ask.clone()))
                .await;
        assert_eq!(s, 422, "the builtin CA has no Vault");
        let security = app.token(Role::Security, &[]).await;
        let path = "/api/v1/adapters/vault/agent-tokens";
        assert_eq!(call(&app, &security, "POST", path, Some(ask)).await.0, 403, "admins only");
        app.stop().await;
    }
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Every file under `dir`, as paths relative to it.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    files
}
