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
