//! dns-01 through RFC 2136 updates signed with TSIG, against a real BIND 9: records appear and
//! disappear, a wrong key is refused, and Pebble (resolving through that BIND) issues.

use cmp_acme::{
    AcmeError, DnsProviderConfig, Propagation, ProviderSecret, SolverConfig, Solvers,
    TsigAlgorithmName,
};
use cmp_testkit::bind::{Bind, KEY_NAME};
use cmp_testkit::openssl::verify_chain;
use cmp_testkit::pebble::{Pebble, PebbleOptions};
use zeroize::Zeroizing;

use super::*;

fn rfc2136(bind: &Bind, secret: &str) -> DnsProviderConfig {
    DnsProviderConfig::Rfc2136 {
        server: bind.addr,
        zone: bind.zone.clone(),
        key_name: KEY_NAME.into(),
        algorithm: TsigAlgorithmName::HmacSha256,
        secret: Some(ProviderSecret(Zeroizing::new(secret.into()))),
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
