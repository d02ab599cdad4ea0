//! The dashboard as a browser meets it (its page, scripts, caching and policy), and the API
//! that only it needed: the overview figures, the expiry timeline and the CSV export.

use cmp_api::{ExpiryTimeline, ImportParams, Overview, OwnerCreate};
use cmp_client::ImportBody;
use cmp_domain::Role;
use reqwest::StatusCode;

use crate::support::{TestApp, TestPki, on_both_databases};

async fn get(app: &TestApp, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = app.http().get(app.url(path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers().get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

#[tokio::test]
async fn the_page_and_its_scripts_are_served_with_a_strict_policy_and_long_caching() {
    let app = TestApp::spawn(cmp_testkit::DbKind::Sqlite).await;
    // Any route of the dashboard gets the page (the script routes in the browser).
    for path in ["/", "/certificates", "/certificates/some-id?status=expiring"] {
        let res = get(&app, path, None).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert!(header(&res, "content-type").starts_with("text/html"), "{path}");
        assert_eq!(header(&res, "cache-control"), "no-cache");
        let csp = header(&res, "content-security-policy");
        assert!(csp.contains("script-src 'self';") && csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-inline"), "{csp}");
    }
    let page = get(&app, "/", None).await.text().await.unwrap();
    assert!(!page.contains("<script>") && !page.contains("style="), "no inline script or style");
    let script = page
        .split('"')
        .find(|s| s.starts_with("/assets/") && s.ends_with(".js"))
        .unwrap_or_else(|| panic!("the page loads a built script (was the UI built?): {page}"));

    let res = get(&app, script, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(header(&res, "content-type").contains("javascript"));
    assert_eq!(header(&res, "cache-control"), "public, max-age=31536000, immutable");
    let etag = header(&res, "etag").to_string();
    assert!(etag.starts_with('"') && etag.len() == 66, "{etag}");
    let plain = res.bytes().await.unwrap();
    let again =
        app.http().get(app.url(script)).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let zipped = app
        .http_builder()
        .no_gzip()
        .build()
        .unwrap()
        .get(app.url(script))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&zipped, "content-encoding"), "gzip");
    assert!(zipped.bytes().await.unwrap().len() < plain.len() / 2);

    // The API's own paths stay the API's: an unknown one is a problem, never the page.
    for path in ["/api/v1/nothing-here", "/auth/nothing", "/pki/none/ca", "/assets/gone-1234.js"] {
        let res = get(&app, path, None).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(header(&res, "content-type"), "application/problem+json", "{path}");
    }
    let post = app.http().post(app.url("/certificates")).send().await.unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    // The API keeps its own policy and is never cached.
    let api = get(&app, "/api/v1/me", Some(&app.admin_token)).await;
    assert_eq!(
        header(&api, "content-security-policy"),
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert_eq!(header(&api, "cache-control"), "no-store");
    // Counted under one bounded label, whatever the path.
    let metrics = get(&app, "/metrics", None).await.text().await.unwrap();
    assert!(metrics.contains(r#"route="dashboard""#), "{metrics}");
    app.stop().await;

    // A role of its own serves no dashboard.
    let inventory = TestApp::spawn_with(cmp_testkit::DbKind::Sqlite, |c| {
        c.role = cmp_server::config::ServerRole::Inventory;
    })
    .await;
    let res = get(&inventory, "/", None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    inventory.stop().await;
}

/// Imports a certificate for `names` valid `days` more days, to `owner` when given.
async fn import(app: &TestApp, pki: &TestPki, names: &[&str], days: i64, owner: Option<&str>) {
    let pem = pki.leaf(names, days).0.pem();
    let params = ImportParams { owner: owner.map(str::to_string), ..Default::default() };
    app.admin.import(ImportBody::Raw(pem.into()), &params).await.unwrap();
}

#[tokio::test]
async fn overview_and_expiry_timeline_count_what_the_caller_may_see() {
    on_both_databases!(|app| {
        let pki = TestPki::new();
        for name in ["shop", "web"] {
            let new = OwnerCreate { name: name.into(), email: None, description: None };
            app.admin.create_owner(&new).await.unwrap();
        }
        import(&app, &pki, &["a.shop.example"], 5, Some("shop")).await; // expiring, week 0
        import(&app, &pki, &["b.shop.example"], 20, Some("shop")).await; // expiring, week 2
        import(&app, &pki, &["c.web.example"], 200, Some("web")).await; // valid, after
        import(&app, &pki, &["d.example"], 9, None).await; // expiring, week 1, no owner

        let admin: Overview =
            get(&app, "/api/v1/stats/overview", Some(&app.admin_token)).await.json().await.unwrap();
        assert_eq!(admin.certificates.total, 4, "{:?}", app.kind);
        assert_eq!((admin.certificates.expiring, admin.certificates.valid), (3, 1));
        assert_eq!(admin.expiry_window_days, 30);
        assert_eq!(admin.requests.awaiting_approval, 0);

        let shop_id = app.admin.owner("shop").await.unwrap().id;
        let dev = app.token(Role::Developer, &[shop_id.as_str()]).await;
        let theirs: Overview =
            get(&app, "/api/v1/stats/overview", Some(&dev)).await.json().await.unwrap();
        assert_eq!((theirs.certificates.total, theirs.certificates.expiring), (2, 2));

        let timeline: ExpiryTimeline =
            get(&app, "/api/v1/stats/expiry?weeks=4", Some(&app.admin_token))
                .await
                .json()
                .await
                .unwrap();
        assert_eq!(timeline.week_starts.len(), 4);
        assert!(timeline.week_starts.iter().all(|w| w.ends_with("T00:00:00Z")), "whole days");
        let series: Vec<(&str, &[i64])> =
            timeline.series.iter().map(|s| (s.label.as_str(), s.counts.as_slice())).collect();
        assert_eq!(series, [("shop", &[1, 0, 1, 0][..]), ("no owner", &[0, 1, 0, 0][..])]);
        let theirs: ExpiryTimeline =
            get(&app, "/api/v1/stats/expiry", Some(&dev)).await.json().await.unwrap();
        assert_eq!(theirs.week_starts.len(), 13);
        assert_eq!(theirs.series.len(), 1);
        assert_eq!(theirs.series[0].owner_id.as_deref(), Some(shop_id.as_str()));

        for bad in ["weeks=0", "weeks=105", "weeks=x", "days=3"] {
            let res = get(&app, &format!("/api/v1/stats/expiry?{bad}"), Some(&dev)).await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    });
}

#[tokio::test]
async fn the_csv_export_streams_every_page_of_the_filter() {
    on_both_databases!(|app| {
        let pki = TestPki::new();
        let new = OwnerCreate { name: "shop".into(), email: None, description: None };
        let shop = app.admin.create_owner(&new).await.unwrap();
        for n in 0..5 {
            import(&app, &pki, &[&format!("s{n}.shop.example")], 10 + n, Some("shop")).await;
        }
        // A name a spreadsheet would run as a formula.
        import(&app, &pki, &["=cmd.example"], 300, None).await;

        // Pages of two: every certificate of the filter arrives, in expiry order.
        let res =
            get(&app, "/api/v1/certificates/export?owner=shop&limit=2", Some(&app.admin_token))
                .await;
        assert_eq!(res.status(), StatusCode::OK, "{:?}", app.kind);
        assert_eq!(header(&res, "content-type"), "text/csv; charset=utf-8");
        assert!(header(&res, "content-disposition").contains("certificates.csv"));
        let text = res.text().await.unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let columns = reader.headers().unwrap().clone();
        assert_eq!(&columns[1], "common_name");
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let names: Vec<&str> = rows.iter().map(|r| &r[1]).collect();
        assert_eq!(names, (0..5).map(|n| format!("s{n}.shop.example")).collect::<Vec<_>>());
        assert!(rows.iter().all(|r| &r[8] == "expiring" && &r[9] == "shop"));

        let all = get(&app, "/api/v1/certificates/export", Some(&app.admin_token)).await;
        let text = all.text().await.unwrap();
        assert_eq!(text.lines().count(), 7, "a header and six certificates");
        assert!(text.contains(",'=cmd.example,"), "formula cells are defused: {text}");

        // A developer exports its own teams' certificates only; bad filters are refused.
        let dev = app.token(Role::Developer, &[shop.id.as_str()]).await;
        let theirs = get(&app, "/api/v1/certificates/export", Some(&dev)).await;
        assert_eq!(theirs.text().await.unwrap().lines().count(), 6);
        for bad in ["status=lost", "owner=nobody", "limit=0", "colour=red"] {
            let res = get(&app, &format!("/api/v1/certificates/export?{bad}"), Some(&dev)).await;
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
            assert_eq!(header(&res, "content-type"), "application/problem+json");
        }
        assert_eq!(get(&app, "/api/v1/certificates/export", None).await.status(), 401);
    });
}
