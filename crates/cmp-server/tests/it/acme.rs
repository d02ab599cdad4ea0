//! ACME end to end against a real Pebble and pebble-challtestsrv: an acme adapter configured
//! through the API (with External Account Binding), issuance over http-01 and dns-01 (a
//! wildcard), renewal by the scheduler, revocation seen by Pebble, a challenge that fails, and
//! an order interrupted by a restart. Each runs on both databases; the main walk also over the
//! adapter role.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cmp_server::config::Config;
use cmp_server::issuer::scheduler;
use cmp_store::AdapterStore;
use cmp_testkit::DbKind;
use cmp_testkit::openssl::verify_chain;
use cmp_testkit::pebble::{EAB_HMAC, EAB_KID, Pebble, PebbleOptions};
use serde_json::{Value, json};

use crate::issuance::{call, csr_for, fast_scheduler, openssl, unix};
use crate::support::{TestApp, TestClock};

/// A fast scheduler, and CMP's http-01 responder where Pebble validates (`None`: no http-01).
fn with_responder(port: Option<u16>) -> impl FnOnce(&mut Config) {
    move |config: &mut Config| {
        fast_scheduler(config);
        config.acme.http01_listen = port.map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
    }
}

/// dns-01 through challtestsrv's API at `present`/`cleanup`, checked at its DNS server.
pub(crate) fn dns_solver(pebble: &Pebble, names: &[&str], present: &str, cleanup: &str) -> Value {
    json!({"challenge": "dns-01", "names": names,
           "provider": {"kind": "webhook", "present_url": present, "cleanup_url": cleanup},
           "propagation": {"nameservers": [pebble.dns.to_string()], "timeout_secs": 10}})
}

pub(crate) fn acme_adapter(
    name: &str,
    pebble: &Pebble,
    solvers: Value,
    eab: Option<&str>,
) -> Value {
    let mut config = json!({"directory_url": pebble.directory, "ca_bundle": pebble.tls_pem,
                            "contact_email": "pki@example.com", "order_timeout_secs": 20,
                            "solvers": solvers});
    if let Some(hmac) = eab {
        config["eab"] = json!({"key_id": EAB_KID, "hmac_key": hmac});
    }
    json!({"name": name, "kind": "acme", "config": config})
}

/// Polls a request until it leaves the states that still change by themselves.
async fn settled(app: &TestApp, id: &str) -> Value {
    for _ in 0..300 {
        let (_, r) =
            call(app, &app.admin_token, "GET", &format!("/api/v1/requests/{id}"), None).await;
        if ["issued", "failed", "rejected"].contains(&r["state"].as_str().unwrap_or_default()) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("request {id} did not settle");
}

async fn request(app: &TestApp, names: &[&str]) -> Value {
    let body = json!({"owner": "web", "adapter": "acme", "csr": csr_for(names),
                      "dns_names": names});
    let (s, r) = call(app, &app.admin_token, "POST", "/api/v1/requests", Some(body)).await;
    assert_eq!(s, 201, "{r}");
    settled(app, r["id"].as_str().unwrap()).await
}

async fn leaf_pem(app: &TestApp, certificate_id: &str) -> String {
    let path = format!("/api/v1/certificates/{certificate_id}/pem");
    call(app, &app.admin_token, "GET", &path, None).await.1.as_str().unwrap().to_string()
}

/// The walk: adapter with EAB, refusals, http-01 (when `http01`), dns-01 with a wildcard,
/// a managed certificate renewed, revocation seen by Pebble.
async fn walk(app: &TestApp, pebble: &Pebble, http01: bool) {
    let admin = app.admin_token.clone();
    call(app, &admin, "POST", "/api/v1/owners", Some(json!({"name": "web"}))).await;
    let mut solvers = vec![dns_solver(
        pebble,
        &[".dns.test", "dns.test"],
        &pebble.challtestsrv_url("set-txt"),
        &pebble.challtestsrv_url("clear-txt"),
    )];
    if http01 {
        solvers.push(json!({"challenge": "http-01"}));
    }

    // A wrong EAB key, or a CA that is down: refused with the reason, nothing written.
    let before = call(app, &admin, "GET", "/api/v1/adapters", None).await.1;
    let wrong = acme_adapter("wrong", pebble, json!(solvers), Some("d3Jvbmcta2V5"));
    let (s, problem) = call(app, &admin, "POST", "/api/v1/adapters", Some(wrong)).await;
    assert_eq!(s, 422, "{problem}");
    assert!(!problem.to_string().contains("d3Jvbmcta2V5"), "the HMAC leaked: {problem}");
    let mut down = acme_adapter("down", pebble, json!(solvers), Some(EAB_HMAC));
    down["config"]["directory_url"] =
        json!(format!("https://127.0.0.1:{}/dir", cmp_testkit::free_port()));
    let (s, problem) = call(app, &admin, "POST", "/api/v1/adapters", Some(down)).await;
    assert_eq!(s, 503, "{problem}");
    assert_eq!(call(app, &admin, "GET", "/api/v1/adapters", None).await.1, before);

    let body = acme_adapter("acme", pebble, json!(solvers), Some(EAB_HMAC));
    let (s, adapter) = call(app, &admin, "POST", "/api/v1/adapters", Some(body)).await;
    assert_eq!(s, 201, "{adapter}");
    assert_eq!(adapter["has_credentials"], true);
    assert_eq!(adapter["config"]["eab_key_id"], EAB_KID);
    assert!(adapter["config"]["account_url"].as_str().unwrap().starts_with("https://127.0.0.1"));
    let listed = call(app, &admin, "GET", "/api/v1/adapters", None).await.1.to_string();
    assert!(!listed.contains(EAB_HMAC) && !adapter.to_string().contains(EAB_HMAC));
    let (_, status) = call(app, &admin, "GET", "/api/v1/adapters/acme/status", None).await;
    assert_eq!(status["healthy"], true, "{status}");
    assert!(status["message"].as_str().unwrap().contains("ARI not offered"), "{status}");

    let root = pebble.root_pem().await;
    let intermediate = pebble.intermediate_pem().await;
    let mut names = vec!["*.dns.test", "dns.test"];
    if http01 {
        names.push("www.web.test");
    }
    let issued = request(app, &names).await;
    assert_eq!(issued["state"], "issued", "{issued}");
    let cert_id = issued["certificate_id"].as_str().unwrap().to_string();
    let (_, cert) =
        call(app, &admin, "GET", &format!("/api/v1/certificates/{cert_id}"), None).await;
    assert_eq!(cert["source"], "issued", "{cert}");
    let leaf = leaf_pem(app, &cert_id).await;
    let chain = format!("{leaf}{intermediate}");
    verify_chain(&chain, &root).unwrap();
    // The issuer role's ARI call: Pebble suggests no window; junk is a 400.
    use base64::Engine;
    let der = pem::parse(&leaf).unwrap().into_contents();
    let body = json!({"certificate": base64::engine::general_purpose::STANDARD.encode(der)});
    let path = "/api/v1/adapters/acme/renewal-window";
    let (s, window) = call(app, &admin, "POST", path, Some(body)).await;
    assert_eq!((s, &window["window"]), (200, &Value::Null), "{window}");
    let (s, _) = call(app, &admin, "POST", path, Some(json!({"certificate": "%%"}))).await;
    assert_eq!(s, 400);
    let (_, found) =
        call(app, &admin, "GET", "/api/v1/certificates?q=Pebble%20Intermediate", None).await;
    assert!(!found["items"].as_array().unwrap().is_empty(), "the chain is in the inventory");

    // A CSR that names something else: the CA would issue for the CSR, so it is refused.
    let body = json!({"owner": "web", "adapter": "acme", "csr": csr_for(&["other.dns.test"]),
                      "dns_names": ["x.dns.test"]});
    let (_, r) = call(app, &admin, "POST", "/api/v1/requests", Some(body)).await;
    let refused = settled(app, r["id"].as_str().unwrap()).await;
    assert_eq!(
        (refused["state"].as_str(), refused["attempts"].as_i64()),
        (Some("failed"), Some(1))
    );
    assert!(refused["last_error"].as_str().unwrap().contains("the CSR names"), "{refused}");

    // A managed certificate on ACME, renewed by the scheduler 30 days before expiry (Pebble
    // issues 5 years whatever is asked: the clock the test moves goes there).
    let body = json!({"name": "acme-web", "owner": "web", "adapter": "acme",
                      "dns_names": ["m.dns.test"], "renew_before": "30d"});
    let (s, managed) = call(app, &admin, "POST", "/api/v1/managed-certificates", Some(body)).await;
    assert_eq!(s, 201, "{managed}");
    let due = unix(&managed["versions"][0]["not_after"]) - 30 * 86_400 + 60;
    let state = app.issuer_state(TestClock::at(due)).await;
    scheduler::tick(&state).await;
    let (_, m) = call(app, &admin, "GET", "/api/v1/managed-certificates/acme-web", None).await;
    assert_eq!(m["versions"].as_array().unwrap().len(), 2, "renewed through ACME: {m}");

    let serial = cert["serial_number"].as_str().unwrap().to_string();
    assert_eq!(pebble.cert_status(&serial).await["Status"], "Valid");
    let path = format!("/api/v1/certificates/{cert_id}/revoke");
    let revoke = json!({"reason": "key_compromise"});
    let (s, r) = call(app, &admin, "POST", &path, Some(revoke.clone())).await;
    assert_eq!((s, r["state"].as_str()), (200, Some("issued")), "{r}");
    let status = pebble.cert_status(&serial).await;
    assert_eq!((status["Status"].as_str(), status["Reason"].as_i64()), (Some("Revoked"), Some(1)));
    assert_eq!(call(app, &admin, "POST", &path, Some(revoke)).await.0, 409, "revoking twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_renew_and_revoke_through_pebble_in_process_and_over_the_adapter_role() {
    for kind in DbKind::ALL {
        let pebble = Pebble::start(PebbleOptions { eab: true, ..Default::default() }).await;
        let app = TestApp::spawn_with(kind, with_responder(Some(pebble.http_port))).await;
        walk(&app, &pebble, true).await;
        app.stop().await;

        // Over the adapter role, which has no http-01 responder here: dns-01 only.
        let pebble = Pebble::start(PebbleOptions { eab: true, ..Default::default() }).await;
        let (app, adapter) = TestApp::spawn_with_adapter_role(kind, with_responder(None)).await;
        walk(&app, &pebble, false).await;
        app.stop().await;
        adapter.shutdown().await.unwrap();
    }
}

/// The PEM blocks of `text` that are certificates, in order.
fn certificate_blocks(text: &str) -> Vec<String> {
    pem::parse_many(text)
        .unwrap()
        .into_iter()
        .filter(|block| block.tag() == "CERTIFICATE")
        .map(|block| pem::encode(&block))
        .collect()
}

fn lifetime_of(certificate: &Value) -> i64 {
    unix(&certificate["not_after"]) - unix(&certificate["not_before"])
}

/// The lifetime asked reaches the CA (`notAfter`); a CA that ignores it is caught (findings,
/// status) and does not stretch the renewal; downloads (PEM with `chain=true`, PKCS#12) hold
/// the chain the CA returned, and the CA certificate in it cannot be deleted under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_certificates_keep_the_lifetime_asked_and_the_chain_the_ca_returned() {
    const DAY: i64 = 86_400;
    for kind in DbKind::ALL {
        let pebble = Pebble::start(PebbleOptions::default()).await;
        let app = TestApp::spawn_with(kind, with_responder(None)).await;
        let admin = app.admin_token.clone();
        call(&app, &admin, "POST", "/api/v1/owners", Some(json!({"name": "web"}))).await;
        let policy = json!({"max_validity_days": 90});
        let (s, body) = call(&app, &admin, "PUT", "/api/v1/owners/web/policy", Some(policy)).await;
        assert_eq!(s, 200, "{body}");
        let solver = dns_solver(
            &pebble,
            &[],
            &pebble.challtestsrv_url("set-txt"),
            &pebble.challtestsrv_url("clear-txt"),
        );
        let body = acme_adapter("acme", &pebble, json!([solver.clone()]), None);
        assert_eq!(call(&app, &admin, "POST", "/api/v1/adapters", Some(body)).await.0, 201);

        // 90 days asked under a 90-day policy, server-made key: Pebble issues 90 days (it
        // issues 5 years when no notAfter is asked).
        let body = json!({"owner": "web", "adapter": "acme", "key_type": "ecdsa_p256",
                          "dns_names": ["v.dns.test"], "validity_days": 90});
        let (s, r) = call(&app, &admin, "POST", "/api/v1/requests", Some(body)).await;
        assert_eq!(s, 201, "{r}");
        let issued = settled(&app, r["id"].as_str().unwrap()).await;
        assert_eq!(issued["state"], "issued", "{issued}");
        let cert_id = issued["certificate_id"].as_str().unwrap().to_string();
        let path = format!("/api/v1/certificates/{cert_id}");
        let (_, cert) = call(&app, &admin, "GET", &path, None).await;
        assert!((lifetime_of(&cert) - 90 * DAY).abs() <= 3_600, "90 days: {cert}");
        assert!(!cert["findings"].to_string().contains("validity_exceeds"), "{cert}");
        let (_, status) = call(&app, &admin, "GET", "/api/v1/adapters/acme/status", None).await;
        assert_eq!(status["honours_validity"], true, "{status}");
        let issued_validity = status["issued_validity_secs"].as_i64().unwrap();
        assert!((issued_validity - 90 * DAY).abs() <= 3_600, "{status}");

        // The PEM with its chain: the leaf, then Pebble's intermediate, up to Pebble's root;
        // the leaf alone does not verify.
        let root = pebble.root_pem().await;
        let chain = call(&app, &admin, "GET", &format!("{path}/pem?chain=true"), None).await.1;
        let chain = chain.as_str().unwrap().to_string();
        let blocks = certificate_blocks(&chain);
        assert_eq!(blocks.len(), 2, "{chain}");
        assert_eq!(blocks[0], leaf_pem(&app, &cert_id).await);
        verify_chain(&chain, &root).unwrap();
        assert!(verify_chain(&blocks[0], &root).is_err(), "the intermediate is needed");
        assert_eq!(app.admin.certificate_pem_chain(&cert_id).await.unwrap(), chain);

        // The PKCS#12 holds the leaf and the chain (parsed here, and by openssl).
        let p12 = app.admin.download_key(&cert_id, Some("correct-horse")).await.unwrap();
        let decoded = cmp_pki::decode_import(&p12, Some("correct-horse"));
        assert_eq!(decoded.certificates.len(), 2, "{:?}", decoded.rejected);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k.p12"), &p12).unwrap();
        let args = ["pkcs12", "-in", "k.p12", "-passin", "pass:correct-horse", "-nokeys"];
        let in_p12 = certificate_blocks(&openssl(&args, dir.path()));
        assert_eq!(in_p12.len(), 2, "leaf and intermediate");
        assert!(in_p12.contains(&blocks[0]) && in_p12.contains(&blocks[1]));
        verify_chain(&format!("{}{}", blocks[0], blocks[1]), &root).unwrap();

        // The intermediate is in that chain: deleting it is a conflict that names the leaf.
        let (_, found) =
            call(&app, &admin, "GET", "/api/v1/certificates?q=Pebble%20Intermediate", None).await;
        let intermediate = found["items"][0]["id"].as_str().unwrap().to_string();
        let path_of = |id: &str| format!("/api/v1/certificates/{id}");
        let (s, problem) = call(&app, &admin, "DELETE", &path_of(&intermediate), None).await;
        assert_eq!(s, 409, "{problem}");
        assert!(problem["detail"].as_str().unwrap().contains(&cert_id), "{problem}");

        // An adapter that does not send notAfter (as for a CA that ignores it): Pebble's 5
        // years, stored with the findings that name the breach, shown by the status.
        let mut body = acme_adapter("lax", &pebble, json!([solver]), None);
        body["config"]["send_not_after"] = json!(false);
        assert_eq!(call(&app, &admin, "POST", "/api/v1/adapters", Some(body)).await.0, 201);
        let body = json!({"name": "lax-web", "owner": "web", "adapter": "lax",
                          "dns_names": ["m.dns.test"], "validity_days": 90});
        let (s, managed) =
            call(&app, &admin, "POST", "/api/v1/managed-certificates", Some(body)).await;
        assert_eq!(s, 201, "{managed}");
        let version = &managed["versions"][0];
        let long_id = version["certificate_id"].as_str().unwrap();
        let (_, long) = call(&app, &admin, "GET", &path_of(long_id), None).await;
        assert!(lifetime_of(&long) > 1_000 * DAY, "Pebble's default: {long}");
        let findings: Vec<&str> =
            long["findings"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert!(findings.contains(&"validity_exceeds_policy"), "{long}");
        assert!(findings.contains(&"validity_exceeds_request"), "{long}");
        let (_, listed) =
            call(&app, &admin, "GET", "/api/v1/certificates?finding=validity_exceeds_policy", None)
                .await;
        assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
        let (_, status) = call(&app, &admin, "GET", "/api/v1/adapters/lax/status", None).await;
        assert_eq!(status["honours_validity"], false, "{status}");
        assert!(status["issued_validity_secs"].as_i64().unwrap() > 1_000 * DAY, "{status}");

        // Its renewal follows the 90 days asked: due at 2/3 of them, not of 5 years.
        let not_before = unix(&version["not_before"]);
        let state = app.issuer_state(TestClock::at(not_before + 50 * DAY)).await;
        scheduler::tick(&state).await;
        let (_, m) = call(&app, &admin, "GET", "/api/v1/managed-certificates/lax-web", None).await;
        assert_eq!(m["versions"].as_array().unwrap().len(), 1, "not due yet: {m}");
        let state = app.issuer_state(TestClock::at(not_before + 61 * DAY)).await;
        scheduler::tick(&state).await;
        let (_, m) = call(&app, &admin, "GET", "/api/v1/managed-certificates/lax-web", None).await;
        assert_eq!(m["versions"].as_array().unwrap().len(), 2, "renewed on 90 days: {m}");
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_challenge_answer_fails_the_request_with_the_cas_reason_and_writes_nothing() {
    for kind in DbKind::ALL {
        let pebble = Pebble::start(PebbleOptions::default()).await;
        // Something else answers where Pebble validates; CMP's responder listens elsewhere.
        let listener =
            tokio::net::TcpListener::bind(("127.0.0.1", pebble.http_port)).await.unwrap();
        let wrong = axum::Router::new().fallback(|| async { "not-the-key-authorization" });
        tokio::spawn(async move { axum::serve(listener, wrong).await });
        let app = TestApp::spawn_with(kind, with_responder(Some(cmp_testkit::free_port()))).await;
        let admin = app.admin_token.clone();
        call(&app, &admin, "POST", "/api/v1/owners", Some(json!({"name": "web"}))).await;
        let body = acme_adapter("acme", &pebble, json!([{"challenge": "http-01"}]), None);
        assert_eq!(call(&app, &admin, "POST", "/api/v1/adapters", Some(body)).await.0, 201);
        let before = app.counts().await.0;
        let failed = request(&app, &["w.web.test"]).await;
        assert_eq!(
            (failed["state"].as_str(), failed["attempts"].as_i64()),
            (Some("failed"), Some(1))
        );
        let error = failed["last_error"].as_str().unwrap();
        assert!(error.contains("challenge http-01 for w.web.test failed: unauthorized"), "{error}");
        assert!(failed["certificate_id"].is_null());
        assert_eq!(app.counts().await.0, before, "no certificate was written");
        app.stop().await;
    }
}

/// A DNS webhook in front of challtestsrv: call n waits `delay` times (n % 8), so that orders
/// started together finish apart; with `fail_first`, the first call is a 500. Returns its URL
/// and how many calls it had.
pub(crate) async fn dns_webhook(
    pebble: &Pebble,
    fail_first: bool,
    delay: Duration,
) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let (counter, target) = (calls.clone(), pebble.challtestsrv.clone());
    let forward = move |axum::extract::Path(call): axum::extract::Path<String>,
                        body: axum::body::Bytes| {
        let (counter, target) = (counter.clone(), target.clone());
        async move {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay * u32::try_from(n % 8).unwrap_or(0)).await;
            if n == 0 && fail_first {
                return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "provider hiccup");
            }
            let sent = reqwest::Client::new()
                .post(format!("{target}/{call}"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => (axum::http::StatusCode::OK, ""),
                _ => (axum::http::StatusCode::BAD_GATEWAY, "challtestsrv"),
            }
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = axum::Router::new().route("/{call}", axum::routing::post(forward));
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_interrupted_by_a_restart_is_resumed_not_placed_again() {
    for kind in DbKind::ALL {
        let pebble = Pebble::start(PebbleOptions::default()).await;
        let (webhook, calls) = dns_webhook(&pebble, true, Duration::ZERO).await;
        let mut app = TestApp::spawn_with(kind, with_responder(None)).await;
        let admin = app.admin_token.clone();
        call(&app, &admin, "POST", "/api/v1/owners", Some(json!({"name": "web"}))).await;
        let solver = dns_solver(
            &pebble,
            &[],
            &format!("{webhook}/set-txt"),
            &format!("{webhook}/clear-txt"),
        );
        let body = acme_adapter("acme", &pebble, json!([solver]), None);
        let (_, adapter) = call(&app, &admin, "POST", "/api/v1/adapters", Some(body)).await;
        let adapter_id = adapter["id"].as_str().unwrap().to_string();

        // The first attempt places the order, then the DNS provider fails: retry later.
        let body = json!({"owner": "web", "adapter": "acme", "csr": csr_for(&["r.web.test"]),
                          "dns_names": ["r.web.test"]});
        let (_, first) = call(&app, &admin, "POST", "/api/v1/requests", Some(body)).await;
        assert_eq!(first["state"], "approved", "waiting for a retry: {first}");
        assert!(first["last_error"].as_str().unwrap().contains("DNS webhook answered 500"));
        let request_id = first["id"].as_str().unwrap().to_string();
        let order = app.store.acme_order_find(&adapter_id, &request_id).await.unwrap();
        let order = order.expect("the order was journaled before the challenge");

        // A new process takes the retry over and resumes that order.
        app.restart(with_responder(None)).await;
        let done = settled(&app, &request_id).await;
        assert_eq!((done["state"].as_str(), done["attempts"].as_i64()), (Some("issued"), Some(2)));
        let resumed = app.store.acme_order_find(&adapter_id, &request_id).await.unwrap();
        assert_eq!(resumed.as_deref(), Some(order.as_str()), "the same order, not a new one");
        assert!(calls.load(Ordering::SeqCst) >= 3, "present failed, then present and cleanup");

        // The CA gone: the request waits for a retry with the reason; nothing is written.
        drop(pebble);
        let before = app.counts().await.0;
        let body = json!({"owner": "web", "adapter": "acme", "csr": csr_for(&["l.web.test"]),
                          "dns_names": ["l.web.test"]});
        let (_, late) = call(&app, &admin, "POST", "/api/v1/requests", Some(body)).await;
        assert_eq!(late["state"], "approved", "{late}");
        assert!(late["last_error"].as_str().unwrap().contains("unreachable"), "{late}");
        assert_eq!(app.counts().await.0, before);
        app.stop().await;
    }
}

/// RFC 2136 with a TSIG key against a real BIND that Pebble resolves through: the key goes
/// to the secret store (never into the adapter's config or answers) and comes back from it
/// after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns01_through_rfc2136_keeps_the_tsig_key_in_the_secret_store() {
    for kind in DbKind::ALL {
        let bind = cmp_testkit::bind::Bind::start("dns.test").await;
        let pebble =
            Pebble::start(PebbleOptions { dns_server: Some(bind.addr), ..Default::default() })
                .await;
        let mut app = TestApp::spawn_with(kind, with_responder(None)).await;
        let admin = app.admin_token.clone();
        call(&app, &admin, "POST", "/api/v1/owners", Some(json!({"name": "web"}))).await;
        // The first solver admits every name but its webhook goes nowhere: requests choose
        // the BIND one by id.
        let nowhere = format!("http://127.0.0.1:{}/dns", cmp_testkit::free_port());
        let unused = dns_solver(&pebble, &[], &nowhere, &nowhere);
        let solver = json!({"challenge": "dns-01", "id": "bind",
            "provider": {"kind": "rfc2136", "server": bind.addr.to_string(), "zone": "dns.test",
                         "key_name": cmp_testkit::bind::KEY_NAME, "secret": bind.secret},
            "propagation": {"nameservers": [bind.addr.to_string()], "timeout_secs": 10}});
        let body = acme_adapter("acme", &pebble, json!([unused, solver]), None);
        let (s, adapter) = call(&app, &admin, "POST", "/api/v1/adapters", Some(body)).await;
        assert_eq!(s, 201, "{adapter}");
        let listed = call(&app, &admin, "GET", "/api/v1/adapters", None).await.1.to_string();
        assert!(!listed.contains(&bind.secret) && !adapter.to_string().contains(&bind.secret));
        assert_eq!(adapter["config"]["solvers"][1]["provider"]["kind"], "rfc2136");

        let with_solver = |names: &[&str], solver: &str| {
            json!({"owner": "web", "adapter": "acme", "csr": csr_for(names), "dns_names": names,
                   "acme_solver": solver})
        };
        let body = with_solver(&["*.dns.test", "dns.test"], "bind");
        let (_, r) = call(&app, &admin, "POST", "/api/v1/requests", Some(body)).await;
        let issued = settled(&app, r["id"].as_str().unwrap()).await;
        assert_eq!(issued["state"], "issued", "{issued}");
        let body = with_solver(&["x.dns.test"], "nope");
        let (_, r) = call(&app, &admin, "POST", "/api/v1/requests", Some(body)).await;
        let refused = settled(&app, r["id"].as_str().unwrap()).await;
        assert_eq!(refused["state"], "failed", "{refused}");
        assert!(refused["last_error"].as_str().unwrap().contains("no solver has the id \"nope\""));

        app.restart(with_responder(None)).await;
        let body = with_solver(&["api.dns.test"], "bind");
        let (_, r) = call(&app, &admin, "POST", "/api/v1/requests", Some(body)).await;
        let again = settled(&app, r["id"].as_str().unwrap()).await;
        assert_eq!(again["state"], "issued", "the key came back from the secret store: {again}");
        app.stop().await;
    }
}
