//! Every route of the OpenAPI document, with every role and with no token.

use cmp_domain::Role;
use reqwest::Method;
use serde_json::Value;

use crate::support::{TestApp, on_both_databases};

const UNKNOWN_ID: &str = "00000000-0000-7000-8000-000000000000";

/// (method, concrete path, roles allowed or None for public)
fn operations(doc: &Value) -> Vec<(Method, String, Option<Vec<Role>>)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            // The builtin CA's name; an OCSP request that is not one (answered malformedRequest).
            let concrete = path
                .replace("{id}", UNKNOWN_ID)
                .replace("{name}", "builtin")
                .replace("{request}", "AA");
            assert!(!concrete.contains('{'), "add a value for the parameters of {path}");
            let roles = op.get("security").map(|reqs| {
                reqs.as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|r| r["bearer"].as_array().unwrap().iter())
                    .map(|n| Role::parse(n.as_str().unwrap()).unwrap())
                    .collect::<Vec<_>>()
            });
            ops.push((method, concrete, roles));
        }
    }
    ops
}

async fn call(app: &TestApp, method: &Method, path: &str, token: Option<&str>) -> (u16, String) {
    let mut req = app.http().request(method.clone(), app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if matches!(*method, Method::POST | Method::PATCH | Method::PUT) {
        req = req.header("content-type", "application/json").body("{}");
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

#[tokio::test]
async fn every_route_admits_exactly_its_declared_roles() {
    on_both_databases!(|app| {
        let owner = app
            .admin
            .create_owner(&cmp_api::OwnerCreate {
                name: "walkers".into(),
                email: None,
                description: None,
            })
            .await
            .unwrap();
        let mut tokens = vec![(Role::Admin, app.admin_token.clone())];
        for role in [Role::Security, Role::Developer, Role::Agent] {
            tokens.push((role, app.token(role, &[owner.id.as_str()]).await));
        }
        let doc: Value = app
            .http()
            .get(app.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ops = operations(&doc);
        assert!(ops.len() >= 18, "the document lists {} operations", ops.len());

        for (method, path, roles) in &ops {
            let (status, body) = call(&app, method, path, None).await;
            assert_ne!(status, 405, "{method} {path} is in the document but not routed");
            assert!(!body.contains("route for this path"), "{method} {path} is not routed");
            match roles {
                None => assert!(
                    status < 400 || status == 503,
                    "public {method} {path} answered {status}"
                ),
                Some(allowed) => {
                    assert_eq!(status, 401, "{method} {path} without a token: {body}");
                    let (bad, _) = call(&app, method, path, Some("cmp_not-a-real-token")).await;
                    assert_eq!(bad, 401, "{method} {path} with a forged token");
                    for (role, token) in &tokens {
                        let (status, body) = call(&app, method, path, Some(token)).await;
                        if allowed.contains(role) {
                            assert!(
                                ![401, 403, 405].contains(&status) && status < 500,
                                "{role:?} {method} {path} should be allowed, got {status}: {body}"
                            );
                        } else {
                            assert_eq!(
                                status, 403,
                                "{role:?} {method} {path} should be forbidden: {body}"
                            );
                            assert!(body.contains("problems/forbidden"));
                        }
                    }
                }
            }
        }
    });
}

#[tokio::test]
async fn revoked_and_expired_tokens_stop_working() {
    on_both_databases!(|app| {
        let created = app
            .admin
            .create_token(&cmp_api::TokenCreate {
                name: "short".into(),
                role: Role::Security,
                owners: vec![],
                expires_in_days: Some(1),
            })
            .await
            .unwrap();
        let security = app.client(Some(&created.token));
        security.list_certificates(&Default::default()).await.unwrap();
        // Listings never show secrets or hashes.
        let listing = app
            .http()
            .get(app.url("/api/v1/tokens"))
            .bearer_auth(&app.admin_token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !listing.contains(&created.token)
                && !listing.contains(&cmp_server::auth::token_hash(&created.token))
        );
        app.admin.revoke_token(&created.info.id).await.unwrap();
        let err = security.list_certificates(&Default::default()).await.unwrap_err();
        assert_eq!(err.status(), Some(401));
    });
}

#[tokio::test]
async fn another_replica_sees_a_revocation_within_the_lookup_cache_time() {
    let cache_ms = 300;
    on_both_databases!(|app| {
        let created = app
            .admin
            .create_token(&cmp_api::TokenCreate {
                name: "cached".into(),
                role: Role::Security,
                owners: vec![],
                expires_in_days: None,
            })
            .await
            .unwrap();
        let replica = app.start_replica(|c| c.http.lookup_cache_ms = cache_ms).await;
        let on_replica =
            cmp_client::Client::new(&format!("http://{}", replica.addr), Some(created.token))
                .unwrap();
        // The replica reads the token once and keeps it.
        on_replica.list_certificates(&Default::default()).await.unwrap();
        let revoked_at = std::time::Instant::now();
        app.admin.revoke_token(&created.info.id).await.unwrap();
        // Refused once the replica's copy is older than the cache time.
        let refused_after = loop {
            match on_replica.list_certificates(&Default::default()).await {
                Ok(_) => assert!(revoked_at.elapsed().as_secs() < 5, "still accepted after 5 s"),
                Err(e) => {
                    assert_eq!(e.status(), Some(401), "{e}");
                    break revoked_at.elapsed();
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        assert!(refused_after.as_millis() <= u128::from(cache_ms) + 1000, "{refused_after:?}");
        replica.shutdown().await.unwrap();
    });
}
