//! Scans, their runs, and what they find: the rules the scheduler and the scan loop rely on.

use cmp_domain::{Finding, ScanProgress, ScanRunState};
use cmp_store::*;
use serde_json::json;

use crate::{NOW, ctx, facts, new_cert, on_both_databases};

fn sighting(n: u32, address: &str, findings: &[Finding]) -> EndpointSighting {
    EndpointSighting {
        certificate: new_cert(facts(n, NOW + 90 * 86_400)),
        address: address.into(),
        findings: findings.to_vec(),
        details: json!({"tls_version": "TLSv1.3"}),
    }
}

fn new_scan(name: &str, next_run_at: Option<i64>) -> NewScan {
    NewScan {
        name: name.into(),
        spec: json!({"targets": ["10.0.0.0/24"]}),
        owner_id: None,
        interval_secs: next_run_at.map(|_| 3600),
        cron: None,
        enabled: true,
        next_run_at,
    }
}

#[tokio::test]
async fn endpoints_are_recorded_replaced_and_vacated_without_deleting_anything() {
    on_both_databases!(|store, db| {
        let first = EndpointBatch {
            sightings: vec![
                sighting(1, "10.0.0.1:443#www.example", &[Finding::UntrustedChain]),
                sighting(1, "10.0.0.1:443", &[Finding::UntrustedChain]),
                sighting(2, "10.0.0.2:443", &[Finding::LegacyTls, Finding::NameMismatch]),
            ],
            vacated: vec!["10.0.0.9:443".into()],
        };
        let out = store.record_endpoints(&ctx(NOW), &first).await.unwrap();
        assert_eq!(out, EndpointBatchOutcome { created: 2, gone: 0 });
        let one = store.get_certificate(&format!("{:064x}", 1), &Scope::All).await.unwrap();
        assert_eq!(one.locations.len(), 2);
        assert_eq!(one.locations[0].findings, [Finding::UntrustedChain]);
        assert_eq!(one.locations[0].details, Some(json!({"tls_version": "TLSv1.3"})));
        assert!(one.static_findings.contains(&Finding::UntrustedChain));

        // 10.0.0.1 now serves certificate 3 under www.example and nothing without SNI; 10.0.0.2
        // is fixed (no findings). Certificate 1's locations are gone, and its endpoint findings
        // with them; certificate 2's go as its endpoint is fixed.
        let second = EndpointBatch {
            sightings: vec![
                sighting(3, "10.0.0.1:443#www.example", &[]),
                sighting(2, "10.0.0.2:443", &[]),
            ],
            vacated: vec![],
        };
        let out = store.record_endpoints(&ctx(NOW + 60), &second).await.unwrap();
        assert_eq!(out, EndpointBatchOutcome { created: 1, gone: 1 });
        let vacate = EndpointBatch { sightings: vec![], vacated: vec!["10.0.0.1:443".into()] };
        let out = store.record_endpoints(&ctx(NOW + 120), &vacate).await.unwrap();
        assert_eq!(out.gone, 2, "10.0.0.1:443 itself and certificate 3 under www.example");

        let one = store.get_certificate(&format!("{:064x}", 1), &Scope::All).await.unwrap();
        assert_eq!(one.locations.len(), 2, "gone, not deleted");
        let gone: Vec<Option<i64>> = one.locations.iter().map(|l| l.gone_at).collect();
        assert!(gone.contains(&Some(NOW + 60)) && gone.contains(&Some(NOW + 120)), "{gone:?}");
        assert!(!one.static_findings.contains(&Finding::UntrustedChain));
        let two = store.get_certificate(&format!("{:064x}", 2), &Scope::All).await.unwrap();
        assert!(two.static_findings.iter().all(|f| !Finding::ENDPOINT.contains(f)));
        assert_eq!(two.locations[0].gone_at, None);

        // Seen again: no longer gone.
        let back =
            EndpointBatch { sightings: vec![sighting(1, "10.0.0.1:443", &[])], vacated: vec![] };
        store.record_endpoints(&ctx(NOW + 180), &back).await.unwrap();
        let one = store.get_certificate(&format!("{:064x}", 1), &Scope::All).await.unwrap();
        let plain = one.locations.iter().find(|l| l.address == "10.0.0.1:443").unwrap();
        assert_eq!((plain.gone_at, plain.last_seen), (None, NOW + 180));
        assert!(store.verify_audit_chain().await.unwrap().1.is_none());
    });
}

#[tokio::test]
async fn one_run_per_scan_and_one_start_per_due_time() {
    on_both_databases!(|store, db| {
        let scan =
            store.create_scan(&ctx(NOW), &new_scan("nightly", Some(NOW + 10))).await.unwrap();
        assert!(store.due_scans(NOW).await.unwrap().is_empty());
        assert_eq!(store.due_scans(NOW + 10).await.unwrap().len(), 1);

        // Two replicas found it due: one starts it and moves it on, the other starts nothing.
        let due = RunTrigger::Schedule { due: NOW + 10, next: Some(NOW + 3610) };
        let run = store.start_scan_run(&ctx(NOW + 10), &scan.id, due).await.unwrap().unwrap();
        assert!(store.start_scan_run(&ctx(NOW + 10), &scan.id, due).await.unwrap().is_none());
        assert_eq!(store.get_scan("nightly").await.unwrap().next_run_at, Some(NOW + 3610));
        let again = store.start_scan_run(&ctx(NOW + 11), &scan.id, RunTrigger::Manual).await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "one run per scan: {again:?}");
        assert!(matches!(
            store.delete_scan(&ctx(NOW + 11), &scan.id).await,
            Err(StoreError::Conflict(_))
        ));

        // Progress, a cancel request read back, the end written once.
        let progress = ScanProgress { total: Some(10), scanned: 4, ..ScanProgress::default() };
        assert!(!store.save_scan_progress(&run.id, &progress, NOW + 12).await.unwrap());
        store.request_scan_cancel(&ctx(NOW + 13), "nightly").await.unwrap();
        assert!(store.save_scan_progress(&run.id, &progress, NOW + 14).await.unwrap());
        let ended = store
            .finish_scan_run(&ctx(NOW + 15), &run.id, ScanRunState::Cancelled, &progress, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((ended.state, ended.progress.scanned), (ScanRunState::Cancelled, 4));
        let twice = store
            .finish_scan_run(&ctx(NOW + 16), &run.id, ScanRunState::Completed, &progress, None)
            .await
            .unwrap();
        assert!(twice.is_none(), "an ended run stays as it ended");

        // A run whose heartbeat stopped is interrupted by the next pass, not before.
        let orphan = store
            .start_scan_run(&ctx(NOW + 20), &scan.id, RunTrigger::Manual)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(store.interrupt_stale_runs(&ctx(NOW + 30), NOW + 20).await.unwrap(), 0);
        assert_eq!(store.interrupt_stale_runs(&ctx(NOW + 90), NOW + 30).await.unwrap(), 1);
        let orphan = store.get_scan_run(&orphan.id).await.unwrap();
        assert_eq!(orphan.state, ScanRunState::Interrupted);
        let runs = store.list_scan_runs(&scan.id, 10).await.unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].id, orphan.id, "newest first");

        store.delete_scan(&ctx(NOW + 100), "nightly").await.unwrap();
        assert!(store.list_scans().await.unwrap().is_empty());
        assert!(matches!(store.get_scan_run(&orphan.id).await, Err(StoreError::NotFound { .. })));
        let dup = store.create_scan(&ctx(NOW), &new_scan("twin", None)).await;
        assert!(dup.is_ok());
        let dup = store.create_scan(&ctx(NOW), &new_scan("twin", None)).await;
        assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    });
}
