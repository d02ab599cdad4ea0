//! From store records to the issuer's wire types.

use cmp_api::{Managed, ManagedVersion, Request};
use cmp_store::{ManagedRecord, RequestRecord, VersionRow};

use crate::inventory::views::time_of;

pub fn request(r: RequestRecord) -> Request {
    let key_source = r.spec.get("key_source").and_then(|v| v.as_str()).map(str::to_string);
    Request {
        id: r.id,
        kind: r.kind,
        state: r.state,
        owner_id: r.owner_id,
        adapter_id: r.adapter_id,
        managed_certificate_id: r.managed_certificate_id,
        certificate_id: r.certificate_id,
        spec: r.spec,
        key_source,
        requested_by: r.requested_by,
        decided_by: r.decided_by,
        decision_comment: r.decision_comment,
        attempts: r.attempts,
        last_error: r.last_error,
        next_attempt_at: r.next_attempt_at.map(time_of),
        created_at: time_of(r.created_at),
        updated_at: time_of(r.updated_at),
    }
}

pub fn managed(m: ManagedRecord, versions: Vec<VersionRow>) -> Managed {
    Managed {
        id: m.id,
        name: m.name,
        owner_id: m.owner_id,
        owner_name: m.owner_name,
        adapter_id: m.adapter_id,
        spec: m.spec,
        current_certificate_id: m.current_certificate_id,
        versions: versions
            .into_iter()
            .map(|v| ManagedVersion {
                certificate_id: v.certificate_id,
                serial_number: v.serial_number,
                not_before: time_of(v.not_before),
                not_after: time_of(v.not_after),
                revoked: v.revoked_at.is_some(),
            })
            .collect(),
        renewal_failures: m.renewal_failures,
        last_error: m.last_error,
        renewal: m.decision.and_then(|d| serde_json::from_value(d).ok()),
        created_by: m.created_by,
        created_at: time_of(m.created_at),
    }
}
