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
use futures::StreamExt;

use crate::auth::Caller;
use crate::core::wire;
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
    let now = wire::whole_seconds(state.clock.now());
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
        query.expires_before = Some(wire::parse_time("expires_before", t)?.unix_timestamp());
    }
    if let Some(t) = &p.expires_after {
        query.expires_after = Some(wire::parse_time("expires_after", t)?.unix_timestamp());
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
    query.limit = wire::page_limit(p.limit)?;
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

/// Columns of the CSV export, in order.
const EXPORT_COLUMNS: [&str; 16] = [
    "id",
    "common_name",
    "subject",
    "sans",
    "issuer",
    "serial_number",
    "not_before",
    "not_after",
    "status",
    "owner",
    "key_type",
    "key_bits",
    "findings",
    "locations",
    "managed_certificate_id",
    "fingerprint_sha256",
];

/// The certificates of a filter as CSV, streamed page by page (memory stays bounded at any
/// size). Takes the listing's parameters: the export starts at `cursor` (the first page when
/// absent) and walks to the end in pages of `limit`.
#[utoipa::path(
    get, path = "/api/v1/certificates/export", tag = "certificates",
    params(CertificateListParams),
    responses(
        (status = 200, content_type = "text/csv", body = String,
            description = "A header line, then one line per certificate (RFC 4180)"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin", "security", "developer"]))
)]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<CertificateListParams>,
) -> ApiResult<impl IntoResponse> {
    let now = wire::whole_seconds(state.clock.now());
    let query = certificate_query(&state, &caller, &params, now).await?;
    // The first page before the answer starts, so that a failure is still a problem document.
    let first = state.store.list_certificates(&query).await?;
    let mut header_line = csv::Writer::from_writer(Vec::new());
    header_line.write_record(EXPORT_COLUMNS).map_err(csv_error)?;
    let header_line = header_line.into_inner().map_err(|e| csv_error(e.into_error()))?;
    let rows = futures::stream::try_unfold((Some(first), query), move |(page, mut query)| {
        let state = state.clone();
        async move {
            let page = match page {
                Some(page) => page,
                None if query.cursor.is_none() => return Ok(None),
                None => state.store.list_certificates(&query).await.map_err(|e| {
                    tracing::warn!(error = %e, "certificate export ended early");
                    std::io::Error::other("the export could not be finished")
                })?,
            };
            let window = state.expiry_window_secs();
            let mut out = csv::Writer::from_writer(Vec::new());
            for record in page.items {
                write_export_row(&mut out, &views::certificate(record, now, window))?;
            }
            let bytes = out.into_inner().map_err(|e| e.into_error())?;
            query.cursor = page.next_cursor;
            Ok::<_, std::io::Error>(Some((axum::body::Bytes::from(bytes), (None, query))))
        }
    });
    let body = futures::stream::iter([Ok(axum::body::Bytes::from(header_line))]).chain(rows);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"certificates.csv\""),
        ],
        axum::body::Body::from_stream(body),
    ))
}

fn csv_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("writing CSV: {e}"))
}

/// One line of the export. A cell that a spreadsheet would run as a formula (`=`, `+`, `-`,
/// `@` first) is prefixed with `'`: a subject is chosen by whoever made the certificate.
fn write_export_row(out: &mut csv::Writer<Vec<u8>>, c: &Certificate) -> Result<(), std::io::Error> {
    let rfc3339 = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
    };
    let sans: Vec<&str> = c.sans.iter().map(|s| s.value.as_str()).collect();
    let findings: Vec<&str> = c.findings.iter().map(|f| f.as_str()).collect();
    let locations: Vec<String> =
        c.locations.iter().map(|l| format!("{}:{}", l.kind.as_str(), l.address)).collect();
    let cells = [
        c.id.clone(),
        c.common_name.clone().unwrap_or_default(),
        c.subject.clone(),
        sans.join(" "),
        c.issuer.clone(),
        c.serial_number.clone(),
        rfc3339(c.not_before),
        rfc3339(c.not_after),
        c.status.as_str().to_string(),
        c.owner.as_ref().map(|o| o.name.clone()).unwrap_or_default(),
        c.key.kind.as_str().to_string(),
        c.key.bits.map(|b| b.to_string()).unwrap_or_default(),
        findings.join(" "),
        locations.join(" "),
        c.managed_certificate_id.clone().unwrap_or_default(),
        c.fingerprint_sha256.clone(),
    ];
    let safe = cells.map(|cell| match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell,
    });
    out.write_record(&safe).map_err(std::io::Error::other)
}
