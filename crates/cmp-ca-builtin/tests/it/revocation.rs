//! Revocation and the CRL: `openssl crl -verify` accepts it, lists each revoked serial with its
//! reason, and `openssl verify -crl_check` then rejects exactly the revoked leaf. Re-signing
//! follows revocations and the clock.

use cmp_ca::{CaAdapter, CaError, RevocationReason};
use cmp_ca_builtin::{CRL_LIFETIME, CRL_REFRESH, KeyAlgorithm};
use time::Duration;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use crate::support::{LeafKey, TestCa, openssl, openssl_ok, pem, profile};

/// How `openssl crl -text` prints nextUpdate.
const NEXT_UPDATE: &[BorrowedFormatItem<'_>] = format_description!(
    "Next Update: [month repr:short] [day padding:space] [hour]:[minute]:[second] [year] GMT"
);

fn crl_text(ca: &TestCa, der: &[u8], name: &str) -> String {
    let path = ca.write(&format!("{name}.der"), der);
    let verify = openssl_ok(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        &path,
        "-CAfile",
        &ca.path("chain.pem"),
        "-verify",
        "-noout",
    ]);
    assert!(verify.contains("verify OK"), "{verify}");
    openssl_ok(&["crl", "-inform", "DER", "-in", &path, "-noout", "-text"])
}

fn crl_number(text: &str) -> u64 {
    let line = text.lines().skip_while(|l| !l.contains("X509v3 CRL Number")).nth(1).unwrap();
    line.trim().parse().unwrap()
}

#[tokio::test]
async fn revoked_serials_are_listed_with_their_reason() {
    for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048] {
        let ca = TestCa::new(algorithm);
        let revoked = ca.issue("revoked", &LeafKey::P256.generate(), profile()).await;
        let kept = ca.issue("kept", &LeafKey::Rsa2048.generate(), profile()).await;

        let empty = crl_text(&ca, &ca.ca.crl_der().await.unwrap(), "empty");
        assert!(empty.contains("No Revoked Certificates."), "{empty}");

        ca.ca.revoke_certificate(&revoked.serial, RevocationReason::KeyCompromise).await.unwrap();
        let crl = ca.ca.crl_der().await.unwrap();
        let text = crl_text(&ca, &crl, "crl");
        assert!(
            text.contains(&format!("Serial Number: {}", revoked.serial.to_uppercase())),
            "{text}"
        );
        assert!(!text.contains(&kept.serial.to_uppercase()), "{text}");
        assert!(text.contains("Key Compromise"), "{text}");
        assert!(text.contains("Version 2 (0x1)"), "{text}");
        assert!(text.contains("Issuer: CN = CMP Builtin Issuing CA"), "{text}");
        assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
        assert!(crl_number(&text) > crl_number(&empty), "{text}");

        // openssl, checking the CRL, refuses the revoked leaf and accepts the other.
        let crl_pem = ca.path("crl.pem");
        openssl_ok(&["crl", "-inform", "DER", "-in", &ca.path("crl.der"), "-out", &crl_pem]);
        for (issued, expect_ok) in [(&revoked, false), (&kept, true)] {
            let leaf = ca.write("leaf.pem", pem(&issued.certificate_der));
            let run = openssl(&[
                "verify",
                "-crl_check",
                "-CAfile",
                &ca.path("chain.pem"),
                "-CRLfile",
                &crl_pem,
                &leaf,
            ]);
            assert_eq!(run.ok, expect_ok, "{}", run.output);
            if !expect_ok {
                assert!(run.output.contains("certificate revoked"), "{}", run.output);
            }
        }
    }
}

#[tokio::test]
async fn revoking_twice_or_an_unknown_serial() {
    let ca = TestCa::new(KeyAlgorithm::EcdsaP256);
    let issued = ca.issue("one", &LeafKey::P256.generate(), profile()).await;
    ca.ca.revoke_certificate(&issued.serial, RevocationReason::Superseded).await.unwrap();
    assert_eq!(
        ca.ca.revoke_certificate(&issued.serial, RevocationReason::KeyCompromise).await,
        Err(CaError::AlreadyRevoked(issued.serial.clone()))
    );
    // The upper-case, colon-separated form names the same serial.
    let shouted: Vec<String> = issued
        .serial
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8(pair.to_vec()).unwrap())
        .collect();
    assert!(matches!(
        ca.ca.revoke_certificate(&shouted.join(":"), RevocationReason::Superseded).await,
        Err(CaError::AlreadyRevoked(_))
    ));
    let unknown = "0123456789abcdef";
    assert_eq!(
        ca.ca.revoke_certificate(unknown, RevocationReason::Unspecified).await,
        Err(CaError::UnknownSerial(unknown.into()))
    );
}

#[tokio::test]
async fn every_reason_reaches_the_crl() {
    let ca = TestCa::new(KeyAlgorithm::EcdsaP256);
    let key = LeafKey::P256.generate();
    let names = [
        (RevocationReason::Unspecified, None),
        (RevocationReason::KeyCompromise, Some("Key Compromise")),
        (RevocationReason::CaCompromise, Some("CA Compromise")),
        (RevocationReason::AffiliationChanged, Some("Affiliation Changed")),
        (RevocationReason::Superseded, Some("Superseded")),
        (RevocationReason::CessationOfOperation, Some("Cessation Of Operation")),
        (RevocationReason::CertificateHold, Some("Certificate Hold")),
        (RevocationReason::PrivilegeWithdrawn, Some("Privilege Withdrawn")),
        (RevocationReason::AaCompromise, Some("AA Compromise")),
    ];
    for (reason, _) in names {
        let issued = ca.issue(reason.as_str(), &key, profile()).await;
        ca.ca.revoke_certificate(&issued.serial, reason).await.unwrap();
    }
    let text = crl_text(&ca, &ca.ca.crl_der().await.unwrap(), "all");
    assert_eq!(text.matches("Serial Number:").count(), names.len(), "{text}");
    for (_, name) in names {
        if let Some(name) = name {
            assert!(text.contains(name), "no {name} in {text}");
        }
    }
}

#[tokio::test]
async fn the_crl_is_cached_and_re_signed_on_schedule() {
    let ca = TestCa::new(KeyAlgorithm::EcdsaP256);
    let first = ca.ca.crl_der().await.unwrap();
    ca.clock.advance(Duration::minutes(30));
    assert_eq!(ca.ca.crl_der().await.unwrap(), first, "younger than the refresh: cached");

    ca.clock.advance(CRL_REFRESH);
    let refreshed = ca.ca.crl_der().await.unwrap();
    assert_ne!(refreshed, first);
    let first_text = crl_text(&ca, &first, "first");
    let refreshed_text = crl_text(&ca, &refreshed, "refreshed");
    assert!(crl_number(&refreshed_text) > crl_number(&first_text));
    let now = cmp_domain::Clock::now(ca.clock.as_ref());
    let next_update = (now + CRL_LIFETIME).format(NEXT_UPDATE).unwrap();
    assert!(refreshed_text.contains(&next_update), "{next_update} in {refreshed_text}");

    // A revocation re-signs at once, even within the hour.
    let issued = ca.issue("x", &LeafKey::P256.generate(), profile()).await;
    ca.ca.revoke_certificate(&issued.serial, RevocationReason::KeyCompromise).await.unwrap();
    let after_revocation = crl_text(&ca, &ca.ca.crl_der().await.unwrap(), "revoked");
    assert!(after_revocation.contains(&issued.serial.to_uppercase()), "{after_revocation}");

    // Once the revoked certificate has expired, it leaves the CRL.
    ca.clock.advance(Duration::days(31));
    let later = crl_text(&ca, &ca.ca.crl_der().await.unwrap(), "later");
    assert!(later.contains("No Revoked Certificates."), "{later}");
}
