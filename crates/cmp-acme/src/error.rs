//! What went wrong in an ACME exchange, classified for the issuer: what a retry can fix, what
//! it cannot, and the CA's own words (RFC 8555 section 6.7 problem documents).

use std::fmt;

/// RFC 8555 error types CMP acts on; the rest are `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    RateLimited,
    BadNonce,
    Unauthorized,
    Caa,
    Dns,
    Connection,
    IncorrectResponse,
    RejectedIdentifier,
    BadCsr,
    ExternalAccountRequired,
    ServerInternal,
    Malformed,
    Other,
}

impl ProblemKind {
    /// From a problem `type` such as `urn:ietf:params:acme:error:rateLimited`.
    pub fn from_type(urn: &str) -> ProblemKind {
        match urn.strip_prefix("urn:ietf:params:acme:error:").unwrap_or(urn) {
            "rateLimited" => Self::RateLimited,
            "badNonce" => Self::BadNonce,
            "unauthorized" => Self::Unauthorized,
            "caa" => Self::Caa,
            "dns" => Self::Dns,
            "connection" => Self::Connection,
            "incorrectResponse" => Self::IncorrectResponse,
            "rejectedIdentifier" => Self::RejectedIdentifier,
            "badCSR" => Self::BadCsr,
            "externalAccountRequired" => Self::ExternalAccountRequired,
            "serverInternal" => Self::ServerInternal,
            "malformed" => Self::Malformed,
            _ => Self::Other,
        }
    }

    /// Whether the same call can succeed later without anyone changing anything. Validation
    /// failures (unauthorized, dns, caa, ...) need a person: retrying only spends rate limits.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::RateLimited | Self::BadNonce | Self::ServerInternal)
    }
}

/// A problem document the CA sent, with what CMP keeps of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The `type` as sent, short form (`rateLimited`).
    pub r#type: String,
    pub detail: String,
    /// `identifier: detail` of each subproblem.
    pub subproblems: Vec<String>,
    /// The CA's `Retry-After`, Unix seconds, when it sent one.
    pub retry_after: Option<i64>,
}

impl Problem {
    pub(crate) fn from_acme(problem: &instant_acme::Problem, retry_after: Option<i64>) -> Problem {
        let urn = problem.r#type.clone().unwrap_or_default();
        let short = urn.strip_prefix("urn:ietf:params:acme:error:").unwrap_or(&urn).to_string();
        let subproblems = problem
            .subproblems
            .iter()
            .map(|sub| {
                let who = sub.identifier.as_ref().map(|i| i.authorized(false).to_string());
                let who = who.unwrap_or_default();
                let detail = sub.detail.clone().unwrap_or_default();
                let kind = sub.r#type.as_deref().unwrap_or("").rsplit(':').next().unwrap_or("");
                format!("{who}: {kind}: {detail}")
            })
            .collect();
        Problem {
            kind: ProblemKind::from_type(&urn),
            r#type: short,
            detail: problem.detail.clone().unwrap_or_default(),
            subproblems,
            retry_after,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.r#type, self.detail)?;
        if !self.subproblems.is_empty() {
            write!(f, " ({})", self.subproblems.join("; "))?;
        }
        if let Some(at) = self.retry_after {
            write!(f, " [retry after {}]", crate::format_time(at))?;
        }
        Ok(())
    }
}

/// Why an ACME call failed. Messages never hold keys, EAB HMACs or tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcmeError {
    /// The CA answered with a problem document.
    #[error("the ACME CA answered {0}")]
    Problem(Problem),
    /// A challenge did not validate; `challenge` names it (`http-01 for a.example`).
    #[error("challenge {challenge} failed: {problem}")]
    ChallengeFailed { challenge: String, problem: Problem },
    /// The CA cannot be reached (network, TLS, timeout).
    #[error("ACME CA unreachable: {0}")]
    Unreachable(String),
    /// Preparing a challenge failed (DNS provider, propagation); a retry can succeed.
    #[error("challenge not ready: {0}")]
    Solver(String),
    /// CMP holds back: the CA asked it to wait (Retry-After) for this account or domain.
    #[error("holding back until {until_text}: {why}", until_text = crate::format_time(*until))]
    Throttled { until: i64, why: String },
    /// The adapter's configuration cannot work (no solver for a name, bad EAB key, ...).
    #[error("ACME configuration: {0}")]
    Config(String),
    /// The CA's answers make no sense (an order without a certificate, an unreadable chain).
    #[error("ACME protocol: {0}")]
    Protocol(String),
}

impl AcmeError {
    /// Whether retrying later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            AcmeError::Problem(p) => p.kind.is_transient(),
            AcmeError::Unreachable(_) | AcmeError::Solver(_) | AcmeError::Throttled { .. } => true,
            AcmeError::ChallengeFailed { .. } | AcmeError::Config(_) | AcmeError::Protocol(_) => {
                false
            }
        }
    }

    /// Not before when a retry makes sense (Unix seconds), when the CA said.
    pub fn retry_at(&self) -> Option<i64> {
        match self {
            AcmeError::Problem(p) | AcmeError::ChallengeFailed { problem: p, .. } => p.retry_after,
            AcmeError::Throttled { until, .. } => Some(*until),
            _ => None,
        }
    }

    /// instant-acme's error, with the `Retry-After` of the response it came from.
    pub(crate) fn from_acme(e: instant_acme::Error, retry_after: Option<i64>) -> AcmeError {
        match e {
            instant_acme::Error::Api(problem) => {
                AcmeError::Problem(Problem::from_acme(&problem, retry_after))
            }
            instant_acme::Error::Timeout(_) => {
                AcmeError::Unreachable("the order did not progress in time".into())
            }
            instant_acme::Error::Other(inner) => AcmeError::Unreachable(inner.to_string()),
            instant_acme::Error::Unsupported(what) => {
                AcmeError::Config(format!("the CA does not support {what}"))
            }
            other => AcmeError::Protocol(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_types_are_classified() {
        let urn = |t: &str| format!("urn:ietf:params:acme:error:{t}");
        assert_eq!(ProblemKind::from_type(&urn("rateLimited")), ProblemKind::RateLimited);
        assert_eq!(ProblemKind::from_type(&urn("caa")), ProblemKind::Caa);
        assert_eq!(ProblemKind::from_type(&urn("somethingNew")), ProblemKind::Other);
        assert!(ProblemKind::RateLimited.is_transient());
        assert!(ProblemKind::BadNonce.is_transient());
        assert!(!ProblemKind::Unauthorized.is_transient());
        assert!(!ProblemKind::Caa.is_transient());
    }

    #[test]
    fn a_problem_keeps_detail_subproblems_and_retry_after() {
        let problem: instant_acme::Problem = serde_json::from_str(
            r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many certificates",
                "status":429,"subproblems":[{"type":"urn:ietf:params:acme:error:rateLimited",
                "detail":"5 per week","identifier":{"type":"dns","value":"a.example"}}]}"#,
        )
        .unwrap();
        let e = AcmeError::from_acme(instant_acme::Error::Api(problem), Some(1_800_000_000));
        assert!(e.is_retryable());
        assert_eq!(e.retry_at(), Some(1_800_000_000));
        let text = e.to_string();
        assert!(text.contains("rateLimited: too many certificates"), "{text}");
        assert!(text.contains("a.example: rateLimited: 5 per week"), "{text}");
        assert!(text.contains("retry after 2027-01-15"), "{text}");
    }
}
