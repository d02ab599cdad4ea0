//! Managed certificates: names unique per owner, found by id, name or `owner/name` within the
//! caller's scope, and an ambiguous name refused rather than answered with any one of them.

use cmp_store::*;

use crate::{NOW, ctx, on_both_databases};

async fn owner(store: &SqlStore, name: &str) -> Owner {
    let new = NewOwner { name: name.into(), email: None, description: None };
    store.create_owner(&ctx(NOW), &new).await.unwrap()
}

fn web(owner_id: &str, adapter_id: &str) -> NewManaged {
    NewManaged {
        name: "web".into(),
        owner_id: Some(owner_id.into()),
        adapter_id: adapter_id.into(),
        spec: crate::spec_for(&["web.example"]),
        csr: None,
        first_check_at: NOW + 60,
    }
}

#[tokio::test]
async fn managed_names_are_unique_per_owner_and_resolved_within_the_scope() {
    on_both_databases!(|store, db| {
        let adapter = crate::issuance::adapter(&store).await;
        let (a, b) = (owner(&store, "team-a").await, owner(&store, "team-b").await);
        let a_web = store.create_managed(&ctx(NOW), &web(&a.id, &adapter.id)).await.unwrap();
        // Another owner's `web` is no clash.
        let b_web = store
            .create_managed(&ctx(NOW), &web(&b.id, &adapter.id))
            .await
            .unwrap_or_else(|e| panic!("{:?}: team-b's web: {e}", db.kind));
        assert_eq!(b_web.owner_name.as_deref(), Some("team-b"));
        // The same owner's is, and the refusal names nothing of another owner.
        let again = store.create_managed(&ctx(NOW), &web(&a.id, &adapter.id)).await;
        let Err(StoreError::Conflict(why)) = again else { panic!("{again:?}") };
        assert!(!why.contains("team-b") && !why.contains(&b.id), "{why}");

        // A bare name within a scope of one owner is that owner's.
        let only_a = Scope::Owners(vec![a.id.clone()]);
        assert_eq!(store.get_managed("web", &only_a).await.unwrap().id, a_web.id);
        let only_b = Scope::Owners(vec![b.id.clone()]);
        assert_eq!(store.get_managed("web", &only_b).await.unwrap().id, b_web.id);
        // Seeing both, it is ambiguous: the error says which `owner/name` forms to use.
        for scope in [Scope::All, Scope::Owners(vec![a.id.clone(), b.id.clone()])] {
            match store.get_managed("web", &scope).await {
                Err(StoreError::AmbiguousName { candidates, .. }) => {
                    assert_eq!(candidates, ["team-a/web", "team-b/web"], "{:?}", db.kind);
                }
                other => panic!("{:?}: {other:?}", db.kind),
            }
        }
        // `owner/name` with the owner's name or id, and the id, always find one.
        assert_eq!(store.get_managed("team-b/web", &Scope::All).await.unwrap().id, b_web.id);
        let by_owner_id = format!("{}/web", a.id);
        assert_eq!(store.get_managed(&by_owner_id, &Scope::All).await.unwrap().id, a_web.id);
        assert_eq!(store.get_managed(&b_web.id, &Scope::All).await.unwrap(), b_web);
        // Never across the scope, whatever the form.
        for other_teams in ["team-b/web", b_web.id.as_str(), "team-b/nothing", "nothing"] {
            let got = store.get_managed(other_teams, &only_a).await;
            assert!(matches!(got, Err(StoreError::NotFound { .. })), "{other_teams}: {got:?}");
        }
        let listed = store.list_managed(&only_a, 10, None).await.unwrap();
        assert_eq!(listed.items, [a_web]);
    });
}
