//! The storage conformance suite: every test runs against SQLite and PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]

mod agents;
mod audit;
mod certificates;
mod completions;
mod discovery;
mod issuance;
mod managed;
mod migrations;
mod notifications;
mod owners_tokens;
mod stats;
mod users;

use cmp_domain::{CertificateFacts, KeyInfo, KeyType, San, SanType};
use cmp_store::{AuditContext, CertificateSource, NewCertificate, SqlStore};
use cmp_testkit::{DbKind, TestDb};
use time::OffsetDateTime;

/// Runs `body` once per database, each with a fresh store.
macro_rules! on_both_databases {
    (|$store:ident, $db:ident| $body:block) => {{
        for kind in cmp_testkit::DbKind::ALL {
            let ($store, $db) = crate::fresh_store(kind).await;
            let _ = &$db;
            $body
        }
    }};
}
pub(crate) use on_both_databases;

/// What a request for `names` asks, its key from a CSR.
pub fn spec_for(names: &[&str]) -> cmp_domain::RequestSpec {
    cmp_domain::RequestSpec {
        common_name: None,
        dns_names: names.iter().map(|n| n.to_string()).collect(),
        ip_addresses: Vec::new(),
        validity_days: 90,
        key_source: cmp_domain::KeySource::Csr,
        key_type: None,
        renew_before: None,
        acme_solver: None,
        reason: None,
        serial: None,
    }
}

pub async fn fresh_store(kind: DbKind) -> (SqlStore, TestDb) {
    let db = TestDb::new(kind).await;
    let store = SqlStore::connect(&db.url, 5).await.expect("connect and migrate");
    (store, db)
}

pub fn ctx(now: i64) -> AuditContext {
    AuditContext {
        actor: "token:test".into(),
        request_id: Some("req-1".into()),
        now_us: now * 1_000_000,
    }
}

/// Synthetic facts: the store does not parse, so any consistent values do.
pub fn facts(n: u32, not_after: i64) -> CertificateFacts {
    let fp = format!("{n:064x}");
    CertificateFacts {
        fingerprint_sha256: fp.clone(),
        serial_number: format!("{n:x}"),
        subject: format!("CN=host{n}.example.com,O=Example"),
        issuer: "CN=Example CA".into(),
        common_name: Some(format!("host{n}.example.com")),
        not_before: OffsetDateTime::from_unix_timestamp(NOW - 365 * 86_400).unwrap(),
        not_after: OffsetDateTime::from_unix_timestamp(not_after).unwrap(),
        sans: vec![
            San { kind: SanType::Dns, value: format!("host{n}.example.com") },
            San { kind: SanType::Dns, value: format!("alt{n}.internal") },
        ],
        key: KeyInfo { kind: KeyType::Ec, bits: Some(256), curve: Some("P-256".into()) },
        signature_algorithm: "ecdsa-with-SHA256".into(),
        is_ca: false,
        self_signed: false,
        der: fp.into_bytes(),
    }
}

pub fn new_cert(f: CertificateFacts) -> NewCertificate {
    NewCertificate {
        facts: f,
        source: CertificateSource::Import,
        owner_id: None,
        location: None,
        issued: None,
    }
}

pub const NOW: i64 = 1_800_000_000;
