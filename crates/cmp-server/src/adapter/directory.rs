//! How the issuer reaches the adapter of a request: [`AdapterDirectory`], answered in-process
//! by [`LocalAdapters`] (every kind this process serves) or over HTTP by `RemoteAdapters`.

use std::sync::Arc;

use async_trait::async_trait;
use cmp_acme::Http01Responder;
use cmp_ca::{CaAdapter, CaError};
use cmp_domain::Clock;
use cmp_secrets::SecretStore;
use cmp_store::Store;

use super::acme::AcmeCas;
use super::builtin::BuiltinCas;
use super::kind::AdapterKind;
use super::vault::VaultPkis;

/// Where the issuer finds the adapter of a request.
#[async_trait]
pub trait AdapterDirectory: Send + Sync {
    async fn adapter(&self, adapter_id: &str) -> Result<Arc<dyn CaAdapter>, CaError>;
}

/// The adapters this process runs, by kind.
pub struct LocalAdapters {
    /// Every kind, in the order loaded adapters are looked for (the builtin CA first: it
    /// signs most).
    kinds: Vec<Arc<dyn AdapterKind>>,
    /// The builtin CAs, for what only they do: CRL, OCSP and CA certificates under `/pki/`,
    /// and the CA made on first start.
    pub builtin: Arc<BuiltinCas>,
    /// The Vault PKI adapters, for what only they do: Vault tokens for agents.
    pub vault: Arc<VaultPkis>,
    store: Arc<dyn Store>,
}

impl LocalAdapters {
    /// Every kind this process serves: the one place kinds are registered. `public_url` is
    /// where builtin CAs publish; `http01` is CMP's ACME http-01 responder, if served.
    pub fn new(
        store: Arc<dyn Store>,
        secrets: Arc<dyn SecretStore>,
        clock: Arc<dyn Clock>,
        public_url: String,
        http01: Option<Arc<Http01Responder>>,
    ) -> Self {
        let builtin =
            Arc::new(BuiltinCas::new(store.clone(), secrets.clone(), clock.clone(), public_url));
        let vault = Arc::new(VaultPkis::new(store.clone(), secrets.clone(), clock.clone()));
        let acme = Arc::new(AcmeCas::new(store.clone(), secrets, clock, http01));
        let kinds: Vec<Arc<dyn AdapterKind>> = vec![builtin.clone(), vault.clone(), acme];
        LocalAdapters { kinds, builtin, vault, store }
    }

    /// The kind named `name`, if this process serves it.
    pub fn kind(&self, name: &str) -> Option<&dyn AdapterKind> {
        self.kinds.iter().find(|k| k.name() == name).map(|k| k.as_ref())
    }

    /// The names of the kinds this process serves.
    pub fn kind_names(&self) -> Vec<&'static str> {
        self.kinds.iter().map(|k| k.name()).collect()
    }
}

#[async_trait]
impl AdapterDirectory for LocalAdapters {
    async fn adapter(&self, id_or_name: &str) -> Result<Arc<dyn CaAdapter>, CaError> {
        for kind in &self.kinds {
            if let Some(adapter) = kind.cached(id_or_name).await {
                return Ok(adapter);
            }
        }
        let record = self
            .store
            .get_adapter(id_or_name)
            .await
            .map_err(|e| super::adapter_lookup_error(id_or_name, e))?;
        match self.kind(&record.kind) {
            Some(kind) => kind.load(&record).await,
            None => {
                Err(CaError::Refused(format!("adapter kind {} is not served here", record.kind)))
            }
        }
    }
}
