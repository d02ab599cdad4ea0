//! What a caller learns across teams: that a certificate it re-imports exists elsewhere, never
//! its id or anything of it; managed-certificate names unique per owner and looked up within
//! the caller's scope, `owner/name` where one name means several.

use std::collections::BTreeMap;

use cmp_api::{CertificatePatch, ImportOutcome, ImportParams, OwnerCreate};
use cmp_client::ImportBody;
use cmp_domain::Role;
use serde_json::{Value, json};

use crate::issuance::call;
use crate::support::{TestApp, TestPki, on_both_databases};

async fn owner(app: &TestApp, name: &str) -> String {
    let new = OwnerCreate { name: name.into(), email: None, description: None };
    app.admin.create_owner(&new).await.unwrap().id
}

#[tokio::test]
async fn a_developer_reimporting_another_teams_certificate_learns_only_that_it_exists() {
    on_both_databases!(|app| {
        let pki = TestPki::new();
        let (a, b) = (owner(&app, "team-a").await, owner(&app, "team-b").await);
        let (theirs, nobodys) =
            (pki.leaf(&["b.example"], 90).0.pem(), pki.leaf(&["orphan.example"], 90).0.pem());
        let to_b = ImportParams { owner: Some("team-b".into()), ..Default::default() };
        let imported = app.admin.import(ImportBody::Raw(theirs.clone().into()), &to_b).await;
        let b_id = imported.unwrap().certificates[0].id.clone().unwrap();
        let labels = BTreeMap::from([("project".to_string(), "falcon".to_string())]);
        let patch = CertificatePatch { owner: None, labels: Some(labels.clone()) };
        app.admin.update_certificate(&b_id, &patch).await.unwrap();
        let no_owner = ImportParams::default();
        let unowned = app.admin.import(ImportBody::Raw(nobodys.clone().into()), &no_owner).await;
        let orphan_id = unowned.unwrap().certificates[0].id.clone().unwrap();
        let (b_before, orphan_before) = (
            app.admin.certificate(&b_id).await.unwrap(),
            app.admin.certificate(&orphan_id).await.unwrap(),
        );
        let dev_a = app.token(Role::Developer, &[a.as_str()]).await;
        let counts_before = app.counts().await;

        // Team A's developer imports both, as seen on one of its endpoints.
        let response = app
            .http()
            .post(app.url("/api/v1/certificates/import?location=endpoint:b.example:443"))
            .bearer_auth(&dev_a)
            .body(format!("{theirs}{nobodys}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{:?}", app.kind);
        let text = response.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (&body["created"], &body["already_known"], &body["known_elsewhere"]),
            (&json!(0), &json!(0), &json!(2)),
            "{text}"
        );
        for c in body["certificates"].as_array().unwrap() {
            assert_eq!(c["outcome"], "known_elsewhere", "{text}");
            assert!(c.get("id").is_none(), "no id of another team's certificate: {text}");
        }
        for secret in [b_id.as_str(), orphan_id.as_str(), b.as_str(), "team-b", "falcon", "project"]
        {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        // Nothing changed: no row, no event, no sighting, same owner and labels.
        assert_eq!(app.counts().await, counts_before, "{:?}", app.kind);
        let b_after = app.admin.certificate(&b_id).await.unwrap();
        assert_eq!(b_after.owner.as_ref().map(|o| o.id.as_str()), Some(b.as_str()));
        assert_eq!(b_after.labels, labels);
        assert!(b_after.locations.is_empty());
        assert_eq!(b_after.updated_at, b_before.updated_at);
        let orphan_after = app.admin.certificate(&orphan_id).await.unwrap();
        assert!(orphan_after.owner.is_none() && orphan_after.locations.is_empty());
        assert_eq!(orphan_after.updated_at, orphan_before.updated_at);

        // Team B's developer and security see it: already known, with its id.
        let dev_b = app.client(Some(&app.token(Role::Developer, &[b.as_str()]).await));
        let security = app.client(Some(&app.token(Role::Security, &[]).await));
        for who in [&dev_b, &security] {
            let again = who.import(ImportBody::Raw(theirs.clone().into()), &no_owner).await;
            let c = again.unwrap().certificates.remove(0);
            assert_eq!((c.outcome, c.id.as_deref()), (ImportOutcome::AlreadyKnown, Some(&*b_id)));
        }
    });
}

fn web(owner: &str) -> Value {
    json!({"name": "web", "owner": owner, "dns_names": [format!("web.{owner}.example")],
           "validity_days": 30})
}

fn problem_type(problem: &Value) -> &str {
    problem["type"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn managed_names_are_per_owner_and_looked_up_within_the_callers_scope() {
    on_both_databases!(|app| {
        let (a, b) = (owner(&app, "team-a").await, owner(&app, "team-b").await);
        let dev_a = app.token(Role::Developer, &[a.as_str()]).await;
        let dev_b = app.token(Role::Developer, &[b.as_str()]).await;
        let path = "/api/v1/managed-certificates";
        let (s, a_web) = call(&app, &dev_a, "POST", path, Some(web("team-a"))).await;
        assert_eq!(s, 201, "{a_web}");
        // Team B may have its own `web`.
        let (s, b_web) = call(&app, &dev_b, "POST", path, Some(web("team-b"))).await;
        assert_eq!(s, 201, "{:?}: {b_web}", app.kind);
        let (a_id, b_id) = (a_web["id"].as_str().unwrap(), b_web["id"].as_str().unwrap());
        assert_eq!(b_web["owner_name"], "team-b");
        // A clash is only ever with one's own team's, and says nothing of another's.
        let (s, clash) = call(&app, &dev_a, "POST", path, Some(web("team-a"))).await;
        assert_eq!((s, problem_type(&clash)), (409, "https://cmp.dev/problems/conflict"));
        assert!(!clash.to_string().contains("team-b") && !clash.to_string().contains(b_id));

        // A developer's `web` is its own team's, everywhere a name is taken.
        let (s, got) = call(&app, &dev_a, "GET", &format!("{path}/web"), None).await;
        assert_eq!((s, got["id"].as_str()), (200, Some(a_id)), "{got}");
        let (s, renewal) = call(&app, &dev_b, "POST", &format!("{path}/web/renew"), None).await;
        assert_eq!((s, renewal["managed_certificate_id"].as_str()), (201, Some(b_id)), "{renewal}");
        let filter = "/api/v1/requests?managed_certificate=web";
        let (s, requests) = call(&app, &dev_a, "GET", filter, None).await;
        let items = requests["items"].as_array().unwrap();
        assert!(s == 200 && !items.is_empty(), "{requests}");
        assert!(items.iter().all(|r| r["managed_certificate_id"] == a_id), "{requests}");
        // Another team's, by any form, is not found.
        for other in ["team-b%2Fweb", &format!("{b}%2Fweb"), b_id] {
            let (s, _) = call(&app, &dev_a, "GET", &format!("{path}/{other}"), None).await;
            assert_eq!(s, 404, "{other}");
        }

        // Admin and security see both: a bare name is ambiguous, and the answer says how to
        // name one.
        let security = app.token(Role::Security, &[]).await;
        for token in [&app.admin_token, &security] {
            for (method, at) in [
                ("GET", format!("{path}/web")),
                ("POST", format!("{path}/web/renew")),
                ("GET", filter.to_string()),
            ] {
                let (s, problem) = call(&app, token, method, &at, None).await;
                assert_eq!(s, 409, "{method} {at}: {problem}");
                assert_eq!(problem_type(&problem), "https://cmp.dev/problems/ambiguous-name");
                let detail = problem["detail"].as_str().unwrap();
                assert!(detail.contains("owner/name") && detail.contains("team-b/web"), "{detail}");
            }
        }
        // `owner/name`, with the owner's name or id, or the id itself, name one.
        for (at, want) in
            [("team-a%2Fweb".to_string(), a_id), (format!("{b}%2Fweb"), b_id), (a_id.into(), a_id)]
        {
            let (s, got) = call(&app, &app.admin_token, "GET", &format!("{path}/{at}"), None).await;
            assert_eq!((s, got["id"].as_str()), (200, Some(want)), "{at}: {got}");
        }
        let at = format!("{path}/team-b%2Fweb/renew");
        let (s, renewal) = call(&app, &app.admin_token, "POST", &at, None).await;
        assert_eq!((s, renewal["managed_certificate_id"].as_str()), (201, Some(b_id)), "{renewal}");
        let filter = "/api/v1/requests?managed_certificate=team-b%2Fweb";
        let (_, requests) = call(&app, &security, "GET", filter, None).await;
        let items = requests["items"].as_array().unwrap();
        assert_eq!(items.len(), 3, "issue and two renewals: {requests}");
        // The client (and so cmpctl) sends `owner/name` as one path segment.
        assert_eq!(app.admin.managed("team-b/web").await.unwrap().id, b_id);
        assert_eq!(
            app.admin
                .renew("team-a/web")
                .await
                .unwrap()
                .into_request()
                .unwrap()
                .managed_certificate_id
                .as_deref(),
            Some(a_id)
        );
        let err = app.admin.managed("web").await.unwrap_err();
        assert_eq!(err.status(), Some(409));
    });
}
