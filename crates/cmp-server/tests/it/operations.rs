//! Health, readiness, metrics, request ids, the OpenAPI document, config and shutdown.

use crate::support::TestApp;
use cmp_testkit::DbKind;

#[tokio::test]
async fn health_ready_metrics_and_request_ids() {
    for kind in DbKind::ALL {
        let app = TestApp::spawn(kind).await;
        let http = app.http();
        assert_eq!(http.get(app.url("/healthz")).send().await.unwrap().status(), 200);
        assert_eq!(http.get(app.url("/readyz")).send().await.unwrap().status(), 200);

        // A caller's request id is echoed, and problems carry it as their instance.
        let resp = http
            .get(app.url("/api/v1/certificates/nope"))
            .bearer_auth(&app.admin_token)
            .header("x-request-id", "trace-me-42")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.headers()["x-request-id"], "trace-me-42");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let problem: cmp_api::Problem = resp.json().await.unwrap();
        assert_eq!(problem.instance.as_deref(), Some("trace-me-42"));
        // Without one, the server makes one.
        let resp = http.get(app.url("/healthz")).send().await.unwrap();
        assert!(!resp.headers()["x-request-id"].is_empty());

        // HEAD follows the GET route's rule.
        assert_eq!(http.head(app.url("/healthz")).send().await.unwrap().status(), 200);
        let head = http.head(app.url("/api/v1/certificates")).send().await.unwrap();
        assert_eq!(head.status(), 401);

        // Unknown paths and methods are problems too.
        let resp = http.get(app.url("/api/v1/nothing-here")).send().await.unwrap();
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let resp = http
            .put(app.url("/api/v1/certificates"))
            .bearer_auth(&app.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405);

        let metrics = app.counted_metrics().await;
        assert!(metrics.contains("http_requests_total{"), "{metrics}");
        assert!(metrics.contains("http_request_duration_seconds_bucket{"));
        assert!(metrics.contains("cmp_certificates{status=\"valid\"}"));
        app.stop().await;
    }
}

#[tokio::test]
async fn every_role_answers_health_and_only_inventory_serves_the_inventory() {
    use cmp_server::config::ServerRole;
    for role in [ServerRole::Inventory, ServerRole::Issuer, ServerRole::Adapter] {
        let app = TestApp::spawn_with(DbKind::Sqlite, |c| c.role = role).await;
        let http = app.http();
        assert_eq!(http.get(app.url("/healthz")).send().await.unwrap().status(), 200);
        assert_eq!(http.get(app.url("/readyz")).send().await.unwrap().status(), 200);
        let doc: serde_json::Value =
            http.get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
        let has_inventory = doc["paths"].get("/api/v1/certificates").is_some();
        assert_eq!(has_inventory, role == ServerRole::Inventory, "{role:?}");
        let status = http
            .get(app.url("/api/v1/certificates"))
            .bearer_auth(&app.admin_token)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status == 200, role == ServerRole::Inventory);
        app.stop().await;
    }
}

#[tokio::test]
async fn the_admin_token_is_made_once_and_kept_owner_readable_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut config = cmp_server::config::Config::default();
    config.listen = Some("127.0.0.1:0".parse().unwrap());
    config.data_dir = dir.path().to_path_buf();
    let first = cmp_server::start(config.clone()).await.unwrap();
    let token = first.admin_token.clone().unwrap();
    first.shutdown().await.unwrap();
    let file = dir.path().join(cmp_server::ADMIN_TOKEN_FILE);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    // The embedded database is in the data directory, and a restart makes no second token.
    assert!(dir.path().join("cmp.db").exists());
    let second = cmp_server::start(config).await.unwrap();
    assert!(second.admin_token.is_none());
    second.shutdown().await.unwrap();
}
