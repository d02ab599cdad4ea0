//! Network discovery end to end: a real nginx serving many kinds of endpoint (expired, wrong
//! name, self-signed, incomplete and complete chains, two SNI names on one port, TLS 1.0, and
//! SMTP, IMAP and POP3 with STARTTLS), a listener of the test's own that goes away, and
//! listeners that misbehave (silent, garbage, reset, an endless certificate message). Scanned
//! through the API; the inventory must hold exactly what each serves, with its findings.

use std::sync::Arc;
use std::time::Duration;

use cmp_api::{
    Certificate, ChainTrust, Location, ProblemItem, ScanCreate, ScanPatch, ScanRun, ScanSpec,
};
use cmp_domain::{Finding, Role, ScanRunState};
use cmp_testkit::nginx::Nginx;
use cmp_testkit::{DbKind, free_port};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use cmp_store::{AuditContext, RunTrigger, ScanStore};

use crate::issuance::{call, openssl};
use crate::support::{TestApp, TestClock, TestPki};

/// Loopback only: what these tests scan.
fn allow_loopback(config: &mut cmp_server::config::Config) {
    config.discovery.allowed_ranges = vec!["127.0.0.0/8".into()];
}

fn spec(targets: &[&str], ports: &[u16]) -> ScanSpec {
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    serde_json::from_value(json!({
        "targets": targets,
        "ports": ports.join(","),
        "handshake_timeout_ms": 2000,
        "connect_timeout_ms": 2000,
    }))
    .unwrap()
}

fn create(name: &str, spec: ScanSpec) -> ScanCreate {
    ScanCreate {
        name: name.into(),
        spec,
        owner: None,
        interval_secs: None,
        cron: None,
        enabled: None,
    }
}

/// Runs a scan and waits (up to 60 s) for its run to end.
async fn run_to_end(app: &TestApp, scan: &str) -> ScanRun {
    let run = app.admin.run_scan(scan).await.unwrap();
    assert_eq!(run.state, ScanRunState::Running);
    for _ in 0..600 {
        let now = app.admin.scan_run(scan, &run.id).await.unwrap();
        if now.state != ScanRunState::Running {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("scan {scan} did not end within 60 s");
}

fn pem_of(cert: &rcgen::Certificate) -> String {
    cert.pem()
}

/// A leaf of `pki` that expired yesterday.
fn expired_leaf(pki: &TestPki, name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(30);
    params.not_after = now - time::Duration::days(1);
    let key = rcgen::KeyPair::generate().unwrap();
    (params.signed_by(&key, &pki.ca_issuer).unwrap(), key)
}

fn self_signed(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    (params.self_signed(&key).unwrap(), key)
}

fn fingerprint(pem: &str) -> String {
    let der = pem::parse(pem).unwrap().into_contents();
    cmp_pki::sha256_hex(&der)
}

/// Writes `name.pem` (certificate and chain) and `name.key` into nginx's directory.
fn write_pair(dir: &std::path::Path, name: &str, cert_and_chain: &str, key: &str) {
    std::fs::write(dir.join(format!("{name}.pem")), cert_and_chain).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key).unwrap();
}

/// The ports of the fixture, by what they serve.
struct Ports {
    expired: u16,
    wrong_name: u16,
    self_signed: u16,
    incomplete: u16,
    complete: u16,
    two_names: u16,
    legacy: u16,
    smtp: u16,
    imap: u16,
    pop3: u16,
    own: u16,
    closed: u16,
    silent: u16,
    garbage: u16,
    reset: u16,
    endless: u16,
}

impl Ports {
    fn new() -> Ports {
        Ports {
            expired: free_port(),
            wrong_name: free_port(),
            self_signed: free_port(),
            incomplete: free_port(),
            complete: free_port(),
            two_names: free_port(),
            legacy: free_port(),
            smtp: free_port(),
            imap: free_port(),
            pop3: free_port(),
            own: free_port(),
            closed: free_port(),
            silent: free_port(),
            garbage: free_port(),
            reset: free_port(),
            endless: free_port(),
        }
    }

    fn scanned(&self) -> String {
        let tls = [
            self.expired,
            self.wrong_name,
            self.self_signed,
            self.incomplete,
            self.complete,
            self.two_names,
            self.legacy,
            self.own,
            self.closed,
            self.silent,
            self.garbage,
            self.reset,
            self.endless,
        ];
        let mut list: Vec<String> = tls.iter().map(u16::to_string).collect();
        list.push(format!("{}/smtp", self.smtp));
        list.push(format!("{}/imap", self.imap));
        list.push(format!("{}/pop3", self.pop3));
        list.join(",")
    }
}

/// Listeners that misbehave, each on its port, until the task is aborted.
fn misbehaving_listeners(ports: &Ports) -> Vec<tokio::task::JoinHandle<()>> {
    async fn bind(port: u16) -> tokio::net::TcpListener {
        tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap()
    }
    let (silent, garbage, reset, endless) =
        (ports.silent, ports.garbage, ports.reset, ports.endless);
    vec![
        // Accepts and says nothing.
        tokio::spawn(async move {
            let listener = bind(silent).await;
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        }),
        // Answers a ClientHello with text.
        tokio::spawn(async move {
            let listener = bind(garbage).await;
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let _ =
                        stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\nnot TLS at all").await;
                    let mut sink = [0u8; 1024];
                    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                });
            }
        }),
        // Resets every connection.
        tokio::spawn(async move {
            let listener = bind(reset).await;
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_zero_linger();
                drop(stream);
            }
        }),
        // A handshake message that claims 16 MB and never ends.
        tokio::spawn(async move {
            let listener = bind(endless).await;
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut hello = [0u8; 512];
                    let _ = stream.read(&mut hello).await;
                    let mut record = vec![22, 3, 3, 0x40, 0x00, 11, 0xff, 0xff, 0xff];
                    record.resize(5 + 0x4000, 0x30);
                    loop {
                        if stream.write_all(&record).await.is_err() {
                            break;
                        }
                        record[..5].copy_from_slice(&[22, 3, 3, 0x40, 0x00]);
                        record[5..9].copy_from_slice(&[0x30; 4]);
                    }
                });
            }
        }),
    ]
}

/// A TLS listener of the test's own (rustls), serving `cert` until aborted.
async fn own_listener(
    port: u16,
    cert: &rcgen::Certificate,
    key: &rcgen::KeyPair,
) -> tokio::task::JoinHandle<()> {
    let der = cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(stream).await {
                    let _ = tls.shutdown().await;
                }
            });
        }
    })
}

/// What the fixture serves, by fingerprint.
struct Served {
    expired: String,
    wrong_name: String,
    self_signed: String,
    incomplete: String,
    name_a: String,
    name_b: String,
    legacy: String,
    mail: String,
    own: String,
}

/// A certificate from the platform's builtin CA for `a.test`: PEM of the leaf, of leaf and
/// chain, and its key.
async fn platform_leaf(app: &TestApp) -> (String, String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["a.test".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let (status, request) = call(
        app,
        &app.admin_token,
        "POST",
        "/api/v1/requests",
        Some(json!({"owner": "web", "csr": csr})),
    )
    .await;
    assert_eq!(status, 201, "{request}");
    let id = request["certificate_id"].as_str().unwrap();
    let leaf = app.admin.certificate_pem(id).await.unwrap();
    let chain = app.admin.certificate_pem_chain(id).await.unwrap();
    (leaf, chain, key.serialize_pem())
}

/// The platform CA's OCSP answer for `leaf` (issued by it; `chain` starts with the leaf, then
/// its issuer), asked where the certificate says, written to `dir/stapled.der` for nginx to
/// staple (`ssl_stapling_file`: no responder needed at handshake time). openssl runs off the
/// test's runtime, which serves the responder.
async fn write_ocsp_staple(dir: &std::path::Path, leaf: &str, chain: &str) {
    let issuer = chain
        .split_inclusive("-----END CERTIFICATE-----")
        .filter(|block| block.contains("BEGIN CERTIFICATE"))
        .nth(1)
        .expect("the chain holds the issuing CA after the leaf");
    let issuer = format!("{}\n", issuer.trim_start());
    std::fs::write(dir.join("staple-leaf.pem"), leaf).unwrap();
    std::fs::write(dir.join("staple-issuer.pem"), issuer).unwrap();
    let url = openssl(&["x509", "-in", "staple-leaf.pem", "-noout", "-ocsp_uri"], dir);
    let out = openssl(
        &[
            "ocsp",
            "-issuer",
            "staple-issuer.pem",
            "-cert",
            "staple-leaf.pem",
            "-url",
            url.trim(),
            "-noverify",
            "-respout",
            "stapled.der",
        ],
        dir,
    );
    assert!(out.contains("staple-leaf.pem: good"), "{out}");
}

async fn start_fixture(app: &TestApp, ports: &Ports) -> (Nginx, Served) {
    let pki = TestPki::new();
    let dir = Nginx::dir();
    let d = dir.path().to_path_buf();
    let (expired, expired_key) = expired_leaf(&pki, "expired.test");
    write_pair(&d, "expired", &pem_of(&expired), &expired_key.serialize_pem());
    let (wrong, wrong_key) = pki.leaf(&["other.test"], 30);
    write_pair(&d, "wrong", &pem_of(&wrong), &wrong_key.serialize_pem());
    let (selfish, selfish_key) = self_signed("self.test");
    write_pair(&d, "self", &pem_of(&selfish), &selfish_key.serialize_pem());
    let (leaf, leaf_and_chain, leaf_key) = platform_leaf(app).await;
    write_pair(&d, "incomplete", &leaf, &leaf_key);
    write_pair(&d, "complete", &leaf_and_chain, &leaf_key);
    write_ocsp_staple(&d, &leaf, &leaf_and_chain).await;
    let (a, a_key) = pki.leaf(&["a.test"], 30);
    write_pair(&d, "a", &pem_of(&a), &a_key.serialize_pem());
    let (b, b_key) = pki.leaf(&["b.test"], 30);
    write_pair(&d, "b", &pem_of(&b), &b_key.serialize_pem());
    let (legacy, legacy_key) = pki.leaf(&["legacy.test"], 30);
    write_pair(&d, "legacy", &pem_of(&legacy), &legacy_key.serialize_pem());
    let (mail, mail_key) = pki.leaf(&["mail.test"], 30);
    write_pair(&d, "mail", &pem_of(&mail), &mail_key.serialize_pem());

    let p = d.display();
    let server = |port: u16, name: &str, extra: &str| {
        format!(
            "  server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {p}/{name}.pem; \
             ssl_certificate_key {p}/{name}.key; {extra} return 200; }}\n"
        )
    };
    let mail_server = |port: u16, protocol: &str| {
        format!(
            "  server {{ listen 127.0.0.1:{port}; protocol {protocol}; starttls on; \
             ssl_certificate {p}/mail.pem; ssl_certificate_key {p}/mail.key; }}\n"
        )
    };
    let body = [
        format!(
            "http {{\n  access_log off;\n  client_body_temp_path {p}/tmp/body;\n\
             proxy_temp_path {p}/tmp/proxy;\n  fastcgi_temp_path {p}/tmp/fastcgi;\n\
             uwsgi_temp_path {p}/tmp/uwsgi;\n  scgi_temp_path {p}/tmp/scgi;\n"
        ),
        server(ports.expired, "expired", ""),
        server(ports.wrong_name, "wrong", ""),
        server(ports.self_signed, "self", ""),
        server(ports.incomplete, "incomplete", ""),
        // With the CA's OCSP answer stapled to every handshake.
        server(
            ports.complete,
            "complete",
            &format!("ssl_stapling on; ssl_stapling_file {p}/stapled.der;"),
        ),
        // Two names on one port: a.test is the default (what no SNI gets), b.test by name.
        server(ports.two_names, "a", "server_name a.test;")
            .replace(" ssl;", " ssl default_server;"),
        server(ports.two_names, "b", "server_name b.test;"),
        // TLS 1.0 as well as 1.2 (OpenSSL 3 needs security level 0 for TLS 1.0's suites).
        server(
            ports.legacy,
            "legacy",
            "ssl_protocols TLSv1 TLSv1.2; ssl_ciphers DEFAULT@SECLEVEL=0;",
        ),
        "}\n".into(),
        "mail {\n  auth_http 127.0.0.1:9/auth;\n".into(),
        mail_server(ports.smtp, "smtp"),
        mail_server(ports.imap, "imap"),
        mail_server(ports.pop3, "pop3"),
        "}\n".into(),
    ]
    .concat();
    let listening = [
        ports.expired,
        ports.wrong_name,
        ports.self_signed,
        ports.incomplete,
        ports.complete,
        ports.two_names,
        ports.legacy,
        ports.smtp,
        ports.imap,
        ports.pop3,
    ];
    let nginx = Nginx::start(dir, &body, &listening);
    let served = Served {
        expired: fingerprint(&pem_of(&expired)),
        wrong_name: fingerprint(&pem_of(&wrong)),
        self_signed: fingerprint(&pem_of(&selfish)),
        incomplete: fingerprint(&leaf),
        name_a: fingerprint(&pem_of(&a)),
        name_b: fingerprint(&pem_of(&b)),
        legacy: fingerprint(&pem_of(&legacy)),
        mail: fingerprint(&pem_of(&mail)),
        own: String::new(),
    };
    (nginx, served)
}

fn location<'a>(cert: &'a Certificate, address: &str) -> &'a Location {
    cert.locations.iter().find(|l| l.address == address).unwrap_or_else(|| {
        panic!("{} has no location {address}: {:?}", cert.subject, cert.locations)
    })
}

async fn scan_the_fixture(kind: DbKind) {
    let app = TestApp::spawn_with(kind, allow_loopback).await;
    app.admin
        .create_owner(&cmp_api::OwnerCreate { name: "web".into(), email: None, description: None })
        .await
        .unwrap();
    let ports = Ports::new();
    let (nginx, mut served) = start_fixture(&app, &ports).await;
    let faults = misbehaving_listeners(&ports);
    let (own, own_key) = TestPki::new().leaf(&["own.test"], 30);
    served.own = fingerprint(&pem_of(&own));
    let own_listener = own_listener(ports.own, &own, &own_key).await;

    let mut spec = spec(&["127.0.0.1"], &[]);
    spec.ports = ports.scanned();
    spec.sni_names = vec!["a.test".into(), "b.test".into()];
    spec.probe_legacy_tls = true;
    let scan = app
        .admin
        .create_scan(&ScanCreate { owner: Some("web".into()), ..create("loopback", spec) })
        .await
        .unwrap();
    assert_eq!(scan.next_run_at, None, "no schedule: by hand only");

    let run = run_to_end(&app, "loopback").await;
    assert_eq!(run.state, ScanRunState::Completed, "{run:?}");
    let progress = &run.progress;
    assert_eq!(progress.total, Some(16), "{progress:?}");
    assert_eq!(progress.scanned, 16, "{progress:?}");
    assert_eq!(progress.closed, 1, "{progress:?}");
    assert_eq!(progress.served, 11, "{progress:?}");
    // Each misbehaving listener is an error of its own endpoint, and only that.
    for port in [ports.silent, ports.garbage, ports.reset, ports.endless] {
        let prefix = format!("127.0.0.1:{port}: ");
        assert!(
            progress.error_samples.iter().any(|e| e.starts_with(&prefix)),
            "no error for {port}: {:?}",
            progress.error_samples
        );
    }
    assert_eq!(progress.errors, 4, "{:?}", progress.error_samples);
    assert_eq!(progress.certificates, 9, "{progress:?}");

    let get = |fp: &str| {
        let client = app.admin.clone();
        let fp = fp.to_string();
        async move { client.certificate(&fp).await.unwrap() }
    };
    let at = |port: u16, sni: Option<&str>| match sni {
        Some(sni) => format!("127.0.0.1:{port}#{sni}"),
        None => format!("127.0.0.1:{port}"),
    };

    let expired = get(&served.expired).await;
    assert_eq!(expired.source, "discovery");
    assert_eq!(expired.owner.as_ref().map(|o| o.name.as_str()), Some("web"));
    assert!(expired.findings.contains(&Finding::Expired), "{:?}", expired.findings);
    assert!(expired.findings.contains(&Finding::UntrustedChain), "{:?}", expired.findings);
    assert_eq!(location(&expired, &at(ports.expired, None)).gone_at, None);

    let wrong = get(&served.wrong_name).await;
    let named = location(&wrong, &at(ports.wrong_name, Some("a.test")));
    assert!(named.findings.contains(&Finding::NameMismatch), "{named:?}");
    assert_eq!(named.endpoint.as_ref().unwrap().name_matches, Some(false));
    let unnamed = location(&wrong, &at(ports.wrong_name, None));
    assert_eq!(unnamed.endpoint.as_ref().unwrap().name_matches, None, "no SNI, no name check");
    assert!(wrong.findings.contains(&Finding::NameMismatch));

    let selfish = get(&served.self_signed).await;
    for f in [Finding::SelfSignedLeaf, Finding::UntrustedChain] {
        assert!(selfish.findings.contains(&f), "{:?}", selfish.findings);
    }

    // The platform's own leaf: sent alone, its chain is incomplete; with its chain, trusted.
    let platform = get(&served.incomplete).await;
    let alone = location(&platform, &at(ports.incomplete, Some("a.test")));
    let facts = alone.endpoint.as_ref().unwrap();
    assert_eq!((facts.chain, facts.chain_length), (ChainTrust::Incomplete, 1), "{alone:?}");
    assert!(alone.findings.contains(&Finding::IncompleteChain));
    let whole = location(&platform, &at(ports.complete, Some("a.test")));
    let facts = whole.endpoint.as_ref().unwrap();
    assert_eq!(facts.chain, ChainTrust::Trusted, "{whole:?}");
    assert!(facts.chain_length >= 2);
    assert_eq!(facts.name_matches, Some(true));
    assert!(whole.findings.is_empty(), "{whole:?}");
    assert_eq!(facts.protocol, "tls");
    assert!(facts.tls_version.starts_with("TLSv1."), "{facts:?}");
    assert!(!facts.cipher_suite.is_empty());
    assert_eq!(facts.alpn.as_deref(), Some("http/1.1"), "nginx offers http/1.1 on ssl listeners");
    assert!(facts.ocsp_stapled, "{whole:?}");
    let unstapled = alone.endpoint.as_ref().unwrap();
    assert!(!unstapled.ocsp_stapled, "{alone:?}");
    // The certificate carries the findings of the endpoints that serve it.
    assert!(platform.findings.contains(&Finding::IncompleteChain));

    // Two names on one port.
    let a = get(&served.name_a).await;
    location(&a, &at(ports.two_names, Some("a.test")));
    location(&a, &at(ports.two_names, None));
    let b = get(&served.name_b).await;
    location(&b, &at(ports.two_names, Some("b.test")));
    assert!(
        b.locations.iter().all(|l| l.address != at(ports.two_names, None)),
        "without SNI nginx serves its default server"
    );

    let legacy = get(&served.legacy).await;
    assert!(legacy.findings.contains(&Finding::LegacyTls), "{:?}", legacy.findings);
    let facts = location(&legacy, &at(ports.legacy, None)).endpoint.clone().unwrap();
    assert_eq!(facts.legacy_versions, ["TLSv1.0"]);
    let modern = location(&platform, &at(ports.complete, None)).endpoint.clone().unwrap();
    assert!(modern.legacy_versions.is_empty(), "nginx's default protocols are 1.2 and 1.3");

    let mail = get(&served.mail).await;
    for (port, protocol) in [(ports.smtp, "smtp"), (ports.imap, "imap"), (ports.pop3, "pop3")] {
        let facts = location(&mail, &at(port, None)).endpoint.clone().unwrap();
        assert_eq!(facts.protocol, protocol);
    }

    let own_cert = get(&served.own).await;
    assert_eq!(location(&own_cert, &at(ports.own, None)).gone_at, None);

    // The second run: one listener serves another certificate, the harness's is gone.
    let (renewed, renewed_key) = self_signed("self.test");
    write_pair(nginx.path(), "self", &pem_of(&renewed), &renewed_key.serialize_pem());
    nginx.reload();
    own_listener.abort();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = run_to_end(&app, "loopback").await;
    assert_eq!(again.state, ScanRunState::Completed, "{again:?}");
    assert_eq!(again.progress.closed, 2, "{:?}", again.progress);
    assert_eq!(again.progress.created, 1, "only the new self-signed certificate is new");

    let old = get(&served.self_signed).await;
    let gone = location(&old, &at(ports.self_signed, None));
    assert!(gone.gone_at.is_some(), "{gone:?}");
    assert!(
        !old.findings.contains(&Finding::UntrustedChain),
        "no endpoint serves it now: its endpoint findings go, its own stay: {:?}",
        old.findings
    );
    assert!(old.findings.contains(&Finding::SelfSignedLeaf));
    let new = get(&fingerprint(&pem_of(&renewed))).await;
    assert_eq!(location(&new, &at(ports.self_signed, None)).gone_at, None);
    let own_cert = get(&served.own).await;
    assert!(location(&own_cert, &at(ports.own, None)).gone_at.is_some());
    let unchanged = get(&served.expired).await;
    assert_eq!(location(&unchanged, &at(ports.expired, None)).gone_at, None);

    let runs = app.admin.scan_runs("loopback", 10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].id, again.id, "newest first");
    let (status, events) = call(
        &app,
        &app.admin_token,
        "GET",
        "/api/v1/audit?action=certificate.location_gone&limit=50",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(events["items"].as_array().unwrap().len() >= 2 + 3, "{events}");
    assert!(app.admin.verify_audit().await.unwrap().intact);

    for fault in faults {
        fault.abort();
    }
    drop(nginx);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_finds_what_each_endpoint_serves_and_what_is_gone() {
    for kind in DbKind::ALL {
        scan_the_fixture(kind).await;
    }
}

async fn refused(app: &TestApp, body: serde_json::Value) -> (u16, Vec<ProblemItem>, String) {
    let (status, problem) = call(app, &app.admin_token, "POST", "/api/v1/scans", Some(body)).await;
    let items = serde_json::from_value(problem["errors"].clone()).unwrap_or_default();
    (status, items, problem["detail"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn bad_scans_are_refused_by_name_and_nothing_is_stored() {
    for kind in DbKind::ALL {
        let app = TestApp::spawn_with(kind, allow_loopback).await;
        let before = app.counts().await;
        let base = |targets: serde_json::Value, ports: &str| json!({"name": "bad", "spec": {"targets": targets, "ports": ports}});
        let (status, items, _) =
            refused(&app, base(json!(["127.0.0.1", "192.0.2.7"]), "443")).await;
        assert_eq!(status, 422);
        assert_eq!(items[0].pointer, "spec/targets/1");
        assert!(items[0].detail.contains("outside the ranges allowed"), "{items:?}");

        let (status, items, _) = refused(&app, base(json!(["127.0.0.0/8"]), "443")).await;
        assert_eq!(status, 422, "a /8 is larger than the largest range allowed");
        assert!(items[0].detail.contains("16777216"), "{items:?}");

        let (status, items, _) = refused(&app, base(json!(["127.0.0.1"]), "443,90000")).await;
        assert_eq!((status, items[0].pointer.as_str()), (422, "spec/ports"));
        assert!(items[0].detail.contains("90000"), "{items:?}");

        let (status, items, _) = refused(&app, base(json!(["127.0.0.1"]), "10-2")).await;
        assert_eq!((status, items[0].pointer.as_str()), (422, "spec/ports"));

        let (status, items, _) = refused(&app, base(json!([]), "443")).await;
        assert_eq!((status, items[0].pointer.as_str()), (422, "spec/targets"));

        let (status, items, detail) =
            refused(&app, base(json!(["not a host!", "10.1.2.3/24"]), "443")).await;
        assert_eq!(status, 422);
        assert_eq!(items.len(), 2, "every refused entry is named: {items:?}");
        assert!(detail.contains("nothing was stored"), "{detail}");

        let mut body = base(json!(["127.0.0.1"]), "443");
        body["spec"]["concurrency"] = json!(0);
        let (status, items, _) = refused(&app, body).await;
        assert_eq!((status, items[0].pointer.as_str()), (422, "spec/concurrency"));

        let mut body = base(json!(["127.0.0.1"]), "443");
        body["cron"] = json!("every night");
        let (status, _, detail) = refused(&app, body).await;
        assert_eq!(status, 400, "{detail}");
        assert!(detail.contains("cron"), "{detail}");

        let mut body = base(json!(["127.0.0.1"]), "443");
        body["spec"]["unknown"] = json!(1);
        let (status, _, _) = refused(&app, body).await;
        assert_eq!(status, 400, "unknown keys are refused");

        assert!(app.admin.scans().await.unwrap().is_empty(), "nothing was stored");
        assert_eq!(app.counts().await, before, "nor audited");

        // Unknown scans, runs of none, and who may scan.
        let (status, _) =
            call(&app, &app.admin_token, "POST", "/api/v1/scans/nope/runs", None).await;
        assert_eq!(status, 404);
        app.admin.create_scan(&create("ok", spec(&["127.0.0.1"], &[free_port()]))).await.unwrap();
        let (status, problem) =
            call(&app, &app.admin_token, "POST", "/api/v1/scans/ok/cancel", None).await;
        assert_eq!(status, 409, "{problem}");
        let team = cmp_api::OwnerCreate { name: "team".into(), email: None, description: None };
        app.admin.create_owner(&team).await.unwrap();
        let developer = app.token(Role::Developer, &["team"]).await;
        let (status, _) = call(&app, &developer, "POST", "/api/v1/scans/ok/runs", None).await;
        assert_eq!(status, 403);
        let security = app.token(Role::Security, &[]).await;
        let (status, _) = call(&app, &security, "GET", "/api/v1/scans", None).await;
        assert_eq!(status, 200);
        assert!(app.admin.scan_runs("ok", 10).await.unwrap().is_empty());
        app.stop().await;
    }
}

#[tokio::test]
async fn a_run_can_be_cancelled_and_runs_one_at_a_time() {
    for kind in DbKind::ALL {
        let app = TestApp::spawn_with(kind, allow_loopback).await;
        // Silent listeners on a few ports: each endpoint waits out a long handshake timeout.
        let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
        let mut held = Vec::new();
        for port in &ports {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", *port)).await.unwrap();
            held.push(tokio::spawn(async move {
                let mut streams = Vec::new();
                while let Ok((s, _)) = listener.accept().await {
                    streams.push(s);
                }
            }));
        }
        let mut slow = spec(&["127.0.0.1"], &ports);
        slow.handshake_timeout_ms = 60_000;
        app.admin.create_scan(&create("slow", slow)).await.unwrap();
        let run = app.admin.run_scan("slow").await.unwrap();
        let (status, problem) =
            call(&app, &app.admin_token, "POST", "/api/v1/scans/slow/runs", None).await;
        assert_eq!(status, 409, "one run per scan at a time: {problem}");
        let (status, problem) =
            call(&app, &app.admin_token, "DELETE", "/api/v1/scans/slow", None).await;
        assert_eq!(status, 409, "a running scan is not deleted: {problem}");

        let cancelling = app.admin.cancel_scan("slow").await.unwrap();
        assert!(cancelling.cancel_requested);
        let mut ended = None;
        for _ in 0..100 {
            let now = app.admin.scan_run("slow", &run.id).await.unwrap();
            if now.state != ScanRunState::Running {
                ended = Some(now);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let ended = ended.expect("the run stops within 10 s of its cancellation");
        assert_eq!(ended.state, ScanRunState::Cancelled);
        assert!(ended.finished_at.is_some());
        app.admin.delete_scan("slow").await.unwrap();
        assert!(app.admin.scans().await.unwrap().is_empty());
        for task in held {
            task.abort();
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn the_schedule_starts_due_scans_once_and_closes_dead_runs() {
    for kind in DbKind::ALL {
        let app = TestApp::spawn_with(kind, allow_loopback).await;
        let scan = app
            .admin
            .create_scan(&ScanCreate {
                interval_secs: Some(3600),
                ..create("hourly", spec(&["127.0.0.1"], &[free_port()]))
            })
            .await
            .unwrap();
        let next = scan.next_run_at.expect("a schedule sets the next run").unix_timestamp();
        let clock = TestClock::at(next - 10);
        let state = app.issuer_state(clock.clone()).await;
        state.discovery.scheduler_pass().await.unwrap();
        assert!(app.admin.scan_runs("hourly", 10).await.unwrap().is_empty(), "not due yet");

        clock.set(next + 5);
        state.discovery.scheduler_pass().await.unwrap();
        state.discovery.scheduler_pass().await.unwrap();
        let runs = app.admin.scan_runs("hourly", 10).await.unwrap();
        assert_eq!(runs.len(), 1, "due once, started once: {runs:?}");
        assert_eq!(runs[0].trigger, "schedule");
        let moved = app.admin.scan("hourly").await.unwrap().next_run_at.unwrap();
        assert_eq!(moved.unix_timestamp(), next + 5 + 3600);

        // A cron schedule, and turning it off.
        let patched = app
            .admin
            .update_scan(
                "hourly",
                &ScanPatch {
                    interval_secs: Some(None),
                    cron: Some(Some("0 3 * * *".into())),
                    ..ScanPatch::default()
                },
            )
            .await
            .unwrap();
        let at = patched.next_run_at.unwrap();
        assert_eq!((at.hour(), at.minute()), (3, 0), "{at}");
        let off = app
            .admin
            .update_scan("hourly", &ScanPatch { enabled: Some(false), ..ScanPatch::default() })
            .await
            .unwrap();
        assert_eq!(off.next_run_at, None);

        // A run whose process died: started (as a crashed replica did) and never heard of
        // again. Wait for the scheduled run to end first: one run per scan at a time.
        for _ in 0..100 {
            if app.admin.scan_runs("hourly", 1).await.unwrap()[0].state != ScanRunState::Running {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let started = time::OffsetDateTime::now_utc().unix_timestamp();
        let ctx =
            AuditContext { actor: "test".into(), request_id: None, now_us: started * 1_000_000 };
        let orphan = app.store.start_scan_run(&ctx, &scan.id, RunTrigger::Manual).await.unwrap();
        let orphan = orphan.unwrap();
        clock.set(started + 30);
        state.discovery.scheduler_pass().await.unwrap();
        let alive = app.admin.scan_run("hourly", &orphan.id).await.unwrap();
        assert_eq!(alive.state, ScanRunState::Running, "30 s without a heartbeat is not dead yet");
        clock.set(started + 61);
        state.discovery.scheduler_pass().await.unwrap();
        let closed = app.admin.scan_run("hourly", &orphan.id).await.unwrap();
        assert_eq!(closed.state, ScanRunState::Interrupted, "{closed:?}");
        assert!(closed.detail.unwrap().contains("stopped"));
        app.stop().await;
    }
}
