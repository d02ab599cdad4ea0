//! Inventory operations: what the handlers and the benchmark call.

use cmp_api::{ImportOutcome, ImportRejection, ImportResponse, ImportedCertificate, ProblemItem};
use cmp_domain::{KeyType, LocationKind, Role};
use cmp_store::{
    AuditContext, CertificateQuery, CertificateSort, CertificateSource, NewCertificate,
    NewLocation, Scope,
};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, REQUEST_ID};
use crate::inventory::views;
use crate::state::AppState;

/// The audit context of a change made by `caller` now.
pub fn audit_context(state: &AppState, caller: &Caller) -> AuditContext {
    AuditContext {
        actor: caller.actor.clone(),
        request_id: REQUEST_ID.try_with(|id| id.clone()).ok(),
        now_us: state.now_us(),
    }
}

/// Resolves an owner given by id or name, and checks that the caller may act for it.
pub async fn resolve_owner(
    state: &AppState,
    caller: &Caller,
    id_or_name: &str,
) -> ApiResult<String> {
    let owner = state.lookups.owner(state.store.as_ref(), id_or_name).await?;
    if !caller.may_act_for(&owner.id) {
        return Err(ApiError::Forbidden(format!(
            "this token may act only for its own teams, not for owner {id_or_name}"
        )));
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

/// What an import was given.
#[derive(Clone, Copy)]
pub struct ImportInput<'a> {
    /// PEM, DER, PKCS#7 or PKCS#12 bytes.
    pub data: &'a [u8],
    /// PKCS#12 password.
    pub password: Option<&'a str>,
    /// Owner (id or name) of the certificates created.
    pub owner: Option<&'a str>,
    /// Where they were seen, `kind:address`.
    pub location: Option<&'a str>,
    /// Store the good certificates even if some input items are refused.
    pub partial: bool,
}

/// Decodes, checks and stores an import. All or nothing unless `partial`.
pub async fn import(
    state: &AppState,
    caller: &Caller,
    input: ImportInput<'_>,
) -> ApiResult<ImportResponse> {
    let owner_id = import_owner(state, caller, input.owner).await?;
    let location = input.location.map(parse_location).transpose()?;
    let partial = input.partial;
    // Parsing a large bundle takes a while: keep it off the async workers.
    let (data, password) = (input.data.to_vec(), input.password.map(str::to_string));
    let decoded =
        tokio::task::spawn_blocking(move || cmp_pki::decode_import(&data, password.as_deref()))
            .await
            .map_err(|e| ApiError::Internal(format!("import decoder stopped: {e}")))?;
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
            location: location.clone(),
            issued: None,
        })
        .collect();
    let outcomes =
        state.store.import_certificates(&audit_context(state, caller), &caller.scope, &new).await?;
    let outcomes: Vec<(ImportOutcome, cmp_store::ImportOutcome)> =
        outcomes.into_iter().map(|o| (outcome_of(&o), o)).collect();
    let count = |which: ImportOutcome| outcomes.iter().filter(|(o, _)| *o == which).count();
    let created = count(ImportOutcome::Created);
    metrics::counter!("cmp_certificates_imported_total", "outcome" => "created")
        .increment(created as u64);
    Ok(ImportResponse {
        created,
        already_known: count(ImportOutcome::AlreadyKnown),
        known_elsewhere: count(ImportOutcome::KnownElsewhere),
        certificates: outcomes
            .into_iter()
            .zip(subjects)
            .map(|((outcome, o), subject)| ImportedCertificate {
                // Another team's certificate: that it exists, nothing more.
                id: (outcome != ImportOutcome::KnownElsewhere).then_some(o.id),
                fingerprint_sha256: o.fingerprint_sha256,
                subject,
                outcome,
            })
            .collect(),
        rejected,
    })
}

/// What the caller is told about one imported certificate.
fn outcome_of(o: &cmp_store::ImportOutcome) -> ImportOutcome {
    match (o.created, o.in_scope) {
        (true, _) => ImportOutcome::Created,
        (false, true) => ImportOutcome::AlreadyKnown,
        (false, false) => ImportOutcome::KnownElsewhere,
    }
}

/// Parses `kind:address`, e.g. `endpoint:web1.example.com:443`.
pub fn parse_location(value: &str) -> ApiResult<NewLocation> {
    let bad = |why: &str| ApiError::bad_field("location", why.to_string());
    let (kind, address) = value.split_once(':').ok_or_else(|| bad("expected kind:address"))?;
    let kind = LocationKind::parse(kind).ok_or_else(|| bad("kind is endpoint, file or k8s"))?;
    if address.is_empty() || address.len() > 1024 || address.chars().any(char::is_control) {
        return Err(bad("address must be 1-1024 printable characters"));
    }
    Ok(NewLocation { kind, address: address.to_string() })
}

/// Turns listing parameters into a store query, checking every value.
pub async fn certificate_query(
    state: &AppState,
    caller: &Caller,
    p: &cmp_api::CertificateListParams,
    now: time::OffsetDateTime,
) -> ApiResult<CertificateQuery> {
    let mut query = CertificateQuery::all(now.unix_timestamp());
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
    query.limit = views::page_limit(p.limit)?;
    query.cursor = p.cursor.as_deref().map(|c| views::decode_cursor(query.sort, c)).transpose()?;
    Ok(query)
}

/// Whether the caller may change certificates' owners to `owner_id`.
pub fn check_owner_change(caller: &Caller, owner_id: Option<&str>) -> ApiResult<()> {
    match (caller.role, owner_id) {
        (Role::Admin | Role::Security, _) => Ok(()),
        (_, Some(id)) if caller.may_act_for(id) => Ok(()),
        // A developer may not give a certificate away to a team it is not in, or orphan it.
        _ => Err(ApiError::Forbidden(
            "a developer may give certificates only to its own teams".into(),
        )),
    }
}
