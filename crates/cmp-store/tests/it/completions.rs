//! Claimed requests through the group commit: concurrent ones are stored together with their
//! idempotency keys decided, concurrent completions share a transaction, each gets its own
//! answer (a refusal in the middle of a batch leaves the others to land), a batch that fails
//! as a whole is finished one by one, and two workers finishing the same request store one
//! certificate.

use cmp_domain::{Finding, RequestState};
use cmp_store::*;

use crate::issuance::{adapter, named_key, request, signed_request};
use crate::{NOW, ctx, on_both_databases};

/// A request stored claimed (`submitted`), as the issuer stores one for a CA outside the
/// process, optionally for a managed certificate.
async fn claimed(store: &SqlStore, adapter_id: &str, managed: Option<&str>) -> RequestRecord {
    let mut new = request(adapter_id, RequestState::Approved);
    new.claim_until = Some(NOW + 60);
    new.managed_certificate_id = managed.map(str::to_string);
    let (record, created) = store.create_request(&ctx(NOW), &new, None).await.unwrap();
    assert!(created && record.state == RequestState::Submitted, "{record:?}");
    record
}

/// The CA's answer for request `id`: leaf `n` under chain certificate 900.
fn completion(id: &str, n: u32) -> CompletedRequest {
    CompletedRequest {
        ctx: AuditContext {
            actor: "system:issuer".into(),
            request_id: None,
            now_us: NOW * 1_000_000,
        },
        id: id.into(),
        issued: IssuedRecord {
            facts: crate::facts(n, NOW + 1000),
            chain: vec![crate::facts(900, NOW + 5000)],
            findings: Vec::new(),
        },
    }
}

async fn managed(store: &SqlStore, adapter_id: &str, name: &str) -> ManagedRecord {
    let new = NewManaged {
        name: name.into(),
        owner_id: None,
        adapter_id: adapter_id.into(),
        spec: crate::spec_for(&[&format!("{name}.example")]),
        csr: None,
        first_check_at: NOW + 60,
    };
    store.create_managed(&ctx(NOW), &new).await.unwrap()
}

/// Whether a certificate with leaf `n`'s fingerprint is in the inventory.
async fn stored(store: &SqlStore, n: u32) -> bool {
    let fingerprint = crate::facts(n, NOW).fingerprint_sha256;
    match store.get_certificate(&fingerprint, &Scope::All).await {
        Ok(_) => true,
        Err(StoreError::NotFound { .. }) => false,
        Err(e) => panic!("{e}"),
    }
}

/// How many `request.issued` events the trail holds for request `id`.
async fn issued_events(store: &SqlStore, id: &str) -> usize {
    let query = AuditQuery {
        action: Some("request.issued".into()),
        entity_id: Some(id.into()),
        limit: 10,
        ..Default::default()
    };
    store.list_audit(&query).await.unwrap().items.len()
}

fn conflict_says(answer: &StoreResult<RequestRecord>, why: &str) -> bool {
    matches!(answer, Err(StoreError::Conflict(said)) if said == why)
}

#[tokio::test]
async fn concurrent_claimed_requests_share_a_commit_and_keys_still_decide() {
    on_both_databases!(|store, db| {
        let a = adapter(&store).await;
        let claimed_request = || {
            let mut new = request(&a.id, RequestState::Approved);
            new.claim_until = Some(NOW + 60);
            new
        };
        // Twelve plain ones; three retries of one key (one request); that key with another
        // body (refused); and a completion queued among them (one commit for every kind).
        let mut asks: Vec<(NewRequest, Option<IdempotencyKey>)> =
            (0..12).map(|_| (claimed_request(), None)).collect();
        for _ in 0..3 {
            asks.push((claimed_request(), Some(named_key("retried", "h1"))));
        }
        asks.push((claimed_request(), Some(named_key("retried", "h2"))));
        // The first plain one revokes a certificate: it names it from the start.
        let known = crate::new_cert(crate::facts(150, NOW + 1000));
        let imported = store.import_certificates(&ctx(NOW), &Scope::All, &[known]).await.unwrap();
        asks[0].0.kind = cmp_domain::RequestKind::Revoke;
        asks[0].0.certificate_id = Some(imported[0].id.clone());
        let finishing = claimed(&store, &a.id, None).await;
        let completion = completion(&finishing.id, 100);
        // All queued before the first commit starts (one thread), so they share it.
        let at = ctx(NOW);
        let creating = asks.iter().map(|(new, key)| store.create_request(&at, new, key.as_ref()));
        let (answers, completed) = futures::future::join(
            futures::future::join_all(creating),
            store.complete_issue(&completion.ctx, &completion.id, &completion.issued),
        )
        .await;
        assert_eq!(completed.unwrap().state, RequestState::Issued, "{:?}", db.kind);
        let mut made = std::collections::HashSet::new();
        for ((new, key), answer) in asks.iter().zip(&answers).take(15) {
            let (record, created) = answer.as_ref().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                (record.state, record.attempts, record.lease_until),
                (RequestState::Submitted, 1, Some(NOW + 60)),
                "{:?}",
                db.kind
            );
            if key.is_none() {
                assert!(*created && record.id == new.id, "{record:?}");
            }
            made.insert(record.id.clone());
        }
        let revoke = answers[0].as_ref().unwrap();
        assert_eq!(revoke.0.certificate_id, Some(imported[0].id.clone()), "{:?}", db.kind);
        // Twelve plain requests and one for the three retries.
        assert_eq!(made.len(), 13, "{:?}", db.kind);
        let retried: Vec<bool> = answers[12..15].iter().map(|a| a.as_ref().unwrap().1).collect();
        assert_eq!(retried, [true, false, false], "the first retry makes it");
        assert!(matches!(answers[15], Err(StoreError::Unprocessable(_))), "{:?}", answers[15]);
        // Each made request has its two events, and the trail still verifies.
        for id in &made {
            for action in ["request.created", "request.submitted"] {
                let query = AuditQuery {
                    action: Some(action.into()),
                    entity_id: Some(id.clone()),
                    limit: 10,
                    ..Default::default()
                };
                assert_eq!(store.list_audit(&query).await.unwrap().items.len(), 1, "{action}");
            }
        }
        let (_, broken) = store.verify_audit_chain().await.unwrap();
        assert!(broken.is_none(), "{:?}: {broken:?}", db.kind);
    });
}

#[tokio::test]
async fn concurrent_completions_share_a_commit_and_all_land() {
    on_both_databases!(|store, db| {
        let a = adapter(&store).await;
        let mut versions = Vec::new();
        for name in ["web", "api", "mail", "vpn"] {
            versions.push(managed(&store, &a.id, name).await);
        }
        let mut requests = Vec::new();
        for i in 0..24 {
            let managed = versions.get(i).map(|m| m.id.as_str());
            requests.push(claimed(&store, &a.id, managed).await);
        }
        // Leaf 102 (a managed one) was seen by a scan first: the completion links it.
        let seen = crate::new_cert(crate::facts(102, NOW + 1000));
        store.import_certificates(&ctx(NOW), &Scope::All, &[seen]).await.unwrap();
        let completions: Vec<_> = (100..)
            .zip(&requests)
            .map(|(n, request)| {
                let mut item = completion(&request.id, n);
                if n % 3 == 0 {
                    item.issued.findings = vec![Finding::ValidityExceedsPolicy];
                }
                item
            })
            .collect();
        // Requests signed in process queued among them: one commit for both kinds.
        let signed: Vec<_> =
            (200..204).map(|n| signed_request(&a.id, n, "token:dev", None)).collect();
        // All queued before the first commit starts (one thread), so they share it.
        let completing = completions.iter().map(|c| store.complete_issue(&c.ctx, &c.id, &c.issued));
        let creating = signed.iter().map(|item| store.create_issued_request(item.clone()));
        let (completed, created) = futures::future::join(
            futures::future::join_all(completing),
            futures::future::join_all(creating),
        )
        .await;
        for (item, answer) in completions.iter().zip(completed) {
            let record = answer.unwrap_or_else(|e| panic!("{:?}: {}: {e}", db.kind, item.id));
            assert_eq!(
                (record.id.as_str(), record.state),
                (item.id.as_str(), RequestState::Issued)
            );
            assert_eq!((record.attempts, record.last_error), (1, None));
            let leaf = record.certificate_id.expect("the certificate is linked");
            let certificate = store.get_certificate(&leaf, &Scope::All).await.unwrap();
            assert_eq!(certificate.fingerprint_sha256, item.issued.facts.fingerprint_sha256);
            assert_eq!(certificate.managed_certificate_id, record.managed_certificate_id);
            let flagged = certificate.static_findings.contains(&Finding::ValidityExceedsPolicy);
            assert_eq!(flagged, !item.issued.findings.is_empty(), "{leaf}");
            let chain = store.certificate_chain(&leaf, &Scope::All).await.unwrap();
            assert_eq!(chain, vec![item.issued.chain[0].der.clone()], "{:?}", db.kind);
            assert_eq!(issued_events(&store, &item.id).await, 1);
        }
        for answer in created {
            let (record, created) = answer.unwrap();
            assert!(created && record.state == RequestState::Issued);
        }
        // Each managed certificate's current version is its request's certificate.
        for (version, request) in versions.iter().zip(&requests) {
            let now = store.get_managed(&version.id, &Scope::All).await.unwrap();
            let request = store.get_request(&request.id, &Scope::All).await.unwrap();
            assert_eq!(now.current_certificate_id, request.certificate_id, "{:?}", db.kind);
        }
        let chain = crate::facts(900, NOW).fingerprint_sha256;
        let query = AuditQuery {
            action: Some("certificate.created".into()),
            limit: 200,
            ..Default::default()
        };
        let created = store.list_audit(&query).await.unwrap().items;
        let chain_created = created.iter().filter(|e| e.details["fingerprint_sha256"] == chain);
        assert_eq!(chain_created.count(), 1, "the shared chain certificate is created once");
        assert_eq!(store.verify_audit_chain().await.unwrap().1, None);
    });
}

#[tokio::test]
async fn a_refused_completion_in_a_batch_leaves_the_others_to_land() {
    on_both_databases!(|store, db| {
        let a = adapter(&store).await;
        let first = claimed(&store, &a.id, None).await;
        // Approved but never claimed: not `submitted`.
        let (unclaimed, _) = store
            .create_request(&ctx(NOW), &request(&a.id, RequestState::Approved), None)
            .await
            .unwrap();
        let done = claimed(&store, &a.id, None).await;
        store.complete_issue(&ctx(NOW), &done.id, &completion(&done.id, 300).issued).await.unwrap();
        let second = claimed(&store, &a.id, None).await;
        let third = claimed(&store, &a.id, None).await;
        let batch = vec![
            completion(&first.id, 301),
            completion(&unclaimed.id, 302),
            completion(&second.id, 303),
            // Finished already: its second certificate is not stored.
            completion(&done.id, 304),
            completion("no-such-request", 305),
            // The same request twice in one batch: the first one finishes it.
            completion(&first.id, 306),
            completion(&third.id, 307),
        ];
        let (_, answers) = store.store_batch_together(&[], &batch).await.unwrap();
        for i in [0, 2, 6] {
            let record = answers[i].as_ref().unwrap_or_else(|e| panic!("{:?}: {i}: {e}", db.kind));
            assert_eq!(record.state, RequestState::Issued);
            let leaf = record.certificate_id.as_deref().unwrap();
            let certificate = store.get_certificate(leaf, &Scope::All).await.unwrap();
            assert_eq!(certificate.fingerprint_sha256, batch[i].issued.facts.fingerprint_sha256);
        }
        // The errors `complete_issue` gives alone.
        let not_submitted =
            |id: &str, state: &str| format!("request {id} is {state}, it cannot become issued");
        assert!(
            conflict_says(&answers[1], &not_submitted(&unclaimed.id, "approved")),
            "{:?}",
            answers[1]
        );
        assert!(conflict_says(&answers[3], &not_submitted(&done.id, "issued")), "{:?}", answers[3]);
        assert!(matches!(answers[4], Err(StoreError::NotFound { .. })), "{:?}", answers[4]);
        assert!(
            conflict_says(&answers[5], &not_submitted(&first.id, "issued")),
            "{:?}",
            answers[5]
        );
        for n in [302, 304, 305, 306] {
            assert!(!stored(&store, n).await, "{:?}: {n} is not stored", db.kind);
        }
        let unclaimed_now = store.get_request(&unclaimed.id, &Scope::All).await.unwrap();
        assert_eq!(unclaimed_now.state, RequestState::Approved);
        let done_now = store.get_request(&done.id, &Scope::All).await.unwrap();
        let leaf = store.get_certificate(done_now.certificate_id.as_deref().unwrap(), &Scope::All);
        assert_eq!(
            leaf.await.unwrap().fingerprint_sha256,
            crate::facts(300, NOW).fingerprint_sha256
        );
        assert_eq!(issued_events(&store, &first.id).await, 1);
        // Through the queue, the same: the refused one in the middle gets its error.
        let (fourth, fifth) =
            (claimed(&store, &a.id, None).await, claimed(&store, &a.id, None).await);
        let queued = [
            completion(&fourth.id, 310),
            completion(&unclaimed.id, 311),
            completion(&fifth.id, 312),
        ];
        let calls = queued.iter().map(|c| store.complete_issue(&c.ctx, &c.id, &c.issued));
        let answers = futures::future::join_all(calls).await;
        assert!(answers[0].as_ref().is_ok_and(|r| r.state == RequestState::Issued), "{answers:?}");
        assert!(
            conflict_says(&answers[1], &not_submitted(&unclaimed.id, "approved")),
            "{:?}",
            answers[1]
        );
        assert!(answers[2].as_ref().is_ok_and(|r| r.state == RequestState::Issued), "{answers:?}");
        assert!(!stored(&store, 311).await);
        assert_eq!(store.verify_audit_chain().await.unwrap().1, None);
    });
}

#[tokio::test]
async fn a_batch_of_completions_that_fails_as_a_whole_is_finished_one_by_one() {
    on_both_databases!(|store, db| {
        let a = adapter(&store).await;
        let earlier = signed_request(&a.id, 400, "token:dev", None);
        store.store_issued(std::slice::from_ref(&earlier)).await[0].as_ref().unwrap();
        // A signed request whose id has a ledger row already fails the whole batch.
        let mut clash = signed_request(&a.id, 401, "token:dev", None);
        clash.ledger.request_id = earlier.request.id.clone();
        let issued = vec![signed_request(&a.id, 402, "token:dev", None), clash];
        let (unclaimed, _) = store
            .create_request(&ctx(NOW), &request(&a.id, RequestState::Approved), None)
            .await
            .unwrap();
        let (first, second) =
            (claimed(&store, &a.id, None).await, claimed(&store, &a.id, None).await);
        let completed = vec![
            completion(&first.id, 403),
            completion(&unclaimed.id, 404),
            completion(&second.id, 405),
        ];
        assert!(store.store_batch_together(&issued, &completed).await.is_err(), "{:?}", db.kind);
        for n in [402, 403, 405] {
            assert!(!stored(&store, n).await, "{n}: rolled back");
        }
        let (issued_answers, answers) = store.store_batch(&issued, &completed).await;
        assert!(
            issued_answers[0].as_ref().is_ok_and(|(r, c)| *c && r.state == RequestState::Issued)
        );
        assert!(
            matches!(issued_answers[1], Err(StoreError::Conflict(_))),
            "{:?}",
            issued_answers[1]
        );
        for i in [0, 2] {
            let record = answers[i].as_ref().unwrap_or_else(|e| panic!("{:?}: {i}: {e}", db.kind));
            assert_eq!(record.state, RequestState::Issued);
        }
        let why = format!("request {} is approved, it cannot become issued", unclaimed.id);
        assert!(conflict_says(&answers[1], &why), "{:?}", answers[1]);
        assert!(
            stored(&store, 403).await && stored(&store, 405).await && !stored(&store, 404).await
        );
        assert_eq!(store.verify_audit_chain().await.unwrap().1, None);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_the_same_request_twice_concurrently_gives_one_certificate() {
    on_both_databases!(|store, db| {
        let a = adapter(&store).await;
        let mut requests = Vec::new();
        for _ in 0..12 {
            requests.push(claimed(&store, &a.id, None).await);
        }
        // Two workers of one process: both in its queue.
        let (r, twice) =
            (&requests[0], [completion(&requests[0].id, 500), completion(&requests[0].id, 501)]);
        let calls = twice.iter().map(|c| store.complete_issue(&c.ctx, &c.id, &c.issued));
        let answers = futures::future::join_all(calls).await;
        assert_eq!(answers.iter().filter(|a| a.is_ok()).count(), 1, "{:?}: {answers:?}", db.kind);
        assert!(answers.iter().any(|a| matches!(a, Err(StoreError::Conflict(_)))), "{answers:?}");
        assert_eq!(u8::from(stored(&store, 500).await) + u8::from(stored(&store, 501).await), 1);
        assert_eq!(issued_events(&store, &r.id).await, 1);
        assert_eq!(store.verify_audit_chain().await.unwrap().1, None);

        // Two replicas (two stores, two queues) finishing the same requests at once, each with
        // its own certificate from the CA. Replicas share a PostgreSQL database; a SQLite file
        // belongs to one process, whose one writer connection orders its writes.
        if db.kind != cmp_testkit::DbKind::Postgres {
            continue;
        }
        let other = SqlStore::connect(&db.url, 5).await.unwrap();
        let replica = |store: SqlStore, base: u32| {
            let items: Vec<_> =
                (base..).zip(&requests[1..]).map(|(n, r)| completion(&r.id, n)).collect();
            tokio::spawn(async move {
                let calls = items.iter().map(|c| store.complete_issue(&c.ctx, &c.id, &c.issued));
                futures::future::join_all(calls).await
            })
        };
        let (left, right) = (replica(store.clone(), 600), replica(other, 700));
        let (left, right) = (left.await.unwrap(), right.await.unwrap());
        for (i, (l, r)) in left.iter().zip(&right).enumerate() {
            let n = u32::try_from(i).unwrap();
            assert!(l.is_ok() != r.is_ok(), "{:?}: {i}: {l:?} / {r:?}", db.kind);
            let refused = if l.is_ok() { r } else { l };
            assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
            let winner = if l.is_ok() { 600 + n } else { 700 + n };
            let loser = if l.is_ok() { 700 + n } else { 600 + n };
            assert!(stored(&store, winner).await && !stored(&store, loser).await, "{i}");
            let request = store.get_request(&requests[i + 1].id, &Scope::All).await.unwrap();
            let leaf =
                store.get_certificate(request.certificate_id.as_deref().unwrap(), &Scope::All);
            assert_eq!(
                leaf.await.unwrap().fingerprint_sha256,
                crate::facts(winner, NOW).fingerprint_sha256
            );
            assert_eq!(issued_events(&store, &request.id).await, 1);
        }
        assert_eq!(store.verify_audit_chain().await.unwrap().1, None);
    });
}
