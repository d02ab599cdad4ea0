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
