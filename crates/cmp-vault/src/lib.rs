//! A client for HashiCorp Vault and OpenBao (same HTTP API): the PKI engine that signs
//! certificates, KV v2 that keeps private keys and credentials ([`VaultKvStore`]), and tokens
//! for agents.
//!
//! [`VaultClient`] logs in with a token or AppRole, renews its token before it expires
//! ([`VaultClient::spawn_renewal`]) and logs in again when it is gone. Errors are
//! [`VaultError`]s that say whether retrying can help; none carries a token or secret data.

mod error;
mod kv;
mod pki;
mod session;
mod tokens;

pub use error::VaultError;
pub use kv::VaultKvStore;
pub use pki::{PkiRole, Revoke, SignRequest, Signed};
pub use session::{Credentials, Secret};
pub use tokens::{IssuedToken, TokenRequest, agent_policy};

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::error::error_message;
use crate::session::Sessions;

/// Where Vault is and how to reach it.
#[derive(Clone)]
pub struct VaultSettings {
    /// `http(s)://host:port`, without `/v1`.
    pub address: String,
    /// Vault Enterprise / OpenBao namespace, sent as `X-Vault-Namespace`.
    pub namespace: Option<String>,
    /// PEM certificates to trust for Vault's TLS, instead of the system roots.
    pub ca_bundle_pem: Option<String>,
    /// Per call.
    pub timeout: Duration,
}

impl VaultSettings {
    /// Settings for `address` with no namespace, system roots and a 30 s timeout.
    pub fn new(address: &str) -> VaultSettings {
        VaultSettings {
            address: address.to_string(),
            namespace: None,
            ca_bundle_pem: None,
            timeout: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for VaultSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultSettings")
            .field("address", &redacted_address(&self.address))
            .field("namespace", &self.namespace)
            .field("ca_bundle_pem", &self.ca_bundle_pem.as_ref().map(|_| "..."))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// `url` without a `user:password@` part, for errors and logs: an address pasted with
/// credentials in it must not be echoed. Everything up to the last `@` goes, since a password
/// may hold `@`, `/`, `?` or `#`; an address with an `@` in its path is cut too far rather
/// than shown.
pub fn without_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    match url[scheme_end..].rfind('@') {
        Some(at) => format!("{}{}", &url[..scheme_end], &url[scheme_end + at + 1..]),
        None => url.to_string(),
    }
}

/// `url` as it may be shown: without user info and without a query or fragment, where a
/// token pasted into the address would sit (Vault reads neither).
pub fn redacted_address(url: &str) -> String {
    let shown = without_userinfo(url);
    match shown.find(['?', '#']) {
        Some(end) => shown[..end].to_string(),
        None => shown,
    }
}

/// `sys/health`, read without a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub initialized: bool,
    pub sealed: bool,
    pub standby: bool,
    pub version: String,
}

/// A logged-in connection to one Vault. Cheap to share behind an `Arc`.
pub struct VaultClient {
    http: reqwest::Client,
    address: String,
    /// The address without user info, for errors and logs.
    shown_address: String,
    namespace: Option<String>,
    sessions: Sessions,
}

impl std::fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultClient")
            .field("address", &self.shown_address)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// Checks a mount, role or policy name before it becomes part of a URL path.
pub fn check_path_segment(what: &str, value: &str, slashes: bool) -> Result<(), VaultError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && !value.starts_with('/')
        && !value.ends_with('/')
        && !value.contains("..")
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c) || (slashes && c == '/'));
    if ok {
        Ok(())
    } else {
        Err(VaultError::InvalidConfig(format!(
            "{what} {value:?} must be 1-128 characters of A-Z a-z 0-9 - _ .{}",
            if slashes { " /" } else { "" }
        )))
    }
}

impl VaultClient {
    /// A client; nothing is sent until the first call.
    pub fn new(
        settings: &VaultSettings,
        credentials: Credentials,
    ) -> Result<VaultClient, VaultError> {
        let address = settings.address.trim_end_matches('/').to_string();
        if !(address.starts_with("http://") || address.starts_with("https://")) {
            return Err(VaultError::InvalidConfig(format!(
                "address {:?} must start with http:// or https://",
                redacted_address(&address)
            )));
        }
        let mut builder = reqwest::Client::builder().timeout(settings.timeout);
        if let Some(pem) = &settings.ca_bundle_pem {
            let roots = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| VaultError::InvalidConfig(format!("ca_bundle: {e}")))?;
            if roots.is_empty() {
                return Err(VaultError::InvalidConfig("ca_bundle holds no certificate".into()));
            }
            builder = builder.tls_built_in_root_certs(false);
            for root in roots {
                builder = builder.add_root_certificate(root);
            }
        }
        // reqwest takes rustls's provider from the process (the binary's main installs
        // aws-lc-rs) and panics without one: say so as an error instead.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            return Err(VaultError::InvalidConfig(
                "no TLS crypto provider is installed (a bug in the program)".into(),
            ));
        }
        let http = builder.build().map_err(|e| VaultError::InvalidConfig(e.to_string()))?;
        Ok(VaultClient {
            http,
            shown_address: redacted_address(&address),
            address,
            namespace: settings.namespace.clone().filter(|n| !n.is_empty()),
            sessions: Sessions::new(credentials),
        })
    }

    /// The address this client talks to, without any user info: for errors, logs and status.
    pub fn shown_address(&self) -> &str {
        &self.shown_address
    }

    /// Whether Vault is initialized, sealed, standby (no token needed).
    pub async fn health(&self) -> Result<Health, VaultError> {
        // These parameters make every state answer 200 with the same body.
        let path = "sys/health?standbyok=true&sealedcode=200&uninitcode=200&perfstandbyok=true";
        let body = self.send(Method::GET, path, None, None).await?.unwrap_or_default();
        Ok(Health {
            initialized: body["initialized"].as_bool().unwrap_or(false),
            sealed: body["sealed"].as_bool().unwrap_or(true),
            standby: body["standby"].as_bool().unwrap_or(false),
            version: body["version"].as_str().unwrap_or_default().to_string(),
        })
    }

    /// Checks that Vault answers, is unsealed and accepts our token.
    pub async fn check(&self) -> Result<(), VaultError> {
        if self.health().await?.sealed {
            return Err(VaultError::Sealed);
        }
        self.call(Method::GET, "auth/token/lookup-self", None).await.map(|_| ())
    }

    /// An authenticated call. A 403 with a token that no longer works logs in again once
    /// (AppRole); with a fixed token it is [`VaultError::TokenInvalid`].
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, VaultError> {
        let token = self.sessions.token(self).await?;
        match self.send(method.clone(), path, body, Some(&token)).await {
            Err(VaultError::Denied { path: denied, message }) => {
                if self.token_works(&token).await? {
                    return Err(VaultError::Denied { path: denied, message });
                }
                self.sessions.forget(&token).await;
                if !self.sessions.can_login() {
                    return Err(VaultError::TokenInvalid(
                        "Vault refuses it (permission denied on lookup-self); give CMP a new token"
                            .into(),
                    ));
                }
                let fresh = self.sessions.token(self).await?;
                self.send(method, path, body, Some(&fresh)).await
            }
            other => other,
        }
    }

    async fn token_works(&self, token: &Secret) -> Result<bool, VaultError> {
        match self.send(Method::GET, "auth/token/lookup-self", None, Some(token)).await {
            Ok(_) => Ok(true),
            Err(VaultError::Denied { .. }) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// One HTTP exchange under `/v1/`; the answer's JSON (`None` for 204).
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&Secret>,
    ) -> Result<Option<Value>, VaultError> {
        let url = format!("{}/v1/{path}", self.address);
        let mut request = self.http.request(method, &url);
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token.expose());
        }
        if let Some(namespace) = &self.namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| VaultError::Unreachable {
            address: self.shown_address.clone(),
            reason: without_url(&e),
        })?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| VaultError::Unreachable {
            address: self.shown_address.clone(),
            reason: without_url(&e),
        })?;
        let path = path.split('?').next().unwrap_or(path).to_string();
        match status {
            204 => Ok(None),
            200..=299 if text.trim().is_empty() => Ok(None),
            200..=299 => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| VaultError::Protocol(format!("{path}: {e}"))),
            403 => Err(VaultError::Denied { path, message: error_message(&text) }),
            404 => Err(VaultError::NotFound(path)),
            503 if text.contains("sealed") => Err(VaultError::Sealed),
            429 | 500..=599 => {
                Err(VaultError::Unavailable { status, message: error_message(&text) })
            }
            _ => Err(VaultError::Rejected { status, message: error_message(&text) }),
        }
    }
}

/// reqwest's error text without the URL (which is known, and may carry a query).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut reason = kind.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        reason = format!("{reason}: {cause}");
        source = cause.source();
    }
    reason
}

/// A string field of a JSON answer, or a protocol error naming it.
pub(crate) fn field<'a>(value: &'a Value, pointer: &str) -> Result<&'a str, VaultError> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .ok_or_else(|| VaultError::Protocol(format!("answer has no {pointer}")))
}

#[cfg(test)]
mod tests {
    use super::{redacted_address, without_userinfo};

    #[test]
    fn user_info_is_left_out_of_shown_addresses() {
        assert_eq!(without_userinfo("https://u:p@vault:8200/x"), "https://vault:8200/x");
        assert_eq!(without_userinfo("https://u:pa/ss@vault:8200/v1"), "https://vault:8200/v1");
        assert_eq!(without_userinfo("https://u:p@s?s#@vault:8200"), "https://vault:8200");
        assert_eq!(without_userinfo("http://tok@127.0.0.1:8200"), "http://127.0.0.1:8200");
        assert_eq!(without_userinfo("https://vault:8200"), "https://vault:8200");
        assert_eq!(without_userinfo("vault:8200"), "vault:8200");
        assert_eq!(redacted_address("http://u:p@v:8200/?token=s#f"), "http://v:8200/");
        assert_eq!(redacted_address("http://v:8200#token"), "http://v:8200");
    }
}
