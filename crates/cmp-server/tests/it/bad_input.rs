//! Bad input: a clear problem, and nothing written.

use std::process::Command;

use base64::Engine;
use cmp_api::Problem;
use cmp_testkit::DbKind;

use crate::support::{TestApp, TestPki, on_both_databases};

/// What a fresh server holds: no certificate; the bootstrap token's and the builtin CA's
/// creation in the audit trail.
const BASELINE: (usize, usize) = (0, 2);

/// DER length octets.
fn der_len(n: usize) -> Vec<u8> {
    if n < 128 {
        return vec![n as u8];
    }
    let bytes: Vec<u8> = n.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

/// SEQUENCE inside SEQUENCE, `depth` times.
fn deeply_nested(depth: usize) -> Vec<u8> {
    let mut inner = Vec::new();
    for _ in 0..depth {
        let mut outer = vec![0x30];
        outer.extend(der_len(inner.len()));
        outer.extend(inner);
        inner = outer;
    }
    inner
}

async fn post_import(
    app: &TestApp,
    content_type: &str,
    body: Vec<u8>,
    query: &str,
) -> (u16, Problem) {
    let resp = app
        .http()
        .post(app.url(&format!("/api/v1/certificates/import{query}")))
        .bearer_auth(&app.admin_token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert_eq!(resp.headers()["content-type"], "application/problem+json", "status {status}");
    (status, resp.json().await.unwrap())
}

fn reasons(p: &Problem) -> Vec<String> {
    p.errors.iter().map(|e| e.reason.clone()).collect()
}

#[tokio::test]
async fn refused_imports_name_the_cause_and_store_nothing() {
    on_both_databases!(|app| {
        let pki = TestPki::new();
        let (leaf, key) = pki.leaf(&["ok.example"], 30);
        let good = leaf.pem();
        let truncated = good[..good.len() / 2].to_string();
        let corrupted = good.replacen("MII", "M!I", 1);
        let csr = rcgen::CertificateParams::new(vec!["csr.example".to_string()])
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let mut random = vec![0u8; 4096];
        let mut x: u32 = 0x9e3779b9;
        for b in random.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", Vec::new(), "empty_input"),
            ("truncated PEM", truncated.into_bytes(), "malformed_pem"),
            ("corrupted PEM", corrupted.into_bytes(), "malformed_pem"),
            ("private key", key.serialize_pem().into_bytes(), "private_key_not_certificate"),
            ("CSR", csr.into_bytes(), "csr_not_certificate"),
            ("random bytes", random, "unsupported_format"),
            ("deep nesting", deeply_nested(20_000), ""),
            // A good certificate beside a key: all or nothing, so nothing.
            (
                "cert and key",
                format!("{good}{}", key.serialize_pem()).into_bytes(),
                "private_key_not_certificate",
            ),
            // The same after the store has written a first batch: rolled back.
            (
                "600 certs and a key",
                format!("{}{}", good.repeat(600), key.serialize_pem()).into_bytes(),
                "private_key_not_certificate",
            ),
        ];
        for (name, body, reason) in cases {
            let (status, problem) = post_import(&app, "application/octet-stream", body, "").await;
            assert_eq!(status, 422, "{name} on {:?}: {problem:?}", app.kind);
            assert!(problem.detail.is_some() && problem.instance.is_some(), "{name}");
            if !reason.is_empty() {
                assert!(reasons(&problem).contains(&reason.to_string()), "{name}: {problem:?}");
            }
            // The private key's material never comes back in the answer.
            let text = serde_json::to_string(&problem).unwrap();
            let key_pem = key.serialize_pem();
            let key_line = key_pem.lines().nth(1).unwrap();
            assert!(!text.contains(&key_line[..40]), "{name}: {text}");
            assert_eq!(app.counts().await, BASELINE, "{name} wrote something on {:?}", app.kind);
        }

        // partial=true keeps the certificate and still reports the key.
        let body = format!("{good}{}", key.serialize_pem()).into_bytes();
        let resp = app
            .http()
            .post(app.url("/api/v1/certificates/import?partial=true"))
            .bearer_auth(&app.admin_token)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let result: cmp_api::ImportResponse = resp.json().await.unwrap();
        assert_eq!((result.created, result.rejected.len()), (1, 1));
        assert_eq!(result.rejected[0].reason, "private_key_not_certificate");
    });
}

#[tokio::test]
async fn pkcs12_needs_the_right_password() {
    on_both_databases!(|app| {
        let pki = TestPki::new();
        let (leaf, key) = pki.leaf(&["p12.example"], 30);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("k.pem"), key.serialize_pem()).unwrap();
        let p12 = dir.path().join("b.p12");
        let status = Command::new("openssl")
            .args(["pkcs12", "-export", "-passout", "pass:s3cret-pw"])
            .arg("-in")
            .arg(dir.path().join("c.pem"))
            .arg("-inkey")
            .arg(dir.path().join("k.pem"))
            .arg("-out")
            .arg(&p12)
            .status()
            .unwrap();
        assert!(status.success());
        let data = std::fs::read(&p12).unwrap();

        let wrong = cmp_client::ImportBody::Pkcs12 { data: data.clone(), password: "guess".into() };
        let err = app.admin.import(wrong, &Default::default()).await.unwrap_err();
        let cmp_client::ClientError::Api(problem) = err else { panic!("{err:?}") };
        assert_eq!(problem.status, 422);
        assert_eq!(reasons(&problem), vec!["wrong_password".to_string()]);
        assert!(!serde_json::to_string(&problem).unwrap().contains("guess"));
        assert_eq!(app.counts().await, BASELINE);

        // Without a password (raw upload) it is refused as well.
        let (status, _) = post_import(&app, "application/x-pkcs12", data.clone(), "").await;
        assert_eq!(status, 422);

        let right = cmp_client::ImportBody::Pkcs12 { data, password: "s3cret-pw".into() };
        let ok = app.admin.import(right, &Default::default()).await.unwrap();
        assert_eq!(ok.created, 1, "the key inside is not a certificate and is not stored");
        assert_eq!(ok.certificates[0].subject, "CN=p12.example");
    });
}

#[tokio::test]
async fn oversize_bodies_bad_json_and_bad_filters_are_400s_that_change_nothing() {
    let app = TestApp::spawn_with(DbKind::Sqlite, |c| c.http.body_limit_bytes = 64 * 1024).await;
    let big = vec![b'A'; 65 * 1024];
    let (status, problem) = post_import(&app, "application/octet-stream", big, "").await;
    assert_eq!(status, 413, "{problem:?}");

    let bad_json = [
        ("/api/v1/owners", "POST", r#"{"name": "x", "colour": "blue"}"#),
        ("/api/v1/owners", "POST", r#"{"name": 7}"#),
        ("/api/v1/owners", "POST", r#"{"name": "#),
        ("/api/v1/owners", "POST", r#"{"name": "bad/name"}"#),
        ("/api/v1/tokens", "POST", r#"{"name": "t", "role": "root"}"#),
        ("/api/v1/tokens", "POST", r#"{"name": "t", "role": "developer"}"#),
        ("/api/v1/certificates/import", "POST", r#"{"data": "not base64!!"}"#),
        ("/api/v1/certificates/import", "POST", r#"{"data": "", "extra": 1}"#),
        // Nothing to change.
        ("/api/v1/owners/someone", "PATCH", "{}"),
        ("/api/v1/certificates/x", "PATCH", "{}"),
        // Owners are found by id or name: a name must not look like an id.
        ("/api/v1/owners", "POST", r#"{"name": "01a22363-9d95-70f2-812c-5324a00a9bb2"}"#),
    ];
    for (path, method, body) in bad_json {
        let resp = app.send_json(method, path, body).await;
        assert_eq!(resp.status(), 400, "{method} {path} {body}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
    }
    let bad_queries = [
        "status=bogus",
        "limit=0",
        "limit=501",
        "expires_before=yesterday",
        "cursor=%%%",
        "cursor=Zm9vOmJhcg",
        "key_type=quantum",
        "finding=ugly",
        "sort=name",
        "owner=nobody",
        "colour=blue",
    ];
    for q in bad_queries {
        let resp = app
            .http()
            .get(app.url(&format!("/api/v1/certificates?{q}")))
            .bearer_auth(&app.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{q}");
        let problem: Problem = resp.json().await.unwrap();
        assert!(problem.detail.is_some(), "{q}");
    }
    let resp = app.send_json("GET", "/api/v1/audit?limit=9999", "").await;
    assert_eq!(resp.status(), 400);

    // Unknown ids.
    for (method, path) in [
        ("GET", "/api/v1/certificates/nope"),
        ("PATCH", "/api/v1/certificates/nope"),
        ("DELETE", "/api/v1/certificates/nope"),
        ("GET", "/api/v1/owners/nope"),
        ("PATCH", "/api/v1/owners/nope"),
        ("DELETE", "/api/v1/owners/nope"),
        ("DELETE", "/api/v1/tokens/nope"),
    ] {
        let body = if path.contains("owners") {
            r#"{"email": "x@example.com"}"#
        } else {
            r#"{"labels": {}}"#
        };
        let resp = app.send_json(method, path, body).await;
        assert_eq!(resp.status(), 404, "{method} {path}");
    }
    // The adapter role's calls name an adapter that does not exist: 404, not a CA refusal.
    let csr = pem::parse(crate::issuance::csr_for(&["a.example"])).unwrap();
    let sign = serde_json::json!({
        "request_id": "r1", "csr": base64::engine::general_purpose::STANDARD.encode(csr.contents()),
        "dns_names": ["a.example"], "ip_addresses": [], "usages": [], "validity_secs": 3600,
    });
    for (path, body) in [
        ("/api/v1/adapters/nope/sign", sign.to_string()),
        ("/api/v1/adapters/nope/revoke", r#"{"serial": "01", "reason": "unspecified"}"#.into()),
    ] {
        let resp = app.send_json("POST", path, &body).await;
        assert_eq!(resp.status(), 404, "POST {path}");
        let problem: Problem = resp.json().await.unwrap();
        assert!(problem.detail.unwrap_or_default().contains("nope"), "POST {path}");
    }
    assert_eq!(
        app.counts().await,
        BASELINE,
        "only the bootstrap token and the builtin CA are audited"
    );
    app.stop().await;
}

#[tokio::test]
async fn values_the_database_refuses_are_client_errors() {
    on_both_databases!(|app| {
        // PostgreSQL refuses NUL in text: that is the caller's value, not an outage.
        for path in [
            "/api/v1/certificates?issuer=%00",
            "/api/v1/certificates/a%00b",
            "/api/v1/owners/a%00b",
        ] {
            let resp =
                app.http().get(app.url(path)).bearer_auth(&app.admin_token).send().await.unwrap();
            assert_eq!(resp.status(), 400, "{path} on {:?}", app.kind);
        }
        let body = r#"{"name": "nul-team", "description": "a\u0000b"}"#;
        let resp = app
            .http()
            .post(app.url("/api/v1/owners"))
            .bearer_auth(&app.admin_token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{:?}", app.kind);
        assert_eq!(app.counts().await, BASELINE);
    });
}
