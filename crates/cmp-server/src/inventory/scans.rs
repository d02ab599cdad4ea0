//! `/api/v1/scans` handlers: network scan definitions and their runs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cmp_api::{Problem, Scan, ScanCreate, ScanPatch, ScanRun};
use cmp_store::ScanUpdate;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::inventory::discovery::Schedule;
use crate::inventory::optional_owner_id;
use crate::inventory::views;
use crate::state::AppState;

/// The scan with its owner and latest run, as the API shows it.
async fn view(state: &AppState, scan: cmp_store::Scan) -> ApiResult<Scan> {
    let owner = match &scan.owner_id {
        Some(id) => Some(state.store.get_owner(id).await?),
        None => None,
    };
    let last_run = state.store.list_scan_runs(&scan.id, 1).await?.into_iter().next();
    views::scan(scan, owner, last_run)
}

/// All scans, with their latest run.
#[utoipa::path(
    get, path = "/api/v1/scans", tag = "discovery",
    responses((status = 200, body = Vec<Scan>)),
    security(("bearer" = ["admin", "security"]))
)]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<Scan>>> {
    let mut scans = Vec::new();
    for scan in state.store.list_scans().await? {
        scans.push(view(&state, scan).await?);
    }
    Ok(Json(scans))
}

/// Define a scan: targets inside the allowed ranges, ports, SNI names, limits and a schedule.
/// A refused target, port or limit is a 422 naming it, and nothing is stored.
#[utoipa::path(
    post, path = "/api/v1/scans", tag = "discovery",
    request_body = ScanCreate,
    responses(
        (status = 201, body = Scan),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = ["admin", "security"]))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ScanCreate>,
) -> ApiResult<(StatusCode, Json<Scan>)> {
    let owner_id = optional_owner_id(&state, body.owner.as_deref()).await?;
    let schedule = Schedule {
        interval_secs: body.interval_secs,
        cron: body.cron,
        enabled: body.enabled.unwrap_or(true),
    };
    let ctx = state.audit_context(&caller);
    let scan = state.discovery.create(&ctx, body.name, &body.spec, owner_id, schedule).await?;
    Ok((StatusCode::CREATED, Json(view(&state, scan).await?)))
}

/// One scan, by id or name.
#[utoipa::path(
    get, path = "/api/v1/scans/{id}", tag = "discovery",
    params(("id" = String, Path, description = "Scan id or name")),
    responses((status = 200, body = Scan), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security"]))
)]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Scan>> {
    let scan = state.store.get_scan(&id).await?;
    Ok(Json(view(&state, scan).await?))
}

/// Change a scan: what is given is replaced (a new schedule counts from now).
#[utoipa::path(
    patch, path = "/api/v1/scans/{id}", tag = "discovery",
    params(("id" = String, Path, description = "Scan id or name")),
    request_body = ScanPatch,
    responses(
        (status = 200, body = Scan),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = ["admin", "security"]))
)]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ScanPatch>,
) -> ApiResult<Json<Scan>> {
    let current = state.store.get_scan(&id).await?;
    let mut update = ScanUpdate { name: body.name, ..ScanUpdate::default() };
    if let Some(owner) = body.owner {
        update.owner_id = Some(optional_owner_id(&state, owner.as_deref()).await?);
    }
    let schedule = (body.interval_secs.is_some() || body.cron.is_some() || body.enabled.is_some())
        .then(|| Schedule {
            interval_secs: body.interval_secs.unwrap_or(current.interval_secs),
            cron: body.cron.unwrap_or(current.cron.clone()),
            enabled: body.enabled.unwrap_or(current.enabled),
        });
    if update.name.is_none()
        && update.owner_id.is_none()
        && body.spec.is_none()
        && schedule.is_none()
    {
        return Err(ApiError::bad_request(
            "nothing to change: give name, spec, owner, interval_secs, cron or enabled",
        ));
    }
    let ctx = state.audit_context(&caller);
    let scan =
        state.discovery.update(&ctx, &current.id, update, body.spec.as_ref(), schedule).await?;
    Ok(Json(view(&state, scan).await?))
}

/// Delete a scan and its runs (the certificates and locations it found stay).
#[utoipa::path(
    delete, path = "/api/v1/scans/{id}", tag = "discovery",
    params(("id" = String, Path, description = "Scan id or name")),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security"]))
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let ctx = state.audit_context(&caller);
    state.store.delete_scan(&ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Start a run now; it goes on in the background (follow it at its URL). One run per scan
/// at a time: 409 while one runs.
#[utoipa::path(
    post, path = "/api/v1/scans/{id}/runs", tag = "discovery",
    params(("id" = String, Path, description = "Scan id or name")),
    responses(
        (status = 202, body = ScanRun),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")
    ),
    security(("bearer" = ["admin", "security"]))
)]
pub async fn run(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<ScanRun>)> {
    let ctx = state.audit_context(&caller);
    let run = state.discovery.run_now(&ctx, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(views::scan_run(run))))
}

/// Parameters of the run listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    /// How many runs, newest first (1-500, default 20).
    pub limit: Option<u32>,
}

/// A scan's runs, newest first, with their summaries.
#[utoipa::path(
    get, path = "/api/v1/scans/{id}/runs", tag = "discovery",
    params(("id" = String, Path, description = "Scan id or name"), RunsQuery),
    responses((status = 200, body = Vec<ScanRun>), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security"]))
)]
pub async fn runs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<RunsQuery>,
) -> ApiResult<Json<Vec<ScanRun>>> {
    let scan = state.store.get_scan(&id).await?;
    let runs = state.store.list_scan_runs(&scan.id, query.limit.unwrap_or(20)).await?;
    Ok(Json(runs.into_iter().map(views::scan_run).collect()))
}

/// One run: its state and progress (`scanned / total`, found, errors).
#[utoipa::path(
    get, path = "/api/v1/scans/{id}/runs/{run_id}", tag = "discovery",
    params(("id" = String, Path, description = "Scan id or name"), ("run_id" = String, Path, description = "Run id")),
    responses((status = 200, body = ScanRun), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security"]))
)]
pub async fn get_run(
    State(state): State<AppState>,
    Path((id, run_id)): Path<(String, String)>,
) -> ApiResult<Json<ScanRun>> {
    let scan = state.store.get_scan(&id).await?;
    let run = state.store.get_scan_run(&run_id).await?;
    if run.scan_id != scan.id {
        return Err(ApiError::NotFound { entity: "scan run", id: run_id });
    }
    Ok(Json(views::scan_run(run)))
}

/// Stop a scan's running run; what it found so far stays. 409 when none runs.
#[utoipa::path(
    post, path = "/api/v1/scans/{id}/cancel", tag = "discovery",
    params(("id" = String, Path, description = "Scan id or name")),
    responses((status = 200, body = ScanRun), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security"]))
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ScanRun>> {
    let ctx = state.audit_context(&caller);
    Ok(Json(views::scan_run(state.discovery.cancel(&ctx, &id).await?)))
}
