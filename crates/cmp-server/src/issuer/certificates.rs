//! Issuer routes on inventory certificates: revoke, and download a server-made private key.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use cmp_api::{Problem, Request, RevokeBody};
use cmp_domain::RequestState;
use cmp_store::{NewAuditEvent, Scope};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use super::service;
use super::views;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::inventory::service::audit_context;
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
    let request = service::revoke(&state, &caller, &id, &body.reason).await?;
    if body.purge_key && request.state == RequestState::Issued {
        service::purge_key(&state, &caller, &id).await?;
    }
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
    let links = state.store.certificate_links(&id, &caller.scope).await?;
    if !service::may_download_key(&caller, links.owner_id.as_deref()) {
        return Err(ApiError::Forbidden(
            "only an admin or a member of the owning team may download this key".into(),
        ));
    }
    let secret = links.key_secret.ok_or_else(|| ApiError::NotFound {
        entity: "private key of certificate",
        id: format!("{id} (the requester made it, or it was purged)"),
    })?;
    let format = params.format.unwrap_or_else(|| "pem".into());
    let key = state.secrets.get(&secret).await?;
    let response = match format.as_str() {
        "pem" => {
            let pem =
                zeroize::Zeroizing::new(pem::encode(&pem::Pem::new("PRIVATE KEY", key.expose())));
            ([(header::CONTENT_TYPE, "application/x-pem-file")], pem.to_string()).into_response()
        }
        "pkcs12" => {
            let password = headers
                .get("x-pkcs12-password")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| ApiError::bad_field("X-Pkcs12-Password", "required for pkcs12"))?;
            let mut chain = vec![state.store.get_certificate_der(&links.id, &Scope::All).await?];
            // The chain the CA returned with this certificate, whatever the adapter.
            let stored = state.store.certificate_chain(&links.id, &Scope::All).await?;
            if !stored.is_empty() {
                chain.extend(stored);
            } else if let Some(adapter) = &links.adapter_id
                && let Ok(adapter) = state.adapters.adapter(adapter).await
            {
                // Issued before chains were kept: the issuing CA as its adapter reports it.
                chain.extend(adapter.get_status().await.chain_der);
            }
            let p12 = cmp_pki::keygen::export_pkcs12(key.expose(), &chain, password, &links.id)
                .map_err(|e| ApiError::bad_field("X-Pkcs12-Password", e.to_string()))?;
            ([(header::CONTENT_TYPE, "application/x-pkcs12")], p12).into_response()
        }
        _ => return Err(ApiError::bad_field("format", "pem or pkcs12")),
    };
    let event = NewAuditEvent {
        action: "certificate.key_downloaded".into(),
        entity_type: "certificate".into(),
        entity_id: links.id.clone(),
        details: json!({"format": format, "serial_number": links.serial_number}),
    };
    state.store.append_audit(&audit_context(&state, &caller), &event).await?;
    Ok(response)
}
