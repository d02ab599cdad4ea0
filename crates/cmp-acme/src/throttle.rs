//! Holding back from a CA that asked us to (rate limits, `Retry-After`): per account and per
//! registered domain, so that a thousand due certificates do not storm the CA and one busy
//! domain does not stop the others.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::AcmeError;

/// How long to hold back after a rate limit that came without `Retry-After`.
const DEFAULT_HOLD_SECS: i64 = 300;

/// When each scope may try again. Times are Unix seconds, passed in.
#[derive(Debug, Default)]
pub struct Throttle {
    holds: Mutex<Holds>,
}

#[derive(Debug, Default)]
struct Holds {
    account: Option<(i64, String)>,
    domains: HashMap<String, (i64, String)>,
}

/// The registered domain a name counts against: its last two labels. (CAs count rate limits
/// per registered domain under the Public Suffix List; two labels is right for most names and
/// errs towards holding back more, never less, under a multi-label suffix such as `co.uk`.)
pub fn registered_domain(name: &str) -> String {
    let name = name.trim_start_matches("*.").trim_end_matches('.').to_ascii_lowercase();
    if name.parse::<std::net::IpAddr>().is_ok() {
        return name;
    }
    let labels: Vec<&str> = name.rsplitn(3, '.').collect();
    match labels.as_slice() {
        [tld, domain, ..] => format!("{domain}.{tld}"),
        _ => name,
    }
}

impl Throttle {
    /// `Err(Throttled)` while the account or one of the names' domains is held back.
    pub fn check(&self, now: i64, names: &[String]) -> Result<(), AcmeError> {
        let Ok(holds) = self.holds.lock() else { return Ok(()) };
        if let Some((until, why)) = &holds.account
            && *until > now
        {
            return Err(AcmeError::Throttled { until: *until, why: format!("account: {why}") });
        }
        for name in names {
            let domain = registered_domain(name);
            if let Some((until, why)) = holds.domains.get(&domain)
                && *until > now
            {
                return Err(AcmeError::Throttled {
                    until: *until,
                    why: format!("{domain}: {why}"),
                });
            }
        }
        Ok(())
    }

    /// Records what an error asks of us: a rate limit holds back the names' domains until the
    /// CA's `Retry-After`; the whole account when the call named none or the CA says the limit
    /// is the account's (Let's Encrypt: "too many new orders ... from this account").
    pub fn note(&self, now: i64, names: &[String], error: &AcmeError) {
        let problem = match error {
            AcmeError::Problem(p) if p.kind == crate::ProblemKind::RateLimited => p,
            _ => return,
        };
        let until = problem.retry_after.unwrap_or(now + DEFAULT_HOLD_SECS).max(now + 1);
        let why = problem.detail.clone();
        let Ok(mut holds) = self.holds.lock() else { return };
        holds.domains.retain(|_, (held, _)| *held > now);
        if names.is_empty() || why.to_ascii_lowercase().contains("account") {
            holds.account = Some((until, why));
            return;
        }
        for name in names {
            let entry = holds.domains.entry(registered_domain(name)).or_insert((0, String::new()));
            if entry.0 < until {
                *entry = (until, why.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Problem, ProblemKind};

    fn rate_limited(retry_after: Option<i64>) -> AcmeError {
        AcmeError::Problem(Problem {
            kind: ProblemKind::RateLimited,
            r#type: "rateLimited".into(),
            detail: "too many new orders recently".into(),
            subproblems: Vec::new(),
            retry_after,
        })
    }

    #[test]
    fn registered_domains_are_the_last_two_labels() {
        assert_eq!(registered_domain("a.b.Example.com."), "example.com");
        assert_eq!(registered_domain("*.example.com"), "example.com");
        assert_eq!(registered_domain("localhost"), "localhost");
        assert_eq!(registered_domain("192.0.2.7"), "192.0.2.7");
    }

    #[test]
    fn a_rate_limit_holds_back_its_domain_until_retry_after_and_no_other() {
        let throttle = Throttle::default();
        let names = vec!["www.example.com".to_string()];
        throttle.note(1_000, &names, &rate_limited(Some(4_600)));
        let held = throttle.check(1_001, &["api.example.com".into()]).unwrap_err();
        assert_eq!(held.retry_at(), Some(4_600));
        assert!(held.to_string().contains("example.com: too many new orders"), "{held}");
        assert!(throttle.check(1_001, &["www.example.org".into()]).is_ok());
        assert!(throttle.check(4_600, &names).is_ok());
    }

    #[test]
    fn an_account_limit_holds_back_every_domain() {
        let throttle = Throttle::default();
        let mut limit = rate_limited(Some(2_000));
        if let AcmeError::Problem(p) = &mut limit {
            p.detail = "too many new orders (300) from this account in the last 3h0m0s".into();
        }
        throttle.note(1_000, &["a.example.com".into()], &limit);
        let held = throttle.check(1_500, &["b.example.org".into()]).unwrap_err();
        assert!(held.to_string().contains("account: too many new orders"), "{held}");
    }

    #[test]
    fn without_retry_after_it_holds_a_default_time_and_other_errors_hold_nothing() {
        let throttle = Throttle::default();
        throttle.note(1_000, &[], &rate_limited(None));
        let held = throttle.check(1_000, &["a.example".into()]).unwrap_err();
        assert_eq!(held.retry_at(), Some(1_000 + DEFAULT_HOLD_SECS));
        let other = Throttle::default();
        other.note(1_000, &[], &AcmeError::Unreachable("down".into()));
        assert!(other.check(1_000, &[]).is_ok());
    }
}
