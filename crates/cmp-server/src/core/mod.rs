//! Routes every role serves: health, metrics, the OpenAPI document; and the shared
//! administration of tokens and the audit trail.

pub mod apidoc;
pub mod audit;
pub mod context;
pub mod locks;
pub mod ops;
pub mod tokens;
pub mod wire;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Whether `name` may name a resource (a scan, a rule): 1-100 letters, digits, `-`, `_` or
/// `.`, and not shaped like an id (lookups take either).
pub fn is_plain_name(name: &str) -> bool {
    (1..=100).contains(&name.chars().count())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && uuid::Uuid::parse_str(name).is_err()
}

/// Health, readiness, the OpenAPI document and (unless it has a listener of its own) metrics:
/// on every role.
pub fn ops_router(with_metrics: bool) -> OpenApiRouter<AppState> {
    let router = OpenApiRouter::new()
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::openapi));
    if with_metrics { router.routes(routes!(ops::metrics)) } else { router }
}

/// Tokens and audit (served with the inventory role).
pub fn admin_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(audit::list))
        .routes(routes!(audit::verify))
        .merge(crate::people::router())
}
