//! The adapter role: CA adapters (builtin, Vault PKI, ACME: configuration, status), signing and
//! revocation for the issuer role, Vault tokens for agents, and what the builtin CA publishes
//! (CRL, OCSP, CA certificate).

mod acme;
mod builtin;
mod directory;
mod handlers;
mod kind;
pub(crate) mod pki;
mod remote;
mod vault;

pub use acme::AcmeCas;
pub(crate) use builtin::ledger_row;
pub use builtin::{BUILTIN_KIND, BuiltinCas, DEFAULT_CA_NAME, ensure_default_ca};
pub use directory::{AdapterDirectory, LocalAdapters};
pub use kind::AdapterKind;
pub use remote::RemoteAdapters;
pub use vault::VaultPkis;

use cmp_ca::Usage;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::state::AppState;

/// A failed look-up of the adapter `id_or_name` as the CA layer says it: unknown (a 404), or
/// the database unavailable.
fn adapter_lookup_error(id_or_name: &str, e: cmp_store::StoreError) -> cmp_ca::CaError {
    match e {
        cmp_store::StoreError::NotFound { .. } => {
            cmp_ca::CaError::UnknownAdapter(id_or_name.to_string())
        }
        other => cmp_ca::CaError::Unavailable(other.to_string()),
    }
}

/// Routes of the adapter role.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::list, handlers::create))
        .routes(routes!(handlers::get, handlers::patch))
        .routes(routes!(handlers::status))
        .routes(routes!(handlers::sign))
        .routes(routes!(handlers::revoke))
        .routes(routes!(handlers::renewal_window))
        .routes(routes!(handlers::agent_token))
        .merge(pki_router())
}

/// What the builtin CA publishes without authentication (`/pki/<ca>/...`): also served alone
/// on `http.pki_listen`.
pub fn pki_router() -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::new()
        .routes(routes!(pki::crl))
        .routes(routes!(pki::ca_certificate))
        .routes(routes!(pki::chain))
        .routes(routes!(pki::ocsp_post))
        .route(pki::OCSP_GET_UNESCAPED, axum::routing::get(pki::ocsp_get));
    // OCSP over GET is documented with its one segment and served with the rest of the path
    // (the router cannot hold both).
    let (_, documented, _): UtoipaMethodRouter<AppState> = routes!(pki::ocsp_get);
    router.get_openapi_mut().paths.paths.extend(documented.paths);
    router
}

/// Writes a configured adapter's row; if that fails, deletes the secrets sealed for it (a
/// credential of an adapter that does not exist would only be clutter).
async fn store_adapter(
    store: &dyn cmp_store::Store,
    secrets: &dyn cmp_secrets::SecretStore,
    ctx: &cmp_store::AuditContext,
    new: &cmp_store::NewAdapter,
    sealed: &[String],
) -> crate::error::ApiResult<cmp_store::AdapterRecord> {
    match store.create_adapter(ctx, new).await {
        Ok(record) => Ok(record),
        Err(e) => {
            delete_secrets(secrets, sealed).await;
            Err(e.into())
        }
    }
}

/// Deletes secrets sealed for an adapter that is not made after all (best effort).
async fn delete_secrets(secrets: &dyn cmp_secrets::SecretStore, names: &[String]) {
    for name in names {
        let _ = secrets.delete(name).await;
    }
}

/// The wire name of a usage.
pub fn usage_name(usage: Usage) -> &'static str {
    match usage {
        Usage::ServerAuth => "server_auth",
        Usage::ClientAuth => "client_auth",
    }
}

/// A usage from its wire name.
pub fn parse_usage(name: &str) -> Option<Usage> {
    [Usage::ServerAuth, Usage::ClientAuth].into_iter().find(|u| usage_name(*u) == name)
}
