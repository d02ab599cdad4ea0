//! A real OpenBao (Vault-compatible) dev server per test: in memory, unsealed, plain HTTP,
//! root token `root`. `scripts/services-up` installs the `bao` binary.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::free_port;

/// Where `bao` is: `$OPENBAO_BIN`, then `PATH`, then where `scripts/services-up` puts it.
pub fn bao_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("OPENBAO_BIN") {
        return PathBuf::from(path);
    }
    if let Some(found) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).map(|dir| dir.join("bao")).find(|p| p.is_file())
    }) {
        return found;
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let installed = home.join(".cache/cmp/tools/openbao/bin/bao");
    assert!(
        installed.is_file(),
        "OpenBao's `bao` is not installed: run ./scripts/services-up (or set OPENBAO_BIN)"
    );
    installed
}

/// A running OpenBao dev server, stopped on drop.
pub struct OpenBao {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    pub root_token: String,
    /// The CA of the listener's certificate, PEM, when started with TLS.
    pub tls_ca_pem: Option<String>,
    unseal_key: String,
    child: Child,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OpenBao {
    /// Starts a dev server on a free port and waits until it answers.
    pub async fn start() -> OpenBao {
        Self::start_with(false).await
    }

    /// The same over HTTPS, with a certificate from a CA of its own (`tls_ca_pem`).
    pub async fn start_tls() -> OpenBao {
        Self::start_with(true).await
    }

    async fn start_with(tls: bool) -> OpenBao {
        let mut last = String::new();
        // Dev mode also listens on port + 1 (cluster): another process may hold it.
        for _ in 0..3 {
            match Self::try_start(tls).await {
                Ok(bao) => return bao,
                Err(why) => last = why,
            }
        }
        panic!("OpenBao did not start: {last}");
    }

    async fn try_start(tls: bool) -> Result<OpenBao, String> {
        crate::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("bao.log");
        let port = free_port();
        let scheme = if tls { "https" } else { "http" };
        let address = format!("{scheme}://127.0.0.1:{port}");
        let mut command = Command::new(bao_binary());
        command.args(["server", "-dev", "-dev-root-token-id=root"]);
        if tls {
            command.arg("-dev-tls").arg(format!("-dev-tls-cert-dir={}", dir.path().display()));
        }
        let child = command
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run bao: {e}"))?;
        let mut bao = OpenBao {
            address,
            root_token: "root".into(),
            tls_ca_pem: None,
            unseal_key: String::new(),
            child,
            http: reqwest::Client::new(),
            _dir: dir,
        };
        let ca_file = bao._dir.path().join("vault-ca.pem");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = bao.child.try_wait() {
                return Err(format!("bao exited with {status}"));
            }
            let output = std::fs::read_to_string(&log).unwrap_or_default();
            if tls && bao.tls_ca_pem.is_none() && ca_file.is_file() {
                let pem = std::fs::read_to_string(&ca_file).unwrap();
                let ca = reqwest::Certificate::from_pem(pem.as_bytes()).unwrap();
                bao.http = reqwest::Client::builder().add_root_certificate(ca).build().unwrap();
                bao.tls_ca_pem = Some(pem);
            }
            if let Some(key) = output.lines().find_map(|l| l.strip_prefix("Unseal Key: "))
                && (!tls || bao.tls_ca_pem.is_some())
                && bao.http.get(format!("{}/v1/sys/health", bao.address)).send().await.is_ok()
            {
                bao.unseal_key = key.trim().to_string();
                return Ok(bao);
            }
            if Instant::now() > deadline {
                return Err("no answer within 15 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A call with the root token: (status, JSON body or Null).
    pub async fn try_api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.try_api_as(&self.root_token.clone(), method, path, body).await
    }

    /// A call with any token: (status, JSON body or Null).
    pub async fn try_api_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}/v1/{path}", self.address))
            .header("X-Vault-Token", token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A call with the root token that must succeed.
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.try_api(method, path, body).await;
        assert!((200..300).contains(&status), "{method} {path}: {status} {answer}");
        answer
    }

    /// Mounts a PKI engine with a new EC root; returns the root certificate (PEM).
    pub async fn enable_pki(&self, mount: &str) -> String {
        self.api(
            "POST",
            &format!("sys/mounts/{mount}"),
            Some(json!({"type": "pki", "config": {"max_lease_ttl": "87600h"}})),
        )
        .await;
        let root = self
            .api(
                "POST",
                &format!("{mount}/root/generate/internal"),
                Some(json!({"common_name": format!("{mount} test root"), "ttl": "87000h", "key_type": "ec"})),
            )
            .await;
        root["data"]["certificate"].as_str().unwrap().to_string()
    }

    /// A PKI role that takes names from the call (not the CSR), as CMP expects.
    pub async fn pki_role(&self, mount: &str, role: &str, extra: Value) -> Value {
        let mut body = json!({
            "allow_any_name": true,
            "key_type": "any",
            "max_ttl": "2160h",
            "use_csr_common_name": false,
            "use_csr_sans": false,
        });
        if let (Some(base), Some(more)) = (body.as_object_mut(), extra.as_object()) {
            base.extend(more.clone());
        }
        self.api("POST", &format!("{mount}/roles/{role}"), Some(body)).await
    }

    /// An ACL policy.
    pub async fn policy(&self, name: &str, rules: &str) {
        self.api("PUT", &format!("sys/policies/acl/{name}"), Some(json!({"policy": rules}))).await;
    }

    /// A new orphan token with these policies (and no default policy unless named).
    pub async fn token(&self, policies: &[&str], ttl: &str, renewable: bool) -> String {
        let answer = self
            .api(
                "POST",
                "auth/token/create-orphan",
                Some(json!({"policies": policies, "ttl": ttl, "renewable": renewable})),
            )
            .await;
        answer["auth"]["client_token"].as_str().unwrap().to_string()
    }

    /// The token role CMP makes agent tokens through (as docs/VAULT.md sets it up).
    pub async fn agent_token_role(&self) {
        let role = json!({"allowed_policies_glob": ["cmp-agent-*"], "orphan": true,
                          "renewable": true, "token_explicit_max_ttl": "24h",
                          "token_no_default_policy": true});
        self.api("POST", "auth/token/roles/cmp-agent", Some(role)).await;
    }

    /// Enables AppRole at `auth/approle` with a role; returns (role_id, secret_id).
    pub async fn approle(&self, role: &str, settings: Value) -> (String, String) {
        let (status, _) = self.try_api("GET", "sys/auth/approle", None).await;
        if status != 200 {
            self.api("POST", "sys/auth/approle", Some(json!({"type": "approle"}))).await;
        }
        self.api("POST", &format!("auth/approle/role/{role}"), Some(settings)).await;
        let role_id = self.api("GET", &format!("auth/approle/role/{role}/role-id"), None).await;
        let secret_id =
            self.api("POST", &format!("auth/approle/role/{role}/secret-id"), None).await;
        (
            role_id["data"]["role_id"].as_str().unwrap().to_string(),
            secret_id["data"]["secret_id"].as_str().unwrap().to_string(),
        )
    }

    /// Seals the server (every call but health then answers 503).
    pub async fn seal(&self) {
        self.api("POST", "sys/seal", None).await;
    }

    /// Unseals it with the dev server's key.
    pub async fn unseal(&self) {
        let answer = self.api("POST", "sys/unseal", Some(json!({"key": self.unseal_key}))).await;
        assert_eq!(answer["sealed"], json!(false), "{answer}");
    }

    /// Serials (colon hex) of every certificate the mount has stored, CA certificates included.
    pub async fn stored_serials(&self, mount: &str) -> Vec<String> {
        let (_, answer) = self.try_api("LIST", &format!("{mount}/certs"), None).await;
        answer["data"]["keys"]
            .as_array()
            .map(|k| k.iter().filter_map(|v| v.as_str()).map(str::to_string).collect())
            .unwrap_or_default()
    }
}
