//! Storage for CMP: one set of traits, one SQL implementation that runs on SQLite (embedded
//! default) and PostgreSQL, versioned migrations for each, and the audit hash chain.
//!
//! Every method that changes data takes an [`AuditContext`] and writes its audit event in the
//! same transaction as the change.

mod adapters;
mod agent_lookups;
mod agents;
mod audit;
pub mod batch;
mod certificates;
mod chains;
mod directory_cache;
mod discovery;
mod error;
mod group_commit;
mod job_results;
mod managed;
mod notifications;
mod owners;
mod records;
mod requests;
mod search;
mod sql;
mod stats;
mod tokens;
mod users;

pub use adapters::*;
pub use agents::*;
pub use audit::{ChainBreak, GENESIS_HASH, canonical_json, event_hash};
pub use certificates::{MAX_LABELS, validate_labels};
pub use discovery::*;
pub use error::StoreError;
pub use group_commit::{CompletedRequest, IssuedRequest};
pub use job_results::JobResultItem;
pub use managed::*;
pub use notifications::*;
pub use records::*;
pub use requests::*;
pub use sql::{Dialect, SqlStore};
pub use stats::*;

use async_trait::async_trait;

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Certificates, their owners and labels, and where they were seen.
#[async_trait]
pub trait CertificateStore: Send + Sync {
    /// Inserts certificates not known yet (by SHA-256 fingerprint) and records their locations
    /// (on known certificates, only those inside `scope`).
    async fn import_certificates(
        &self,
        ctx: &AuditContext,
        scope: &Scope,
        certificates: &[NewCertificate],
    ) -> StoreResult<Vec<ImportOutcome>>;

    /// [`CertificateStore::import_certificates`] for certificates still being read: each
    /// batch is written as it arrives, in one transaction that commits on
    /// [`ImportBatch::End`]. If `batches` closes before that, nothing is kept: `None`.
    async fn import_certificate_batches(
        &self,
        ctx: &AuditContext,
        scope: &Scope,
        batches: tokio::sync::mpsc::Receiver<ImportBatch>,
    ) -> StoreResult<Option<Vec<ImportOutcome>>>;

    /// One page of certificates matching the query.
    async fn list_certificates(
        &self,
        query: &CertificateQuery,
    ) -> StoreResult<Page<CertificateRecord>>;

    /// A certificate by platform id or fingerprint, within the scope.
    async fn get_certificate(&self, id: &str, scope: &Scope) -> StoreResult<CertificateRecord>;

    /// The DER of a certificate, within the scope.
    async fn get_certificate_der(&self, id: &str, scope: &Scope) -> StoreResult<Vec<u8>>;

    /// Sets the owner and/or labels.
    async fn update_certificate(
        &self,
        ctx: &AuditContext,
        id: &str,
        scope: &Scope,
        update: &CertificateUpdate,
    ) -> StoreResult<CertificateRecord>;

    /// The chain recorded with an issued certificate (issuing CA first), DER, the leaf within
    /// the scope; empty when none was recorded (an import, or issued before chains were kept).
    async fn certificate_chain(&self, id: &str, scope: &Scope) -> StoreResult<Vec<Vec<u8>>>;

    /// Deletes a certificate and its locations. `Conflict` when it is in the recorded chain of
    /// another certificate (a CA certificate that downloads still need).
    async fn delete_certificate(
        &self,
        ctx: &AuditContext,
        id: &str,
        scope: &Scope,
    ) -> StoreResult<()>;
}

/// Teams that own certificates.
#[async_trait]
pub trait OwnerStore: Send + Sync {
    async fn create_owner(&self, ctx: &AuditContext, owner: &NewOwner) -> StoreResult<Owner>;
    async fn list_owners(&self) -> StoreResult<Vec<Owner>>;
    /// An owner by id or by name.
    async fn get_owner(&self, id_or_name: &str) -> StoreResult<Owner>;
    async fn update_owner(
        &self,
        ctx: &AuditContext,
        id: &str,
        update: &OwnerUpdate,
    ) -> StoreResult<Owner>;
    async fn delete_owner(&self, ctx: &AuditContext, id: &str) -> StoreResult<()>;
}

/// Hashed API tokens.
#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn create_token(&self, ctx: &AuditContext, token: &NewApiToken) -> StoreResult<ApiToken>;
    /// The live (not revoked, not expired at `now`) token with this hash.
    async fn find_token_by_hash(&self, token_hash: &str, now: i64)
    -> StoreResult<Option<ApiToken>>;
    async fn list_tokens(&self) -> StoreResult<Vec<ApiToken>>;
    async fn revoke_token(&self, ctx: &AuditContext, id: &str, now: i64) -> StoreResult<()>;
    /// Number of tokens ever created (the bootstrap token is made when this is zero).
    async fn count_tokens(&self) -> StoreResult<i64>;
}

/// How long a login may stay at the provider before its callback is refused, in seconds.
pub const LOGIN_ATTEMPT_SECS: i64 = 600;

/// People from OpenID Connect logins, their sessions (when not kept in Redis), and the logins
/// under way.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Records a login (audited `user.logged_in`): creates the user at the first one, and
    /// updates the claims and the last login time after.
    async fn record_login(&self, ctx: &AuditContext, login: &UserLogin) -> StoreResult<User>;
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    async fn get_user(&self, id: &str) -> StoreResult<User>;
    async fn create_session(&self, session: &NewSession) -> StoreResult<()>;
    /// The session with this id hash, whatever its times (the caller checks them).
    async fn find_session(&self, id_hash: &str) -> StoreResult<Option<StoredSession>>;
    /// Marks a session used at `now` (its idle timeout counts from here).
    async fn touch_session(&self, id_hash: &str, now: i64) -> StoreResult<()>;
    /// Removes a session; whether it existed.
    async fn delete_session(&self, id_hash: &str) -> StoreResult<bool>;
    /// Removes sessions idle since before `idle_before` or past their end, and stale logins.
    async fn purge_sessions(&self, idle_before: i64, now: i64) -> StoreResult<u64>;
    async fn save_login_attempt(&self, attempt: &LoginAttempt) -> StoreResult<()>;
    /// Takes (removes) a login by its state hash, once; `None` when unknown, taken already,
    /// or older than [`LOGIN_ATTEMPT_SECS`].
    async fn take_login_attempt(
        &self,
        state_hash: &str,
        now: i64,
    ) -> StoreResult<Option<LoginAttempt>>;
}

/// The append-only, hash-chained audit trail.
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<Page<AuditEvent>>;
    /// Recomputes every hash; returns the first broken link, if any, and the number checked.
    async fn verify_audit_chain(&self) -> StoreResult<(u64, Option<ChainBreak>)>;
    /// Appends a standalone event (for actions that change nothing else, e.g. a key download).
    async fn append_audit(&self, ctx: &AuditContext, event: &NewAuditEvent) -> StoreResult<i64>;
    /// Appends standalone events of several callers, each with its context, in one
    /// transaction (e.g. the key hand-overs of one dispatch to a fleet).
    async fn append_audits(&self, events: &[(AuditContext, NewAuditEvent)]) -> StoreResult<i64>;
}

/// Everything the server needs from storage.
#[async_trait]
pub trait Store:
    CertificateStore
    + OwnerStore
    + TokenStore
    + AuditStore
    + AdapterStore
    + RequestStore
    + ManagedStore
    + AgentStore
    + UserStore
    + StatsStore
    + ScanStore
    + NotificationStore
{
    /// Answers when the database is reachable.
    async fn ping(&self) -> StoreResult<()>;
    /// Which database this is (for logs and health output only).
    fn dialect(&self) -> Dialect;
}
