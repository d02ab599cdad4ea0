use std::collections::BTreeMap;

use cmp_domain::{CertificateStatus, Finding, KeyType, LocationKind, San, SanType};
use cmp_store::*;

use crate::{NOW, ctx, facts, new_cert, on_both_databases};

const DAY: i64 = 86_400;

#[tokio::test]
async fn import_deduplicates_by_fingerprint_and_records_locations() {
    on_both_databases!(|store, db| {
        let mut first = new_cert(facts(1, NOW + 100 * DAY));
        first.location = Some(NewLocation {
            kind: LocationKind::Endpoint,
            address: "a.example:443".into(),
            endpoint: None,
        });
        let out = store
            .import_certificates(&ctx(NOW), &Scope::All, &[first.clone(), new_cert(facts(2, NOW))])
            .await
            .unwrap();
        assert!(out.iter().all(|o| o.created));

        // Seen again elsewhere, later: not created, one more location, last_seen moves on.
        let mut again = first.clone();
        again.location = Some(NewLocation {
            kind: LocationKind::File,
            address: "web1:/etc/ssl/a.pem".into(),
            endpoint: None,
        });
        let out2 = store
            .import_certificates(&ctx(NOW + 10), &Scope::All, &[again.clone(), again])
            .await
            .unwrap();
        assert_eq!(out2.len(), 2);
        assert!(out2.iter().all(|o| !o.created && o.id == out[0].id));

        // The same new certificate twice in one call is created once.
        let twice = [new_cert(facts(9, NOW + DAY)), new_cert(facts(9, NOW + DAY))];
        let out3 = store.import_certificates(&ctx(NOW), &Scope::All, &twice).await.unwrap();
        assert!(out3[0].created && !out3[1].created && out3[0].id == out3[1].id);

        // A caller scoped to other owners records no sighting on a certificate it cannot see.
        let mut elsewhere = first.clone();
        elsewhere.location = Some(NewLocation {
            kind: LocationKind::K8s,
            address: "prod/web/tls".into(),
            endpoint: None,
        });
        let scoped = Scope::Owners(vec!["another-team".into()]);
        store.import_certificates(&ctx(NOW + 20), &scoped, &[elsewhere]).await.unwrap();

        let got = store.get_certificate(&out[0].fingerprint_sha256, &Scope::All).await.unwrap();
        assert_eq!(got.id, out[0].id);
        assert_eq!(got.locations.len(), 2);
        let file = got.locations.iter().find(|l| l.kind == LocationKind::File).unwrap();
        assert_eq!((file.first_seen, file.last_seen), (NOW + 10, NOW + 10));
        assert_eq!(got.sans.len(), 2);
        assert_eq!(got.key.curve.as_deref(), Some("P-256"));
        assert_eq!(store.get_certificate_der(&got.id, &Scope::All).await.unwrap(), facts(1, 0).der);

        let page = store.list_certificates(&CertificateQuery::all(NOW)).await.unwrap();
        assert_eq!(page.items.len(), 3, "{:?}", db.kind);
    });
}

/// A scoped caller re-importing a certificate outside its scope (another team's, or one without
/// an owner) is told it is not in scope; nothing of it changes and nothing is added.
#[tokio::test]
async fn a_certificate_outside_the_scope_is_reported_as_such_and_left_alone() {
    on_both_databases!(|store, db| {
        let new_owner = |name: &str| NewOwner { name: name.into(), email: None, description: None };
        let a = store.create_owner(&ctx(NOW), &new_owner("team-a")).await.unwrap();
        let b = store.create_owner(&ctx(NOW), &new_owner("team-b")).await.unwrap();
        let mut theirs = new_cert(facts(1, NOW + 100 * DAY));
        theirs.owner_id = Some(b.id.clone());
        let nobodys = new_cert(facts(2, NOW + 100 * DAY));
        let mut ours = new_cert(facts(3, NOW + 100 * DAY));
        ours.owner_id = Some(a.id.clone());
        let first = store
            .import_certificates(&ctx(NOW), &Scope::All, &[theirs, nobodys, ours])
            .await
            .unwrap();
        assert!(first.iter().all(|o| o.created && o.in_scope));
        let before = store.list_certificates(&CertificateQuery::all(NOW)).await.unwrap().items;

        // Team A's developer imports all three again (as its own, seen somewhere).
        let mut again: Vec<NewCertificate> =
            [1, 2, 3].map(|n| new_cert(facts(n, NOW + 100 * DAY))).into();
        for cert in &mut again {
            cert.owner_id = Some(a.id.clone());
            cert.location = Some(NewLocation {
                kind: LocationKind::Endpoint,
                address: "x.example:443".into(),
                endpoint: None,
            });
        }
        let scope_a = Scope::Owners(vec![a.id.clone()]);
        let out = store.import_certificates(&ctx(NOW + 5), &scope_a, &again).await.unwrap();
        let seen: Vec<(bool, bool)> = out.iter().map(|o| (o.created, o.in_scope)).collect();
        assert_eq!(seen, [(false, false), (false, false), (false, true)], "{:?}", db.kind);

        // Only its own certificate got the sighting; the others are as they were.
        let after = store.list_certificates(&CertificateQuery::all(NOW)).await.unwrap().items;
        assert_eq!(after.len(), 3);
        for (was, is) in before.iter().zip(&after) {
            if is.id == first[2].id {
                assert_eq!(is.locations.len(), 1);
            } else {
                assert_eq!(was, is, "{:?}", db.kind);
            }
        }
    });
}

/// PostgreSQL's planner chooses between walking the expiry index and sorting every match by
/// its statistics; where autovacuum is off (as on this machine) or late, a large import brings
/// them up to date itself, and the first page of expiring certificates is the right one.
#[tokio::test]
async fn a_large_import_brings_the_planner_statistics_and_search_index_up_to_date() {
    on_both_databases!(|store, db| {
        let certs: Vec<_> =
            (0..2_000).map(|n| new_cert(facts(n, NOW + i64::from(n) * 3_600))).collect();
        store.import_certificates(&ctx(NOW), &Scope::All, &certs).await.unwrap();
        if db.kind == cmp_testkit::DbKind::Postgres {
            let rows = store.planner_rows("certificates").await.unwrap().unwrap();
            assert!((1_900.0..=2_100.0).contains(&rows), "the planner believes {rows} rows");
            // The trigram index's new entries are merged, not left for every search to read.
            let pending = store.gin_pending_entries("certificates_search_trgm").await.unwrap();
            assert_eq!(pending, Some(0));
            // So are those of an import too small to make the statistics stale.
            let more: Vec<_> =
                (2_000..2_200).map(|n| new_cert(facts(n, NOW + 400 * DAY))).collect();
            store.import_certificates(&ctx(NOW), &Scope::All, &more).await.unwrap();
            let pending = store.gin_pending_entries("certificates_search_trgm").await.unwrap();
            assert_eq!(pending, Some(0));
        }
        let expiring = CertificateQuery {
            status: Some(CertificateStatus::Expiring),
            limit: 100,
            ..CertificateQuery::all(NOW)
        };
        let page = store.list_certificates(&expiring).await.unwrap();
        let serials: Vec<_> = page.items.iter().map(|c| c.serial_number.clone()).collect();
        let want: Vec<_> = (0..100u32).map(|n| format!("{n:x}")).collect();
        assert_eq!(serials, want, "the soonest first on {:?}", db.kind);
    });
}

#[tokio::test]
async fn filters_select_the_right_certificates() {
    on_both_databases!(|store, db| {
        let owner = store
            .create_owner(
                &ctx(NOW),
                &NewOwner { name: "payments".into(), email: None, description: None },
            )
            .await
            .unwrap();
        let mut certs = vec![
            new_cert(facts(1, NOW - DAY)),       // expired
            new_cert(facts(2, NOW + 10 * DAY)),  // expiring
            new_cert(facts(3, NOW + 200 * DAY)), // valid
        ];
        let mut future = facts(4, NOW + 400 * DAY);
        future.not_before = time::OffsetDateTime::from_unix_timestamp(NOW + DAY).unwrap();
        certs.push(new_cert(future));
        let mut weak = facts(5, NOW + 300 * DAY);
        weak.key = cmp_domain::KeyInfo { kind: KeyType::Rsa, bits: Some(1024), curve: None };
        weak.sans.clear();
        weak.subject = "CN=Legacy_Box%,O=Example".into();
        certs.push(new_cert(weak));
        certs[2].owner_id = Some(owner.id.clone());
        store.import_certificates(&ctx(NOW), &Scope::All, &certs).await.unwrap();

        let list = |mut q: CertificateQuery| {
            let store = store.clone();
            async move {
                q.limit = 50;
                store
                    .list_certificates(&q)
                    .await
                    .unwrap()
                    .items
                    .into_iter()
                    .map(|c| c.serial_number)
                    .collect::<Vec<_>>()
            }
        };
        let base = CertificateQuery::all(NOW);
        for (status, want) in [
            (CertificateStatus::Expired, vec!["1"]),
            (CertificateStatus::Expiring, vec!["2"]),
            (CertificateStatus::Valid, vec!["3", "5"]),
            (CertificateStatus::NotYetValid, vec!["4"]),
        ] {
            assert_eq!(
                list(CertificateQuery { status: Some(status), ..base.clone() }).await,
                want,
                "{status:?} on {:?}",
                db.kind
            );
        }
        assert_eq!(
            list(CertificateQuery { q: Some("ALT3.INT".into()), ..base.clone() }).await,
            vec!["3"]
        );
        // Wildcards in q are literal characters.
        assert_eq!(
            list(CertificateQuery { q: Some("_box%".into()), ..base.clone() }).await,
            vec!["5"]
        );
        assert!(list(CertificateQuery { q: Some("x_x".into()), ..base.clone() }).await.is_empty());
        assert_eq!(
            list(CertificateQuery { owner_id: Some(owner.id.clone()), ..base.clone() }).await,
            vec!["3"]
        );
        assert_eq!(
            list(CertificateQuery { key_type: Some(KeyType::Rsa), ..base.clone() }).await,
            vec!["5"]
        );
        assert_eq!(
            list(CertificateQuery { finding: Some(Finding::WeakRsaKey), ..base.clone() }).await,
            vec!["5"]
        );
        assert_eq!(
            list(CertificateQuery { finding: Some(Finding::NoSan), ..base.clone() }).await,
            vec!["5"]
        );
        assert_eq!(
            list(CertificateQuery { finding: Some(Finding::Expired), ..base.clone() }).await,
            vec!["1"]
        );
        assert_eq!(
            list(CertificateQuery {
                expires_after: Some(NOW),
                expires_before: Some(NOW + 250 * DAY),
                ..base.clone()
            })
            .await,
            vec!["2", "3"]
        );
        assert_eq!(
            list(CertificateQuery { issuer: Some("CN=Nobody".into()), ..base.clone() }).await,
            Vec::<String>::new()
        );
        // A developer scoped to the owner sees only its certificate; unscoped ids are not found.
        let scoped = Scope::Owners(vec![owner.id.clone()]);
        assert_eq!(
            list(CertificateQuery { scope: scoped.clone(), ..base.clone() }).await,
            vec!["3"]
        );
        assert_eq!(
            list(CertificateQuery { scope: Scope::Owners(vec![]), ..base.clone() }).await,
            Vec::<String>::new()
        );
        let other =
            store.get_certificate(&facts(1, 0).fingerprint_sha256, &Scope::All).await.unwrap();
        assert!(matches!(
            store.get_certificate(&other.id, &scoped).await,
            Err(StoreError::NotFound { .. })
        ));

        let counts = store.certificate_counts(NOW, 30 * DAY, &Scope::All).await.unwrap();
        assert_eq!(counts.iter().map(|(_, n)| n).sum::<i64>(), 5);
        assert!(counts.contains(&(CertificateStatus::Valid, 2)));
    });
}

#[tokio::test]
async fn cursor_pages_cover_everything_once_in_order() {
    on_both_databases!(|store, db| {
        // Same expiry for many: the id breaks ties, so no row is skipped or repeated.
        let certs: Vec<_> =
            (0..57).map(|n| new_cert(facts(n, NOW + i64::from(n % 5) * DAY))).collect();
        store.import_certificates(&ctx(NOW), &Scope::All, &certs).await.unwrap();
        // With a search term that matches all, pages come from the walk over the sort order;
        // with one that matches few, from the trigram index. Both must page the same way.
        let cases = [
            (CertificateSort::NotAfter, None, 57),
            (CertificateSort::CreatedAt, None, 57),
            (CertificateSort::NotAfter, Some("example.com"), 57),
            (CertificateSort::CreatedAt, Some("ALT1"), 11),
        ];
        for (sort, q, expected) in cases {
            let mut seen = Vec::new();
            let q = q.map(str::to_string);
            let mut query = CertificateQuery { limit: 10, sort, q, ..CertificateQuery::all(NOW) };
            loop {
                let page = store.list_certificates(&query).await.unwrap();
                seen.extend(page.items.iter().map(|c| (c.not_after, c.id.clone())));
                match page.next_cursor {
                    Some(c) => query.cursor = Some(c),
                    None => break,
                }
            }
            assert_eq!(seen.len(), expected, "{:?} {sort:?} {:?}", db.kind, query.q);
            let mut dedup = seen.iter().map(|s| &s.1).collect::<Vec<_>>();
            dedup.sort();
            dedup.dedup();
            assert_eq!(dedup.len(), expected);
            if sort == CertificateSort::NotAfter {
                assert!(seen.windows(2).all(|w| w[0] <= w[1]));
            }
        }
    });
}

/// A common term walks a window of the sort order that ends inside the inventory: pages from
/// the walk, and from the index when the window holds too few matches, are the same as a
/// filter over every row would give.
#[tokio::test]
async fn a_walk_that_ends_inside_the_inventory_pages_exactly() {
    on_both_databases!(|store, db| {
        // `host5` rows all but a few sort last: a window at the front holds too few of them.
        let not_after = |n: u32| match n {
            500..=599 => NOW + 100 * DAY + i64::from(n),
            _ => NOW + i64::from(n % 7) * DAY,
        };
        let certs: Vec<_> = (0..600).map(|n| new_cert(facts(n, not_after(n)))).collect();
        store.import_certificates(&ctx(NOW), &Scope::All, &certs).await.unwrap();
        let all = store
            .list_certificates(&CertificateQuery { limit: 500, ..CertificateQuery::all(NOW) })
            .await
            .unwrap();
        let mut rows = all.items;
        let cursor = all.next_cursor.unwrap();
        let rest =
            CertificateQuery { limit: 500, cursor: Some(cursor), ..CertificateQuery::all(NOW) };
        rows.extend(store.list_certificates(&rest).await.unwrap().items);
        assert_eq!(rows.len(), 600);
        for (term, limit) in [("host1", 10), ("host5", 20), ("example", 7)] {
            let expected: Vec<&str> =
                rows.iter().filter(|c| c.subject.contains(term)).map(|c| c.id.as_str()).collect();
            let mut seen = Vec::new();
            let mut query =
                CertificateQuery { limit, q: Some(term.into()), ..CertificateQuery::all(NOW) };
            loop {
                let page = store.list_certificates(&query).await.unwrap();
                assert!(page.items.len() <= limit as usize);
                seen.extend(page.items.into_iter().map(|c| c.id));
                match page.next_cursor {
                    Some(c) => query.cursor = Some(c),
                    None => break,
                }
            }
            assert_eq!(seen, expected, "{:?} {term}", db.kind);
        }
    });
}

#[tokio::test]
async fn a_rare_term_is_looked_up_by_its_rare_trigrams_and_checked_whole() {
    on_both_databases!(|store, db| {
        let mut certs: Vec<_> = (0..400).map(|n| new_cert(facts(n, NOW + DAY))).collect();
        for (n, name) in
            [(9_001, "api7.example.com"), (9_002, "api7.example.org"), (9_003, "api7.internal")]
        {
            let mut f = facts(n, NOW + DAY);
            f.subject = format!("CN={name}");
            f.common_name = Some(name.into());
            f.sans = vec![San { kind: SanType::Dns, value: name.into() }];
            certs.push(new_cert(f));
        }
        store.import_certificates(&ctx(NOW), &Scope::All, &certs).await.unwrap();
        // Of `api7.example.com`, only `api7.` is rare among these rows: the index is asked for
        // its trigrams, gives all three `api7.` rows, and the whole term keeps one of them.
        let names = |q: &str| {
            let query = CertificateQuery { q: Some(q.into()), ..CertificateQuery::all(NOW) };
            let store = &store;
            async move {
                let page = store.list_certificates(&query).await.unwrap();
                page.items.into_iter().map(|c| c.common_name.unwrap()).collect::<Vec<_>>()
            }
        };
        assert_eq!(names("API7.Example.COM").await, vec!["api7.example.com"], "{:?}", db.kind);
        let mut all = names("api7.").await;
        all.sort();
        assert_eq!(all, vec!["api7.example.com", "api7.example.org", "api7.internal"]);
        assert_eq!(names("host123.example.com,").await, vec!["host123.example.com"]);
        assert!(names("api7.example.net").await.is_empty());
        // LIKE's wildcards are plain characters in a term.
        assert!(names("api_.example.com").await.is_empty());
        assert!(names("api%").await.is_empty());
    });
}

#[tokio::test]
async fn a_term_split_by_common_trigrams_is_looked_up_by_rare_ones_on_both_sides() {
    on_both_databases!(|store, db| {
        let owner = store
            .create_owner(
                &ctx(NOW),
                &NewOwner { name: "web".into(), email: None, description: None },
            )
            .await
            .unwrap();
        let mut certs: Vec<_> = (0..400).map(|n| new_cert(facts(n, NOW + DAY))).collect();
        // Of `abc.example.xyz`, `.ex` to `le.` are in every row: the index is asked for
        // rare trigrams of `abc.e` and of `e.xyz` (`abc` and `xyz` first: letters and digits
        // before punctuation). Rows with one part, or both apart, are not the term.
        for (n, names, days) in [
            (9_001, &["abc.example.com"][..], 2),
            (9_002, &["www.example.xyz"], 2),
            (9_003, &["abc.eu", "site.xyz"], 2),
            (9_004, &["abc.example.xyz"], 3),
            (9_005, &["mail.abc.example.xyz"], 4),
        ] {
            let mut f = facts(n, NOW + days * DAY);
            f.subject = format!("CN={}", names[0]);
            f.common_name = Some(names[0].into());
            f.sans = names.iter().map(|n| San { kind: SanType::Dns, value: (*n).into() }).collect();
            let mut cert = new_cert(f);
            if n == 9_004 {
                cert.owner_id = Some(owner.id.clone());
            }
            certs.push(cert);
        }
        store.import_certificates(&ctx(NOW), &Scope::All, &certs).await.unwrap();
        let names = |owner_id: Option<String>| {
            let query = CertificateQuery {
                q: Some("ABC.example.xyz".into()),
                owner_id,
                ..CertificateQuery::all(NOW)
            };
            let store = &store;
            async move {
                let page = store.list_certificates(&query).await.unwrap();
                page.items.into_iter().map(|c| c.common_name.unwrap()).collect::<Vec<_>>()
            }
        };
        assert_eq!(
            names(None).await,
            vec!["abc.example.xyz", "mail.abc.example.xyz"],
            "{:?}",
            db.kind
        );
        assert_eq!(names(Some(owner.id.clone())).await, vec!["abc.example.xyz"]);
    });
}

#[tokio::test]
async fn batches_are_kept_only_when_the_input_ends_well() {
    on_both_databases!(|store, db| {
        let batch = |range: std::ops::Range<u32>| {
            ImportBatch::Certificates(range.map(|n| new_cert(facts(n, NOW + DAY))).collect())
        };
        let count = || async {
            let all = CertificateQuery { limit: 500, ..CertificateQuery::all(NOW) };
            store.list_certificates(&all).await.unwrap().items.len()
        };
        // The reader stops (a refused item) after two batches were written: nothing is kept.
        let (sender, batches) = tokio::sync::mpsc::channel(4);
        sender.send(batch(0..300)).await.unwrap();
        sender.send(batch(300..400)).await.unwrap();
        drop(sender);
        let stored = store.import_certificate_batches(&ctx(NOW), &Scope::All, batches).await;
        assert!(stored.unwrap().is_none());
        assert_eq!(count().await, 0, "{:?}", db.kind);

        // Read to the end: every batch is kept, a certificate twice in two batches once.
        let (sender, batches) = tokio::sync::mpsc::channel(4);
        for b in
            [batch(0..300), batch(299..400), ImportBatch::Certificates(vec![]), ImportBatch::End]
        {
            sender.send(b).await.unwrap();
        }
        let outcomes = store
            .import_certificate_batches(&ctx(NOW), &Scope::All, batches)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(outcomes.len(), 401);
        assert_eq!(outcomes.iter().filter(|o| o.created).count(), 400);
        assert_eq!(count().await, 400);
    });
}

#[tokio::test]
async fn updates_and_deletes_are_audited_and_unknown_ids_change_nothing() {
    on_both_databases!(|store, db| {
        let out = store
            .import_certificates(&ctx(NOW), &Scope::All, &[new_cert(facts(1, NOW + 90 * DAY))])
            .await
            .unwrap();
        let id = &out[0].id;
        let owner = store
            .create_owner(
                &ctx(NOW),
                &NewOwner {
                    name: "edge".into(),
                    email: Some("edge@example.com".into()),
                    description: None,
                },
            )
            .await
            .unwrap();
        let labels = BTreeMap::from([("env".to_string(), "prod".to_string())]);
        let update = CertificateUpdate {
            owner_id: Some(Some(owner.id.clone())),
            labels: Some(labels.clone()),
        };
        let updated =
            store.update_certificate(&ctx(NOW + 1), id, &Scope::All, &update).await.unwrap();
        assert_eq!(updated.owner.as_ref().map(|o| o.name.as_str()), Some("edge"));
        assert_eq!(updated.labels, labels);

        let before = store
            .list_audit(&AuditQuery { limit: 100, ..Default::default() })
            .await
            .unwrap()
            .items
            .len();
        let missing_owner =
            CertificateUpdate { owner_id: Some(Some("no-such-owner".into())), labels: None };
        assert!(matches!(
            store.update_certificate(&ctx(NOW + 2), id, &Scope::All, &missing_owner).await,
            Err(StoreError::NotFound { entity: "owner", .. })
        ));
        assert!(matches!(
            store.delete_certificate(&ctx(NOW + 2), "no-such-id", &Scope::All).await,
            Err(StoreError::NotFound { .. })
        ));
        let after = store
            .list_audit(&AuditQuery { limit: 100, ..Default::default() })
            .await
            .unwrap()
            .items
            .len();
        assert_eq!(before, after, "failed changes write no audit event ({:?})", db.kind);
        assert_eq!(store.get_certificate(id, &Scope::All).await.unwrap().owner, updated.owner);

        // Deleting the owner leaves the certificate, unowned.
        store.delete_owner(&ctx(NOW + 3), &owner.id).await.unwrap();
        assert_eq!(store.get_certificate(id, &Scope::All).await.unwrap().owner, None);

        store.delete_certificate(&ctx(NOW + 4), id, &Scope::All).await.unwrap();
        assert!(matches!(
            store.get_certificate(id, &Scope::All).await,
            Err(StoreError::NotFound { .. })
        ));
        let actions: Vec<_> = store
            .list_audit(&AuditQuery { limit: 100, ..Default::default() })
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(
            actions,
            [
                "certificate.deleted",
                "owner.deleted",
                "certificate.updated",
                "owner.created",
                "certificate.created"
            ]
        );
    });
}

#[tokio::test]
async fn large_imports_span_chunks_with_duplicates_and_keep_the_chain() {
    on_both_databases!(|store, db| {
        store
            .import_certificates(&ctx(NOW), &Scope::All, &[new_cert(facts(5, NOW + DAY))])
            .await
            .unwrap();
        // 1,200 certificates, each twice, across chunk boundaries; one already known.
        let certs: Vec<_> =
            (0..1200).chain(0..1200).map(|n| new_cert(facts(n, NOW + DAY))).collect();
        let out = store.import_certificates(&ctx(NOW + 1), &Scope::All, &certs).await.unwrap();
        assert_eq!(out.len(), 2400);
        assert_eq!(out.iter().filter(|o| o.created).count(), 1199, "{:?}", db.kind);
        assert!(!out[5].created);
        for n in 0..1200 {
            assert_eq!(out[n].id, out[n + 1200].id);
            assert_eq!(out[n].fingerprint_sha256, facts(n as u32, 0).fingerprint_sha256);
        }
        assert_eq!(store.verify_audit_chain().await.unwrap(), (1200, None));
    });
}

#[tokio::test]
async fn concurrent_imports_of_the_same_certificates_create_each_once() {
    on_both_databases!(|store, db| {
        let certs: Vec<_> = (0..300).map(|n| new_cert(facts(n, NOW + DAY))).collect();
        let runs: Vec<_> = (0..3)
            .map(|_| {
                let (store, certs) = (store.clone(), certs.clone());
                tokio::spawn(async move {
                    store.import_certificates(&ctx(NOW), &Scope::All, &certs).await.unwrap()
                })
            })
            .collect();
        let mut results = Vec::new();
        for run in runs {
            results.push(run.await.unwrap());
        }
        let created: usize = results.iter().flatten().filter(|o| o.created).count();
        assert_eq!(created, 300, "{:?}", db.kind);
        for n in 0..300 {
            assert!(results.iter().all(|r| r[n].id == results[0][n].id), "{:?}", db.kind);
        }
        assert_eq!(store.verify_audit_chain().await.unwrap(), (300, None));
    });
}
