//! What a builtin CA publishes, without authentication: its CRL, its OCSP responder
//! (RFC 6960, GET and POST), its issuing certificate (AIA) and its chain.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use base64::Engine;

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiBytes;
use crate::state::AppState;

/// The CA's current CRL (DER), regenerated on revocation and at least hourly.
#[utoipa::path(get, path = "/pki/{name}/crl", tag = "pki",
    params(("name" = String, Path, description = "CA (adapter) name")),
    responses((status = 200, content_type = "application/pkix-crl", body = Vec<u8>)))]
pub async fn crl(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let ca = state.local_adapters.builtin.get(&name).await.map_err(|_| not_found(&name))?;
    let der = ca.crl_der().await?;
    Ok(([(header::CONTENT_TYPE, "application/pkix-crl")], der))
}

/// The issuing CA certificate (DER): the AIA caIssuers target of issued certificates.
#[utoipa::path(get, path = "/pki/{name}/ca", tag = "pki",
    params(("name" = String, Path, description = "CA (adapter) name")),
    responses((status = 200, content_type = "application/pkix-cert", body = Vec<u8>)))]
pub async fn ca_certificate(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let ca = state.local_adapters.builtin.get(&name).await.map_err(|_| not_found(&name))?;
    Ok(([(header::CONTENT_TYPE, "application/pkix-cert")], ca.issuing_der().to_vec()))
}

/// Issuing and root certificates, PEM: what clients put in their trust configuration.
#[utoipa::path(get, path = "/pki/{name}/chain", tag = "pki",
    params(("name" = String, Path, description = "CA (adapter) name")),
    responses((status = 200, content_type = "application/pem-certificate-chain", body = String)))]
pub async fn chain(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let ca = state.local_adapters.builtin.get(&name).await.map_err(|_| not_found(&name))?;
    Ok(([(header::CONTENT_TYPE, "application/pem-certificate-chain")], ca.chain_pem()))
}

/// OCSP over POST (body: DER OCSPRequest).
#[utoipa::path(post, path = "/pki/{name}/ocsp", tag = "pki",
    params(("name" = String, Path, description = "CA (adapter) name")),
    request_body(content = Vec<u8>, content_type = "application/ocsp-request"),
    responses((status = 200, content_type = "application/ocsp-response", body = Vec<u8>)))]
pub async fn ocsp_post(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiBytes(body): ApiBytes,
) -> ApiResult<impl IntoResponse> {
    let ca = state.local_adapters.builtin.get(&name).await.map_err(|_| not_found(&name))?;
    Ok(([(header::CONTENT_TYPE, "application/ocsp-response")], ca.ocsp_response(&body).await))
}

/// The route that serves OCSP over GET (documented as `/pki/{name}/ocsp/{request}`), taking
/// the rest of the path: RFC 6960 asks for the base64 URL-encoded, but many clients leave its
/// `/` as they are.
pub const OCSP_GET_UNESCAPED: &str = "/pki/{name}/ocsp/{*request}";

/// OCSP over GET (RFC 6960 A.1: the base64 DER request, URL-encoded, as the last segment).
#[utoipa::path(get, path = "/pki/{name}/ocsp/{request}", tag = "pki",
    params(("name" = String, Path, description = "CA (adapter) name"),
           ("request" = String, Path, description = "base64 DER OCSPRequest")),
    responses((status = 200, content_type = "application/ocsp-response", body = Vec<u8>)))]
pub async fn ocsp_get(
    State(state): State<AppState>,
    Path((name, request)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let ca = state.local_adapters.builtin.get(&name).await.map_err(|_| not_found(&name))?;
    // Path extraction already percent-decoded it; a malformed one gets malformedRequest.
    let der = base64::engine::general_purpose::STANDARD.decode(request.trim()).unwrap_or_default();
    Ok(([(header::CONTENT_TYPE, "application/ocsp-response")], ca.ocsp_response(&der).await))
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound { entity: "CA", id: name.to_string() }
}
