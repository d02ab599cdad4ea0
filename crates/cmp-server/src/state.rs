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
    /// When the inventory gauges were last counted (counting a large inventory is a scan).
    pub gauges_counted_at: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

impl AppState {
    /// Microseconds since the epoch, now: the time stamp of audit events.
    pub fn now_us(&self) -> i64 {
        unix_micros(self.clock.now())
    }

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

/// Microseconds since the epoch.
pub fn unix_micros(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}
