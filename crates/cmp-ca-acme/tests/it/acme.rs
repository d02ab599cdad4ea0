//! The ACME adapter against a real Pebble: one certificate per request id however often it is
//! asked, one journaled order, revocation through ACME with the ledger keeping the reason.

use std::sync::Arc;

use cmp_acme::{AcmeClient, AcmeSettings, Http01Responder, SolverConfig, Solvers};
use cmp_ca::{
    CaAdapter, CaError, CaLedger, MemoryLedger, Profile, RevocationReason, SignRequest, Usage,
};
use cmp_ca_acme::{AcmeCa, MemoryJournal, OrderJournal};
use cmp_testkit::pebble::{Pebble, PebbleOptions};

struct Clock;

impl cmp_domain::Clock for Clock {
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }
}

fn request(id: &str, names: &[&str]) -> SignRequest {
    let pem = cmp_testkit::openssl::csr_pem_for_names(names);
    SignRequest {
        request_id: id.into(),
        csr_der: pem::parse(pem).unwrap().into_contents(),
        profile: Profile {
            common_name: None,
            dns_names: names.iter().map(|n| n.to_string()).collect(),
            ip_addresses: Vec::new(),
            usages: vec![Usage::ServerAuth],
            validity_secs: 90 * 86_400,
        },
        replaces: None,
        acme_solver: None,
    }
}

#[tokio::test]
async fn one_certificate_per_request_and_revocation_through_acme() {
    let pebble = Pebble::start(PebbleOptions::default()).await;
    let responder = Arc::new(Http01Responder::default());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", pebble.http_port)).await.unwrap();
    tokio::spawn(responder.clone().serve(listener));
    let settings = AcmeSettings {
        directory_url: pebble.directory.clone(),
        contact_email: None,
        ca_bundle: Some(pebble.tls_pem.clone()),
        profile: None,
        order_timeout_secs: 20,
        send_not_after: true,
    };
    let client = Arc::new(AcmeClient::register(&settings, None, Arc::new(Clock)).await.unwrap().0);
    let solvers =
        Solvers::new(&[SolverConfig::Http01 { id: None, names: Vec::new() }], Some(&responder));
    let (ledger, journal) = (Arc::new(MemoryLedger::default()), Arc::new(MemoryJournal::default()));
    let ca = AcmeCa::new(
        "acme-1",
        client,
        Arc::new(solvers.unwrap()),
        ledger.clone(),
        journal.clone(),
        Arc::new(Clock),
    );

    let asked = request("req-1", &["one.test"]);
    let first = ca.create_certificate(&asked).await.unwrap();
    let again = ca.create_certificate(&asked).await.unwrap();
    assert_eq!(first.serial, again.serial, "a retried request gets the same certificate");
    assert_eq!(first.chain_der, again.chain_der);
    assert!(!first.chain_der.is_empty(), "the chain comes with the certificate");
    let order = journal.find("acme-1", "req-1").await.unwrap().expect("the order was journaled");
    assert!(order.starts_with("https://127.0.0.1"));

    // A CSR naming something else is refused before any order is placed.
    let mut other = request("req-2", &["two.test"]);
    other.profile.dns_names = vec!["three.test".into()];
    assert!(matches!(ca.create_certificate(&other).await, Err(CaError::InvalidCsr(_))));
    assert_eq!(journal.find("acme-1", "req-2").await.unwrap(), None);

    ca.revoke_certificate(&first.serial, RevocationReason::KeyCompromise).await.unwrap();
    let entry = ledger.find_by_serial("acme-1", &first.serial).await.unwrap().unwrap();
    assert_eq!(entry.revocation_reason, Some(RevocationReason::KeyCompromise));
    assert_eq!(pebble.cert_status(&first.serial).await["Status"], "Revoked");
    let twice = ca.revoke_certificate(&first.serial, RevocationReason::KeyCompromise).await;
    assert!(matches!(twice, Err(CaError::AlreadyRevoked(_))), "{twice:?}");
    let unknown = ca.revoke_certificate("0badc0de", RevocationReason::Unspecified).await;
    assert!(matches!(unknown, Err(CaError::UnknownSerial(_))), "{unknown:?}");
}
