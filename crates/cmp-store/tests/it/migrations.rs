use cmp_store::Dialect;

#[test]
fn sqlite_and_postgres_migrations_stay_in_step() {
    let versions = |d: Dialect| {
        d.migrator().iter().map(|m| (m.version, m.description.to_string())).collect::<Vec<_>>()
    };
    assert!(!versions(Dialect::Sqlite).is_empty());
    assert_eq!(versions(Dialect::Sqlite), versions(Dialect::Postgres));
}

#[tokio::test]
async fn reopening_a_migrated_database_is_a_no_op() {
    crate::on_both_databases!(|store, db| {
        drop(store);
        let again = cmp_store::SqlStore::connect(&db.url, 2).await.expect("reopen");
        cmp_store::Store::ping(&again).await.unwrap();
    });
}

/// 0006 makes managed-certificate names unique per owner; on SQLite it rebuilds the table, whose
/// rows the issuance requests point at (foreign keys on). Rows written before it must come
/// through whole, with their links, and the foreign key must still hold.
#[tokio::test]
async fn managed_certificates_and_their_links_survive_the_per_owner_names_migration() {
    use std::borrow::Cow;

    use cmp_store::{ManagedStore, RequestStore, Scope, StoreError};
    use sqlx::migrate::Migrator;

    for kind in cmp_testkit::DbKind::ALL {
        let db = cmp_testkit::TestDb::new(kind).await;
        sqlx::any::install_default_drivers();
        let dialect = Dialect::from_url(&db.url).unwrap();
        // The database as the version before 0006 left it.
        let before = Migrator {
            migrations: Cow::Owned(
                dialect.migrator().iter().filter(|m| m.version < 6).cloned().collect(),
            ),
            ..Migrator::DEFAULT
        };
        {
            let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&db.url).await;
            let pool = pool.unwrap();
            before.run(&pool).await.unwrap();
            for sql in [
                "INSERT INTO owners (id, name, created_at, updated_at) \
                 VALUES ('o-a', 'team-a', 1, 1), ('o-b', 'team-b', 1, 1)",
                "INSERT INTO adapters (id, name, kind, created_at, updated_at) \
                 VALUES ('ad', 'builtin', 'builtin', 1, 1)",
                "INSERT INTO certificates (id, fingerprint_sha256, serial_number, subject, issuer, \
                 not_before, not_after, sans, search_text, key_type, signature_algorithm, is_ca, \
                 self_signed, finding_flags, owner_id, source, der, created_at, updated_at, \
                 managed_certificate_id, adapter_id) VALUES ('c1', 'fp1', '01', 'CN=web', 'CN=ca', \
                 1, 2, '[]', 'cn=web', 'ec', 'ecdsa-with-SHA256', 0, 0, 0, 'o-a', 'issued', \
                 'der', 3, 3, 'm-a', 'ad')",
                "INSERT INTO managed_certificates (id, name, owner_id, adapter_id, spec, \
                 current_certificate_id, renewal_failures, last_failure_at, last_error, \
                 next_check_at, decision, created_by, created_at, updated_at) VALUES \
                 ('m-a', 'web', 'o-a', 'ad', '{\"dns_names\":[\"web.a.example\"], \
                 \"validity_days\":90,\"key_source\":\"csr\"}', 'c1', 2, 40, \
                 'CA away', 50, '{\"action\":\"wait\"}', 'token:dev', 10, 20)",
                "INSERT INTO issuance_requests (id, kind, state, owner_id, adapter_id, \
                 managed_certificate_id, certificate_id, spec, requested_by, created_at, \
                 updated_at) VALUES ('r1', 'issue', 'issued', 'o-a', 'ad', 'm-a', 'c1', \
                 '{\"validity_days\":90,\"key_source\":\"csr\"}', 'token:dev', 10, 11), \
                 ('r2', 'issue', 'issued', 'o-a', 'ad', NULL, NULL, \
                 '{\"validity_days\":90,\"key_source\":\"csr\"}', \
                 'token:dev', 12, 12)",
            ] {
                sqlx::query(sql).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
        // The store applies 0006 (and whatever follows) on its connections, foreign keys on.
        let store = cmp_store::SqlStore::connect(&db.url, 2).await.expect("migrate");
        let m = store.get_managed("m-a", &Scope::All).await.unwrap();
        assert_eq!(
            (
                m.name.as_str(),
                m.owner_id.as_deref(),
                m.owner_name.as_deref(),
                m.adapter_id.as_str()
            ),
            ("web", Some("o-a"), Some("team-a"), "ad"),
            "{kind:?}"
        );
        assert_eq!(m.spec, crate::spec_for(&["web.a.example"]));
        assert_eq!(m.current_certificate_id.as_deref(), Some("c1"));
        assert_eq!(
            (m.renewal_failures, m.last_failure_at, m.last_error.as_deref()),
            (2, Some(40), Some("CA away"))
        );
        assert_eq!(m.decision, Some(serde_json::json!({"action": "wait"})));
        assert_eq!(
            (m.next_check_at, m.created_by.as_str(), m.created_at, m.updated_at),
            (50, "token:dev", 10, 20)
        );
        let r1 = store.get_request("r1", &Scope::All).await.unwrap();
        assert_eq!(
            (r1.managed_certificate_id.as_deref(), r1.certificate_id.as_deref()),
            (Some("m-a"), Some("c1")),
            "{kind:?}: the request's link to its managed certificate"
        );
        assert_eq!(
            store.get_request("r2", &Scope::All).await.unwrap().managed_certificate_id,
            None
        );
        let links = store.certificate_links("c1", &Scope::All).await.unwrap();
        assert_eq!(links.managed_certificate_id.as_deref(), Some("m-a"));

        // Names are now per owner: team-b may have its own `web`; team-a may not have two.
        let second = |id: &str, owner: &str| {
            format!(
                "INSERT INTO managed_certificates (id, name, owner_id, adapter_id, spec, \
                 next_check_at, created_by, created_at, updated_at) \
                 VALUES ('{id}', 'web', '{owner}', 'ad', '{{}}', 1, 'x', 1, 1)"
            )
        };
        store.execute_raw(&second("m-b", "o-b")).await.unwrap();
        let twice = store.execute_raw(&second("m-a2", "o-a")).await;
        assert!(matches!(twice, Err(StoreError::Conflict(_))), "{kind:?}: {twice:?}");
        // The foreign key still points at the table: a request for no managed certificate is
        // refused, and deleting one still unlinks its requests.
        let dangling = store
            .execute_raw(
                "INSERT INTO issuance_requests (id, kind, state, adapter_id, \
                 managed_certificate_id, spec, requested_by, created_at, updated_at) \
                 VALUES ('r3', 'issue', 'issued', 'ad', 'm-none', '{}', 'x', 1, 1)",
            )
            .await;
        assert!(matches!(dangling, Err(StoreError::Conflict(_))), "{kind:?}: {dangling:?}");
        store.execute_raw("DELETE FROM managed_certificates WHERE id = 'm-a'").await.unwrap();
        let r1 = store.get_request("r1", &Scope::All).await.unwrap();
        assert_eq!(r1.managed_certificate_id, None, "{kind:?}");
    }
}
