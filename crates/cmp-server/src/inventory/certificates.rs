//! `/api/v1/certificates` handlers.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use base64::Engine;
use cmp_api::{
    Certificate, CertificateListParams, CertificatePatch, ImportParams, ImportRequest,
    ImportResponse, Page, PemParams, Problem,
};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiBytes, ApiQuery};
use crate::inventory::views;
use crate::state::AppState;

/// Import certificates: PEM (one or many blocks), DER, PKCS#7, or JSON `{"data": base64,
/// "password": ...}` for PKCS#12. De-duplicated by SHA-256; all or nothing unless `partial=true`.
#[utoipa::path(
    post, path = "/api/v1/certificates/import", tag = "certificates",
    params(ImportParams),
    request_body(description = "Raw PEM, DER or PKCS#7 bytes; or JSON with base64 data and a password (PKCS#12)",
        content((ImportRequest = "application/json"), (String = "application/x-pem-file"), (Vec<u8> = "application/octet-stream"))),
    responses(
        (status = 201, description = "At least one certificate was new", body = ImportResponse),
        (status = 200, description = "Nothing was new: every certificate was known already (in or outside the caller's scope)", body = ImportResponse),
        (status = 404, description = "No such owner", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Input refused; nothing stored", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin", "security", "developer"]))
)]
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ImportParams>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> ApiResult<(StatusCode, Json<ImportResponse>)> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (data, password, owner) = if is_json {
        let req: ImportRequest = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("import JSON: {e}")))?;
        let data = base64::engine::general_purpose::STANDARD
            .decode(req.data.trim())
            .map_err(|_| ApiError::bad_field("data", "not valid base64"))?;
        (data, req.password, req.owner.or(params.owner))
    } else {
        (body.to_vec(), None, params.owner)
    };
    let input = crate::inventory::ImportInput {
        data: &data,
        password: password.as_deref(),
        owner: owner.as_deref(),
        location: params.location.as_deref(),
        partial: params.partial.unwrap_or(false),
    };
    let result = state.inventory.import(&caller, input).await?;
    let status = if result.created > 0 { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(result)))
}

/// List certificates with filters, sorted by expiry (default) or creation, cursor-paged.
#[utoipa::path(
    get, path = "/api/v1/certificates", tag = "certificates",
    params(CertificateListParams),
    responses(
        (status = 200, body = Page<Certificate>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin", "security", "developer"]))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<CertificateListParams>,
) -> ApiResult<Json<Page<Certificate>>> {
    let now = views::whole_seconds(state.clock.now());
    let query = certificate_query(&state, &caller, &params, now).await?;
    let page = state.store.list_certificates(&query).await?;
    let window = state.expiry_window_secs();
    Ok(Json(Page {
        items: page.items.into_iter().map(|r| views::certificate(r, now, window)).collect(),
        next_cursor: page.next_cursor.as_ref().map(|c| views::encode_cursor(query.sort, c)),
    }))
}

/// Turns listing parameters into a store query, checking every value.
async fn certificate_query(
    state: &AppState,
    caller: &Caller,
    p: &cmp_api::CertificateListParams,
    now: time::OffsetDateTime,
) -> ApiResult<cmp_store::CertificateQuery> {
    let mut query = cmp_store::CertificateQuery::all(now.unix_timestamp());
    query.scope = caller.scope.clone();
    query.window_secs = state.expiry_window_secs();
    if let Some(q) = &p.q {
        if q.len() > 256 {
            return Err(ApiError::bad_field("q", "at most 256 bytes"));
        }
        query.q = Some(q.clone());
    }
    query.status = p.status;
    query.finding = p.finding;
    query.issuer = p.issuer.clone();
    if let Some(owner) = &p.owner {
        query.owner_id = Some(match state.store.get_owner(owner).await {
            Ok(o) => o.id,
            Err(cmp_store::StoreError::NotFound { .. }) => {
                return Err(ApiError::bad_field("owner", format!("no owner {owner:?}")));
            }
            Err(e) => return Err(e.into()),
        });
    }
    if let Some(t) = &p.expires_before {
        query.expires_before = Some(views::parse_time("expires_before", t)?.unix_timestamp());
    }
    if let Some(t) = &p.expires_after {
        query.expires_after = Some(views::parse_time("expires_after", t)?.unix_timestamp());
    }
    if let Some(k) = &p.key_type {
        query.key_type =
            Some(cmp_domain::KeyType::parse(k).ok_or_else(|| {
                ApiError::bad_field("key_type", format!("unknown key type {k:?}"))
            })?);
    }
    query.sort = match p.sort.unwrap_or_default() {
        cmp_api::CertificateSortKey::NotAfter => cmp_store::CertificateSort::NotAfter,
        cmp_api::CertificateSortKey::CreatedAt => cmp_store::CertificateSort::CreatedAt,
    };
    query.limit = views::page_limit(p.limit)?;
    query.cursor = p.cursor.as_deref().map(|c| views::decode_cursor(query.sort, c)).transpose()?;
    Ok(query)
}

/// One certificate, by platform id or SHA-256 fingerprint.
#[utoipa::path(
    get, path = "/api/v1/certificates/{id}", tag = "certificates",
    params(("id" = String, Path, description = "Platform id or SHA-256 fingerprint")),
    responses((status = 200, body = Certificate), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security", "developer"]))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Certificate>> {
    let record = state.store.get_certificate(&id, &caller.scope).await?;
    Ok(Json(views::certificate(record, state.clock.now(), state.expiry_window_secs())))
}

/// The certificate as PEM; with `chain=true`, followed by the chain its CA returned.
#[utoipa::path(
    get, path = "/api/v1/certificates/{id}/pem", tag = "certificates",
    params(("id" = String, Path, description = "Platform id or SHA-256 fingerprint"), PemParams),
    responses((status = 200, content_type = "application/x-pem-file", body = String), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security", "developer"]))
)]
pub async fn pem(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<PemParams>,
) -> ApiResult<impl IntoResponse> {
    let der = state.store.get_certificate_der(&id, &caller.scope).await?;
    let mut text = pem::encode(&pem::Pem::new("CERTIFICATE", der));
    if params.chain {
        for der in state.store.certificate_chain(&id, &caller.scope).await? {
            text.push_str(&pem::encode(&pem::Pem::new("CERTIFICATE", der)));
        }
    }
    Ok(([(header::CONTENT_TYPE, "application/x-pem-file")], text))
}

/// Set a certificate's owner (id or name, `null` to clear) and/or labels.
#[utoipa::path(
    patch, path = "/api/v1/certificates/{id}", tag = "certificates",
    params(("id" = String, Path, description = "Platform id or SHA-256 fingerprint")),
    request_body = CertificatePatch,
    responses((status = 200, body = Certificate), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security", "developer"]))
)]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    crate::extract::ApiJson(body): crate::extract::ApiJson<CertificatePatch>,
) -> ApiResult<Json<Certificate>> {
    if body.owner.is_none() && body.labels.is_none() {
        return Err(ApiError::bad_request("nothing to change: give owner and/or labels"));
    }
    let record = state.inventory.update_certificate(&caller, &id, body.owner, body.labels).await?;
    Ok(Json(views::certificate(record, state.clock.now(), state.expiry_window_secs())))
}

/// Remove a certificate from the inventory (audited). A CA certificate in the recorded chain
/// of another certificate is a 409: its downloads need it; delete those first.
#[utoipa::path(
    delete, path = "/api/v1/certificates/{id}", tag = "certificates",
    params(("id" = String, Path, description = "Platform id or SHA-256 fingerprint")),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security"]))
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let ctx = state.audit_context(&caller);
    state.store.delete_certificate(&ctx, &id, &caller.scope).await?;
    Ok(StatusCode::NO_CONTENT)
}
