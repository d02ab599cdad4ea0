//! Logging (JSON in production, pretty on a terminal, quiet in tests unless `TEST_LOG` is set)
//! and, when `trace.otlp_endpoint` is set, distributed traces: a caller's W3C `traceparent`
//! continued, carried on to the adapter role, and spans exported over OTLP/HTTP.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::Request;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_http::{Bytes, HeaderExtractor, HeaderInjector, HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Level;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{self, EnvFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::config::{LogConfig, LogFormat, ServerRole, TraceConfig};

/// Whether spans are exported; set once, by `init`.
static EXPORTING: OnceLock<bool> = OnceLock::new();

/// What `init` installed; `shutdown` sends the spans still buffered.
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub async fn shutdown(self) {
        let Some(provider) = self.traces else { return };
        // The provider waits on its export thread, whose requests run on this runtime.
        let stopped = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = stopped {
            tracing::warn!(error = %e, "the last spans were not exported");
        }
    }
}

/// Installs the global subscriber (once; later calls do nothing) and, with an OTLP endpoint, the
/// span exporter. Logs keep their own filter (`log.level`, or `RUST_LOG`); spans are exported
/// whatever the log level.
pub fn init(log: &LogConfig, trace: &TraceConfig, role: ServerRole) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match log.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = if json {
        logs.json().flatten_event(true).with_current_span(true).boxed()
    } else {
        logs.boxed()
    };
    let traces =
        (!trace.otlp_endpoint.is_empty()).then(|| tracer_provider(trace, role)).transpose()?;
    let spans = traces.as_ref().map(|provider| {
        tracing_opentelemetry::layer().with_tracer(provider.tracer("cmpd")).with_filter(
            filter::filter_fn(|meta| {
                // CMP's own debug spans (the issuer's steps) are parts of a trace, never log
                // lines; events at info and above become the spans' events.
                let own_span = meta.is_span() && meta.target().starts_with("cmp_");
                *meta.level() <= if own_span { Level::DEBUG } else { Level::INFO }
            }),
        )
    });
    if Registry::default().with(logs.with_filter(filter)).with(spans).try_init().is_ok() {
        let _ = EXPORTING.set(traces.is_some());
        if traces.is_some() {
            opentelemetry::global::set_text_map_propagator(
                opentelemetry_sdk::propagation::TraceContextPropagator::new(),
            );
        }
    }
    Ok(Telemetry { traces })
}

fn exporting() -> bool {
    EXPORTING.get().copied().unwrap_or(false)
}

/// Spans batched and posted to `<otlp_endpoint>/v1/traces`, as `OTEL_EXPORTER_OTLP_ENDPOINT`
/// is read by every OpenTelemetry SDK.
fn tracer_provider(trace: &TraceConfig, role: ServerRole) -> anyhow::Result<SdkTracerProvider> {
    let base = trace.otlp_endpoint.trim_end_matches('/');
    let endpoint =
        if base.ends_with("/v1/traces") { base.to_string() } else { format!("{base}/v1/traces") };
    let client = OtlpClient {
        client: reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?,
        runtime: tokio::runtime::Handle::try_current()?,
        failing: AtomicBool::new(false),
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .build()?;
    let service = match trace.service_name.as_str() {
        "" => format!("cmp-{}", role.as_str()),
        name => name.to_string(),
    };
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service).build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            trace.sample_ratio,
        ))))
        .with_resource(resource)
        .build())
}

/// The exporter's HTTP client: the reqwest already in the tree, run on cmpd's runtime, because
/// the SDK's batch processor exports from a thread of its own, outside any runtime.
#[derive(Debug)]
struct OtlpClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    /// Whether the last export failed: a collector that is down is logged once, not per batch.
    failing: AtomicBool,
}

impl OtlpClient {
    fn note(&self, failure: Option<String>) {
        match failure {
            Some(error) if !self.failing.swap(true, Ordering::Relaxed) => {
                tracing::warn!(%error, "spans are not reaching the OTLP collector");
            }
            None if self.failing.swap(false, Ordering::Relaxed) => {
                tracing::info!("spans reach the OTLP collector again");
            }
            _ => {}
        }
    }
}

#[async_trait]
impl HttpClient for OtlpClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request.map(reqwest::Body::from))?;
        let client = self.client.clone();
        let sent = self
            .runtime
            .spawn(async move {
                let response = client.execute(request).await?;
                let status = response.status();
                Ok::<_, reqwest::Error>((status, response.bytes().await?))
            })
            .await?;
        let (status, body) = match sent {
            Ok(answer) => answer,
            Err(e) => {
                // The endpoint may carry credentials: the error is told without it.
                let e = e.without_url();
                self.note(Some(e.to_string()));
                return Err(e.into());
            }
        };
        self.note((!status.is_success()).then(|| format!("the collector answered {status}")));
        let mut response = http::Response::new(body);
        *response.status_mut() = status;
        Ok(response)
    }
}

/// The span of one HTTP request: its id for the logs and, when traces are exported, a server
/// span that continues the caller's `traceparent`.
pub fn http_span(request: &Request) -> Span {
    let id = request
        .headers()
        .get(crate::app::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !exporting() {
        return tracing::info_span!("http", request_id = %id);
    }
    let span = tracing::info_span!(
        "http",
        request_id = %id,
        trace_id = Empty,
        "otel.kind" = "server",
        "http.request.method" = %request.method(),
        "http.route" = Empty,
        "http.response.status_code" = Empty,
    );
    let caller = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(request.headers()))
    });
    let _ = span.set_parent(caller);
    // The logs of this request name its trace, so that one leads to the other.
    let trace_id = span.context().span().span_context().trace_id();
    span.record("trace_id", tracing::field::display(trace_id));
    span
}

/// Names the current request's span after its route template, once routing has found it.
pub fn record_route(method: &str, route: &str, status: u16) {
    if exporting() {
        let span = Span::current();
        // Started already (its trace id went to the logs): renamed on the OpenTelemetry side.
        span.context().span().update_name(format!("{method} {route}"));
        span.record("http.route", route);
        span.record("http.response.status_code", status);
    }
}

/// A client span for a call to another role, and the `traceparent` that carries it there.
pub fn client_call(
    name: &'static str,
    mut request: reqwest::RequestBuilder,
) -> (Span, reqwest::RequestBuilder) {
    if !exporting() {
        return (Span::none(), request);
    }
    let span = tracing::info_span!("call", "otel.name" = name, "otel.kind" = "client");
    let mut headers = http::HeaderMap::new();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&span.context(), &mut HeaderInjector(&mut headers))
    });
    request = request.headers(headers);
    (span, request)
}
