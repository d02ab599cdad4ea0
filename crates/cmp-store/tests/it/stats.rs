//! The dashboard's aggregates: counts by status and the expiry timeline, for everyone and for
//! a team; requests that need a person.

use cmp_domain::{CertificateStatus, RequestState};
use cmp_store::*;

use crate::issuance::{adapter, request};
use crate::{NOW, ctx, facts, new_cert, on_both_databases};

const DAY: i64 = 86_400;

#[tokio::test]
async fn counts_and_the_expiry_timeline_follow_the_scope() {
    on_both_databases!(|store, db| {
        let new_owner = |name: &str| NewOwner { name: name.into(), email: None, description: None };
        let shop = store.create_owner(&ctx(NOW), &new_owner("shop")).await.unwrap();
        let mut certs = vec![
            new_cert(facts(1, NOW - DAY)),       // expired, no owner
            new_cert(facts(2, NOW + 3 * DAY)),   // expiring, week 0, no owner
            new_cert(facts(3, NOW + 10 * DAY)),  // expiring, week 1, shop
            new_cert(facts(4, NOW + 12 * DAY)),  // expiring, week 1, shop
            new_cert(facts(5, NOW + 200 * DAY)), // valid, past the timeline
        ];
        certs[2].owner_id = Some(shop.id.clone());
        certs[3].owner_id = Some(shop.id.clone());
        // Not valid for five more days (stored now, before it starts).
        let mut later = new_cert(facts(6, NOW + 100 * DAY));
        later.facts.not_before = time::OffsetDateTime::from_unix_timestamp(NOW + 5 * DAY).unwrap();
        certs.push(later);
        // Revoked, though its dates say valid.
        certs.push(new_cert(facts(7, NOW + 300 * DAY)));
        store.import_certificates(&ctx(NOW), &Scope::All, &certs).await.unwrap();
        let revoked = format!("{:064x}", 7);
        store
            .execute_raw(&format!(
                "UPDATE certificates SET revoked_at = {NOW} WHERE fingerprint_sha256 = '{revoked}'"
            ))
            .await
            .unwrap();

        let all = store.certificate_counts(NOW, 30 * DAY, &Scope::All).await.unwrap();
        let count = |counts: &[(CertificateStatus, i64)], s| {
            counts.iter().find(|(status, _)| *status == s).map(|(_, n)| *n)
        };
        assert_eq!(count(&all, CertificateStatus::Expired), Some(1), "{:?}", db.kind);
        assert_eq!(count(&all, CertificateStatus::Expiring), Some(3));
        assert_eq!(count(&all, CertificateStatus::Valid), Some(1));
        assert_eq!(count(&all, CertificateStatus::NotYetValid), Some(1));
        assert_eq!(count(&all, CertificateStatus::Revoked), Some(1));
        // The same as the listing's status filter finds, status by status.
        for status in CertificateStatus::ALL {
            let mut query = CertificateQuery::all(NOW);
            query.status = Some(status);
            query.window_secs = 30 * DAY;
            let listed = store.list_certificates(&query).await.unwrap().items.len() as i64;
            assert_eq!(count(&all, status), Some(listed), "{status:?} {:?}", db.kind);
        }
        let team = Scope::Owners(vec![shop.id.clone()]);
        let theirs = store.certificate_counts(NOW, 30 * DAY, &team).await.unwrap();
        assert_eq!(theirs.iter().map(|(_, n)| n).sum::<i64>(), 2);
        let nobody = Scope::Owners(vec![]);
        let none = store.certificate_counts(NOW, 30 * DAY, &nobody).await.unwrap();
        assert_eq!(none.iter().map(|(_, n)| n).sum::<i64>(), 0);

        let mut buckets = store.expiry_buckets(NOW, 13, &Scope::All).await.unwrap();
        buckets.sort_by_key(|b| (b.week, b.owner_id.clone()));
        assert_eq!(
            buckets,
            [
                ExpiryBucket { owner_id: None, week: 0, count: 1 },
                ExpiryBucket { owner_id: Some(shop.id.clone()), week: 1, count: 2 },
            ],
            "{:?}",
            db.kind
        );
        let theirs = store.expiry_buckets(NOW, 13, &team).await.unwrap();
        assert_eq!(theirs, [ExpiryBucket { owner_id: Some(shop.id.clone()), week: 1, count: 2 }]);
        // One week only: the second week's certificates are outside it.
        assert_eq!(store.expiry_buckets(NOW, 1, &team).await.unwrap(), []);
    });
}

/// The total by owner follows every way certificates come, go and change owner: on
/// PostgreSQL it is kept by triggers (migration 0013), and folded now and then.
#[tokio::test]
async fn the_total_follows_imports_deletions_and_owner_changes() {
    on_both_databases!(|store, db| {
        let new_owner = |name: &str| NewOwner { name: name.into(), email: None, description: None };
        let shop = store.create_owner(&ctx(NOW), &new_owner("shop")).await.unwrap();
        let pay = store.create_owner(&ctx(NOW), &new_owner("pay")).await.unwrap();
        let total = |scope: Scope| {
            let store = &store;
            async move {
                let counts = store.certificate_counts(NOW, 30 * DAY, &scope).await.unwrap();
                counts.iter().map(|(_, n)| n).sum::<i64>()
            }
        };
        let shop_scope = || Scope::Owners(vec![shop.id.clone()]);
        let pay_scope = || Scope::Owners(vec![pay.id.clone()]);
        // More changes than a count keeps unfolded (1,000), one statement each: 1,003 imports
        // of one certificate.
        let mut ids = Vec::new();
        for n in 0..1_003u32 {
            let mut cert = new_cert(facts(1_000 + n, NOW + 100 * DAY));
            cert.owner_id = (n % 2 == 0).then(|| shop.id.clone());
            let outcome = store.import_certificates(&ctx(NOW), &Scope::All, &[cert]).await.unwrap();
            ids.push(outcome[0].id.clone());
        }
        // An import of one already there changes nothing.
        let again = new_cert(facts(1_000, NOW + 100 * DAY));
        store.import_certificates(&ctx(NOW), &Scope::All, &[again]).await.unwrap();
        assert_eq!(total(Scope::All).await, 1_003, "{:?}", db.kind);
        assert_eq!(total(shop_scope()).await, 502);
        // The count folded the changes: asked again, it says the same.
        assert_eq!(total(Scope::All).await, 1_003, "{:?}", db.kind);
        if db.kind == cmp_testkit::DbKind::Postgres {
            let rows = store.count_rows("certificate_count_changes").await.unwrap();
            assert!(rows <= 2, "{rows} change rows after a fold");
        }

        let to_pay = CertificateUpdate { owner_id: Some(Some(pay.id.clone())), labels: None };
        store.update_certificate(&ctx(NOW), &ids[0], &Scope::All, &to_pay).await.unwrap();
        let unowned = CertificateUpdate { owner_id: Some(None), labels: None };
        store.update_certificate(&ctx(NOW), &ids[2], &Scope::All, &unowned).await.unwrap();
        // Labels alone move nothing.
        let labelled = CertificateUpdate {
            owner_id: None,
            labels: Some([("env".into(), "prod".into())].into()),
        };
        store.update_certificate(&ctx(NOW), &ids[4], &Scope::All, &labelled).await.unwrap();
        assert_eq!(total(shop_scope()).await, 500, "{:?}", db.kind);
        assert_eq!(total(pay_scope()).await, 1);
        store.delete_certificate(&ctx(NOW), &ids[4], &Scope::All).await.unwrap();
        assert_eq!(total(shop_scope()).await, 499);
        // Deleting an owner leaves its certificates without one (ON DELETE SET NULL).
        store.delete_owner(&ctx(NOW), &shop.id).await.unwrap();
        assert_eq!(total(shop_scope()).await, 0, "{:?}", db.kind);
        assert_eq!(total(Scope::All).await, 1_002);
        assert_eq!(store.count_rows("certificates").await.unwrap(), 1_002);
    });
}

#[tokio::test]
async fn requests_awaiting_approval_and_recent_failures_are_counted() {
    on_both_databases!(|store, db| {
        let a = adapter(&store).await;
        store
            .create_request(&ctx(NOW), &request(&a.id, RequestState::AwaitingApproval), None)
            .await
            .unwrap();
        let (old, _) = store
            .create_request(&ctx(NOW), &request(&a.id, RequestState::Approved), None)
            .await
            .unwrap();
        store.claim_request(&ctx(NOW), &old.id, NOW + 60).await.unwrap().unwrap();
        store.fail_request(&ctx(NOW + 1), &old.id, "refused", None).await.unwrap();

        let counts = store.request_counts(NOW, &Scope::All).await.unwrap();
        assert_eq!(
            counts,
            RequestCounts { awaiting_approval: 1, failed_since: 1 },
            "{:?}",
            db.kind
        );
        // A failure before the window is not counted; a team sees only its own requests.
        let later = store.request_counts(NOW + 2, &Scope::All).await.unwrap();
        assert_eq!(later.failed_since, 0);
        let team = store.request_counts(NOW, &Scope::Owners(vec!["t".into()])).await.unwrap();
        assert_eq!(team, RequestCounts { awaiting_approval: 0, failed_since: 0 });
        let managed = store.managed_counts(&Scope::All).await.unwrap();
        assert_eq!(managed, ManagedCounts { total: 0, renewal_failing: 0 });
    });
}
