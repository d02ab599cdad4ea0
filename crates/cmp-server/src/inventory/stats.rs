//! `/api/v1/stats/...`: the dashboard's overview figures, counted in SQL within the caller's
//! scope.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use cmp_api::{
    ExpiryParams, ExpirySeries, ExpiryTimeline, ManagedStats, Overview, RequestStats, StatusCounts,
};
use cmp_domain::CertificateStatus;
use cmp_store::{ExpiryBucket, WEEK_SECS};
use time::format_description::well_known::Rfc3339;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::state::AppState;

/// Owners drawn on their own in the timeline; the rest are folded into `other owners`.
const TIMELINE_OWNERS: usize = 8;
const DEFAULT_WEEKS: u32 = 13;
const MAX_WEEKS: u32 = 104;
const NO_OWNER: &str = "no owner";
const OTHER_OWNERS: &str = "other owners";

/// Certificates by status, requests awaiting approval or recently failed, managed certificates
/// whose renewal fails.
#[utoipa::path(
    get, path = "/api/v1/stats/overview", tag = "stats",
    responses((status = 200, body = Overview)),
    security(("bearer" = ["admin", "security", "developer"]))
)]
pub async fn overview(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Overview>> {
    let now = state.clock.now().unix_timestamp();
    let window = state.expiry_window_secs();
    let (by_status, requests, managed) = tokio::try_join!(
        state.store.certificate_counts(now, window, &caller.scope),
        state.store.request_counts(now - 7 * 86_400, &caller.scope),
        state.store.managed_counts(&caller.scope),
    )?;
    let mut certificates = StatusCounts::default();
    for (status, n) in by_status {
        certificates.total += n;
        *match status {
            CertificateStatus::Valid => &mut certificates.valid,
            CertificateStatus::Expiring => &mut certificates.expiring,
            CertificateStatus::Expired => &mut certificates.expired,
            CertificateStatus::NotYetValid => &mut certificates.not_yet_valid,
            CertificateStatus::Revoked => &mut certificates.revoked,
        } += n;
    }
    Ok(Json(Overview {
        certificates,
        expiry_window_days: window / 86_400,
        requests: RequestStats {
            awaiting_approval: requests.awaiting_approval,
            failed_last_7_days: requests.failed_since,
        },
        managed: ManagedStats { total: managed.total, renewal_failing: managed.renewal_failing },
    }))
}

/// Certificates (not revoked) expiring in each of the coming weeks (from midnight UTC today),
/// stacked by owner.
#[utoipa::path(
    get, path = "/api/v1/stats/expiry", tag = "stats",
    params(ExpiryParams),
    responses(
        (status = 200, body = ExpiryTimeline),
        (status = 400, body = cmp_api::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["admin", "security", "developer"]))
)]
pub async fn expiry(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ExpiryParams>,
) -> ApiResult<Json<ExpiryTimeline>> {
    let weeks = params.weeks.unwrap_or(DEFAULT_WEEKS);
    if !(1..=MAX_WEEKS).contains(&weeks) {
        return Err(ApiError::bad_field("weeks", format!("between 1 and {MAX_WEEKS}")));
    }
    // Weeks start at midnight UTC, so that a week is whole days (the dashboard links each to
    // the inventory's date filters).
    let from = state.clock.now().replace_time(time::Time::MIDNIGHT);
    let buckets = state.store.expiry_buckets(from.unix_timestamp(), weeks, &caller.scope).await?;
    let names: HashMap<String, String> =
        state.store.list_owners().await?.into_iter().map(|o| (o.id, o.name)).collect();
    let week_starts = (0..weeks)
        .map(|w| {
            (from + time::Duration::seconds(i64::from(w) * WEEK_SECS))
                .format(&Rfc3339)
                .map_err(|e| ApiError::Internal(format!("formatting a week's start: {e}")))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(ExpiryTimeline { week_starts, series: stack(&buckets, weeks, &names) }))
}

/// One series per owner, the largest first; past [`TIMELINE_OWNERS`] they are summed into one.
fn stack(
    buckets: &[ExpiryBucket],
    weeks: u32,
    names: &HashMap<String, String>,
) -> Vec<ExpirySeries> {
    let mut per_owner: HashMap<Option<&str>, Vec<i64>> = HashMap::new();
    for b in buckets {
        let Ok(week) = usize::try_from(b.week) else { continue };
        let counts =
            per_owner.entry(b.owner_id.as_deref()).or_insert_with(|| vec![0; weeks as usize]);
        if let Some(slot) = counts.get_mut(week) {
            *slot += b.count;
        }
    }
    let mut owners: Vec<(Option<&str>, Vec<i64>)> = per_owner.into_iter().collect();
    // The largest first; equal totals by id, so the order is stable between calls.
    owners.sort_by_cached_key(|(id, counts)| (std::cmp::Reverse(counts.iter().sum::<i64>()), *id));
    let mut series = Vec::new();
    let mut shown_owners = 0;
    let mut other: Option<Vec<i64>> = None;
    for (id, counts) in owners {
        match id {
            None => series.push(ExpirySeries { label: NO_OWNER.into(), owner_id: None, counts }),
            Some(id) if shown_owners < TIMELINE_OWNERS => {
                shown_owners += 1;
                let label = names.get(id).cloned().unwrap_or_else(|| id.to_string());
                series.push(ExpirySeries { label, owner_id: Some(id.to_string()), counts });
            }
            Some(_) => {
                let sum = other.get_or_insert_with(|| vec![0; counts.len()]);
                sum.iter_mut().zip(counts).for_each(|(s, n)| *s += n);
            }
        }
    }
    if let Some(counts) = other {
        series.push(ExpirySeries { label: OTHER_OWNERS.into(), owner_id: None, counts });
    }
    series
}
