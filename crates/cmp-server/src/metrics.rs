//! Prometheus metrics: the process-wide recorder, HTTP request metrics, inventory gauges.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The recorder's handle, installing the recorder on first use (once per process, so that
/// several app instances in one test process share it).
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0],
                )
                .and_then(|b| {
                    // CAs range from a local signature (ms) to an ACME order (seconds).
                    b.set_buckets_for_metric(
                        Matcher::Full("cmp_issuance_duration_seconds".into()),
                        &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0],
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; metrics then go there.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Middleware: counts requests and observes latency by method, route and status.
pub async fn track_http(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    let labels =
        [("method", method), ("route", route), ("status", response.status().as_u16().to_string())];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    response
}

/// How long inventory gauges are reused between scrapes.
const GAUGE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(15);

/// Sets `cmp_certificates{status=...}` from the database at scrape time, at most every
/// [`GAUGE_MAX_AGE`]: several scrapers must not each scan a million rows.
pub async fn refresh_inventory_gauges(state: &AppState) {
    {
        let Ok(mut counted_at) = state.gauges_counted_at.lock() else { return };
        if counted_at.is_some_and(|t| t.elapsed() < GAUGE_MAX_AGE) {
            return;
        }
        *counted_at = Some(Instant::now());
    }
    let now = state.clock.now().unix_timestamp();
    match state.store.count_by_status(now, state.expiry_window_secs()).await {
        Ok(counts) => {
            for (status, n) in counts {
                metrics::gauge!("cmp_certificates", "status" => status.as_str()).set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not count certificates for metrics"),
    }
}
