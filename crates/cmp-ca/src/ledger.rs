//! What an adapter remembers: every serial it issued (by request id, for idempotency) and
//! every revocation. The server implements it on the database; tests use [`MemoryLedger`].

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::{CaError, RevocationReason};

/// One certificate the CA signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Id of the CA (the adapter id).
    pub ca_id: String,
    /// Lowercase hex serial.
    pub serial: String,
    /// The issuance request it was signed for.
    pub request_id: String,
    /// The leaf, DER.
    pub certificate_der: Vec<u8>,
    /// Unix seconds.
    pub not_after: i64,
    /// Unix seconds, when revoked.
    pub revoked_at: Option<i64>,
    /// Why, when revoked.
    pub revocation_reason: Option<RevocationReason>,
}

/// Persistence of issued serials and revocations, per CA.
#[async_trait]
pub trait CaLedger: Send + Sync {
    /// The certificate already signed for this request, if any.
    async fn find_by_request(
        &self,
        ca_id: &str,
        request_id: &str,
    ) -> Result<Option<LedgerEntry>, CaError>;
    /// Records a signed certificate. If another signature for the same request id won a race,
    /// returns that one instead (the caller then discards its own).
    async fn record_issued(&self, entry: &LedgerEntry) -> Result<LedgerEntry, CaError>;
    /// A serial's entry, if this CA issued it.
    async fn find_by_serial(
        &self,
        ca_id: &str,
        serial: &str,
    ) -> Result<Option<LedgerEntry>, CaError>;
    /// Marks a serial revoked. `UnknownSerial` if never issued, `AlreadyRevoked` if it is.
    async fn revoke(
        &self,
        ca_id: &str,
        serial: &str,
        reason: RevocationReason,
        at: i64,
    ) -> Result<(), CaError>;
    /// Every revoked entry of this CA that has not expired before `now` (the CRL's content).
    async fn revoked(&self, ca_id: &str, now: i64) -> Result<Vec<LedgerEntry>, CaError>;
}

/// An in-memory ledger, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    inner: Mutex<Entries>,
}

/// Entries by (ca_id, serial), and the serial of each (ca_id, request_id).
#[derive(Debug, Default)]
struct Entries {
    by_serial: HashMap<(String, String), LedgerEntry>,
    by_request: HashMap<(String, String), String>,
}

impl Entries {
    fn find_by_request(&self, ca_id: &str, request_id: &str) -> Option<&LedgerEntry> {
        let serial = self.by_request.get(&(ca_id.to_string(), request_id.to_string()))?;
        self.by_serial.get(&(ca_id.to_string(), serial.clone()))
    }
}

impl MemoryLedger {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Entries>, CaError> {
        self.inner.lock().map_err(|_| CaError::Internal("ledger lock poisoned".into()))
    }
}

#[async_trait]
impl CaLedger for MemoryLedger {
    async fn find_by_request(
        &self,
        ca_id: &str,
        request_id: &str,
    ) -> Result<Option<LedgerEntry>, CaError> {
        Ok(self.lock()?.find_by_request(ca_id, request_id).cloned())
    }

    async fn record_issued(&self, entry: &LedgerEntry) -> Result<LedgerEntry, CaError> {
        let mut entries = self.lock()?;
        if let Some(existing) = entries.find_by_request(&entry.ca_id, &entry.request_id) {
            return Ok(existing.clone());
        }
        entries
            .by_request
            .insert((entry.ca_id.clone(), entry.request_id.clone()), entry.serial.clone());
        entries.by_serial.insert((entry.ca_id.clone(), entry.serial.clone()), entry.clone());
        Ok(entry.clone())
    }

    async fn find_by_serial(
        &self,
        ca_id: &str,
        serial: &str,
    ) -> Result<Option<LedgerEntry>, CaError> {
        Ok(self.lock()?.by_serial.get(&(ca_id.to_string(), serial.to_string())).cloned())
    }

    async fn revoke(
        &self,
        ca_id: &str,
        serial: &str,
        reason: RevocationReason,
        at: i64,
    ) -> Result<(), CaError> {
        let mut entries = self.lock()?;
        let entry = entries
            .by_serial
            .get_mut(&(ca_id.to_string(), serial.to_string()))
            .ok_or_else(|| CaError::UnknownSerial(serial.to_string()))?;
        if entry.revoked_at.is_some() {
            return Err(CaError::AlreadyRevoked(serial.to_string()));
        }
        entry.revoked_at = Some(at);
        entry.revocation_reason = Some(reason);
        Ok(())
    }

    async fn revoked(&self, ca_id: &str, now: i64) -> Result<Vec<LedgerEntry>, CaError> {
        let mut list: Vec<LedgerEntry> = self
            .lock()?
            .by_serial
            .values()
            .filter(|e| e.ca_id == ca_id && e.revoked_at.is_some() && e.not_after >= now)
            .cloned()
            .collect();
        list.sort_by(|a, b| a.serial.cmp(&b.serial));
        Ok(list)
    }
}
