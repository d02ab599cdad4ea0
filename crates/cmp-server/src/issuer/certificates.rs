//! Issuer routes on inventory certificates: revoke, and download a server-made private key.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use cmp_api::{Problem, Request, RevokeBody};
use serde::Deserialize;
use utoipa::IntoParams;

use super::KeyFile;
use super::views;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

/// Revoke through the CA that issued it; the CRL and OCSP reflect it at once. With
/// `purge_key`, the server-made private key is deleted once the revocation is done.
#[utoipa::path(post, path = "/api/v1/certificates/{id}/revoke", tag = "certificates",
    params(("id" = String, Path, description = "Certificate id or SHA-256 fingerprint")),
    request_body = RevokeBody,
    responses((status = 200, body = Request), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security", "developer"])))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RevokeBody>,
) -> ApiResult<Json<Request>> {
    let request = state.issuer.revoke(&caller, &id, &body.reason, body.purge_key).await?;
    Ok(Json(views::request(request)))
}

/// Format of a key download.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KeyParams {
    /// `pem` (default) or `pkcs12` (password in the `X-Pkcs12-Password` header).
    pub format: Option<String>,
}

/// The private key of a certificate whose key the server made: admins and the owning team
/// only; every download is audited.
#[utoipa::path(get, path = "/api/v1/certificates/{id}/key", tag = "certificates",
    params(("id" = String, Path, description = "Certificate id or SHA-256 fingerprint"), KeyParams,
           ("X-Pkcs12-Password" = Option<String>, Header, description = "For format=pkcs12, 8 characters or more")),
    responses((status = 200, description = "PEM (PKCS#8), or PKCS#12 with format=pkcs12",
            content((String = "application/x-pem-file"), (Vec<u8> = "application/x-pkcs12"))),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "developer"])))]
pub async fn key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<KeyParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let format = params.format.as_deref().unwrap_or("pem");
    let password = headers.get("x-pkcs12-password").and_then(|v| v.to_str().ok());
    Ok(match state.issuer.download_key(&caller, &id, format, password).await? {
        KeyFile::Pem(pem) => {
            ([(header::CONTENT_TYPE, "application/x-pem-file")], pem.to_string()).into_response()
        }
        KeyFile::Pkcs12(p12) => {
            ([(header::CONTENT_TYPE, "application/x-pkcs12")], p12).into_response()
        }
    })
}
