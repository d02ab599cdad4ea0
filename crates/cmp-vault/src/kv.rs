//! KV version 2, and the secret store on it: with `secrets.backend = "vault"` private keys and
//! credentials live only in Vault.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cmp_secrets::{SecretBytes, SecretError, SecretStore, validate_name};
use reqwest::Method;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::{VaultClient, VaultError, check_path_segment};

impl VaultClient {
    /// Writes a new version of `path`; returns its version number.
    pub async fn kv_put(&self, mount: &str, path: &str, data: &Value) -> Result<u64, VaultError> {
        let answer = self
            .call(Method::POST, &format!("{mount}/data/{path}"), Some(&json!({"data": data})))
            .await?
            .unwrap_or_default();
        Ok(answer["data"]["version"].as_u64().unwrap_or(0))
    }

    /// The latest version's data, or `None` if there is none (never written, or destroyed).
    pub async fn kv_get(&self, mount: &str, path: &str) -> Result<Option<Value>, VaultError> {
        match self.call(Method::GET, &format!("{mount}/data/{path}"), None).await {
            Ok(answer) => Ok(answer.map(|mut a| a["data"]["data"].take()).filter(|d| !d.is_null())),
            Err(VaultError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Destroys every version of `path` and its metadata.
    pub async fn kv_destroy(&self, mount: &str, path: &str) -> Result<(), VaultError> {
        match self.call(Method::DELETE, &format!("{mount}/metadata/{path}"), None).await {
            Ok(_) | Err(VaultError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// [`SecretStore`] on KV v2: secret `name` is `<mount>/data/<prefix>/<name>`, its bytes base64
/// in field `value`. Every put is a new version; delete destroys all versions.
pub struct VaultKvStore {
    client: Arc<VaultClient>,
    mount: String,
    prefix: String,
}

impl VaultKvStore {
    pub fn new(client: Arc<VaultClient>, mount: &str, prefix: &str) -> Result<Self, VaultError> {
        check_path_segment("kv mount", mount, true)?;
        check_path_segment("kv prefix", prefix, true)?;
        Ok(VaultKvStore { client, mount: mount.to_string(), prefix: prefix.to_string() })
    }

    fn path(&self, name: &str) -> Result<String, SecretError> {
        validate_name(name)?;
        Ok(format!("{}/{name}", self.prefix))
    }
}

fn secret_error(name: &str, e: VaultError) -> SecretError {
    match e {
        VaultError::NotFound(_) => SecretError::NotFound(name.to_string()),
        VaultError::Protocol(why) => SecretError::Corrupt(format!("{name}: {why}")),
        other => SecretError::Unavailable(format!("{name}: {other}")),
    }
}

#[async_trait]
impl SecretStore for VaultKvStore {
    async fn put(&self, name: &str, value: &SecretBytes) -> Result<(), SecretError> {
        let path = self.path(name)?;
        let encoded = Zeroizing::new(STANDARD.encode(value.expose()));
        let data = json!({"value": encoded.as_str()});
        self.client.kv_put(&self.mount, &path, &data).await.map_err(|e| secret_error(name, e))?;
        Ok(())
    }

    async fn get(&self, name: &str) -> Result<SecretBytes, SecretError> {
        let path = self.path(name)?;
        let data = self
            .client
            .kv_get(&self.mount, &path)
            .await
            .map_err(|e| secret_error(name, e))?
            .ok_or_else(|| SecretError::NotFound(name.to_string()))?;
        let encoded = data["value"]
            .as_str()
            .ok_or_else(|| SecretError::Corrupt(format!("{name}: no value field")))?;
        STANDARD
            .decode(encoded)
            .map(SecretBytes::new)
            .map_err(|_| SecretError::Corrupt(format!("{name}: value is not base64")))
    }

    async fn delete(&self, name: &str) -> Result<(), SecretError> {
        let path = self.path(name)?;
        self.client.kv_destroy(&self.mount, &path).await.map_err(|e| secret_error(name, e))
    }

    async fn check(&self) -> Result<(), SecretError> {
        self.client
            .check()
            .await
            .map_err(|e| SecretError::Unavailable(format!("Vault KV at {}: {e}", self.mount)))
    }

    fn backend(&self) -> &'static str {
        "vault"
    }
}
