//! How the issuer reaches the adapter of a request: [`AdapterDirectory`], answered in-process
//! by [`LocalAdapters`] (every kind this process serves) or over HTTP by `RemoteAdapters`.

use std::sync::Arc;

use async_trait::async_trait;
use cmp_ca::{CaAdapter, CaError};
use cmp_store::{Store, StoreError};

use super::acme::AcmeCas;
use super::builtin::{BUILTIN_KIND, BuiltinCas};
use super::vault::VaultPkis;

/// Where the issuer finds the adapter of a request.
#[async_trait]
pub trait AdapterDirectory: Send + Sync {
    async fn adapter(&self, adapter_id: &str) -> Result<Arc<dyn CaAdapter>, CaError>;
}

/// The adapters this process runs: builtin CAs, Vault PKI roles and ACME accounts.
pub struct LocalAdapters {
    pub builtin: Arc<BuiltinCas>,
    pub vault: Arc<VaultPkis>,
    pub acme: Arc<AcmeCas>,
    store: Arc<dyn Store>,
}

impl LocalAdapters {
    pub fn new(
        store: Arc<dyn Store>,
        builtin: Arc<BuiltinCas>,
        vault: Arc<VaultPkis>,
        acme: Arc<AcmeCas>,
    ) -> Self {
        LocalAdapters { builtin, vault, acme, store }
    }
}

#[async_trait]
impl AdapterDirectory for LocalAdapters {
    async fn adapter(&self, id_or_name: &str) -> Result<Arc<dyn CaAdapter>, CaError> {
        if let Some(ca) = self.builtin.cached(id_or_name).await {
            return Ok(ca);
        }
        if let Some(vault) = self.vault.cached(id_or_name).await {
            return Ok(vault);
        }
        if let Some(acme) = self.acme.cached(id_or_name).await {
            return Ok(acme);
        }
        let record = self.store.get_adapter(id_or_name).await.map_err(|e| match e {
            StoreError::NotFound { .. } => CaError::Refused(format!("no adapter {id_or_name}")),
            other => CaError::Unavailable(other.to_string()),
        })?;
        match record.kind.as_str() {
            BUILTIN_KIND => Ok(self.builtin.get(&record.id).await?),
            cmp_ca_vault::KIND => Ok(self.vault.get(&record).await?),
            cmp_ca_acme::KIND => Ok(self.acme.get(&record).await?),
            other => Err(CaError::Refused(format!("adapter kind {other} is not served here"))),
        }
    }
}
