//! The issuing CA's CRL: built from the ledger's revocations, signed, and cached.
//!
//! Schedule: a CRL is valid for [`CRL_LIFETIME`] (nextUpdate) but is re-signed whenever it is
//! older than [`CRL_REFRESH`], a revocation went through this instance, or the ledger's
//! revocations differ from the ones it was made of (a revocation through another replica on
//! the same database). Reading the revoked list is one indexed query; signing is what is saved.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use cmp_ca::{CaError, LedgerEntry, RevocationReason};
use rcgen::{CertificateRevocationListParams, RevokedCertParams, SerialNumber};
use time::{Duration, OffsetDateTime};

use crate::issuing::IssuingCa;
use crate::material::internal;
use crate::serial::serial_bytes;

/// nextUpdate - thisUpdate.
pub const CRL_LIFETIME: Duration = Duration::hours(24);
/// Age after which a cached CRL is re-signed even without a revocation.
pub const CRL_REFRESH: Duration = Duration::hours(1);

/// The last CRL signed, and what it takes to know whether it is still current.
#[derive(Debug, Default)]
pub(crate) struct CrlCache {
    cached: Mutex<Option<Cached>>,
    /// Bumped by every revocation through this instance.
    epoch: AtomicU64,
    /// The last CRL number handed out.
    last_number: AtomicU64,
}

#[derive(Debug)]
struct Cached {
    der: Vec<u8>,
    made_at: OffsetDateTime,
    epoch: u64,
    /// Digest of the revocations it lists.
    content: u64,
}

/// A digest of a revoked list (serials and times), to notice any change to it.
pub(crate) fn content_digest(revoked: &[LedgerEntry]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for entry in revoked {
        (&entry.serial, entry.revoked_at, entry.revocation_reason.map(|r| r.code()))
            .hash(&mut hasher);
    }
    hasher.finish()
}

impl CrlCache {
    /// Marks the cached CRL stale (a revocation happened).
    pub fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// The current epoch; pass it to [`CrlCache::store`] with a CRL built after reading it.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// The cached CRL, if no revocation happened since and it is younger than
    /// [`CRL_REFRESH`] (a clock that went backwards also makes it stale).
    pub fn fresh(&self, now: OffsetDateTime, content: u64) -> Option<Vec<u8>> {
        let guard = self.cached.lock().ok()?;
        let cached = guard.as_ref()?;
        let age = now - cached.made_at;
        let current = cached.epoch == self.epoch()
            && cached.content == content
            && age >= Duration::ZERO
            && age < CRL_REFRESH;
        current.then(|| cached.der.clone())
    }

    /// Keeps `der`, made at `now` from the ledger as it was at `epoch`.
    pub fn store(&self, der: Vec<u8>, now: OffsetDateTime, epoch: u64, content: u64) {
        if let Ok(mut guard) = self.cached.lock() {
            *guard = Some(Cached { der, made_at: now, epoch, content });
        }
    }

    /// A CRL number greater than every one before: the time in milliseconds, or one more
    /// than the last number if the clock did not move on. Across restarts it grows with time.
    pub fn next_number(&self, now: OffsetDateTime) -> u64 {
        let millis = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        let previous = self
            .last_number
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(millis.max(last.saturating_add(1)))
            })
            .unwrap_or(0);
        millis.max(previous.saturating_add(1))
    }
}

/// A v2 CRL signed by the issuing CA: every entry of `revoked` with its reason code, CRL
/// number `number`, thisUpdate `now`, nextUpdate `now + 24h`, authority key identifier.
pub(crate) fn build_crl(
    ca: &IssuingCa,
    revoked: &[LedgerEntry],
    now: OffsetDateTime,
    number: u64,
) -> Result<Vec<u8>, CaError> {
    let revoked_certs = revoked.iter().map(revoked_cert).collect::<Result<Vec<_>, _>>()?;
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: now + CRL_LIFETIME,
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: ca.key_id.clone(),
    };
    let crl = params.signed_by(&ca.issuer).map_err(internal("sign the CRL"))?;
    Ok(crl.der().to_vec())
}

fn revoked_cert(entry: &LedgerEntry) -> Result<RevokedCertParams, CaError> {
    let corrupt = |what: &str| {
        CaError::Internal(format!("ledger entry for serial {:?} has {what}", entry.serial))
    };
    let serial = serial_bytes(&entry.serial).ok_or_else(|| corrupt("a serial that is not hex"))?;
    let at = entry.revoked_at.ok_or_else(|| corrupt("no revocation time"))?;
    Ok(RevokedCertParams {
        serial_number: SerialNumber::from(serial),
        revocation_time: OffsetDateTime::from_unix_timestamp(at)
            .map_err(|_| corrupt("an impossible revocation time"))?,
        reason_code: entry.revocation_reason.map(crl_reason),
        invalidity_date: None,
    })
}

fn crl_reason(reason: RevocationReason) -> rcgen::RevocationReason {
    use rcgen::RevocationReason as R;
    match reason {
        RevocationReason::Unspecified => R::Unspecified,
        RevocationReason::KeyCompromise => R::KeyCompromise,
        RevocationReason::CaCompromise => R::CaCompromise,
        RevocationReason::AffiliationChanged => R::AffiliationChanged,
        RevocationReason::Superseded => R::Superseded,
        RevocationReason::CessationOfOperation => R::CessationOfOperation,
        RevocationReason::CertificateHold => R::CertificateHold,
        RevocationReason::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
        RevocationReason::AaCompromise => R::AaCompromise,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crl_numbers_only_grow() {
        let cache = CrlCache::default();
        let t = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let first = cache.next_number(t);
        assert_eq!(first, u64::try_from(t.unix_timestamp()).unwrap() * 1000);
        assert_eq!(cache.next_number(t), first + 1);
        assert_eq!(cache.next_number(t - Duration::hours(1)), first + 2);
        assert_eq!(cache.next_number(t + Duration::seconds(1)), first + 1000);
    }

    #[test]
    fn cache_goes_stale_on_revocation_and_age() {
        let cache = CrlCache::default();
        let t = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        assert_eq!(cache.fresh(t, 7), None);
        cache.store(vec![1], t, cache.epoch(), 7);
        assert_eq!(cache.fresh(t + Duration::minutes(59), 7), Some(vec![1]));
        assert_eq!(cache.fresh(t, 8), None, "the ledger changed (another replica revoked)");
        assert_eq!(cache.fresh(t + CRL_REFRESH, 7), None);
        assert_eq!(cache.fresh(t - Duration::seconds(1), 7), None);
        cache.invalidate();
        assert_eq!(cache.fresh(t, 7), None);
    }

    #[test]
    fn every_reason_maps_to_its_code() {
        for reason in RevocationReason::ALL {
            assert_eq!(crl_reason(reason) as u8, reason.code());
        }
    }
}
