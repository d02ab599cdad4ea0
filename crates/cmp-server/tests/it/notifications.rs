//! Notifications end to end: rules through the API, evaluation on a clock the test moves
//! (never sleeping), webhooks to a receiver of the test's own whose signatures `openssl dgst`
//! checks, email through a real SMTP relay (aiosmtpd) with STARTTLS and a login, failures
//! retried with backoff, and the metrics, Grafana dashboard and alert rules.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use cmp_api::{ImportParams, NotificationDelivery};
use cmp_client::ImportBody;
use cmp_server::issuer::scheduler;
use cmp_testkit::DbKind;
use cmp_testkit::smtp::{SmtpOptions, SmtpSink};
use serde_json::{Value, json};

use crate::issuance::call;
use crate::support::{TestApp, TestClock, TestPki};

const DAY: i64 = 86_400;

/// The tests run every pass themselves: the server's own loop waits a day.
fn quiet(config: &mut cmp_server::config::Config) {
    config.notify.interval_secs = DAY as u64;
    config.notify.send_timeout_secs = 2;
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// What a receiver got: each POST's headers and body.
type Posts = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A webhook receiver: records each POST and answers with the status it is set to.
pub(crate) struct Receiver {
    pub(crate) url: String,
    got: Posts,
}

impl Receiver {
    pub(crate) async fn start(status: u16) -> Receiver {
        let got: Posts = Arc::default();
        let answer = Arc::new(AtomicU16::new(status));
        let seen = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (seen, answer) = (seen.clone(), answer.clone());
                async move {
                    seen.lock().unwrap().push((headers, body.to_vec()));
                    StatusCode::from_u16(answer.load(Ordering::SeqCst)).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url: format!("http://{addr}/hook"), got }
    }

    pub(crate) fn bodies(&self) -> Vec<(HeaderMap, Value)> {
        let got = self.got.lock().unwrap();
        got.iter().map(|(h, b)| (h.clone(), serde_json::from_slice(b).unwrap())).collect()
    }

    fn raw(&self) -> Vec<(HeaderMap, Vec<u8>)> {
        self.got.lock().unwrap().clone()
    }
}

/// A listener that accepts and never answers.
async fn silent_listener() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}/hook")
}

/// HMAC-SHA256 of `data` under `key`, by `openssl dgst`: an implementation apart from CMP's.
fn openssl_hmac(key: &str, data: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", key])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().last().unwrap().to_string()
}

/// Checks a webhook's signature as a receiver would; returns its time stamp.
fn check_signature(headers: &HeaderMap, body: &[u8], key: &str) -> i64 {
    let header = headers.get("x-cmp-signature").expect("signed").to_str().unwrap();
    let (t, v1) = header.split_once(",v1=").unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    assert_eq!(v1, openssl_hmac(key, &signed), "the signature checks out");
    t.parse().unwrap()
}

/// Imports a leaf for `name` expiring in `days`, with `owner`; its id.
async fn import(
    app: &TestApp,
    pki: &TestPki,
    name: &str,
    days: i64,
    owner: Option<&str>,
) -> String {
    let (leaf, _) = pki.leaf(&[name], days);
    let params = ImportParams { owner: owner.map(str::to_string), ..Default::default() };
    let imported =
        app.admin.import(ImportBody::Raw(leaf.pem().into_bytes()), &params).await.unwrap();
    imported.certificates[0].id.clone().unwrap()
}

pub(crate) async fn rule(app: &TestApp, body: Value) -> Value {
    let (status, rule) =
        call(app, &app.admin_token, "POST", "/api/v1/notifications/rules", Some(body)).await;
    assert_eq!(status, 201, "{rule}");
    rule
}

async fn deliveries(app: &TestApp, rule: &str) -> Vec<NotificationDelivery> {
    let path = format!("/api/v1/notifications/deliveries?rule={rule}");
    let (status, page) = call(app, &app.admin_token, "GET", &path, None).await;
    assert_eq!(status, 200, "{page}");
    serde_json::from_value(page["items"].clone()).unwrap()
}

/// (subject, level) of a webhook body's notices, sorted.
fn told(body: &Value) -> Vec<(String, i64)> {
    let mut told: Vec<_> = body["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["subject"].as_str().unwrap().to_string(), n["level"].as_i64().unwrap()))
        .collect();
    told.sort();
    told
}

async fn expiry_thresholds(kind: DbKind) {
    let app = TestApp::spawn_with(kind, quiet).await;
    for owner in ["shop", "pay"] {
        call(&app, &app.admin_token, "POST", "/api/v1/owners", Some(json!({"name": owner}))).await;
    }
    let pki = TestPki::new();
    let a = import(&app, &pki, "a.shop.example", 20, Some("shop")).await;
    let b = import(&app, &pki, "b.shop.example", 5, Some("shop")).await;
    import(&app, &pki, "c.shop.example", 100, Some("shop")).await;
    let d = import(&app, &pki, "d.pay.example", 10, Some("pay")).await;
    let hook = Receiver::start(200).await;
    let created = rule(
        &app,
        json!({"name": "expiry", "events": ["certificate_expiring"], "secret": "whsec-test",
               "channel": {"kind": "webhook", "url": hook.url}}),
    )
    .await;
    assert_eq!(created["has_secret"], true);
    assert_eq!(created["thresholds_days"], json!([30, 14, 7, 1]));
    assert!(!created.to_string().contains("whsec-test"), "the secret is never shown");

    let start = now();
    let clock = TestClock::at(start);
    let state = app.issuer_state(clock.clone()).await;
    state.notifier.pass().await;
    // One message per owner: shop's two certificates in one digest, pay's alone.
    let mut got = hook.raw();
    assert_eq!(got.len(), 2, "one message per owner");
    got.sort_by_key(|(_, body)| {
        serde_json::from_slice::<Value>(body).unwrap()["owner"].to_string()
    });
    let bodies: Vec<Value> = got.iter().map(|(_, b)| serde_json::from_slice(b).unwrap()).collect();
    for (headers, body) in &got {
        assert_eq!(check_signature(headers, body, "whsec-test"), start);
    }
    let (pay, shop) = (&bodies[0], &bodies[1]);
    assert_eq!(shop["owner"], "shop", "{shop}");
    assert_eq!(shop["digest"], true);
    let mut want = vec![(a.clone(), 30), (b, 7)];
    want.sort();
    assert_eq!(told(shop), want, "each at the tightest threshold it crossed");
    assert_eq!((pay["owner"].as_str(), told(pay)), (Some("pay"), vec![(d, 14)]));
    assert!(shop["notices"][0]["summary"].as_str().unwrap().contains("expires within"), "{shop}");
    let sent = deliveries(&app, "expiry").await;
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|d| d.state == cmp_domain::DeliveryState::Sent && d.attempts == 1));

    // Nothing new: nothing sent.
    state.notifier.pass().await;
    assert_eq!(hook.raw().len(), 2, "each threshold fires once");
    // Sixteen days on, a.shop has four days left: its 7-day notice, alone.
    clock.set(start + 16 * DAY);
    state.notifier.pass().await;
    state.notifier.pass().await;
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    assert_eq!(told(&bodies[2].1), vec![(a, 7)]);
    assert_eq!(bodies[2].1["digest"], false);
    app.stop().await;
}

#[tokio::test]
async fn expiry_notices_fire_once_per_threshold_in_one_message_per_owner() {
    for kind in DbKind::ALL {
        expiry_thresholds(kind).await;
    }
}

async fn retries(kind: DbKind) {
    let app = TestApp::spawn_with(kind, |c| {
        quiet(c);
        c.notify.send_timeout_secs = 1;
    })
    .await;
    let pki = TestPki::new();
    import(&app, &pki, "soon.example", 3, None).await;
    let broken = Receiver::start(500).await;
    let good = Receiver::start(204).await;
    let hanging = silent_listener().await;
    for (name, url) in [("broken", &broken.url), ("hanging", &hanging), ("good", &good.url)] {
        rule(&app, json!({"name": name, "channel": {"kind": "webhook", "url": url}})).await;
    }
    let start = now();
    let clock = TestClock::at(start);
    let state = app.issuer_state(clock.clone()).await;
    state.notifier.pass().await;
    assert_eq!(good.raw().len(), 1, "a hanging and a failing receiver hold up no other");
    assert_eq!(deliveries(&app, "good").await[0].state, cmp_domain::DeliveryState::Sent);
    let hung = &deliveries(&app, "hanging").await[0];
    assert_eq!(hung.state, cmp_domain::DeliveryState::Pending);
    assert!(hung.last_error.as_deref().unwrap().contains("no answer in time"), "{hung:?}");
    assert!(!hung.last_error.as_deref().unwrap().contains("127.0.0.1"), "no URL in errors");

    // The failing one: retried after 30 s, then doubling, until it is given up.
    let mut waits = Vec::new();
    loop {
        let d = deliveries(&app, "broken").await.remove(0);
        assert!(d.last_error.as_deref().unwrap().contains("500"), "{d:?}");
        let Some(next) = d.next_attempt_at else {
            assert_eq!((d.state, d.attempts), (cmp_domain::DeliveryState::Failed, 8));
            break;
        };
        waits.push(next.unix_timestamp() - clock_now(&clock));
        clock.set(next.unix_timestamp());
        state.notifier.pass().await;
    }
    assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920]);
    let posts = broken.raw();
    assert_eq!(posts.len(), 8, "every attempt reached the receiver");
    let ids: std::collections::HashSet<_> =
        posts.iter().map(|(h, _)| h["x-cmp-delivery"].to_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 1, "one delivery, attempted again");
    assert!(posts.iter().all(|(h, _)| h.get("x-cmp-signature").is_none()), "no key, no signature");
    assert_eq!(good.raw().len(), 1, "a delivery that went is not sent again");
    let (status, failed) =
        call(&app, &app.admin_token, "GET", "/api/v1/notifications/deliveries?state=failed", None)
            .await;
    // The failing receiver's and the silent one's.
    assert_eq!((status, failed["items"].as_array().unwrap().len()), (200, 2), "{failed}");
    app.stop().await;
}

fn clock_now(clock: &TestClock) -> i64 {
    use cmp_domain::Clock;
    clock.now().unix_timestamp()
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_backoff_and_hold_up_no_other() {
    for kind in DbKind::ALL {
        retries(kind).await;
    }
}

async fn email(kind: DbKind) {
    let app = TestApp::spawn_with(kind, quiet).await;
    let ca = cmp_testkit::targets::TestCa::new();
    let leaf = ca.leaf("localhost");
    let relay = SmtpSink::start(SmtpOptions {
        tls: Some((leaf.cert_pem.clone(), leaf.key_pem.clone())),
        login: Some(("cmp".into(), "relay-pass".into())),
        refuse: false,
    });
    let channel = json!({"kind": "email", "smtp_host": "localhost", "smtp_port": relay.port,
        "tls": "starttls", "username": "cmp", "from": "CMP <cmp@example.test>",
        "to": ["sec@example.test"], "ca_pem": ca.ca_pem});
    rule(&app, json!({"name": "mail", "channel": channel, "secret": "relay-pass"})).await;
    let (status, sent) =
        call(&app, &app.admin_token, "POST", "/api/v1/notifications/rules/mail/test", None).await;
    assert_eq!((status, sent["state"].as_str()), (200, Some("sent")), "{sent}");
    let mail = relay.wait_for(1);
    assert_eq!(mail.len(), 1);
    assert!(mail[0].tls && mail[0].authenticated, "STARTTLS, then the login");
    assert_eq!(mail[0].to, ["sec@example.test"]);
    assert!(
        mail[0].data.contains("Subject: [CMP] Test notification of rule mail"),
        "{}",
        mail[0].data
    );

    // A wrong password: refused by the relay, recorded, nothing delivered.
    let patch = json!({"secret": "wrong-pass"});
    let (status, _) =
        call(&app, &app.admin_token, "PATCH", "/api/v1/notifications/rules/mail", Some(patch))
            .await;
    assert_eq!(status, 200);
    let (_, failed) =
        call(&app, &app.admin_token, "POST", "/api/v1/notifications/rules/mail/test", None).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(failed["last_error"].as_str().unwrap().contains("535"), "{failed}");
    assert_eq!(relay.messages().len(), 1);

    // A relay that refuses the recipient.
    let refusing = SmtpSink::start(SmtpOptions { refuse: true, ..Default::default() });
    let channel = json!({"kind": "email", "smtp_host": "127.0.0.1", "smtp_port": refusing.port,
        "tls": "none", "from": "cmp@example.test", "to": ["sec@example.test"]});
    rule(&app, json!({"name": "refused", "channel": channel})).await;
    let (_, refused) =
        call(&app, &app.admin_token, "POST", "/api/v1/notifications/rules/refused/test", None)
            .await;
    assert_eq!(refused["state"], "failed", "{refused}");
    assert!(refused["last_error"].as_str().unwrap().contains("550"), "{refused}");

    // The passwords appear nowhere: rules, deliveries, the audit trail.
    for path in [
        "/api/v1/notifications/rules",
        "/api/v1/notifications/rules/mail",
        "/api/v1/notifications/deliveries",
        "/api/v1/audit?limit=500",
    ] {
        let (_, body) = call(&app, &app.admin_token, "GET", path, None).await;
        let text = body.to_string();
        assert!(!text.contains("relay-pass") && !text.contains("wrong-pass"), "{path}: {text}");
    }
    app.stop().await;
}

#[tokio::test]
async fn email_goes_through_a_real_relay_with_starttls_and_a_login() {
    for kind in DbKind::ALL {
        email(kind).await;
    }
}

async fn overdue(kind: DbKind) {
    let app = TestApp::spawn_with(kind, quiet).await;
    let admin = app.admin_token.clone();
    call(&app, &admin, "POST", "/api/v1/owners", Some(json!({"name": "edge"}))).await;
    let body = json!({"name": "edge-api", "owner": "edge", "dns_names": ["api.edge.example"],
        "validity_days": 1, "renew_before": "12h"});
    let (status, managed) =
        call(&app, &admin, "POST", "/api/v1/managed-certificates", Some(body)).await;
    assert_eq!(status, 201, "{managed}");
    let hook = Receiver::start(200).await;
    rule(
        &app,
        json!({"name": "overdue", "events": ["renewal_overdue"],
               "channel": {"kind": "webhook", "url": hook.url}}),
    )
    .await;
    let not_after = time::OffsetDateTime::parse(
        managed["versions"][0]["not_after"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp();
    let clock = TestClock::at(now());
    let state = app.issuer_state(clock.clone()).await;
    scheduler::tick(&state).await;
    state.notifier.pass().await;
    assert!(hook.raw().is_empty(), "not due: nothing to tell");

    // Renewals now wait for approval: due, the scheduler asks, nobody approves.
    let policy = json!({"require_approval": true});
    let (status, _) = call(&app, &admin, "PUT", "/api/v1/owners/edge/policy", Some(policy)).await;
    assert_eq!(status, 200);
    let due = not_after - 12 * 3_600 + 60;
    clock.set(due);
    scheduler::tick(&state).await;
    state.notifier.pass().await;
    assert!(hook.raw().is_empty(), "due, but not overdue by the margin yet");
    clock.set(due + 3_600 + 60);
    scheduler::tick(&state).await;
    state.notifier.pass().await;
    state.notifier.pass().await;
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 1, "told once: {bodies:?}");
    let notice = &bodies[0].1["notices"][0];
    assert_eq!(notice["event"], "renewal_overdue");
    let summary = notice["summary"].as_str().unwrap();
    assert!(summary.contains("edge-api") && summary.contains("awaiting_approval"), "{summary}");
    app.stop().await;
}

#[tokio::test]
async fn an_overdue_renewal_is_told_when_the_scheduler_says_so_and_not_before() {
    for kind in DbKind::ALL {
        overdue(kind).await;
    }
}

#[tokio::test]
async fn bad_rules_are_refused_by_name_and_nothing_is_stored() {
    for kind in DbKind::ALL {
        let app = TestApp::spawn_with(kind, quiet).await;
        call(&app, &app.admin_token, "POST", "/api/v1/owners", Some(json!({"name": "shop"}))).await;
        let before = app.counts().await;
        let hook = json!({"kind": "webhook", "url": "https://hooks.example.test/x"});
        let mail = |to: Value| json!({"kind": "email", "smtp_host": "smtp.example.test", "from": "cmp@example.test", "to": to});
        let cases = [
            (json!({"name": "r", "events": ["certificate_expired"], "channel": hook}), "events/0"),
            (json!({"name": "r", "channel": mail(json!(["not an address"]))}), "channel/to/0"),
            (json!({"name": "r", "channel": mail(json!([]))}), "channel/to"),
            (
                json!({"name": "r", "channel": {"kind": "webhook", "url": "ftp://x.test/"}}),
                "channel/url",
            ),
            (json!({"name": "r", "thresholds_days": [0], "channel": hook}), "thresholds_days/0"),
            (
                json!({"name": "r", "owner": "shop", "events": ["agent_offline"], "channel": hook}),
                "events/0",
            ),
            (json!({"name": "a b", "channel": hook, "secret": "s3cret"}), "name"),
            (json!({"name": "r", "channel": hook, "secret": ""}), "secret"),
        ];
        for (body, pointer) in cases {
            let (status, problem) = call(
                &app,
                &app.admin_token,
                "POST",
                "/api/v1/notifications/rules",
                Some(body.clone()),
            )
            .await;
            assert_eq!(status, 422, "{body}: {problem}");
            let pointers: Vec<_> = problem["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["pointer"].clone())
                .collect();
            assert!(pointers.contains(&json!(pointer)), "{body}: {problem}");
        }
        let unknown_owner = json!({"name": "r", "owner": "nobody", "channel": hook});
        let (status, _) = call(
            &app,
            &app.admin_token,
            "POST",
            "/api/v1/notifications/rules",
            Some(unknown_owner),
        )
        .await;
        assert_eq!(status, 404);
        let unknown_kind = json!({"name": "r", "channel": {"kind": "pager", "url": "x"}});
        let (status, _) =
            call(&app, &app.admin_token, "POST", "/api/v1/notifications/rules", Some(unknown_kind))
                .await;
        assert!(status == 400 || status == 422, "{status}");
        for (method, path) in [
            ("GET", "/api/v1/notifications/rules/none"),
            ("PATCH", "/api/v1/notifications/rules/none"),
            ("DELETE", "/api/v1/notifications/rules/none"),
            ("POST", "/api/v1/notifications/rules/none/test"),
            ("GET", "/api/v1/notifications/deliveries/none"),
            ("GET", "/api/v1/notifications/deliveries?rule=none"),
        ] {
            let body = (method == "PATCH").then(|| json!({"enabled": false}));
            let (status, _) = call(&app, &app.admin_token, method, path, body).await;
            assert_eq!(status, 404, "{method} {path}");
        }
        let (_, rules) =
            call(&app, &app.admin_token, "GET", "/api/v1/notifications/rules", None).await;
        assert_eq!(rules, json!([]), "nothing stored");
        assert_eq!(app.counts().await, before, "no audit event either");
        // A good rule, then a bad change to it: the rule stays as it was.
        rule(&app, json!({"name": "ok", "channel": hook})).await;
        let (status, _) = call(
            &app,
            &app.admin_token,
            "PATCH",
            "/api/v1/notifications/rules/ok",
            Some(json!({"events": ["nope"], "enabled": false})),
        )
        .await;
        assert_eq!(status, 422);
        let (_, kept) =
            call(&app, &app.admin_token, "GET", "/api/v1/notifications/rules/ok", None).await;
        assert_eq!(kept["enabled"], true, "{kept}");
        app.stop().await;
    }
}

/// Names of the metrics a PromQL expression (or a file of them) reads.
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("cmp_") || t.starts_with("http_request"))
        .map(str::to_string)
        .collect()
}

fn exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn metrics_show_the_inventory_and_the_dashboard_and_alerts_query_only_what_exists() {
    let app = TestApp::spawn_with(DbKind::Sqlite, quiet).await;
    call(&app, &app.admin_token, "POST", "/api/v1/owners", Some(json!({"name": "shop"}))).await;
    let pki = TestPki::new();
    let id = import(&app, &pki, "a.shop.example", 20, Some("shop")).await;
    let cert = app.admin.certificate(&id).await.unwrap();
    let body = json!({"name": "web", "owner": "shop", "dns_names": ["web.shop.example"]});
    let (status, _) =
        call(&app, &app.admin_token, "POST", "/api/v1/managed-certificates", Some(body)).await;
    assert_eq!(status, 201);
    // A notification pass: adapter health comes from there.
    app.issuer_state(TestClock::at(now())).await.notifier.pass().await;
    let metrics = app.counted_metrics().await;
    let series = format!(
        "cmp_certificate_expiration_timestamp_seconds{{id=\"{id}\",common_name=\"a.shop.example\",owner=\"shop\"}} {}",
        cert.not_after.unix_timestamp()
    );
    assert!(metrics.contains(&series), "{metrics}");
    assert!(metrics.contains("cmp_certificates_by_owner{owner=\"shop\",status=\"expiring\"} 1"));
    assert!(metrics.contains("cmp_certificates_by_owner{owner=\"shop\",status=\"valid\"} 1"));
    for name in ["cmp_requests{state=\"issued\"}", "cmp_db_pool_connections{", "cmp_agents{"] {
        assert!(metrics.contains(name), "{name} in {metrics}");
    }

    // Every metric the dashboard and the alert rules query is one /metrics exposes.
    let exposed: std::collections::HashSet<String> = metrics
        .lines()
        .filter_map(|l| match l.strip_prefix("# TYPE ") {
            Some(rest) => rest.split_whitespace().next(),
            None if !l.starts_with('#') => l.split(['{', ' ']).next(),
            None => None,
        })
        .map(str::to_string)
        .collect();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/deploy/grafana/cmp.json")).unwrap(),
    )
    .unwrap();
    let mut queries = Vec::new();
    exprs(&dashboard, &mut queries);
    assert!(queries.len() >= 6, "the dashboard has its panels: {queries:?}");
    let rules = std::fs::read_to_string(format!("{root}/deploy/prometheus/alerts.yml")).unwrap();
    for name in queries.iter().flat_map(|q| metric_names(q)).chain(metric_names(&rules)) {
        assert!(exposed.contains(&name), "{name} is queried but /metrics has no such metric");
    }
    let check = Command::new("promtool")
        .args(["check", "rules", &format!("{root}/deploy/prometheus/alerts.yml")])
        .output()
        .expect("promtool is installed (./scripts/services-up)");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));

    // Per-certificate series switched off: none.
    let mut app = app;
    app.restart(|c| {
        quiet(c);
        c.metrics.per_certificate = false;
    })
    .await;
    let metrics = app.counted_metrics().await;
    assert!(!metrics.contains("cmp_certificate_expiration_timestamp_seconds{"), "{metrics}");
    assert!(metrics.contains("cmp_certificates_by_owner{owner=\"shop\""));
    app.stop().await;
}
