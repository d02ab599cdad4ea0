//! The builtin CAs of this installation: made on first start (or through the API), their keys
//! in the secret store, loaded once per process and kept ready to sign.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use cmp_ca::{CaAdapter, CaError, RevocationReason};
use cmp_ca::{CaLedger, LedgerEntry};
use cmp_ca_builtin::{BuiltinCa, BuiltinConfig, CaMaterial, KeyAlgorithm};
use cmp_domain::Clock;
use cmp_secrets::{SecretBytes, SecretStore};
use cmp_store::{
    AdapterRecord, AuditContext, CaCertificates, LedgerRevoke, LedgerRow, NewAdapter, Store,
};
use tokio::sync::RwLock;

use super::kind::AdapterKind;
use crate::config::CaConfig;
use crate::error::{ApiError, ApiResult};

/// Kind name of the builtin CA in the `adapters` table.
pub const BUILTIN_KIND: &str = "builtin";
/// Name of the CA made on first start.
pub const DEFAULT_CA_NAME: &str = "builtin";

fn root_key_name(adapter_id: &str) -> String {
    format!("ca/{adapter_id}/root-key")
}

fn issuing_key_name(adapter_id: &str) -> String {
    format!("ca/{adapter_id}/issuing-key")
}

fn unavailable(e: impl std::fmt::Display) -> CaError {
    CaError::Unavailable(e.to_string())
}

/// The builtin CAs, loaded on first use.
pub struct BuiltinCas {
    store: Arc<dyn Store>,
    secrets: Arc<dyn SecretStore>,
    clock: Arc<dyn Clock>,
    public_url: String,
    loaded: RwLock<HashMap<String, Arc<BuiltinCa>>>,
}

impl BuiltinCas {
    pub fn new(
        store: Arc<dyn Store>,
        secrets: Arc<dyn SecretStore>,
        clock: Arc<dyn Clock>,
        public_url: String,
    ) -> Self {
        BuiltinCas { store, secrets, clock, public_url, loaded: RwLock::default() }
    }

    /// Where a CA publishes, under the public URL.
    pub fn url(&self, name: &str, what: &str) -> String {
        format!("{}/pki/{name}/{what}", self.public_url.trim_end_matches('/'))
    }

    /// Creates a builtin CA: its material, its keys in the secret store, its adapter row.
    pub async fn create_ca(
        &self,
        ctx: &AuditContext,
        name: &str,
        config: BuiltinConfig,
    ) -> ApiResult<AdapterRecord> {
        let now = self.clock.now();
        let config = BuiltinConfig { base_url: self.public_url.clone(), ..config };
        let for_material = config.clone();
        let material = tokio::task::spawn_blocking(move || {
            cmp_ca_builtin::create_material(&for_material, now)
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
        let id = uuid::Uuid::now_v7().to_string();
        self.secrets
            .put(&root_key_name(&id), &SecretBytes::new(material.root_key_pkcs8.to_vec()))
            .await?;
        self.secrets
            .put(&issuing_key_name(&id), &SecretBytes::new(material.issuing_key_pkcs8.to_vec()))
            .await?;
        let new = NewAdapter {
            id: id.clone(),
            name: name.to_string(),
            kind: BUILTIN_KIND.into(),
            config: serde_json::to_value(&config).map_err(|e| ApiError::Internal(e.to_string()))?,
            has_credentials: false,
            material: Some(CaCertificates {
                root_der: material.root_der.clone(),
                issuing_der: material.issuing_der.clone(),
            }),
        };
        match self.store.create_adapter(ctx, &new).await {
            Ok(record) => Ok(record),
            Err(e) => {
                // Keys of a CA that does not exist would only be clutter.
                let _ = self.secrets.delete(&root_key_name(&id)).await;
                let _ = self.secrets.delete(&issuing_key_name(&id)).await;
                Err(e.into())
            }
        }
    }

    /// A builtin CA this process has loaded, by adapter id or name.
    async fn loaded(&self, id_or_name: &str) -> Option<Arc<BuiltinCa>> {
        self.loaded.read().await.get(id_or_name).cloned()
    }

    /// A loaded builtin CA by adapter id or name.
    pub async fn get(&self, id_or_name: &str) -> Result<Arc<BuiltinCa>, CaError> {
        if let Some(ca) = self.loaded(id_or_name).await {
            return Ok(ca);
        }
        let record = self
            .store
            .get_adapter(id_or_name)
            .await
            .map_err(|e| super::adapter_lookup_error(id_or_name, e))?;
        if record.kind != BUILTIN_KIND {
            return Err(CaError::Refused(format!("adapter {} is not a builtin CA", record.name)));
        }
        let certificates = self.store.get_ca_certificates(&record.id).await.map_err(unavailable)?;
        let root_key = self.secrets.get(&root_key_name(&record.id)).await.map_err(unavailable)?;
        let issuing_key =
            self.secrets.get(&issuing_key_name(&record.id)).await.map_err(unavailable)?;
        let material = CaMaterial {
            root_der: certificates.root_der,
            issuing_der: certificates.issuing_der,
            root_key_pkcs8: root_key.expose().to_vec().into(),
            issuing_key_pkcs8: issuing_key.expose().to_vec().into(),
        };
        let ledger = Arc::new(SqlLedger::new(self.store.clone()));
        let ca = Arc::new(BuiltinCa::new(
            record.id.clone(),
            record.name.clone(),
            &material,
            self.public_url.clone(),
            ledger,
            self.clock.clone(),
        )?);
        let mut loaded = self.loaded.write().await;
        loaded.insert(record.id.clone(), ca.clone());
        loaded.insert(record.name.clone(), ca.clone());
        Ok(ca)
    }
}

#[async_trait]
impl AdapterKind for BuiltinCas {
    fn name(&self) -> &'static str {
        BUILTIN_KIND
    }

    /// A new root and issuing CA under `config` (`BuiltinConfig`; empty: the defaults).
    async fn create(
        &self,
        ctx: &AuditContext,
        name: &str,
        config: serde_json::Value,
    ) -> ApiResult<AdapterRecord> {
        let config = if config.is_null() { serde_json::json!({}) } else { config };
        let config: BuiltinConfig = serde_json::from_value(config)
            .map_err(|e| ApiError::bad_field("config", e.to_string()))?;
        let lifetimes_ok = config.root_validity_days > 0
            && (1..=config.root_validity_days).contains(&config.issuing_validity_days);
        if !lifetimes_ok || config.common_name.is_empty() || config.common_name.len() > 50 {
            return Err(ApiError::bad_field(
                "config",
                "common_name of 1-50 characters; 0 < issuing_validity_days <= root_validity_days",
            ));
        }
        self.create_ca(ctx, name, config).await
    }

    async fn cached(&self, id_or_name: &str) -> Option<Arc<dyn CaAdapter>> {
        Some(self.loaded(id_or_name).await?)
    }

    async fn load(&self, record: &AdapterRecord) -> Result<Arc<dyn CaAdapter>, CaError> {
        Ok(self.get(&record.id).await?)
    }

    fn published_url(&self, record: &AdapterRecord, what: &str) -> Option<String> {
        Some(self.url(&record.name, what))
    }
}

/// Makes the default builtin CA on first start; returns its adapter record.
pub async fn ensure_default_ca(
    cas: &BuiltinCas,
    store: &dyn Store,
    config: &CaConfig,
    now_us: i64,
) -> anyhow::Result<AdapterRecord> {
    if let Ok(existing) = store.get_adapter(DEFAULT_CA_NAME).await {
        return Ok(existing);
    }
    let key_algorithm: KeyAlgorithm = serde_json::from_value(serde_json::json!(
        config.key_algorithm
    ))
    .map_err(|_| {
        anyhow::anyhow!(
            "ca.key_algorithm {:?} is not one of ecdsa_p256, ecdsa_p384, rsa2048, rsa3072, rsa4096",
            config.key_algorithm
        )
    })?;
    let builtin = BuiltinConfig {
        key_algorithm,
        common_name: config.common_name.clone(),
        ..BuiltinConfig::default()
    };
    let ctx = AuditContext { actor: "system".into(), request_id: None, now_us };
    cas.create_ca(&ctx, DEFAULT_CA_NAME, builtin)
        .await
        .map_err(|e| anyhow::anyhow!("while creating the builtin CA: {e}"))
}

/// An adapter's ledger, in the database (`ca_ledger`).
pub(super) struct SqlLedger {
    store: Arc<dyn Store>,
}

impl SqlLedger {
    pub(super) fn new(store: Arc<dyn Store>) -> SqlLedger {
        SqlLedger { store }
    }
}

/// The ledger row of a newly issued certificate, as the store keeps it.
pub(crate) fn ledger_row(entry: LedgerEntry) -> LedgerRow {
    LedgerRow {
        ca_id: entry.ca_id,
        serial: entry.serial,
        request_id: entry.request_id,
        der: entry.certificate_der,
        not_after: entry.not_after,
        revoked_at: None,
        revocation_reason: None,
    }
}

fn entry_of(row: LedgerRow) -> LedgerEntry {
    LedgerEntry {
        ca_id: row.ca_id,
        serial: row.serial,
        request_id: row.request_id,
        certificate_der: row.der,
        not_after: row.not_after,
        revoked_at: row.revoked_at,
        revocation_reason: row.revocation_reason.as_deref().and_then(RevocationReason::parse),
    }
}

#[async_trait]
impl CaLedger for SqlLedger {
    async fn find_by_request(
        &self,
        ca_id: &str,
        request_id: &str,
    ) -> Result<Option<LedgerEntry>, CaError> {
        let row =
            self.store.ledger_find_by_request(ca_id, request_id).await.map_err(unavailable)?;
        Ok(row.map(entry_of))
    }

    async fn record_issued(&self, entry: &LedgerEntry) -> Result<LedgerEntry, CaError> {
        let row = ledger_row(entry.clone());
        Ok(entry_of(self.store.ledger_record(&row).await.map_err(unavailable)?))
    }

    async fn find_by_serial(
        &self,
        ca_id: &str,
        serial: &str,
    ) -> Result<Option<LedgerEntry>, CaError> {
        let row = self.store.ledger_find_by_serial(ca_id, serial).await.map_err(unavailable)?;
        Ok(row.map(entry_of))
    }

    async fn revoke(
        &self,
        ca_id: &str,
        serial: &str,
        reason: RevocationReason,
        at: i64,
    ) -> Result<(), CaError> {
        match self
            .store
            .ledger_revoke(ca_id, serial, reason.as_str(), at)
            .await
            .map_err(unavailable)?
        {
            LedgerRevoke::Revoked => Ok(()),
            LedgerRevoke::AlreadyRevoked => Err(CaError::AlreadyRevoked(serial.to_string())),
            LedgerRevoke::Unknown => Err(CaError::UnknownSerial(serial.to_string())),
        }
    }

    async fn revoked(&self, ca_id: &str, now: i64) -> Result<Vec<LedgerEntry>, CaError> {
        let rows = self.store.ledger_revoked(ca_id, now).await.map_err(unavailable)?;
        Ok(rows.into_iter().map(entry_of).collect())
    }
}
