//! A real OpenID provider per test: panva's `oidc-provider` 9 under Node.js
//! (`scripts/oidc-provider/provider.mjs`, whose header tells the clients, users and flows), on
//! a free port, with RSA keys made here so that a test can rotate them or sign with them.
//! `scripts/services-up` installs Node.js and the provider's npm packages.
//!
//! Logins need no form: the helpers here drive the provider's own pages over plain HTTP with a
//! cookie jar, as a browser would, picking the user by name.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Url;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::free_port;

/// The confidential web client (authorization code with PKCE), as the provider registers it.
pub const WEB_CLIENT_ID: &str = "cmp-web";
pub const WEB_CLIENT_SECRET: &str = "cmp-web-secret";
/// The machine client (client credentials only).
pub const SERVICE_CLIENT_ID: &str = "cmp-service";
pub const SERVICE_CLIENT_SECRET: &str = "cmp-service-secret";
/// The public command-line client (device code; code with PKCE on any loopback port).
pub const CLI_CLIENT_ID: &str = "cmp-cli";

/// How to start the provider.
#[derive(Debug, Clone)]
pub struct OidcOptions {
    /// `aud` of every access token (all are RS256 JWTs).
    pub audience: String,
    /// cmp-web's redirect URIs; the first is the one [`OidcProvider::user_tokens`] uses.
    pub redirect_uris: Vec<String>,
    /// cmp-web's post-logout redirect URIs; empty: the redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
    /// `{"<login>": {"email": ..., "name": ..., "groups": [...]}}`; `sub` is the login name and
    /// every field is a claim. The first login (in key order) is the default user.
    pub users: Value,
    /// Lifetime of access tokens.
    pub access_ttl_secs: u64,
    /// Lifetime of ID tokens.
    pub id_token_ttl_secs: u64,
    /// The `groups` claim of cmp-service's access tokens.
    pub service_groups: Vec<String>,
}

impl Default for OidcOptions {
    /// Audience `https://cmp.test/api`; users ada (cmp-admins), sam (cmp-security), dev (team-a,
    /// team-b) and eve (strangers), each with the email `<login>@example.test`.
    fn default() -> Self {
        let user = |name: &str, groups: &[&str]| json!({ "name": name, "groups": groups });
        let mut users = json!({
            "ada": user("Ada Admin", &["cmp-admins"]),
            "sam": user("Sam Security", &["cmp-security"]),
            "dev": user("Dev Teams", &["team-a", "team-b"]),
            "eve": user("Eve Outsider", &["strangers"]),
        });
        for (login, claims) in users.as_object_mut().expect("an object") {
            claims["email"] = json!(format!("{login}@example.test"));
            claims["email_verified"] = json!(true);
        }
        OidcOptions {
            audience: "https://cmp.test/api".into(),
            redirect_uris: vec!["http://127.0.0.1:3000/callback".into()],
            post_logout_redirect_uris: Vec::new(),
            users,
            access_ttl_secs: 3600,
            id_token_ttl_secs: 3600,
            service_groups: vec!["cmp-automation".into()],
        }
    }
}

/// A running provider, stopped on drop.
pub struct OidcProvider {
    /// `http://127.0.0.1:<port>`: the issuer, and the base of every endpoint.
    pub issuer: String,
    pub options: OidcOptions,
    port: u16,
    /// Key files, the signing one first.
    keys: Vec<PathBuf>,
    keys_made: usize,
    child: Option<Child>,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `scripts/oidc-provider` in this checkout.
fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/oidc-provider")
}

impl OidcProvider {
    /// Makes one RSA key, starts the provider on a free port and waits until its discovery
    /// document answers.
    pub async fn start(options: OidcOptions) -> OidcProvider {
        crate::install_crypto_provider();
        let dir = provider_dir();
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "the OpenID provider's npm packages are not installed in {}: run ./scripts/services-up",
            dir.display()
        );
        let temp = tempfile::tempdir().expect("temp dir");
        std::fs::write(temp.path().join("users.json"), options.users.to_string())
            .expect("write users.json");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client");
        let mut provider = OidcProvider {
            issuer: String::new(),
            options,
            port: 0,
            keys: Vec::new(),
            keys_made: 0,
            child: None,
            http,
            dir: temp,
        };
        let key = provider.new_key();
        provider.keys.push(key);
        let mut last = String::new();
        // Another process may take the port between free_port() and node's listen.
        for _ in 0..3 {
            provider.port = free_port();
            provider.issuer = format!("http://127.0.0.1:{}", provider.port);
            match provider.run().await {
                Ok(()) => return provider,
                Err(why) => last = why,
            }
        }
        panic!("the OpenID provider did not start: {last}");
    }

    /// Makes a new key and restarts the provider on the same port with [new, old]: the new key
    /// signs from now on, the old one stays in the JWKS. Waits until it answers again.
    pub async fn rotate_keys(&mut self) {
        let key = self.new_key();
        self.keys.insert(0, key);
        self.keys.truncate(2);
        self.restart().await;
    }

    /// Restarts the provider on the same port with other redirect URIs for cmp-web (for a test
    /// whose server learns its port only after the provider runs). Sessions are forgotten.
    pub async fn set_redirect_uris(&mut self, redirect_uris: Vec<String>) {
        self.options.redirect_uris = redirect_uris;
        self.restart().await;
    }

    /// The signing key, PKCS#8 PEM: for tests that make their own tokens with the real key.
    pub fn signing_key_pem(&self) -> String {
        std::fs::read_to_string(&self.keys[0]).expect("read the signing key")
    }

    /// The `kid` of the signing key.
    pub fn signing_kid(&self) -> String {
        kid_of(&self.keys[0])
    }

    /// The discovery document's URL.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// The JWKS's URL.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.issuer)
    }

    /// What the provider printed, over all its starts.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("provider.log")).unwrap_or_default()
    }

    /// A client-credentials access token (JWT) of cmp-service.
    pub async fn service_token(&self) -> String {
        let response = self
            .http
            .post(format!("{}/token", self.issuer))
            .basic_auth(SERVICE_CLIENT_ID, Some(SERVICE_CLIENT_SECRET))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("POST /token");
        self.json_of(response, "client_credentials token").await["access_token"]
            .as_str()
            .expect("an access_token")
            .to_string()
    }

    /// A full code + PKCE login of `user` for cmp-web over HTTP (redirect URI: the first of
    /// the options), asking for `openid email profile groups`; the access token (JWT).
    pub async fn user_access_token(&self, user: &str) -> String {
        self.user_tokens(user, "openid email profile groups").await["access_token"]
            .as_str()
            .expect("an access_token")
            .to_string()
    }

    /// The same login with the scopes given; the whole token response (`access_token`,
    /// `id_token`, and `refresh_token` when `offline_access` was asked).
    pub async fn user_tokens(&self, user: &str, scope: &str) -> Value {
        let redirect_uri = self.options.redirect_uris.first().expect("a redirect URI").clone();
        let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let state = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>());
        let mut params = vec![
            ("client_id", WEB_CLIENT_ID),
            ("response_type", "code"),
            ("scope", scope),
            ("redirect_uri", &redirect_uri),
            ("state", &state),
            ("nonce", "test-nonce"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("login_hint", user),
        ];
        // offline_access counts only with prompt=consent (OpenID Connect Core 11).
        if scope.split(' ').any(|s| s == "offline_access") {
            params.push(("prompt", "consent"));
        }
        let authorize = Url::parse_with_params(&format!("{}/auth", self.issuer), &params)
            .expect("authorization URL");
        let mut jar = Jar::default();
        let back = match self.browse(&mut jar, authorize, Some(user)).await {
            Stop::LeftIssuer(url) => url,
            Stop::Page(status, body) => {
                panic!("login of {user} ended on a {status} page: {body}\n{}", self.logs())
            }
        };
        let query: Vec<(String, String)> = back.query_pairs().into_owned().collect();
        let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let code = param("code").unwrap_or_else(|| panic!("no code in {back}\n{}", self.logs()));
        assert_eq!(param("state").as_deref(), Some(state.as_str()), "state in {back}");
        let response = self
            .http
            .post(format!("{}/token", self.issuer))
            .basic_auth(WEB_CLIENT_ID, Some(WEB_CLIENT_SECRET))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &redirect_uri),
                ("code_verifier", &verifier),
            ])
            .send()
            .await
            .expect("POST /token");
        self.json_of(response, "authorization_code token").await
    }

    /// Completes the user side of a device authorization: `user` enters `user_code` on the
    /// provider's /device page, confirms it and logs in.
    pub async fn approve_device(&self, user_code: &str, user: &str) {
        self.answer_device(user_code, Some(user)).await;
    }

    /// The user side of a device authorization, refused: the device then gets `access_denied`.
    pub async fn deny_device(&self, user_code: &str) {
        self.answer_device(user_code, None).await;
    }

    async fn answer_device(&self, user_code: &str, user: Option<&str>) {
        let mut jar = Jar::default();
        let device = format!("{}/device", self.issuer);
        let response = self.http.get(&device).send().await.expect("GET /device");
        jar.keep(&response);
        let form = response.text().await.expect("the /device page");
        let xsrf = form
            .split_once(r#"name="xsrf" value=""#)
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(xsrf, _)| xsrf.to_string())
            .unwrap_or_else(|| panic!("no xsrf field on /device: {form}"));
        let response = self
            .http
            .post(&device)
            .header(COOKIE, jar.header())
            .form(&[("xsrf", xsrf.as_str()), ("user_code", user_code), ("confirm", "yes")])
            .send()
            .await
            .expect("POST /device");
        jar.keep(&response);
        let Some(next) = response.headers().get(LOCATION).and_then(|l| l.to_str().ok()) else {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            panic!("user code {user_code} was not taken ({status}): {body}\n{}", self.logs());
        };
        let mut next = Url::parse(&device).and_then(|d| d.join(next)).expect("a Location");
        if user.is_none() {
            next.query_pairs_mut().append_pair("deny", "1");
        }
        match self.browse(&mut jar, next, user).await {
            Stop::Page(status, body) => {
                let done =
                    if user.is_some() { "Sign-in Success" } else { "the interaction was aborted" };
                assert!(
                    body.contains(done),
                    "device approval ended on a {status} page: {body}\n{}",
                    self.logs()
                );
            }
            Stop::LeftIssuer(url) => panic!("device approval went to {url}"),
        }
    }

    /// Follows redirects with cookies from `url` until a page answers or a redirect leaves the
    /// issuer; logs in as `user` at the interaction.
    async fn browse(&self, jar: &mut Jar, mut url: Url, user: Option<&str>) -> Stop {
        for _ in 0..10 {
            if let Some(user) = user
                && url.path().starts_with("/interaction/")
            {
                url.query_pairs_mut().append_pair("login", user);
            }
            let response = self
                .http
                .get(url.clone())
                .header(COOKIE, jar.header())
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {url}: {e}"));
            jar.keep(&response);
            let status = response.status();
            let Some(location) = response.headers().get(LOCATION) else {
                return Stop::Page(status.as_u16(), response.text().await.unwrap_or_default());
            };
            let next = url.join(location.to_str().expect("ASCII Location")).expect("a Location");
            if !next.as_str().starts_with(&self.issuer) {
                return Stop::LeftIssuer(next);
            }
            url = next;
        }
        panic!("more than 10 redirects at the provider\n{}", self.logs());
    }

    async fn json_of(&self, response: reqwest::Response, what: &str) -> Value {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{what}: {status} {body}\n{}", self.logs());
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"))
    }

    /// A new RSA key file in the temp dir, named after its kid.
    fn new_key(&mut self) -> PathBuf {
        self.keys_made += 1;
        let tag: u32 = rand::random();
        let path = self.dir.path().join(format!("key-{}-{tag:08x}.pem", self.keys_made));
        let made = Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
            .arg(&path)
            .output()
            .expect("openssl runs (./scripts/services-up installs it)");
        assert!(
            made.status.success(),
            "openssl genpkey: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        path
    }

    /// Stops the provider and starts it again on its port; the port was just freed by it, but
    /// may take a moment to be free for a new listener.
    async fn restart(&mut self) {
        self.stop();
        let mut last = String::new();
        for _ in 0..10 {
            match self.run().await {
                Ok(()) => return,
                Err(why) => last = why,
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the OpenID provider did not start again on port {}: {last}", self.port);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node on `self.port` with the current keys and options; waits until it answers.
    async fn run(&mut self) -> Result<(), String> {
        let log_path = self.dir.path().join("provider.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open provider.log");
        let list = |items: &[String]| items.join(",");
        let keys: Vec<String> = self.keys.iter().map(|k| k.display().to_string()).collect();
        let options = &self.options;
        let started = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(provider_dir())
            .env("OIDC_PORT", self.port.to_string())
            .env("OIDC_ISSUER", &self.issuer)
            .env("OIDC_AUDIENCE", &options.audience)
            .env("OIDC_REDIRECT_URIS", list(&options.redirect_uris))
            .env("OIDC_POST_LOGOUT_REDIRECT_URIS", list(&options.post_logout_redirect_uris))
            .env("OIDC_USERS_FILE", self.dir.path().join("users.json"))
            .env("OIDC_KEYS", list(&keys))
            .env("OIDC_ACCESS_TTL", options.access_ttl_secs.to_string())
            .env("OIDC_ID_TOKEN_TTL", options.id_token_ttl_secs.to_string())
            .env("OIDC_SERVICE_GROUPS", list(&options.service_groups))
            .env_remove("OIDC_DEFAULT_USER")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run node (./scripts/services-up installs it): {e}"))?;
        self.child = Some(child);
        let ready = format!("listening {}", self.issuer);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Err(format!("node exited with {status}: {}", self.logs()));
            }
            let printed = self.logs().get(started as usize..).unwrap_or_default().contains(&ready);
            if printed
                && let Ok(response) = self.http.get(self.discovery_url()).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!("no answer within 20 s: {}", self.logs()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A key's `kid`: its file name without extension, as provider.mjs makes it.
fn kid_of(path: &Path) -> String {
    path.file_stem().and_then(|s| s.to_str()).expect("a key file name").to_string()
}

/// Where [`OidcProvider::browse`] stopped.
enum Stop {
    /// A redirect away from the provider (to a client), not followed.
    LeftIssuer(Url),
    /// A page that is no redirect: status and body.
    Page(u16, String),
}

/// The provider's cookies, by name. It scopes some to one path; sending each everywhere does
/// no harm within one flow, where each name holds one value at a time.
#[derive(Default)]
struct Jar(Vec<(String, String)>);

impl Jar {
    fn keep(&mut self, response: &reqwest::Response) {
        for cookie in response.headers().get_all(SET_COOKIE) {
            let Some((name, value)) = cookie
                .to_str()
                .ok()
                .and_then(|c| c.split(';').next())
                .and_then(|pair| pair.split_once('='))
            else {
                continue;
            };
            self.0.retain(|(n, _)| n != name.trim());
            // An empty value is how the provider deletes a cookie.
            if !value.is_empty() {
                self.0.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
    }

    fn header(&self) -> String {
        self.0.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The claims of a JWT (unverified) and its `kid`.
    fn claims(jwt: &str) -> (Value, String) {
        let part = |i: usize| -> Value {
            let segment = jwt.split('.').nth(i).expect("three parts");
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).expect("base64url"))
                .expect("JSON")
        };
        (part(1), part(0)["kid"].as_str().expect("a kid").to_string())
    }

    /// Every flow the OIDC tests build on, against the real provider.
    #[tokio::test]
    async fn the_provider_logs_in_users_machines_and_devices_and_rotates_its_keys() {
        let mut provider = OidcProvider::start(OidcOptions::default()).await;
        let http = reqwest::Client::new();
        let discovery: Value =
            http.get(provider.discovery_url()).send().await.unwrap().json().await.unwrap();
        assert_eq!(discovery["issuer"], json!(provider.issuer));
        let first_kid = provider.signing_kid();

        let (service, kid) = claims(&provider.service_token().await);
        assert_eq!(kid, first_kid);
        assert_eq!(service["aud"], json!("https://cmp.test/api"));
        assert_eq!(service["sub"], json!("cmp-service"));
        assert_eq!(service["groups"], json!(["cmp-automation"]));

        let tokens = provider.user_tokens("dev", "openid email profile groups").await;
        let (access, _) = claims(tokens["access_token"].as_str().unwrap());
        assert_eq!(access["sub"], json!("dev"));
        assert_eq!(access["aud"], json!("https://cmp.test/api"));
        assert_eq!(access["groups"], json!(["team-a", "team-b"]));
        assert_eq!(access["email"], json!("dev@example.test"));
        let (id, _) = claims(tokens["id_token"].as_str().unwrap());
        assert_eq!(id["aud"], json!(WEB_CLIENT_ID));
        assert_eq!(id["groups"], json!(["team-a", "team-b"]));
        assert_eq!(id["nonce"], json!("test-nonce"));
        assert!(
            provider.user_tokens("ada", "openid offline_access").await["refresh_token"].is_string()
        );

        // The device flow of `cmpctl login`.
        let token_url = format!("{}/token", provider.issuer);
        let device_grant = "urn:ietf:params:oauth:grant-type:device_code";
        let start_device = |scope: &'static str| {
            let request = http
                .post(format!("{}/device/auth", provider.issuer))
                .form(&[("client_id", CLI_CLIENT_ID), ("scope", scope)]);
            async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
        };
        let start = start_device("openid groups").await;
        let device_code = start["device_code"].as_str().unwrap();
        let poll = || {
            http.post(&token_url)
                .form(&[
                    ("grant_type", device_grant),
                    ("device_code", device_code),
                    ("client_id", CLI_CLIENT_ID),
                ])
                .send()
        };
        let pending: Value = poll().await.unwrap().json().await.unwrap();
        assert_eq!(pending["error"], json!("authorization_pending"));
        provider.approve_device(start["user_code"].as_str().unwrap(), "sam").await;
        let done: Value = poll().await.unwrap().json().await.unwrap();
        let (cli, _) = claims(done["access_token"].as_str().expect("device tokens"));
        assert_eq!(
            (cli["sub"].clone(), cli["groups"].clone()),
            (json!("sam"), json!(["cmp-security"]))
        );

        let denied = start_device("openid").await;
        provider.deny_device(denied["user_code"].as_str().unwrap()).await;
        let refused: Value = http
            .post(&token_url)
            .form(&[
                ("grant_type", device_grant),
                ("device_code", denied["device_code"].as_str().unwrap()),
                ("client_id", CLI_CLIENT_ID),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(refused["error"], json!("access_denied"));

        provider.rotate_keys().await;
        let new_kid = provider.signing_kid();
        assert_ne!(new_kid, first_kid);
        assert!(provider.signing_key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
        let jwks: Value = http.get(provider.jwks_url()).send().await.unwrap().json().await.unwrap();
        let kids: Vec<&str> =
            jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
        assert_eq!(kids, [new_kid.as_str(), first_kid.as_str()]);
        let (_, kid) = claims(&provider.user_access_token("eve").await);
        assert_eq!(kid, new_kid);
        let (_, kid) = claims(&provider.service_token().await);
        assert_eq!(kid, new_kid);
    }
}
