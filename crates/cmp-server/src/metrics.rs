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
            register_counters();
            handle
        })
        .clone()
}

/// Counters a dashboard or an alert reads, at zero before their first event: a rate over a
/// series that does not exist yet is no data, not zero.
fn register_counters() {
    for outcome in ["issued", "awaiting_approval", "pending", "queued_on_agent", "failed"] {
        metrics::counter!("cmp_renewals_total", "outcome" => outcome).increment(0);
    }
    for channel in ["email", "webhook"] {
        for outcome in ["sent", "retry", "failed"] {
            metrics::counter!("cmp_notification_deliveries_total", "channel" => channel, "outcome" => outcome)
                .increment(0);
        }
    }
}

/// Runs the request (for `app::envelope`), counts it, observes its latency by method, route
/// template and status, and logs it once. Every label has a bounded set of values (a method
/// outside the standard ones is `other`, the dashboard's pages and files are `dashboard`,
/// another path no route matches is `unmatched`), so that odd requests cannot grow the series
/// without end.
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
    crate::telemetry::record_route(method, &route, status);
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

/// How long figures read from the database are reused between scrapes.
const GAUGE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(15);

/// How long the first scrape waits for the first count. At a million certificates a count
/// takes about a second: that scrape answers without the database's figures, and the count
/// finishes for the next one.
const FIRST_COUNT_WAIT: std::time::Duration = std::time::Duration::from_millis(150);

/// Figures read from the database for `/metrics`: counted at most every [`GAUGE_MAX_AGE`] (a
/// million rows is not counted per scraper), in the background once a first count exists,
/// so that a scrape waits on the database only for the first, and at most
/// [`FIRST_COUNT_WAIT`].
#[derive(Default)]
pub struct ScrapeCache {
    counted_at: std::sync::Mutex<Option<Instant>>,
    /// Series whose label sets come and go (owners, certificates), written out whole at each
    /// count, so that a deleted certificate's series goes with it.
    series: std::sync::Mutex<String>,
}

enum Refresh {
    None,
    /// The first count: waited for, up to [`FIRST_COUNT_WAIT`].
    First,
    Background,
}

impl ScrapeCache {
    fn claim(&self) -> Refresh {
        let Ok(mut counted_at) = self.counted_at.lock() else { return Refresh::None };
        let refresh = match *counted_at {
            None => Refresh::First,
            Some(at) if at.elapsed() >= GAUGE_MAX_AGE => Refresh::Background,
            Some(_) => return Refresh::None,
        };
        *counted_at = Some(Instant::now());
        refresh
    }
}

/// The text of `/metrics`: the recorder's metrics, then the database's figures.
pub async fn scrape(state: &AppState) -> String {
    let claimed = state.scrape.claim();
    if !matches!(claimed, Refresh::None) {
        let counting = state.clone();
        let count = tokio::spawn(async move { refresh(&counting).await });
        if matches!(claimed, Refresh::First) {
            let _ = tokio::time::timeout(FIRST_COUNT_WAIT, count).await;
        }
    }
    for pool in state.store.pool_usage() {
        let busy = pool.open.saturating_sub(pool.idle);
        for (use_, n) in [("busy", busy), ("idle", pool.idle)] {
            metrics::gauge!("cmp_db_pool_connections", "pool" => pool.pool, "state" => use_)
                .set(f64::from(n));
        }
        metrics::gauge!("cmp_db_pool_max_connections", "pool" => pool.pool)
            .set(f64::from(pool.max));
    }
    let mut text = state.metrics.render();
    if let Ok(series) = state.scrape.series.lock() {
        text.push_str(&series);
    }
    text
}

/// A label value in the exposition format.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Counts what the gauges show, from the database.
async fn refresh(state: &AppState) {
    let now = state.clock.now().unix_timestamp();
    let store = &state.store;
    let mut series = String::new();
    match store.certificate_counts_by_owner(now, state.expiry_window_secs()).await {
        Ok(counts) => {
            for status in cmp_domain::CertificateStatus::ALL {
                let total: i64 =
                    counts.iter().filter(|c| c.status == status).map(|c| c.count).sum();
                metrics::gauge!("cmp_certificates", "status" => status.as_str()).set(total as f64);
            }
            series.push_str("# HELP cmp_certificates_by_owner Certificates by owner and status.\n");
            series.push_str("# TYPE cmp_certificates_by_owner gauge\n");
            for c in counts {
                let owner = label(c.owner.as_deref().unwrap_or(""));
                series.push_str(&format!(
                    "cmp_certificates_by_owner{{owner=\"{owner}\",status=\"{}\"}} {}\n",
                    c.status.as_str(),
                    c.count
                ));
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not count certificates for metrics"),
    }
    let metrics_config = &state.config.metrics;
    if metrics_config.per_certificate {
        match store.expiry_series(metrics_config.per_certificate_limit).await {
            Ok(certificates) => {
                series.push_str(
                    "# HELP cmp_certificate_expiration_timestamp_seconds When each certificate \
                     expires (Unix seconds); the soonest metrics.per_certificate_limit.\n\
                     # TYPE cmp_certificate_expiration_timestamp_seconds gauge\n",
                );
                for c in certificates {
                    series.push_str(&format!(
                        "cmp_certificate_expiration_timestamp_seconds{{id=\"{}\",common_name=\"{}\",owner=\"{}\"}} {}\n",
                        label(&c.id),
                        label(c.common_name.as_deref().unwrap_or("")),
                        label(c.owner.as_deref().unwrap_or("")),
                        c.not_after
                    ));
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read certificate expiries for metrics"),
        }
    }
    // Due now, and of those, overdue by the margin: one read of the decisions for both.
    match store.overdue_renewal_notices(None, now).await {
        Ok(due) => {
            let overdue_before = now - state.config.notify.overdue_margin_secs;
            let overdue = due
                .iter()
                .filter(|n| n.details["due_at"].as_i64().is_some_and(|at| at <= overdue_before))
                .count();
            metrics::gauge!("cmp_renewals_due").set(due.len() as f64);
            metrics::gauge!("cmp_renewals_overdue").set(overdue as f64);
        }
        Err(e) => tracing::warn!(error = %e, "could not count renewals for metrics"),
    }
    match store.workflow_counts(now - state.config.notify.agent_offline_secs).await {
        Ok(counts) => {
            for request_state in cmp_domain::RequestState::ALL {
                let n = counts
                    .requests_by_state
                    .iter()
                    .find(|(s, _)| s == request_state.as_str())
                    .map_or(0, |(_, n)| *n);
                metrics::gauge!("cmp_requests", "state" => request_state.as_str()).set(n as f64);
            }
            for (agent_state, n) in [
                ("online", counts.agents_online),
                ("offline", counts.agents_offline),
                ("disabled", counts.agents_disabled),
            ] {
                metrics::gauge!("cmp_agents", "state" => agent_state).set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not count requests and agents for metrics"),
    }
    if let Ok(mut kept) = state.scrape.series.lock() {
        *kept = series;
    }
}
