//! The inventory role: certificates, owners, locations, import and search, network discovery.

mod certificates;
pub mod discovery;
mod owners;
mod scans;
mod service;
mod stats;
pub mod views;

pub use discovery::Discovery;
pub(crate) use owners::optional_owner_id;
pub use service::{ImportInput, Inventory, InventoryError};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Routes of the inventory role.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(certificates::import))
        .routes(routes!(certificates::list))
        .routes(routes!(certificates::get, certificates::patch, certificates::delete))
        .routes(routes!(certificates::pem))
        .routes(routes!(owners::list, owners::create))
        .routes(routes!(owners::get, owners::patch, owners::delete))
        .routes(routes!(stats::overview))
        .routes(routes!(stats::expiry))
        .routes(routes!(certificates::export))
        .routes(routes!(scans::list, scans::create))
        .routes(routes!(scans::get, scans::patch, scans::delete))
        .routes(routes!(scans::run, scans::runs))
        .routes(routes!(scans::get_run))
        .routes(routes!(scans::cancel))
}
