//! The PKI secrets engine: sign a CSR under a role, revoke, read a role's limits and the
//! issuer chain.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{VaultClient, VaultError, field};

/// `POST <mount>/sign/<role>`: the names come from here, not from the CSR, when the role
/// sets `use_csr_common_name` and `use_csr_sans` to false.
#[derive(Debug, Clone)]
pub struct SignRequest<'a> {
    pub csr_pem: &'a str,
    pub common_name: &'a str,
    pub alt_names: &'a [String],
    pub ip_sans: &'a [String],
    pub ttl_secs: i64,
}

/// What `sign` returns.
#[derive(Debug, Clone)]
pub struct Signed {
    pub certificate_pem: String,
    /// Issuing CA first, up to the root (as far as Vault knows it).
    pub ca_chain_pem: Vec<String>,
    /// Colon-separated hex, as Vault prints it.
    pub serial_number: String,
    /// Vault's warnings, e.g. a TTL cut down to the role's maximum.
    pub warnings: Vec<String>,
}

/// How to name the certificate to revoke.
#[derive(Debug, Clone, Copy)]
pub enum Revoke<'a> {
    /// Colon-separated or plain hex serial (Vault must have stored the certificate).
    Serial(&'a str),
    /// The certificate itself (works for `no_store` roles).
    Certificate(&'a str),
}

/// The parts of a PKI role CMP checks against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiRole {
    /// Seconds; 0 means the mount's maximum.
    pub max_ttl_secs: i64,
    /// `rsa`, `ec`, `ed25519` or `any`.
    pub key_type: String,
    pub server_flag: bool,
    pub client_flag: bool,
    pub no_store: bool,
    /// Whether the role takes the common name and SANs from the CSR instead of the call.
    pub use_csr_common_name: bool,
    pub use_csr_sans: bool,
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

impl VaultClient {
    /// Signs a CSR under `role`.
    pub async fn pki_sign(
        &self,
        mount: &str,
        role: &str,
        request: &SignRequest<'_>,
    ) -> Result<Signed, VaultError> {
        let body = json!({
            "csr": request.csr_pem,
            "common_name": request.common_name,
            "alt_names": request.alt_names.join(","),
            "ip_sans": request.ip_sans.join(","),
            "ttl": format!("{}s", request.ttl_secs),
            "format": "pem",
        });
        let answer = self
            .call(Method::POST, &format!("{mount}/sign/{role}"), Some(&body))
            .await?
            .unwrap_or_default();
        let data = &answer["data"];
        let mut ca_chain_pem = strings(&data["ca_chain"]);
        if ca_chain_pem.is_empty() {
            ca_chain_pem.push(field(data, "/issuing_ca")?.to_string());
        }
        Ok(Signed {
            certificate_pem: field(data, "/certificate")?.to_string(),
            ca_chain_pem,
            serial_number: field(data, "/serial_number")?.to_string(),
            warnings: strings(&answer["warnings"]),
        })
    }

    /// Revokes a certificate. Revoking one that is already revoked succeeds.
    pub async fn pki_revoke(&self, mount: &str, what: Revoke<'_>) -> Result<(), VaultError> {
        let body = match what {
            Revoke::Serial(serial) => json!({"serial_number": serial}),
            Revoke::Certificate(pem) => json!({"certificate": pem}),
        };
        self.call(Method::POST, &format!("{mount}/revoke"), Some(&body)).await.map(|_| ())
    }

    /// A role's limits.
    pub async fn pki_role(&self, mount: &str, role: &str) -> Result<PkiRole, VaultError> {
        let answer = self
            .call(Method::GET, &format!("{mount}/roles/{role}"), None)
            .await?
            .unwrap_or_default();
        let data = &answer["data"];
        let flag = |name: &str| data[name].as_bool().unwrap_or(false);
        Ok(PkiRole {
            max_ttl_secs: data["max_ttl"].as_i64().unwrap_or(0),
            key_type: data["key_type"].as_str().unwrap_or("rsa").to_string(),
            server_flag: flag("server_flag"),
            client_flag: flag("client_flag"),
            no_store: flag("no_store"),
            use_csr_common_name: data["use_csr_common_name"].as_bool().unwrap_or(true),
            use_csr_sans: data["use_csr_sans"].as_bool().unwrap_or(true),
        })
    }

    /// The default issuer's chain, PEM (issuer first).
    pub async fn pki_ca_chain(&self, mount: &str) -> Result<String, VaultError> {
        let answer = self
            .call(Method::GET, &format!("{mount}/cert/ca_chain"), None)
            .await?
            .unwrap_or_default();
        let data = &answer["data"];
        data["ca_chain"]
            .as_str()
            .or_else(|| data["certificate"].as_str())
            .map(str::to_string)
            .ok_or_else(|| VaultError::Protocol(format!("{mount}/cert/ca_chain has no chain")))
    }
}
