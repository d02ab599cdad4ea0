//! OpenID Connect against a real provider (npm `oidc-provider`): the browser login with code
//! and PKCE driven over HTTP with a cookie jar, sessions, CSRF, logout, bearer JWTs, key
//! rotation, and every way a login or a token is refused.

use cmp_api::{AuthMethod, Me, OwnerCreate};
use cmp_domain::Role;
use cmp_server::config::{Config, OidcProviderConfig, TlsMode};
use cmp_testkit::DbKind;
use cmp_testkit::oidc::{
    CLI_CLIENT_ID, OidcOptions, OidcProvider, WEB_CLIENT_ID, WEB_CLIENT_SECRET,
};
use reqwest::redirect::Policy;
use serde_json::{Value, json};

use crate::support::TestApp;

/// The Redis that `scripts/services-up` runs.
pub fn redis_url() -> String {
    std::env::var("CMP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A server whose people log in at a real provider named `corp`.
pub struct OidcApp {
    pub app: TestApp,
    pub op: OidcProvider,
}

/// The provider's configuration in CMP: ada is admin, sam security, dev a developer of the
/// owners team-a and team-b, eve nothing; cmp-service's tokens are security.
pub fn provider_config(op: &OidcProvider) -> OidcProviderConfig {
    OidcProviderConfig {
        name: "corp".into(),
        issuer: op.issuer.clone(),
        client_id: WEB_CLIENT_ID.into(),
        client_secret: WEB_CLIENT_SECRET.into(),
        scopes: ["openid", "email", "profile", "groups"].map(String::from).to_vec(),
        audience: Some(op.options.audience.clone()),
        cli_client_id: Some(CLI_CLIENT_ID.into()),
        groups_claim: "groups".into(),
        roles: [
            ("cmp-admins", Role::Admin),
            ("cmp-security", Role::Security),
            ("cmp-automation", Role::Security),
        ]
        .map(|(g, r)| (g.to_string(), r))
        .into(),
        teams: [("team-a", "team-a"), ("team-b", "team-b")]
            .map(|(g, t)| (g.to_string(), t.to_string()))
            .into(),
        leeway_secs: 5,
        key_refetch_secs: 1,
    }
}

impl OidcApp {
    pub async fn start(kind: DbKind, https: bool, adjust: impl FnOnce(&mut Config)) -> OidcApp {
        // The provider needs the callback's address before the server runs.
        let port = cmp_testkit::free_port();
        let scheme = if https { "https" } else { "http" };
        let options = OidcOptions {
            redirect_uris: vec![format!("{scheme}://127.0.0.1:{port}/auth/callback")],
            post_logout_redirect_uris: vec![format!("{scheme}://127.0.0.1:{port}/")],
            ..OidcOptions::default()
        };
        let op = OidcProvider::start(options).await;
        let provider = provider_config(&op);
        let app = TestApp::spawn_with(kind, |c| {
            c.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
            if https {
                c.http.tls.mode = TlsMode::Auto;
            }
            c.auth.oidc.providers = vec![provider];
            adjust(c);
        })
        .await;
        for team in ["team-a", "team-b"] {
            let owner = OwnerCreate { name: team.into(), email: None, description: None };
            app.admin.create_owner(&owner).await.unwrap();
        }
        OidcApp { app, op }
    }

    /// A browser: a cookie jar, no automatic redirects.
    pub fn browser(&self) -> reqwest::Client {
        self.browser_with(|b| b)
    }

    /// A browser built further by `adjust` (default headers, say).
    pub fn browser_with(
        &self,
        adjust: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
    ) -> reqwest::Client {
        adjust(self.app.http_builder().cookie_store(true).redirect(Policy::none())).build().unwrap()
    }

    /// Follows redirects from `url` until the answer is not one, or until the next hop is
    /// CMP's callback and `stop_at_callback` holds; the last status and URL.
    pub async fn follow(
        &self,
        browser: &reqwest::Client,
        url: &str,
        stop_at_callback: bool,
    ) -> (u16, String) {
        let mut url = reqwest::Url::parse(url).unwrap();
        for _ in 0..20 {
            let response = browser.get(url.clone()).send().await.unwrap();
            let status = response.status().as_u16();
            let Some(location) = response.headers().get("location") else {
                return (status, url.to_string());
            };
            let next = url.join(location.to_str().unwrap()).unwrap();
            if stop_at_callback && next.path() == "/auth/callback" {
                return (status, next.to_string());
            }
            if next.as_str().starts_with(&self.app.base) && !next.path().starts_with("/auth/") {
                // Back at CMP after the login: where it sends the person.
                return (status, next.to_string());
            }
            url = next;
        }
        panic!("more than 20 redirects from {url}");
    }

    /// A browser logged in as `user` (asserts the login ends back at `/`).
    pub async fn login(&self, user: &str) -> reqwest::Client {
        self.login_with_id(user).await.0
    }

    /// The same, and the session id the callback set.
    pub async fn login_with_id(&self, user: &str) -> (reqwest::Client, String) {
        let browser = self.browser();
        let start = self.app.url(&format!("/auth/login?login_hint={user}"));
        let (_, callback) = self.follow(&browser, &start, true).await;
        let response = browser.get(&callback).send().await.unwrap();
        assert_eq!(response.status(), 303, "{}", self.op.logs());
        assert_eq!(response.headers()["location"], "/");
        let session = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().unwrap().strip_prefix("cmp_session="))
            .map(|v| v.split(';').next().unwrap().to_string())
            .next()
            .expect("a session cookie");
        (browser, session)
    }

    /// `GET /api/v1/me` in this browser: status and body.
    pub async fn me(&self, browser: &reqwest::Client) -> (u16, Value) {
        let response = browser.get(self.app.url("/api/v1/me")).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    /// `GET path` as the admin, as JSON.
    pub async fn admin_get(&self, path: &str) -> Value {
        let request = self.app.http().get(self.app.url(path)).bearer_auth(&self.app.admin_token);
        request.send().await.unwrap().json().await.unwrap()
    }

    /// Audit events, less the break-glass ones each use of the admin token writes.
    pub async fn audit_count(&self) -> usize {
        let events = self.admin_get("/api/v1/audit?limit=500").await;
        let events = events["items"].as_array().unwrap();
        events.iter().filter(|e| e["action"] != "auth.break_glass").count()
    }
}

async fn me_of(app: &OidcApp, browser: &reqwest::Client) -> Me {
    let (status, body) = app.me(browser).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).unwrap()
}

#[tokio::test]
async fn people_log_in_with_code_and_pkce_and_get_the_role_of_their_groups() {
    for kind in DbKind::ALL {
        let app = OidcApp::start(kind, true, |_| {}).await;
        let ada = me_of(&app, &app.login("ada").await).await;
        assert_eq!((ada.actor.as_str(), ada.role), ("oidc:corp:ada", Role::Admin));
        assert_eq!(
            (ada.auth, ada.email.as_deref()),
            (AuthMethod::Session, Some("ada@example.test"))
        );
        assert!(ada.csrf_token.is_some() && ada.session_expires_at.is_some());
        assert_eq!(me_of(&app, &app.login("sam").await).await.role, Role::Security);
        let dev = me_of(&app, &app.login("dev").await).await;
        assert_eq!(dev.role, Role::Developer);
        let owners = app.app.admin.owners().await.unwrap();
        let mut team_ids: Vec<String> = owners.into_iter().map(|o| o.id).collect();
        team_ids.sort();
        let mut dev_owners = dev.owners.clone();
        dev_owners.sort();
        assert_eq!(dev_owners, team_ids);

        // eve's groups give nothing: refused at the callback, and nothing is written.
        let before = app.audit_count().await;
        let browser = app.browser();
        let (status, _) =
            app.follow(&browser, &app.app.url("/auth/login?login_hint=eve"), false).await;
        assert_eq!(status, 403);
        assert_eq!(app.me(&browser).await.0, 401);
        assert_eq!(app.audit_count().await, before);
        // A browser that asks for HTML is sent to the dashboard, which shows why.
        let html = app.browser_with(|b| {
            let mut accept = reqwest::header::HeaderMap::new();
            accept.insert("accept", "text/html,application/xhtml+xml".parse().unwrap());
            b.default_headers(accept)
        });
        let (status, landed) =
            app.follow(&html, &app.app.url("/auth/login?login_hint=eve"), false).await;
        assert_eq!(status, 303);
        let landed = reqwest::Url::parse(&landed).unwrap();
        let error: Vec<(String, String)> = landed.query_pairs().into_owned().collect();
        assert_eq!(error.len(), 1, "{landed}");
        assert_eq!(error[0].0, "login_error");
        assert!(error[0].1.contains("no role in CMP"), "{landed}");
        assert_eq!(app.me(&html).await.0, 401);

        // The users, as admins see them; the audit trail names people, with their email.
        let users = app.admin_get("/api/v1/users").await;
        let subjects: Vec<&str> =
            users.as_array().unwrap().iter().map(|u| u["subject"].as_str().unwrap()).collect();
        assert_eq!(subjects, ["ada", "dev", "sam"], "{kind:?}");
        let logins = app.admin_get("/api/v1/audit?action=user.logged_in").await;
        let first = &logins["items"].as_array().unwrap().last().unwrap();
        assert_eq!(first["actor"], "oidc:corp:ada");
        assert_eq!(first["details"]["email"], "ada@example.test");
        app.app.stop().await;
    }
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_writes_need_the_csrf_token() {
    for kind in DbKind::ALL {
        let app = OidcApp::start(kind, true, |_| {}).await;
        // The callback's cookies, read off the wire.
        let browser = app.browser();
        let (_, callback) =
            app.follow(&browser, &app.app.url("/auth/login?login_hint=sam"), true).await;
        let response = browser.get(&callback).send().await.unwrap();
        assert_eq!(response.status(), 303);
        let cookies: Vec<String> = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        let session = cookies.iter().find(|c| c.starts_with("cmp_session=")).unwrap();
        for flag in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
            assert!(session.contains(flag), "{session}");
        }
        let csrf = cookies.iter().find(|c| c.starts_with("cmp_csrf=")).unwrap();
        assert!(!csrf.contains("HttpOnly"), "the dashboard reads it: {csrf}");

        let token = me_of(&app, &browser).await.csrf_token.unwrap();
        let owner = json!({ "name": "made-by-session" });
        let without =
            browser.post(app.app.url("/api/v1/owners")).json(&owner).send().await.unwrap();
        assert_eq!(without.status(), 403);
        assert!(without.text().await.unwrap().contains("X-CSRF-Token"));
        let wrong = browser
            .post(app.app.url("/api/v1/owners"))
            .header("x-csrf-token", "not-it")
            .json(&owner)
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 403);
        assert!(app.app.admin.owner("made-by-session").await.is_err(), "nothing written");
        let with = browser
            .post(app.app.url("/api/v1/owners"))
            .header("x-csrf-token", &token)
            .json(&owner)
            .send()
            .await
            .unwrap();
        assert_eq!(with.status(), 201, "{kind:?}");
        // A bearer-token call needs no CSRF token.
        let created = app
            .app
            .http()
            .post(app.app.url("/api/v1/owners"))
            .bearer_auth(&app.app.admin_token)
            .json(&json!({ "name": "made-by-token" }))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        app.app.stop().await;
    }
}

#[tokio::test]
async fn replayed_states_and_codes_and_strange_callbacks_are_refused() {
    for kind in DbKind::ALL {
        let app = OidcApp::start(kind, false, |_| {}).await;
        let before = app.audit_count().await;
        let browser = app.browser();
        let login = app.app.url("/auth/login?login_hint=ada");
        let (_, callback) = app.follow(&browser, &login, true).await;
        // Another browser (no login cookie) cannot use it.
        let stranger = app.browser();
        let refused = stranger.get(&callback).send().await.unwrap();
        assert_eq!(refused.status(), 401);
        assert_eq!(refused.headers()["content-type"], "application/problem+json", "{kind:?}");
        assert!(refused.text().await.unwrap().contains("login cookie is missing"));
        // The browser that started it can, once.
        assert_eq!(browser.get(&callback).send().await.unwrap().status(), 303);
        let again = browser.get(&callback).send().await.unwrap();
        assert_eq!(again.status(), 401);
        // A fresh login's state with the first login's (used) code: the provider refuses the
        // code (used, and made for another PKCE challenge).
        let (_, second) = app.follow(&browser, &login, true).await;
        let first = reqwest::Url::parse(&callback).unwrap();
        let old_code = first.query_pairs().find(|(k, _)| k == "code").unwrap().1.to_string();
        let mut swapped = reqwest::Url::parse(&second).unwrap();
        let state = swapped.query_pairs().find(|(k, _)| k == "state").unwrap().1.to_string();
        swapped
            .query_pairs_mut()
            .clear()
            .append_pair("code", &old_code)
            .append_pair("state", &state);
        let refused = browser.get(swapped).send().await.unwrap();
        assert_eq!(refused.status(), 401);
        assert!(refused.text().await.unwrap().contains("refused"));
        // The provider's own refusal, and a callback with nothing.
        let denied = browser
            .get(app.app.url("/auth/callback?error=access_denied&error_description=no"))
            .send()
            .await
            .unwrap();
        assert_eq!(denied.status(), 401);
        assert_eq!(browser.get(app.app.url("/auth/callback")).send().await.unwrap().status(), 400);
        // Where a login may send the browser afterwards: paths of CMP's own only.
        for target in ["https://evil.example/", "//evil.example/x", "/\\evil.example"] {
            let url = reqwest::Url::parse_with_params(
                &app.app.url("/auth/login"),
                &[("return_to", target)],
            )
            .unwrap();
            assert_eq!(browser.get(url).send().await.unwrap().status(), 400, "{target}");
        }
        let unknown = browser.get(app.app.url("/auth/login?provider=nope")).send().await.unwrap();
        assert_eq!(unknown.status(), 404);
        // One login happened (the first callback); nothing else was written.
        assert_eq!(app.audit_count().await, before + 1);
        app.app.stop().await;
    }
}

#[tokio::test]
async fn logout_ends_the_session_here_and_at_the_provider_and_timeouts_end_it_too() {
    for kind in DbKind::ALL {
        let app = OidcApp::start(kind, false, |_| {}).await;
        let browser = app.login("ada").await;
        let out = browser.get(app.app.url("/auth/logout")).send().await.unwrap();
        assert_eq!(out.status(), 303);
        let to = out.headers()["location"].to_str().unwrap().to_string();
        assert!(to.starts_with(&format!("{}/session/end", app.op.issuer)), "{to}");
        assert!(to.contains("client_id=cmp-web"), "{to}");
        assert_eq!(app.me(&browser).await.0, 401);

        // The same cookie, kept by someone, is refused: the session is gone on the server.
        let (browser, jar_cookie) = app.login_with_id("sam").await;
        browser.get(app.app.url("/auth/logout")).send().await.unwrap();
        let replayed = app
            .app
            .http()
            .get(app.app.url("/api/v1/me"))
            .header("cookie", format!("cmp_session={jar_cookie}"))
            .send()
            .await
            .unwrap();
        assert_eq!(replayed.status(), 401, "{kind:?}");

        // Idle and absolute timeouts, moved into the past under the API.
        for (column, why) in [("last_seen_at", "idle"), ("expires_at", "absolute timeout")] {
            let browser = app.login("dev").await;
            assert_eq!(app.me(&browser).await.0, 200);
            let sql = format!("UPDATE user_sessions SET {column} = {column} - 86400");
            app.app.store.execute_raw(&sql).await.unwrap();
            let (status, body) = app.me(&browser).await;
            assert_eq!(status, 401, "{body}");
            assert!(body["detail"].as_str().unwrap().contains(why), "{body}");
        }
        let sessions = app.app.store.execute_raw("DELETE FROM user_sessions").await.unwrap();
        assert_eq!(sessions, 0, "ended sessions are removed");
        app.app.stop().await;
    }
}

/// Claims of an access token for `op`'s audience, valid now, signed by whoever mints it.
fn claims(op: &OidcProvider, sub: &str, groups: &[&str]) -> Value {
    #[allow(clippy::disallowed_methods)]
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    json!({
        "iss": op.issuer, "sub": sub, "aud": op.options.audience,
        "iat": now, "exp": now + 300, "groups": groups,
    })
}

/// An RS256 JWT of `claims` signed by the RSA key in the PEM file, with `kid`.
fn mint(key_pem: &str, kid: &str, claims: &Value) -> String {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("key.pem");
    std::fs::write(&pem, key_pem).unwrap();
    // PKCS#1 DER, which jsonwebtoken's RSA signer reads.
    let der = std::process::Command::new("openssl")
        .args(["rsa", "-traditional", "-outform", "DER", "-in"])
        .arg(&pem)
        .output()
        .unwrap();
    assert!(der.status.success());
    let key = jsonwebtoken::EncodingKey::from_rsa_der(&der.stdout);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn stranger_key() -> String {
    let out = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

fn b64(value: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

/// `GET /api/v1/me` with a bearer token: status and body.
async fn me_with(app: &OidcApp, token: &str) -> (u16, Value) {
    let response =
        app.app.http().get(app.app.url("/api/v1/me")).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn bearer_jwts_of_the_provider_are_accepted_and_every_bad_one_is_refused() {
    for kind in DbKind::ALL {
        let app = OidcApp::start(kind, false, |_| {}).await;
        let op = &app.op;
        let service = op.service_token().await;
        let (status, me) = me_with(&app, &service).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(
            (me["actor"].as_str(), me["role"].as_str()),
            (Some("oidc:corp:cmp-service"), Some("security"))
        );
        assert_eq!(me["auth"], "jwt");
        let dev = op.user_access_token("dev").await;
        let (_, me) = me_with(&app, &dev).await;
        assert_eq!(
            (me["role"].as_str(), me["owners"].as_array().map(Vec::len)),
            (Some("developer"), Some(2))
        );
        // Developer scope holds for JWTs too: a developer cannot make owners.
        let denied = app
            .app
            .http()
            .post(app.app.url("/api/v1/owners"))
            .bearer_auth(&dev)
            .json(&json!({ "name": "x" }))
            .send()
            .await
            .unwrap();
        assert_eq!(denied.status(), 403);
        let (status, body) = me_with(&app, &op.user_access_token("eve").await).await;
        assert_eq!(status, 403, "{body}");
        assert!(body["detail"].as_str().unwrap().contains("no role in CMP"), "{body}");

        let before = app.audit_count().await;
        let key = op.signing_key_pem();
        let kid = op.signing_kid();
        let with = |change: Value| {
            let mut c = claims(op, "robot", &["cmp-admins"]);
            for (k, v) in change.as_object().unwrap() {
                c[k] = v.clone();
            }
            c
        };
        #[allow(clippy::disallowed_methods)]
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let (header, payload, _) = {
            let mut parts = service.split('.');
            (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap())
        };
        let dev_signature = dev.rsplit('.').next().unwrap();
        let id_token = op.user_tokens("ada", "openid email groups").await["id_token"]
            .as_str()
            .unwrap()
            .to_string();
        let cases: Vec<(&str, String, &str)> = vec![
            ("minted right", mint(&key, &kid, &with(json!({}))), ""),
            (
                "another audience",
                mint(&key, &kid, &with(json!({"aud": "https://other/api"}))),
                "audience",
            ),
            ("expired", mint(&key, &kid, &with(json!({"exp": now - 3600}))), "expired"),
            ("not yet valid", mint(&key, &kid, &with(json!({"nbf": now + 3600}))), "not valid yet"),
            (
                "another issuer",
                mint(&key, &kid, &with(json!({"iss": "http://127.0.0.1:1"}))),
                "issuer",
            ),
            (
                "a key not in the JWKS",
                mint(&stranger_key(), "stranger", &with(json!({}))),
                "does not publish",
            ),
            (
                "the provider's kid on another key",
                mint(&stranger_key(), &kid, &with(json!({}))),
                "bad signature",
            ),
            (
                "a signature of another token",
                format!("{header}.{payload}.{dev_signature}"),
                "bad signature",
            ),
            (
                "alg none",
                format!("{}.{payload}.", b64(&json!({"alg": "none", "typ": "JWT"}))),
                "malformed",
            ),
            (
                "HS256 with a shared secret",
                {
                    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
                    h.kid = Some(kid.clone());
                    let secret = jsonwebtoken::EncodingKey::from_secret(key.as_bytes()).unwrap();
                    jsonwebtoken::encode(&h, &with(json!({})), &secret).unwrap()
                },
                "does not list",
            ),
            ("an ID token", id_token.clone(), "audience"),
            ("not a JWT", "abc.def".into(), "neither"),
        ];
        for (case, token, why) in cases {
            let (status, body) = me_with(&app, &token).await;
            if why.is_empty() {
                assert_eq!(status, 200, "{case}: {body}");
                assert_eq!(body["role"], "admin", "{case}");
                continue;
            }
            assert_eq!(status, 401, "{case}: {body}");
            assert_eq!(body["type"], "https://cmp.dev/problems/unauthorized", "{case}");
            let detail = body["detail"].as_str().unwrap();
            assert!(detail.contains(why), "{case}: {detail}");
            assert!(!detail.contains(&token), "{case}: the token is echoed");
        }
        assert_eq!(app.audit_count().await, before, "refusals write nothing");
        app.app.stop().await;
    }
}

#[tokio::test]
async fn a_key_rotation_at_the_provider_reaches_cmp_without_ending_sessions() {
    let mut app = OidcApp::start(DbKind::Sqlite, false, |_| {}).await;
    let browser = app.login("ada").await;
    let old = app.op.service_token().await;
    assert_eq!(me_with(&app, &old).await.0, 200);
    let old_kid = app.op.signing_kid();
    app.op.rotate_keys().await;
    assert_ne!(app.op.signing_kid(), old_kid);
    // Past the refetch interval of the test's configuration (1 s).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let new = app.op.service_token().await;
    let (status, body) = me_with(&app, &new).await;
    assert_eq!(status, 200, "a token of the new key: {body}");
    assert_eq!(me_with(&app, &old).await.0, 200, "the old key is still published");
    assert_eq!(me_of(&app, &browser).await.role, Role::Admin, "the session lives on");
    app.app.stop().await;
}

#[tokio::test]
async fn the_bootstrap_token_is_break_glass_when_the_provider_is_down() {
    let OidcApp { app, op } = OidcApp::start(DbKind::Postgres, false, |_| {}).await;
    let service = op.service_token().await;
    let me = |token: &str| app.http().get(app.url("/api/v1/me")).bearer_auth(token.to_string());
    assert_eq!(me(&service).send().await.unwrap().status(), 200);
    drop(op);
    // Keys are kept: a token checked once needs no provider to be checked again...
    assert_eq!(me(&service).send().await.unwrap().status(), 200);
    // ...and the bootstrap admin token works, each use on the record.
    app.admin.owners().await.unwrap();
    app.admin.owners().await.unwrap();
    let glass: Value = app
        .http()
        .get(app.url("/api/v1/audit?action=auth.break_glass"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events = glass["items"].as_array().unwrap();
    assert!(events.len() >= 2, "{glass}");
    assert!(events[0]["actor"].as_str().unwrap().starts_with("token:"));
    app.stop().await;
}

#[tokio::test]
async fn id_tokens_are_checked_for_audience_nonce_and_time() {
    let op = OidcProvider::start(OidcOptions::default()).await;
    let provider = cmp_oidc::Provider::new(cmp_oidc::ProviderSettings {
        issuer: op.issuer.clone(),
        client_id: WEB_CLIENT_ID.into(),
        client_secret: Some(WEB_CLIENT_SECRET.into()),
        redirect_url: op.options.redirect_uris[0].clone(),
        scopes: vec![],
        audience: Some(op.options.audience.clone()),
        leeway_secs: 5,
        key_refetch_interval: std::time::Duration::from_secs(1),
        timeout: std::time::Duration::from_secs(5),
    })
    .unwrap();
    let tokens = op.user_tokens("dev", "openid email groups").await;
    let id = tokens["id_token"].as_str().unwrap();
    #[allow(clippy::disallowed_methods)]
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let verified = provider.verify_id_token(id, "test-nonce", now).await.unwrap();
    assert_eq!(verified.claims.strings("groups"), ["team-a", "team-b"]);
    let refused =
        |r: Result<cmp_oidc::VerifiedToken, cmp_oidc::OidcError>| r.unwrap_err().to_string();
    assert!(refused(provider.verify_id_token(id, "another", now).await).contains("nonce"));
    assert!(
        refused(provider.verify_id_token(id, "test-nonce", now + 7200).await).contains("expired")
    );
    // An access token is not an ID token, nor the reverse.
    let access = tokens["access_token"].as_str().unwrap();
    assert!(
        refused(provider.verify_id_token(access, "test-nonce", now).await).contains("audience")
    );
    assert!(refused(provider.verify_access_token(id, now).await).contains("audience"));
}

#[tokio::test]
async fn with_redis_sessions_live_there_and_a_logout_ends_them_on_every_replica() {
    for kind in DbKind::ALL {
        let app = OidcApp::start(kind, false, |c| c.redis.url = Some(redis_url())).await;
        let (browser, session) = app.login_with_id("ada").await;
        assert_eq!(me_of(&app, &browser).await.role, Role::Admin);
        let in_database = app.app.store.execute_raw("DELETE FROM user_sessions").await.unwrap();
        assert_eq!(in_database, 0, "the session is in Redis, not in the database");
        // Another replica on the same database and Redis knows the session...
        let replica = app
            .app
            .start_replica(|c| {
                c.redis.url = Some(redis_url());
                c.auth.oidc.providers = vec![provider_config(&app.op)];
            })
            .await;
        let on_replica = |path: &str| {
            reqwest::Client::new()
                .get(format!("http://{}{path}", replica.addr))
                .header("cookie", format!("cmp_session={session}"))
        };
        assert_eq!(on_replica("/api/v1/me").send().await.unwrap().status(), 200);
        // ...and refuses it as soon as it is logged out here.
        assert_eq!(browser.get(app.app.url("/auth/logout")).send().await.unwrap().status(), 303);
        let refused = on_replica("/api/v1/me").send().await.unwrap();
        assert_eq!(refused.status(), 401, "{kind:?}");

        // The idle timeout holds in Redis too.
        let (browser, session) = app.login_with_id("dev").await;
        let id_hash = cmp_server::auth::token_hash(&session);
        let client = redis::Client::open(redis_url()).unwrap();
        let mut redis = client.get_multiplexed_async_connection().await.unwrap();
        let key = format!("cmp:session:{id_hash}");
        let seen: i64 =
            redis::cmd("HGET").arg(&key).arg("seen").query_async(&mut redis).await.unwrap();
        let () = redis::cmd("HSET")
            .arg(&key)
            .arg("seen")
            .arg(seen - 86_400)
            .query_async(&mut redis)
            .await
            .unwrap();
        let (status, body) = app.me(&browser).await;
        assert_eq!(status, 401, "{body}");
        let exists: i64 = redis::cmd("EXISTS").arg(&key).query_async(&mut redis).await.unwrap();
        assert_eq!(exists, 0, "an ended session is removed");
        replica.shutdown().await.unwrap();
        app.app.stop().await;
    }
}

#[tokio::test]
async fn a_flood_of_logins_from_one_address_does_not_lock_out_another() {
    let app = OidcApp::start(DbKind::Sqlite, false, |_| {}).await;
    let flooder = app.browser();
    let mut limited = None;
    for _ in 0..60 {
        let response = flooder.get(app.app.url("/auth/login")).send().await.unwrap();
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status(), 303);
    }
    let limited = limited.expect("the flood is limited");
    assert_eq!(limited.headers()["content-type"], "application/problem+json");
    // Another address (loopback is a whole /8) still logs in.
    let other = app
        .app
        .http_builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .redirect(Policy::none())
        .build()
        .unwrap();
    let response = other.get(app.app.url("/auth/login")).send().await.unwrap();
    assert_eq!(response.status(), 303);
    // The API itself is not limited for the flooder.
    let me = flooder.get(app.app.url("/api/v1/me")).bearer_auth(&app.app.admin_token).send();
    assert_eq!(me.await.unwrap().status(), 200);
    app.app.stop().await;
}

#[tokio::test]
async fn a_login_while_the_provider_is_down_is_a_503_and_writes_nothing() {
    let OidcApp { app, op } = OidcApp::start(DbKind::Sqlite, false, |_| {}).await;
    drop(op);
    let browser = app.http_builder().redirect(Policy::none()).build().unwrap();
    let response = browser.get(app.url("/auth/login")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("identity provider is unavailable"),
        "{body}"
    );
    let attempts = app.store.execute_raw("DELETE FROM login_attempts").await.unwrap();
    assert_eq!(attempts, 0, "no login was recorded");
    app.stop().await;
}

/// A Redis of the test's own, on a free port, in memory.
struct OwnRedis {
    port: u16,
    child: std::process::Child,
}

impl OwnRedis {
    async fn start(port: u16) -> OwnRedis {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (./scripts/services-up installs it)");
        // Owned at once, so that a panic below still stops it (Drop).
        let redis = OwnRedis { port, child };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return redis;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("redis-server did not listen on {port}");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_redis_that_goes_away_is_a_503_and_a_new_login_works_once_it_is_back() {
    // Down at start: cmpd says so and does not start.
    let port = cmp_testkit::free_port();
    let db = cmp_testkit::TestDb::new(DbKind::Sqlite).await;
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.listen = Some("127.0.0.1:0".parse().unwrap());
    config.data_dir = data.path().to_path_buf();
    config.database.url = Some(db.url.clone());
    config.redis.url = Some(format!("redis://127.0.0.1:{port}"));
    let refused = cmp_server::start(config).await.err().expect("no Redis, no start");
    assert!(format!("{refused:#}").contains("while connecting to Redis"), "{refused:#}");

    let redis = OwnRedis::start(port).await;
    let app = OidcApp::start(DbKind::Sqlite, false, |c| c.redis.url = Some(redis.url())).await;
    let browser = app.login("ada").await;
    assert_eq!(app.me(&browser).await.0, 200);
    drop(redis);
    let (status, body) = app.me(&browser).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["type"], "https://cmp.dev/problems/unavailable");
    // API tokens do not need Redis.
    app.app.admin.owners().await.unwrap();
    // An in-memory Redis comes back empty: the old session is gone, a new login works.
    let _redis = OwnRedis::start(port).await;
    let mut status = 0;
    for _ in 0..50 {
        status = app.me(&browser).await.0;
        if status != 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 401);
    let browser = app.login("sam").await;
    assert_eq!(me_of(&app, &browser).await.role, Role::Security);
    app.app.stop().await;
}
