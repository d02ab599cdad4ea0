//! Vault tokens for agents: an ACL policy per agent and short-lived, renewable tokens that
//! carry it, made through a token role.
//!
//! The token role (e.g. `cmp-agent`: `allowed_policies_glob = cmp-agent-*`, `orphan = true`,
//! `renewable = true`, `token_explicit_max_ttl`) is what keeps CMP's own power small: CMP can
//! make tokens with agent policies and nothing else, and needs no `sudo`.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::json;

use crate::{Secret, VaultClient, VaultError, field};

/// What to put in a new token.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub policies: Vec<String>,
    pub ttl_secs: i64,
    pub display_name: String,
    /// Shown in Vault's audit log next to every use of the token.
    pub meta: BTreeMap<String, String>,
}

/// A token Vault made.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: Secret,
    pub accessor: String,
    pub ttl_secs: i64,
    pub renewable: bool,
    pub policies: Vec<String>,
}

/// The policy of one agent's token: sign with one PKI role, read its own KV subtree, and
/// look up and renew itself. Nothing else.
pub fn agent_policy(pki_mount: &str, pki_role: &str, kv_mount: &str, kv_path: &str) -> String {
    format!(
        "# Made by CMP for one agent.\n\
         path \"{pki_mount}/sign/{pki_role}\" {{\n  capabilities = [\"update\"]\n}}\n\
         path \"{kv_mount}/data/{kv_path}/*\" {{\n  capabilities = [\"read\"]\n}}\n\
         path \"auth/token/lookup-self\" {{\n  capabilities = [\"read\"]\n}}\n\
         path \"auth/token/renew-self\" {{\n  capabilities = [\"update\"]\n}}\n"
    )
}

impl VaultClient {
    /// Creates or replaces an ACL policy.
    pub async fn put_policy(&self, name: &str, rules: &str) -> Result<(), VaultError> {
        let body = json!({"policy": rules});
        self.call(Method::PUT, &format!("sys/policies/acl/{name}"), Some(&body)).await.map(|_| ())
    }

    /// Creates a token through a token role (which decides orphan, renewable, maximum TTL and
    /// which policies are allowed).
    pub async fn create_token(
        &self,
        token_role: &str,
        request: &TokenRequest,
    ) -> Result<IssuedToken, VaultError> {
        let body = json!({
            "policies": request.policies,
            "ttl": format!("{}s", request.ttl_secs),
            "display_name": request.display_name,
            "meta": request.meta,
        });
        let answer = self
            .call(Method::POST, &format!("auth/token/create/{token_role}"), Some(&body))
            .await?
            .unwrap_or_default();
        let auth = &answer["auth"];
        Ok(IssuedToken {
            token: Secret::new(field(auth, "/client_token")?),
            accessor: field(auth, "/accessor")?.to_string(),
            ttl_secs: auth["lease_duration"].as_i64().unwrap_or(0),
            renewable: auth["renewable"].as_bool().unwrap_or(false),
            policies: auth["policies"]
                .as_array()
                .map(|p| p.iter().filter_map(|v| v.as_str()).map(str::to_string).collect())
                .unwrap_or_default(),
        })
    }

    /// Revokes a token by its accessor (the token itself is never kept).
    pub async fn revoke_token_accessor(&self, accessor: &str) -> Result<(), VaultError> {
        let body = json!({"accessor": accessor});
        self.call(Method::POST, "auth/token/revoke-accessor", Some(&body)).await.map(|_| ())
    }
}
