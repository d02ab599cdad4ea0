//! The issuer role: issuance requests, approvals, policies, managed certificates, revocation,
//! key downloads, and the renewal scheduler. The workflow is [`Issuer`] (no HTTP in it); the
//! other modules are its routes.

mod certificates;
mod error;
mod managed;
mod policies;
mod requests;
pub mod scheduler;
mod spec;
mod views;
mod workflow;

pub use error::{IssueError, IssueResult};
pub use workflow::{Idempotency, Issuer, KeyFile};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Routes of the issuer role.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(requests::list, requests::create))
        .routes(routes!(requests::get))
        .routes(routes!(requests::approve))
        .routes(routes!(requests::reject))
        .routes(routes!(managed::list, managed::create))
        .routes(routes!(managed::get))
        .routes(routes!(managed::renew))
        .routes(routes!(certificates::revoke))
        .routes(routes!(certificates::key))
        .routes(routes!(policies::get, policies::put))
}
