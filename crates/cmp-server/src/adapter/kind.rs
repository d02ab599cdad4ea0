//! The adapter-kind registry: one [`AdapterKind`] per kind of CA (builtin, Vault PKI, ACME),
//! registered in [`super::LocalAdapters::new`] and nowhere else. Creating, loading, rotating
//! credentials and the published URLs of an adapter all go through its kind; adding a kind
//! (PKCS#11, a cloud CA) is a crate on `cmp-ca`, a module here that implements this trait,
//! and one registration line.

use std::sync::Arc;

use async_trait::async_trait;
use cmp_ca::{CaAdapter, CaError};
use cmp_store::{AdapterRecord, AuditContext};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// One kind of CA adapter, as this process configures and loads it.
#[async_trait]
pub trait AdapterKind: Send + Sync {
    /// The kind's name in the `adapters` table and the API (`builtin`, `vault_pki`, `acme`).
    fn name(&self) -> &'static str;

    /// Configures a new adapter of this kind from the API's `config`: checked (against the
    /// CA where it can be reached), its secrets sealed, its row written with an audit event.
    /// Nothing is kept when it fails.
    async fn create(
        &self,
        ctx: &AuditContext,
        name: &str,
        config: Value,
    ) -> ApiResult<AdapterRecord>;

    /// Replaces an adapter's credentials with checked ones. Default: the kind has none.
    async fn rotate(
        &self,
        _ctx: &AuditContext,
        record: &AdapterRecord,
        _credentials: Value,
    ) -> ApiResult<AdapterRecord> {
        Err(ApiError::Unprocessable {
            detail: format!(
                "adapter {} is a {} adapter, which takes no credentials",
                record.name, record.kind
            ),
            errors: Vec::new(),
        })
    }

    /// An adapter of this kind that this process has loaded, by id or name.
    async fn cached(&self, id_or_name: &str) -> Option<Arc<dyn CaAdapter>>;

    /// The adapter of `record`, loaded (credentials read, logged in) on first use.
    async fn load(&self, record: &AdapterRecord) -> Result<Arc<dyn CaAdapter>, CaError>;

    /// Where the adapter's CA publishes `what` (`crl` or `ocsp`), for its view; `None` when
    /// the kind does not say.
    fn published_url(&self, _record: &AdapterRecord, _what: &str) -> Option<String> {
        None
    }
}
