//! From store records to the issuer's wire types.

use cmp_api::{Managed, ManagedVersion, Request};
use cmp_store::{ManagedRecord, RequestRecord, VersionRow};

use crate::core::wire::time_of;

pub fn request(r: RequestRecord) -> Request {
    Request {
        id: r.id,
        kind: r.kind,
        state: r.state,
        owner_id: r.owner_id,
        adapter_id: r.adapter_id,
        managed_certificate_id: r.managed_certificate_id,
        certificate_id: r.certificate_id,
        key_source: r.spec.key_source,
        spec: r.spec,
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

pub fn bootstrap_token(t: cmp_store::BootstrapTokenRecord) -> cmp_api::BootstrapToken {
    cmp_api::BootstrapToken {
        id: t.id,
        labels: t.labels,
        expires_at: time_of(t.expires_at),
        created_by: t.created_by,
        used_at: t.used_at.map(time_of),
        agent_id: t.agent_id,
        revoked_at: t.revoked_at.map(time_of),
    }
}

/// An agent as seen at `now` (its status follows from when it last checked in).
pub fn agent(a: cmp_store::AgentRecord, now: i64) -> cmp_api::Agent {
    cmp_api::Agent {
        status: cmp_domain::AgentStatus::at(a.disabled_at.is_some(), a.last_seen_at, now),
        targets: serde_json::from_value(a.targets).unwrap_or_default(),
        id: a.id,
        name: a.name,
        labels: a.labels,
        hostname: a.hostname,
        version: a.version,
        os: a.os,
        last_seen_at: a.last_seen_at.map(time_of),
        cert_fingerprint: a.cert_fingerprint,
        cert_not_after: time_of(a.cert_not_after),
        enrolled_at: time_of(a.enrolled_at),
    }
}

pub fn identity(
    issued: crate::platform_ca::IssuedClientCert,
    ca_pem: &str,
) -> cmp_api::AgentIdentity {
    cmp_api::AgentIdentity {
        certificate_pem: issued.cert_pem,
        ca_pem: ca_pem.to_string(),
        not_after: issued.not_after,
    }
}

pub fn job(j: cmp_store::JobRecord) -> cmp_api::Job {
    cmp_api::Job {
        steps: j.result.and_then(|r| serde_json::from_value(r).ok()).unwrap_or_default(),
        id: j.id,
        kind: j.kind,
        target: j.target,
        state: j.state,
        attempts: j.attempts,
        managed_certificate_id: j.managed_certificate_id,
        certificate_id: j.certificate_id,
        step: j.step,
        created_at: time_of(j.created_at),
        updated_at: time_of(j.updated_at),
    }
}

pub fn deployment(d: cmp_store::DeploymentRecord) -> cmp_api::Deployment {
    cmp_api::Deployment {
        agent_id: d.agent_id,
        agent: d.agent_name,
        target: d.target,
        state: d.state,
        certificate_id: d.certificate_id,
        served_fingerprint: d.served_fingerprint,
        verified_at: d.verified_at.map(time_of),
        failed_step: d.failed_step,
        last_error: d.last_error,
    }
}
