//! `SIGKILL` while requests are in flight: after a restart and the clients' retries, every
//! request ends issued exactly once or failed with a reason, and no idempotency key yields two
//! certificates. On both databases, through the real `cmpd` binary.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cmp_store::AdapterStore;
use cmp_testkit::pebble::{Pebble, PebbleOptions};
use cmp_testkit::{DbKind, TestDb, free_port};
use serde_json::{Value, json};

use crate::acme::{acme_adapter, dns_solver, dns_webhook};

const REQUESTS: usize = 40;

fn cmpd(data: &std::path::Path, db: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cmpd"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("CMPD_DATA_DIR", data)
        .env("CMPD_DATABASE__URL", db)
        .env("CMPD_ISSUER__SCHEDULER_INTERVAL_SECS", "1")
        .env("CMPD_ISSUER__REQUEST_LEASE_SECS", "5")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A fresh database and data directory with `cmpd` serving them, ready, and owner `crash`.
struct Started {
    db: TestDb,
    data: tempfile::TempDir,
    http: reqwest::Client,
    port: u16,
    base: String,
    token: String,
    server: Child,
}

async fn start(kind: DbKind) -> Started {
    cmp_testkit::install_crypto_provider();
    let db = TestDb::new(kind).await;
    let data = tempfile::tempdir().unwrap();
    let (http, port) = (reqwest::Client::new(), free_port());
    let base = format!("http://127.0.0.1:{port}");
    let server = cmpd(data.path(), &db.url, port);
    wait_ready(&http, &base).await;
    let token =
        std::fs::read_to_string(data.path().join("admin-token")).unwrap().trim().to_string();
    let owner = http
        .post(format!("{base}/api/v1/owners"))
        .bearer_auth(&token)
        .json(&json!({"name": "crash"}))
        .send()
        .await
        .unwrap();
    assert_eq!(owner.status(), 201);
    Started { db, data, http, port, base, token, server }
}

/// The clients' retries after a restart, with the same keys: each one's request id.
async fn retry_all(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    bodies: &[Value],
    prefix: &str,
) -> Vec<String> {
    let mut ids = Vec::new();
    for (n, body) in bodies.iter().enumerate() {
        let answer = post(http, base, token, &format!("{prefix}{n}"), body)
            .await
            .expect("answered after restart");
        ids.push(answer["id"].as_str().expect("a request").to_string());
    }
    ids
}

/// Polls the requests until each is issued or failed, for up to 60 s; returns those that are.
async fn finals(http: &reqwest::Client, base: &str, token: &str, ids: &[String]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut finals = Vec::new();
        for id in ids {
            let r: Value = http
                .get(format!("{base}/api/v1/requests/{id}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if matches!(r["state"].as_str(), Some("issued" | "failed")) {
                finals.push(r);
            }
        }
        if finals.len() == ids.len() || Instant::now() > deadline {
            return finals;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Sends every body at once with its idempotency key (`<prefix><n>`) and kills `server` once
/// `answered_before_kill` answers came back; returns how many were answered in all.
async fn post_all_and_kill(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    bodies: &[Value],
    prefix: &str,
    answered_before_kill: usize,
    server: &mut Child,
) -> usize {
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut inflight = Vec::new();
    for (n, body) in bodies.iter().enumerate() {
        // Staggered, so that they land in several group commits and the kill finds some
        // answered and some in flight (all at once, one commit answers them together).
        tokio::time::sleep(Duration::from_millis(3)).await;
        let (http, base, token, body) =
            (http.clone(), base.to_string(), token.to_string(), body.clone());
        let (done, key) = (done.clone(), format!("{prefix}{n}"));
        inflight.push(tokio::spawn(async move {
            let answer = post(&http, &base, &token, &key, &body).await;
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            answer
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while done.load(std::sync::atomic::Ordering::SeqCst) < answered_before_kill
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let mut answered = 0;
    for task in inflight {
        answered += usize::from(matches!(task.await, Ok(Some(_))));
    }
    answered
}

async fn wait_ready(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(format!("{base}/readyz")).send().await.map(|r| r.status() != 200).unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "cmpd did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn csr(n: usize) -> String {
    let name = format!("host{n}.crash.example");
    let mut params = rcgen::CertificateParams::new(vec![name]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let key = rcgen::KeyPair::generate().unwrap();
    params.serialize_request(&key).unwrap().pem().unwrap()
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> Option<Value> {
    let response = http
        .post(format!("{base}/api/v1/requests"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .ok()?;
    response.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_issues_each_request_once_after_restart() {
    for kind in DbKind::ALL {
        let Started { db, data, http, port, base, token, mut server } = start(kind).await;
        let bodies: Vec<Value> =
            (0..REQUESTS).map(|n| json!({"owner": "crash", "csr": csr(n)})).collect();

        // Everything at once, and a SIGKILL in the middle of it.
        // The kill comes once a few have been answered, so that others are surely in flight.
        let answered = post_all_and_kill(&http, &base, &token, &bodies, "k", 3, &mut server).await;
        eprintln!("{kind:?}: {answered} of {REQUESTS} answered before the kill");
        assert!((1..REQUESTS).contains(&answered), "the kill came mid-batch ({answered} answered)");

        // Restart; the clients retry with the same keys.
        let mut server = cmpd(data.path(), &db.url, port);
        wait_ready(&http, &base).await;
        let ids = retry_all(&http, &base, &token, &bodies, "k").await;
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), REQUESTS, "one request per key");

        // Stranded attempts are taken over when their lease ends.
        let finals = finals(&http, &base, &token, &ids).await;
        assert_eq!(finals.len(), REQUESTS, "every request reached a final state on {kind:?}");
        let mut certificates = HashSet::new();
        for r in &finals {
            match r["state"].as_str() {
                Some("issued") => {
                    assert!(certificates.insert(r["certificate_id"].as_str().unwrap().to_string()))
                }
                _ => assert!(r["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{r}"),
            }
        }
        // The inventory holds exactly one certificate per issued request, and the CA signed
        // exactly one per request.
        let listed: Value = http
            .get(format!("{base}/api/v1/certificates?q=crash.example&limit=500"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed["items"].as_array().unwrap().len(), certificates.len(), "{kind:?}");
        let _drivers = cmp_store::SqlStore::connect(&db.url, 1).await.unwrap();
        let pool =
            sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&db.url).await.unwrap();
        let signed: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM ca_ledger").fetch_one(&pool).await.unwrap();
        assert_eq!(signed as usize, certificates.len(), "the CA signed once per issued request");
        server.kill().unwrap();
        server.wait().unwrap();
    }
}

/// The same with an ACME CA (Pebble) whose DNS provider answers slowly, so that the kill finds
/// orders between placement and issuance: after the restart each request resumes its own
/// journaled order, and every one is issued exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_resumes_its_acme_orders_and_issues_each_once() {
    const ORDERS: usize = 8;
    for kind in DbKind::ALL {
        let pebble = Pebble::start(PebbleOptions::default()).await;
        let (webhook, _) = dns_webhook(&pebble, false, Duration::from_millis(150)).await;
        let Started { db, data, http, port, base, token, mut server } = start(kind).await;
        let setup = |path: &str, body: Value| {
            http.post(format!("{base}{path}")).bearer_auth(&token).json(&body).send()
        };
        let present = format!("{webhook}/set-txt");
        let cleanup = format!("{webhook}/clear-txt");
        let solver = dns_solver(&pebble, &[], &present, &cleanup);
        let adapter: Value =
            setup("/api/v1/adapters", acme_adapter("acme", &pebble, json!([solver]), None))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        let adapter_id = adapter["id"].as_str().expect("the adapter was made").to_string();
        let bodies: Vec<Value> = (0..ORDERS)
            .map(|n| json!({"owner": "crash", "adapter": "acme", "csr": csr(n)}))
            .collect();

        let answered =
            post_all_and_kill(&http, &base, &token, &bodies, "acme", 1, &mut server).await;
        eprintln!("{kind:?}: {answered} of {ORDERS} ACME requests answered before the kill");
        assert!((1..ORDERS).contains(&answered), "the kill came mid-batch ({answered} answered)");
        let store = cmp_store::SqlStore::connect(&db.url, 1).await.unwrap();
        let pool =
            sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&db.url).await.unwrap();
        let count = |table: &str| format!("SELECT COUNT(*) FROM {table}");
        let placed: i64 = sqlx::query_scalar(&count("acme_orders")).fetch_one(&pool).await.unwrap();
        assert!(placed as usize > answered, "the kill found orders placed but not finished");
        let pool =
            sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&db.url).await.unwrap();
        let count = |table: &str| format!("SELECT COUNT(*) FROM {table}");
        let placed: i64 = sqlx::query_scalar(&count("acme_orders")).fetch_one(&pool).await.unwrap();
        assert!(placed as usize > answered, "the kill found orders placed but not finished");

        let mut server = cmpd(data.path(), &db.url, port);
        wait_ready(&http, &base).await;
        let ids = retry_all(&http, &base, &token, &bodies, "acme").await;
        let finals = finals(&http, &base, &token, &ids).await;
        assert_eq!(finals.len(), ORDERS, "every request reached a final state on {kind:?}");
        let mut certificates = HashSet::new();
        for r in &finals {
            assert_eq!(r["state"], "issued", "{r}");
            assert!(certificates.insert(r["certificate_id"].as_str().unwrap().to_string()));
        }
        // One order per request, journaled; the ledger holds one certificate per request.
        let mut orders = HashSet::new();
        for id in &ids {
            let order = store.acme_order_find(&adapter_id, id).await.unwrap();
            assert!(orders.insert(order.expect("a journaled order")));
        }
        let signed: i64 = sqlx::query_scalar(&count("ca_ledger")).fetch_one(&pool).await.unwrap();
        assert_eq!(signed as usize, ORDERS, "one certificate per request, none leaked");
        server.kill().unwrap();
        server.wait().unwrap();
    }
}
