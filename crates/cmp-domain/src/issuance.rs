//! Issuance requests: what they ask for, their kinds, the state machine, and retry backoff.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Ask, KeyInfo};

/// What a request or a managed certificate asks for, once checked: the names, the lifetime,
/// and who makes the key. Stored as the `spec` of requests and managed certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RequestSpec {
    pub common_name: Option<String>,
    #[serde(default)]
    pub dns_names: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub ip_addresses: Vec<IpAddr>,
    pub validity_days: i64,
    pub key_source: KeySource,
    /// For keys made by the server or an agent (`ecdsa_p256`, `rsa2048`, ...).
    pub key_type: Option<String>,
    /// `renew_before` of a managed certificate (`30d`, `33%`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_before: Option<String>,
    /// The ACME solver (its id) chosen for these names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme_solver: Option<String>,
    /// Why a revoke request revokes (RFC 5280 reason name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The serial number a revoke request revokes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
}

impl RequestSpec {
    /// The lifetime asked for, in seconds.
    pub fn validity_secs(&self) -> i64 {
        self.validity_days.saturating_mul(86_400)
    }

    /// What the policy checks.
    pub fn ask<'a>(&'a self, key: &'a KeyInfo) -> Ask<'a> {
        Ask {
            common_name: self.common_name.as_deref(),
            dns_names: &self.dns_names,
            ip_addresses: &self.ip_addresses,
            key,
            validity_secs: self.validity_secs(),
        }
    }
}

/// Who holds the private key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// The requester's CSR (of a request, or re-signed at each renewal).
    Csr,
    /// The server makes a key for each version, kept in the secret store.
    Server,
    /// The agent of the managed certificate's deployment makes a key for each version on its
    /// host and sends a CSR; the private key never leaves the host.
    Agent,
}

/// What a request asks the CA to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    Issue,
    Renew,
    Revoke,
}

impl RequestKind {
    pub const ALL: [RequestKind; 3] = [Self::Issue, Self::Renew, Self::Revoke];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issue => "issue",
            Self::Renew => "renew",
            Self::Revoke => "revoke",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where a request is: `pending -> (awaiting_approval ->) approved -> submitted -> issued |
/// failed | rejected`. `issued` also ends a revoke request: the CA carried it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    Pending,
    AwaitingApproval,
    Approved,
    Submitted,
    Issued,
    Failed,
    Rejected,
}

impl RequestState {
    pub const ALL: [RequestState; 7] = [
        Self::Pending,
        Self::AwaitingApproval,
        Self::Approved,
        Self::Submitted,
        Self::Issued,
        Self::Failed,
        Self::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::AwaitingApproval => "awaiting_approval",
            Self::Approved => "approved",
            Self::Submitted => "submitted",
            Self::Issued => "issued",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// A request in a final state never changes again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Issued | Self::Failed | Self::Rejected)
    }

    /// Whether the state machine allows going from `self` to `to`. A submitted request goes
    /// back to approved when an attempt failed and will be retried.
    pub fn can_become(self, to: RequestState) -> bool {
        use RequestState::*;
        matches!(
            (self, to),
            (Pending, AwaitingApproval | Approved | Rejected | Failed)
                | (AwaitingApproval, Approved | Rejected)
                | (Approved, Submitted | Failed)
                | (Submitted, Issued | Failed | Approved)
        )
    }
}

/// Retry delays: exponential from `base_secs`, doubling per failed attempt, capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base_secs: i64,
    pub cap_secs: i64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { base_secs: 30, cap_secs: 6 * 3600 }
    }
}

impl Backoff {
    /// Delay before the next try after `failures` consecutive failures (1 = the first failure).
    pub fn delay_secs(self, failures: u32) -> i64 {
        let exponent = failures.saturating_sub(1).min(40);
        self.base_secs.saturating_mul(1_i64 << exponent).min(self.cap_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_follow_the_documented_machine() {
        use RequestState::*;
        assert!(Pending.can_become(AwaitingApproval));
        assert!(AwaitingApproval.can_become(Approved));
        assert!(Approved.can_become(Submitted));
        assert!(Submitted.can_become(Issued));
        assert!(Submitted.can_become(Approved));
        assert!(!AwaitingApproval.can_become(Submitted));
        assert!(!Issued.can_become(Approved));
        for state in RequestState::ALL.into_iter().filter(|s| s.is_final()) {
            assert!(RequestState::ALL.iter().all(|to| !state.can_become(*to)));
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff { base_secs: 30, cap_secs: 600 };
        assert_eq!(b.delay_secs(1), 30);
        assert_eq!(b.delay_secs(2), 60);
        assert_eq!(b.delay_secs(5), 480);
        assert_eq!(b.delay_secs(6), 600);
        assert_eq!(b.delay_secs(1000), 600);
    }
}
