//! The issuer role: issuance requests, approvals, policies, managed certificates, revocation,
//! key downloads, the renewal scheduler, and the fleet of host agents that deploy them. The workflow is [`Issuer`] (no HTTP in it); the
//! other modules are its routes.

pub mod agents;
mod certificates;
mod dispatch;
mod error;
pub mod fleet;
mod managed;
mod policies;
mod requests;
pub mod scheduler;
mod spec;
mod views;
mod workflow;

pub use error::{IssueError, IssueResult};
pub use fleet::{Fleet, FleetError};
pub use workflow::{Idempotency, Issuer, KeyFile, Renewal};

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
        .routes(routes!(agents::create_bootstrap_token, agents::list_bootstrap_tokens))
        .routes(routes!(agents::revoke_bootstrap_token))
        .routes(routes!(agents::enroll))
        .routes(routes!(agents::list))
        .routes(routes!(agents::get, agents::delete))
        .routes(routes!(agents::disable))
        .routes(routes!(agents::enable))
        .routes(routes!(agents::renew_identity))
        .routes(routes!(agents::heartbeat))
        .routes(routes!(agents::next_job))
        .routes(routes!(agents::release_jobs))
        .routes(routes!(agents::job_result))
        .routes(routes!(agents::job_csr))
        .routes(routes!(agents::job_discovery))
        .routes(routes!(agents::discover))
        .routes(routes!(agents::deployments, agents::set_deployments))
}
