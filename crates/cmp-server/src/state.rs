//! What every handler can reach.

use std::sync::Arc;

use cmp_domain::Clock;
use cmp_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::RoutePolicies;
use crate::config::Config;

/// Shared, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    pub clock: Arc<dyn Clock>,
    pub policies: Arc<RoutePolicies>,
    pub metrics: PrometheusHandle,
    /// This role's OpenAPI document.
    pub openapi: Arc<utoipa::openapi::OpenApi>,
}

impl AppState {
    /// Expiring window of the inventory, in seconds.
    pub fn expiry_window_secs(&self) -> i64 {
        self.config.inventory.expiry_window_days.saturating_mul(86_400)
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }
}
