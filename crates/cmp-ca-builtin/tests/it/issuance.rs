//! Issued certificates checked by independent verifiers: `openssl verify` and `openssl x509`,
//! and rustls-webpki at pinned times; serials as openssl and cmp-pki print them; idempotency.

use cmp_ca::{CaAdapter, Usage};
use cmp_ca_builtin::KeyAlgorithm;
use cmp_domain::KeyType;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use time::{Duration, OffsetDateTime};

use crate::support::{LeafKey, TestCa, openssl_ok, pem, profile, sign_request};

const CA_ALGORITHMS: [KeyAlgorithm; 3] =
    [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048, KeyAlgorithm::EcdsaP384];

#[tokio::test]
async fn every_leaf_key_verifies_with_openssl_under_every_ca_algorithm() {
    for algorithm in CA_ALGORITHMS {
        let ca = TestCa::new(algorithm);
        let root = ca.path("root.pem");
        let issuing = ca.path("issuing.pem");
        for leaf_key in LeafKey::ALL {
            let key = leaf_key.generate();
            let issued = ca.issue(&format!("{leaf_key:?}"), &key, profile()).await;
            let context = format!("{algorithm:?} CA, {leaf_key:?} leaf");
            assert_eq!(
                issued.chain_der,
                [ca.material.issuing_der.clone(), ca.material.root_der.clone()]
            );
            let leaf = ca.write(&format!("{leaf_key:?}.pem"), pem(&issued.certificate_der));

            let verified = openssl_ok(&["verify", "-CAfile", &root, "-untrusted", &issuing, &leaf]);
            assert!(verified.contains(": OK"), "{context}: {verified}");

            let text = openssl_ok(&["x509", "-in", &leaf, "-noout", "-text"]);
            for expected in [
                "Subject: CN = www.example.com",
                "Issuer: CN = CMP Builtin Issuing CA",
                "DNS:www.example.com, DNS:example.com, IP Address:192.0.2.10",
                "TLS Web Server Authentication, TLS Web Client Authentication",
                "URI:http://ca.test:3000/pki/builtin/crl",
                "OCSP - URI:http://ca.test:3000/pki/builtin/ocsp",
                "CA Issuers - URI:http://ca.test:3000/pki/builtin/ca",
                "CA:FALSE",
                "X509v3 Subject Key Identifier",
                "X509v3 Authority Key Identifier",
            ] {
                assert!(text.contains(expected), "{context}: no {expected:?} in\n{text}");
            }
            assert!(!text.contains("ignored.example"), "{context}: CSR names leaked\n{text}");
            let key_usage = if leaf_key == LeafKey::Rsa2048 {
                "Digital Signature, Key Encipherment\n"
            } else {
                "Digital Signature\n"
            };
            assert!(text.contains(key_usage), "{context}: key usage\n{text}");

            // The serial, as openssl prints it and as cmp-pki parses it.
            let serial = openssl_ok(&["x509", "-in", &leaf, "-noout", "-serial"]);
            assert_eq!(serial.trim().to_lowercase(), format!("serial={}", issued.serial));
            let facts = cmp_pki::parse_certificate(&issued.certificate_der).unwrap();
            assert_eq!(facts.serial_number, issued.serial, "{context}");
            assert_eq!(issued.serial.len(), 40, "{context}: 20-octet serial");
            let expected_kind = match leaf_key {
                LeafKey::Rsa2048 => KeyType::Rsa,
                LeafKey::P256 | LeafKey::P384 => KeyType::Ec,
                LeafKey::Ed25519 => KeyType::Ed25519,
            };
            assert_eq!(facts.key.kind, expected_kind, "{context}");
            assert!(!facts.is_ca, "{context}");
            assert_eq!(facts.not_after, ca.created + Duration::days(30), "{context}");
            assert_eq!(facts.not_before, ca.created - Duration::seconds(60), "{context}");
        }
    }
}

#[tokio::test]
async fn ca_certificates_have_the_right_constraints() {
    let ca = TestCa::new(KeyAlgorithm::EcdsaP256);
    let root = openssl_ok(&["x509", "-in", &ca.path("root.pem"), "-noout", "-text"]);
    let issuing = openssl_ok(&["x509", "-in", &ca.path("issuing.pem"), "-noout", "-text"]);
    for (text, cn, path_len) in [
        (&root, "CMP Builtin Root CA", "pathlen:1"),
        (&issuing, "CMP Builtin Issuing CA", "pathlen:0"),
    ] {
        assert!(text.contains(&format!("Subject: CN = {cn}")), "{text}");
        assert!(text.contains(&format!("CA:TRUE, {path_len}")), "{text}");
        assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
        assert!(text.contains("X509v3 Subject Key Identifier"), "{text}");
        assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
    }
    let verified =
        openssl_ok(&["verify", "-CAfile", &ca.path("root.pem"), &ca.path("issuing.pem")]);
    assert!(verified.contains(": OK"), "{verified}");
    assert!(root.contains("ecdsa-with-SHA256"), "{root}");
}

#[tokio::test]
async fn webpki_verifies_inside_validity_and_not_after() {
    for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048] {
        let ca = TestCa::new(algorithm);
        for leaf_key in [LeafKey::P256, LeafKey::Rsa2048, LeafKey::Ed25519] {
            let mut server_only = profile();
            server_only.usages = vec![];
            let issued = ca.issue("web", &leaf_key.generate(), server_only).await;
            let leaf_der = CertificateDer::from(issued.certificate_der.clone());
            let root_der = CertificateDer::from(ca.material.root_der.clone());
            let intermediates = [CertificateDer::from(ca.material.issuing_der.clone())];
            let anchors = [webpki::anchor_from_trusted_cert(&root_der).unwrap()];
            let leaf = webpki::EndEntityCert::try_from(&leaf_der).unwrap();
            let at = |t: OffsetDateTime| {
                UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                    u64::try_from(t.unix_timestamp()).unwrap(),
                ))
            };
            let verify = |t: OffsetDateTime, usage: webpki::KeyUsage| {
                leaf.verify_for_usage(
                    webpki::ALL_VERIFICATION_ALGS,
                    &anchors,
                    &intermediates,
                    at(t),
                    usage,
                    None,
                    None,
                )
                .map(|_| ())
            };
            let context = format!("{algorithm:?} CA, {leaf_key:?} leaf");
            let inside = ca.created + Duration::days(10);
            verify(inside, webpki::KeyUsage::server_auth()).unwrap();
            for name in ["www.example.com", "example.com", "192.0.2.10"] {
                leaf.verify_is_valid_for_subject_name(&ServerName::try_from(name).unwrap())
                    .unwrap_or_else(|e| panic!("{context}: {name}: {e:?}"));
            }
            assert!(
                leaf.verify_is_valid_for_subject_name(
                    &ServerName::try_from("other.example").unwrap()
                )
                .is_err()
            );
            // The default usage is serverAuth only.
            assert!(verify(inside, webpki::KeyUsage::client_auth()).is_err(), "{context}");
            let after = ca.created + Duration::days(30) + Duration::seconds(1);
            let expired = verify(after, webpki::KeyUsage::server_auth()).unwrap_err();
            assert!(matches!(expired, webpki::Error::CertExpired { .. }), "{context}: {expired:?}");
            let before = ca.created - Duration::seconds(61);
            assert!(verify(before, webpki::KeyUsage::server_auth()).is_err(), "{context}");
        }
    }
}

#[tokio::test]
async fn a_client_certificate_without_names_beyond_the_common_name() {
    let ca = TestCa::new(KeyAlgorithm::EcdsaP256);
    let client = cmp_ca::Profile {
        common_name: Some("alice".into()),
        dns_names: vec![],
        ip_addresses: vec![],
        usages: vec![Usage::ClientAuth],
        validity_secs: 3600,
    };
    let issued = ca.issue("client", &LeafKey::P256.generate(), client).await;
    let leaf = ca.write("client.pem", pem(&issued.certificate_der));
    let text = openssl_ok(&["x509", "-in", &leaf, "-noout", "-text"]);
    assert!(text.contains("Subject: CN = alice"), "{text}");
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(!text.contains("Subject Alternative Name"), "{text}");
    let verified = openssl_ok(&[
        "verify",
        "-purpose",
        "sslclient",
        "-CAfile",
        &ca.path("root.pem"),
        "-untrusted",
        &ca.path("issuing.pem"),
        &leaf,
    ]);
    assert!(verified.contains(": OK"), "{verified}");
}

#[tokio::test]
async fn names_only_in_the_san_make_it_critical() {
    let ca = TestCa::new(KeyAlgorithm::EcdsaP256);
    let mut no_cn = profile();
    no_cn.common_name = None;
    let issued = ca.issue("no-cn", &LeafKey::P256.generate(), no_cn).await;
    let leaf = ca.write("no-cn.pem", pem(&issued.certificate_der));
    let text = openssl_ok(&["x509", "-in", &leaf, "-noout", "-text"]);
    assert!(text.contains("X509v3 Subject Alternative Name: critical"), "{text}");
    let verified = openssl_ok(&[
        "verify",
        "-CAfile",
        &ca.path("root.pem"),
        "-untrusted",
        &ca.path("issuing.pem"),
        &leaf,
    ]);
    assert!(verified.contains(": OK"), "{verified}");
}

#[tokio::test]
async fn the_same_request_id_returns_the_same_certificate() {
    let ca = TestCa::new(KeyAlgorithm::EcdsaP256);
    let key = LeafKey::P256.generate();
    let first = ca.issue("request-1", &key, profile()).await;
    // A retry, even with another CSR and a later clock, gets the first certificate.
    ca.clock.advance(Duration::minutes(5));
    let retry = ca
        .ca
        .create_certificate(&sign_request("request-1", &LeafKey::P384.generate(), profile()))
        .await
        .unwrap();
    assert_eq!(retry, first);
    let other = ca.issue("request-2", &key, profile()).await;
    assert_ne!(other.serial, first.serial);
    assert_ne!(other.certificate_der, first.certificate_der);
    let mut serials = std::collections::HashSet::new();
    for i in 0..50 {
        serials.insert(ca.issue(&format!("many-{i}"), &key, profile()).await.serial);
    }
    assert_eq!(serials.len(), 50);
}

#[tokio::test]
async fn status_reports_health_and_the_room_left() {
    let ca = TestCa::new(KeyAlgorithm::EcdsaP256);
    let status = ca.ca.get_status().await;
    assert!(status.healthy, "{status:?}");
    let issuing_days = 1825;
    let expected = issuing_days * 86_400;
    assert_eq!(status.capabilities.max_validity_secs, expected, "{status:?}");
    assert!(status.message.starts_with("issuing CA valid until "), "{}", status.message);
    assert!(status.capabilities.supports_csr && status.capabilities.answers_ocsp);
    assert!(status.capabilities.publishes_crl && status.capabilities.supports_revocation);
    assert_eq!(status.capabilities.key_types, ["rsa", "ec", "ed25519"]);

    // The longest lifetime it announces is one it will actually issue.
    let mut longest = profile();
    longest.validity_secs = status.capabilities.max_validity_secs;
    ca.issue("longest", &LeafKey::P256.generate(), longest).await;

    ca.clock.advance(Duration::days(issuing_days) + Duration::seconds(1));
    let expired = ca.ca.get_status().await;
    assert!(!expired.healthy, "{expired:?}");
    assert!(expired.message.contains("expired"), "{}", expired.message);
    assert_eq!(expired.capabilities.max_validity_secs, 0);
}

#[tokio::test]
async fn debug_output_holds_no_key() {
    let ca = TestCa::new(KeyAlgorithm::EcdsaP256);
    let material = format!("{:?}", ca.material);
    assert!(material.contains("[redacted]"), "{material}");
    let key_hex = hex::encode(&ca.material.issuing_key_pkcs8[..]);
    assert!(!material.to_lowercase().contains(&key_hex[key_hex.len() - 16..]), "{material}");
    let adapter = format!("{:?}", ca.ca);
    assert!(adapter.contains("builtin") && !adapter.contains("pkcs8"), "{adapter}");
}
