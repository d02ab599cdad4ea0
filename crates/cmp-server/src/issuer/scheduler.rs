//! The renewal scheduler: finds managed certificates that are due (pure decisions from
//! `cmp_domain::renewal`), renews each under a lock, and picks up requests whose attempt was
//! cut short (a crash, a CA outage) once their retry time has come.

use std::sync::Arc;

use cmp_domain::{
    Backoff, CurrentVersion, RenewBefore, RenewalAction, RenewalInput, RequestState, decide,
};
use cmp_store::{IdempotencyKey, ManagedRecord, RequestQuery, RequestRecord, Scope};

use super::Issuer;
use super::workflow::Renewal;
use crate::core::locks::RenewalLock;
use crate::state::AppState;

/// The scheduler's actor in the audit trail.
const SCHEDULER: &str = "system:scheduler";
/// Managed certificates and requests looked at per tick.
const BATCH: u32 = 200;

/// Runs ticks of `issuer`'s scheduler until `stop` turns true.
pub async fn run(
    issuer: Arc<Issuer>,
    lock: Arc<dyn RenewalLock>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let interval = std::time::Duration::from_secs(issuer.settings().scheduler_interval_secs);
    loop {
        pass(&issuer, lock.as_ref()).await;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// One pass of the scheduler of `state` (what tests drive, with the time they set).
pub async fn tick(state: &AppState) {
    pass(&state.issuer, state.renewal_lock.as_ref()).await;
}

/// One pass: stranded requests, due renewals, old idempotency keys.
async fn pass(issuer: &Issuer, lock: &dyn RenewalLock) {
    let now = issuer.now();
    let store = issuer.store();
    match store.due_requests(now, BATCH).await {
        Ok(ids) => {
            for id in ids {
                if let Err(e) = issuer.process(&id).await {
                    tracing::warn!(request = %id, error = %e, "request attempt failed");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not list due requests"),
    }
    match store.due_managed(now, BATCH).await {
        Ok(due) => {
            for id in due {
                let key = format!("renew:{id}");
                if !lock.acquire(&key, 300).await {
                    continue;
                }
                consider(issuer, &id, now).await;
                lock.release(&key).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not list due managed certificates"),
    }
    if let Err(e) = store.purge_idempotency_keys(now - issuer.idempotency_ttl_secs()).await {
        tracing::warn!(error = %e, "could not purge idempotency keys");
    }
}

/// How often a CA's suggested renewal window is read again (RFC 9773 suggests following
/// Retry-After, which CAs set to hours).
const ARI_RECHECK_SECS: i64 = 6 * 3_600;

/// The CA's suggested renewal window for the current version, when its adapter has one; a
/// failure only means the lifetime rule decides this time.
async fn suggested_window(
    issuer: &Issuer,
    adapter_id: &str,
    certificate_id: &str,
) -> Option<(i64, i64)> {
    let adapter = issuer.adapters().adapter(adapter_id).await.ok()?;
    let der = issuer.store().get_certificate_der(certificate_id, &Scope::All).await.ok()?;
    match adapter.renewal_window(&der).await {
        Ok(window) => window,
        Err(e) => {
            tracing::warn!(adapter = %adapter_id, error = %e, "no renewal window from the CA");
            None
        }
    }
}

/// Decides about one managed certificate and, if due, renews it.
async fn consider(issuer: &Issuer, id: &str, now: i64) {
    // Read under the lock, not from the tick's list (another attempt may have finished since),
    // with the newest of its requests, which is waited for while it has not ended.
    let (managed, newest) = match fresh(issuer, id).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(managed = %id, error = %e, "managed certificate unreadable");
            return;
        }
    };
    let open_request =
        newest.as_ref().filter(|r| !r.state.is_final()).map(|r| (r.id.as_str(), r.state));
    let current = match &managed.current_certificate_id {
        // Recorded when the CA's answer was stored: the version's age counts from then, not
        // from a backdated notBefore.
        Some(id) => match issuer.store().get_certificate(id, &Scope::All).await {
            Ok(c) => Some(CurrentVersion {
                not_before: c.not_before,
                not_after: c.not_after,
                issued_at: Some(c.created_at),
                // The lifetime asked for (within the policy's): a CA that issued for longer
                // does not put the renewal off.
                asked_lifetime_secs: Some(managed.spec.validity_secs()),
                revoked: c.revoked_at.is_some(),
            }),
            Err(e) => {
                tracing::warn!(managed = %managed.id, error = %e, "current version unreadable");
                None
            }
        },
        None => None,
    };
    // A revoked version is replaced whatever its CA suggests: no need to ask.
    let revoked = current.as_ref().is_some_and(|c| c.revoked);
    let suggested_window = match (&managed.current_certificate_id, open_request) {
        (Some(current_id), None) if !revoked => {
            suggested_window(issuer, &managed.adapter_id, current_id).await
        }
        _ => None,
    };
    let renew_before =
        managed.spec.renew_before.as_deref().and_then(|s| RenewBefore::parse(s).ok());
    let input = RenewalInput {
        id: &managed.id,
        now,
        current,
        renew_before,
        failures: u32::try_from(managed.renewal_failures).unwrap_or(u32::MAX),
        last_failure_at: managed.last_failure_at,
        backoff: Backoff::default(),
        open_request,
        suggested_window,
    };
    let decision = decide(&input);
    let interval = i64::try_from(issuer.settings().scheduler_interval_secs).unwrap_or(60);
    // The decision is recorded before it is acted on, so that a new version is never seen
    // without the decision that made it. After a renewal, look again soon: the new version
    // (or the failure) changes the next decision.
    let next_check = match decision.action {
        RenewalAction::Renew => now + interval,
        // A CA's window can move (an incident): ask again within ARI_RECHECK_SECS.
        RenewalAction::Wait if suggested_window.is_some() => {
            decision.next_check_at.clamp(now + 1, now + ARI_RECHECK_SECS)
        }
        RenewalAction::Wait => decision.next_check_at.max(now + 1),
    };
    let value = serde_json::to_value(&decision).unwrap_or_default();
    if let Err(e) = issuer.store().record_decision(&managed.id, &value, next_check).await {
        tracing::warn!(managed = %managed.id, error = %e, "could not record the renewal decision");
    }
    if decision.action == RenewalAction::Renew {
        // One request per (version, failure count): two schedulers make the same key.
        let key = IdempotencyKey {
            caller: SCHEDULER.into(),
            key: format!(
                "renew:{}:{}:{}",
                managed.id,
                managed.current_certificate_id.as_deref().unwrap_or("none"),
                managed.renewal_failures
            ),
            body_hash: String::new(),
            not_before: now - issuer.idempotency_ttl_secs(),
        };
        let ctx = issuer.system(SCHEDULER);
        let outcome = match issuer.renew_managed(&ctx, &managed, Some(&key)).await {
            Ok(Renewal::Requested(request, _)) => match request.state {
                RequestState::Issued => "issued",
                RequestState::AwaitingApproval => "awaiting_approval",
                RequestState::Failed | RequestState::Rejected => "failed",
                _ => "pending",
            },
            Ok(Renewal::OnAgent { jobs_queued: 0 }) => "pending",
            Ok(Renewal::OnAgent { .. }) => "queued_on_agent",
            Err(e) => {
                tracing::warn!(managed = %managed.id, error = %e, "renewal could not start");
                "failed"
            }
        };
        tracing::info!(managed = %managed.id, outcome, reason = ?decision.reason, "{}", decision.message);
        metrics::counter!("cmp_renewals_total", "outcome" => outcome).increment(1);
    }
}

/// A managed certificate as it is now, and its newest request.
async fn fresh(
    issuer: &Issuer,
    id: &str,
) -> Result<(ManagedRecord, Option<RequestRecord>), cmp_store::StoreError> {
    let managed = issuer.store().get_managed(id, &Scope::All).await?;
    let query = RequestQuery {
        scope: Scope::All,
        state: None,
        kind: None,
        managed_certificate_id: Some(managed.id.clone()),
        limit: 1,
        cursor: None,
    };
    let newest = issuer.store().list_requests(&query).await?.items.into_iter().next();
    Ok((managed, newest))
}
