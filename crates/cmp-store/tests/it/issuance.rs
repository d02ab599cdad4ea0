//! Issuance storage: idempotency keys (also under a race), claims and leases, approvals,
//! finishing a request into the inventory, the CA ledger, policies.

use std::sync::Arc;

use cmp_domain::{RequestKind, RequestState};
use cmp_store::*;
use serde_json::json;

use crate::{NOW, ctx, on_both_databases};

pub(crate) async fn adapter(store: &SqlStore) -> AdapterRecord {
    let new = NewAdapter {
        id: uuid::Uuid::now_v7().to_string(),
        name: "builtin".into(),
        kind: "builtin".into(),
        config: json!({}),
        has_credentials: false,
        material: Some(CaCertificates { root_der: vec![1], issuing_der: vec![2] }),
    };
    store.create_adapter(&ctx(NOW), &new).await.unwrap()
}

pub(crate) fn request(adapter_id: &str, state: RequestState) -> NewRequest {
    NewRequest {
        id: uuid::Uuid::now_v7().to_string(),
        kind: RequestKind::Issue,
        state,
        owner_id: None,
        adapter_id: adapter_id.into(),
        managed_certificate_id: None,
        certificate_id: None,
        spec: crate::spec_for(&["a.example"]),
        csr: Some(vec![0x30, 0x00]),
        key_secret: None,
        requested_by: "token:dev".into(),
        claim_until: None,
    }
}

fn key(body_hash: &str) -> IdempotencyKey {
    IdempotencyKey {
        caller: "token:dev".into(),
        key: "order-1".into(),
        body_hash: body_hash.into(),
        not_before: NOW - 86_400,
    }
}

#[tokio::test]
async fn an_idempotency_key_makes_one_request_even_when_retries_race() {
    on_both_databases!(|store, db| {
        let a = adapter(&store).await;
        let (first, created) = store
            .create_request(&ctx(NOW), &request(&a.id, RequestState::Approved), Some(&key("h1")))
            .await
            .unwrap();
        assert!(created);
        let (again, created) = store
            .create_request(&ctx(NOW), &request(&a.id, RequestState::Approved), Some(&key("h1")))
            .await
            .unwrap();
        assert_eq!((again.id.as_str(), created), (first.id.as_str(), false), "{:?}", db.kind);
        let other = store
            .create_request(&ctx(NOW), &request(&a.id, RequestState::Approved), Some(&key("h2")))
            .await;
        assert!(matches!(other, Err(StoreError::Unprocessable(_))), "{other:?}");
        // Eight racers with a new key: one request.
        let store = Arc::new(store);
        let mut racers = Vec::new();
        for _ in 0..8 {
            let (store, a) = (store.clone(), a.id.clone());
            racers.push(tokio::spawn(async move {
                let mut k = key("h3");
                k.key = "race".into();
                store
                    .create_request(&ctx(NOW), &request(&a, RequestState::Approved), Some(&k))
                    .await
            }));
        }
        let mut ids = std::collections::HashSet::new();
        for racer in racers {
            ids.insert(racer.await.unwrap().unwrap().0.id);
        }
        assert_eq!(ids.len(), 1, "{:?}", db.kind);
        // An expired key is forgotten.
        let mut late = key("h9");
        late.not_before = NOW + 1;
        let (fresh, created) = store
            .create_request(&ctx(NOW + 2), &request(&a.id, RequestState::Approved), Some(&late))
            .await
            .unwrap();
        assert!(created && fresh.id != first.id);
    });
}

#[tokio::test]
async fn a_request_is_claimed_once_until_its_lease_ends() {
    on_both_databases!(|store, db| {
        let a = adapter(&store).await;
        let (r, _) = store
            .create_request(&ctx(NOW), &request(&a.id, RequestState::Approved), None)
            .await
            .unwrap();
        let claimed = store.claim_request(&ctx(NOW), &r.id, NOW + 60).await.unwrap().unwrap();
        assert_eq!((claimed.state, claimed.attempts), (RequestState::Submitted, 1));
        assert!(
            store.claim_request(&ctx(NOW + 1), &r.id, NOW + 61).await.unwrap().is_none(),
            "{:?}",
            db.kind
        );
        assert_eq!(store.due_requests(NOW + 30, 10).await.unwrap(), Vec::<String>::new());
        assert_eq!(store.due_requests(NOW + 61, 10).await.unwrap(), vec![r.id.clone()]);
        let again = store.claim_request(&ctx(NOW + 61), &r.id, NOW + 120).await.unwrap().unwrap();
        assert_eq!(again.attempts, 2, "a dead worker's attempt is taken over");
        // A retryable failure waits for its time; a final one ends it.
        let retry = store
            .fail_request(&ctx(NOW + 62), &r.id, "CA unavailable", Some(NOW + 100))
            .await
            .unwrap();
        assert_eq!((retry.state, retry.next_attempt_at), (RequestState::Approved, Some(NOW + 100)));
        assert!(store.claim_request(&ctx(NOW + 63), &r.id, NOW + 200).await.unwrap().is_none());
        store.claim_request(&ctx(NOW + 100), &r.id, NOW + 200).await.unwrap().unwrap();
        let failed = store.fail_request(&ctx(NOW + 101), &r.id, "refused", None).await.unwrap();
        assert_eq!(
            (failed.state, failed.last_error.as_deref()),
            (RequestState::Failed, Some("refused"))
        );
        assert!(matches!(
            store.fail_request(&ctx(NOW), &r.id, "x", None).await,
            Err(StoreError::Conflict(_))
        ));
    });
}

#[tokio::test]
async fn approvals_only_apply_to_requests_awaiting_them() {
    on_both_databases!(|store, db| {
        let a = adapter(&store).await;
        let (r, _) = store
            .create_request(&ctx(NOW), &request(&a.id, RequestState::AwaitingApproval), None)
            .await
            .unwrap();
        assert!(
            store.claim_request(&ctx(NOW), &r.id, NOW + 60).await.unwrap().is_none(),
            "not approved yet"
        );
        let approved = store.decide_request(&ctx(NOW), &r.id, true, Some("ok")).await.unwrap();
        assert_eq!(
            (approved.state, approved.decision_comment.as_deref()),
            (RequestState::Approved, Some("ok"))
        );
        let twice = store.decide_request(&ctx(NOW), &r.id, false, None).await;
        assert!(matches!(twice, Err(StoreError::Conflict(_))), "{:?}: {twice:?}", db.kind);
        assert!(matches!(
            store.decide_request(&ctx(NOW), "nope", true, None).await,
            Err(StoreError::NotFound { .. })
        ));
    });
}

#[tokio::test]
async fn the_ca_ledger_keeps_one_serial_per_request_and_revokes_once() {
    on_both_databases!(|store, db| {
        let row = |serial: &str, request: &str| LedgerRow {
            ca_id: "ca-1".into(),
            serial: serial.into(),
            request_id: request.into(),
            der: vec![1, 2, 3],
            not_after: NOW + 1000,
            revoked_at: None,
            revocation_reason: None,
        };
        assert_eq!(store.ledger_record(&row("01", "r1")).await.unwrap().serial, "01");
        assert_eq!(
            store.ledger_record(&row("02", "r1")).await.unwrap().serial,
            "01",
            "{:?}",
            db.kind
        );
        assert!(store.ledger_find_by_serial("ca-1", "02").await.unwrap().is_none());
        assert_eq!(
            store.ledger_revoke("ca-1", "01", "key_compromise", NOW).await.unwrap(),
            LedgerRevoke::Revoked
        );
        assert_eq!(
            store.ledger_revoke("ca-1", "01", "superseded", NOW).await.unwrap(),
            LedgerRevoke::AlreadyRevoked
        );
        assert_eq!(
            store.ledger_revoke("ca-1", "99", "superseded", NOW).await.unwrap(),
            LedgerRevoke::Unknown
        );
        let revoked = store.ledger_revoked("ca-1", NOW).await.unwrap();
        assert_eq!(revoked.len(), 1);
        assert_eq!(revoked[0].revocation_reason.as_deref(), Some("key_compromise"));
        assert!(
            store.ledger_revoked("ca-1", NOW + 1001).await.unwrap().is_empty(),
            "expired entries leave the CRL"
        );
    });
}

#[tokio::test]
async fn policies_are_set_per_owner_and_audited() {
    on_both_databases!(|store, db| {
        let owner = store
            .create_owner(&ctx(NOW), &NewOwner { name: "t".into(), email: None, description: None })
            .await
            .unwrap();
        assert!(store.get_policy(&owner.id).await.unwrap().is_none());
        store.put_policy(&ctx(NOW), &owner.id, &json!({"max_validity_days": 30})).await.unwrap();
        let set = store
            .put_policy(&ctx(NOW + 1), &owner.id, &json!({"max_validity_days": 60}))
            .await
            .unwrap();
        assert_eq!(set.rules["max_validity_days"], 60, "{:?}", db.kind);
        let trail = store
            .list_audit(&AuditQuery {
                action: Some("policy.set".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(trail.items.len(), 2);
        assert!(store.put_policy(&ctx(NOW), "no-such-owner", &json!({})).await.is_err());
    });
}

#[tokio::test]
async fn the_acme_order_journal_keeps_the_first_order_of_a_request() {
    on_both_databases!(|store, db| {
        assert_eq!(store.acme_order_find("ca-1", "r1").await.unwrap(), None);
        let first = store.acme_order_record("ca-1", "r1", "https://ca/order/1").await.unwrap();
        assert_eq!(first, "https://ca/order/1");
        // A second worker's order for the same request loses: the first one is resumed.
        let raced = store.acme_order_record("ca-1", "r1", "https://ca/order/2").await.unwrap();
        assert_eq!(raced, "https://ca/order/1", "{:?}", db.kind);
        assert_eq!(
            store.acme_order_find("ca-1", "r1").await.unwrap().as_deref(),
            Some("https://ca/order/1")
        );
        assert_eq!(store.acme_order_find("ca-2", "r1").await.unwrap(), None);
    });
}

#[tokio::test]
async fn a_request_signed_in_process_is_stored_issued_in_one_transaction() {
    on_both_databases!(|store, db| {
        let a = adapter(&store).await;
        let signed = |new: &NewRequest, serial: &str| LedgerRow {
            ca_id: a.id.clone(),
            serial: serial.into(),
            request_id: new.id.clone(),
            der: vec![1, 2, 3],
            not_after: NOW + 1000,
            revoked_at: None,
            revocation_reason: None,
        };
        let issued = IssuedRecord {
            facts: crate::facts(1, NOW + 1000),
            chain: vec![crate::facts(2, NOW + 5000)],
            findings: vec![cmp_domain::Finding::ValidityExceedsPolicy],
        };
        let mut new = request(&a.id, RequestState::Approved);
        new.claim_until = Some(NOW + 60);
        let item = |new: &NewRequest, serial: &str| IssuedRequest {
            ctx: ctx(NOW),
            request: new.clone(),
            key: Some(key("h1")),
            ledger: signed(new, serial),
            issued: issued.clone(),
        };
        let (record, created) = store.create_issued_request(item(&new, "0a")).await.unwrap();
        assert!(created);
        assert_eq!((record.state, record.attempts), (RequestState::Issued, 1), "{:?}", db.kind);
        let certificate_id = record.certificate_id.clone().expect("the certificate is linked");
        let certificate = store.get_certificate(&certificate_id, &Scope::All).await.unwrap();
        assert_eq!(certificate.fingerprint_sha256, issued.facts.fingerprint_sha256);
        let ledger = store.ledger_find_by_request(&a.id, &new.id).await.unwrap().unwrap();
        assert_eq!(ledger.serial, "0a");
        // The chain it came with is kept with it, for downloads; its CA certificate cannot be
        // deleted while a chain names it.
        let chain = store.certificate_chain(&certificate_id, &Scope::All).await.unwrap();
        assert_eq!(chain, vec![issued.chain[0].der.clone()], "{:?}", db.kind);
        let ca = &issued.chain[0].fingerprint_sha256;
        let ca = store.get_certificate(ca, &Scope::All).await.unwrap().id;
        let refused = store.delete_certificate(&ctx(NOW), &ca, &Scope::All).await.unwrap_err();
        assert!(
            matches!(&refused, StoreError::Conflict(why) if why.contains(&certificate_id)),
            "{refused:?}"
        );
        assert!(certificate.static_findings.contains(&cmp_domain::Finding::ValidityExceedsPolicy));
        let audit = store.list_audit(&AuditQuery { limit: 50, ..Default::default() }).await;
        let actions: Vec<String> = audit.unwrap().items.into_iter().map(|e| e.action).collect();
        for action in ["request.created", "request.submitted", "request.issued"] {
            assert!(actions.iter().any(|a| a == action), "{action} in {actions:?}");
        }
        // A retry with the same key gets the first request; its own signature is not stored.
        let mut retry = request(&a.id, RequestState::Approved);
        retry.claim_until = Some(NOW + 60);
        let (again, created) = store.create_issued_request(item(&retry, "0b")).await.unwrap();
        assert_eq!((again.id.as_str(), created), (record.id.as_str(), false));
        assert!(store.ledger_find_by_serial(&a.id, "0b").await.unwrap().is_none());
        // Once the leaf is gone, so is its chain row, and the CA certificate can go.
        store.delete_certificate(&ctx(NOW), &certificate_id, &Scope::All).await.unwrap();
        store.delete_certificate(&ctx(NOW), &ca, &Scope::All).await.unwrap();
    });
}

/// A signed, approved request of `actor` for the group commit, with leaf `n` under chain 900.
pub(crate) fn signed_request(
    adapter_id: &str,
    n: u32,
    actor: &str,
    key: Option<IdempotencyKey>,
) -> IssuedRequest {
    let mut new = request(adapter_id, RequestState::Approved);
    new.claim_until = Some(NOW + 60);
    new.requested_by = actor.into();
    IssuedRequest {
        ctx: AuditContext { actor: actor.into(), request_id: None, now_us: NOW * 1_000_000 },
        ledger: LedgerRow {
            ca_id: adapter_id.into(),
            serial: format!("{n:x}"),
            request_id: new.id.clone(),
            der: vec![1, 2, 3],
            not_after: NOW + 1000,
            revoked_at: None,
            revocation_reason: None,
        },
        issued: IssuedRecord {
            facts: crate::facts(n, NOW + 1000),
            chain: vec![crate::facts(900, NOW + 5000)],
            findings: Vec::new(),
        },
        request: new,
        key,
    }
}

pub(crate) fn named_key(name: &str, body_hash: &str) -> IdempotencyKey {
    IdempotencyKey { key: name.into(), ..key(body_hash) }
}

#[tokio::test]
async fn signed_requests_stored_together_each_get_their_own_answer() {
    on_both_databases!(|store, db| {
        let a = adapter(&store).await;
        // Before the batch: a live key, and an expired one of another name.
        let stored = signed_request(&a.id, 1, "token:dev", Some(named_key("live", "h")));
        let first = store.store_issued(std::slice::from_ref(&stored)).await;
        let (live, _) = first.into_iter().next().unwrap().unwrap();
        let mut old = signed_request(&a.id, 2, "token:dev", Some(named_key("old", "h")));
        old.ctx.now_us = (NOW - 2 * 86_400) * 1_000_000;
        store.store_issued(std::slice::from_ref(&old)).await[0].as_ref().unwrap();

        let batch = vec![
            signed_request(&a.id, 10, "token:a", None),
            signed_request(&a.id, 11, "token:b", Some(named_key("k1", "h"))),
            // The same key and body later in the batch: the first one's request.
            signed_request(&a.id, 12, "token:dev", Some(named_key("k1", "h"))),
            // The same key with another body: refused, nothing of it stored.
            signed_request(&a.id, 13, "token:dev", Some(named_key("k1", "other"))),
            // A live key from before: that request.
            signed_request(&a.id, 14, "token:dev", Some(named_key("live", "h"))),
            // An expired key is forgotten and made anew.
            signed_request(&a.id, 15, "token:c", Some(named_key("old", "h"))),
        ];
        let answers = store.store_issued_together(&batch).await.unwrap();
        assert_eq!(answers.len(), batch.len());
        let ok =
            |i: usize| answers[i].as_ref().unwrap_or_else(|e| panic!("{i}: {e} {:?}", db.kind));
        for i in [0, 1, 5] {
            let (record, created) = ok(i);
            assert!(created, "{i}");
            assert_eq!(record.id, batch[i].request.id);
            assert_eq!((record.state, record.attempts), (RequestState::Issued, 1), "{i}");
            let leaf = store
                .get_certificate(record.certificate_id.as_deref().unwrap(), &Scope::All)
                .await
                .unwrap();
            assert_eq!(leaf.fingerprint_sha256, batch[i].issued.facts.fingerprint_sha256);
            let ledger = store.ledger_find_by_request(&a.id, &record.id).await.unwrap().unwrap();
            assert_eq!(ledger.serial, batch[i].ledger.serial);
        }
        assert_eq!((ok(2).0.id.as_str(), ok(2).1), (batch[1].request.id.as_str(), false));
        assert!(matches!(answers[3], Err(StoreError::Unprocessable(_))), "{:?}", answers[3]);
        assert_eq!((ok(4).0.id.as_str(), ok(4).1), (live.id.as_str(), false));
        for i in [2, 3, 4] {
            let id = &batch[i].request.id;
            assert!(store.get_request(id, &Scope::All).await.is_err(), "{i} stored nothing");
            assert!(store.ledger_find_by_request(&a.id, id).await.unwrap().is_none(), "{i}");
        }
        // Each event carries its own caller; the shared chain certificate is created once;
        // the trail is intact.
        let audit = store.list_audit(&AuditQuery { limit: 200, ..Default::default() }).await;
        let events = audit.unwrap().items;
        for i in [0, 1, 5] {
            let id = &batch[i].request.id;
            let mine: Vec<_> = events.iter().filter(|e| &e.entity_id == id).collect();
            let actions: Vec<&str> = mine.iter().map(|e| e.action.as_str()).collect();
            assert_eq!(actions, ["request.issued", "request.submitted", "request.created"]);
            assert!(mine.iter().all(|e| e.actor == batch[i].ctx.actor), "{i}");
        }
        let chain = crate::facts(900, NOW).fingerprint_sha256;
        let chain_created = events
            .iter()
            .filter(|e| {
                e.action == "certificate.created" && e.details["fingerprint_sha256"] == chain
            })
            .count();
        assert_eq!(chain_created, 1);
        assert_eq!(store.verify_audit_chain().await.unwrap().1, None);
    });
}

#[tokio::test]
async fn a_batch_that_fails_as_a_whole_is_stored_one_by_one() {
    on_both_databases!(|store, db| {
        let a = adapter(&store).await;
        let earlier = signed_request(&a.id, 20, "token:dev", None);
        store.store_issued(std::slice::from_ref(&earlier)).await[0].as_ref().unwrap();
        // The second one's request id already has a ledger row: the batch's ledger INSERT
        // fails, so each is stored alone and only that one is refused.
        let mut clash = signed_request(&a.id, 22, "token:dev", None);
        clash.request.id = uuid::Uuid::now_v7().to_string();
        clash.ledger.request_id = earlier.request.id.clone();
        let batch = vec![
            signed_request(&a.id, 21, "token:dev", None),
            clash,
            signed_request(&a.id, 23, "token:dev", None),
        ];
        let together = store.store_issued_together(&batch).await;
        assert!(together.is_err(), "{:?}", db.kind);
        assert!(store.get_request(&batch[0].request.id, &Scope::All).await.is_err(), "rolled back");
        let answers = store.store_issued(&batch).await;
        assert!(answers[0].as_ref().is_ok_and(|(r, c)| *c && r.state == RequestState::Issued));
        assert!(answers[2].as_ref().is_ok_and(|(r, c)| *c && r.state == RequestState::Issued));
        assert!(
            matches!(answers[1], Err(StoreError::Conflict(_))),
            "{:?} {:?}",
            answers[1],
            db.kind
        );
        assert!(store.get_request(&batch[1].request.id, &Scope::All).await.is_err());
        assert_eq!(store.verify_audit_chain().await.unwrap().1, None);
    });
}

#[tokio::test]
async fn concurrent_signed_requests_each_get_their_own_answer() {
    on_both_databases!(|store, db| {
        let a = adapter(&store).await;
        let batch: Vec<_> = (30..50)
            .map(|n| signed_request(&a.id, n, "token:dev", Some(named_key(&format!("c{n}"), "h"))))
            .collect();
        // All queued before the first commit starts (one thread), so they share it.
        let calls = batch.iter().map(|item| store.create_issued_request(item.clone()));
        let answers = futures::future::join_all(calls).await;
        for (item, answer) in batch.iter().zip(answers) {
            let (record, created) = answer.unwrap();
            assert!(created && record.id == item.request.id, "{:?}", db.kind);
            assert_eq!(record.state, RequestState::Issued);
        }
        let issued = store
            .list_requests(&RequestQuery {
                scope: Scope::All,
                state: Some(RequestState::Issued),
                kind: None,
                managed_certificate_id: None,
                limit: 100,
                cursor: None,
            })
            .await
            .unwrap();
        assert_eq!(issued.items.len(), batch.len());
        assert_eq!(store.verify_audit_chain().await.unwrap().1, None);
    });
}
