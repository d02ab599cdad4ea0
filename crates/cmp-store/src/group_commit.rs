//! Group commit of requests signed in this process: the issued requests that concurrent
//! callers hand over while a commit is running are stored together in the next transaction,
//! with one multi-row statement per table and one audit append, instead of a transaction each.
//!
//! Why: on SQLite every statement costs two thread hand-offs to sqlx's worker thread, whatever
//! it does, and there is one writer; on PostgreSQL every statement is a round trip and every
//! audited transaction takes the chain head's row lock. A batch pays both once.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Connection, Row, Transaction};
use tokio::sync::oneshot;

use crate::adapters::{LEDGER_INSERT, LedgerRow, ledger_row};
use crate::audit;
use crate::certificates::import_chunk_with;
use crate::requests::{
    REQUEST_INSERT, add_findings, created_events, issued_certificates, issued_event,
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

type Answer = StoreResult<(RequestRecord, bool)>;

/// The requests waiting for the next commit, and whether a task is committing.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    queue: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    waiting: Vec<(IssuedRequest, oneshot::Sender<Answer>)>,
    committing: bool,
}

impl GroupCommit {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // The queue is consistent at every step, so a panic elsewhere leaves it usable.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// If the committing task ends early (a panic): clears `committing`, so that the next caller
/// starts another, and answers the waiting callers with an error (their senders dropped).
struct Committing<'a> {
    group: &'a GroupCommit,
    done: bool,
}

impl Drop for Committing<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut queue = self.group.lock();
            queue.committing = false;
            queue.waiting.clear();
        }
    }
}

/// What a request's idempotency key decides.
enum Plan {
    Fresh,
    /// A live key made this request already.
    Existing(String),
    Refused(StoreError),
}

impl SqlStore {
    /// Queues `item` for the next group commit and waits for its answer.
    pub(crate) async fn commit_issued(&self, item: IssuedRequest) -> Answer {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut queue = self.group.lock();
            queue.waiting.push((item, reply));
            !std::mem::replace(&mut queue.committing, true)
        };
        if start {
            // A task of its own: a caller that goes away must not strand the others.
            let store = self.clone();
            tokio::spawn(async move { store.drain_group().await });
        }
        answer.await.map_err(|_| StoreError::corrupt("group commit", "ended without an answer"))?
    }

    /// Commits batches until no request waits. The write connection is kept from one batch
    /// to the next (giving it back goes through a task on the runtime, behind the request
    /// tasks), but for a bounded time, so that other writers get their turn.
    async fn drain_group(&self) {
        let mut guard = Committing { group: &self.group, done: false };
        let mut held: Option<(PoolConnection<Any>, Instant)> = None;
        loop {
            let batch: Vec<_> = {
                let mut queue = self.group.lock();
                if queue.waiting.is_empty() {
                    queue.committing = false;
                    guard.done = true;
                    return;
                }
                let n = queue.waiting.len().min(MAX_BATCH);
                queue.waiting.drain(..n).collect()
            };
            if held.as_ref().is_some_and(|(_, since)| since.elapsed() > HOLD_WRITER) {
                held = None;
            }
            let (items, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            let answers = self.store_issued_on(&mut held, &items).await;
            for (reply, answer) in replies.into_iter().zip(answers) {
                // A caller that went away learns nothing; its request is stored all the same.
                let _ = reply.send(answer);
            }
        }
    }

    /// Stores signed requests issued: all in one transaction, or, when that fails as a whole
    /// (a key raced in by another process, a constraint), each on its own, so that every
    /// request gets its own answer. One answer per item, in order. (The server goes through
    /// the queue above; tests call this directly to choose the batches.)
    #[cfg(feature = "testing")]
    pub async fn store_issued(&self, items: &[IssuedRequest]) -> Vec<Answer> {
        self.store_issued_on(&mut None, items).await
    }

    /// Stores a batch (see `store_issued`) on the `held` write connection, taken from the pool
    /// if none.
    async fn store_issued_on(
        &self,
        held: &mut Option<(PoolConnection<Any>, Instant)>,
        items: &[IssuedRequest],
    ) -> Vec<Answer> {
        let together = match held {
            Some((conn, _)) => store_together(conn, items).await,
            None => match self.write.acquire().await {
                Ok(conn) => {
                    let (conn, _) = held.insert((conn, Instant::now()));
                    store_together(conn, items).await
                }
                Err(e) => Err(e.into()),
            },
        };
        match together {
            Ok(answers) => return answers,
            Err(e) => tracing::debug!(error = %e, requests = items.len(), "group commit fell back"),
        }
        // Through the pool, which on SQLite has this one writer: give it back first.
        *held = None;
        let mut answers = Vec::with_capacity(items.len());
        for item in items {
            let signed = Some((&item.ledger, &item.issued));
            let inserted =
                self.insert_request(&item.ctx, &item.request, signed, item.key.as_ref()).await;
            answers.push(self.settle_key_race(inserted, item.key.as_ref()).await);
        }
        answers
    }

    /// Stores signed requests issued in one transaction: all, or (`Err`) none. A request
    /// whose idempotency key decides otherwise gets its own answer inside the `Ok`. For tests.
    #[cfg(feature = "testing")]
    pub async fn store_issued_together(&self, items: &[IssuedRequest]) -> StoreResult<Vec<Answer>> {
        let mut conn = self.write.acquire().await?;
        store_together(&mut conn, items).await
    }
}

/// Stores a batch in one transaction on `conn`: all, or (`Err`) none.
async fn store_together(
    conn: &mut AnyConnection,
    items: &[IssuedRequest],
) -> StoreResult<Vec<Answer>> {
    let unclaimed = |i: &&IssuedRequest| i.request.claimed_until().is_none();
    if let Some(item) = items.iter().find(unclaimed) {
        return Err(StoreError::Conflict(format!("request {} is not approved", item.request.id)));
    }
    let mut tx = conn.begin().await?;
    let plans = claim_keys(&mut tx, items).await?;
    let fresh: Vec<&IssuedRequest> = items
        .iter()
        .zip(&plans)
        .filter(|(_, plan)| matches!(plan, Plan::Fresh))
        .map(|(item, _)| item)
        .collect();
    if !fresh.is_empty() {
        insert_fresh(&mut tx, &fresh).await?;
    }
    let records = read_requests(&mut tx, items, &plans).await?;
    tx.commit().await?;
    let answers = items
        .iter()
        .zip(plans)
        .map(|(item, plan)| {
            let (id, created) = match plan {
                Plan::Fresh => (item.request.id.clone(), true),
                Plan::Existing(id) => (id, false),
                Plan::Refused(e) => return Err(e),
            };
            let record = records.get(&id).cloned();
            record.map(|r| (r, created)).ok_or_else(|| StoreError::not_found("request", &id))
        })
        .collect();
    Ok(answers)
}

/// Decides each request's idempotency key against the stored ones and the batch's earlier
/// requests, forgets expired keys of the same names, and stores the fresh requests' keys.
async fn claim_keys(
    tx: &mut Transaction<'_, Any>,
    items: &[IssuedRequest],
) -> StoreResult<Vec<Plan>> {
    let keys: Vec<&IdempotencyKey> = items.iter().filter_map(|i| i.key.as_ref()).collect();
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
    let mut first: HashMap<(&str, &str), &IssuedRequest> = HashMap::new();
    let (mut expired, mut claimed) = (Vec::new(), Vec::new());
    let mut plans = Vec::with_capacity(items.len());
    for item in items {
        let Some(key) = &item.key else {
            plans.push(Plan::Fresh);
            continue;
        };
        let name = (key.caller.as_str(), key.key.as_str());
        let found = stored.get(&(key.caller.clone(), key.key.clone()));
        let live = found.filter(|(_, created_at)| *created_at >= key.not_before);
        let (body_hash, made) = match (first.get(&name), live) {
            (Some(earlier), _) => (earlier.key.as_ref().map(|k| &k.body_hash), &earlier.request.id),
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
            let Some(key) = &item.key else { continue };
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

/// The certificates, requests (issued already), ledger rows and audit events of `fresh`.
async fn insert_fresh(tx: &mut Transaction<'_, Any>, fresh: &[&IssuedRequest]) -> StoreResult<()> {
    let mut certificates = Vec::new();
    let mut certificate_of = Vec::new();
    for (i, item) in fresh.iter().enumerate() {
        let request = &item.request;
        let links = IssuedLinks {
            adapter_id: request.adapter_id.clone(),
            managed_certificate_id: request.managed_certificate_id.clone(),
            key_secret: request.key_secret.clone(),
        };
        let rows = issued_certificates(&item.issued, request.owner_id.clone(), links);
        certificate_of.extend(std::iter::repeat_n(i, rows.len()));
        certificates.extend(rows);
    }
    let mut imported = Vec::new();
    let outcomes =
        import_chunk_with(tx, &fresh[0].ctx, &Scope::All, &certificates, &mut imported).await?;
    // Each created certificate has one event, in order: it belongs to the first request whose
    // certificates held it (a shared chain is created once).
    let mut events: Vec<Vec<NewAuditEvent>> =
        fresh.iter().map(|item| created_events(&item.request)).collect();
    let mut imported = imported.into_iter();
    let mut leaves = vec![String::new(); fresh.len()];
    let mut chains: Vec<Vec<String>> = vec![Vec::new(); fresh.len()];
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
                // Known already: the one-by-one path links it.
                return Err(StoreError::Conflict("an issued certificate is known already".into()));
            }
            leaves[i] = outcome.id.clone();
        }
    }
    let mut requests = SqlBuilder::bulk(tx, REQUEST_INSERT);
    // No ON CONFLICT: a request id with a ledger row already fails the batch.
    let mut ledger = SqlBuilder::bulk(tx, LEDGER_INSERT);
    for (i, (item, leaf)) in fresh.iter().zip(&leaves).enumerate() {
        if i > 0 {
            requests.push(", ");
            ledger.push(", ");
        }
        let now = item.ctx.now();
        requests.row(request_row(&item.request, RequestState::Issued, Some(leaf.clone()), now));
        ledger.row(ledger_row(&item.ledger));
        let managed = item.request.managed_certificate_id.as_deref();
        if let Some(managed) = managed {
            set_current_version(tx, managed, leaf, now).await?;
        }
        events[i].push(issued_event(&item.request.id, leaf, &item.issued, managed));
    }
    // The leaves are new: their chain rows need no DELETE first, and go with the INSERTs below.
    let links: Vec<(String, Vec<String>)> = leaves.iter().cloned().zip(chains).collect();
    let chain_rows = crate::chains::chain_rows(tx, &links);
    let findings: Vec<(String, &[cmp_domain::Finding])> = leaves
        .iter()
        .zip(fresh)
        .map(|(leaf, item)| (leaf.clone(), &item.issued.findings[..]))
        .collect();
    add_findings(tx, &findings).await?;
    let attributed: Vec<(&AuditContext, &NewAuditEvent)> = fresh
        .iter()
        .zip(&events)
        .flat_map(|(item, events)| events.iter().map(|event| (&item.ctx, event)))
        .collect();
    let (_, audit) = audit::append_statements(tx, &attributed).await?;
    let statements = [requests, ledger].into_iter().chain(chain_rows).chain(audit).collect();
    run_statements(tx, statements).await
}

/// The records of every request the batch answers with, by id.
async fn read_requests(
    tx: &mut Transaction<'_, Any>,
    items: &[IssuedRequest],
    plans: &[Plan],
) -> StoreResult<HashMap<String, RequestRecord>> {
    let ids: Vec<Arg> = items
        .iter()
        .zip(plans)
        .filter_map(|(item, plan)| match plan {
            Plan::Fresh => Some(Arg::Text(item.request.id.clone())),
            Plan::Existing(id) => Some(Arg::Text(id.clone())),
            Plan::Refused(_) => None,
        })
        .collect();
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
