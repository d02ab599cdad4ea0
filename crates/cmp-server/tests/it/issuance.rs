//! The issuance lifecycle end to end, checked with openssl: request with a CSR, approval,
//! issuance, revocation, CRL and OCSP; server-side keys and their download; managed
//! certificates and the renewal scheduler; refusals that write nothing. Each runs on both
//! databases, with the builtin CA in-process and behind the adapter role over HTTP.

use std::path::Path;
use std::process::Command;

use base64::Engine;
use cmp_domain::Role;
use cmp_server::issuer::scheduler;
use cmp_testkit::DbKind;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::support::{TestApp, TestClock, on_both_databases};

/// A CSR and its key, made by the requester (rcgen).
pub(crate) fn csr_for(names: &[&str]) -> String {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let key = rcgen::KeyPair::generate().unwrap();
    params.serialize_request(&key).unwrap().pem().unwrap()
}

pub(crate) async fn call(
    app: &TestApp,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.http().request(method.parse().unwrap(), app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = tokio::time::timeout(std::time::Duration::from_secs(30), request.send())
        .await
        .unwrap_or_else(|_| panic!("{method} {path} did not answer in 30 s"))
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

pub(crate) fn openssl(args: &[&str], dir: &Path) -> String {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

async fn fetch(app: &TestApp, path: &str) -> Vec<u8> {
    let response = app.http().get(app.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.bytes().await.unwrap().to_vec()
}

/// The walk of the issue: owner, policy, request, approval, verify, OCSP, revoke, CRL.
async fn lifecycle(app: &TestApp) {
    let admin = app.admin_token.clone();
    let (s, owner) =
        call(app, &admin, "POST", "/api/v1/owners", Some(json!({"name": "payments"}))).await;
    assert_eq!(s, 201, "{owner}");
    let owner_id = owner["id"].as_str().unwrap().to_string();
    let policy = json!({"allowed_names": [".pay.example"], "max_validity_days": 90, "require_approval": true});
    let (s, body) = call(app, &admin, "PUT", "/api/v1/owners/payments/policy", Some(policy)).await;
    assert_eq!(s, 200, "{body}");
    let dev = app.token(Role::Developer, &[&owner_id]).await;
    let security = app.token(Role::Security, &[]).await;

    // Refusals write nothing.
    let before = app.counts().await;
    let outside = json!({"owner": "payments", "csr": csr_for(&["api.shop.example"])});
    let (s, problem) = call(app, &dev, "POST", "/api/v1/requests", Some(outside)).await;
    assert_eq!(s, 422, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "allowed_names", "{problem}");
    let too_long =
        json!({"owner": "payments", "csr": csr_for(&["a.pay.example"]), "validity_days": 91});
    let (s, problem) = call(app, &dev, "POST", "/api/v1/requests", Some(too_long)).await;
    assert_eq!((s, problem["errors"][0]["pointer"].as_str()), (422, Some("max_validity_days")));
    let garbage = json!({"owner": "payments", "csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"});
    let (s, problem) = call(app, &dev, "POST", "/api/v1/requests", Some(garbage)).await;
    assert_eq!(s, 422, "{problem}");
    let mut der = pem::parse(csr_for(&["b.pay.example"])).unwrap().contents().to_vec();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let tampered = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));
    let (s, problem) = call(
        app,
        &dev,
        "POST",
        "/api/v1/requests",
        Some(json!({"owner": "payments", "csr": tampered})),
    )
    .await;
    assert_eq!(s, 422, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("signature"), "{problem}");
    let (s, _) = call(
        app,
        &dev,
        "POST",
        "/api/v1/requests",
        Some(json!({"owner": "payments", "key_type": "dsa1024", "dns_names": ["c.pay.example"]})),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(app.counts().await, before, "refusals wrote nothing");

    // A request with a CSR, retried with its idempotency key.
    let body =
        json!({"owner": "payments", "csr": csr_for(&["api.pay.example"]), "validity_days": 60});
    let send = |key: &'static str, body: Value| {
        let (http, url, dev) = (app.http(), app.url("/api/v1/requests"), dev.clone());
        async move {
            let r = http
                .post(url)
                .bearer_auth(dev)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, request) = send("order-1", body.clone()).await;
    assert_eq!(s, 201, "{request}");
    assert_eq!(request["state"], "awaiting_approval");
    let id = request["id"].as_str().unwrap().to_string();
    let (s, again) = send("order-1", body.clone()).await;
    assert_eq!((s, again["id"].as_str()), (200, Some(id.as_str())));
    let (s, _) =
        send("order-1", json!({"owner": "payments", "csr": csr_for(&["x.pay.example"])})).await;
    assert_eq!(s, 422, "same key, other body");

    // The requester cannot approve its own request; security approves the developer's.
    let (s, own) = call(
        app,
        &security,
        "POST",
        "/api/v1/requests",
        Some(json!({"owner": "payments", "csr": csr_for(&["own.pay.example"])})),
    )
    .await;
    assert_eq!(s, 201, "{own}");
    let own_id = own["id"].as_str().unwrap();
    let (s, _) = call(
        app,
        &security,
        "POST",
        &format!("/api/v1/requests/{own_id}/approve"),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) =
        call(app, &dev, "POST", &format!("/api/v1/requests/{id}/approve"), Some(json!({}))).await;
    assert_eq!(s, 403, "developers do not approve");
    let (s, rejected) = call(
        app,
        &admin,
        "POST",
        &format!("/api/v1/requests/{own_id}/reject"),
        Some(json!({"comment": "no"})),
    )
    .await;
    assert_eq!((s, rejected["state"].as_str()), (200, Some("rejected")));
    let (s, issued) = call(
        app,
        &security,
        "POST",
        &format!("/api/v1/requests/{id}/approve"),
        Some(json!({"comment": "ok"})),
    )
    .await;
    assert_eq!(s, 200, "{issued}");
    assert_eq!(issued["state"], "issued", "{issued}");
    let (s, _) =
        call(app, &security, "POST", &format!("/api/v1/requests/{id}/approve"), Some(json!({})))
            .await;
    assert_eq!(s, 409, "approving twice");
    let cert_id = issued["certificate_id"].as_str().unwrap().to_string();
    let (_, cert) = call(app, &dev, "GET", &format!("/api/v1/certificates/{cert_id}"), None).await;
    assert_eq!((cert["source"].as_str(), cert["status"].as_str()), (Some("issued"), Some("valid")));
    assert_eq!(cert["owner"]["id"], owner_id.as_str());

    // Someone else's verifier: openssl verify, then OCSP good, revoke, OCSP revoked, CRL.
    let dir = tempfile::tempdir().unwrap();
    let leaf = app.client(Some(&dev)).certificate_pem(&cert_id).await.unwrap();
    std::fs::write(dir.path().join("leaf.pem"), &leaf).unwrap();
    std::fs::write(dir.path().join("chain.pem"), fetch(app, "/pki/builtin/chain").await).unwrap();
    let issuing = fetch(app, "/pki/builtin/ca").await;
    std::fs::write(
        dir.path().join("issuing.pem"),
        pem::encode(&pem::Pem::new("CERTIFICATE", issuing)),
    )
    .unwrap();
    let out = openssl(&["verify", "-CAfile", "chain.pem", "leaf.pem"], dir.path());
    assert!(out.contains("leaf.pem: OK"), "{out}");
    // OCSP and the CRL are reached where the certificate says: the port of the role that
    // serves `/pki` (not a fixed :3000).
    let ocsp_url = openssl(&["x509", "-in", "leaf.pem", "-noout", "-ocsp_uri"], dir.path());
    let ocsp_url = ocsp_url.trim().to_string();
    assert!(ocsp_url.ends_with("/pki/builtin/ocsp"), "{ocsp_url}");
    let crl_url = openssl(
        &["x509", "-in", "leaf.pem", "-noout", "-ext", "crlDistributionPoints"],
        dir.path(),
    );
    let crl_url = crl_url.lines().find_map(|l| l.trim().strip_prefix("URI:")).unwrap().to_string();
    assert!(crl_url.ends_with("/pki/builtin/crl"), "{crl_url}");
    // `openssl ocsp` about the leaf, verified against the chain, with `how` it asks.
    let ocsp = |how: &[&str]| {
        let about = ["ocsp", "-issuer", "issuing.pem", "-cert", "leaf.pem", "-CAfile", "chain.pem"];
        openssl(&[&about[..], how].concat(), dir.path())
    };
    let out = ocsp(&["-url", &ocsp_url]);
    assert!(out.contains("Response verify OK") && out.contains("leaf.pem: good"), "{out}");

    let (s, _) = call(
        app,
        &security,
        "POST",
        &format!("/api/v1/certificates/{cert_id}/revoke"),
        Some(json!({"reason": "sideways"})),
    )
    .await;
    assert_eq!(s, 400, "unknown reason");
    let (s, revoked) = call(
        app,
        &dev,
        "POST",
        &format!("/api/v1/certificates/{cert_id}/revoke"),
        Some(json!({"reason": "key_compromise"})),
    )
    .await;
    assert_eq!(
        (s, revoked["state"].as_str(), revoked["kind"].as_str()),
        (200, Some("issued"), Some("revoke")),
        "{revoked}"
    );
    let (s, _) = call(
        app,
        &security,
        "POST",
        &format!("/api/v1/certificates/{cert_id}/revoke"),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 409, "revoking twice");
    let (_, cert) = call(app, &dev, "GET", &format!("/api/v1/certificates/{cert_id}"), None).await;
    assert_eq!(
        (cert["status"].as_str(), cert["revocation_reason"].as_str()),
        (Some("revoked"), Some("key_compromise"))
    );
    let out = ocsp(&["-url", &ocsp_url]);
    assert!(out.contains("Response verify OK") && out.contains("leaf.pem: revoked"), "{out}");
    assert!(out.contains("keyCompromise"), "{out}");
    // OCSP over GET, its base64 sent with its '/' unescaped, as many clients send it (a fresh
    // nonce per try until one holds a '/').
    let sent = (0..50)
        .find_map(|_| {
            let args = ["ocsp", "-issuer", "issuing.pem", "-cert", "leaf.pem", "-reqout", "q.der"];
            openssl(&args, dir.path());
            let der = std::fs::read(dir.path().join("q.der")).unwrap();
            let text = base64::engine::general_purpose::STANDARD.encode(der);
            text.contains('/').then_some(text)
        })
        .expect("a request whose base64 holds a '/'");
    let got = app.http().get(format!("{ocsp_url}/{sent}")).send().await.unwrap();
    assert_eq!(got.status(), 200, "GET {ocsp_url}/{sent}");
    std::fs::write(dir.path().join("r.der"), got.bytes().await.unwrap()).unwrap();
    // `-no_nonce`: openssl would otherwise add a nonce of its own to the request it reads back.
    let out = ocsp(&["-no_nonce", "-reqin", "q.der", "-respin", "r.der"]);
    assert!(out.contains("Response verify OK") && out.contains("leaf.pem: revoked"), "{out}");
    let crl = app.http().get(&crl_url).send().await.unwrap();
    assert_eq!(crl.status(), 200, "{crl_url}");
    std::fs::write(dir.path().join("crl.der"), crl.bytes().await.unwrap()).unwrap();
    let out = openssl(
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "crl.der",
            "-CAfile",
            "chain.pem",
            "-verify",
            "-noout",
            "-text",
        ],
        dir.path(),
    );
    assert!(out.contains("verify OK"), "{out}");
    let serial = cert["serial_number"].as_str().unwrap().to_uppercase();
    assert!(out.contains(&serial), "{serial} in {out}");

    // The trail has every step.
    let (_, trail) = call(app, &admin, "GET", &format!("/api/v1/audit?entity_id={id}"), None).await;
    let actions: Vec<&str> =
        trail["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for step in ["request.created", "request.approved", "request.submitted", "request.issued"] {
        assert!(actions.contains(&step), "{step} in {actions:?}");
    }
}

/// Server-made keys: downloaded by admins and the owning team only, each download audited.
async fn server_keys(app: &TestApp) {
    let admin = app.admin_token.clone();
    let (_, team) = call(app, &admin, "POST", "/api/v1/owners", Some(json!({"name": "web"}))).await;
    let (_, other) =
        call(app, &admin, "POST", "/api/v1/owners", Some(json!({"name": "other"}))).await;
    let dev = app.token(Role::Developer, &[team["id"].as_str().unwrap()]).await;
    let stranger = app.token(Role::Developer, &[other["id"].as_str().unwrap()]).await;
    let security = app.token(Role::Security, &[]).await;
    let body = json!({"owner": "web", "key_type": "ecdsa_p256", "dns_names": ["www.web.example"]});
    let (s, request) = call(app, &dev, "POST", "/api/v1/requests", Some(body)).await;
    assert_eq!(
        (s, request["state"].as_str(), request["key_source"].as_str()),
        (201, Some("issued"), Some("server")),
        "{request}"
    );
    let cert = request["certificate_id"].as_str().unwrap();
    // The certificate says there is a key to have (the dashboard offers it by this).
    let (_, shown) = call(app, &dev, "GET", &format!("/api/v1/certificates/{cert}"), None).await;
    assert_eq!(shown["has_server_key"], json!(true), "{shown}");
    let key_path = format!("/api/v1/certificates/{cert}/key");
    let (s, key) = call(app, &dev, "GET", &key_path, None).await;
    assert_eq!(s, 200);
    let key = key.as_str().unwrap().to_string();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    assert_eq!(call(app, &security, "GET", &key_path, None).await.0, 403);
    assert_eq!(call(app, &stranger, "GET", &key_path, None).await.0, 404);
    // The key matches the certificate.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.pem"), &key).unwrap();
    std::fs::write(dir.path().join("leaf.pem"), app.admin.certificate_pem(cert).await.unwrap())
        .unwrap();
    let from_key = openssl(&["pkey", "-in", "key.pem", "-pubout"], dir.path());
    let from_cert = openssl(&["x509", "-in", "leaf.pem", "-noout", "-pubkey"], dir.path());
    assert_eq!(from_key, from_cert);
    let p12 = app.admin.download_key(cert, Some("correct-horse")).await.unwrap();
    std::fs::write(dir.path().join("k.p12"), p12).unwrap();
    let out = openssl(
        &["pkcs12", "-in", "k.p12", "-passin", "pass:correct-horse", "-nodes", "-noout"],
        dir.path(),
    );
    assert!(!out.to_lowercase().contains("error"), "{out}");
    // The builtin CA's chain is kept with the certificate too: issuing CA and root, in the
    // PKCS#12 and after the leaf in the PEM with `chain=true`.
    let p12 = std::fs::read(dir.path().join("k.p12")).unwrap();
    let decoded = cmp_pki::decode_import(&p12, Some("correct-horse"));
    assert_eq!(decoded.certificates.len(), 3, "{:?}", decoded.rejected);
    let chain = app.admin.certificate_pem_chain(cert).await.unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 3, "{chain}");
    let root = chain
        .split_inclusive("-----END CERTIFICATE-----")
        .filter(|block| block.contains("BEGIN CERTIFICATE"))
        .last()
        .unwrap();
    cmp_testkit::openssl::verify_chain(&chain, root).unwrap();
    let (_, trail) =
        call(app, &admin, "GET", "/api/v1/audit?action=certificate.key_downloaded", None).await;
    assert_eq!(trail["items"].as_array().unwrap().len(), 2, "{trail}");
    // A CSR-path certificate has no key here.
    let (_, csr_request) = call(
        app,
        &dev,
        "POST",
        "/api/v1/requests",
        Some(json!({"owner": "web", "csr": csr_for(&["api.web.example"])})),
    )
    .await;
    let csr_cert = csr_request["certificate_id"].as_str().unwrap();
    let (_, shown) =
        call(app, &dev, "GET", &format!("/api/v1/certificates/{csr_cert}"), None).await;
    assert_eq!(shown["has_server_key"], json!(false), "{shown}");
    assert_eq!(
        call(app, &admin, "GET", &format!("/api/v1/certificates/{csr_cert}/key"), None).await.0,
        404
    );
}

/// Managed certificates: first version at creation, a manual renewal, and the scheduler
/// renewing one once it is due (on a clock the test moves, not by sleeping), then not again.
async fn managed(app: &TestApp) {
    let admin = app.admin_token.clone();
    call(app, &admin, "POST", "/api/v1/owners", Some(json!({"name": "edge"}))).await;
    let body = json!({"name": "edge-api", "owner": "edge", "dns_names": ["api.edge.example"], "validity_days": 1, "renew_before": "12h"});
    let (s, managed) = call(app, &admin, "POST", "/api/v1/managed-certificates", Some(body)).await;
    assert_eq!(s, 201, "{managed}");
    assert_eq!(managed["versions"].as_array().unwrap().len(), 1, "{managed}");
    let (s, renewal) =
        call(app, &admin, "POST", "/api/v1/managed-certificates/edge-api/renew", None).await;
    assert_eq!(
        (s, renewal["state"].as_str(), renewal["kind"].as_str()),
        (201, Some("issued"), Some("renew")),
        "{renewal}"
    );
    // Inside the renew-before window of the newest version: the scheduler renews it once.
    let (_, m) = call(app, &admin, "GET", "/api/v1/managed-certificates/edge-api", None).await;
    let due = unix(&m["versions"][0]["not_after"]) - 12 * 3_600 + 60;
    let clock = TestClock::at(due);
    let state = app.issuer_state(clock.clone()).await;
    scheduler::tick(&state).await;
    let (_, m) = call(app, &admin, "GET", "/api/v1/managed-certificates/edge-api", None).await;
    assert_eq!(m["versions"].as_array().unwrap().len(), 3, "the scheduler renewed it: {m}");
    // (Its decision is not checked here: the app's own scheduler, on the real clock, passes
    // every second and may already have written "not due" over the test clock's "renewing".)
    // The next ticks find the new version too young: the CA signed it on its own clock, 12 h
    // behind the test's, so to CMP it came already inside its renew-before window (as from a
    // CA that returns a shorter lifetime than asked).
    for later in [60, 3_600] {
        clock.set(due + later);
        scheduler::tick(&state).await;
        let (_, m) = call(app, &admin, "GET", "/api/v1/managed-certificates/edge-api", None).await;
        assert_eq!(m["versions"].as_array().unwrap().len(), 3, "not renewed again: {m}");
        let renewal = &m["renewal"];
        assert_eq!(
            (renewal["action"].as_str(), renewal["reason"].as_str()),
            (Some("wait"), Some("minimum_age")),
            "{m}"
        );
    }
    let metrics = String::from_utf8(fetch(app, "/metrics").await).unwrap();
    assert!(metrics.contains("cmp_issuance_duration_seconds_bucket"), "a histogram");
    assert!(metrics.contains("cmp_renewals_total{outcome=\"issued\"}"), "renewals by outcome");
    let body = json!({"name": "edge-api", "owner": "edge", "dns_names": ["x.edge.example"]});
    assert_eq!(call(app, &admin, "POST", "/api/v1/managed-certificates", Some(body)).await.0, 409);
}

/// Unix seconds of an RFC 3339 time in an answer.
pub(crate) fn unix(value: &Value) -> i64 {
    let text = value.as_str().unwrap_or_else(|| panic!("not a time: {value}"));
    OffsetDateTime::parse(text, &Rfc3339).unwrap().unix_timestamp()
}

/// Files under `dir`, at any depth.
fn files_under(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries.flatten().map(|e| if e.path().is_dir() { files_under(&e.path()) } else { 1 }).sum()
    })
}

/// The example (a 1-day certificate renewed 24 h before expiry was due as soon as
/// issued, so every tick made a new certificate and key) is refused and says why, and so is
/// any renew_before that leaves a version less than its minimum age; nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renew_before_that_leaves_no_time_is_refused_and_writes_nothing() {
    on_both_databases!(|app| {
        let admin = app.admin_token.clone();
        call(&app, &admin, "POST", "/api/v1/owners", Some(json!({"name": "lab"}))).await;
        let before = (app.counts().await, files_under(app.data_dir()));
        let ask = |renew_before: &str, validity_days: Option<i64>| {
            let mut body = json!({"name": "x", "owner": "lab", "key_type": "ecdsa_p256",
                                  "dns_names": ["c.lab.test"], "renew_before": renew_before});
            if let Some(days) = validity_days {
                body["validity_days"] = json!(days);
            }
            call(&app, &admin, "POST", "/api/v1/managed-certificates", Some(body))
        };
        for (renew_before, days, says) in [
            (
                "24h",
                Some(1),
                "renew_before (24h) must be shorter than the validity (1 day) by at least \
                 2 h 24 min, the minimum age of a version",
            ),
            ("22h", Some(1), "give at most 21 h 36 min (e.g. 21h)"),
            ("95%", Some(1), "renew_before (95%) must leave at least 2 h 24 min of the validity"),
            ("82d", None, "renew_before (82d) must be shorter than the validity (90 days)"),
        ] {
            let (s, problem) = ask(renew_before, days).await;
            assert_eq!(s, 422, "{renew_before}: {problem}");
            assert_eq!(problem["errors"][0]["pointer"], "renew_before", "{problem}");
            assert_eq!(problem["errors"][0]["reason"], "leaves_no_time", "{problem}");
            let detail = problem["detail"].as_str().unwrap();
            assert!(detail.contains(says), "{renew_before}: {detail}");
        }
        let (s, problem) = ask("soon", Some(1)).await;
        assert_eq!((s, problem["errors"][0]["pointer"].as_str()), (400, Some("renew_before")));
        assert_eq!(
            (app.counts().await, files_under(app.data_dir())),
            before,
            "no certificate, audit event or key on {:?}",
            app.kind
        );
        let (_, managed) = call(&app, &admin, "GET", "/api/v1/managed-certificates", None).await;
        assert_eq!(managed["items"], json!([]), "{managed}");
        let (_, requests) = call(&app, &admin, "GET", "/api/v1/requests", None).await;
        assert_eq!(requests["items"], json!([]), "{requests}");
        // The largest renew_before the lifetime allows is accepted.
        let (s, managed) = ask("21h", Some(1)).await;
        assert_eq!(s, 201, "{managed}");
        assert_eq!(ask("90%", Some(1)).await.0, 409, "accepted, and the name is taken");
    })
}

/// A managed certificate whose version is due as soon as it is issued (stored before the
/// check above, as the example was): six hours of scheduler ticks, five minutes apart,
/// renew it once per minimum age (2 h 24 min for a day), not once per tick, and the decision
/// says why it waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_due_at_once_is_renewed_once_per_minimum_age_not_every_tick() {
    for kind in DbKind::ALL {
        // After a renewal the scheduler looks again one interval later.
        let app = TestApp::spawn_with(kind, |c| c.issuer.scheduler_interval_secs = 60).await;
        let admin = app.admin_token.clone();
        call(&app, &admin, "POST", "/api/v1/owners", Some(json!({"name": "lab"}))).await;
        let body = json!({"name": "x", "owner": "lab", "key_type": "ecdsa_p256",
                          "dns_names": ["c.lab.test"], "validity_days": 1, "renew_before": "21h"});
        let (s, managed) =
            call(&app, &admin, "POST", "/api/v1/managed-certificates", Some(body)).await;
        assert_eq!(s, 201, "{managed}");
        let mut spec = managed["spec"].clone();
        spec["renew_before"] = json!("24h");
        let id = managed["id"].as_str().unwrap();
        let sql = format!("UPDATE managed_certificates SET spec = '{spec}' WHERE id = '{id}'");
        assert_eq!(app.store.execute_raw(&sql).await.unwrap(), 1);

        let start = OffsetDateTime::now_utc().unix_timestamp();
        let clock = TestClock::at(start);
        let state = app.issuer_state(clock.clone()).await;
        let mut renewed_at = Vec::new();
        let mut versions = 1;
        for step in 0..=72 {
            clock.set(start + step * 300);
            scheduler::tick(&state).await;
            let (_, m) = call(&app, &admin, "GET", "/api/v1/managed-certificates/x", None).await;
            let now = m["versions"].as_array().unwrap().len();
            if now > versions {
                assert_eq!(now, versions + 1, "one renewal per tick at most: {m}");
                renewed_at.push(step * 300);
                versions = now;
            }
            if step == 1 {
                assert_eq!(versions, 1, "{m}");
                let renewal = &m["renewal"];
                assert_eq!(
                    (renewal["action"].as_str(), renewal["reason"].as_str()),
                    (Some("wait"), Some("minimum_age")),
                    "{m}"
                );
                let message = renewal["message"].as_str().unwrap();
                assert!(message.starts_with("waiting: the current version is "), "{message}");
                assert!(
                    message.contains(
                        "under its minimum age of 2 h 24 min before a renewal; renew_before (1d) \
                         leaves less than that of its 1 day lifetime; renews at "
                    ),
                    "{message}"
                );
                // Received a minute after its (backdated) notBefore; 10% of 1 day and 1 min.
                let wait =
                    renewal["due_at"].as_i64().unwrap() - unix(&m["versions"][0]["not_before"]);
                assert!((8_706..=8_708).contains(&wait), "{wait} s: {m}");
            }
            if step == 72 {
                assert_eq!(m["renewal"]["reason"], "minimum_age", "{m}");
            }
        }
        // Before the minimum age, each of these ticks made a new certificate and key.
        assert_eq!(renewed_at.len(), 2, "renewed twice in 6 h on {kind:?}: {renewed_at:?}");
        assert!(renewed_at[0] >= 8_646 - 60, "{renewed_at:?}");
        assert!(renewed_at[1] - renewed_at[0] >= 8_646, "{renewed_at:?}");
        app.stop().await;
    }
}

/// Revoking the version a managed certificate serves has it replaced at the scheduler's next
/// pass, however young it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_current_version_is_replaced_at_once() {
    on_both_databases!(|app| {
        let admin = app.admin_token.clone();
        call(&app, &admin, "POST", "/api/v1/owners", Some(json!({"name": "web"}))).await;
        let body = json!({"name": "shop", "owner": "web", "key_type": "ecdsa_p256",
                          "dns_names": ["shop.test"]});
        let (s, managed) =
            call(&app, &admin, "POST", "/api/v1/managed-certificates", Some(body)).await;
        assert_eq!(s, 201, "{managed}");
        let first = managed["current_certificate_id"].as_str().unwrap().to_string();
        let path = format!("/api/v1/certificates/{first}/revoke");
        let body = json!({"reason": "key_compromise"});
        let (s, revoked) = call(&app, &admin, "POST", &path, Some(body)).await;
        assert_eq!((s, revoked["state"].as_str()), (200, Some("issued")), "{revoked}");

        let now = OffsetDateTime::now_utc().unix_timestamp();
        let state = app.issuer_state(TestClock::at(now)).await;
        scheduler::tick(&state).await;
        let (_, m) = call(&app, &admin, "GET", "/api/v1/managed-certificates/shop", None).await;
        assert_eq!(m["versions"].as_array().unwrap().len(), 2, "replaced once: {m}");
        let current = m["current_certificate_id"].as_str().unwrap();
        assert_ne!(current, first, "{m}");
        let (_, cert) =
            call(&app, &admin, "GET", &format!("/api/v1/certificates/{current}"), None).await;
        assert_eq!(cert["status"], "valid", "{cert}");
    });
}

pub(crate) fn fast_scheduler(config: &mut cmp_server::config::Config) {
    config.issuer.scheduler_interval_secs = 1;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_with_the_adapter_in_process() {
    for kind in DbKind::ALL {
        let app = TestApp::spawn_with(kind, fast_scheduler).await;
        lifecycle(&app).await;
        server_keys(&app).await;
        managed(&app).await;
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_with_the_adapter_role_over_http() {
    for kind in DbKind::ALL {
        let (app, adapter) = TestApp::spawn_with_adapter_role(kind, fast_scheduler).await;
        lifecycle(&app).await;
        server_keys(&app).await;
        managed(&app).await;
        app.stop().await;
        adapter.shutdown().await.unwrap();
    }
}

/// The CA is down: the request says so and waits (nothing half-written); when the adapter role
/// is back, the scheduler finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waits_out_an_adapter_role_that_is_down() {
    for kind in DbKind::ALL {
        let (app, adapter) = TestApp::spawn_with_adapter_role(kind, fast_scheduler).await;
        let admin = app.admin_token.clone();
        call(&app, &admin, "POST", "/api/v1/owners", Some(json!({"name": "ops"}))).await;
        let addr = adapter.addr;
        adapter.shutdown().await.unwrap();
        let before = app.counts().await;
        let body = json!({"owner": "ops", "csr": csr_for(&["db.ops.example"])});
        let (s, request) = call(&app, &admin, "POST", "/api/v1/requests", Some(body)).await;
        assert_eq!((s, request["state"].as_str()), (201, Some("approved")), "{request}");
        let error = request["last_error"].as_str().unwrap();
        assert!(error.contains("CA unavailable"), "{error}");
        assert!(request["next_attempt_at"].is_string() && request["certificate_id"].is_null());
        assert_eq!(app.counts().await.0, before.0, "no certificate half-written on {kind:?}");

        let adapter = app.start_adapter_role(addr).await;
        let id = request["id"].as_str().unwrap();
        let mut state = String::new();
        for _ in 0..150 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let (_, r) = call(&app, &admin, "GET", &format!("/api/v1/requests/{id}"), None).await;
            state = r["state"].as_str().unwrap().to_string();
            if state == "issued" {
                assert_eq!(r["attempts"], 2, "{r}");
                break;
            }
        }
        assert_eq!(state, "issued", "retried after the backoff on {kind:?}");
        app.stop().await;
        adapter.shutdown().await.unwrap();
    }
}
