//! From store records to the inventory's wire types, and the certificate list's cursor.

use cmp_domain::{CertificateStatus, Finding, status_at};
use cmp_store::{CertificateRecord, CertificateSort, Cursor};
use time::{Duration, OffsetDateTime};

use crate::core::wire::{decode_tagged, encode_tagged, time_of};
use crate::error::ApiError;

/// The API view of a certificate, with status and findings evaluated at `now`.
pub fn certificate(
    r: CertificateRecord,
    now: OffsetDateTime,
    window_secs: i64,
) -> cmp_api::Certificate {
    let by_time =
        status_at(time_of(r.not_before), time_of(r.not_after), now, Duration::seconds(window_secs));
    let mut findings = r.static_findings;
    match by_time {
        CertificateStatus::Expired => findings.push(Finding::Expired),
        CertificateStatus::Expiring => findings.push(Finding::Expiring),
        CertificateStatus::NotYetValid => findings.push(Finding::NotYetValid),
        CertificateStatus::Valid | CertificateStatus::Revoked => {}
    }
    let status = if r.revoked_at.is_some() { CertificateStatus::Revoked } else { by_time };
    findings.sort();
    cmp_api::Certificate {
        id: r.id,
        fingerprint_sha256: r.fingerprint_sha256,
        serial_number: r.serial_number,
        subject: r.subject,
        issuer: r.issuer,
        common_name: r.common_name,
        not_before: time_of(r.not_before),
        not_after: time_of(r.not_after),
        sans: r.sans,
        key: r.key,
        signature_algorithm: r.signature_algorithm,
        is_ca: r.is_ca,
        self_signed: r.self_signed,
        status,
        findings,
        owner: r.owner.map(|o| cmp_api::OwnerRef { id: o.id, name: o.name }),
        labels: r.labels,
        locations: r
            .locations
            .into_iter()
            .map(|l| cmp_api::Location {
                kind: l.kind,
                address: l.address,
                first_seen: time_of(l.first_seen),
                last_seen: time_of(l.last_seen),
                gone_at: l.gone_at.map(time_of),
                findings: l.findings,
                endpoint: l.details.and_then(|d| serde_json::from_value(d).ok()),
            })
            .collect(),
        source: r.source.as_str().to_string(),
        revoked_at: r.revoked_at.map(time_of),
        revocation_reason: r.revocation_reason,
        managed_certificate_id: r.managed_certificate_id,
        has_server_key: r.has_server_key,
        created_at: time_of(r.created_at),
        updated_at: time_of(r.updated_at),
    }
}

pub fn owner(o: cmp_store::Owner) -> cmp_api::Owner {
    cmp_api::Owner {
        id: o.id,
        name: o.name,
        email: o.email,
        description: o.description,
        created_at: time_of(o.created_at),
        updated_at: time_of(o.updated_at),
    }
}

/// Opaque cursor: URL-safe base64 of `sort:key:id`. The sort is in it so that a cursor is
/// never read against another order (which would skip rows).
pub fn encode_cursor(sort: CertificateSort, c: &Cursor) -> String {
    encode_tagged(sort_tag(sort), c)
}

pub fn decode_cursor(sort: CertificateSort, s: &str) -> Result<Cursor, ApiError> {
    decode_tagged(sort_tag(sort), s)
}

fn sort_tag(sort: CertificateSort) -> &'static str {
    match sort {
        CertificateSort::NotAfter => "n",
        CertificateSort::CreatedAt => "c",
    }
}

/// A scan as the API shows it, with its owner and latest run.
pub fn scan(
    s: cmp_store::Scan,
    owner: Option<cmp_store::Owner>,
    last_run: Option<cmp_store::ScanRun>,
) -> Result<cmp_api::Scan, crate::error::ApiError> {
    let spec = serde_json::from_value(s.spec).map_err(|e| {
        crate::error::ApiError::Internal(format!("stored scan {} cannot be read: {e}", s.id))
    })?;
    Ok(cmp_api::Scan {
        id: s.id,
        name: s.name,
        spec,
        owner: owner.map(|o| cmp_api::OwnerRef { id: o.id, name: o.name }),
        interval_secs: s.interval_secs,
        cron: s.cron,
        enabled: s.enabled,
        next_run_at: s.next_run_at.map(time_of),
        created_by: s.created_by,
        created_at: time_of(s.created_at),
        updated_at: time_of(s.updated_at),
        last_run: last_run.map(scan_run),
    })
}

/// A scan run as the API shows it.
pub fn scan_run(r: cmp_store::ScanRun) -> cmp_api::ScanRun {
    cmp_api::ScanRun {
        id: r.id,
        scan_id: r.scan_id,
        state: r.state,
        trigger: r.trigger,
        started_by: r.started_by,
        started_at: time_of(r.started_at),
        finished_at: r.finished_at.map(time_of),
        cancel_requested: r.cancel_requested,
        progress: r.progress,
        detail: r.detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = Cursor { key: -5, id: "0190-abc".into() };
        let encoded = encode_cursor(CertificateSort::NotAfter, &c);
        assert_eq!(decode_cursor(CertificateSort::NotAfter, &encoded).unwrap(), c);
        assert!(decode_cursor(CertificateSort::CreatedAt, &encoded).is_err());
        assert!(decode_cursor(CertificateSort::NotAfter, "!!").is_err());
        use base64::Engine;
        let garbage = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("n:y");
        assert!(decode_cursor(CertificateSort::NotAfter, &garbage).is_err());
    }
}
