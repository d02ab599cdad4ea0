use cmp_domain::Role;
use cmp_store::*;

use crate::{NOW, ctx, on_both_databases};

#[tokio::test]
async fn owners_are_unique_by_name_and_found_by_id_or_name() {
    on_both_databases!(|store, db| {
        let new =
            NewOwner { name: "platform".into(), email: None, description: Some("SRE".into()) };
        let owner = store.create_owner(&ctx(NOW), &new).await.unwrap();
        assert!(
            matches!(store.create_owner(&ctx(NOW), &new).await, Err(StoreError::Conflict(_))),
            "{:?}",
            db.kind
        );
        assert_eq!(store.get_owner("platform").await.unwrap().id, owner.id);
        let update = OwnerUpdate {
            name: Some("platform-sre".into()),
            email: Some(Some("sre@example.com".into())),
            description: Some(None),
        };
        let updated = store.update_owner(&ctx(NOW + 1), &owner.id, &update).await.unwrap();
        assert_eq!(updated.name, "platform-sre");
        assert_eq!(updated.email.as_deref(), Some("sre@example.com"));
        assert_eq!(updated.description, None);
        assert_eq!(store.list_owners().await.unwrap().len(), 1);
        assert!(matches!(
            store.delete_owner(&ctx(NOW), "nope").await,
            Err(StoreError::NotFound { .. })
        ));
    });
}

#[tokio::test]
async fn tokens_are_found_by_hash_until_expired_or_revoked() {
    on_both_databases!(|store, db| {
        assert_eq!(store.count_tokens().await.unwrap(), 0);
        let token = store
            .create_token(
                &ctx(NOW),
                &NewApiToken {
                    name: "ci".into(),
                    token_hash: "h1".into(),
                    role: Role::Security,
                    owner_ids: vec![],
                    expires_at: Some(NOW + 100),
                },
            )
            .await
            .unwrap();
        assert_eq!(token.created_by, "token:test");
        assert_eq!(
            store.find_token_by_hash("h1", NOW).await.unwrap().map(|t| t.role),
            Some(Role::Security)
        );
        assert_eq!(store.find_token_by_hash("h1", NOW + 100).await.unwrap(), None, "{:?}", db.kind);
        assert_eq!(store.find_token_by_hash("other", NOW).await.unwrap(), None);
        store.revoke_token(&ctx(NOW), &token.id, NOW).await.unwrap();
        assert_eq!(store.find_token_by_hash("h1", NOW).await.unwrap(), None);
        assert!(matches!(
            store.revoke_token(&ctx(NOW), &token.id, NOW).await,
            Err(StoreError::NotFound { .. })
        ));
        // A developer token may only name owners that exist.
        let bad = NewApiToken {
            name: "dev".into(),
            token_hash: "h2".into(),
            role: Role::Developer,
            owner_ids: vec!["ghost".into()],
            expires_at: None,
        };
        assert!(matches!(
            store.create_token(&ctx(NOW), &bad).await,
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(store.count_tokens().await.unwrap(), 1);
    });
}

/// The directory cache (tokens, owners, adapters, policies) keeps what it read, as another
/// replica's change shows, yet every change this store commits is seen by the next read.
#[tokio::test]
async fn the_directory_cache_forgets_every_change_it_commits() {
    for kind in cmp_testkit::DbKind::ALL {
        let (store, _db) = crate::fresh_store(kind).await;
        let store = store.with_directory_cache(std::time::Duration::from_secs(600));
        let new = NewOwner { name: "shop".into(), email: None, description: None };
        let owner = store.create_owner(&ctx(NOW), &new).await.unwrap();
        assert_eq!(store.get_owner("shop").await.unwrap().id, owner.id);

        // A change behind the store's back (another replica) is not seen while kept ...
        store.execute_raw("UPDATE owners SET email = 'elsewhere@example.com'").await.unwrap();
        assert_eq!(store.get_owner("shop").await.unwrap().email, None, "{kind:?}: cached");
        // ... but every change through the store is, at once.
        let rename = OwnerUpdate { name: Some("store".into()), email: None, description: None };
        store.update_owner(&ctx(NOW), &owner.id, &rename).await.unwrap();
        assert!(matches!(store.get_owner("shop").await, Err(StoreError::NotFound { .. })));
        assert_eq!(store.get_owner("store").await.unwrap().id, owner.id);

        assert_eq!(store.get_policy(&owner.id).await.unwrap(), None);
        let rules = serde_json::json!({"max_validity_days": 30});
        store.put_policy(&ctx(NOW), &owner.id, &rules).await.unwrap();
        assert_eq!(store.get_policy(&owner.id).await.unwrap().map(|p| p.rules), Some(rules));

        let adapter = NewAdapter {
            id: uuid::Uuid::now_v7().to_string(),
            name: "ca".into(),
            kind: "builtin".into(),
            config: serde_json::json!({}),
            has_credentials: false,
            material: Some(CaCertificates { root_der: vec![1], issuing_der: vec![2] }),
        };
        store.create_adapter(&ctx(NOW), &adapter).await.unwrap();
        assert!(store.get_adapter("ca").await.unwrap().enabled);
        let disable = AdapterUpdate { enabled: Some(false), ..AdapterUpdate::default() };
        store.update_adapter(&ctx(NOW), "ca", &disable).await.unwrap();
        assert!(!store.get_adapter("ca").await.unwrap().enabled, "{kind:?}: disabled at once");

        let token = NewApiToken {
            name: "ci".into(),
            token_hash: "h1".into(),
            role: Role::Admin,
            owner_ids: vec![],
            expires_at: Some(NOW + 100),
        };
        let token = store.create_token(&ctx(NOW), &token).await.unwrap();
        assert!(store.find_token_by_hash("h1", NOW).await.unwrap().is_some());
        // A kept token still expires on time.
        assert_eq!(store.find_token_by_hash("h1", NOW + 100).await.unwrap(), None);
        store.revoke_token(&ctx(NOW), &token.id, NOW).await.unwrap();
        assert_eq!(store.find_token_by_hash("h1", NOW).await.unwrap(), None, "{kind:?}: revoked");

        store.delete_owner(&ctx(NOW), &owner.id).await.unwrap();
        assert!(matches!(store.get_owner(&owner.id).await, Err(StoreError::NotFound { .. })));
    }
}
