//! Orders from placement to chain: http-01, dns-01, wildcards, EAB, revocation, failures,
//! nonce rejection and resuming after a restart.

use std::sync::Arc;

use cmp_acme::{AcmeClient, AcmeError, Eab, OrderStatus, ProblemKind, Solvers};
use cmp_testkit::openssl::verify_chain;
use cmp_testkit::pebble::{EAB_HMAC, EAB_KID, Pebble, PebbleOptions};

use super::*;

/// The leaf's serial (lowercase hex) and SAN names, as x509-parser reads them.
fn leaf_facts(chain_pem: &str) -> (String, Vec<String>) {
    let der = pem::parse_many(chain_pem).unwrap().remove(0).into_contents();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let names = cert
        .subject_alternative_name()
        .unwrap()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => d.to_string(),
                    other => format!("{other:?}"),
                })
                .collect()
        })
        .unwrap_or_default();
    (cert.raw_serial_as_string().replace(':', ""), names)
}

fn leaf_der(chain_pem: &str) -> Vec<u8> {
    pem::parse_many(chain_pem).unwrap().remove(0).into_contents()
}

#[tokio::test]
async fn http01_issues_a_chain_that_verifies_against_pebbles_root() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let responder = serve_responder(&pebble).await;
    let client = register(&pebble).await;
    let names = ["www.shop.test".to_string(), "shop.test".to_string()];
    let mut order = client.new_order(&names, None).await.unwrap();
    let chain = client
        .complete(
            &mut order,
            &http_solvers(&responder),
            None,
            &csr_der(&["www.shop.test", "shop.test"]),
        )
        .await
        .unwrap();
    verify_chain(&chain, &pebble.root_pem().await).unwrap();
    let (_, mut sans) = leaf_facts(&chain);
    sans.sort();
    assert_eq!(sans, ["shop.test", "www.shop.test"]);
    // The account is reused: restoring it from its credentials needs no new registration.
    let (_, credentials) = AcmeClient::register(&settings(&pebble), None, clock()).await.unwrap();
    let restored = AcmeClient::restore(&settings(&pebble), &credentials, clock()).await.unwrap();
    assert!(restored.account_url().starts_with("https://127.0.0.1"));
}

#[tokio::test]
async fn dns01_proves_a_wildcard_and_its_base_name_through_the_webhook_provider() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let client = register(&pebble).await;
    let solvers = Solvers::new(&[dns_solver(&pebble, &[".corp.test", "corp.test"])], None).unwrap();
    let names = ["*.corp.test".to_string(), "corp.test".to_string()];
    let mut order = client.new_order(&names, None).await.unwrap();
    let chain = client
        .complete(&mut order, &solvers, None, &csr_der(&["*.corp.test", "corp.test"]))
        .await
        .unwrap();
    verify_chain(&chain, &pebble.root_pem().await).unwrap();
    let (_, mut sans) = leaf_facts(&chain);
    sans.sort();
    assert_eq!(sans, ["*.corp.test", "corp.test"]);
    // The records were taken down: challtestsrv no longer answers the TXT query.
    let gone = cmp_acme::Propagation { nameservers: vec![pebble.dns], timeout_secs: 1 };
    assert!(gone.wait_for("_acme-challenge.corp.test.", "anything").await.is_err());
}

#[tokio::test]
async fn a_wildcard_without_a_dns_solver_is_refused_before_anything_is_ordered() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let responder = serve_responder(&pebble).await;
    let client = register(&pebble).await;
    let names = ["*.web.test".to_string()];
    let mut order = client.new_order(&names, None).await.unwrap();
    let e = client
        .complete(&mut order, &http_solvers(&responder), None, &csr_der(&["*.web.test"]))
        .await
        .unwrap_err();
    assert!(matches!(&e, AcmeError::Config(m) if m.contains("a wildcard needs dns-01")), "{e}");
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn eab_is_required_by_such_a_ca_and_accepted_with_the_right_key() {
    let pebble = Pebble::start(PebbleOptions { eab: true, ..Default::default() }).await;
    let e = AcmeClient::register(&settings(&pebble), None, clock()).await.unwrap_err();
    assert!(
        matches!(&e, AcmeError::Problem(p) if p.kind == ProblemKind::ExternalAccountRequired),
        "{e}"
    );
    let wrong = Eab { key_id: EAB_KID.into(), hmac_key: "d3Jvbmc".into() };
    let e = AcmeClient::register(&settings(&pebble), Some(&wrong), clock()).await.unwrap_err();
    assert!(matches!(&e, AcmeError::Problem(_)), "{e}");
    assert!(!e.to_string().contains("d3Jvbmc"), "the HMAC key leaked: {e}");
    let eab = Eab { key_id: EAB_KID.into(), hmac_key: EAB_HMAC.into() };
    let (client, _) = AcmeClient::register(&settings(&pebble), Some(&eab), clock()).await.unwrap();
    let responder = serve_responder(&pebble).await;
    let names = ["eab.test".to_string()];
    let mut order = client.new_order(&names, None).await.unwrap();
    let chain = client
        .complete(&mut order, &http_solvers(&responder), None, &csr_der(&["eab.test"]))
        .await
        .unwrap();
    verify_chain(&chain, &pebble.root_pem().await).unwrap();
}

#[tokio::test]
async fn revocation_shows_in_pebbles_status_with_the_reason() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let responder = serve_responder(&pebble).await;
    let client = register(&pebble).await;
    let names = ["revoke.test".to_string()];
    let mut order = client.new_order(&names, None).await.unwrap();
    let chain = client
        .complete(&mut order, &http_solvers(&responder), None, &csr_der(&["revoke.test"]))
        .await
        .unwrap();
    let (serial, _) = leaf_facts(&chain);
    assert_eq!(pebble.cert_status(&serial).await["Status"], "Valid");
    client.revoke(&leaf_der(&chain), 4).await.unwrap();
    let status = pebble.cert_status(&serial).await;
    assert_eq!(status["Status"], "Revoked", "{status}");
    assert_eq!(status["Reason"], 4, "{status}");
    // Twice is the CA's clear "already revoked", not a success.
    let e = client.revoke(&leaf_der(&chain), 4).await.unwrap_err();
    assert!(matches!(&e, AcmeError::Problem(p) if p.r#type == "alreadyRevoked"), "{e}");
}

#[tokio::test]
async fn a_wrong_http01_answer_fails_the_order_with_the_cas_reason_and_takes_nothing_down_twice() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    // What answers on the validation port is not CMP's responder: every token gets a wrong
    // key authorization.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", pebble.http_port)).await.unwrap();
    let wrong = axum::Router::new().fallback(|| async { "not-the-key-authorization" });
    tokio::spawn(async move { axum::serve(listener, wrong).await });
    let responder = Arc::new(cmp_acme::Http01Responder::default());
    let client = register(&pebble).await;
    let names = ["wrong.test".to_string()];
    let mut order = client.new_order(&names, None).await.unwrap();
    let e = client
        .complete(&mut order, &http_solvers(&responder), None, &csr_der(&["wrong.test"]))
        .await
        .unwrap_err();
    let AcmeError::ChallengeFailed { challenge, problem } = &e else { panic!("{e}") };
    assert_eq!(challenge, "http-01 for wrong.test");
    assert_eq!(problem.kind, ProblemKind::Unauthorized, "{e}");
    assert!(!e.is_retryable());
    assert_eq!(order.state().status, OrderStatus::Invalid);
}

#[tokio::test]
async fn orders_complete_while_pebble_rejects_half_the_nonces() {
    let pebble =
        Pebble::start(PebbleOptions { nonce_reject_percent: 50, ..Default::default() }).await;
    let responder = serve_responder(&pebble).await;
    let client = register(&pebble).await;
    for n in 0..3 {
        let name = format!("nonce{n}.test");
        let mut order = client.new_order(std::slice::from_ref(&name), None).await.unwrap();
        let chain = client
            .complete(&mut order, &http_solvers(&responder), None, &csr_der(&[&name]))
            .await
            .unwrap();
        verify_chain(&chain, &pebble.root_pem().await).unwrap();
    }
}

#[tokio::test]
async fn an_order_placed_before_a_restart_is_resumed_by_url_and_yields_one_certificate() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let responder = serve_responder(&pebble).await;
    let (first, credentials) =
        AcmeClient::register(&settings(&pebble), None, clock()).await.unwrap();
    let names = ["resume.test".to_string()];
    let url = first.new_order(&names, None).await.unwrap().url().to_string();
    drop(first); // the process "dies" with the order pending
    let second = AcmeClient::restore(&settings(&pebble), &credentials, clock()).await.unwrap();
    let mut order = second.resume_order(&url).await.unwrap();
    assert_eq!(order.state().status, OrderStatus::Pending);
    let csr = csr_der(&["resume.test"]);
    let chain = second.complete(&mut order, &http_solvers(&responder), None, &csr).await.unwrap();
    // Resumed again after it was issued: the same certificate, no new order.
    let mut again = second.resume_order(&url).await.unwrap();
    assert_eq!(again.state().status, OrderStatus::Valid);
    let same = second.complete(&mut again, &http_solvers(&responder), None, &csr).await.unwrap();
    assert_eq!(leaf_facts(&same).0, leaf_facts(&chain).0);
}

#[tokio::test]
async fn a_ca_that_is_down_is_a_retryable_error_and_pebble_has_no_ari() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let responder = serve_responder(&pebble).await;
    let client = register(&pebble).await;
    let facts = client.probe().await.unwrap();
    assert!(!facts.renewal_info, "Pebble 2.4 offers no renewalInfo");
    let names = ["ari.test".to_string()];
    let mut order = client.new_order(&names, None).await.unwrap();
    let chain = client
        .complete(&mut order, &http_solvers(&responder), None, &csr_der(&["ari.test"]))
        .await
        .unwrap();
    assert_eq!(client.renewal_window(&leaf_der(&chain)).await.unwrap(), None);
    let mut down = settings(&pebble);
    down.directory_url = format!("https://127.0.0.1:{}/dir", cmp_testkit::free_port());
    let e = AcmeClient::register(&down, None, clock()).await.unwrap_err();
    assert!(matches!(e, AcmeError::Unreachable(_)), "{e}");
    assert!(e.is_retryable());
}

/// The lifetime asked reaches the CA: `notAfter` in a newOrder signed with the account key
/// (also after a restore from the stored credentials), which Pebble keeps to; without it,
/// Pebble's default of five years.
#[tokio::test]
async fn an_order_asks_for_its_end_date_and_pebble_keeps_to_it() {
    let pebble =
        Pebble::start(PebbleOptions { nonce_reject_percent: 10, ..Default::default() }).await;
    let (_, credentials) = AcmeClient::register(&settings(&pebble), None, clock()).await.unwrap();
    let client = AcmeClient::restore(&settings(&pebble), &credentials, clock()).await.unwrap();
    assert!(client.sends_not_after());
    let solvers = Solvers::new(&[dns_solver(&pebble, &[])], None).unwrap();
    let end_of = |chain: &str| {
        let der = leaf_der(chain);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        (cert.validity().not_before.timestamp(), cert.validity().not_after.timestamp())
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let asked = now + 30 * 86_400;
    let names = ["until.shop.test".to_string()];
    let mut order = client.new_order_until(&names, None, Some(asked)).await.unwrap();
    let chain =
        client.complete(&mut order, &solvers, None, &csr_der(&["until.shop.test"])).await.unwrap();
    verify_chain(&chain, &pebble.root_pem().await).unwrap();
    assert_eq!(end_of(&chain).1, asked, "the certificate ends when asked");

    let mut lax = settings(&pebble);
    lax.send_not_after = false;
    let client = AcmeClient::restore(&lax, &credentials, clock()).await.unwrap();
    assert!(!client.sends_not_after());
    let names = ["lax.shop.test".to_string()];
    let mut order = client.new_order_until(&names, None, Some(asked)).await.unwrap();
    let chain =
        client.complete(&mut order, &solvers, None, &csr_der(&["lax.shop.test"])).await.unwrap();
    let (not_before, not_after) = end_of(&chain);
    assert!(not_after - not_before > 1_000 * 86_400, "Pebble's default without notAfter");
}
