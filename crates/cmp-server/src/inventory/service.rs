//! Inventory operations: what the handlers and the benchmark call.

use cmp_api::{ImportRejection, ImportResponse, ImportedCertificate, ProblemItem};
use cmp_domain::{KeyType, Role};
use cmp_store::{
    AuditContext, CertificateQuery, CertificateSort, CertificateSource, NewCertificate, Scope,
};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, REQUEST_ID};
use crate::inventory::views;
use crate::state::AppState;

/// The audit context of a change made by `caller` now.
pub fn audit_context(state: &AppState, caller: &Caller) -> AuditContext {
    let now = state.clock.now();
    AuditContext {
        actor: caller.actor.clone(),
        request_id: REQUEST_ID.try_with(|id| id.clone()).ok(),
        now_us: i64::try_from(now.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX),
    }
}

/// Resolves an owner given by id or name, and checks that the caller may act for it.
pub async fn resolve_owner(
    state: &AppState,
    caller: &Caller,
    id_or_name: &str,
) -> ApiResult<String> {
    let owner = state.store.get_owner(id_or_name).await?;
    if !caller.may_act_for(&owner.id) {
        return Err(ApiError::Forbidden);
    }
    Ok(owner.id)
}

/// The owner new certificates get: the one asked for, or a developer's only team.
async fn import_owner(
    state: &AppState,
    caller: &Caller,
    asked: Option<&str>,
) -> ApiResult<Option<String>> {
    match (asked, &caller.scope) {
        (Some(owner), _) => resolve_owner(state, caller, owner).await.map(Some),
        (None, Scope::All) => Ok(None),
        (None, Scope::Owners(ids)) if ids.len() == 1 => Ok(Some(ids[0].clone())),
        (None, Scope::Owners(_)) => Err(ApiError::bad_field(
            "owner",
            "a developer token with several teams must name the owner of imported certificates",
        )),
    }
}

/// Decodes, checks and stores an import. All or nothing unless `partial`.
pub async fn import(
    state: &AppState,
    caller: &Caller,
    input: &[u8],
    password: Option<&str>,
    owner: Option<&str>,
    partial: bool,
) -> ApiResult<ImportResponse> {
    let owner_id = import_owner(state, caller, owner).await?;
    let decoded = cmp_pki::decode_import(input, password);
    let rejected: Vec<ImportRejection> = decoded
        .rejected
        .into_iter()
        .map(|r| ImportRejection { item: r.item, reason: r.reason.to_string(), detail: r.detail })
        .collect();
    if decoded.certificates.is_empty() || (!rejected.is_empty() && !partial) {
        let detail = if decoded.certificates.is_empty() {
            "no certificate could be read from the input".to_string()
        } else {
            format!(
                "{} input item(s) refused; nothing was imported (pass partial=true to import the rest)",
                rejected.len()
            )
        };
        return Err(ApiError::Unprocessable {
            detail,
            errors: rejected
                .into_iter()
                .map(|r| ProblemItem { pointer: r.item, reason: r.reason, detail: r.detail })
                .collect(),
        });
    }
    let subjects: Vec<String> = decoded.certificates.iter().map(|c| c.subject.clone()).collect();
    let new: Vec<NewCertificate> = decoded
        .certificates
        .into_iter()
        .map(|facts| NewCertificate {
            facts,
            source: CertificateSource::Import,
            owner_id: owner_id.clone(),
            location: None,
        })
        .collect();
    let outcomes = state.store.import_certificates(&audit_context(state, caller), &new).await?;
    let created = outcomes.iter().filter(|o| o.created).count();
    metrics::counter!("cmp_certificates_imported_total", "outcome" => "created")
        .increment(created as u64);
    Ok(ImportResponse {
        created,
        already_known: outcomes.len() - created,
        certificates: outcomes
            .into_iter()
            .zip(subjects)
            .map(|(o, subject)| ImportedCertificate {
                id: o.id,
                fingerprint_sha256: o.fingerprint_sha256,
                subject,
                outcome: if o.created { "created" } else { "already_known" }.to_string(),
            })
            .collect(),
        rejected,
    })
}

/// Turns listing parameters into a store query, checking every value.
pub async fn certificate_query(
    state: &AppState,
    caller: &Caller,
    p: &cmp_api::CertificateListParams,
) -> ApiResult<CertificateQuery> {
    let now = state.clock.now().unix_timestamp();
    let mut query = CertificateQuery::all(now);
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
            Some(KeyType::parse(k).ok_or_else(|| {
                ApiError::bad_field("key_type", format!("unknown key type {k:?}"))
            })?);
    }
    query.sort = match p.sort.unwrap_or_default() {
        cmp_api::CertificateSortKey::NotAfter => CertificateSort::NotAfter,
        cmp_api::CertificateSortKey::CreatedAt => CertificateSort::CreatedAt,
    };
    query.limit = match p.limit {
        None => 100,
        Some(n @ 1..=500) => n,
        Some(n) => {
            return Err(ApiError::bad_field("limit", format!("{n} is not between 1 and 500")));
        }
    };
    query.cursor = p.cursor.as_deref().map(views::decode_cursor).transpose()?;
    Ok(query)
}

/// Whether the caller may change certificates' owners to `owner_id`.
pub fn check_owner_change(caller: &Caller, owner_id: Option<&str>) -> ApiResult<()> {
    match (caller.role, owner_id) {
        (Role::Admin | Role::Security, _) => Ok(()),
        (_, Some(id)) if caller.may_act_for(id) => Ok(()),
        // A developer may not give a certificate away to a team it is not in, or orphan it.
        _ => Err(ApiError::Forbidden),
    }
}
