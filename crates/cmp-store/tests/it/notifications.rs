//! Notification rules, the marks that tell each notice once on every replica, and deliveries
//! taken by one attempt at a time.

use cmp_domain::{DeliveryState, NotificationEvent};
use cmp_store::*;
use serde_json::json;

use crate::{NOW, ctx, facts, new_cert, on_both_databases};

const DAY: i64 = 86_400;

fn new_rule(name: &str) -> NewNotificationRule {
    NewNotificationRule {
        id: uuid::Uuid::now_v7().to_string(),
        name: name.into(),
        owner_id: None,
        events: vec![NotificationEvent::CertificateExpiring],
        channel: json!({"kind": "webhook", "url": "https://hooks.example/x"}),
        has_secret: false,
        thresholds: vec![30, 7],
        enabled: true,
    }
}

#[tokio::test]
async fn each_notice_is_told_once_and_each_attempt_taken_once() {
    on_both_databases!(|store, db| {
        let certs: Vec<_> = [5, 20, 100]
            .into_iter()
            .enumerate()
            .map(|(i, days)| new_cert(facts(i as u32 + 1, NOW + days * DAY)))
            .collect();
        store.import_certificates(&ctx(NOW), &Scope::All, &certs).await.unwrap();
        let rule = store.create_notification_rule(&ctx(NOW), &new_rule("expiry")).await.unwrap();
        assert_eq!(store.get_notification_rule("expiry").await.unwrap(), rule);
        let clash = store.create_notification_rule(&ctx(NOW), &new_rule("expiry")).await;
        assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");

        // The 7-day band holds the first certificate; the 30-day band the second.
        let week =
            store.expiring_notices(&rule.id, None, NOW, NOW + 7 * DAY, 7, 100).await.unwrap();
        let month = store
            .expiring_notices(&rule.id, None, NOW + 7 * DAY, NOW + 30 * DAY, 30, 100)
            .await
            .unwrap();
        assert_eq!((week.len(), month.len()), (1, 1));
        assert_eq!(week[0].details["not_after"], NOW + 5 * DAY);
        let notices: Vec<Notice> = week.into_iter().chain(month).collect();

        // Two replicas record the same notices: one delivery between them, a digest of both.
        let made = store.record_notices(&rule.id, NOW, NOW, vec![notices.clone()]).await.unwrap();
        let again = store.record_notices(&rule.id, NOW, NOW, vec![notices.clone()]).await.unwrap();
        assert_eq!((made.len(), again.len()), (1, 0));
        assert_eq!((made[0].notice_count, made[0].notices.len()), (2, 2));
        assert!(
            store
                .expiring_notices(&rule.id, None, NOW, NOW + 7 * DAY, 7, 100)
                .await
                .unwrap()
                .is_empty(),
            "marked notices are not found again"
        );

        // One attempt at a time: the lease keeps a second claim off it.
        let taken = store.claim_deliveries(NOW, NOW + 60, 10).await.unwrap();
        assert_eq!((taken.len(), taken[0].attempts), (1, 1));
        assert!(store.claim_deliveries(NOW, NOW + 60, 10).await.unwrap().is_empty());
        let retry = DeliveryOutcome::Retry { error: "500".into(), at: NOW + 30 };
        store.finish_delivery(&taken[0].id, NOW, &retry).await.unwrap();
        assert!(store.claim_deliveries(NOW + 29, NOW + 90, 10).await.unwrap().is_empty());
        let second = store.claim_deliveries(NOW + 30, NOW + 90, 10).await.unwrap();
        assert_eq!(second[0].attempts, 2);
        let sent =
            store.finish_delivery(&second[0].id, NOW + 31, &DeliveryOutcome::Sent).await.unwrap();
        assert_eq!(
            (sent.state, sent.sent_at, sent.last_error.as_deref()),
            (DeliveryState::Sent, Some(NOW + 31), Some("500"))
        );
        assert!(
            store.claim_delivery(&sent.id, NOW + 120).await.unwrap().is_none(),
            "sent stays sent"
        );

        // A trouble that ended is news again when it comes back.
        let adapter = Notice {
            event: NotificationEvent::AdapterUnhealthy,
            subject: "adapter-1".into(),
            level: 0,
            owner_id: None,
            details: json!({}),
        };
        assert_eq!(
            store
                .record_notices(&rule.id, NOW, NOW, vec![vec![adapter.clone()]])
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            store
                .record_notices(&rule.id, NOW, NOW, vec![vec![adapter.clone()]])
                .await
                .unwrap()
                .is_empty()
        );
        store
            .forget_notice(&rule.id, NotificationEvent::AdapterUnhealthy, "adapter-1")
            .await
            .unwrap();
        assert_eq!(
            store.record_notices(&rule.id, NOW, NOW, vec![vec![adapter]]).await.unwrap().len(),
            1
        );

        // Pages, newest first.
        let query =
            DeliveryQuery { rule_id: Some(rule.id.clone()), limit: 2, ..Default::default() };
        let page = store.list_deliveries(&query).await.unwrap();
        assert_eq!(page.items.len(), 2);
        let rest = store
            .list_deliveries(&DeliveryQuery { cursor: page.next_cursor, ..query })
            .await
            .unwrap();
        assert_eq!(rest.items.len(), 1);
        assert_eq!(rest.items[0].id, sent.id);

        // Changes are audited; a deleted rule takes its deliveries and marks with it.
        let update = NotificationRuleUpdate { enabled: Some(false), ..Default::default() };
        let off = store.update_notification_rule(&ctx(NOW), "expiry", &update).await.unwrap();
        assert!(!off.enabled);
        store.delete_notification_rule(&ctx(NOW), &rule.id).await.unwrap();
        assert!(matches!(store.get_delivery(&sent.id).await, Err(StoreError::NotFound { .. })));
        let audit =
            store.list_audit(&AuditQuery { limit: 500, ..Default::default() }).await.unwrap();
        let actions: Vec<_> = audit.items.iter().map(|e| e.action.as_str()).collect();
        for action in
            ["notification_rule.created", "notification_rule.updated", "notification_rule.deleted"]
        {
            assert!(actions.contains(&action), "{action} in {actions:?}");
        }
    });
}
