//! Issuance requests: creation with idempotency keys, approval, claiming an attempt, and the
//! transactions that finish one (the certificate lands in the inventory with its links).

use async_trait::async_trait;
use cmp_domain::{CertificateFacts, RequestKind, RequestSpec, RequestState};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::AuditAction;
use crate::adapters::{LedgerRow, ledger_insert_in};
use crate::audit;
use crate::certificates::{import_chunk_with, push_owner_scope};
use crate::group_commit::ClaimedRequest;
use crate::sql::{Arg, SqlBuilder, from_json, to_json};
use crate::{
    AuditContext, CertificateSource, CompletedRequest, Cursor, IssuedLinks, IssuedRequest,
    NewAuditEvent, NewCertificate, Page, Scope, SqlStore, StoreError, StoreResult,
};

/// One issuance request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub id: String,
    pub kind: RequestKind,
    pub state: RequestState,
    pub owner_id: Option<String>,
    pub adapter_id: String,
    pub managed_certificate_id: Option<String>,
    /// The certificate issued (issue, renew) or to revoke (revoke).
    pub certificate_id: Option<String>,
    /// What was asked: names, validity, key source, revocation reason.
    pub spec: RequestSpec,
    /// PKCS#10 DER (issue, renew).
    pub csr: Option<Vec<u8>>,
    /// Name of a server-generated private key in the secret store.
    pub key_secret: Option<String>,
    pub requested_by: String,
    pub decided_by: Option<String>,
    pub decision_comment: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<i64>,
    pub lease_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A request to create.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// Made by the caller, which may have stored a key under it already.
    pub id: String,
    pub kind: RequestKind,
    /// `awaiting_approval` or `approved` (the policy decided which).
    pub state: RequestState,
    pub owner_id: Option<String>,
    pub adapter_id: String,
    pub managed_certificate_id: Option<String>,
    pub certificate_id: Option<String>,
    pub spec: RequestSpec,
    pub csr: Option<Vec<u8>>,
    pub key_secret: Option<String>,
    pub requested_by: String,
    /// For an approved request the caller carries out at once: its first attempt is claimed
    /// in the same transaction (`submitted`, attempt 1, held until this time).
    pub claim_until: Option<i64>,
}

impl NewRequest {
    /// The end of its first attempt's claim, for an approved request carried out at once.
    pub fn claimed_until(&self) -> Option<i64> {
        self.claim_until.filter(|_| self.state == RequestState::Approved)
    }
}

/// An `Idempotency-Key` with what it must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub caller: String,
    pub key: String,
    /// SHA-256 of the request body, hex.
    pub body_hash: String,
    /// Keys created before this time (Unix seconds) are forgotten.
    pub not_before: i64,
}

/// Filters of a request listing, newest first.
#[derive(Debug, Clone)]
pub struct RequestQuery {
    pub scope: Scope,
    pub state: Option<RequestState>,
    pub kind: Option<RequestKind>,
    pub managed_certificate_id: Option<String>,
    pub limit: u32,
    pub cursor: Option<Cursor>,
}

/// A certificate an adapter issued, to put in the inventory.
#[derive(Debug, Clone)]
pub struct IssuedRecord {
    pub facts: CertificateFacts,
    pub chain: Vec<CertificateFacts>,
    /// Findings about how it was issued that its facts alone do not show (e.g. a CA that
    /// ignored the requested lifetime), stored with the leaf.
    pub findings: Vec<cmp_domain::Finding>,
}

/// Issuance requests.
#[async_trait]
pub trait RequestStore: Send + Sync {
    /// Creates a request, or with an idempotency key already used by this caller for the same
    /// body, returns the first one (`false`: not created now). The same key with another body
    /// is `StoreError::Unprocessable`. A request claimed for its first attempt is stored with
    /// concurrent ones in one transaction (group commit).
    async fn create_request(
        &self,
        ctx: &AuditContext,
        request: &NewRequest,
        idempotency: Option<&IdempotencyKey>,
    ) -> StoreResult<(RequestRecord, bool)>;
    /// Stores an approved request that a CA in this process has signed already, finished: the
    /// request, the CA's ledger row, the certificate and its chain, and every audit event, in
    /// one transaction. A local CA's signature leaves no trace outside this database, so a
    /// crash before the commit loses nothing. With a live idempotency key, returns the first
    /// request and this signature is dropped. Concurrent calls share a transaction (group
    /// commit).
    async fn create_issued_request(
        &self,
        item: IssuedRequest,
    ) -> StoreResult<(RequestRecord, bool)>;
    /// The request a live idempotency key made, if any (`Unprocessable` for another body).
    async fn find_idempotent(&self, key: &IdempotencyKey) -> StoreResult<Option<String>>;
    async fn get_request(&self, id: &str, scope: &Scope) -> StoreResult<RequestRecord>;
    async fn list_requests(&self, query: &RequestQuery) -> StoreResult<Page<RequestRecord>>;
    /// Approves or rejects a request awaiting approval (`Conflict` otherwise).
    async fn decide_request(
        &self,
        ctx: &AuditContext,
        id: &str,
        approve: bool,
        comment: Option<&str>,
    ) -> StoreResult<RequestRecord>;
    /// Takes the next attempt of an approved request whose retry time has come, or of a
    /// submitted one whose lease ran out (its worker died): `None` if someone else has it.
    async fn claim_request(
        &self,
        ctx: &AuditContext,
        id: &str,
        lease_until: i64,
    ) -> StoreResult<Option<RequestRecord>>;
    /// Finishes a submitted issue or renew request: the certificate and its chain go to the
    /// inventory, linked to the request, the adapter and the managed certificate, in one
    /// transaction with its audit event. A request that is not `submitted` (finished already,
    /// or failed) is `Conflict` and nothing is stored. Concurrent calls share a transaction
    /// (group commit); each is answered after its commit.
    async fn complete_issue(
        &self,
        ctx: &AuditContext,
        id: &str,
        issued: &IssuedRecord,
    ) -> StoreResult<RequestRecord>;
    /// Finishes a revoke request: the certificate is marked revoked.
    async fn complete_revoke(
        &self,
        ctx: &AuditContext,
        id: &str,
        reason: &str,
    ) -> StoreResult<RequestRecord>;
    /// Records a failed attempt: back to `approved` until `retry_at`, or `failed` for good.
    async fn fail_request(
        &self,
        ctx: &AuditContext,
        id: &str,
        error: &str,
        retry_at: Option<i64>,
    ) -> StoreResult<RequestRecord>;
    /// Ids of requests a worker should pick up at `now`.
    async fn due_requests(&self, now: i64, limit: u32) -> StoreResult<Vec<String>>;
    /// Forgets idempotency keys created before `before`; returns how many.
    async fn purge_idempotency_keys(&self, before: i64) -> StoreResult<u64>;
}

pub(crate) fn request_from_row(row: &AnyRow) -> StoreResult<RequestRecord> {
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    Ok(RequestRecord {
        id: row.try_get("id")?,
        kind: RequestKind::parse(&kind)
            .ok_or_else(|| StoreError::corrupt("request kind", &kind))?,
        state: RequestState::parse(&state)
            .ok_or_else(|| StoreError::corrupt("request state", &state))?,
        owner_id: row.try_get("owner_id")?,
        adapter_id: row.try_get("adapter_id")?,
        managed_certificate_id: row.try_get("managed_certificate_id")?,
        certificate_id: row.try_get("certificate_id")?,
        spec: from_json(row, "spec")?,
        csr: row.try_get("csr")?,
        key_secret: row.try_get("key_secret")?,
        requested_by: row.try_get("requested_by")?,
        decided_by: row.try_get("decided_by")?,
        decision_comment: row.try_get("decision_comment")?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        lease_until: row.try_get("lease_until")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(crate) fn request_event(
    action: AuditAction,
    id: &str,
    details: serde_json::Value,
) -> NewAuditEvent {
    NewAuditEvent { action, entity_type: "issuance_request".into(), entity_id: id.into(), details }
}

pub(crate) async fn request_in_tx(
    tx: &mut Transaction<'_, Any>,
    id: &str,
) -> StoreResult<RequestRecord> {
    let row = sqlx::query("SELECT * FROM issuance_requests WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::not_found("request", id))?;
    request_from_row(&row)
}

/// Looks up a live idempotency key: the resource it made, or a mismatch.
async fn find_idempotent(
    tx: &mut Transaction<'_, Any>,
    key: &IdempotencyKey,
) -> StoreResult<Option<String>> {
    let row = sqlx::query(
        "SELECT body_hash, resource_id FROM idempotency_keys \
         WHERE caller = $1 AND key = $2 AND created_at >= $3",
    )
    .bind(&key.caller)
    .bind(&key.key)
    .bind(key.not_before)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let body_hash: String = row.try_get("body_hash")?;
    if body_hash != key.body_hash {
        return Err(key_body_mismatch());
    }
    Ok(Some(row.try_get("resource_id")?))
}

/// The answer to a live idempotency key sent with another body.
pub(crate) fn key_body_mismatch() -> StoreError {
    StoreError::Unprocessable("this Idempotency-Key was used with a different request body".into())
}

/// Moves a request from `from` to `to` with extra assignments, or says why it cannot.
async fn transition(
    tx: &mut Transaction<'_, Any>,
    id: &str,
    from: &[RequestState],
    to: RequestState,
    now: i64,
    extra: &[(&str, Arg)],
) -> StoreResult<()> {
    let mut b = SqlBuilder::new("UPDATE issuance_requests SET state = ");
    b.bind(Arg::Text(to.as_str().into())).push(", updated_at = ").bind(Arg::Int(now));
    for (column, value) in extra {
        b.push(&format!(", {column} = ")).bind(value.clone());
    }
    b.push(" WHERE id = ").bind(Arg::Text(id.into())).push(" AND state IN ");
    b.row(from.iter().map(|s| Arg::Text(s.as_str().into())));
    if b.query().execute(&mut **tx).await?.rows_affected() == 1 {
        return Ok(());
    }
    let current = request_in_tx(tx, id).await?;
    Err(cannot_become(id, current.state, to))
}

/// The answer to a change of state that the request's current state does not allow.
pub(crate) fn cannot_become(id: &str, current: RequestState, to: RequestState) -> StoreError {
    StoreError::Conflict(format!(
        "request {id} is {}, it cannot become {}",
        current.as_str(),
        to.as_str()
    ))
}

/// Inserts a request (and its idempotency key), pushing its audit events to `events`;
/// `Some(existing id)` instead when a live key already made one.
async fn insert_request_in(
    tx: &mut Transaction<'_, Any>,
    ctx: &AuditContext,
    request: &NewRequest,
    idempotency: Option<&IdempotencyKey>,
    events: &mut Vec<NewAuditEvent>,
) -> StoreResult<Option<String>> {
    let id = request.id.clone();
    let now = ctx.now();
    if let Some(key) = idempotency {
        if let Some(existing) = find_idempotent(tx, key).await? {
            return Ok(Some(existing));
        }
        // An expired key of the same name is forgotten, so that it can be used again. Only
        // an expired one: a live key a concurrent retry just committed must make this
        // INSERT conflict (and this retry return that request), not be deleted.
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE caller = $1 AND key = $2 AND created_at < $3",
        )
        .bind(&key.caller)
        .bind(&key.key)
        .bind(key.not_before)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO idempotency_keys (caller, key, body_hash, resource_id, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&key.caller)
        .bind(&key.key)
        .bind(&key.body_hash)
        .bind(&id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    let claim = request.claimed_until();
    let state = if claim.is_some() { RequestState::Submitted } else { request.state };
    let mut insert = SqlBuilder::new(REQUEST_INSERT);
    insert.row(request_row(request, state, request.certificate_id.clone(), now)?);
    insert.query().execute(&mut **tx).await?;
    events.extend(created_events(request));
    Ok(None)
}

/// The head of a (multi-row) request INSERT; rows come from [`request_row`].
pub(crate) const REQUEST_INSERT: &str = "INSERT INTO issuance_requests (id, kind, state, \
     owner_id, adapter_id, managed_certificate_id, certificate_id, spec, csr, key_secret, \
     requested_by, attempts, lease_until, created_at, updated_at) VALUES ";

/// A new request's row in `state`; a claimed request (approved and carried out at once) is on
/// its first attempt.
pub(crate) fn request_row(
    request: &NewRequest,
    state: RequestState,
    certificate_id: Option<String>,
    now: i64,
) -> StoreResult<Vec<Arg>> {
    let claim = request.claimed_until();
    Ok(vec![
        Arg::Text(request.id.clone()),
        Arg::Text(request.kind.as_str().into()),
        Arg::Text(state.as_str().into()),
        Arg::OptText(request.owner_id.clone()),
        Arg::Text(request.adapter_id.clone()),
        Arg::OptText(request.managed_certificate_id.clone()),
        Arg::OptText(certificate_id),
        Arg::Text(to_json(&request.spec)?),
        Arg::OptBytes(request.csr.clone()),
        Arg::OptText(request.key_secret.clone()),
        Arg::Text(request.requested_by.clone()),
        Arg::Int(i64::from(claim.is_some())),
        Arg::OptInt(claim),
        Arg::Int(now),
        Arg::Int(now),
    ])
}

/// The audit events of a new request: created, and submitted when it is claimed at once.
pub(crate) fn created_events(request: &NewRequest) -> Vec<NewAuditEvent> {
    let details = json!({
        "kind": request.kind.as_str(),
        "state": request.state.as_str(),
        "owner_id": request.owner_id,
        "adapter_id": request.adapter_id,
        "managed_certificate_id": request.managed_certificate_id,
        "certificate_id": request.certificate_id,
        "spec": request.spec,
    });
    let mut events = vec![request_event(AuditAction::RequestCreated, &request.id, details)];
    if request.claimed_until().is_some() {
        let details = json!({"attempt": 1, "adapter_id": request.adapter_id});
        events.push(request_event(AuditAction::RequestSubmitted, &request.id, details));
    }
    events
}

/// An issued certificate's rows for the inventory: the chain first (CA certificates are
/// ownerless), then the leaf with the owner and its links.
pub(crate) fn issued_certificates(
    issued: &IssuedRecord,
    owner_id: Option<String>,
    links: IssuedLinks,
) -> Vec<NewCertificate> {
    let chain = issued.chain.iter().map(|facts| NewCertificate {
        facts: facts.clone(),
        source: CertificateSource::Issued,
        owner_id: None,
        location: None,
        issued: None,
    });
    let leaf = NewCertificate {
        facts: issued.facts.clone(),
        source: CertificateSource::Issued,
        owner_id,
        location: None,
        issued: Some(links),
    };
    chain.chain(std::iter::once(leaf)).collect()
}

/// The audit event of an issue or renew request finished with certificate `leaf`.
pub(crate) fn issued_event(
    id: &str,
    leaf: &str,
    issued: &IssuedRecord,
    managed_certificate_id: Option<&str>,
) -> NewAuditEvent {
    let details = json!({
        "certificate_id": leaf,
        "serial_number": issued.facts.serial_number,
        "fingerprint_sha256": issued.facts.fingerprint_sha256,
        "managed_certificate_id": managed_certificate_id,
    });
    request_event(AuditAction::RequestIssued, id, details)
}

/// Makes `leaf` the current version of a managed certificate, whose renewal starts afresh, and
/// queues its deployments.
pub(crate) async fn set_current_version(
    tx: &mut Transaction<'_, Any>,
    managed: &str,
    leaf: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE managed_certificates SET current_certificate_id = $1, \
         renewal_failures = 0, last_failure_at = NULL, last_error = NULL, \
         next_check_at = $2, updated_at = $2 WHERE id = $3",
    )
    .bind(leaf)
    .bind(now)
    .bind(managed)
    .execute(&mut **tx)
    .await?;
    crate::agents::queue_deploy_jobs(tx, managed, leaf, now).await
}

/// Adds issuance findings to leaves' `finding_flags`.
pub(crate) async fn add_findings(
    tx: &mut Transaction<'_, Any>,
    findings: &[(String, &[cmp_domain::Finding])],
) -> StoreResult<()> {
    for (leaf, found) in findings.iter().filter(|(_, found)| !found.is_empty()) {
        let flags = crate::certificates::flags_of(found);
        sqlx::query("UPDATE certificates SET finding_flags = finding_flags | $1 WHERE id = $2")
            .bind(flags)
            .bind(leaf)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Finishes an issue or renew request inside `tx` (see [`RequestStore::complete_issue`]),
/// pushing its audit events to `events`.
async fn complete_issue_in(
    tx: &mut Transaction<'_, Any>,
    ctx: &AuditContext,
    id: &str,
    issued: &IssuedRecord,
    events: &mut Vec<NewAuditEvent>,
) -> StoreResult<()> {
    let now = ctx.now();
    let request = request_in_tx(tx, id).await?;
    let links = IssuedLinks {
        adapter_id: request.adapter_id.clone(),
        managed_certificate_id: request.managed_certificate_id.clone(),
        key_secret: request.key_secret.clone(),
    };
    let certificates = issued_certificates(issued, request.owner_id.clone(), links);
    let outcomes = import_chunk_with(tx, ctx, &Scope::All, &certificates, events).await?;
    let leaf = outcomes.last().ok_or_else(|| StoreError::corrupt("import outcome", "no leaf"))?;
    if !leaf.created {
        // Known already (an import saw it first): link it now.
        sqlx::query(
            "UPDATE certificates SET managed_certificate_id = $1, adapter_id = $2, \
             key_secret = $3 WHERE id = $4",
        )
        .bind(&request.managed_certificate_id)
        .bind(&request.adapter_id)
        .bind(&request.key_secret)
        .bind(&leaf.id)
        .execute(&mut **tx)
        .await?;
    }
    let leaf = leaf.id.clone();
    let chain: Vec<String> =
        outcomes[..outcomes.len() - 1].iter().map(|outcome| outcome.id.clone()).collect();
    crate::chains::link_chains(tx, &[(leaf.clone(), chain)]).await?;
    add_findings(tx, &[(leaf.clone(), &issued.findings[..])]).await?;
    let extra = [("certificate_id", Arg::Text(leaf.clone())), ("last_error", Arg::OptText(None))];
    transition(tx, id, &[RequestState::Submitted], RequestState::Issued, now, &extra).await?;
    if let Some(managed) = &request.managed_certificate_id {
        set_current_version(tx, managed, &leaf, now).await?;
    }
    events.push(issued_event(id, &leaf, issued, request.managed_certificate_id.as_deref()));
    Ok(())
}

impl SqlStore {
    /// Inserts a request; with `signed`, also its ledger row and its certificate, finished.
    pub(crate) async fn insert_request(
        &self,
        ctx: &AuditContext,
        request: &NewRequest,
        signed: Option<(&LedgerRow, &IssuedRecord)>,
        idempotency: Option<&IdempotencyKey>,
    ) -> StoreResult<(RequestRecord, bool)> {
        let mut tx = self.begin().await?;
        // Every audit event of the transaction goes in one append at its end.
        let mut events = Vec::new();
        if let Some(existing) =
            insert_request_in(&mut tx, ctx, request, idempotency, &mut events).await?
        {
            return Ok((request_in_tx(&mut tx, &existing).await?, false));
        }
        if let Some((ledger, issued)) = signed {
            if !ledger_insert_in(&mut tx, ledger).await? {
                return Err(StoreError::Conflict(format!(
                    "request {} already has a certificate in the ledger",
                    request.id
                )));
            }
            complete_issue_in(&mut tx, ctx, &request.id, issued, &mut events).await?;
        }
        audit::append_many(&mut tx, ctx, &events).await?;
        let record = request_in_tx(&mut tx, &request.id).await?;
        tx.commit().await?;
        Ok((record, true))
    }

    /// Finishes a submitted request in a transaction of its own (see
    /// [`RequestStore::complete_issue`]): the group commit's way when a batch fails as a whole.
    pub(crate) async fn complete_issue_alone(
        &self,
        ctx: &AuditContext,
        id: &str,
        issued: &IssuedRecord,
    ) -> StoreResult<RequestRecord> {
        let mut tx = self.begin().await?;
        let mut events = Vec::new();
        complete_issue_in(&mut tx, ctx, id, issued, &mut events).await?;
        audit::append_many(&mut tx, ctx, &events).await?;
        let record = request_in_tx(&mut tx, id).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Two retries raced with one idempotency key (PostgreSQL): the loser returns the
    /// winner's request.
    pub(crate) async fn settle_key_race(
        &self,
        inserted: StoreResult<(RequestRecord, bool)>,
        idempotency: Option<&IdempotencyKey>,
    ) -> StoreResult<(RequestRecord, bool)> {
        match inserted {
            Err(StoreError::Conflict(why)) => {
                let Some(key) = idempotency else { return Err(StoreError::Conflict(why)) };
                let mut tx = self.begin().await?;
                match find_idempotent(&mut tx, key).await? {
                    Some(existing) => Ok((request_in_tx(&mut tx, &existing).await?, false)),
                    None => Err(StoreError::Conflict(why)),
                }
            }
            other => other,
        }
    }
}

#[async_trait]
impl RequestStore for SqlStore {
    async fn create_request(
        &self,
        ctx: &AuditContext,
        request: &NewRequest,
        idempotency: Option<&IdempotencyKey>,
    ) -> StoreResult<(RequestRecord, bool)> {
        if request.claimed_until().is_some() {
            // Carried out at once by a CA outside this process: stored with the concurrent
            // ones (the group commit), and answered once committed, before the CA is called.
            let key = idempotency.cloned();
            let item = ClaimedRequest { ctx: ctx.clone(), request: request.clone(), key };
            return self.commit_claimed(item).await;
        }
        let inserted = self.insert_request(ctx, request, None, idempotency).await;
        self.settle_key_race(inserted, idempotency).await
    }

    async fn create_issued_request(
        &self,
        item: IssuedRequest,
    ) -> StoreResult<(RequestRecord, bool)> {
        self.commit_issued(item).await
    }

    async fn find_idempotent(&self, key: &IdempotencyKey) -> StoreResult<Option<String>> {
        let mut tx = self.begin().await?;
        find_idempotent(&mut tx, key).await
    }

    async fn get_request(&self, id: &str, scope: &Scope) -> StoreResult<RequestRecord> {
        let mut b = SqlBuilder::new("SELECT * FROM issuance_requests WHERE id = ");
        b.bind(Arg::Text(id.into()));
        push_owner_scope(&mut b, "owner_id", scope);
        let row = b
            .query()
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| StoreError::not_found("request", id))?;
        request_from_row(&row)
    }

    async fn list_requests(&self, query: &RequestQuery) -> StoreResult<Page<RequestRecord>> {
        let limit = query.limit.clamp(1, 500);
        let mut b = SqlBuilder::new("SELECT * FROM issuance_requests WHERE 1 = 1");
        push_owner_scope(&mut b, "owner_id", &query.scope);
        if let Some(state) = query.state {
            b.push(" AND state = ").bind(Arg::Text(state.as_str().into()));
        }
        if let Some(kind) = query.kind {
            b.push(" AND kind = ").bind(Arg::Text(kind.as_str().into()));
        }
        if let Some(managed) = &query.managed_certificate_id {
            b.push(" AND managed_certificate_id = ").bind(Arg::Text(managed.clone()));
        }
        b.newest_first_page(query.cursor.as_ref(), limit);
        let items = b
            .query()
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(request_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_rows(items, limit, |r| Cursor { key: r.created_at, id: r.id.clone() }))
    }

    async fn decide_request(
        &self,
        ctx: &AuditContext,
        id: &str,
        approve: bool,
        comment: Option<&str>,
    ) -> StoreResult<RequestRecord> {
        let to = if approve { RequestState::Approved } else { RequestState::Rejected };
        let mut tx = self.begin().await?;
        let extra = [
            ("decided_by", Arg::Text(ctx.actor.clone())),
            ("decision_comment", Arg::OptText(comment.map(str::to_string))),
        ];
        transition(&mut tx, id, &[RequestState::AwaitingApproval], to, ctx.now(), &extra).await?;
        let action =
            if approve { AuditAction::RequestApproved } else { AuditAction::RequestRejected };
        audit::append(&mut tx, ctx, &request_event(action, id, json!({"comment": comment})))
            .await?;
        let record = request_in_tx(&mut tx, id).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn claim_request(
        &self,
        ctx: &AuditContext,
        id: &str,
        lease_until: i64,
    ) -> StoreResult<Option<RequestRecord>> {
        let now = ctx.now();
        let mut tx = self.begin().await?;
        let claimed = sqlx::query(
            "UPDATE issuance_requests SET state = 'submitted', attempts = attempts + 1, \
             lease_until = $1, updated_at = $2 WHERE id = $3 AND ( \
             (state = 'approved' AND (next_attempt_at IS NULL OR next_attempt_at <= $2)) \
             OR (state = 'submitted' AND lease_until < $2))",
        )
        .bind(lease_until)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            return Ok(None);
        }
        let record = request_in_tx(&mut tx, id).await?;
        let details = json!({"attempt": record.attempts, "adapter_id": record.adapter_id});
        audit::append(&mut tx, ctx, &request_event(AuditAction::RequestSubmitted, id, details))
            .await?;
        tx.commit().await?;
        Ok(Some(record))
    }

    async fn complete_issue(
        &self,
        ctx: &AuditContext,
        id: &str,
        issued: &IssuedRecord,
    ) -> StoreResult<RequestRecord> {
        let item =
            CompletedRequest { ctx: ctx.clone(), id: id.to_string(), issued: issued.clone() };
        self.commit_completed(item).await
    }

    async fn complete_revoke(
        &self,
        ctx: &AuditContext,
        id: &str,
        reason: &str,
    ) -> StoreResult<RequestRecord> {
        let now = ctx.now();
        let mut tx = self.begin().await?;
        let request = request_in_tx(&mut tx, id).await?;
        let certificate = request
            .certificate_id
            .clone()
            .ok_or_else(|| StoreError::corrupt("revoke request", "no certificate"))?;
        sqlx::query(
            "UPDATE certificates SET revoked_at = $1, revocation_reason = $2, updated_at = $1 \
             WHERE id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(reason)
        .bind(&certificate)
        .execute(&mut *tx)
        .await?;
        transition(&mut tx, id, &[RequestState::Submitted], RequestState::Issued, now, &[]).await?;
        // A managed certificate whose current version this was is looked at now (and replaced).
        sqlx::query(
            "UPDATE managed_certificates SET next_check_at = $1 WHERE current_certificate_id = $2",
        )
        .bind(now)
        .bind(&certificate)
        .execute(&mut *tx)
        .await?;
        let details = json!({"certificate_id": certificate, "reason": reason});
        audit::append(&mut tx, ctx, &request_event(AuditAction::CertificateRevoked, id, details))
            .await?;
        let record = request_in_tx(&mut tx, id).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn fail_request(
        &self,
        ctx: &AuditContext,
        id: &str,
        error: &str,
        retry_at: Option<i64>,
    ) -> StoreResult<RequestRecord> {
        let now = ctx.now();
        let mut tx = self.begin().await?;
        let from = [RequestState::Submitted, RequestState::Approved, RequestState::Pending];
        let error_arg = ("last_error", Arg::Text(error.into()));
        match retry_at {
            Some(at) => {
                let extra = [error_arg, ("next_attempt_at", Arg::Int(at))];
                transition(&mut tx, id, &from[..1], RequestState::Approved, now, &extra).await?;
            }
            None => {
                transition(&mut tx, id, &from, RequestState::Failed, now, &[error_arg]).await?;
                let request = request_in_tx(&mut tx, id).await?;
                if let Some(managed) = &request.managed_certificate_id {
                    sqlx::query(
                        "UPDATE managed_certificates SET renewal_failures = renewal_failures + 1, \
                         last_failure_at = $1, last_error = $2, next_check_at = $1, \
                         updated_at = $1 WHERE id = $3",
                    )
                    .bind(now)
                    .bind(error)
                    .bind(managed)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        let action = if retry_at.is_some() {
            AuditAction::RequestRetryScheduled
        } else {
            AuditAction::RequestFailed
        };
        let details = json!({"error": error, "retry_at": retry_at});
        audit::append(&mut tx, ctx, &request_event(action, id, details)).await?;
        let record = request_in_tx(&mut tx, id).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn due_requests(&self, now: i64, limit: u32) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT id FROM issuance_requests WHERE \
             (state = 'approved' AND (next_attempt_at IS NULL OR next_attempt_at <= $1)) \
             OR (state = 'submitted' AND lease_until < $1) ORDER BY created_at LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    async fn purge_idempotency_keys(&self, before: i64) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(before)
            .execute(&self.write)
            .await?
            .rows_affected())
    }
}
