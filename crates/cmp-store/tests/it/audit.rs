use cmp_store::*;
use serde_json::json;

use crate::{NOW, ctx, on_both_databases};

fn event(n: i64) -> NewAuditEvent {
    NewAuditEvent {
        action: AuditAction::OwnerUpdated,
        entity_type: "thing".into(),
        entity_id: format!("t{n}"),
        details: json!({"n": n, "nested": {"b": 1, "a": [true, null]}}),
    }
}

#[tokio::test]
async fn the_chain_verifies_and_pages_newest_first() {
    on_both_databases!(|store, db| {
        for n in 0..12 {
            store.append_audit(&ctx(NOW + n), &event(n)).await.unwrap();
        }
        assert_eq!(store.verify_audit_chain().await.unwrap(), (12, None), "{:?}", db.kind);
        let first = store.list_audit(&AuditQuery { limit: 5, ..Default::default() }).await.unwrap();
        assert_eq!(first.items.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![12, 11, 10, 9, 8]);
        let next = store
            .list_audit(&AuditQuery {
                limit: 5,
                before_seq: first.next_cursor.map(|c| c.key),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(next.items[0].seq, 7);
        // Pages link up: the newest event of the second page is the one before the first's last.
        assert_eq!(first.items[4].prev_hash, next.items[0].hash);
        let by_entity = store
            .list_audit(&AuditQuery {
                limit: 5,
                entity_id: Some("t3".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(by_entity.items.len(), 1);
        assert_eq!(by_entity.items[0].details["nested"]["a"], json!([true, null]));
    });
}

#[tokio::test]
async fn concurrent_appends_never_fork_the_chain() {
    on_both_databases!(|store, db| {
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    for n in 0..10 {
                        store.append_audit(&ctx(NOW), &event(t * 100 + n)).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(store.verify_audit_chain().await.unwrap(), (80, None), "{:?}", db.kind);
    });
}

#[tokio::test]
async fn the_database_refuses_edits_and_verification_finds_them() {
    on_both_databases!(|store, db| {
        for n in 0..5 {
            store.append_audit(&ctx(NOW + n), &event(n)).await.unwrap();
        }
        // The append-only guard holds for ordinary statements.
        let refused =
            store.execute_raw("UPDATE audit_logs SET actor = 'mallory' WHERE seq = 3").await;
        assert!(refused.is_err(), "{:?} allowed an UPDATE of the audit trail", db.kind);
        assert!(store.execute_raw("DELETE FROM audit_logs WHERE seq = 5").await.is_err());

        // Someone with the database owner's rights switches the guard off and edits a row.
        let disable = match store.dialect() {
            Dialect::Sqlite => "DROP TRIGGER audit_logs_no_update",
            Dialect::Postgres => "ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_no_change",
        };
        store.execute_raw(disable).await.unwrap();
        store.execute_raw("UPDATE audit_logs SET actor = 'mallory' WHERE seq = 3").await.unwrap();
        let (checked, broken) = store.verify_audit_chain().await.unwrap();
        assert_eq!(checked, 2);
        assert_eq!(broken.map(|b| b.seq), Some(3));
    });
}

#[test]
fn every_audit_action_has_its_own_dotted_name() {
    let names: std::collections::HashSet<&str> =
        AuditAction::ALL.iter().map(|a| a.as_str()).collect();
    assert_eq!(names.len(), AuditAction::ALL.len(), "two actions share a name");
    for name in names {
        let (entity, verb) = name.split_once('.').expect("entity.verb");
        assert!(!entity.is_empty() && !verb.is_empty(), "{name}");
    }
}
