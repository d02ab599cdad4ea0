//! Network discovery: scan definitions, their runs, and the handshake facts of endpoints.

use cmp_domain::{ScanProgress, ScanRunState};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::OwnerRef;

/// What a scan covers and how hard it tries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanSpec {
    /// Host names, IPv4 and IPv6 addresses, and CIDR ranges, inside the ranges an administrator
    /// allowed (`discovery.allowed_ranges`).
    pub targets: Vec<String>,
    /// Ports and ranges, each with an optional protocol spoken before TLS (`tls`, `smtp`,
    /// `imap`, `pop3`): `443,8443-8445,2525/smtp`. Ports 25 and 587 speak SMTP, 143 IMAP and
    /// 110 POP3 unless told otherwise.
    #[serde(default = "default_ports")]
    pub ports: String,
    /// SNI names to try on every address (host name targets are always tried with their name).
    #[serde(default)]
    pub sni_names: Vec<String>,
    /// Also try the name reverse DNS gives for an address.
    #[serde(default)]
    pub sni_reverse_dns: bool,
    /// Also try without SNI (always done when no name is known for an address).
    #[serde(default = "yes")]
    pub sni_none: bool,
    /// Endpoints tried at once (1-4096).
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Connections to one address at once (1-64).
    #[serde(default = "default_per_host")]
    pub per_host: u32,
    /// Milliseconds to wait for a TCP connection (100-60000).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u32,
    /// Milliseconds for the STARTTLS dialogue and the TLS handshake, each (100-60000).
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout_ms: u32,
    /// Seconds the whole run may take (1-86400); what is left untried is reported.
    #[serde(default = "default_budget")]
    pub budget_secs: u32,
    /// Probe each endpoint that serves TLS for TLS 1.0 and 1.1 (two more connections).
    #[serde(default)]
    pub probe_legacy_tls: bool,
}

fn default_ports() -> String {
    "443".into()
}
fn yes() -> bool {
    true
}
fn default_concurrency() -> u32 {
    256
}
fn default_per_host() -> u32 {
    4
}
fn default_connect_timeout() -> u32 {
    3_000
}
fn default_handshake_timeout() -> u32 {
    5_000
}
fn default_budget() -> u32 {
    3_600
}

/// A scan definition.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Scan {
    pub id: String,
    pub name: String,
    pub spec: ScanSpec,
    /// The owner given to the certificates it finds first.
    pub owner: Option<OwnerRef>,
    /// Runs every this many seconds.
    pub interval_secs: Option<i64>,
    /// Runs on this cron schedule (UTC): `min hour day-of-month month day-of-week`, or with
    /// seconds first.
    pub cron: Option<String>,
    /// Whether the schedule starts runs (a run by hand always can).
    pub enabled: bool,
    /// When the schedule starts it next.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_run_at: Option<OffsetDateTime>,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Its latest run.
    pub last_run: Option<ScanRun>,
}

/// A scan to create.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanCreate {
    /// 1-100 letters, digits, `-`, `_` or `.`.
    pub name: String,
    pub spec: ScanSpec,
    /// Owner (id or name) of the certificates it finds first.
    #[serde(default)]
    pub owner: Option<String>,
    /// Run every this many seconds (60 or more); or give `cron`; or neither (by hand only).
    #[serde(default)]
    pub interval_secs: Option<i64>,
    #[serde(default)]
    pub cron: Option<String>,
    /// Whether the schedule starts runs (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// Changes to a scan: what is given is replaced; `null` clears an optional field.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub spec: Option<ScanSpec>,
    #[serde(default, deserialize_with = "crate::double_option")]
    #[schema(value_type = Option<String>)]
    pub owner: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::double_option")]
    #[schema(value_type = Option<i64>)]
    pub interval_secs: Option<Option<i64>>,
    #[serde(default, deserialize_with = "crate::double_option")]
    #[schema(value_type = Option<String>)]
    pub cron: Option<Option<String>>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// One run of a scan.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScanRun {
    pub id: String,
    pub scan_id: String,
    pub state: ScanRunState,
    /// `manual` or `schedule`.
    pub trigger: String,
    pub started_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// Someone asked it to stop; it stops within a second or so.
    pub cancel_requested: bool,
    pub progress: ScanProgress,
    /// Why it ended, when that needs saying.
    pub detail: Option<String>,
}

/// How an endpoint location's chain was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChainTrust {
    /// Leads to a trusted root (the system's or the platform's CAs) with what was sent.
    Trusted,
    /// Leads there only with intermediates the server did not send.
    Incomplete,
    /// Leads to no trusted root.
    Untrusted,
}

/// What a TLS handshake with an endpoint showed (network scans).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EndpointFacts {
    /// The SNI name sent; absent when none was.
    pub sni: Option<String>,
    /// `tls`, `smtp`, `imap` or `pop3` (STARTTLS).
    pub protocol: String,
    /// `TLSv1.3` or `TLSv1.2`.
    pub tls_version: String,
    pub cipher_suite: String,
    pub alpn: Option<String>,
    pub ocsp_stapled: bool,
    pub chain: ChainTrust,
    /// Certificates presented, leaf included.
    pub chain_length: usize,
    /// Whether the leaf is valid for the SNI name; absent without SNI.
    pub name_matches: Option<bool>,
    /// `TLSv1.0`, `TLSv1.1` when accepted (only when probed).
    pub legacy_versions: Vec<String>,
}
