//! Rows as the rest of the platform sees them, and the inputs and queries of the store.

use std::collections::BTreeMap;

use cmp_domain::{
    CertificateFacts, CertificateStatus, Finding, KeyType, LocationKind, Role, Secret,
};

/// Who did a change, and under which request; written into the audit event.
#[derive(Debug, Clone)]
pub struct AuditContext {
    /// `token:<id>`, `user:<subject>`, or `system`.
    pub actor: String,
    pub request_id: Option<String>,
    /// Unix microseconds of the change.
    pub now_us: i64,
}

impl AuditContext {
    /// Seconds part of the change time.
    pub fn now(&self) -> i64 {
        self.now_us.div_euclid(1_000_000)
    }
}

/// Which owners' certificates a caller may see: all of them, or only some.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Owners(Vec<String>),
}

/// How a certificate came to the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateSource {
    Import,
    Discovery,
    Issued,
}

impl CertificateSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateSource::Import => "import",
            CertificateSource::Discovery => "discovery",
            CertificateSource::Issued => "issued",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Import, Self::Discovery, Self::Issued].into_iter().find(|k| k.as_str() == s)
    }
}

/// Where a certificate was seen, as reported with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLocation {
    pub kind: LocationKind,
    /// `host:port[#sni]`, `agent:path`, or `cluster/namespace/secret`.
    pub address: String,
    /// What a network scan saw there; `None` keeps what was recorded before.
    pub endpoint: Option<EndpointSeen>,
}

/// What a network scan saw at an endpoint location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSeen {
    /// Its endpoint findings, as stored bits.
    pub finding_flags: i64,
    /// Its handshake facts, JSON.
    pub details: String,
}

/// A certificate to add to the inventory.
#[derive(Debug, Clone)]
pub struct NewCertificate {
    pub facts: CertificateFacts,
    pub source: CertificateSource,
    pub owner_id: Option<String>,
    pub location: Option<NewLocation>,
    /// For a certificate a CA has just issued: its links, written with its row.
    pub issued: Option<IssuedLinks>,
}

/// A message to [`CertificateStore::import_certificate_batches`].
///
/// [`CertificateStore::import_certificate_batches`]: crate::CertificateStore::import_certificate_batches
#[derive(Debug)]
pub enum ImportBatch {
    /// More certificates to write.
    Certificates(Vec<NewCertificate>),
    /// The input is complete and acceptable: commit.
    End,
}

/// What ties an issued certificate to the platform.
#[derive(Debug, Clone)]
pub struct IssuedLinks {
    pub adapter_id: String,
    pub managed_certificate_id: Option<String>,
    /// Name of a server-made private key in the secret store.
    pub key_secret: Option<String>,
}

/// What an import did with one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOutcome {
    pub id: String,
    pub fingerprint_sha256: String,
    /// True when the certificate was new to the inventory.
    pub created: bool,
    /// Whether the caller's scope covers the certificate. False only for one that existed
    /// outside it (another team's, or one without an owner for a scoped caller): the caller
    /// may learn that it exists, not its id or anything else of it.
    pub in_scope: bool,
}

/// A recorded location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub kind: LocationKind,
    pub address: String,
    pub first_seen: i64,
    pub last_seen: i64,
    /// When a scan found the endpoint serving another certificate, or nothing.
    pub gone_at: Option<i64>,
    /// Findings of the endpoint (network scans).
    pub findings: Vec<cmp_domain::Finding>,
    /// Handshake facts of the endpoint (network scans), JSON.
    pub details: Option<serde_json::Value>,
}

/// A certificate as stored (without its DER, which is fetched on its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRecord {
    pub id: String,
    pub fingerprint_sha256: String,
    pub serial_number: String,
    pub subject: String,
    pub issuer: String,
    pub common_name: Option<String>,
    pub not_before: i64,
    pub not_after: i64,
    pub sans: Vec<cmp_domain::San>,
    pub key: cmp_domain::KeyInfo,
    pub signature_algorithm: String,
    pub is_ca: bool,
    pub self_signed: bool,
    /// Findings that do not depend on time (weak key, SHA-1, ...).
    pub static_findings: Vec<Finding>,
    pub owner: Option<OwnerRef>,
    pub labels: BTreeMap<String, String>,
    pub source: CertificateSource,
    pub locations: Vec<Location>,
    /// Unix seconds, when revoked through the platform.
    pub revoked_at: Option<i64>,
    pub revocation_reason: Option<String>,
    /// The managed certificate this is a version of.
    pub managed_certificate_id: Option<String>,
    /// Whether its private key was made by the server and is kept in the secret store.
    pub has_server_key: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An owner's id and name, as shown beside a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    pub id: String,
    pub name: String,
}

/// Changes to a certificate's mutable fields. `owner_id: Some(None)` clears the owner.
#[derive(Debug, Clone, Default)]
pub struct CertificateUpdate {
    pub owner_id: Option<Option<String>>,
    pub labels: Option<BTreeMap<String, String>>,
}

/// Sort keys for certificate listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertificateSort {
    #[default]
    NotAfter,
    CreatedAt,
}

/// Position after the last item of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub key: i64,
    pub id: String,
}

/// Filters, sort and page of a certificate listing.
#[derive(Debug, Clone)]
pub struct CertificateQuery {
    pub scope: Scope,
    /// Substring of the subject or any SAN, case-insensitive.
    pub q: Option<String>,
    pub status: Option<CertificateStatus>,
    pub owner_id: Option<String>,
    pub issuer: Option<String>,
    pub expires_before: Option<i64>,
    pub expires_after: Option<i64>,
    pub key_type: Option<KeyType>,
    pub finding: Option<Finding>,
    pub sort: CertificateSort,
    pub limit: u32,
    pub cursor: Option<Cursor>,
    /// Time of evaluation (Unix seconds) for status filters.
    pub now: i64,
    /// Expiring window in seconds.
    pub window_secs: i64,
}

impl CertificateQuery {
    /// A query for everything, first page, at `now`.
    pub fn all(now: i64) -> Self {
        CertificateQuery {
            scope: Scope::All,
            q: None,
            status: None,
            owner_id: None,
            issuer: None,
            expires_before: None,
            expires_after: None,
            key_type: None,
            finding: None,
            sort: CertificateSort::NotAfter,
            limit: 100,
            cursor: None,
            now,
            window_secs: cmp_domain::DEFAULT_EXPIRY_WINDOW_DAYS * 86_400,
        }
    }
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<Cursor>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` rows: the extra row only says that more follow, and the
    /// cursor points after the last row kept.
    pub(crate) fn from_rows(
        mut items: Vec<T>,
        limit: u32,
        cursor_of: impl Fn(&T) -> Cursor,
    ) -> Self {
        let limit = limit as usize;
        let next_cursor = (items.len() > limit).then(|| {
            items.truncate(limit);
            items.last().map(cursor_of)
        });
        Page { items, next_cursor: next_cursor.flatten() }
    }
}

/// A team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub description: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A team to create.
#[derive(Debug, Clone)]
pub struct NewOwner {
    pub name: String,
    pub email: Option<String>,
    pub description: Option<String>,
}

/// Changes to a team. Inner `None` clears the field.
#[derive(Debug, Clone, Default)]
pub struct OwnerUpdate {
    pub name: Option<String>,
    pub email: Option<Option<String>>,
    pub description: Option<Option<String>>,
}

/// An API token as stored: its hash, never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// Owners a developer token may act for; empty for other roles.
    pub owner_ids: Vec<String>,
    pub expires_at: Option<i64>,
    pub created_by: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A person known from an OpenID Connect login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    /// The name of the provider in CMP's configuration.
    pub provider: String,
    /// The provider's `sub`.
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// What the last login's claims gave.
    pub role: Role,
    pub owner_ids: Vec<String>,
    pub groups: Vec<String>,
    pub created_at: i64,
    pub last_login_at: i64,
}

/// A login's claims, as mapped to CMP.
#[derive(Debug, Clone)]
pub struct UserLogin {
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub role: Role,
    pub owner_ids: Vec<String>,
    pub groups: Vec<String>,
}

/// A session to store; the caller made the id and passes only its hash.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id_hash: String,
    pub user_id: String,
    pub csrf_token: Secret<String>,
    pub role: Role,
    pub owner_ids: Vec<String>,
    pub created_at: i64,
    /// The absolute end.
    pub expires_at: i64,
}

/// A stored session and the user it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub user_id: String,
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
    pub csrf_token: Secret<String>,
    pub role: Role,
    pub owner_ids: Vec<String>,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

/// A login sent to the provider, kept until its callback (at most [`crate::LOGIN_ATTEMPT_SECS`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginAttempt {
    /// SHA-256 of the `state` sent.
    pub state_hash: String,
    pub provider: String,
    pub nonce: Secret<String>,
    pub pkce_verifier: Secret<String>,
    /// Where the browser goes after the callback (a path of CMP's own).
    pub return_to: String,
    pub created_at: i64,
}

/// A token to create; the caller made the secret and passes only its hash.
#[derive(Debug, Clone)]
pub struct NewApiToken {
    pub name: String,
    pub token_hash: String,
    pub role: Role,
    pub owner_ids: Vec<String>,
    pub expires_at: Option<i64>,
}

/// What an audit event records: the closed list of changes CMP makes and audits. Stored and
/// hashed as [`AuditAction::as_str`]; the trail's readers get the text (events written by an
/// older version keep theirs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    CertificateCreated,
    CertificateLocationAdded,
    CertificateUpdated,
    CertificateDeleted,
    CertificateRevoked,
    CertificateKeyPurged,
    CertificateKeyDownloaded,
    RequestCreated,
    RequestSubmitted,
    RequestApproved,
    RequestRejected,
    RequestIssued,
    RequestRetryScheduled,
    RequestFailed,
    ManagedCertificateCreated,
    PolicySet,
    OwnerCreated,
    OwnerUpdated,
    OwnerDeleted,
    TokenCreated,
    TokenRevoked,
    AdapterCreated,
    AdapterUpdated,
    AdapterAgentTokenIssued,
    AgentBootstrapTokenCreated,
    AgentEnrolled,
    AgentIdentityRenewed,
    AgentDisabled,
    AgentEnabled,
    AgentDeleted,
    DeploymentsSet,
    DeploymentVerified,
    DeploymentFailed,
    DeploymentKeyRequested,
    AgentDiscoveryQueued,
    AgentDiscoveryReported,
    DeploymentRemoved,
    UserLoggedIn,
    UserLoggedOut,
    BreakGlassUsed,
    CertificateLocationGone,
    ScanCreated,
    ScanUpdated,
    ScanDeleted,
    ScanRunStarted,
    ScanRunCancelRequested,
    ScanRunFinished,
    NotificationRuleCreated,
    NotificationRuleUpdated,
    NotificationRuleDeleted,
}

impl AuditAction {
    /// Every action.
    pub const ALL: [AuditAction; 50] = [
        AuditAction::CertificateCreated,
        AuditAction::CertificateLocationAdded,
        AuditAction::CertificateUpdated,
        AuditAction::CertificateDeleted,
        AuditAction::CertificateRevoked,
        AuditAction::CertificateKeyPurged,
        AuditAction::CertificateKeyDownloaded,
        AuditAction::RequestCreated,
        AuditAction::RequestSubmitted,
        AuditAction::RequestApproved,
        AuditAction::RequestRejected,
        AuditAction::RequestIssued,
        AuditAction::RequestRetryScheduled,
        AuditAction::RequestFailed,
        AuditAction::ManagedCertificateCreated,
        AuditAction::PolicySet,
        AuditAction::OwnerCreated,
        AuditAction::OwnerUpdated,
        AuditAction::OwnerDeleted,
        AuditAction::TokenCreated,
        AuditAction::TokenRevoked,
        AuditAction::AdapterCreated,
        AuditAction::AdapterUpdated,
        AuditAction::AdapterAgentTokenIssued,
        AuditAction::AgentBootstrapTokenCreated,
        AuditAction::AgentEnrolled,
        AuditAction::AgentIdentityRenewed,
        AuditAction::AgentDisabled,
        AuditAction::AgentEnabled,
        AuditAction::AgentDeleted,
        AuditAction::DeploymentsSet,
        AuditAction::DeploymentVerified,
        AuditAction::DeploymentFailed,
        AuditAction::DeploymentKeyRequested,
        AuditAction::AgentDiscoveryQueued,
        AuditAction::AgentDiscoveryReported,
        AuditAction::DeploymentRemoved,
        AuditAction::UserLoggedIn,
        AuditAction::UserLoggedOut,
        AuditAction::BreakGlassUsed,
        AuditAction::CertificateLocationGone,
        AuditAction::ScanCreated,
        AuditAction::ScanUpdated,
        AuditAction::ScanDeleted,
        AuditAction::ScanRunStarted,
        AuditAction::ScanRunCancelRequested,
        AuditAction::ScanRunFinished,
        AuditAction::NotificationRuleCreated,
        AuditAction::NotificationRuleUpdated,
        AuditAction::NotificationRuleDeleted,
    ];

    /// The text stored in `audit_logs.action`, e.g. `request.issued`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::CertificateCreated => "certificate.created",
            AuditAction::CertificateLocationAdded => "certificate.location_added",
            AuditAction::CertificateUpdated => "certificate.updated",
            AuditAction::CertificateDeleted => "certificate.deleted",
            AuditAction::CertificateRevoked => "certificate.revoked",
            AuditAction::CertificateKeyPurged => "certificate.key_purged",
            AuditAction::CertificateKeyDownloaded => "certificate.key_downloaded",
            AuditAction::RequestCreated => "request.created",
            AuditAction::RequestSubmitted => "request.submitted",
            AuditAction::RequestApproved => "request.approved",
            AuditAction::RequestRejected => "request.rejected",
            AuditAction::RequestIssued => "request.issued",
            AuditAction::RequestRetryScheduled => "request.retry_scheduled",
            AuditAction::RequestFailed => "request.failed",
            AuditAction::ManagedCertificateCreated => "managed_certificate.created",
            AuditAction::PolicySet => "policy.set",
            AuditAction::OwnerCreated => "owner.created",
            AuditAction::OwnerUpdated => "owner.updated",
            AuditAction::OwnerDeleted => "owner.deleted",
            AuditAction::TokenCreated => "token.created",
            AuditAction::TokenRevoked => "token.revoked",
            AuditAction::AdapterCreated => "adapter.created",
            AuditAction::AdapterUpdated => "adapter.updated",
            AuditAction::AdapterAgentTokenIssued => "adapter.agent_token_issued",
            AuditAction::AgentBootstrapTokenCreated => "agent.bootstrap_token_created",
            AuditAction::AgentEnrolled => "agent.enrolled",
            AuditAction::AgentIdentityRenewed => "agent.identity_renewed",
            AuditAction::AgentDisabled => "agent.disabled",
            AuditAction::AgentEnabled => "agent.enabled",
            AuditAction::AgentDeleted => "agent.deleted",
            AuditAction::DeploymentsSet => "deployment.set",
            AuditAction::DeploymentVerified => "deployment.verified",
            AuditAction::DeploymentFailed => "deployment.failed",
            AuditAction::DeploymentKeyRequested => "deployment.key_requested",
            AuditAction::AgentDiscoveryQueued => "agent.discovery_queued",
            AuditAction::AgentDiscoveryReported => "agent.discovery_reported",
            AuditAction::DeploymentRemoved => "deployment.removed",
            AuditAction::UserLoggedIn => "user.logged_in",
            AuditAction::UserLoggedOut => "user.logged_out",
            AuditAction::BreakGlassUsed => "auth.break_glass",
            AuditAction::CertificateLocationGone => "certificate.location_gone",
            AuditAction::ScanCreated => "scan.created",
            AuditAction::ScanUpdated => "scan.updated",
            AuditAction::ScanDeleted => "scan.deleted",
            AuditAction::ScanRunStarted => "scan.run_started",
            AuditAction::ScanRunCancelRequested => "scan.run_cancel_requested",
            AuditAction::ScanRunFinished => "scan.run_finished",
            AuditAction::NotificationRuleCreated => "notification_rule.created",
            AuditAction::NotificationRuleUpdated => "notification_rule.updated",
            AuditAction::NotificationRuleDeleted => "notification_rule.deleted",
        }
    }
}

/// An audit event to append.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    pub action: AuditAction,
    pub entity_type: String,
    pub entity_id: String,
    pub details: serde_json::Value,
}

/// One link of the audit chain.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub seq: i64,
    pub occurred_us: i64,
    pub actor: String,
    pub action: String,
    pub entity_type: String,
    pub entity_id: String,
    pub request_id: Option<String>,
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// Filters of an audit listing; newest first, paged by sequence number.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    pub since_us: Option<i64>,
    pub until_us: Option<i64>,
    pub limit: u32,
    /// Return events with a sequence number below this.
    pub before_seq: Option<i64>,
}
