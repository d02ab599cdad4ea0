//! Assembles the router of a role: routes, OpenAPI document, access rules, middleware.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::auth::{BEARER, RoutePolicies, authorize};
use crate::config::ServerRole;
use crate::error::{ApiError, REQUEST_ID};
use crate::state::AppState;
use crate::{adapter, core, inventory, issuer};

const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

#[derive(OpenApi)]
#[openapi(
    info(title = "CMP", description = "Certificate Management Platform API"),
    modifiers(&BearerScheme),
    components(schemas(cmp_api::Problem))
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

/// The routes and OpenAPI document of a role.
pub fn routes(role: ServerRole) -> (Router<AppState>, OpenApiDoc) {
    let mut router = OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(core::ops_router());
    if role.serves(ServerRole::Inventory) {
        router = router.merge(inventory::router()).merge(core::admin_router());
    }
    if role.serves(ServerRole::Issuer) {
        router = router.merge(issuer::router());
    }
    if role.serves(ServerRole::Adapter) {
        router = router.merge(adapter::router());
    }
    router.split_for_parts()
}

/// The complete application of a role, ready to serve, and its state.
pub fn build(state: AppState) -> Result<(Router, AppState), String> {
    let (router, doc) = routes(state.config.role);
    let policies = RoutePolicies::from_openapi(&doc)?;
    let state = AppState { openapi: Arc::new(doc), policies: Arc::new(policies), ..state };
    let body_limit = state.config.http.body_limit_bytes;
    let router = router
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize))
        .fallback(|| async { ApiError::NotFound { entity: "route", id: "for this path".into() } })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(crate::metrics::track_http))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("handler panicked".into()).into_response()
        }))
        .layer(middleware::from_fn(reject_nul))
        .layer(middleware::from_fn(with_request_id))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let id = req.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
        .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid));
    Ok((router, state))
}

/// Refuses a NUL anywhere in the path or query: no id, name or filter holds one, and
/// PostgreSQL cannot compare text with it.
async fn reject_nul(request: Request, next: Next) -> Response {
    let has_nul = request
        .uri()
        .path_and_query()
        .is_some_and(|pq| pq.as_str().to_ascii_lowercase().contains("%00"));
    if has_nul {
        return ApiError::bad_request("the URL must not contain NUL characters").into_response();
    }
    next.run(request).await
}

/// Makes the request id visible to the error mapping of this request.
async fn with_request_id(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    REQUEST_ID.scope(id, next.run(request)).await
}
