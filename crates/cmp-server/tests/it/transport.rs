//! What the listener does before any handler runs: HTTPS (auto and files, reloaded without a
//! restart), timeouts, the connection bound, security headers, bounded metric labels,
//! problem documents for the framework's own errors, and the files the server leaves on disk.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use cmp_server::config::TlsMode;
use cmp_testkit::DbKind;
use rustls::pki_types::pem::PemObject;
use serde_json::json;

use crate::support::TestApp;

/// A client that trusts only `ca_pem` and keeps the peer's certificate.
fn https_client(ca_pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem).unwrap())
        .tls_info(true)
        .build()
        .unwrap()
}

fn peer_certificate(resp: &reqwest::Response) -> Vec<u8> {
    let info = resp.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
    info.peer_certificate().unwrap().to_vec()
}

#[tokio::test]
async fn auto_tls_serves_https_from_the_platform_ca_with_hsts() {
    let app = TestApp::spawn_with(DbKind::Sqlite, |c| c.http.tls.mode = TlsMode::Auto).await;
    assert!(app.base.starts_with("https://"), "{}", app.base);
    let ca = std::fs::read(app.data_dir().join("ca.pem")).unwrap();
    let http = https_client(&ca);
    let base = app.base.replace("127.0.0.1", "localhost");
    let resp = http.get(format!("{base}/api/v1/tokens")).bearer_auth(&app.admin_token).send().await;
    let resp = resp.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["strict-transport-security"], "max-age=31536000");
    // The platform CA is exported, and the served chain verifies against it with openssl.
    let leaf = pem::encode(&pem::Pem::new("CERTIFICATE", peer_certificate(&resp)));
    cmp_testkit::openssl::verify_chain(&leaf, std::str::from_utf8(&ca).unwrap()).unwrap();
    // By IP address too (the default names hold the loopback addresses).
    assert_eq!(http.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    // A client that does not trust the platform CA is refused by its own TLS check.
    assert!(reqwest::Client::new().get(app.url("/healthz")).send().await.is_err());
    // Plain HTTP to the TLS port gets no answer.
    let plain = app.url("/healthz").replace("https://", "http://");
    assert!(reqwest::Client::new().get(plain).send().await.is_err());
    app.stop().await;
}

#[tokio::test]
async fn pki_is_served_in_plain_http_beside_https_and_certificates_point_there() {
    let app = TestApp::spawn_with(DbKind::Sqlite, |c| {
        c.http.tls.mode = TlsMode::Auto;
        c.http.pki_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let https = https_client(&std::fs::read(app.data_dir().join("ca.pem")).unwrap());
    let admin = |r: reqwest::RequestBuilder| r.bearer_auth(&app.admin_token).send();
    let owner = admin(https.post(app.url("/api/v1/owners")).json(&json!({"name": "web"}))).await;
    assert_eq!(owner.unwrap().status(), 201);
    let body = json!({"owner": "web", "key_type": "ecdsa_p256", "dns_names": ["www.web.test"]});
    let request = admin(https.post(app.url("/api/v1/requests")).json(&body)).await.unwrap();
    let request: serde_json::Value = request.json().await.unwrap();
    assert_eq!(request["state"], "issued", "{request}");
    let id = request["certificate_id"].as_str().unwrap();
    let pem = admin(https.get(app.url(&format!("/api/v1/certificates/{id}/pem"))));
    let leaf = pem.await.unwrap().bytes().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("leaf.pem"), leaf).unwrap();
    let ext = ["x509", "-in", "leaf.pem", "-noout", "-ext", "crlDistributionPoints"];
    let crl_url = crate::issuance::openssl(&ext, dir.path());
    let crl_url = crl_url.lines().find_map(|l| l.trim().strip_prefix("URI:")).unwrap().to_string();
    // Plain HTTP on its own port, reached without trusting anything.
    assert!(crl_url.starts_with("http://127.0.0.1:"), "{crl_url}");
    assert!(!crl_url.contains(app.base.trim_start_matches("https://")), "{crl_url}");
    let crl = reqwest::get(&crl_url).await.unwrap();
    assert_eq!(crl.status(), 200);
    assert_eq!(crl.bytes().await.unwrap()[0], 0x30, "a DER CRL");
    // Nothing but /pki there.
    let api = crl_url.replace("/pki/builtin/crl", "/api/v1/certificates");
    assert_eq!(reqwest::get(&api).await.unwrap().status(), 404);
    app.stop().await;
}

/// A self-signed certificate for localhost and its key, PEM.
fn self_signed(name: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
}

#[tokio::test]
async fn tls_files_are_reloaded_without_a_restart_and_a_bad_file_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let (first, first_key) = self_signed("first");
    std::fs::write(&cert_file, &first).unwrap();
    std::fs::write(&key_file, &first_key).unwrap();
    let app = TestApp::spawn_with(DbKind::Sqlite, |c| {
        c.http.tls.mode = TlsMode::Files;
        c.http.tls.cert_file = Some(cert_file.clone());
        c.http.tls.key_file = Some(key_file.clone());
        c.http.tls.reload_interval_secs = 1;
    })
    .await;
    let url = app.url("/healthz").replace("127.0.0.1", "localhost");
    let served = |ca: &str| {
        let http = https_client(ca.as_bytes());
        let url = url.clone();
        async move { peer_certificate(&http.get(url).send().await.unwrap()) }
    };
    assert_eq!(served(&first).await, pem::parse(&first).unwrap().contents());

    // A key that does not fit the certificate: the old certificate stays.
    let (second, second_key) = self_signed("second");
    std::fs::write(&cert_file, &second).unwrap();
    std::fs::write(&key_file, &first_key).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(served(&first).await, pem::parse(&first).unwrap().contents());

    // The matching key: the new certificate is served, on the same listener.
    std::fs::write(&key_file, &second_key).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let http = https_client(second.as_bytes());
        if let Ok(resp) = http.get(&url).send().await {
            assert_eq!(peer_certificate(&resp), pem::parse(&second).unwrap().contents());
            break;
        }
        assert!(Instant::now() < deadline, "the new certificate was never served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn plain_http_beyond_loopback_needs_an_explicit_setting() {
    let mut config = cmp_server::config::Config::default();
    config.listen = Some("0.0.0.0:0".parse().unwrap());
    let err = config.validate().unwrap_err();
    assert!(err.contains("allow_plain_http") && err.contains("tls"), "{err}");
    config.http.allow_plain_http = true;
    config.validate().unwrap();
    // The default listens on loopback in plain HTTP, and everywhere with TLS.
    let mut config = cmp_server::config::Config::default();
    assert!(config.listen_addr().ip().is_loopback());
    config.http.tls.mode = TlsMode::Auto;
    assert!(config.listen_addr().ip().is_unspecified());
}

/// Reads until the server closes the connection (or `limit` passes); whether it closed.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn slow_and_silent_clients_are_cut_off() {
    let app = TestApp::spawn_with(DbKind::Sqlite, |c| {
        c.http.header_timeout_secs = 1;
        c.http.body_timeout_secs = 1;
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();
    tokio::task::spawn_blocking(move || {
        // A header trickled a byte at a time.
        let mut trickle = TcpStream::connect(&addr).unwrap();
        let started = Instant::now();
        for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().cycle().take(40) {
            if trickle.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(closed_within(&mut trickle, Duration::from_secs(5)));
        assert!(started.elapsed() < Duration::from_secs(6));

        // A connection that never says anything.
        let mut silent = TcpStream::connect(&addr).unwrap();
        assert!(closed_within(&mut silent, Duration::from_secs(5)), "silent connection kept");

        // A kept-alive connection idle after one request.
        let mut idle = TcpStream::connect(&addr).unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert!(closed_within(&mut idle, Duration::from_secs(5)), "idle connection kept");

        // A body declared and never sent.
        let mut body = TcpStream::connect(&addr).unwrap();
        body.write_all(
            b"POST /api/v1/owners HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer cmp_x\r\n\
              Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{",
        )
        .unwrap();
        assert!(closed_within(&mut body, Duration::from_secs(5)), "stalled body kept");
    })
    .await
    .unwrap();
    app.stop().await;
}

/// `POST /api/v1/owners` as the admin declaring `declared` body bytes, sending `body` one byte
/// per `gap` (all at once for zero); the raw answer, and how long sending and reading took.
async fn post_owner_slowly(
    app: &TestApp,
    declared: usize,
    body: &'static [u8],
    gap: Duration,
) -> (String, Duration) {
    let (addr, token) =
        (app.base.trim_start_matches("http://").to_string(), app.admin_token.clone());
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&addr).unwrap();
        let head = format!(
            "POST /api/v1/owners HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        let started = Instant::now();
        if gap.is_zero() {
            stream.write_all(body).unwrap();
        } else {
            for b in body {
                if stream.write_all(&[*b]).is_err() {
                    break;
                }
                std::thread::sleep(gap);
            }
        }
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        (answer, started.elapsed())
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_stalled_body_gets_a_problem_and_writes_nothing() {
    let app = TestApp::spawn_with(DbKind::Sqlite, |c| c.http.body_timeout_secs = 1).await;
    let before = app.counts().await;
    // Seven bytes of the hundred declared, then nothing.
    let (answer, _) = post_owner_slowly(&app, 100, br#"{"name""#, Duration::ZERO).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert_eq!(app.counts().await, before);
    app.stop().await;
}

#[tokio::test]
async fn a_trickled_body_is_cut_off_after_the_body_timeout_in_all() {
    let app = TestApp::spawn_with(DbKind::Sqlite, |c| c.http.body_timeout_secs = 1).await;
    let before = app.counts().await;
    // One byte every 200 ms: each gap is well inside the timeout, the whole is not.
    let body = br#"{"name": "trickled-owner-name-that-takes-long-to-arrive..."}"#;
    let (answer, took) =
        post_owner_slowly(&app, body.len(), body, Duration::from_millis(200)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "after {took:?}: {answer}");
    assert!(answer.contains("request-timeout"), "{answer}");
    assert_eq!(app.counts().await, before);
    app.stop().await;
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_even_if_it_answers_pings() {
    let app = TestApp::spawn_with(DbKind::Sqlite, |c| {
        c.http.tls.mode = TlsMode::Auto;
        c.http.header_timeout_secs = 1;
    })
    .await;
    let ca = std::fs::read(app.data_dir().join("ca.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(app.base.trim_start_matches("https://")).await;
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp.unwrap())
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // The h2 client answers the server's pings, as a live but idle peer does.
    let (mut client, connection) = h2::client::handshake(tls).await.unwrap();
    let connection = tokio::spawn(connection);
    let request = axum::http::Request::get(app.url("/healthz")).body(()).unwrap();
    let (answer, _) = client.send_request(request, true).unwrap();
    assert_eq!(answer.await.unwrap().status(), 200);
    let closed = tokio::time::timeout(Duration::from_secs(10), connection).await;
    assert!(closed.is_ok(), "an idle HTTP/2 connection was kept open for 10 s");
    app.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let app = TestApp::spawn_with(DbKind::Sqlite, |c| {
        c.http.max_connections = 2;
        c.http.header_timeout_secs = 60;
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let quick = reqwest::Client::builder().timeout(Duration::from_millis(700)).build().unwrap();
    assert!(quick.get(app.url("/healthz")).send().await.is_err(), "a third connection was served");
    drop(held);
    let resp = reqwest::Client::new().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn odd_methods_and_paths_do_not_grow_the_metrics() {
    let app = TestApp::spawn(DbKind::Sqlite).await;
    let http = app.http();
    let series =
        |text: &str| text.lines().filter(|l| l.starts_with("http_requests_total{")).count();
    // Warm up every kind of answer once.
    for i in 0..2 {
        let method = reqwest::Method::from_bytes(format!("M{i}").as_bytes()).unwrap();
        http.request(method, app.url("/healthz")).send().await.unwrap();
        http.get(app.url(&format!("/api/v1/nothing/{i}"))).send().await.unwrap();
        http.get(app.url(&format!("/nothing/{i}"))).send().await.unwrap();
    }
    let metrics = app.url("/metrics");
    let before = series(&http.get(&metrics).send().await.unwrap().text().await.unwrap());
    for i in 0..300 {
        let method = reqwest::Method::from_bytes(format!("M{i}X").as_bytes()).unwrap();
        let resp = http.request(method, app.url("/healthz")).send().await.unwrap();
        assert_eq!(resp.status(), 405);
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let resp = http.get(app.url(&format!("/api/v1/odd/{i}/path"))).send().await.unwrap();
        assert_eq!(resp.status(), 404);
        // Outside the API, a path is the dashboard's (the page; its script routes).
        let resp = http.get(app.url(&format!("/odd/{i}/path"))).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    let text = http.get(&metrics).send().await.unwrap().text().await.unwrap();
    // At most the scrape's own series were added.
    assert!(series(&text) <= before + 1, "{} series before, {} after", before, series(&text));
    assert!(!text.contains("M299X") && !text.contains("/odd/"), "unbounded label values");
    app.stop().await;
}

#[tokio::test]
async fn metrics_on_their_own_listener_are_gone_from_the_main_one() {
    let app = TestApp::spawn_with(DbKind::Sqlite, |c| {
        c.http.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let resp = app.http().get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let doc: serde_json::Value =
        app.http().get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["paths"].get("/metrics").is_none());
    let metrics_addr = app.server_metrics_addr().unwrap();
    let text = app
        .http()
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("http_requests_total"), "{text}");
    app.stop().await;
}

#[tokio::test]
async fn answers_carry_security_headers_and_bearer_is_case_insensitive() {
    let app = TestApp::spawn(DbKind::Sqlite).await;
    let http = app.http();
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let resp = http
            .post(app.url("/api/v1/tokens"))
            .header("authorization", format!("{scheme} {}", app.admin_token))
            .json(&serde_json::json!({"name": format!("t-{scheme}"), "role": "security"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{scheme}");
        let h = resp.headers();
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(h["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
        assert!(h.get("strict-transport-security").is_none(), "HSTS over plain HTTP");
    }
    // RFC 7235: a 401 says which scheme would do.
    let resp = http.get(app.url("/api/v1/tokens")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    app.stop().await;
}

#[tokio::test]
async fn framework_rejections_and_forbidden_answers_are_explained_problems() {
    let app = TestApp::spawn(DbKind::Sqlite).await;
    let http = app.http();
    let resp = http
        .get(app.url("/api/v1/certificates/%ff%fe"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let problem: cmp_api::Problem = resp.json().await.unwrap();
    assert!(problem.instance.is_some());

    // A 403 says which role the route needs.
    app.admin
        .create_owner(&serde_json::from_value(serde_json::json!({"name": "team"})).unwrap())
        .await
        .unwrap();
    let dev = app.token(cmp_domain::Role::Developer, &["team"]).await;
    let resp = http.get(app.url("/api/v1/tokens")).bearer_auth(&dev).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let problem: cmp_api::Problem = resp.json().await.unwrap();
    let detail = problem.detail.unwrap();
    assert!(detail.contains("admin") && detail.contains("developer"), "{detail}");

    // Input echoed in an error is cut: a 100 KB name gives a small answer.
    let before = app.counts().await;
    let name = "x".repeat(100_000);
    let resp = http
        .post(app.url("/api/v1/owners"))
        .bearer_auth(&app.admin_token)
        .json(&serde_json::json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error());
    assert!(resp.text().await.unwrap().len() < 4096);
    assert_eq!(app.counts().await, before);

    // A Vault address with credentials in it (user info, or a token in its query or fragment)
    // is refused without echoing them.
    for address in [
        "http://user:hunter2@127.0.0.1:1",
        "http://127.0.0.1:1/?token=hunter2",
        "http://127.0.0.1:1#hunter2",
    ] {
        let resp = http
            .post(app.url("/api/v1/adapters"))
            .bearer_auth(&app.admin_token)
            .json(&serde_json::json!({
                "name": "v", "kind": "vault_pki",
                "config": {"address": address, "role": "web",
                           "auth": {"method": "token", "token": "s.x"}}
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{address}");
        let text = resp.text().await.unwrap();
        assert!(!text.contains("hunter2") && text.contains("config.address"), "{text}");
    }
    assert_eq!(app.counts().await, before);
    app.stop().await;
}

#[tokio::test]
async fn the_data_dir_and_the_database_are_private() {
    let db = tempfile::tempdir().unwrap();
    let data = db.path().join("new-data");
    let app = TestApp::spawn_with(DbKind::Sqlite, |c| {
        c.data_dir = data.clone();
        c.database.url = None;
    })
    .await;
    // Something written, so that the WAL and shared-memory files exist.
    app.http()
        .post(app.url("/api/v1/owners"))
        .bearer_auth(&app.admin_token)
        .json(&serde_json::json!({"name": "private"}))
        .send()
        .await
        .unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for file in ["cmp.db", "cmp.db-wal", "cmp.db-shm", "admin-token"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    app.stop().await;
}

#[tokio::test]
async fn an_answer_given_before_the_body_was_read_closes_the_connection() {
    let app = TestApp::spawn(DbKind::Sqlite).await;
    // Refused from its headers alone (no token): the body is never read, and hyper may close
    // the connection; a client told nothing would reuse it and see its next request fail.
    let resp = app
        .http()
        .patch(app.url("/api/v1/adapters/builtin"))
        .header("content-type", "application/json")
        .body(vec![b'x'; 30_000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["connection"], "close");
    // A body the handler read keeps the connection open.
    let resp = app.send_json("POST", "/api/v1/owners", r#"{"name": "kept"}"#).await;
    assert_eq!(resp.status(), 201);
    assert!(resp.headers().get("connection").is_none());
    app.stop().await;
}
