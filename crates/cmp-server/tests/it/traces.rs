//! Distributed traces as an operator sees them: two `cmpd` processes (an adapter role, and a
//! server whose issuer reaches the CA only through it) export their spans over OTLP/HTTP, and a
//! caller's `traceparent` makes one request a single trace across both.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cmp_testkit::free_port;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use serde_json::json;

use crate::issuance::csr_for;

/// An OTLP/HTTP receiver: what a collector is to cmpd, keeping each span with its service name.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Receiver {
    async fn start(&self) -> SocketAddr {
        let this = self.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| async move {
                let export = ExportTraceServiceRequest::decode(body.as_ref()).unwrap();
                for resource in export.resource_spans {
                    let service = resource
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|a| a.key == "service.name")
                        .and_then(|a| a.value.as_ref()?.value.as_ref())
                        .map(|v| match v {
                            AnyValue::StringValue(s) => s.clone(),
                            other => format!("{other:?}"),
                        })
                        .unwrap_or_default();
                    for scope in resource.scope_spans {
                        let mut spans = this.spans.lock().unwrap();
                        spans.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
                    }
                }
                this.bodies.lock().unwrap().push(body.to_vec());
                ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    fn spans(&self) -> Vec<(String, Span)> {
        self.spans.lock().unwrap().clone()
    }
}

/// A `cmpd` process on `dir`, its log drained as it runs (a full pipe would block it).
struct Cmpd {
    child: Child,
    base: String,
    logs: std::thread::JoinHandle<String>,
}

impl Cmpd {
    async fn start(dir: &Path, env: &[(&str, &str)]) -> Cmpd {
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_cmpd"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("CMPD_DATA_DIR", dir)
            .env_remove("CMPD_DATABASE__URL")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let logs = std::thread::spawn(move || {
            let mut logs = String::new();
            stderr.read_to_string(&mut logs).unwrap();
            logs
        });
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{base}/readyz")).await.is_err() {
            assert!(Instant::now() < deadline, "cmpd did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Cmpd { child, base, logs }
    }

    /// SIGTERM, which sends the spans still buffered; the process's log.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        assert!(self.child.wait().unwrap().success());
        self.logs.join().unwrap()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_one_trace_from_the_caller_through_the_issuer_to_the_adapter_role() {
    cmp_testkit::install_crypto_provider();
    let receiver = Receiver::default();
    let collector = format!("http://{}", receiver.start().await);
    let dir = tempfile::tempdir().unwrap();
    let traced = [("CMPD_TRACE__OTLP_ENDPOINT", collector.as_str()), ("CMPD_LOG__FORMAT", "json")];
    let adapter = Cmpd::start(dir.path(), &[traced[0], traced[1], ("CMPD_ROLE", "adapter")]).await;
    let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let token = token.trim();
    let issuer = Cmpd::start(
        dir.path(),
        &[
            traced[0],
            traced[1],
            ("CMPD_ISSUER__ADAPTER_URL", &adapter.base),
            ("CMPD_ISSUER__ADAPTER_TOKEN", token),
        ],
    )
    .await;

    let http = reqwest::Client::new();
    let owner = http
        .post(format!("{}/api/v1/owners", issuer.base))
        .bearer_auth(token)
        .json(&json!({"name": "ops"}))
        .send()
        .await
        .unwrap();
    assert_eq!(owner.status(), 201);
    // The caller's trace (W3C Trace Context's own example ids), sampled.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let issued = http
        .post(format!("{}/api/v1/requests", issuer.base))
        .bearer_auth(token)
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&json!({"owner": "ops", "csr": csr_for(&["traced.ops.example"])}))
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status(), 201);
    let issued: serde_json::Value = issued.json().await.unwrap();
    assert_eq!(issued["state"], "issued", "{issued}");

    // A stop sends what is buffered: no waiting for the batch's schedule.
    let issuer_logs = issuer.stop();
    let adapter_logs = adapter.stop();
    let spans = receiver.spans();
    let in_trace: Vec<&(String, Span)> =
        spans.iter().filter(|(_, s)| hex(&s.trace_id) == trace_id).collect();
    let find = |service: &str, kind: SpanKind, name: &str| {
        in_trace
            .iter()
            .find(|(svc, s)| svc == service && s.kind == kind as i32 && s.name == name)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| {
                let seen: Vec<_> = in_trace.iter().map(|(svc, s)| (svc, &s.name)).collect();
                panic!("no {kind:?} span {name:?} from {service}; the trace has {seen:?}")
            })
    };
    let request = find("cmp-all", SpanKind::Server, "POST /api/v1/requests");
    assert_eq!(hex(&request.parent_span_id), caller_span, "the caller's trace is continued");
    let call = find("cmp-all", SpanKind::Client, "adapter sign");
    // Between them, the issuer's own steps.
    let parent_of = |span: &Span| {
        let parent = in_trace.iter().find(|(_, s)| s.span_id == span.parent_span_id).unwrap();
        parent.1.clone()
    };
    let attempt = parent_of(&call);
    assert_eq!(attempt.name, "issuer attempt");
    let outcome = attempt.attributes.iter().find(|a| a.key == "outcome").unwrap();
    assert_eq!(outcome.value.as_ref().unwrap().value, Some(AnyValue::StringValue("issued".into())));
    let created = parent_of(&attempt);
    assert_eq!(created.name, "issuer create request");
    assert_eq!(created.parent_span_id, request.span_id);
    let sign = find("cmp-adapter", SpanKind::Server, "POST /api/v1/adapters/{id}/sign");
    assert_eq!(sign.parent_span_id, call.span_id, "the adapter role continues the issuer's call");
    // The logs of the request name its trace.
    let line = issuer_logs
        .lines()
        .find(|l| l.contains("\"route\":\"/api/v1/requests\"") && l.contains("\"POST\""))
        .unwrap_or_else(|| panic!("no request line: {issuer_logs}"));
    assert!(line.contains(&format!("\"trace_id\":\"{trace_id}\"")), "{line}");
    // Nothing secret travels with the spans, nor into the logs.
    let exported: Vec<u8> = receiver.bodies.lock().unwrap().concat();
    let secret = &token[4..];
    assert!(!String::from_utf8_lossy(&exported).contains(secret), "the token was exported");
    assert!(!issuer_logs.contains(secret) && !adapter_logs.contains(secret));
}

/// Off by default; a collector that is down costs a warning, never a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_are_off_by_default_and_a_collector_that_is_down_fails_no_request() {
    cmp_testkit::install_crypto_provider();
    assert!(cmp_server::config::Config::default().trace.otlp_endpoint.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let down = format!("http://127.0.0.1:{}", free_port());
    let cmpd = Cmpd::start(dir.path(), &[("CMPD_TRACE__OTLP_ENDPOINT", down.as_str())]).await;
    let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    for _ in 0..20 {
        let listed = reqwest::Client::new()
            .get(format!("{}/api/v1/certificates", cmpd.base))
            .bearer_auth(token.trim())
            .send()
            .await
            .unwrap();
        assert_eq!(listed.status(), 200);
    }
    let logs = cmpd.stop();
    assert!(logs.contains("spans are not reaching the OTLP collector"), "{logs}");
}
