//! Every route of the OpenAPI document, with every role and with no token.

use std::collections::{BTreeMap, BTreeSet};

use cmp_domain::Role;
use reqwest::Method;
use serde_json::Value;

use crate::login::OidcApp;
use crate::support::{TestApp, on_both_databases};

const UNKNOWN_ID: &str = "00000000-0000-7000-8000-000000000000";

const ADMIN: &[Role] = &[Role::Admin];
const ADMIN_SECURITY: &[Role] = &[Role::Admin, Role::Security];
const ADMIN_DEVELOPER: &[Role] = &[Role::Admin, Role::Developer];
const PEOPLE: &[Role] = &[Role::Admin, Role::Security, Role::Developer];
const AGENT: &[Role] = &[Role::Agent];
const EVERYONE: &[Role] = &[Role::Admin, Role::Security, Role::Developer, Role::Agent];

/// Who may call each route, written down here and not read from the code's annotations: a role
/// wrongly declared in a `#[utoipa::path]` becomes the rule the server enforces, and only a
/// table kept apart catches it. `None` is public. Keep in step with docs/API.md.
const EXPECTED: &[(&str, &str, Option<&[Role]>)] = &[
    ("GET", "/healthz", None),
    ("GET", "/readyz", None),
    ("GET", "/metrics", None),
    ("GET", "/api/v1/openapi.json", None),
    ("GET", "/pki/{name}/crl", None),
    ("GET", "/pki/{name}/ca", None),
    ("GET", "/pki/{name}/chain", None),
    ("POST", "/pki/{name}/ocsp", None),
    ("GET", "/pki/{name}/ocsp/{request}", None),
    ("GET", "/auth/providers", None),
    ("GET", "/auth/login", None),
    ("GET", "/auth/callback", None),
    ("GET", "/auth/logout", None),
    ("GET", "/api/v1/me", Some(EVERYONE)),
    ("GET", "/api/v1/users", Some(ADMIN)),
    ("GET", "/api/v1/certificates", Some(PEOPLE)),
    ("POST", "/api/v1/certificates/import", Some(PEOPLE)),
    ("GET", "/api/v1/certificates/export", Some(PEOPLE)),
    ("GET", "/api/v1/stats/overview", Some(PEOPLE)),
    ("GET", "/api/v1/stats/expiry", Some(PEOPLE)),
    ("GET", "/api/v1/scans", Some(ADMIN_SECURITY)),
    ("POST", "/api/v1/scans", Some(ADMIN_SECURITY)),
    ("GET", "/api/v1/scans/{id}", Some(ADMIN_SECURITY)),
    ("PATCH", "/api/v1/scans/{id}", Some(ADMIN_SECURITY)),
    ("DELETE", "/api/v1/scans/{id}", Some(ADMIN_SECURITY)),
    ("POST", "/api/v1/scans/{id}/runs", Some(ADMIN_SECURITY)),
    ("GET", "/api/v1/scans/{id}/runs", Some(ADMIN_SECURITY)),
    ("GET", "/api/v1/scans/{id}/runs/{run_id}", Some(ADMIN_SECURITY)),
    ("POST", "/api/v1/scans/{id}/cancel", Some(ADMIN_SECURITY)),
    ("GET", "/api/v1/notifications/rules", Some(ADMIN_SECURITY)),
    ("POST", "/api/v1/notifications/rules", Some(ADMIN_SECURITY)),
    ("GET", "/api/v1/notifications/rules/{id}", Some(ADMIN_SECURITY)),
    ("PATCH", "/api/v1/notifications/rules/{id}", Some(ADMIN_SECURITY)),
    ("DELETE", "/api/v1/notifications/rules/{id}", Some(ADMIN_SECURITY)),
    ("POST", "/api/v1/notifications/rules/{id}/test", Some(ADMIN_SECURITY)),
    ("GET", "/api/v1/notifications/deliveries", Some(ADMIN_SECURITY)),
    ("GET", "/api/v1/notifications/deliveries/{id}", Some(ADMIN_SECURITY)),
    ("GET", "/api/v1/certificates/{id}", Some(PEOPLE)),
    ("PATCH", "/api/v1/certificates/{id}", Some(PEOPLE)),
    ("DELETE", "/api/v1/certificates/{id}", Some(ADMIN_SECURITY)),
    ("GET", "/api/v1/certificates/{id}/pem", Some(PEOPLE)),
    ("POST", "/api/v1/certificates/{id}/revoke", Some(PEOPLE)),
    ("GET", "/api/v1/certificates/{id}/key", Some(ADMIN_DEVELOPER)),
    ("GET", "/api/v1/owners", Some(PEOPLE)),
    ("POST", "/api/v1/owners", Some(ADMIN_SECURITY)),
    ("GET", "/api/v1/owners/{id}", Some(PEOPLE)),
    ("PATCH", "/api/v1/owners/{id}", Some(ADMIN_SECURITY)),
    ("DELETE", "/api/v1/owners/{id}", Some(ADMIN)),
    ("GET", "/api/v1/owners/{id}/policy", Some(PEOPLE)),
    ("PUT", "/api/v1/owners/{id}/policy", Some(ADMIN_SECURITY)),
    ("GET", "/api/v1/tokens", Some(ADMIN)),
    ("POST", "/api/v1/tokens", Some(ADMIN)),
    ("DELETE", "/api/v1/tokens/{id}", Some(ADMIN)),
    ("GET", "/api/v1/audit", Some(ADMIN_SECURITY)),
    ("GET", "/api/v1/audit/verify", Some(ADMIN_SECURITY)),
    ("GET", "/api/v1/requests", Some(PEOPLE)),
    ("POST", "/api/v1/requests", Some(PEOPLE)),
    ("GET", "/api/v1/requests/{id}", Some(PEOPLE)),
    ("POST", "/api/v1/requests/{id}/approve", Some(ADMIN_SECURITY)),
    ("POST", "/api/v1/requests/{id}/reject", Some(ADMIN_SECURITY)),
    ("GET", "/api/v1/managed-certificates", Some(PEOPLE)),
    ("POST", "/api/v1/managed-certificates", Some(PEOPLE)),
    ("GET", "/api/v1/managed-certificates/{id}", Some(PEOPLE)),
    ("POST", "/api/v1/managed-certificates/{id}/renew", Some(PEOPLE)),
    ("GET", "/api/v1/adapters", Some(PEOPLE)),
    ("POST", "/api/v1/adapters", Some(ADMIN)),
    ("GET", "/api/v1/adapters/{id}", Some(PEOPLE)),
    ("PATCH", "/api/v1/adapters/{id}", Some(ADMIN)),
    ("GET", "/api/v1/adapters/{id}/status", Some(PEOPLE)),
    ("POST", "/api/v1/adapters/{id}/sign", Some(ADMIN)),
    ("POST", "/api/v1/adapters/{id}/revoke", Some(ADMIN)),
    ("POST", "/api/v1/adapters/{id}/renewal-window", Some(ADMIN)),
    ("POST", "/api/v1/adapters/{id}/agent-tokens", Some(ADMIN)),
    ("GET", "/api/v1/managed-certificates/{id}/deployments", Some(PEOPLE)),
    ("PUT", "/api/v1/managed-certificates/{id}/deployments", Some(ADMIN_DEVELOPER)),
    ("GET", "/api/v1/agents/bootstrap-tokens", Some(ADMIN)),
    ("POST", "/api/v1/agents/bootstrap-tokens", Some(ADMIN)),
    ("DELETE", "/api/v1/agents/bootstrap-tokens/{id}", Some(ADMIN)),
    ("POST", "/api/v1/agents/enroll", None),
    ("GET", "/api/v1/agents", Some(ADMIN_SECURITY)),
    ("GET", "/api/v1/agents/{id}", Some(ADMIN_SECURITY)),
    ("DELETE", "/api/v1/agents/{id}", Some(ADMIN)),
    ("POST", "/api/v1/agents/{id}/disable", Some(ADMIN)),
    ("POST", "/api/v1/agents/{id}/enable", Some(ADMIN)),
    ("POST", "/api/v1/agents/{id}/discover", Some(ADMIN_SECURITY)),
    // Agents authenticate with their client certificate (the walk's agent has one).
    ("POST", "/api/v1/agent/identity", Some(AGENT)),
    ("POST", "/api/v1/agent/heartbeat", Some(AGENT)),
    ("GET", "/api/v1/agent/jobs/next", Some(AGENT)),
    ("POST", "/api/v1/agent/jobs/release", Some(AGENT)),
    ("POST", "/api/v1/agent/jobs/{id}/result", Some(AGENT)),
    ("POST", "/api/v1/agent/jobs/{id}/csr", Some(AGENT)),
    ("POST", "/api/v1/agent/jobs/{id}/discovery", Some(AGENT)),
];

/// (method, path template) -> names of the roles declared in the document, `None` for public.
fn declared(doc: &Value) -> BTreeMap<(String, String), Option<BTreeSet<&'static str>>> {
    let mut ops = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            let roles = op.get("security").map(|reqs| {
                reqs.as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|r| r["bearer"].as_array().unwrap().iter())
                    .map(|n| Role::parse(n.as_str().unwrap()).unwrap().as_str())
                    .collect::<BTreeSet<_>>()
            });
            ops.insert((method.to_uppercase(), path.clone()), roles);
        }
    }
    ops
}

/// The table, keyed as [`declared`].
fn expected() -> BTreeMap<(String, String), Option<BTreeSet<&'static str>>> {
    EXPECTED
        .iter()
        .map(|(method, path, roles)| {
            let roles = roles.map(|r| r.iter().map(|r| r.as_str()).collect::<BTreeSet<_>>());
            ((method.to_string(), path.to_string()), roles)
        })
        .collect()
}

/// A path of the table with its parameters filled in: the builtin CA's name, an unknown id,
/// and an OCSP request that is not one (answered malformedRequest).
fn concrete(path: &str) -> String {
    let concrete = path
        .replace("{id}", UNKNOWN_ID)
        .replace("{run_id}", UNKNOWN_ID)
        .replace("{name}", "builtin")
        .replace("{request}", "AA");
    assert!(!concrete.contains('{'), "add a value for the parameters of {path}");
    concrete
}

/// How a caller of the walk authenticates: a bearer token, the client certificate of an
/// enrolled agent, or a browser session (its cookie jar and CSRF token) from a login at an
/// OpenID provider.
enum Credential {
    Token(String),
    Agent(reqwest::Client),
    Session(reqwest::Client, String),
}

async fn call(app: &TestApp, method: &Method, path: &str, token: Option<&str>) -> (u16, String) {
    // Redirects are answers here (the login routes'), not hops to follow.
    let http = app.http_builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    call_with(app, &http, method, path, token, None).await
}

async fn call_with(
    app: &TestApp,
    http: &reqwest::Client,
    method: &Method,
    path: &str,
    token: Option<&str>,
    csrf: Option<&str>,
) -> (u16, String) {
    let mut req = http.request(method.clone(), app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(csrf) = csrf {
        req = req.header("x-csrf-token", csrf);
    }
    if matches!(*method, Method::POST | Method::PATCH | Method::PUT) {
        req = req.header("content-type", "application/json").body("{}");
    }
    if path.ends_with("/jobs/next") {
        req = req.query(&[("wait_secs", "0")]);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

#[tokio::test]
async fn every_route_admits_exactly_its_declared_roles() {
    on_both_databases!(https, |app| {
        let owner = app
            .admin
            .create_owner(&cmp_api::OwnerCreate {
                name: "walkers".into(),
                email: None,
                description: None,
            })
            .await
            .unwrap();
        let mut callers = vec![(Role::Admin, Credential::Token(app.admin_token.clone()))];
        for role in [Role::Security, Role::Developer] {
            callers.push((role, Credential::Token(app.token(role, &[owner.id.as_str()]).await)));
        }
        callers.push((Role::Agent, agent_credential(&app).await));
        walk(&app, &callers).await;
    });
}

/// The same walk with people logged in at a real OpenID provider (sessions with their CSRF
/// token), on both databases, with sessions in the database and in Redis.
#[tokio::test]
async fn every_route_admits_exactly_its_declared_roles_for_people_of_a_provider() {
    for (kind, in_redis) in
        cmp_testkit::DbKind::ALL.into_iter().flat_map(|k| [(k, false), (k, true)])
    {
        let oidc = OidcApp::start(kind, true, |c| {
            c.redis.url = in_redis.then(crate::login::redis_url);
        })
        .await;
        let mut callers = Vec::new();
        for (role, user) in
            [(Role::Admin, "ada"), (Role::Security, "sam"), (Role::Developer, "dev")]
        {
            let browser = oidc.login(user).await;
            let (_, me) = oidc.me(&browser).await;
            assert_eq!(me["role"], role.as_str());
            let csrf = me["csrf_token"].as_str().unwrap().to_string();
            callers.push((role, Credential::Session(browser, csrf)));
        }
        callers.push((Role::Agent, agent_credential(&oidc.app).await));
        walk(&oidc.app, &callers).await;
        oidc.app.stop().await;
    }
}

async fn agent_credential(app: &TestApp) -> Credential {
    let (identity, _) = app.enroll_agent("walker").await;
    let identity = reqwest::Identity::from_pem(&identity).unwrap();
    Credential::Agent(app.http_builder().identity(identity).build().unwrap())
}

/// Every route of the document, with no credential, a forged one, and each caller's.
async fn walk(app: &TestApp, callers: &[(Role, Credential)]) {
    let doc: Value =
        app.http().get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    // The document declares exactly the table's roles, route by route.
    let declared = declared(&doc);
    let table = expected();
    for (op, roles) in &declared {
        assert!(table.contains_key(op), "{op:?} is in the document: add it to EXPECTED");
        assert_eq!(roles, &table[op], "{op:?}: the document's roles differ from EXPECTED");
    }
    for op in table.keys() {
        assert!(declared.contains_key(op), "{op:?} is in EXPECTED but not in the document");
    }

    // The server admits exactly the table's roles.
    for (method, path, roles) in EXPECTED {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let path = concrete(path);
        let (status, body) = call(app, &method, &path, None).await;
        assert_ne!(status, 405, "{method} {path} is in the document but not routed");
        assert!(!body.contains("route for this path"), "{method} {path} is not routed");
        match roles {
            // Public: no credential asked for (enrolment's empty body is a 400).
            None => assert!(
                !matches!(status, 401 | 403 | 405) && (status < 500 || status == 503),
                "public {method} {path} answered {status}: {body}"
            ),
            Some(allowed) => {
                assert_eq!(status, 401, "{method} {path} without a token: {body}");
                let (bad, _) = call(app, &method, &path, Some("cmp_not-a-real-token")).await;
                assert_eq!(bad, 401, "{method} {path} with a forged token");
                for (role, credential) in callers {
                    let (status, body) = match credential {
                        Credential::Token(token) => call(app, &method, &path, Some(token)).await,
                        Credential::Agent(http) => {
                            call_with(app, http, &method, &path, None, None).await
                        }
                        Credential::Session(http, csrf) => {
                            call_with(app, http, &method, &path, None, Some(csrf)).await
                        }
                    };
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
        let security = app.client(Some(created.token.expose()));
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
            !listing.contains(created.token.expose())
                && !listing.contains(&cmp_server::auth::token_hash(created.token.expose()))
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
        let on_replica = cmp_client::Client::new(
            &format!("http://{}", replica.addr),
            Some(created.token.expose().clone()),
        )
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
