//! CMP's domain: what a certificate is to the platform, its status and findings, and roles.
//! Pure types and rules; no database, HTTP or runtime in here. Time is always passed in.

pub mod agent;
pub mod certificate;
pub mod discovery;
pub mod issuance;
pub mod notify;
pub mod policy;
pub mod renewal;
pub mod revocation;
pub mod role;
pub mod secret;

pub use agent::{AgentStatus, DeploymentState, JobKind, JobState};
pub use certificate::{
    CertificateFacts, CertificateStatus, DEFAULT_EXPIRY_WINDOW_DAYS, Finding, KeyInfo, KeyType,
    LocationKind, San, SanType, VALIDITY_SLACK_SECS, evaluate, static_findings, status_at,
    validity_findings,
};
pub use discovery::{ScanProgress, ScanRunState};
pub use issuance::{Backoff, KeySource, RequestKind, RequestSpec, RequestState};
pub use notify::{
    DEFAULT_EXPIRY_THRESHOLDS, DeliveryState, MAX_DELIVERY_ATTEMPTS, NotificationEvent,
    crossed_threshold, delivery_retry_secs,
};
pub use policy::{Ask, KeyRule, Policy, Violation, name_matches};
pub use renewal::{
    CurrentVersion, RenewBefore, RenewBeforeTooLong, RenewalAction, RenewalDecision, RenewalInput,
    RenewalReason, check_renew_before, decide, format_span, max_renew_before_secs, min_age_secs,
    renew_before_secs,
};
pub use revocation::RevocationReason;
pub use role::Role;
pub use secret::Secret;

/// The source of the current time. Code that decides by time takes it from here (or as a
/// value), never from the system clock directly, so tests can pin it.
pub trait Clock: Send + Sync {
    fn now(&self) -> time::OffsetDateTime;
}
