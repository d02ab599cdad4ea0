//! What the CA refuses, and that it says why: lifetimes beyond its own or not positive, bad
//! CSR signatures, keys it does not sign, profiles that name nothing.

use cmp_ca::MemoryLedger;
use cmp_ca::{CaAdapter, CaError, SignRequest};
use cmp_ca_builtin::{BuiltinCa, KeyAlgorithm};
use std::sync::Arc;

use crate::support::{LeafKey, TestCa, csr_der, openssl_csr, profile, sign_request};

async fn refusal(ca: &TestCa, request: SignRequest) -> CaError {
    let error = ca.ca.create_certificate(&request).await.unwrap_err();
    // Nothing refused is recorded.
    let recorded =
        cmp_ca::CaLedger::find_by_request(ca.ledger.as_ref(), "ca-1", &request.request_id)
            .await
            .unwrap();
    assert_eq!(recorded, None, "{error}");
    error
}

#[tokio::test]
async fn lifetimes_beyond_the_issuer_or_not_positive() {
    let ca = TestCa::new(KeyAlgorithm::EcdsaP256);
    let key = LeafKey::P256.generate();
    let mut too_long = profile();
    too_long.validity_secs = 1826 * 86_400;
    let CaError::Refused(message) = refusal(&ca, sign_request("long", &key, too_long)).await else {
        panic!("expected Refused")
    };
    assert!(message.contains("would outlive its issuer (valid until"), "{message}");
    assert!(message.contains(&format!("at most {} s", 1825 * 86_400)), "{message}");

    let mut overflow = profile();
    overflow.validity_secs = i64::MAX;
    assert!(matches!(refusal(&ca, sign_request("max", &key, overflow)).await, CaError::Refused(_)));

    for validity in [0, -1] {
        let mut nothing = profile();
        nothing.validity_secs = validity;
        let CaError::Refused(message) = refusal(&ca, sign_request("zero", &key, nothing)).await
        else {
            panic!("expected Refused")
        };
        assert!(message.contains("positive"), "{message}");
    }
}

#[tokio::test]
async fn a_bad_csr_signature_is_an_invalid_csr() {
    let ca = TestCa::new(KeyAlgorithm::EcdsaP256);
    let key = LeafKey::P256.generate();
    let mut csr = csr_der(&key);
    let last = csr.len() - 1;
    csr[last] ^= 0x01;
    let request = SignRequest {
        request_id: "bad-sig".into(),
        csr_der: csr,
        profile: profile(),
        replaces: None,
        acme_solver: None,
    };
    let CaError::InvalidCsr(message) = refusal(&ca, request).await else { panic!("InvalidCsr") };
    assert!(message.contains("signature does not verify"), "{message}");

    let request = SignRequest {
        request_id: "garbage".into(),
        csr_der: b"garbage".to_vec(),
        profile: profile(),
        replaces: None,
        acme_solver: None,
    };
    assert!(matches!(refusal(&ca, request).await, CaError::InvalidCsr(_)));
    let request = SignRequest {
        request_id: "a-certificate".into(),
        csr_der: ca.material.root_der.clone(),
        profile: profile(),
        replaces: None,
        acme_solver: None,
    };
    let CaError::InvalidCsr(message) = refusal(&ca, request).await else { panic!("InvalidCsr") };
    assert!(message.contains("a certificate"), "{message}");
}

#[tokio::test]
async fn keys_it_does_not_sign() {
    let ca = TestCa::new(KeyAlgorithm::EcdsaP256);
    let rsa1024 =
        openssl_csr(&ca, "rsa1024", &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"]);
    let params = ca.path("dsa.params");
    crate::support::openssl_ok(&[
        "genpkey",
        "-genparam",
        "-algorithm",
        "DSA",
        "-pkeyopt",
        "dsa_paramgen_bits:1024",
        "-out",
        &params,
    ]);
    let dsa = openssl_csr(&ca, "dsa", &["-paramfile", &params]);
    let p521 =
        openssl_csr(&ca, "p521", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"]);
    let ed448 = openssl_csr(&ca, "ed448", &["-algorithm", "ED448"]);
    for (name, csr, mention) in [
        ("rsa1024", rsa1024, "1024"),
        ("dsa", dsa, "DSA"),
        ("p521", p521, "P-521"),
        ("ed448", ed448, "Ed448"),
    ] {
        let request = SignRequest {
            request_id: name.into(),
            csr_der: csr,
            profile: profile(),
            replaces: None,
            acme_solver: None,
        };
        let CaError::InvalidCsr(message) = refusal(&ca, request).await else {
            panic!("{name}: expected InvalidCsr")
        };
        assert!(message.contains(mention), "{name}: {message}");
    }
    // An openssl-made CSR of an accepted key type is fine.
    let rsa2048 =
        openssl_csr(&ca, "rsa2048", &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
    let request = SignRequest {
        request_id: "rsa2048".into(),
        csr_der: rsa2048,
        profile: profile(),
        replaces: None,
        acme_solver: None,
    };
    ca.ca.create_certificate(&request).await.unwrap();
}

#[tokio::test]
async fn profiles_that_cannot_be_issued() {
    let ca = TestCa::new(KeyAlgorithm::EcdsaP256);
    let key = LeafKey::P256.generate();
    let mut nothing = profile();
    nothing.common_name = None;
    nothing.dns_names.clear();
    nothing.ip_addresses.clear();
    let CaError::Refused(message) = refusal(&ca, sign_request("nothing", &key, nothing)).await
    else {
        panic!("Refused")
    };
    assert!(message.contains("names nothing"), "{message}");

    let mut unicode = profile();
    unicode.dns_names = vec!["bücher.example".into()];
    let CaError::Refused(message) = refusal(&ca, sign_request("idn", &key, unicode)).await else {
        panic!("Refused")
    };
    assert!(message.contains("A-label"), "{message}");

    let mut empty_cn = profile();
    empty_cn.common_name = Some(String::new());
    assert!(matches!(
        refusal(&ca, sign_request("empty-cn", &key, empty_cn)).await,
        CaError::Refused(_)
    ));
}

#[tokio::test]
async fn bad_configuration_is_refused_at_load() {
    let ca = TestCa::new(KeyAlgorithm::EcdsaP256);
    let load = |name: &str, base_url: &str, material: &cmp_ca_builtin::CaMaterial| {
        BuiltinCa::new(
            "ca-2".into(),
            name.into(),
            material,
            base_url.into(),
            Arc::new(MemoryLedger::default()),
            ca.clock.clone(),
        )
        .map(|_| ())
    };
    assert_eq!(load("builtin", "https://ca.example", &ca.material), Ok(()));
    for (name, base_url) in [
        ("", "http://x"),
        ("a/b", "http://x"),
        ("builtin", "ftp://x"),
        ("builtin", "http://exämple"),
        ("builtin", "http://a b"),
    ] {
        assert!(
            matches!(load(name, base_url, &ca.material), Err(CaError::Internal(_))),
            "{name} {base_url}"
        );
    }

    // Material that does not hold together.
    let other = TestCa::new(KeyAlgorithm::EcdsaP256);
    let mut wrong_key = ca.material.clone();
    wrong_key.issuing_key_pkcs8 = other.material.issuing_key_pkcs8.clone();
    let Err(CaError::Internal(message)) = load("builtin", "http://x", &wrong_key) else { panic!() };
    assert!(message.contains("does not match"), "{message}");
    let mut wrong_root = ca.material.clone();
    wrong_root.root_der = other.material.root_der.clone();
    let Err(CaError::Internal(message)) = load("builtin", "http://x", &wrong_root) else {
        panic!()
    };
    assert!(message.contains("not signed by the root"), "{message}");
    let mut garbage = ca.material.clone();
    garbage.issuing_der = b"garbage".to_vec();
    assert!(matches!(load("builtin", "http://x", &garbage), Err(CaError::Internal(_))));
}
