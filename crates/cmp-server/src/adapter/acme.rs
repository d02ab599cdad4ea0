//! ACME adapters: their configuration (kept in `adapters.config`, no secrets), their account
//! (registered when the adapter is created; its key, the EAB HMAC and the DNS providers'
//! credentials kept in the secret store), the order journal on the database, and the loaded
//! adapters.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use cmp_acme::{
    AcmeClient, AcmeSettings, Eab, Http01Responder, ProviderSecret, SolverConfig, Solvers,
};
use cmp_ca::{CaAdapter, CaError};
use cmp_ca_acme::{AcmeCa, KIND, OrderJournal, ca_error};
use cmp_domain::{Clock, Secret};
use cmp_secrets::{SecretBytes, SecretStore};
use cmp_store::{AdapterRecord, AuditContext, NewAdapter, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::RwLock;
use zeroize::Zeroizing;

use super::builtin::SqlLedger;
use super::kind::AdapterKind;
use crate::error::{ApiError, ApiResult};

/// `adapters.config` of an acme adapter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeAdapterConfig {
    pub directory_url: String,
    #[serde(default)]
    pub contact_email: Option<String>,
    /// PEM certificates to trust for the directory's TLS, besides the system's.
    #[serde(default)]
    pub ca_bundle: Option<String>,
    /// The CA's certificate profile, where it offers profiles.
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default = "default_order_timeout")]
    pub order_timeout_secs: u64,
    /// Ask for the requested lifetime with `notAfter` in each order (default true). Set false
    /// for a CA that refuses it (Let's Encrypt today; CMP also falls back by itself when the
    /// CA refuses `notAfter` as malformed).
    #[serde(default = "default_send_not_after")]
    pub send_not_after: bool,
    /// Which challenge proves which names, first match wins.
    pub solvers: Vec<SolverConfig>,
    /// The EAB key id the account was bound with (its HMAC is in the secret store).
    #[serde(default)]
    pub eab_key_id: Option<String>,
    /// The account's URL at the CA; set when the account is registered.
    #[serde(default)]
    pub account_url: Option<String>,
}

fn default_order_timeout() -> u64 {
    90
}

fn default_send_not_after() -> bool {
    true
}

impl AcmeAdapterConfig {
    fn settings(&self) -> AcmeSettings {
        AcmeSettings {
            directory_url: self.directory_url.clone(),
            contact_email: self.contact_email.clone(),
            ca_bundle: self.ca_bundle.clone(),
            profile: self.profile.clone(),
            order_timeout_secs: self.order_timeout_secs,
            send_not_after: self.send_not_after,
        }
    }
}

/// The External Account Binding as given to the API.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EabInput {
    key_id: String,
    hmac_key: String,
}

fn account_name(adapter_id: &str) -> String {
    format!("adapters/{adapter_id}/acme-account")
}

fn eab_name(adapter_id: &str) -> String {
    format!("adapters/{adapter_id}/eab-hmac")
}

fn solver_secrets_name(adapter_id: &str) -> String {
    format!("adapters/{adapter_id}/solver-secrets")
}

/// DNS provider credentials by solver index, as kept in the secret store.
type SolverSecrets = BTreeMap<usize, ProviderSecret>;

/// Takes the DNS providers' credentials out of the solvers.
fn take_solver_secrets(solvers: &mut [SolverConfig]) -> SolverSecrets {
    solvers
        .iter_mut()
        .enumerate()
        .filter_map(|(i, s)| Some((i, s.provider_mut()?.take_secret()?)))
        .collect()
}

/// A config error that never echoes a value (the HMAC key may be in it).
fn config_error(e: &serde_json::Error) -> ApiError {
    let text = e.to_string();
    let detail = if text.starts_with("unknown field") || text.starts_with("missing field") {
        text
    } else {
        "expected {directory_url, solvers: [{challenge: \"http-01\" | \"dns-01\", ...}], \
         contact_email?, ca_bundle?, profile?, order_timeout_secs?, eab?: {key_id, hmac_key}}"
            .into()
    };
    ApiError::bad_field("config", detail)
}

/// Splits the API's `config` into what is stored and the EAB key.
fn split_config(mut config: Value) -> ApiResult<(AcmeAdapterConfig, Option<Eab>)> {
    let eab = match config.as_object_mut().and_then(|o| o.remove("eab")) {
        None | Some(Value::Null) => None,
        Some(eab) => {
            let eab: EabInput = serde_json::from_value(eab).map_err(|_| {
                ApiError::bad_field("config.eab", "an object {key_id, hmac_key (base64url)}")
            })?;
            Some(Eab { key_id: eab.key_id, hmac_key: Secret::new(eab.hmac_key) })
        }
    };
    for server_set in ["config.eab_key_id", "config.account_url"] {
        let field = server_set.trim_start_matches("config.");
        if config.get(field).is_some() {
            return Err(ApiError::bad_field(server_set, "is set by CMP, not given"));
        }
    }
    let mut stored: AcmeAdapterConfig =
        serde_json::from_value(config).map_err(|e| config_error(&e))?;
    stored.eab_key_id = eab.as_ref().map(|e| e.key_id.clone());
    Ok((stored, eab))
}

/// The order journal on the database (`acme_orders`).
pub struct SqlJournal {
    store: Arc<dyn Store>,
}

#[async_trait]
impl OrderJournal for SqlJournal {
    async fn find(&self, ca_id: &str, request_id: &str) -> Result<Option<String>, CaError> {
        self.store
            .acme_order_find(ca_id, request_id)
            .await
            .map_err(|e| CaError::Unavailable(e.to_string()))
    }

    async fn record(&self, ca_id: &str, request_id: &str, url: &str) -> Result<String, CaError> {
        self.store
            .acme_order_record(ca_id, request_id, url)
            .await
            .map_err(|e| CaError::Unavailable(e.to_string()))
    }
}

/// The acme adapters of this process, loaded on first use.
pub struct AcmeCas {
    store: Arc<dyn Store>,
    secrets: Arc<dyn SecretStore>,
    clock: Arc<dyn Clock>,
    /// CMP's http-01 responder, when `acme.http01_listen` is set.
    http01: Option<Arc<Http01Responder>>,
    loaded: RwLock<HashMap<String, Arc<AcmeCa>>>,
}

impl AcmeCas {
    pub fn new(
        store: Arc<dyn Store>,
        secrets: Arc<dyn SecretStore>,
        clock: Arc<dyn Clock>,
        http01: Option<Arc<Http01Responder>>,
    ) -> Self {
        AcmeCas { store, secrets, clock, http01, loaded: RwLock::default() }
    }

    fn adapter(&self, id: &str, solvers: Solvers, client: AcmeClient) -> Arc<AcmeCa> {
        Arc::new(AcmeCa::new(
            id,
            Arc::new(client),
            Arc::new(solvers),
            Arc::new(SqlLedger::new(self.store.clone())),
            Arc::new(SqlJournal { store: self.store.clone() }),
            self.clock.clone(),
        ))
    }

    /// Seals the account, the EAB HMAC and the DNS credentials; on failure removes what it
    /// sealed.
    async fn put_secrets(
        &self,
        id: &str,
        account: &[u8],
        eab: Option<&Eab>,
        solver_secrets: &SolverSecrets,
    ) -> ApiResult<()> {
        let mut sealed: Vec<String> = Vec::new();
        let mut parts = vec![(account_name(id), account.to_vec())];
        if let Some(eab) = eab {
            parts.push((eab_name(id), eab.hmac_key.expose().as_bytes().to_vec()));
        }
        if !solver_secrets.is_empty() {
            let json = Zeroizing::new(
                serde_json::to_vec(solver_secrets)
                    .map_err(|e| ApiError::Internal(e.to_string()))?,
            );
            parts.push((solver_secrets_name(id), json.to_vec()));
        }
        for (name, bytes) in parts {
            if let Err(e) = self.secrets.put(&name, &SecretBytes::new(bytes)).await {
                super::delete_secrets(&*self.secrets, &sealed).await;
                return Err(e.into());
            }
            sealed.push(name);
        }
        Ok(())
    }

    /// Configures an ACME adapter: checks the solvers, registers the account at the CA (with
    /// the EAB key when given), seals the account key, then writes the adapter. Nothing is
    /// written when the CA refuses.
    async fn register(
        &self,
        ctx: &AuditContext,
        name: &str,
        config: Value,
    ) -> ApiResult<AdapterRecord> {
        let (mut stored, eab) = split_config(config)?;
        let solvers = Solvers::new(&stored.solvers, self.http01.as_ref()).map_err(ca_error)?;
        let solver_secrets = take_solver_secrets(&mut stored.solvers);
        let (client, credentials) =
            AcmeClient::register(&stored.settings(), eab.as_ref(), self.clock.clone())
                .await
                .map_err(ca_error)?;
        stored.account_url = Some(client.account_url().to_string());
        let id = uuid::Uuid::now_v7().to_string();
        let adapter = self.adapter(&id, solvers, client);
        self.put_secrets(&id, credentials.as_bytes(), eab.as_ref(), &solver_secrets).await?;
        let new = NewAdapter {
            id: id.clone(),
            name: name.to_string(),
            kind: KIND.into(),
            config: serde_json::to_value(&stored).map_err(|e| ApiError::Internal(e.to_string()))?,
            has_credentials: true,
            material: None,
        };
        let sealed = [account_name(&id), eab_name(&id), solver_secrets_name(&id)];
        let record = super::store_adapter(&*self.store, &*self.secrets, ctx, &new, &sealed).await?;
        self.loaded.write().await.insert(id, adapter);
        Ok(record)
    }

    /// The adapter of an acme record, its account restored on first use.
    async fn get(&self, record: &AdapterRecord) -> Result<Arc<AcmeCa>, CaError> {
        if let Some(adapter) = self.loaded.read().await.get(&record.id).cloned() {
            return Ok(adapter);
        }
        let mut stored: AcmeAdapterConfig = serde_json::from_value(record.config.clone())
            .map_err(|e| CaError::Internal(format!("config of adapter {}: {e}", record.name)))?;
        let unreadable =
            || CaError::Internal(format!("secrets of adapter {} are unreadable", record.name));
        match self.secrets.get(&solver_secrets_name(&record.id)).await {
            Ok(bytes) => {
                let secrets: SolverSecrets =
                    serde_json::from_slice(bytes.expose()).map_err(|_| unreadable())?;
                for (index, secret) in secrets {
                    if let Some(provider) =
                        stored.solvers.get_mut(index).and_then(SolverConfig::provider_mut)
                    {
                        provider.set_secret(secret);
                    }
                }
            }
            Err(cmp_secrets::SecretError::NotFound(_)) => {}
            Err(e) => {
                return Err(CaError::Unavailable(format!(
                    "DNS credentials of adapter {}: {e}",
                    record.name
                )));
            }
        }
        let credentials = self.secrets.get(&account_name(&record.id)).await.map_err(|e| {
            CaError::Unavailable(format!("ACME account of adapter {}: {e}", record.name))
        })?;
        let credentials = std::str::from_utf8(credentials.expose()).map_err(|_| unreadable())?;
        let solvers = Solvers::new(&stored.solvers, self.http01.as_ref()).map_err(ca_error)?;
        let client = AcmeClient::restore(&stored.settings(), credentials, self.clock.clone())
            .await
            .map_err(ca_error)?;
        let adapter = self.adapter(&record.id, solvers, client);
        let mut loaded = self.loaded.write().await;
        Ok(loaded.entry(record.id.clone()).or_insert(adapter).clone())
    }
}

#[async_trait]
impl AdapterKind for AcmeCas {
    fn name(&self) -> &'static str {
        KIND
    }

    async fn create(
        &self,
        ctx: &AuditContext,
        name: &str,
        config: Value,
    ) -> ApiResult<AdapterRecord> {
        self.register(ctx, name, config).await
    }

    async fn cached(&self, id_or_name: &str) -> Option<Arc<dyn CaAdapter>> {
        Some(self.loaded.read().await.get(id_or_name).cloned()?)
    }

    async fn load(&self, record: &AdapterRecord) -> Result<Arc<dyn CaAdapter>, CaError> {
        Ok(self.get(record).await?)
    }
}
