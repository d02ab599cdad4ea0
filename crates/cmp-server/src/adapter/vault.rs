//! Vault PKI adapters: their configuration (kept in `adapters.config`, no secrets), their
//! credentials (kept in the secret store), and the loaded, logged-in adapters.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use cmp_ca::{CaAdapter, CaError};
use cmp_ca_vault::{KIND, VaultPki, VaultPkiTarget, ca_error};
use cmp_domain::Clock;
use cmp_secrets::{SecretBytes, SecretStore};
use cmp_store::{AdapterRecord, AdapterUpdate, AuditContext, NewAdapter, Store};
use cmp_vault::{Credentials, Secret, VaultClient, VaultSettings};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::RwLock;
use zeroize::Zeroizing;

use super::builtin::SqlLedger;
use super::kind::AdapterKind;
use crate::error::{ApiError, ApiResult};

/// How a vault_pki adapter logs in, as stored (the token or secret id is not here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum StoredAuth {
    Token,
    Approle {
        #[serde(default = "default_approle_mount")]
        mount: String,
        role_id: String,
    },
}

fn default_approle_mount() -> String {
    "approle".into()
}

/// `adapters.config` of a vault_pki adapter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultAdapterConfig {
    pub address: String,
    #[serde(flatten)]
    pub target: VaultPkiTarget,
    #[serde(default)]
    pub namespace: Option<String>,
    /// PEM certificates to trust for Vault's TLS.
    #[serde(default)]
    pub ca_bundle: Option<String>,
    pub auth: StoredAuth,
}

/// The secret part, as given to the API and kept in the secret store.
#[derive(Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SecretPart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_id: Option<String>,
    /// Accepted with new AppRole credentials (a new role id comes with a new secret id); it
    /// goes to the stored config, never to the secret store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role_id: Option<String>,
}

impl Drop for SecretPart {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.token.zeroize();
        self.secret_id.zeroize();
    }
}

fn credentials_name(adapter_id: &str) -> String {
    format!("adapters/{adapter_id}/credentials")
}

/// A config error that never echoes a value (it may be a token): only serde's field-level
/// messages, which name fields, are passed on.
fn config_error(e: &serde_json::Error) -> ApiError {
    let text = e.to_string();
    let detail = if text.starts_with("unknown field") || text.starts_with("missing field") {
        text
    } else {
        "expected {address, role, mount?, namespace?, ca_bundle?, auth: {method: \"token\", \
         token} | {method: \"approle\", role_id, secret_id, mount?}}"
            .into()
    };
    ApiError::bad_field("config", detail)
}

/// Splits the API's `config` into what is stored and the secret.
fn split_config(mut config: Value) -> ApiResult<(VaultAdapterConfig, SecretPart)> {
    let auth = config.get_mut("auth").map(Value::take).unwrap_or(Value::Null);
    let Value::Object(mut auth) = auth else {
        return Err(ApiError::bad_field("config.auth", "an object with method"));
    };
    let secret = SecretPart {
        token: auth.remove("token").and_then(|v| v.as_str().map(str::to_string)),
        secret_id: auth.remove("secret_id").and_then(|v| v.as_str().map(str::to_string)),
        role_id: None,
    };
    if let Some(object) = config.as_object_mut() {
        object.insert("auth".into(), Value::Object(auth));
    }
    let stored: VaultAdapterConfig =
        serde_json::from_value(config).map_err(|e| config_error(&e))?;
    if cmp_vault::redacted_address(&stored.address) != stored.address {
        // Vault reads no credentials from the URL; one pasted there would be stored and shown.
        return Err(ApiError::bad_field(
            "config.address",
            "must be the server's address alone, without user:password@, a query or a fragment \
             (Vault authenticates with config.auth)",
        ));
    }
    let complete = match &stored.auth {
        StoredAuth::Token => secret.token.as_deref().is_some_and(|t| !t.is_empty()),
        StoredAuth::Approle { .. } => secret.secret_id.as_deref().is_some_and(|s| !s.is_empty()),
    };
    if !complete {
        return Err(ApiError::bad_field(
            "config.auth",
            "method token needs token; method approle needs role_id and secret_id",
        ));
    }
    Ok((stored, secret))
}

/// A client for an adapter's Vault with these credentials.
fn client(config: &VaultAdapterConfig, secret: &SecretPart) -> Result<VaultClient, CaError> {
    let mut settings = VaultSettings::new(&config.address);
    settings.namespace = config.namespace.clone();
    settings.ca_bundle_pem = config.ca_bundle.clone();
    let credentials = match &config.auth {
        StoredAuth::Token => {
            Credentials::Token(Secret::new(secret.token.clone().unwrap_or_default()))
        }
        StoredAuth::Approle { mount, role_id } => Credentials::AppRole {
            mount: mount.clone(),
            role_id: role_id.clone(),
            secret_id: Secret::new(secret.secret_id.clone().unwrap_or_default()),
        },
    };
    VaultClient::new(&settings, credentials).map_err(ca_error)
}

/// The vault_pki adapters of this process, loaded on first use.
pub struct VaultPkis {
    store: Arc<dyn Store>,
    secrets: Arc<dyn SecretStore>,
    clock: Arc<dyn Clock>,
    loaded: RwLock<HashMap<String, Arc<VaultPki>>>,
}

impl VaultPkis {
    pub fn new(
        store: Arc<dyn Store>,
        secrets: Arc<dyn SecretStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        VaultPkis { store, secrets, clock, loaded: RwLock::default() }
    }

    fn adapter(
        &self,
        id: &str,
        config: &VaultAdapterConfig,
        secret: &SecretPart,
    ) -> Result<Arc<VaultPki>, CaError> {
        let client = Arc::new(client(config, secret)?);
        client.spawn_renewal();
        let ledger = Arc::new(SqlLedger::new(self.store.clone()));
        Ok(Arc::new(VaultPki::new(id, client, config.target.clone(), ledger, self.clock.clone())?))
    }

    /// Configures a Vault PKI adapter after checking that Vault accepts the credentials and
    /// the role is readable; nothing is written when it does not.
    async fn create_checked(
        &self,
        ctx: &AuditContext,
        name: &str,
        config: Value,
    ) -> ApiResult<AdapterRecord> {
        let (stored, secret) = split_config(config)?;
        let id = uuid::Uuid::now_v7().to_string();
        let adapter = self.adapter(&id, &stored, &secret)?;
        adapter.check().await?;
        self.put_credentials(&id, &secret).await?;
        let new = NewAdapter {
            id: id.clone(),
            name: name.to_string(),
            kind: KIND.into(),
            config: config_value(&stored)?,
            has_credentials: true,
            material: None,
        };
        let sealed = [credentials_name(&id)];
        let record = super::store_adapter(&*self.store, &*self.secrets, ctx, &new, &sealed).await?;
        self.loaded.write().await.insert(id, adapter);
        Ok(record)
    }

    /// Replaces an adapter's credentials with checked ones.
    async fn rotate_checked(
        &self,
        ctx: &AuditContext,
        record: &AdapterRecord,
        credentials: Value,
    ) -> ApiResult<AdapterRecord> {
        let mut stored = stored_config(record)?;
        let secret: SecretPart = serde_json::from_value(credentials)
            .map_err(|_| ApiError::bad_field("credentials", "{token} or {secret_id, role_id?}"))?;
        match (&mut stored.auth, &secret) {
            (StoredAuth::Token, SecretPart { token: Some(_), secret_id: None, role_id: None }) => {}
            (
                StoredAuth::Approle { role_id, .. },
                SecretPart { token: None, secret_id: Some(_), role_id: new_role },
            ) => {
                if let Some(new_role) = new_role {
                    role_id.clone_from(new_role);
                }
            }
            _ => {
                return Err(ApiError::bad_field(
                    "credentials",
                    "a token for method token; secret_id (and role_id) for approle",
                ));
            }
        }
        let adapter = self.adapter(&record.id, &stored, &secret)?;
        adapter.check().await?;
        self.put_credentials(&record.id, &secret).await?;
        let update = AdapterUpdate {
            config: Some(config_value(&stored)?),
            has_credentials: Some(true),
            ..AdapterUpdate::default()
        };
        let record = self.store.update_adapter(ctx, &record.id, &update).await?;
        self.loaded.write().await.insert(record.id.clone(), adapter);
        Ok(record)
    }

    /// Seals the token or secret id (the role id is in the config, not here).
    async fn put_credentials(&self, adapter_id: &str, secret: &SecretPart) -> ApiResult<()> {
        let kept = SecretPart {
            token: secret.token.clone(),
            secret_id: secret.secret_id.clone(),
            role_id: None,
        };
        let serialized = Zeroizing::new(
            serde_json::to_vec(&kept).map_err(|e| ApiError::Internal(e.to_string()))?,
        );
        let name = credentials_name(adapter_id);
        self.secrets.put(&name, &SecretBytes::new(serialized.to_vec())).await?;
        Ok(())
    }

    /// The adapter of a vault_pki record, logged in on first use.
    pub async fn get(&self, record: &AdapterRecord) -> Result<Arc<VaultPki>, CaError> {
        if let Some(adapter) = self.loaded.read().await.get(&record.id).cloned() {
            return Ok(adapter);
        }
        let stored = stored_config(record).map_err(|e| CaError::Internal(e.to_string()))?;
        let bytes = self.secrets.get(&credentials_name(&record.id)).await.map_err(|e| {
            CaError::Unavailable(format!("credentials of adapter {}: {e}", record.name))
        })?;
        let secret: SecretPart = serde_json::from_slice(bytes.expose()).map_err(|_| {
            CaError::Internal(format!("credentials of adapter {} are unreadable", record.name))
        })?;
        let adapter = self.adapter(&record.id, &stored, &secret)?;
        let mut loaded = self.loaded.write().await;
        Ok(loaded.entry(record.id.clone()).or_insert(adapter).clone())
    }
}

#[async_trait]
impl AdapterKind for VaultPkis {
    fn name(&self) -> &'static str {
        KIND
    }

    async fn create(
        &self,
        ctx: &AuditContext,
        name: &str,
        config: Value,
    ) -> ApiResult<AdapterRecord> {
        self.create_checked(ctx, name, config).await
    }

    async fn rotate(
        &self,
        ctx: &AuditContext,
        record: &AdapterRecord,
        credentials: Value,
    ) -> ApiResult<AdapterRecord> {
        self.rotate_checked(ctx, record, credentials).await
    }

    async fn cached(&self, id_or_name: &str) -> Option<Arc<dyn CaAdapter>> {
        Some(self.loaded.read().await.get(id_or_name).cloned()?)
    }

    async fn load(&self, record: &AdapterRecord) -> Result<Arc<dyn CaAdapter>, CaError> {
        Ok(self.get(record).await?)
    }

    /// Vault's own CRL and OCSP of the mount (`<address>/v1/<mount>/crl`).
    fn published_url(&self, record: &AdapterRecord, what: &str) -> Option<String> {
        let config = stored_config(record).ok()?;
        let address = cmp_vault::redacted_address(&config.address);
        Some(format!("{}/v1/{}/{what}", address.trim_end_matches('/'), config.target.mount))
    }
}

fn config_value(stored: &VaultAdapterConfig) -> ApiResult<Value> {
    serde_json::to_value(stored).map_err(|e| ApiError::Internal(e.to_string()))
}

/// The stored config of a vault_pki record.
pub fn stored_config(record: &AdapterRecord) -> ApiResult<VaultAdapterConfig> {
    if record.kind != KIND {
        return Err(ApiError::Unprocessable {
            detail: format!("adapter {} is a {} adapter, not {KIND}", record.name, record.kind),
            errors: Vec::new(),
        });
    }
    serde_json::from_value(record.config.clone())
        .map_err(|e| ApiError::Internal(format!("config of adapter {}: {e}", record.name)))
}

/// The token role agent tokens are made through (see docs/VAULT.md).
pub const AGENT_TOKEN_ROLE: &str = "cmp-agent";

impl VaultPkis {
    /// A short-lived, renewable Vault token for one agent, on this adapter's Vault, made
    /// through token role [`AGENT_TOKEN_ROLE`]: policy `cmp-agent-<agent>` lets it sign with
    /// the adapter's role and read `<kv_mount>/data/<kv_prefix>/agents/<agent>/*`, nothing
    /// else.
    pub async fn agent_token(
        &self,
        record: &AdapterRecord,
        agent: &str,
        ttl_secs: i64,
        kv: (&str, &str),
    ) -> ApiResult<cmp_api::AgentToken> {
        stored_config(record)?;
        let adapter = self.get(record).await?;
        let (kv_mount, kv_prefix) = kv;
        let target = adapter.target();
        let policy = format!("cmp-agent-{agent}");
        let kv_path = format!("{kv_prefix}/agents/{agent}");
        let rules = cmp_vault::agent_policy(&target.mount, &target.role, kv_mount, &kv_path);
        let client = adapter.client();
        client.put_policy(&policy, &rules).await.map_err(ca_error)?;
        let request = cmp_vault::TokenRequest {
            policies: vec![policy.clone()],
            ttl_secs,
            display_name: policy.clone(),
            meta: [("cmp_agent".to_string(), agent.to_string())].into(),
        };
        let issued = client.create_token(AGENT_TOKEN_ROLE, &request).await.map_err(ca_error)?;
        Ok(cmp_api::AgentToken {
            token: issued.token,
            accessor: issued.accessor,
            ttl_secs: issued.ttl_secs,
            renewable: issued.renewable,
            policy,
            vault_address: client.shown_address().to_string(),
            sign_path: format!("{}/sign/{}", target.mount, target.role),
            kv_path: format!("{kv_mount}/data/{kv_path}/"),
        })
    }

    /// Revokes a token made by [`VaultPkis::agent_token`] (when its issuance cannot be audited).
    pub async fn revoke_agent_token(&self, record: &AdapterRecord, accessor: &str) {
        if let Ok(adapter) = self.get(record).await
            && let Err(e) = adapter.client().revoke_token_accessor(accessor).await
        {
            tracing::warn!(error = %e, "could not revoke an unaudited agent token");
        }
    }
}
