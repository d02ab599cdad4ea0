//! Group commit of issuance requests: what concurrent callers hand over while a commit is
//! running is stored together in the next transaction, with one multi-row statement per table
//! and one audit append, instead of a transaction each. Three kinds of item share the queue:
//! requests signed in this process, stored new and issued (`create_issued_request`); approved
//! requests stored claimed for a CA outside it, which signs them next (`create_request` of a
//! claimed request); and those claimed requests, finished once signed (`complete_issue`).
//!
//! Why: on SQLite every statement costs two thread hand-offs to sqlx's worker thread, whatever
//! it does, and there is one writer; on PostgreSQL every statement is a round trip and every
//! audited transaction takes the chain head's row lock. A batch pays both once. One queue for
//! both kinds, not one each: two committing tasks would take turns on SQLite's one writer and
//! on the chain head's lock, each with half a batch, where one task commits both together.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Connection, Row, Transaction};

use crate::adapters::{LEDGER_INSERT, LedgerRow, ledger_row};
use crate::audit;
use crate::batch::Batcher;
use crate::certificates::import_chunk_with;
use crate::requests::{
    REQUEST_INSERT, add_findings, cannot_become, created_events, issued_certificates, issued_event,
    key_body_mismatch, request_from_row, request_row, set_current_version,
};
use crate::sql::{Arg, SqlBuilder, run_statements};
use crate::{
    AuditContext, IdempotencyKey, IssuedLinks, IssuedRecord, NewAuditEvent, NewRequest,
    RequestRecord, Scope, SqlStore, StoreError, StoreResult,
};
use cmp_domain::RequestState;

/// Requests per transaction: a few hundred parameters per statement.
const MAX_BATCH: usize = 64;

/// How long the group commit keeps the write connection while requests keep coming.
const HOLD_WRITER: Duration = Duration::from_millis(20);

/// An approved request a CA in this process has signed, to store issued.
#[derive(Debug, Clone)]
pub struct IssuedRequest {
    pub ctx: AuditContext,
    pub request: NewRequest,
    pub key: Option<IdempotencyKey>,
    pub ledger: LedgerRow,
    pub issued: IssuedRecord,
}

/// An approved request to store claimed (`submitted`) for its first attempt, which a CA
/// outside this process carries out next: stored before the CA is called, so that a crash
/// after the call still finds it.
#[derive(Debug, Clone)]
pub(crate) struct ClaimedRequest {
    pub ctx: AuditContext,
    pub request: NewRequest,
    pub key: Option<IdempotencyKey>,
}

/// A claimed (`submitted`) request that a CA outside this process has signed, to finish
/// ([`crate::RequestStore::complete_issue`]).
#[derive(Debug, Clone)]
pub struct CompletedRequest {
    pub ctx: AuditContext,
    /// The request's id.
    pub id: String,
    pub issued: IssuedRecord,
}

/// The answer to an [`IssuedRequest`] or a [`ClaimedRequest`]: the request, and whether it was
/// created now.
type Answer = StoreResult<(RequestRecord, bool)>;

/// The answer to a [`CompletedRequest`]: the request, issued.
type Completion = StoreResult<RequestRecord>;

/// The answers to a batch of issued and completed requests: one per item, in order.
#[cfg(feature = "testing")]
type Answers = (Vec<Answer>, Vec<Completion>);

/// A batch: the items of each kind, in the order they came.
#[derive(Default)]
struct Batch {
    issued: Vec<IssuedRequest>,
    claimed: Vec<ClaimedRequest>,
    completed: Vec<CompletedRequest>,
}

/// The answers to a [`Batch`], one per item of each kind, in order.
#[derive(Default)]
struct BatchAnswers {
    issued: Vec<Answer>,
    claimed: Vec<Answer>,
    completed: Vec<Completion>,
}

/// An item of any kind, as it waits for the next commit.
// Each item is moved into the queue once and out of it once: boxing the larger kind would
// cost an allocation per request to save a few hundred bytes while it waits.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Item {
    Issued(IssuedRequest),
    Claimed(ClaimedRequest),
    Completed(CompletedRequest),
}

/// An [`Item`]'s kind, without the item.
enum Kind {
    Issued,
    Claimed,
    Completed,
}

/// The answer to an [`Item`], of its kind.
pub(crate) enum Reply {
    Stored(Answer),
    Completed(Completion),
}

/// The items waiting for the next commit: one queue for every kind (see the module's
/// documentation).
pub(crate) type GroupCommit = Batcher<Item, Reply>;

/// An empty queue, for a new store.
pub(crate) fn group_commit() -> Arc<GroupCommit> {
    Arc::new(Batcher::new(MAX_BATCH))
}

/// The write connection a committing task keeps from one batch to the next, and since when.
type HeldWriter = Arc<tokio::sync::Mutex<Option<(PoolConnection<Any>, Instant)>>>;

/// What a request's idempotency key decides.
enum Plan {
    Fresh,
    /// A live key made this request already.
    Existing(String),
    Refused(StoreError),
}

/// What a caller whose item's commit ended early (a panic) is told.
fn no_answer() -> StoreError {
    StoreError::corrupt("group commit", "ended without an answer")
}

impl SqlStore {
    /// Queues a signed new request for the next group commit and waits for its answer.
    pub(crate) async fn commit_issued(&self, item: IssuedRequest) -> Answer {
        match self.commit(Item::Issued(item)).await? {
            Reply::Stored(answer) => answer,
            Reply::Completed(_) => Err(no_answer()),
        }
    }

    /// Queues an approved request, to store claimed, for the next group commit and waits for
    /// its answer.
    pub(crate) async fn commit_claimed(&self, item: ClaimedRequest) -> Answer {
        match self.commit(Item::Claimed(item)).await? {
            Reply::Stored(answer) => answer,
            Reply::Completed(_) => Err(no_answer()),
        }
    }

    /// Queues a claimed request's certificate for the next group commit and waits for its
    /// answer.
    pub(crate) async fn commit_completed(&self, item: CompletedRequest) -> Completion {
        match self.commit(Item::Completed(item)).await? {
            Reply::Completed(answer) => answer,
            Reply::Stored(_) => Err(no_answer()),
        }
    }

    /// Hands an item to the next group commit. The committing task keeps the write
    /// connection from one batch to the next (giving it back goes through a task on the
    /// runtime, behind the request tasks), but for a bounded time, so that other writers get
    /// their turn; it gives it back when no request waits.
    async fn commit(&self, item: Item) -> StoreResult<Reply> {
        let store = self.clone();
        let held = HeldWriter::default();
        let serve = move |items: Vec<Item>| {
            let (store, held) = (store.clone(), held.clone());
            async move {
                let mut held = held.lock().await;
                if held.as_ref().is_some_and(|(_, since)| since.elapsed() > HOLD_WRITER) {
                    *held = None;
                }
                store.store_items_on(&mut held, items).await
            }
        };
        self.group.submit(item, serve).await.map_err(|_| no_answer())
    }

    /// Stores a batch of items of any kind (see `store_batch_on`): one reply per item, in
    /// order.
    async fn store_items_on(
        &self,
        held: &mut Option<(PoolConnection<Any>, Instant)>,
        items: Vec<Item>,
    ) -> Vec<Reply> {
        let mut batch = Batch::default();
        // The kinds in the order the items came, to give the answers back in that order.
        let order: Vec<Kind> = items
            .into_iter()
            .map(|item| match item {
                Item::Issued(item) => {
                    batch.issued.push(item);
                    Kind::Issued
                }
                Item::Claimed(item) => {
                    batch.claimed.push(item);
                    Kind::Claimed
                }
                Item::Completed(item) => {
                    batch.completed.push(item);
                    Kind::Completed
                }
            })
            .collect();
        let answers = self.store_batch_on(held, &batch).await;
        let mut issued = answers.issued.into_iter().map(Reply::Stored);
        let mut claimed = answers.claimed.into_iter().map(Reply::Stored);
        let mut completed = answers.completed.into_iter().map(Reply::Completed);
        // An answer missing (a bug) leaves the rest unanswered rather than misplaced.
        order
            .into_iter()
            .map_while(|kind| match kind {
                Kind::Issued => issued.next(),
                Kind::Claimed => claimed.next(),
                Kind::Completed => completed.next(),
            })
            .collect()
    }

    /// Stores signed requests issued (see `store_batch`). For tests.
    #[cfg(feature = "testing")]
    pub async fn store_issued(&self, items: &[IssuedRequest]) -> Vec<Answer> {
        let batch = Batch { issued: items.to_vec(), ..Batch::default() };
        self.store_batch_on(&mut None, &batch).await.issued
    }

    /// Stores signed new requests issued and finishes claimed ones: all in one transaction,
    /// or, when that fails as a whole (a key raced in by another process, a request finished
    /// by another one meanwhile, a constraint), each on its own, so that every item gets its
    /// own answer. One answer per item of each kind, in order. (The server goes through the
    /// queue above; tests call this directly to choose the batches.)
    #[cfg(feature = "testing")]
    pub async fn store_batch(
        &self,
        issued: &[IssuedRequest],
        completed: &[CompletedRequest],
    ) -> Answers {
        let batch =
            Batch { issued: issued.to_vec(), completed: completed.to_vec(), ..Batch::default() };
        let answers = self.store_batch_on(&mut None, &batch).await;
        (answers.issued, answers.completed)
    }

    /// Stores a batch (see `store_batch`) on the `held` write connection, taken from the pool
    /// if none.
    async fn store_batch_on(
        &self,
        held: &mut Option<(PoolConnection<Any>, Instant)>,
        batch: &Batch,
    ) -> BatchAnswers {
        let together = match held {
            Some((conn, _)) => store_together(conn, batch).await,
            None => match self.write.acquire().await {
                Ok(conn) => {
                    let (conn, _) = held.insert((conn, Instant::now()));
                    store_together(conn, batch).await
                }
                Err(e) => Err(e.into()),
            },
        };
        match together {
            Ok(answers) => return answers,
            Err(e) => tracing::debug!(
                error = %e,
                issued = batch.issued.len(),
                claimed = batch.claimed.len(),
                completed = batch.completed.len(),
                "group commit fell back"
            ),
        }
        // Through the pool, which on SQLite has this one writer: give it back first.
        *held = None;
        let mut answers = BatchAnswers::default();
        for item in &batch.issued {
            let signed = Some((&item.ledger, &item.issued));
            let inserted =
                self.insert_request(&item.ctx, &item.request, signed, item.key.as_ref()).await;
            answers.issued.push(self.settle_key_race(inserted, item.key.as_ref()).await);
        }
        for item in &batch.claimed {
            let inserted =
                self.insert_request(&item.ctx, &item.request, None, item.key.as_ref()).await;
            answers.claimed.push(self.settle_key_race(inserted, item.key.as_ref()).await);
        }
        for item in &batch.completed {
            answers
                .completed
                .push(self.complete_issue_alone(&item.ctx, &item.id, &item.issued).await);
        }
        answers
    }

    /// Stores signed requests issued in one transaction: all, or (`Err`) none. A request
    /// whose idempotency key decides otherwise gets its own answer inside the `Ok`. For tests.
    #[cfg(feature = "testing")]
    pub async fn store_issued_together(&self, items: &[IssuedRequest]) -> StoreResult<Vec<Answer>> {
        Ok(self.store_batch_together(items, &[]).await?.0)
    }

    /// Stores a batch in one transaction: all, or (`Err`) none. An item refused on its own (an
    /// idempotency key that decides otherwise, a request that is not `submitted`) gets its
    /// answer inside the `Ok`. For tests.
    #[cfg(feature = "testing")]
    pub async fn store_batch_together(
        &self,
        issued: &[IssuedRequest],
        completed: &[CompletedRequest],
    ) -> StoreResult<Answers> {
        let mut conn = self.write.acquire().await?;
        let batch =
            Batch { issued: issued.to_vec(), completed: completed.to_vec(), ..Batch::default() };
        let answers = store_together(&mut conn, &batch).await?;
        Ok((answers.issued, answers.completed))
    }
}

/// Stores a batch in one transaction on `conn`: all, or (`Err`) none.
async fn store_together(conn: &mut AnyConnection, batch: &Batch) -> StoreResult<BatchAnswers> {
    let Batch { issued, claimed, completed } = batch;
    let unclaimed = issued
        .iter()
        .map(|i| &i.request)
        .chain(claimed.iter().map(|c| &c.request))
        .find(|request| request.claimed_until().is_none());
    if let Some(request) = unclaimed {
        return Err(StoreError::Conflict(format!("request {} is not approved", request.id)));
    }
    let mut tx = conn.begin().await?;
    let keyed: Vec<Keyed<'_>> = issued
        .iter()
        .map(|i| Keyed { ctx: &i.ctx, request: &i.request, key: i.key.as_ref() })
        .chain(claimed.iter().map(|c| Keyed {
            ctx: &c.ctx,
            request: &c.request,
            key: c.key.as_ref(),
        }))
        .collect();
    let mut plans = claim_keys(&mut tx, &keyed).await?;
    let claimed_plans = plans.split_off(issued.len());
    let issued_plans = plans;
    let finished = read_claimed(&mut tx, completed).await?;
    let fresh = issued.iter().zip(&issued_plans).filter(|(_, plan)| matches!(plan, Plan::Fresh));
    let finishing: Vec<Finishing<'_>> = fresh
        .map(|(item, _)| Finishing::new(item))
        .chain(completed.iter().zip(&finished).filter_map(|(item, request)| {
            request.as_ref().ok().map(|request| Finishing::claimed(item, request))
        }))
        .collect();
    let stored: Vec<&ClaimedRequest> = claimed
        .iter()
        .zip(&claimed_plans)
        .filter(|(_, plan)| matches!(plan, Plan::Fresh))
        .map(|(item, _)| item)
        .collect();
    if !finishing.is_empty() || !stored.is_empty() {
        finish_together(&mut tx, &finishing, &stored).await?;
    }
    let made = |request: &NewRequest, plan: &Plan| match plan {
        Plan::Fresh => Some(request.id.clone()),
        Plan::Existing(id) => Some(id.clone()),
        Plan::Refused(_) => None,
    };
    let ids = issued
        .iter()
        .zip(&issued_plans)
        .filter_map(|(item, plan)| made(&item.request, plan))
        .chain(claimed.iter().zip(&claimed_plans).filter_map(|(c, plan)| made(&c.request, plan)))
        .chain(
            completed.iter().zip(&finished).filter(|(_, c)| c.is_ok()).map(|(i, _)| i.id.clone()),
        );
    let records = read_requests(&mut tx, ids).await?;
    tx.commit().await?;
    let answer = |request: &NewRequest, plan: Plan| {
        let (id, created) = match plan {
            Plan::Fresh => (request.id.clone(), true),
            Plan::Existing(id) => (id, false),
            Plan::Refused(e) => return Err(e),
        };
        let record = records.get(&id).cloned();
        record.map(|r| (r, created)).ok_or_else(|| StoreError::not_found("request", &id))
    };
    Ok(BatchAnswers {
        issued: issued.iter().zip(issued_plans).map(|(i, plan)| answer(&i.request, plan)).collect(),
        claimed: claimed
            .iter()
            .zip(claimed_plans)
            .map(|(c, plan)| answer(&c.request, plan))
            .collect(),
        completed: completed
            .iter()
            .zip(finished)
            .map(|(item, finished)| {
                finished?;
                let record = records.get(&item.id).cloned();
                record.ok_or_else(|| StoreError::not_found("request", &item.id))
            })
            .collect(),
    })
}

/// The stored requests of `completed`, each as it stands, or its refusal, as
/// `complete_issue` alone would give it: unknown, or not `submitted` (also when an earlier
/// item of the batch finishes the same request).
async fn read_claimed(
    tx: &mut Transaction<'_, Any>,
    completed: &[CompletedRequest],
) -> StoreResult<Vec<StoreResult<RequestRecord>>> {
    if completed.is_empty() {
        return Ok(Vec::new());
    }
    let ids = completed.iter().map(|item| item.id.clone());
    let stored = read_requests(tx, ids).await?;
    let mut taken = HashSet::new();
    let claimed = completed
        .iter()
        .map(|item| {
            let id = &item.id;
            let request = stored.get(id).ok_or_else(|| StoreError::not_found("request", id))?;
            if !taken.insert(id.as_str()) {
                return Err(cannot_become(id, RequestState::Issued, RequestState::Issued));
            }
            if request.state != RequestState::Submitted {
                return Err(cannot_become(id, request.state, RequestState::Issued));
            }
            Ok(request.clone())
        })
        .collect();
    Ok(claimed)
}

/// A new request of a batch, with its idempotency key: what [`claim_keys`] decides on.
struct Keyed<'a> {
    ctx: &'a AuditContext,
    request: &'a NewRequest,
    key: Option<&'a IdempotencyKey>,
}

/// Decides each request's idempotency key against the stored ones and the batch's earlier
/// requests, forgets expired keys of the same names, and stores the fresh requests' keys.
async fn claim_keys(tx: &mut Transaction<'_, Any>, items: &[Keyed<'_>]) -> StoreResult<Vec<Plan>> {
    let keys: Vec<&IdempotencyKey> = items.iter().filter_map(|i| i.key).collect();
    if keys.is_empty() {
        return Ok(items.iter().map(|_| Plan::Fresh).collect());
    }
    let mut lookup = SqlBuilder::bulk(
        tx,
        "SELECT caller, key, body_hash, resource_id, created_at FROM idempotency_keys WHERE ",
    );
    push_key_names(&mut lookup, &keys, false);
    let mut stored = HashMap::new();
    for row in lookup.query().fetch_all(&mut **tx).await? {
        let name: (String, String) = (row.try_get("caller")?, row.try_get("key")?);
        let created_at: i64 = row.try_get("created_at")?;
        let found: (String, String) = (row.try_get("body_hash")?, row.try_get("resource_id")?);
        stored.insert(name, (found, created_at));
    }
    // The first request of the batch under each key name: it makes the request.
    let mut first: HashMap<(&str, &str), &Keyed<'_>> = HashMap::new();
    let (mut expired, mut claimed) = (Vec::new(), Vec::new());
    let mut plans = Vec::with_capacity(items.len());
    for item in items {
        let Some(key) = item.key else {
            plans.push(Plan::Fresh);
            continue;
        };
        let name = (key.caller.as_str(), key.key.as_str());
        let found = stored.get(&(key.caller.clone(), key.key.clone()));
        let live = found.filter(|(_, created_at)| *created_at >= key.not_before);
        let (body_hash, made) = match (first.get(&name), live) {
            (Some(earlier), _) => (earlier.key.map(|k| &k.body_hash), &earlier.request.id),
            (None, Some(((body_hash, resource_id), _))) => (Some(body_hash), resource_id),
            (None, None) => {
                if found.is_some() {
                    expired.push(key);
                }
                first.insert(name, item);
                claimed.push(item);
                plans.push(Plan::Fresh);
                continue;
            }
        };
        plans.push(if body_hash == Some(&key.body_hash) {
            Plan::Existing(made.clone())
        } else {
            Plan::Refused(key_body_mismatch())
        });
    }
    if !expired.is_empty() {
        let mut delete = SqlBuilder::bulk(tx, "DELETE FROM idempotency_keys WHERE ");
        push_key_names(&mut delete, &expired, true);
        delete.query().execute(&mut **tx).await?;
    }
    if !claimed.is_empty() {
        let mut insert = SqlBuilder::bulk(
            tx,
            "INSERT INTO idempotency_keys (caller, key, body_hash, resource_id, created_at) \
             VALUES ",
        );
        for (i, item) in claimed.iter().enumerate() {
            let Some(key) = item.key else { continue };
            if i > 0 {
                insert.push(", ");
            }
            insert.row([
                Arg::Text(key.caller.clone()),
                Arg::Text(key.key.clone()),
                Arg::Text(key.body_hash.clone()),
                Arg::Text(item.request.id.clone()),
                Arg::Int(item.ctx.now()),
            ]);
        }
        insert.query().execute(&mut **tx).await?;
    }
    Ok(plans)
}

/// `(caller = .. AND key = ..) OR ...`; with `only_expired`, only keys created before their
/// `not_before`.
fn push_key_names(b: &mut SqlBuilder, keys: &[&IdempotencyKey], only_expired: bool) {
    for (i, key) in keys.iter().enumerate() {
        b.push(if i == 0 { "(caller = " } else { " OR (caller = " });
        b.bind(Arg::Text(key.caller.clone())).push(" AND key = ").bind(Arg::Text(key.key.clone()));
        if only_expired {
            b.push(" AND created_at < ").bind(Arg::Int(key.not_before));
        }
        b.push(")");
    }
}

/// A request the batch issues: a new one (stored with its ledger row) or a claimed one.
struct Finishing<'a> {
    ctx: &'a AuditContext,
    id: &'a str,
    owner_id: Option<String>,
    links: IssuedLinks,
    issued: &'a IssuedRecord,
    /// The new request; `None` for a claimed one, stored already.
    new: Option<&'a IssuedRequest>,
}

impl<'a> Finishing<'a> {
    fn new(item: &'a IssuedRequest) -> Self {
        let request = &item.request;
        Finishing {
            ctx: &item.ctx,
            id: &request.id,
            owner_id: request.owner_id.clone(),
            links: IssuedLinks {
                adapter_id: request.adapter_id.clone(),
                managed_certificate_id: request.managed_certificate_id.clone(),
                key_secret: request.key_secret.clone(),
            },
            issued: &item.issued,
            new: Some(item),
        }
    }

    fn claimed(item: &'a CompletedRequest, request: &RequestRecord) -> Self {
        Finishing {
            ctx: &item.ctx,
            id: &item.id,
            owner_id: request.owner_id.clone(),
            links: IssuedLinks {
                adapter_id: request.adapter_id.clone(),
                managed_certificate_id: request.managed_certificate_id.clone(),
                key_secret: request.key_secret.clone(),
            },
            issued: &item.issued,
            new: None,
        }
    }
}

/// The certificates, requests (new ones inserted issued, claimed ones updated), ledger rows,
/// chains, findings, managed certificates' current versions and audit events of `items`; and
/// the requests of `stored`, inserted claimed, with their audit events.
async fn finish_together(
    tx: &mut Transaction<'_, Any>,
    items: &[Finishing<'_>],
    stored: &[&ClaimedRequest],
) -> StoreResult<()> {
    let mut certificates = Vec::new();
    let mut certificate_of = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let rows = issued_certificates(item.issued, item.owner_id.clone(), item.links.clone());
        certificate_of.extend(std::iter::repeat_n(i, rows.len()));
        certificates.extend(rows);
    }
    let mut imported = Vec::new();
    let outcomes = match items.first() {
        Some(first) => {
            import_chunk_with(tx, first.ctx, &Scope::All, &certificates, &mut imported).await?
        }
        None => Vec::new(),
    };
    // Each created certificate has one event, in order: it belongs to the first request whose
    // certificates held it (a shared chain is created once).
    let mut events: Vec<Vec<NewAuditEvent>> = items
        .iter()
        .map(|item| item.new.map(|new| created_events(&new.request)).unwrap_or_default())
        .collect();
    let mut imported = imported.into_iter();
    let mut leaves = vec![String::new(); items.len()];
    let mut chains: Vec<Vec<String>> = vec![Vec::new(); items.len()];
    // Claimed requests whose leaf was known already (an import saw it first).
    let mut known = Vec::new();
    for ((outcome, &i), certificate) in outcomes.iter().zip(&certificate_of).zip(&certificates) {
        if certificate.issued.is_none() {
            chains[i].push(outcome.id.clone());
        }
        if outcome.created {
            let event = imported.next().ok_or_else(|| StoreError::corrupt("import", "no event"))?;
            events[i].push(event);
        }
        if certificate.issued.is_some() {
            if !outcome.created {
                if items[i].new.is_some() {
                    // Known already: the one-by-one path links it.
                    let known = "an issued certificate is known already";
                    return Err(StoreError::Conflict(known.into()));
                }
                known.push(i);
            }
            leaves[i] = outcome.id.clone();
        }
    }
    for &i in &known {
        // Rare (a scan found it between the CA's answer and now): one statement each.
        let links = &items[i].links;
        sqlx::query(
            "UPDATE certificates SET managed_certificate_id = $1, adapter_id = $2, \
             key_secret = $3 WHERE id = $4",
        )
        .bind(&links.managed_certificate_id)
        .bind(&links.adapter_id)
        .bind(&links.key_secret)
        .bind(&leaves[i])
        .execute(&mut **tx)
        .await?;
    }
    let mut statements = Vec::new();
    let mut requests = SqlBuilder::bulk(tx, REQUEST_INSERT);
    // No ON CONFLICT: a request id with a ledger row already fails the batch.
    let mut ledger = SqlBuilder::bulk(tx, LEDGER_INSERT);
    // Claimed requests become issued only if they still are `submitted`: another worker may
    // have finished one since they were read (PostgreSQL).
    let mut claimed = SqlBuilder::bulk(
        tx,
        "UPDATE issuance_requests SET state = 'issued', certificate_id = v.column2, \
         last_error = NULL, updated_at = v.column3 FROM (VALUES ",
    );
    let (mut new_count, mut claimed_count) = (0_u64, 0_u64);
    for item in stored {
        if new_count > 0 {
            requests.push(", ");
        }
        new_count += 1;
        let request = &item.request;
        // A revoke request names its certificate already.
        let certificate = request.certificate_id.clone();
        requests.row(request_row(request, RequestState::Submitted, certificate, item.ctx.now())?);
    }
    let mut ledger_count = 0_u64;
    for (i, (item, leaf)) in items.iter().zip(&leaves).enumerate() {
        let now = item.ctx.now();
        match item.new {
            Some(new) => {
                if new_count > 0 {
                    requests.push(", ");
                }
                if ledger_count > 0 {
                    ledger.push(", ");
                }
                new_count += 1;
                ledger_count += 1;
                requests.row(request_row(
                    &new.request,
                    RequestState::Issued,
                    Some(leaf.clone()),
                    now,
                )?);
                ledger.row(ledger_row(&new.ledger));
            }
            None => {
                if claimed_count > 0 {
                    claimed.push(", ");
                }
                claimed_count += 1;
                claimed.row([Arg::Text(item.id.into()), Arg::Text(leaf.clone()), Arg::Int(now)]);
            }
        }
        let managed = item.links.managed_certificate_id.as_deref();
        if let Some(managed) = managed {
            set_current_version(tx, managed, leaf, now).await?;
        }
        events[i].push(issued_event(item.id, leaf, item.issued, managed));
    }
    if claimed_count > 0 {
        claimed.push(
            ") AS v WHERE issuance_requests.id = v.column1 \
             AND issuance_requests.state = 'submitted'",
        );
        if claimed.query().execute(&mut **tx).await?.rows_affected() != claimed_count {
            // Finished or failed by another worker meanwhile: each on its own says which.
            return Err(StoreError::Conflict("a claimed request changed meanwhile".into()));
        }
    }
    if new_count > 0 {
        statements.push(requests);
    }
    if ledger_count > 0 {
        statements.push(ledger);
    }
    // A known leaf may have a chain recorded already: replaced, as `link_chains` does. New
    // leaves need no DELETE first, and their rows go with the INSERTs below.
    let replaced: Vec<Arg> = known
        .iter()
        .filter(|&&i| !chains[i].is_empty())
        .map(|&i| Arg::Text(leaves[i].clone()))
        .collect();
    if !replaced.is_empty() {
        let mut delete =
            SqlBuilder::bulk(tx, "DELETE FROM certificate_chains WHERE certificate_id IN ");
        delete.row(replaced);
        delete.query().execute(&mut **tx).await?;
    }
    let links: Vec<(String, Vec<String>)> = leaves.iter().cloned().zip(chains).collect();
    statements.extend(crate::chains::chain_rows(tx, &links));
    let findings: Vec<(String, &[cmp_domain::Finding])> = leaves
        .iter()
        .zip(items)
        .map(|(leaf, item)| (leaf.clone(), &item.issued.findings[..]))
        .collect();
    add_findings(tx, &findings).await?;
    let stored_events: Vec<Vec<NewAuditEvent>> =
        stored.iter().map(|item| created_events(&item.request)).collect();
    let attributed: Vec<(&AuditContext, &NewAuditEvent)> = stored
        .iter()
        .map(|item| &item.ctx)
        .zip(&stored_events)
        .chain(items.iter().map(|item| item.ctx).zip(&events))
        .flat_map(|(ctx, events)| events.iter().map(move |event| (ctx, event)))
        .collect();
    let (_, audit) = audit::append_statements(tx, &attributed).await?;
    statements.extend(audit);
    run_statements(tx, statements).await
}

/// The stored requests of `ids`, by id.
async fn read_requests(
    tx: &mut Transaction<'_, Any>,
    ids: impl Iterator<Item = String>,
) -> StoreResult<HashMap<String, RequestRecord>> {
    let ids: Vec<Arg> = ids.map(Arg::Text).collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut b = SqlBuilder::bulk(tx, "SELECT * FROM issuance_requests WHERE id IN ");
    b.row(ids);
    let mut records = HashMap::new();
    for row in b.query().fetch_all(&mut **tx).await? {
        let record = request_from_row(&row)?;
        records.insert(record.id.clone(), record);
    }
    Ok(records)
}
