//! The dashboard (React, embedded by `cmp-web`), served by role `all` on its own port beside
//! the API: every path that is not the API's gets the page, whose script routes in the
//! browser. The page is public; what it shows comes from the API, which checks the caller.

use std::borrow::Cow;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::metrics::RouteLabel;

/// The dashboard's policy: its own scripts, styles and API only. No inline script or style
/// element, no other origin, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Paths that belong to the API and the services beside it: an unknown one there is a 404
/// problem, never the page.
const NOT_DASHBOARD: [&str; 6] = ["/api/", "/auth/", "/pki/", "/healthz", "/readyz", "/metrics"];

/// The fallback of role `all`: a dashboard file, or the page for a route of the dashboard.
pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if NOT_DASHBOARD.iter().any(|prefix| path.starts_with(prefix)) {
        return ApiError::route_not_found().into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return ApiError::MethodNotAllowed.into_response();
    }
    let wanted = path.trim_start_matches('/');
    let file = match cmp_web::file(wanted) {
        Some(file) if !wanted.is_empty() => file,
        // A missing hashed file is an old page asking for what a newer build replaced.
        _ if wanted.starts_with("assets/") => return ApiError::route_not_found().into_response(),
        _ => match cmp_web::index() {
            Some(file) => file,
            None => return ApiError::route_not_found().into_response(),
        },
    };
    let mut response_headers = HeaderMap::new();
    let cache = if file.immutable { "public, max-age=31536000, immutable" } else { "no-cache" };
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response_headers
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    if let Ok(etag) = HeaderValue::from_str(&file.etag) {
        response_headers.insert(header::ETAG, etag);
    }
    response_headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == file.etag));
    if not_modified {
        return labelled((StatusCode::NOT_MODIFIED, response_headers));
    }
    if let Ok(content_type) = HeaderValue::from_str(&file.content_type) {
        response_headers.insert(header::CONTENT_TYPE, content_type);
    }
    let body = match file.gzip {
        Some(gzip) if accepts_gzip(&headers) => {
            response_headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            gzip
        }
        _ => file.body,
    };
    // The embedded files are static: served as they are, never copied per answer.
    let body = match body {
        Cow::Borrowed(bytes) => Body::from(Bytes::from_static(bytes)),
        Cow::Owned(bytes) => Body::from(bytes),
    };
    labelled((response_headers, body))
}

/// A dashboard answer, counted in the metrics under the route `dashboard`.
fn labelled(answer: impl IntoResponse) -> Response {
    let mut response = answer.into_response();
    response.extensions_mut().insert(RouteLabel("dashboard"));
    response
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}
