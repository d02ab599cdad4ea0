//! cmp-acme against a real Pebble and pebble-challtestsrv.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly
#![allow(clippy::disallowed_methods)] // Pebble keeps the real time: so do the tests

mod orders;
mod rfc2136;

use std::sync::Arc;

use cmp_acme::{
    AcmeClient, AcmeSettings, DnsProviderConfig, Http01Responder, Propagation, SolverConfig,
    Solvers,
};
use cmp_testkit::pebble::Pebble;

/// The system clock (Pebble keeps real time).
struct SystemClock;

impl cmp_domain::Clock for SystemClock {
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }
}

fn clock() -> Arc<dyn cmp_domain::Clock> {
    Arc::new(SystemClock)
}

/// Settings that reach `pebble`, trusting its listener's certificate.
fn settings(pebble: &Pebble) -> AcmeSettings {
    AcmeSettings {
        directory_url: pebble.directory.clone(),
        contact_email: Some("pki-team@example.com".into()),
        ca_bundle: Some(pebble.tls_pem.clone()),
        profile: None,
        order_timeout_secs: 30,
        send_not_after: true,
    }
}

/// CMP's http-01 responder, served where Pebble validates.
async fn serve_responder(pebble: &Pebble) -> Arc<Http01Responder> {
    let responder = Arc::new(Http01Responder::default());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", pebble.http_port)).await.unwrap();
    tokio::spawn(responder.clone().serve(listener));
    responder
}

/// dns-01 through challtestsrv's API as a webhook provider, checked at its DNS server.
fn dns_solver(pebble: &Pebble, names: &[&str]) -> SolverConfig {
    SolverConfig::Dns01 {
        id: None,
        names: names.iter().map(|n| n.to_string()).collect(),
        provider: DnsProviderConfig::Webhook {
            present_url: pebble.challtestsrv_url("set-txt"),
            cleanup_url: pebble.challtestsrv_url("clear-txt"),
            secret: None,
        },
        propagation: Propagation { nameservers: vec![pebble.dns], timeout_secs: 10 },
    }
}

fn http_solvers(responder: &Arc<Http01Responder>) -> Solvers {
    Solvers::new(&[SolverConfig::Http01 { id: None, names: Vec::new() }], Some(responder)).unwrap()
}

async fn register(pebble: &Pebble) -> AcmeClient {
    AcmeClient::register(&settings(pebble), None, clock()).await.unwrap().0
}

fn csr_der(names: &[&str]) -> Vec<u8> {
    let pem = cmp_testkit::openssl::csr_pem_for_names(names);
    pem::parse(pem).unwrap().into_contents()
}
