//! From store records to wire types, and the cursor encoding.

use base64::Engine;
use cmp_domain::{CertificateStatus, Finding, status_at};
use cmp_store::{CertificateRecord, Cursor};
use time::{Duration, OffsetDateTime};

use crate::error::ApiError;

pub fn time_of(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The API view of a certificate, with status and findings evaluated at `now`.
pub fn certificate(
    r: CertificateRecord,
    now: OffsetDateTime,
    window_secs: i64,
) -> cmp_api::Certificate {
    let status =
        status_at(time_of(r.not_before), time_of(r.not_after), now, Duration::seconds(window_secs));
    let mut findings = r.static_findings;
    match status {
        CertificateStatus::Expired => findings.push(Finding::Expired),
        CertificateStatus::Expiring => findings.push(Finding::Expiring),
        CertificateStatus::NotYetValid => findings.push(Finding::NotYetValid),
        CertificateStatus::Valid => {}
    }
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
            })
            .collect(),
        source: r.source.as_str().to_string(),
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

/// Opaque cursor: URL-safe base64 of `key:id`.
pub fn encode_cursor(c: &Cursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}:{}", c.key, c.id))
}

pub fn decode_cursor(s: &str) -> Result<Cursor, ApiError> {
    let bad = || ApiError::bad_field("cursor", "not a cursor this server issued");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (key, id) = text.split_once(':').ok_or_else(bad)?;
    Ok(Cursor { key: key.parse().map_err(|_| bad())?, id: id.to_string() })
}

/// Parses an RFC 3339 query value.
pub fn parse_time(field: &str, value: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map_err(|_| ApiError::bad_field(field, format!("{value:?} is not an RFC 3339 time")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = Cursor { key: -5, id: "0190-abc".into() };
        assert_eq!(decode_cursor(&encode_cursor(&c)).unwrap(), c);
        assert!(decode_cursor("!!").is_err());
        assert!(
            decode_cursor(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("x:y")).is_err()
        );
    }
}
