//! Host agents, their jobs and the deployments those jobs carry out: states and the rules over
//! time (when an agent counts as stale or offline, when a failed job is tried again).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An agent that has not checked in for this long is `stale`.
pub const STALE_AFTER_SECS: i64 = 120;
/// An agent that has not checked in for this long is `offline`.
pub const OFFLINE_AFTER_SECS: i64 = 600;
/// Attempts of a job before it ends `failed` for good.
pub const MAX_JOB_ATTEMPTS: i64 = 5;

/// Whether an agent is taking part, from what it last did and what an admin decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Checked in within the last two minutes.
    Online,
    /// Silent for more than two minutes.
    Stale,
    /// Silent for more than ten minutes, or never checked in since enrolment.
    Offline,
    /// Refused by an admin: its certificate is no longer accepted.
    Disabled,
}

impl AgentStatus {
    /// The status at `now` of an agent last seen at `last_seen` (never when `None`).
    pub fn at(disabled: bool, last_seen: Option<i64>, now: i64) -> AgentStatus {
        if disabled {
            return AgentStatus::Disabled;
        }
        match last_seen.map(|seen| now - seen) {
            Some(silent) if silent <= STALE_AFTER_SECS => AgentStatus::Online,
            Some(silent) if silent <= OFFLINE_AFTER_SECS => AgentStatus::Stale,
            _ => AgentStatus::Offline,
        }
    }
}

/// What a job asks of an agent. The server names a target; what the target's paths and
/// commands are is only ever known to the agent's own configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Install a certificate, its chain and its key on the target, reload, verify. The key is
    /// the server's (sent with the job) or one the agent made (found on the host).
    Deploy,
    /// Make a key on the host and send a CSR for it; the certificate comes back as a `deploy`
    /// job. The private key never leaves the host.
    RenewWithLocalKey,
    /// Read the certificates under the agent's `discovery.paths` into the inventory.
    Discover,
    /// The deployment was dropped: a `file` target's files are deleted; a served target's
    /// stay (its server's configuration names them).
    Remove,
}

impl JobKind {
    pub const ALL: [JobKind; 4] =
        [JobKind::Deploy, JobKind::RenewWithLocalKey, JobKind::Discover, JobKind::Remove];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Deploy => "deploy",
            JobKind::RenewWithLocalKey => "renew_with_local_key",
            JobKind::Discover => "discover",
            JobKind::Remove => "remove",
        }
    }

    pub fn parse(s: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|kind| kind.as_str() == s)
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its agent (and for its retry time).
    Queued,
    /// Taken by its agent until the lease ends; an ended lease puts it back in the queue.
    Leased,
    Succeeded,
    /// Failed on its last attempt, or replaced by a newer version's job.
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Leased => "leased",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        [JobState::Queued, JobState::Leased, JobState::Succeeded, JobState::Failed]
            .into_iter()
            .find(|state| state.as_str() == s)
    }
}

/// Whether a deployment serves the managed certificate's current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    /// A job is on its way (or none could be made yet: no version exists).
    Pending,
    /// The agent installed the version and a TLS handshake saw it served.
    Verified,
    /// The last attempt failed at a step; the previous certificate is served again.
    Failed,
}

impl DeploymentState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::Pending => "pending",
            DeploymentState::Verified => "verified",
            DeploymentState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<DeploymentState> {
        [DeploymentState::Pending, DeploymentState::Verified, DeploymentState::Failed]
            .into_iter()
            .find(|state| state.as_str() == s)
    }
}

/// Seconds to wait before attempt `attempts + 1` of a failed job: 30 s, doubling, at most an
/// hour.
pub fn job_retry_delay_secs(attempts: i64) -> i64 {
    let doublings = u32::try_from(attempts.clamp(1, 8) - 1).unwrap_or(0);
    (30_i64 << doublings).min(3_600)
}

/// An agent's name: what its certificate is issued to and what deployments say
/// (`web-01:nginx`). Letters, digits, `.`, `-` and `_`, starting with a letter or digit.
pub fn valid_agent_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// A target's name in the agent's configuration, as a job names it.
pub fn valid_target_name(name: &str) -> bool {
    valid_agent_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_silence() {
        assert_eq!(AgentStatus::at(false, Some(1_000), 1_000 + 60), AgentStatus::Online);
        assert_eq!(AgentStatus::at(false, Some(1_000), 1_000 + 121), AgentStatus::Stale);
        assert_eq!(AgentStatus::at(false, Some(1_000), 1_000 + 601), AgentStatus::Offline);
        assert_eq!(AgentStatus::at(false, None, 1_000), AgentStatus::Offline);
        assert_eq!(AgentStatus::at(true, Some(1_000), 1_000), AgentStatus::Disabled);
    }

    #[test]
    fn retries_back_off_to_an_hour() {
        let delays: Vec<_> = (1..=9).map(job_retry_delay_secs).collect();
        assert_eq!(delays, [30, 60, 120, 240, 480, 960, 1_920, 3_600, 3_600]);
    }

    #[test]
    fn names_are_plain() {
        for ok in ["web-01", "web01.example.com", "a", "db_2"] {
            assert!(valid_agent_name(ok), "{ok}");
        }
        for bad in ["", "-web", "web/01", "web 01", "../x", &"a".repeat(64)] {
            assert!(!valid_agent_name(bad), "{bad}");
        }
    }
}
