//! Notifications: the events a rule can ask for, when an expiry threshold is crossed, and how
//! a failed delivery is retried. Pure; the time is passed in.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Something a person should hear about.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NotificationEvent {
    /// A certificate not under management, or the current version of a managed one (its
    /// renewal has not succeeded), is within a threshold of its expiry.
    CertificateExpiring,
    /// A managed certificate is past its renewal time by the margin, with no new version.
    RenewalOverdue,
    RequestFailed,
    RequestAwaitingApproval,
    /// An adapter's CA does not answer its status check (global rules only).
    AdapterUnhealthy,
    /// A deployment failed, or has not been verified with the current version in time.
    DeploymentFailed,
    /// An enabled agent has not been heard from in time (global rules only).
    AgentOffline,
    /// Opt-in: a certificate was issued for a request.
    CertificateIssued,
    /// Opt-in: a managed certificate has a new version.
    CertificateRenewed,
    /// Opt-in: a certificate was revoked.
    CertificateRevoked,
    /// A test send, by hand.
    Test,
}

impl NotificationEvent {
    pub const ALL: [NotificationEvent; 11] = [
        Self::CertificateExpiring,
        Self::RenewalOverdue,
        Self::RequestFailed,
        Self::RequestAwaitingApproval,
        Self::AdapterUnhealthy,
        Self::DeploymentFailed,
        Self::AgentOffline,
        Self::CertificateIssued,
        Self::CertificateRenewed,
        Self::CertificateRevoked,
        Self::Test,
    ];

    /// What a rule listens to when it names no events: everything that needs a person.
    pub const DEFAULT: [NotificationEvent; 7] = [
        Self::CertificateExpiring,
        Self::RenewalOverdue,
        Self::RequestFailed,
        Self::RequestAwaitingApproval,
        Self::AdapterUnhealthy,
        Self::DeploymentFailed,
        Self::AgentOffline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CertificateExpiring => "certificate_expiring",
            Self::RenewalOverdue => "renewal_overdue",
            Self::RequestFailed => "request_failed",
            Self::RequestAwaitingApproval => "request_awaiting_approval",
            Self::AdapterUnhealthy => "adapter_unhealthy",
            Self::DeploymentFailed => "deployment_failed",
            Self::AgentOffline => "agent_offline",
            Self::CertificateIssued => "certificate_issued",
            Self::CertificateRenewed => "certificate_renewed",
            Self::CertificateRevoked => "certificate_revoked",
            Self::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// Events about the platform rather than a team's certificates: only a rule for every
    /// owner hears them.
    pub fn is_global_only(self) -> bool {
        matches!(self, Self::AdapterUnhealthy | Self::AgentOffline)
    }
}

/// Days before expiry at which a certificate is announced when a rule names none.
pub const DEFAULT_EXPIRY_THRESHOLDS: [u32; 4] = [30, 14, 7, 1];

/// The tightest threshold (days) that a certificate expiring at `not_after` has crossed at
/// `now`, or `None` when it is expired or outside every threshold. One notice per
/// certificate per threshold: a certificate first seen five days before its end is announced
/// once at 7 days, not also at 30 and 14.
pub fn crossed_threshold(thresholds: &[u32], not_after: i64, now: i64) -> Option<u32> {
    let left = not_after - now;
    if left <= 0 {
        return None;
    }
    thresholds.iter().copied().filter(|days| left <= i64::from(*days) * 86_400).min()
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its first or next attempt.
    Pending,
    Sent,
    /// Every attempt failed.
    Failed,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 3] = [Self::Pending, Self::Sent, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// Attempts of one delivery before it is given up as failed.
pub const MAX_DELIVERY_ATTEMPTS: u32 = 8;

/// How long to wait after the `attempts`-th failed attempt: 30 s doubling, at most an hour
/// (eight attempts span about two hours).
pub fn delivery_retry_secs(attempts: u32) -> i64 {
    let doublings = attempts.saturating_sub(1).min(16);
    (30_i64 << doublings).min(3_600)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn the_tightest_crossed_threshold_is_announced() {
        let t = DEFAULT_EXPIRY_THRESHOLDS;
        assert_eq!(crossed_threshold(&t, 40 * DAY, 0), None);
        assert_eq!(crossed_threshold(&t, 30 * DAY, 0), Some(30));
        assert_eq!(crossed_threshold(&t, 20 * DAY, 0), Some(30));
        assert_eq!(crossed_threshold(&t, 5 * DAY, 0), Some(7));
        assert_eq!(crossed_threshold(&t, DAY, 0), Some(1));
        assert_eq!(crossed_threshold(&t, 0, 0), None, "expired");
        assert_eq!(crossed_threshold(&[], DAY, 0), None);
    }

    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!(delivery_retry_secs(1), 30);
        assert_eq!(delivery_retry_secs(2), 60);
        assert_eq!(delivery_retry_secs(8), 3_600);
        assert_eq!(delivery_retry_secs(u32::MAX), 3_600);
    }

    #[test]
    fn events_round_trip_by_name() {
        for event in NotificationEvent::ALL {
            assert_eq!(NotificationEvent::parse(event.as_str()), Some(event));
        }
        assert_eq!(NotificationEvent::parse("expiry"), None);
    }
}
