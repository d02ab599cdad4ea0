//! The CA and its ledger: a lost race for a request id returns the winner's certificate, and
//! a failing ledger is reported (an error to the issuer, internalError to OCSP clients).

use std::sync::Arc;

use async_trait::async_trait;
use cmp_ca::{CaAdapter, CaError, RevocationReason};
use cmp_ca::{CaLedger, LedgerEntry, MemoryLedger};
use cmp_ca_builtin::{BuiltinCa, KeyAlgorithm};
use der::Decode;
use x509_ocsp::{OcspResponse, OcspResponseStatus};

use crate::support::{LeafKey, TestCa, openssl_ok, pem, profile, sign_request};

/// Forgets every request id when asked (as if another signer had not committed yet), and can
/// fail every call.
struct OddLedger {
    inner: MemoryLedger,
    fail: bool,
}

impl OddLedger {
    fn check(&self) -> Result<(), CaError> {
        if self.fail { Err(CaError::Unavailable("the database is down".into())) } else { Ok(()) }
    }
}

#[async_trait]
impl CaLedger for OddLedger {
    async fn find_by_request(&self, _: &str, _: &str) -> Result<Option<LedgerEntry>, CaError> {
        self.check()?;
        Ok(None)
    }
    async fn record_issued(&self, entry: &LedgerEntry) -> Result<LedgerEntry, CaError> {
        self.check()?;
        self.inner.record_issued(entry).await
    }
    async fn find_by_serial(
        &self,
        ca_id: &str,
        serial: &str,
    ) -> Result<Option<LedgerEntry>, CaError> {
        self.check()?;
        self.inner.find_by_serial(ca_id, serial).await
    }
    async fn revoke(
        &self,
        ca_id: &str,
        serial: &str,
        reason: RevocationReason,
        at: i64,
    ) -> Result<(), CaError> {
        self.check()?;
        self.inner.revoke(ca_id, serial, reason, at).await
    }
    async fn revoked(&self, ca_id: &str, now: i64) -> Result<Vec<LedgerEntry>, CaError> {
        self.check()?;
        self.inner.revoked(ca_id, now).await
    }
}

fn with_ledger(ca: &TestCa, fail: bool) -> BuiltinCa {
    BuiltinCa::new(
        "ca-1".into(),
        "builtin".into(),
        &ca.material,
        "http://ca.test:3000".into(),
        Arc::new(OddLedger { inner: MemoryLedger::default(), fail }),
        ca.clock.clone(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_lost_race_returns_the_winner() {
    let ca = TestCa::new(KeyAlgorithm::EcdsaP256);
    let racing = with_ledger(&ca, false);
    let key = LeafKey::P256.generate();
    let winner = racing.create_certificate(&sign_request("same", &key, profile())).await.unwrap();
    // The second signature is made (the ledger forgot the id) but the first is returned.
    let loser = racing.create_certificate(&sign_request("same", &key, profile())).await.unwrap();
    assert_eq!(loser, winner);
}

#[tokio::test]
async fn a_failing_ledger_is_reported() {
    let ca = TestCa::new(KeyAlgorithm::EcdsaP256);
    let down = with_ledger(&ca, true);
    let key = LeafKey::P256.generate();
    let error = down.create_certificate(&sign_request("x", &key, profile())).await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert!(down.revoke_certificate("01", RevocationReason::Superseded).await.is_err());
    assert!(down.crl_der().await.is_err());

    // OCSP clients get internalError.
    let issued = ca.issue("leaf", &key, profile()).await;
    let leaf = ca.write("leaf.pem", pem(&issued.certificate_der));
    let request = ca.path("down.req");
    openssl_ok(&["ocsp", "-issuer", &ca.path("issuing.pem"), "-cert", &leaf, "-reqout", &request]);
    let response = down.ocsp_response(&std::fs::read(&request).unwrap()).await;
    let status = OcspResponse::from_der(&response).unwrap().response_status;
    assert_eq!(status, OcspResponseStatus::InternalError);
}
