use cmp_domain::Role;
use cmp_store::*;

use crate::{NOW, ctx, on_both_databases};

fn login(subject: &str, role: Role, groups: &[&str]) -> UserLogin {
    UserLogin {
        provider: "corp".into(),
        subject: subject.into(),
        email: Some(format!("{subject}@example.test")),
        name: None,
        role,
        owner_ids: vec![],
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

#[tokio::test]
async fn the_first_login_creates_the_user_and_later_ones_update_the_claims() {
    on_both_databases!(|store, db| {
        let first =
            store.record_login(&ctx(NOW), &login("ada", Role::Admin, &["a"])).await.unwrap();
        let again = store
            .record_login(&ctx(NOW + 60), &login("ada", Role::Security, &["b"]))
            .await
            .unwrap();
        assert_eq!(first.id, again.id, "{:?}", db.kind);
        assert_eq!((again.role, again.groups.clone()), (Role::Security, vec!["b".to_string()]));
        assert_eq!((again.created_at, again.last_login_at), (NOW, NOW + 60));
        // The same subject at another provider is another person.
        let other = UserLogin { provider: "partner".into(), ..login("ada", Role::Developer, &[]) };
        let other = store.record_login(&ctx(NOW), &other).await.unwrap();
        assert_ne!(other.id, first.id);
        assert_eq!(store.list_users().await.unwrap().len(), 2);
        assert_eq!(store.get_user(&first.id).await.unwrap(), again);
        assert!(matches!(store.get_user("nope").await, Err(StoreError::NotFound { .. })));
        let logins = store
            .list_audit(&AuditQuery {
                action: Some("user.logged_in".into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(logins.items.len(), 3);
        assert!(logins.items.iter().any(|e| e.details["first_login"] == false));
    });
}

#[tokio::test]
async fn sessions_are_found_touched_deleted_and_purged() {
    on_both_databases!(|store, db| {
        let user = store.record_login(&ctx(NOW), &login("sam", Role::Security, &[])).await.unwrap();
        let session = |id: &str, expires_at| NewSession {
            id_hash: id.into(),
            user_id: user.id.clone(),
            csrf_token: "csrf".into(),
            role: Role::Security,
            owner_ids: vec!["o1".into()],
            created_at: NOW,
            expires_at,
        };
        store.create_session(&session("s1", NOW + 3600)).await.unwrap();
        store.create_session(&session("s2", NOW + 10)).await.unwrap();
        let found = store.find_session("s1").await.unwrap().unwrap();
        assert_eq!((found.subject.as_str(), found.role), ("sam", Role::Security), "{:?}", db.kind);
        assert_eq!(found.owner_ids, vec!["o1".to_string()]);
        store.touch_session("s1", NOW + 100).await.unwrap();
        assert_eq!(store.find_session("s1").await.unwrap().unwrap().last_seen_at, NOW + 100);
        // s2 is past its end; s1 was seen after the idle limit.
        assert_eq!(store.purge_sessions(NOW + 50, NOW + 20).await.unwrap(), 1);
        assert!(store.find_session("s2").await.unwrap().is_none());
        assert!(store.delete_session("s1").await.unwrap());
        assert!(!store.delete_session("s1").await.unwrap());
        assert!(store.find_session("s1").await.unwrap().is_none());
    });
}

#[tokio::test]
async fn a_login_attempt_is_taken_once_and_not_after_it_expired() {
    on_both_databases!(|store, db| {
        let attempt = |state: &str| LoginAttempt {
            state_hash: state.into(),
            provider: "corp".into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            return_to: "/".into(),
            created_at: NOW,
        };
        store.save_login_attempt(&attempt("st1")).await.unwrap();
        store.save_login_attempt(&attempt("st2")).await.unwrap();
        assert_eq!(store.take_login_attempt("st1", NOW + 1).await.unwrap(), Some(attempt("st1")));
        assert_eq!(store.take_login_attempt("st1", NOW + 1).await.unwrap(), None, "{:?}", db.kind);
        let late = NOW + LOGIN_ATTEMPT_SECS;
        assert_eq!(store.take_login_attempt("st2", late).await.unwrap(), None);
        assert_eq!(store.take_login_attempt("unknown", NOW).await.unwrap(), None);
    });
}
