//! dns-01 through RFC 2136 updates signed with TSIG, against a real BIND 9: records appear and
//! disappear, a wrong key is refused, and Pebble (resolving through that BIND) issues.

use cmp_acme::{
    AcmeError, DnsProviderConfig, Propagation, ProviderSecret, SolverConfig, Solvers,
    TsigAlgorithmName,
};
use cmp_testkit::bind::{Bind, KEY_NAME};
use cmp_testkit::openssl::verify_chain;
use cmp_testkit::pebble::{Pebble, PebbleOptions};

use super::*;

fn rfc2136(bind: &Bind, secret: &str) -> DnsProviderConfig {
    DnsProviderConfig::Rfc2136 {
        server: bind.addr,
        zone: bind.zone.clone(),
        key_name: KEY_NAME.into(),
        algorithm: TsigAlgorithmName::HmacSha256,
        secret: Some(ProviderSecret::new(secret)),
        ttl: 60,
    }
}

fn at(bind: &Bind, timeout_secs: u64) -> Propagation {
    Propagation { nameservers: vec![bind.addr], timeout_secs }
}

#[tokio::test]
async fn records_are_added_and_removed_with_the_tsig_key_and_refused_with_a_wrong_one() {
    let bind = Bind::start("dns.test").await;
    let provider = rfc2136(&bind, &bind.secret).provider().unwrap();
    let fqdn = "_acme-challenge.www.dns.test.";
    provider.present(fqdn, "first-value").await.unwrap();
    provider.present(fqdn, "second-value").await.unwrap();
    at(&bind, 5).wait_for(fqdn, "first-value").await.unwrap();
    at(&bind, 5).wait_for(fqdn, "second-value").await.unwrap();
    provider.cleanup(fqdn, "first-value").await.unwrap();
    assert!(at(&bind, 1).wait_for(fqdn, "first-value").await.is_err(), "removed");
    at(&bind, 1).wait_for(fqdn, "second-value").await.unwrap();

    let wrong = rfc2136(&bind, "d3Jvbmcta2V5LXdyb25nLWtleQ==").provider().unwrap();
    let e = wrong.present(fqdn, "forged").await.unwrap_err();
    assert!(matches!(&e, AcmeError::Solver(_)), "{e}");
    assert!(!e.to_string().contains("d3Jvbmc"), "the key leaked: {e}");
    assert!(at(&bind, 1).wait_for(fqdn, "forged").await.is_err(), "nothing was written");
    let outside = provider.present("_acme-challenge.example.org.", "x").await.unwrap_err();
    assert!(outside.to_string().contains("not in zone"), "{outside}");
}

#[tokio::test]
async fn pebble_issues_a_wildcard_proved_through_bind() {
    let bind = Bind::start("dns.test").await;
    let options = PebbleOptions { dns_server: Some(bind.addr), ..Default::default() };
    let pebble = Pebble::start(options).await;
    let client = register(&pebble).await;
    let solver = SolverConfig::Dns01 {
        id: None,
        names: Vec::new(),
        provider: rfc2136(&bind, &bind.secret),
        propagation: at(&bind, 10),
    };
    let solvers = Solvers::new(&[solver], None).unwrap();
    let names = ["*.dns.test".to_string(), "dns.test".to_string()];
    let mut order = client.new_order(&names, None).await.unwrap();
    let chain = client
        .complete(&mut order, &solvers, None, &csr_der(&["*.dns.test", "dns.test"]))
        .await
        .unwrap();
    verify_chain(&chain, &pebble.root_pem().await).unwrap();
    let gone = at(&bind, 1).wait_for("_acme-challenge.dns.test.", "anything").await;
    assert!(gone.is_err());
}

/// An attempt that dies after one name was proved and while another waits for propagation
/// leaves both records behind; the attempt that resumes the order takes both down.
#[tokio::test]
async fn a_resumed_order_takes_down_the_records_a_dead_attempt_left() {
    let bind = Bind::start("dns.test").await;
    let options = PebbleOptions { dns_server: Some(bind.addr), ..Default::default() };
    let pebble = Pebble::start(options).await;
    let client = register(&pebble).await;
    let dns = |id: &str, names: &[&str], propagation: Propagation| SolverConfig::Dns01 {
        id: Some(id.into()),
        names: names.iter().map(|n| n.to_string()).collect(),
        provider: rfc2136(&bind, &bind.secret),
        propagation,
    };
    let names = ["a.dns.test".to_string(), "b.dns.test".to_string()];
    let csr = csr_der(&["a.dns.test", "b.dns.test"]);
    let mut order = client.new_order(&names, None).await.unwrap();
    let url = order.url().to_string();
    // The name proved first is proved; the second waits for a resolver that never answers,
    // and the attempt hangs there.
    let first = order.identifiers().next().await.unwrap().unwrap().to_string();
    let second = if first == names[0] { names[1].as_str() } else { names[0].as_str() };
    let nowhere = Propagation {
        nameservers: vec![std::net::SocketAddr::from(([127, 0, 0, 1], cmp_testkit::free_port()))],
        timeout_secs: 60,
    };
    let stuck = Solvers::new(
        &[dns("proved", &[first.as_str()], at(&bind, 10)), dns("stuck", &[second], nowhere)],
        None,
    )
    .unwrap();
    let attempt = client.complete(&mut order, &stuck, None, &csr);
    assert!(tokio::time::timeout(std::time::Duration::from_secs(3), attempt).await.is_err());
    // Both records are still there: nobody took them down.
    let leftover = |name: &'static str| {
        let resolver = at(&bind, 1);
        async move { resolver.txt_values(name).await.unwrap() }
    };
    assert_eq!(leftover("_acme-challenge.a.dns.test.").await.len(), 1);
    assert_eq!(leftover("_acme-challenge.b.dns.test.").await.len(), 1);

    let working = Solvers::new(&[dns("all", &[], at(&bind, 10))], None).unwrap();
    let mut resumed = client.resume_order(&url).await.unwrap();
    let chain = client.complete(&mut resumed, &working, None, &csr).await.unwrap();
    verify_chain(&chain, &pebble.root_pem().await).unwrap();
    assert!(leftover("_acme-challenge.a.dns.test.").await.is_empty(), "a's record taken down");
    assert!(leftover("_acme-challenge.b.dns.test.").await.is_empty(), "b's record taken down");
}
