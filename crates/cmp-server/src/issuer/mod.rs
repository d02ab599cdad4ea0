//! The issuer role: issuance requests, approvals, policies, managed certificates, revocation,
//! key downloads, and the renewal scheduler.

mod certificates;
mod managed;
mod policies;
mod requests;
pub mod scheduler;
pub mod service;
mod spec;
mod views;

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
