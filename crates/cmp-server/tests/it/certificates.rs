//! Import, list, filter, update and delete through the API.

use std::collections::BTreeMap;

use cmp_api::{CertificateListParams, CertificatePatch, ImportParams, OwnerCreate};
use cmp_client::ImportBody;
use cmp_domain::{CertificateStatus, Finding, Role};

use crate::support::{TestPki, on_both_databases};

fn raw(pem: String) -> ImportBody {
    ImportBody::Raw(pem.into_bytes())
}

#[tokio::test]
async fn import_is_deduplicated_and_reports_each_certificate() {
    on_both_databases!(|app| {
        let pki = TestPki::new();
        let (leaf, _) = pki.leaf(&["shop.example.com", "www.shop.example.com"], 10);
        // A bundle as people keep them: text around blocks, CRLF line ends, the CA twice.
        let bundle = format!(
            "subject=shop\r\n{}\r\nissuer chain follows\r\n{}{}",
            leaf.pem().replace('\n', "\r\n"),
            pki.ca_cert.pem(),
            pki.ca_cert.pem()
        );
        let first = app.admin.import(raw(bundle.clone()), &ImportParams::default()).await.unwrap();
        assert_eq!((first.created, first.already_known), (2, 1), "{:?}", app.kind);
        assert_eq!(first.certificates.len(), 3);
        let again = app.admin.import(raw(bundle), &ImportParams::default()).await.unwrap();
        assert_eq!((again.created, again.already_known), (0, 3));
        assert_eq!(again.certificates[0].id, first.certificates[0].id);

        let cert = app.admin.certificate(&first.certificates[0].fingerprint_sha256).await.unwrap();
        assert_eq!(cert.status, CertificateStatus::Expiring);
        assert!(cert.findings.contains(&Finding::Expiring));
        assert_eq!(cert.sans.len(), 2);
        assert_eq!(cert.issuer, "CN=CMP Test CA");
        assert_eq!(cert.source, "import");
        let ca = app.admin.certificate(first.certificates[1].id.as_deref().unwrap()).await.unwrap();
        assert!(ca.is_ca && ca.findings.contains(&Finding::CaCertificate));

        // The PEM endpoint gives back the same certificate.
        let pem = app.admin.certificate_pem(&cert.id).await.unwrap();
        assert_eq!(pem.replace("\r\n", "\n").trim(), leaf.pem().trim());

        // Each creation is in the audit trail, with the request that made it.
        let audit = app
            .admin
            .audit(&cmp_api::AuditListParams {
                action: Some("certificate.created".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(audit.items.len(), 2);
        assert!(
            audit.items.iter().all(|e| e.request_id.is_some() && e.actor.starts_with("token:"))
        );
    });
}

#[tokio::test]
async fn filters_sorting_and_paging_through_the_api() {
    on_both_databases!(|app| {
        let pki = TestPki::new();
        let mut bundle = String::new();
        for (i, days) in [5, 60, 400, 20, 90].iter().enumerate() {
            let name = format!("svc{i}.corp.example");
            bundle.push_str(&pki.leaf(&[&name], *days).0.pem());
        }
        app.admin.import(raw(bundle), &ImportParams::default()).await.unwrap();
        let list = |p: CertificateListParams| {
            let client = app.admin.clone();
            async move { client.list_certificates(&p).await.unwrap() }
        };
        let all = list(CertificateListParams::default()).await;
        let names: Vec<_> = all.items.iter().map(|c| c.common_name.clone().unwrap()).collect();
        assert_eq!(
            names,
            [
                "svc0.corp.example",
                "svc3.corp.example",
                "svc1.corp.example",
                "svc4.corp.example",
                "svc2.corp.example"
            ]
        );

        let expiring = list(CertificateListParams {
            status: Some(CertificateStatus::Expiring),
            ..Default::default()
        })
        .await;
        assert_eq!(expiring.items.len(), 2, "{:?}", app.kind);
        let q =
            list(CertificateListParams { q: Some("SVC4.CORP".into()), ..Default::default() }).await;
        assert_eq!(q.items.len(), 1);
        let soon = (time::OffsetDateTime::now_utc() + time::Duration::days(70))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let before = list(CertificateListParams {
            expires_before: Some(soon.clone()),
            ..Default::default()
        })
        .await;
        assert_eq!(before.items.len(), 3);
        let after = list(CertificateListParams {
            expires_after: Some(soon),
            key_type: Some("ec".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(after.items.len(), 2);

        // Two per page: every certificate once, in order.
        let mut seen = Vec::new();
        let mut params = CertificateListParams {
            limit: Some(2),
            sort: Some(cmp_api::CertificateSortKey::CreatedAt),
            ..Default::default()
        };
        loop {
            let page = list(params.clone()).await;
            seen.extend(page.items.into_iter().map(|c| c.id));
            match page.next_cursor {
                Some(c) => params.cursor = Some(c),
                None => break,
            }
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!((seen.len(), unique.len()), (5, 5));
    });
}

#[tokio::test]
async fn owners_labels_and_developer_scope() {
    on_both_databases!(|app| {
        let pki = TestPki::new();
        let team_a = app
            .admin
            .create_owner(&OwnerCreate { name: "team-a".into(), email: None, description: None })
            .await
            .unwrap();
        let team_b = app
            .admin
            .create_owner(&OwnerCreate { name: "team-b".into(), email: None, description: None })
            .await
            .unwrap();
        let a_cert = app
            .admin
            .import(
                raw(pki.leaf(&["a.example"], 90).0.pem()),
                &ImportParams { owner: Some("team-a".into()), location: None, partial: None },
            )
            .await
            .unwrap();
        let b_cert = app
            .admin
            .import(
                raw(pki.leaf(&["b.example"], 90).0.pem()),
                &ImportParams { owner: Some(team_b.id.clone()), location: None, partial: None },
            )
            .await
            .unwrap();
        let a_id = a_cert.certificates[0].id.clone().unwrap();
        let b_id = b_cert.certificates[0].id.clone().unwrap();

        let dev_token = app.token(Role::Developer, &[team_a.id.as_str()]).await;
        let dev = app.client(Some(&dev_token));
        let visible = dev.list_certificates(&Default::default()).await.unwrap();
        assert_eq!(
            visible.items.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
            vec![a_id.clone()],
            "{:?}",
            app.kind
        );
        assert_eq!(dev.certificate(&b_id).await.unwrap_err().status(), Some(404));
        assert_eq!(dev.certificate_pem(&b_id).await.unwrap_err().status(), Some(404));

        // A developer labels its own certificate but cannot give it away or delete it.
        let labels = BTreeMap::from([("env".to_string(), "prod".to_string())]);
        let labelled = dev
            .update_certificate(
                &a_id,
                &CertificatePatch { owner: None, labels: Some(labels.clone()) },
            )
            .await
            .unwrap();
        assert_eq!(labelled.labels, labels);
        let give_away = CertificatePatch { owner: Some(Some("team-b".into())), labels: None };
        assert_eq!(
            dev.update_certificate(&a_id, &give_away).await.unwrap_err().status(),
            Some(403)
        );
        assert_eq!(dev.delete_certificate(&a_id).await.unwrap_err().status(), Some(403));
        // Its imports belong to its team.
        let own_import = dev
            .import(raw(pki.leaf(&["a2.example"], 90).0.pem()), &ImportParams::default())
            .await
            .unwrap();
        assert_eq!(
            app.admin
                .certificate(own_import.certificates[0].id.as_deref().unwrap())
                .await
                .unwrap()
                .owner
                .unwrap()
                .name,
            "team-a"
        );
        let foreign = dev
            .import(
                raw(pki.leaf(&["a3.example"], 90).0.pem()),
                &ImportParams { owner: Some("team-b".into()), location: None, partial: None },
            )
            .await;
        assert_eq!(foreign.unwrap_err().status(), Some(403));

        // A sighting reported by a developer is recorded only on its own team's certificates.
        let b_pem = app.admin.certificate_pem(&b_id).await.unwrap();
        let seen_at = |at: &str| ImportParams { location: Some(at.into()), ..Default::default() };
        let dev_seen =
            dev.import(raw(b_pem.clone()), &seen_at("endpoint:b.example:443")).await.unwrap();
        let counts = (dev_seen.created, dev_seen.already_known, dev_seen.known_elsewhere);
        assert_eq!(counts, (0, 0, 1));
        assert!(app.admin.certificate(&b_id).await.unwrap().locations.is_empty(), "{:?}", app.kind);
        app.admin.import(raw(b_pem), &seen_at("endpoint:b.example:443")).await.unwrap();
        let seen = app.admin.certificate(&b_id).await.unwrap();
        assert_eq!(seen.locations.len(), 1);
        assert_eq!(seen.locations[0].address, "b.example:443");
        let bad_location =
            app.admin.import(raw(pki.leaf(&["x.example"], 9).0.pem()), &seen_at("moon:x")).await;
        assert_eq!(bad_location.unwrap_err().status(), Some(400));

        // Admin moves and clears owners; filters by owner name.
        let moved = app
            .admin
            .update_certificate(
                &b_id,
                &CertificatePatch { owner: Some(Some("team-a".into())), labels: None },
            )
            .await
            .unwrap();
        assert_eq!(moved.owner.unwrap().id, team_a.id);
        let by_owner = app
            .admin
            .list_certificates(&CertificateListParams {
                owner: Some("team-a".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(by_owner.items.len(), 3);
        let cleared = app
            .admin
            .update_certificate(&b_id, &CertificatePatch { owner: Some(None), labels: None })
            .await
            .unwrap();
        assert!(cleared.owner.is_none());

        app.admin.delete_certificate(&b_id).await.unwrap();
        assert_eq!(app.admin.certificate(&b_id).await.unwrap_err().status(), Some(404));
        let deleted = app
            .admin
            .audit(&cmp_api::AuditListParams {
                action: Some("certificate.deleted".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(deleted.items[0].entity_id, b_id);

        // Owner CRUD.
        let renamed = app
            .admin
            .update_owner(
                "team-b",
                &cmp_api::OwnerPatch { name: Some("team-bee".into()), ..Default::default() },
            )
            .await
            .unwrap();
        assert_eq!(renamed.name, "team-bee");
        let dup = app
            .admin
            .create_owner(&OwnerCreate { name: "team-a".into(), email: None, description: None })
            .await;
        assert_eq!(dup.unwrap_err().status(), Some(409));
        app.admin.delete_owner(&team_b.id).await.unwrap();
        assert_eq!(app.admin.owners().await.unwrap().len(), 1);
        let v = app.admin.verify_audit().await.unwrap();
        assert!(v.intact && v.checked > 8);
    });
}
