//! Assembles the router of a role: routes, OpenAPI document, access rules, middleware.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Version, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper::body::{Frame, SizeHint};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::auth::{BEARER, RoutePolicies, authorize};
use crate::config::ServerRole;
use crate::core::context::REQUEST_ID;
use crate::error::ApiError;
use crate::state::AppState;
use crate::{adapter, core, inventory, issuer};

pub(crate) const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

#[derive(OpenApi)]
#[openapi(
    info(title = "CMP", description = "Certificate Management Platform API"),
    modifiers(&BearerScheme),
    // The sort key appears only in a query parameter, where utoipa refers to it without
    // collecting it.
    components(schemas(cmp_api::Problem, cmp_api::CertificateSortKey))
)]
struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The routes and OpenAPI document of a role; `/metrics` is left out when it has a listener of
/// its own.
pub fn routes(role: ServerRole, metrics_on_main: bool) -> (Router<AppState>, OpenApiDoc) {
    let mut router =
        OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(core::ops_router(metrics_on_main));
    if role.serves(ServerRole::Inventory) {
        router = router.merge(inventory::router()).merge(core::admin_router());
    }
    if role.serves(ServerRole::Issuer) {
        router = router.merge(issuer::router()).merge(crate::notify::router());
    }
    if role.serves(ServerRole::Adapter) {
        router = router.merge(adapter::router());
    }
    let (router, mut doc) = router.split_for_parts();
    core::apidoc::finish(&mut doc);
    (router, doc)
}

/// The complete application of a role, ready to serve, and its state.
pub fn build(mut state: AppState) -> Result<(Router, AppState), String> {
    let config = state.config.clone();
    let (router, doc) = routes(config.role, config.http.metrics_listen.is_none());
    let policies = RoutePolicies::from_openapi(&doc)?;
    state.openapi = Arc::new(doc);
    state.policies = Arc::new(policies);
    let headers = SecurityHeaders { hsts: config.tls_enabled() };
    let router = router.route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    // Role `all` serves the dashboard on every path the API does not take.
    let router = if config.role == ServerRole::All {
        router.fallback(crate::dashboard::serve)
    } else {
        router.fallback(|| async { ApiError::route_not_found() })
    };
    let router = router
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(config.http.body_limit_bytes))
        // Inside the request log, so that a panic's 500 is logged and counted like any answer.
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("handler panicked".into()).into_response()
        }))
        .layer(middleware::from_fn_with_state(headers, envelope))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(crate::telemetry::http_span)
                // One line per request comes from `metrics::track_http`, with the route template.
                .on_request(())
                .on_response(())
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
        .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid));
    Ok((router, state))
}

/// The router of `http.pki_listen`: the builtin CA's CRL, OCSP and CA certificates alone.
pub fn pki_router(state: AppState) -> Router {
    let (router, _) = adapter::pki_router().split_for_parts();
    router.fallback(|| async { ApiError::route_not_found() }).with_state(state)
}

/// The router of `http.metrics_listen`: `/metrics` alone, without authentication.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(core::ops::metrics))
        .fallback(|| async { ApiError::route_not_found() })
        .with_state(state)
}

/// Which security headers go on every answer.
#[derive(Debug, Clone, Copy)]
struct SecurityHeaders {
    /// Strict-Transport-Security, only when serving HTTPS (browsers ignore it over HTTP).
    hsts: bool,
}

/// What every request and answer goes through, in one layer rather than one each: a layer is
/// an allocation and a clone of the service within per request, kept while the request runs,
/// and an agent's long poll runs for up to a minute. Outermost first:
/// 1. the request id is made visible to the error mapping of this request;
/// 2. an answer given before its request's body was read says `Connection: close`;
/// 3. a NUL in the path or query is refused;
/// 4. the answer gets the security headers;
/// 5. an error answer that is not a problem document becomes one;
/// 6. the request is logged and counted (`metrics::track_http`).
async fn envelope(
    State(headers): State<SecurityHeaders>,
    request: Request,
    next: Next,
) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    REQUEST_ID
        .scope(id, async move {
            let (request, body_read) = noting_body_read(request);
            let mut response = if has_nul(&request) {
                ApiError::bad_request("the URL must not contain NUL characters").into_response()
            } else {
                let api = !request.uri().path().starts_with("/pki/");
                let response = crate::metrics::track_http(request, next).await;
                with_security_headers(headers, api, problem_for_plain_errors(response).await)
            };
            if body_read.is_some_and(|read| !read.load(Ordering::Acquire)) {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        })
        .await
}

/// Headers that keep browsers and caches from misusing API answers: no MIME sniffing, no
/// active content or framing, and for the API (`api`) no caching at all (answers carry tokens,
/// keys and PKCS#12 files, and are scoped to the caller). The public CRL, OCSP and CA files
/// under `/pki` stay cacheable.
fn with_security_headers(headers: SecurityHeaders, api: bool, mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // The dashboard's answers come with their own policy and caching; everything else gets
    // the API's.
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if api {
        h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    }
    if headers.hsts {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    response
}

/// Longest error text of the framework kept in a problem's detail.
const MAX_REJECTION_DETAIL: usize = 300;

/// Turns error answers that are not problem documents (axum's own rejections, such as a path
/// segment that is not UTF-8) into RFC 9457 problems, so that every error a
/// client sees has one shape.
async fn problem_for_plain_errors(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(crate::error::PROBLEM_JSON.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let detail = crate::error::cut(String::from_utf8_lossy(&text).trim(), MAX_REJECTION_DETAIL);
    let mut problem = ApiError::from_status(status, detail).into_response();
    // Keep what the framework said besides the body (Allow on a 405, Retry-After).
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    problem
}

/// Whether the path or query holds a NUL: no id, name or filter holds one, and PostgreSQL
/// cannot compare text with it.
fn has_nul(request: &Request) -> bool {
    request
        .uri()
        .path_and_query()
        .is_some_and(|pq| pq.as_str().to_ascii_lowercase().contains("%00"))
}

/// For an HTTP/1 request with a body, the request with its body watched and the flag that
/// says it was read to its end. An answer given before that (a 401, 403 or 404 decided from
/// the headers, a body over the limit or too slow) must say `Connection: close`: hyper then
/// closes the connection unless the rest of the body has already arrived, and without the
/// header a client that reuses the connection has its next request fail ("closed without
/// response").
fn noting_body_read(request: Request) -> (Request, Option<Arc<AtomicBool>>) {
    if request.version() > Version::HTTP_11 || request.body().is_end_stream() {
        return (request, None);
    }
    let read = Arc::new(AtomicBool::new(false));
    let request = request.map(|inner| Body::new(ReadToEnd { inner, read: read.clone() }));
    (request, Some(read))
}

/// A request body that records when it has been read to its end.
struct ReadToEnd {
    inner: Body,
    read: Arc<AtomicBool>,
}

impl HttpBody for ReadToEnd {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
