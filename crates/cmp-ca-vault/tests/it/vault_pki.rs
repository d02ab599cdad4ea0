//! The Vault PKI adapter against a real OpenBao: names from the request, limits refused
//! before signing, idempotent per request, revocation (also for no_store roles), status.

use std::sync::Arc;

use cmp_ca::{CaAdapter, CaError, CaLedger, MemoryLedger, Profile, RevocationReason, Usage};
use cmp_ca_vault::{VaultPki, VaultPkiTarget};
use cmp_testkit::openbao::OpenBao;
use cmp_vault::{Credentials, Secret, VaultClient, VaultSettings};
use serde_json::json;

use crate::support::{TestClock, openssl_ok, p256_key, pem, real_now, sign_request};

struct VaultCa {
    bao: OpenBao,
    root_pem: String,
    ledger: Arc<MemoryLedger>,
    dir: tempfile::TempDir,
}

impl VaultCa {
    async fn start() -> VaultCa {
        let bao = OpenBao::start().await;
        let root_pem = bao.enable_pki("pki").await;
        bao.pki_role(
            "pki",
            "web",
            json!({"allow_any_name": false, "allowed_domains": "example.com",
                   "allow_subdomains": true, "allow_bare_domains": true, "max_ttl": "2160h"}),
        )
        .await;
        let dir = tempfile::tempdir().unwrap();
        VaultCa { bao, root_pem, ledger: Arc::default(), dir }
    }

    fn adapter(&self, role: &str, token: &str) -> VaultPki {
        let client = VaultClient::new(
            &VaultSettings::new(&self.bao.address),
            Credentials::Token(Secret::new(token)),
        )
        .unwrap();
        let clock = Arc::new(TestClock::at(real_now()));
        let target = VaultPkiTarget { mount: "pki".into(), role: role.into() };
        VaultPki::new("vault-1", Arc::new(client), target, self.ledger.clone(), clock).unwrap()
    }

    /// `openssl verify` of a leaf against the mount's root.
    fn verify(&self, leaf_der: &[u8]) -> String {
        let root = self.dir.path().join("root.pem");
        let leaf = self.dir.path().join("leaf.pem");
        std::fs::write(&root, &self.root_pem).unwrap();
        std::fs::write(&leaf, pem(leaf_der)).unwrap();
        openssl_ok(&["verify", "-CAfile", root.to_str().unwrap(), leaf.to_str().unwrap()])
    }
}

fn example_profile() -> Profile {
    Profile {
        common_name: None,
        dns_names: vec!["www.example.com".into(), "example.com".into()],
        ip_addresses: Vec::new(),
        usages: vec![Usage::ServerAuth],
        validity_secs: 7 * 86_400,
    }
}

#[tokio::test]
async fn signs_with_the_requested_names_once_per_request() {
    let ca = VaultCa::start().await;
    let adapter = ca.adapter("web", "root");
    let stored_before = ca.bao.stored_serials("pki").await.len();
    // rcgen's CSR carries its default subject and another name: both are ignored.
    let request = sign_request("req-1", &p256_key(), example_profile());
    let issued = adapter.create_certificate(&request).await.unwrap();
    assert!(ca.verify(&issued.certificate_der).contains("OK"));
    let facts = cmp_pki::parse_certificate(&issued.certificate_der).unwrap();
    let names: Vec<String> = facts.sans.iter().map(|s| s.value.clone()).collect();
    assert_eq!(names, ["www.example.com", "example.com"]);
    assert_eq!(facts.common_name.as_deref(), Some("www.example.com"));
    assert_eq!(issued.serial, facts.serial_number);
    let lifetime = (facts.not_after - real_now()).whole_seconds();
    assert!((7 * 86_400 - 120..=7 * 86_400 + 60).contains(&lifetime), "{lifetime}");
    assert_eq!(issued.chain_der, vec![::pem::parse(&ca.root_pem).unwrap().into_contents()]);

    let again = adapter.create_certificate(&request).await.unwrap();
    assert_eq!(again.serial, issued.serial, "a retried request gets its first certificate");
    assert_eq!(ca.bao.stored_serials("pki").await.len(), stored_before + 1);
}

#[tokio::test]
async fn what_vault_would_do_differently_is_refused_before_signing() {
    let ca = VaultCa::start().await;
    let adapter = ca.adapter("web", "root");
    let stored_before = ca.bao.stored_serials("pki").await.len();
    let key = p256_key();

    let mut outside = example_profile();
    outside.dns_names = vec!["evil.org".into()];
    let err = adapter.create_certificate(&sign_request("r1", &key, outside)).await.unwrap_err();
    assert!(
        matches!(&err, CaError::Refused(m) if m.contains("evil.org") && m.contains("not allowed")),
        "Vault's own reason: {err:?}"
    );

    let mut too_long = example_profile();
    too_long.validity_secs = 200 * 86_400;
    let err = adapter.create_certificate(&sign_request("r2", &key, too_long)).await.unwrap_err();
    assert!(matches!(&err, CaError::Refused(m) if m.contains("max_ttl")), "{err:?}");

    let mut client_auth = example_profile();
    client_auth.usages = vec![Usage::ClientAuth];
    ca.bao.pki_role("pki", "servers", json!({"client_flag": false})).await;
    let servers = ca.adapter("servers", "root");
    let err = servers.create_certificate(&sign_request("r3", &key, client_auth)).await.unwrap_err();
    assert!(matches!(&err, CaError::Refused(m) if m.contains("client_flag")), "{err:?}");

    // A role left at Vault's defaults takes names from the CSR: CMP says how to fix it.
    ca.bao.api("POST", "pki/roles/defaults", Some(json!({"allow_any_name": true}))).await;
    let defaults = ca.adapter("defaults", "root");
    let err = defaults
        .create_certificate(&sign_request("r4", &key, example_profile()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CaError::Refused(m) if m.contains("use_csr_common_name=false")),
        "{err:?}"
    );

    let mut bad_csr = sign_request("r5", &key, example_profile());
    bad_csr.csr_der[40] ^= 0xff;
    let err = adapter.create_certificate(&bad_csr).await.unwrap_err();
    assert!(matches!(err, CaError::InvalidCsr(_)), "{err:?}");

    assert_eq!(ca.bao.stored_serials("pki").await.len(), stored_before, "nothing was signed");
    for id in ["r1", "r2", "r3", "r4", "r5"] {
        assert_eq!(ca.ledger.find_by_request("vault-1", id).await.unwrap(), None);
    }
}

#[tokio::test]
async fn revokes_by_serial_and_by_certificate_for_no_store_roles() {
    let ca = VaultCa::start().await;
    let adapter = ca.adapter("web", "root");
    let key = p256_key();
    let issued =
        adapter.create_certificate(&sign_request("a", &key, example_profile())).await.unwrap();
    adapter.revoke_certificate(&issued.serial, RevocationReason::KeyCompromise).await.unwrap();
    adapter.revoke_certificate(&issued.serial, RevocationReason::KeyCompromise).await.unwrap();
    let crl = ca.bao.api("GET", "pki/cert/crl", None).await;
    let crl_path = ca.dir.path().join("crl.pem");
    std::fs::write(&crl_path, crl["data"]["certificate"].as_str().unwrap()).unwrap();
    let text = openssl_ok(&["crl", "-in", crl_path.to_str().unwrap(), "-noout", "-text"]);
    assert!(text.to_lowercase().contains(&issued.serial), "{text}");

    ca.bao.pki_role("pki", "ephemeral", json!({"no_store": true})).await;
    let ephemeral = ca.adapter("ephemeral", "root");
    let issued =
        ephemeral.create_certificate(&sign_request("b", &key, example_profile())).await.unwrap();
    ephemeral.revoke_certificate(&issued.serial, RevocationReason::Superseded).await.unwrap();
    let entry = ca.ledger.find_by_serial("vault-1", &issued.serial).await.unwrap().unwrap();
    assert_eq!(entry.revocation_reason, Some(RevocationReason::Superseded));

    let err =
        adapter.revoke_certificate("0badc0de", RevocationReason::Unspecified).await.unwrap_err();
    assert!(matches!(err, CaError::UnknownSerial(_)), "{err:?}");
}

#[tokio::test]
async fn status_reports_limits_seal_and_denial() {
    let ca = VaultCa::start().await;
    let status = ca.adapter("web", "root").get_status().await;
    assert!(status.healthy, "{status:?}");
    assert!(status.message.contains("pki/roles/web") && status.message.contains("test root"));
    assert_eq!(status.capabilities.max_validity_secs, 2160 * 3600);
    assert_eq!(status.capabilities.key_types, ["rsa", "ec", "ed25519"]);

    let narrow = ca.bao.token(&["default"], "1h", false).await;
    let status = ca.adapter("web", &narrow).get_status().await;
    assert!(!status.healthy && status.message.contains("permission denied"), "{status:?}");
    assert!(!status.message.contains(&narrow));

    ca.bao.seal().await;
    let adapter = ca.adapter("web", "root");
    let status = adapter.get_status().await;
    assert!(!status.healthy && status.message.contains("sealed"), "{status:?}");
    let err = adapter
        .create_certificate(&sign_request("s", &p256_key(), example_profile()))
        .await
        .unwrap_err();
    assert!(matches!(&err, CaError::Unavailable(m) if m.contains("sealed")) && err.is_retryable());
}
