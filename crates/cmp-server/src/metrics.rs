//! Prometheus metrics: the process-wide recorder, HTTP request metrics, inventory gauges.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::auth::Actor;
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

/// Middleware: counts requests, observes latency by method, route template and status, and
/// logs each request once. Every label has a bounded set of values (a method outside the
/// standard ones is `other`, the dashboard's pages and files are `dashboard`, another path no
/// route matches is `unmatched`), so that odd requests cannot grow the series without end.
pub async fn track_http(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(request.method());
    let matched = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let request_id = request
        .headers()
        .get(crate::app::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let response = next.run(request).await;
    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    let actor = response.extensions().get::<Actor>().map(|a| a.0.as_str()).unwrap_or("-");
    let route = matched.unwrap_or_else(|| match response.extensions().get::<RouteLabel>() {
        Some(label) => label.0.to_string(),
        None => "unmatched".into(),
    });
    tracing::info!(
        method,
        route = %route,
        status,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        request_id = %request_id,
        actor,
        "request"
    );
    let labels = [("method", method.to_string()), ("route", route), ("status", status.to_string())];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    response
}

/// The route label of an answer that no route template matched (the dashboard's files).
#[derive(Debug, Clone, Copy)]
pub struct RouteLabel(pub &'static str);

/// The method as a metric label: the standard methods by name, anything else `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
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
    match state
        .store
        .certificate_counts(now, state.expiry_window_secs(), &cmp_store::Scope::All)
        .await
    {
        Ok(counts) => {
            for (status, n) in counts {
                metrics::gauge!("cmp_certificates", "status" => status.as_str()).set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not count certificates for metrics"),
    }
}
