//! The dashboard's aggregates (`/api/v1/stats/...`): computed in SQL, within the caller's
//! scope (a developer sees its teams' figures only).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Certificates by status (as `GET /api/v1/certificates?status=` counts them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatusCounts {
    pub total: i64,
    pub valid: i64,
    pub expiring: i64,
    pub expired: i64,
    pub not_yet_valid: i64,
    pub revoked: i64,
}

/// Issuance requests that need a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RequestStats {
    pub awaiting_approval: i64,
    /// Requests that ended `failed` in the last 7 days.
    pub failed_last_7_days: i64,
}

/// Managed certificates, and those whose last renewal attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ManagedStats {
    pub total: i64,
    pub renewal_failing: i64,
}

/// `GET /api/v1/stats/overview`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Overview {
    pub certificates: StatusCounts,
    /// Days before expiry when a certificate counts as `expiring`.
    pub expiry_window_days: i64,
    pub requests: RequestStats,
    pub managed: ManagedStats,
}

/// `GET /api/v1/stats/expiry` parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExpiryParams {
    /// Number of weeks from midnight UTC today, 1-104 (default 13).
    #[param(minimum = 1, maximum = 104)]
    pub weeks: Option<u32>,
}

/// One line of the timeline: an owner, "no owner", or the rest folded together.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExpirySeries {
    /// The owner's name, `no owner`, or `other owners`.
    pub label: String,
    /// The owner's id; absent for `no owner` and `other owners`.
    pub owner_id: Option<String>,
    /// Certificates expiring in each week, one number per entry of `week_starts`.
    pub counts: Vec<i64>,
}

/// `GET /api/v1/stats/expiry`: certificates (not revoked) expiring per week, stacked by owner:
/// the owners with the most first, then `other owners`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExpiryTimeline {
    /// The first instant of each week (RFC 3339); the first starts at midnight UTC today.
    pub week_starts: Vec<String>,
    pub series: Vec<ExpirySeries>,
}
