//! When to renew a managed certificate: pure functions over an input that holds the time.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::issuance::{Backoff, RequestState};

/// How long before expiry to renew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewBefore {
    /// A fixed time before `not_after`, in seconds.
    Secs(i64),
    /// A share of the lifetime before `not_after`, in percent (1..=99).
    Percent(u8),
}

impl RenewBefore {
    /// Parses `30d`, `12h`, `90m`, `45s` or `33%`.
    pub fn parse(s: &str) -> Result<RenewBefore, String> {
        let s = s.trim();
        let bad = || format!("{s:?} is not a duration like 30d, 12h, 90m or a share like 33%");
        if let Some(p) = s.strip_suffix('%') {
            let p: u8 = p.parse().map_err(|_| bad())?;
            if !(1..=99).contains(&p) {
                return Err(format!("{s:?}: the share must be between 1% and 99%"));
            }
            return Ok(RenewBefore::Percent(p));
        }
        let split = s.len().saturating_sub(1);
        let (number, unit) = (s.get(..split).ok_or_else(bad)?, s.get(split..).ok_or_else(bad)?);
        let n: i64 = number.parse().map_err(|_| bad())?;
        let unit_secs = match unit {
            "d" => 86_400,
            "h" => 3_600,
            "m" => 60,
            "s" => 1,
            _ => return Err(bad()),
        };
        if n <= 0 {
            return Err(format!("{s:?}: the duration must be positive"));
        }
        Ok(RenewBefore::Secs(n.saturating_mul(unit_secs)))
    }
}

impl std::fmt::Display for RenewBefore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenewBefore::Percent(p) => write!(f, "{p}%"),
            RenewBefore::Secs(s) if s % 86_400 == 0 => write!(f, "{}d", s / 86_400),
            RenewBefore::Secs(s) if s % 3_600 == 0 => write!(f, "{}h", s / 3_600),
            RenewBefore::Secs(s) if s % 60 == 0 => write!(f, "{}m", s / 60),
            RenewBefore::Secs(s) => write!(f, "{s}s"),
        }
    }
}

/// Everything a renewal decision depends on. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalInput<'a> {
    /// The managed certificate's id: seeds its jitter, so the spread is stable across replicas.
    pub id: &'a str,
    pub now: i64,
    /// Validity of the current version; `None` when nothing was issued yet.
    pub current: Option<(i64, i64)>,
    pub renew_before: Option<RenewBefore>,
    /// Consecutive failed renewals, and when the last one failed.
    pub failures: u32,
    pub last_failure_at: Option<i64>,
    pub backoff: Backoff,
    /// The newest request of this managed certificate, when it has not ended yet (awaiting
    /// approval, retrying, in flight): its id and state.
    pub open_request: Option<(&'a str, RequestState)>,
    /// The CA's suggested renewal window for the current version (ACME ARI, RFC 9773), when
    /// the CA gives one: it replaces the lifetime rule and `renew_before`.
    pub suggested_window: Option<(i64, i64)>,
}

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RenewalAction {
    Wait,
    Renew,
}

/// Why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RenewalReason {
    NotIssued,
    NotDue,
    LifetimeElapsed,
    RenewBeforeWindow,
    Expired,
    BackingOff,
    /// A request for it is still open; its end triggers the next decision.
    RequestOpen,
    /// Inside the renewal window the CA suggested (ACME ARI).
    SuggestedWindow,
}

/// A decision, with a message for people ("renewing: 67% of lifetime elapsed").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RenewalDecision {
    pub action: RenewalAction,
    pub reason: RenewalReason,
    /// When renewal is (or was) due, Unix seconds; with jitter applied.
    pub due_at: i64,
    /// When to look again if waiting.
    pub next_check_at: i64,
    pub message: String,
}

/// A point in `0..span` that depends only on `id`.
fn spread(id: &str, span: i64) -> i64 {
    // FNV-1a: stable across processes and versions, unlike std's hasher.
    let hash = id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    if span <= 0 { 0 } else { i64::try_from(hash % span.unsigned_abs()).unwrap_or(0) }
}

/// The spread of renewal times: up to 5% of the lifetime, at most one hour, always earlier.
fn jitter_secs(id: &str, lifetime: i64) -> i64 {
    spread(id, (lifetime / 20).clamp(0, 3_600))
}

fn percent_elapsed(not_before: i64, not_after: i64, now: i64) -> i64 {
    let lifetime = (not_after - not_before).max(1);
    ((now - not_before).clamp(0, lifetime) * 100) / lifetime
}

fn format_time(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}

/// How long to wait for an open request before looking again (its end wakes the scheduler
/// sooner).
const OPEN_REQUEST_RECHECK_SECS: i64 = 3_600;

/// Decides whether to renew now.
pub fn decide(input: &RenewalInput<'_>) -> RenewalDecision {
    let now = input.now;
    if let Some((id, state)) = input.open_request {
        return RenewalDecision {
            action: RenewalAction::Wait,
            reason: RenewalReason::RequestOpen,
            due_at: now,
            next_check_at: now + OPEN_REQUEST_RECHECK_SECS,
            message: format!("waiting: request {id} is {}", state.as_str()),
        };
    }
    let Some((not_before, not_after)) = input.current else {
        return backoff_or(input, now, || RenewalDecision {
            action: RenewalAction::Renew,
            reason: RenewalReason::NotIssued,
            due_at: now,
            next_check_at: now,
            message: "issuing: no certificate issued yet".into(),
        });
    };
    let lifetime = (not_after - not_before).max(1);
    let (due_at, reason) = match (input.suggested_window, input.renew_before) {
        // RFC 9773 section 4.2: a uniformly chosen moment inside the window (stable per
        // certificate, so replicas agree); a window already over means now.
        (Some((start, end)), _) if end > start => {
            (start + spread(input.id, end - start), RenewalReason::SuggestedWindow)
        }
        (_, None) => (
            not_before + lifetime * 2 / 3 - jitter_secs(input.id, lifetime),
            RenewalReason::LifetimeElapsed,
        ),
        (_, Some(RenewBefore::Percent(p))) => (
            not_after - lifetime * i64::from(p) / 100 - jitter_secs(input.id, lifetime),
            RenewalReason::RenewBeforeWindow,
        ),
        (_, Some(RenewBefore::Secs(s))) => (
            not_after - s.min(lifetime) - jitter_secs(input.id, lifetime),
            RenewalReason::RenewBeforeWindow,
        ),
    };
    let elapsed = percent_elapsed(not_before, not_after, now);
    if now < due_at {
        return RenewalDecision {
            action: RenewalAction::Wait,
            reason: RenewalReason::NotDue,
            due_at,
            next_check_at: due_at,
            message: format!(
                "not due: {elapsed}% of lifetime elapsed, renews at {}",
                format_time(due_at)
            ),
        };
    }
    backoff_or(input, due_at, || {
        if now > not_after {
            let ago = (now - not_after) / 3_600;
            RenewalDecision {
                action: RenewalAction::Renew,
                reason: RenewalReason::Expired,
                due_at,
                next_check_at: now,
                message: format!("renewing: the certificate expired {ago} h ago"),
            }
        } else {
            let message = match (reason, input.renew_before) {
                (RenewalReason::SuggestedWindow, _) => format!(
                    "renewing: inside the CA's suggested renewal window (ARI), {elapsed}% of \
                     lifetime elapsed"
                ),
                (RenewalReason::RenewBeforeWindow, Some(rb)) => format!(
                    "renewing: inside the renew-before window ({rb} before expiry), \
                     {elapsed}% of lifetime elapsed"
                ),
                _ => format!("renewing: {elapsed}% of lifetime elapsed"),
            };
            RenewalDecision {
                action: RenewalAction::Renew,
                reason,
                due_at,
                next_check_at: now,
                message,
            }
        }
    })
}

/// After failures, waits out the backoff before `renew`.
fn backoff_or(
    input: &RenewalInput<'_>,
    due_at: i64,
    renew: impl FnOnce() -> RenewalDecision,
) -> RenewalDecision {
    if let (n @ 1.., Some(failed_at)) = (input.failures, input.last_failure_at) {
        let retry_at = failed_at.saturating_add(input.backoff.delay_secs(n));
        if input.now < retry_at {
            return RenewalDecision {
                action: RenewalAction::Wait,
                reason: RenewalReason::BackingOff,
                due_at,
                next_check_at: retry_at,
                message: format!(
                    "backing off after {n} failed attempt{}: next attempt at {}",
                    if n == 1 { "" } else { "s" },
                    format_time(retry_at)
                ),
            };
        }
    }
    renew()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn input(now: i64, renew_before: Option<RenewBefore>) -> RenewalInput<'static> {
        RenewalInput {
            id: "mc-1",
            now,
            current: Some((0, 90 * DAY)),
            renew_before,
            failures: 0,
            last_failure_at: None,
            backoff: Backoff { base_secs: 60, cap_secs: 3_600 },
            open_request: None,
            suggested_window: None,
        }
    }

    #[test]
    fn an_open_request_is_waited_for_even_when_due_or_never_issued() {
        for current in [Some((0, 90 * DAY)), None] {
            let mut waiting = input(80 * DAY, None);
            waiting.current = current;
            waiting.open_request = Some(("req-7", RequestState::AwaitingApproval));
            let d = decide(&waiting);
            assert_eq!((d.action, d.reason), (RenewalAction::Wait, RenewalReason::RequestOpen));
            assert_eq!(d.message, "waiting: request req-7 is awaiting_approval");
            assert!(d.next_check_at > 80 * DAY);
        }
    }

    #[test]
    fn renews_at_two_thirds_by_default() {
        let early = decide(&input(59 * DAY, None));
        assert_eq!(early.action, RenewalAction::Wait);
        assert_eq!(early.reason, RenewalReason::NotDue);
        assert!(early.due_at <= 60 * DAY && early.due_at >= 60 * DAY - 3_600);
        let due = decide(&input(60 * DAY + 1, None));
        assert_eq!(due.action, RenewalAction::Renew);
        assert_eq!(due.message, "renewing: 66% of lifetime elapsed");
    }

    #[test]
    fn renew_before_as_duration_and_share() {
        let rb = RenewBefore::parse("10d").unwrap();
        assert_eq!(decide(&input(79 * DAY, Some(rb))).action, RenewalAction::Wait);
        let d = decide(&input(80 * DAY + 1, Some(rb)));
        assert_eq!((d.action, d.reason), (RenewalAction::Renew, RenewalReason::RenewBeforeWindow));
        assert!(d.message.contains("10d before expiry"), "{}", d.message);
        let half = RenewBefore::parse("50%").unwrap();
        assert_eq!(decide(&input(46 * DAY, Some(half))).action, RenewalAction::Renew);
        assert!(RenewBefore::parse("0%").is_err());
        assert!(RenewBefore::parse("-3d").is_err());
        assert!(RenewBefore::parse("3w").is_err());
        assert!(RenewBefore::parse("").is_err());
    }

    #[test]
    fn an_expired_certificate_is_still_renewed() {
        let d = decide(&input(100 * DAY, None));
        assert_eq!((d.action, d.reason), (RenewalAction::Renew, RenewalReason::Expired));
        assert!(d.message.contains("expired 240 h ago"), "{}", d.message);
    }

    #[test]
    fn failures_back_off_exponentially_with_a_cap() {
        let now = 70 * DAY;
        let mut i = input(now, None);
        i.failures = 3;
        i.last_failure_at = Some(now - 100);
        let d = decide(&i);
        assert_eq!((d.action, d.reason), (RenewalAction::Wait, RenewalReason::BackingOff));
        assert_eq!(d.next_check_at, now - 100 + 240);
        i.last_failure_at = Some(now - 240);
        assert_eq!(decide(&i).action, RenewalAction::Renew);
        i.failures = 30;
        i.last_failure_at = Some(now - 3_599);
        assert_eq!(decide(&i).next_check_at, now + 1);
    }

    #[test]
    fn a_thousand_certificates_issued_together_spread_out() {
        let ids: Vec<String> = (0..1000).map(|n| format!("mc-{n}")).collect();
        let mut due: Vec<i64> =
            ids.iter().map(|id| decide(&RenewalInput { id, ..input(0, None) }).due_at).collect();
        due.sort_unstable();
        due.dedup();
        assert!(due.len() > 600, "only {} distinct seconds", due.len());
        assert!(due.iter().all(|t| (60 * DAY - 3_600..=60 * DAY).contains(t)));
    }

    #[test]
    fn nothing_issued_yet_renews_now() {
        let mut i = input(5, None);
        i.current = None;
        assert_eq!(decide(&i).reason, RenewalReason::NotIssued);
    }

    /// Recorded `renewalInfo` windows (as Let's Encrypt sends them), turned into input.
    #[test]
    fn a_suggested_window_replaces_the_lifetime_rule_and_spreads_inside_it() {
        // An incident window early in the lifetime: renew inside it, not at 2/3.
        let mut early = input(11 * DAY, None);
        early.suggested_window = Some((10 * DAY, 11 * DAY));
        let d = decide(&early);
        assert_eq!((d.action, d.reason), (RenewalAction::Renew, RenewalReason::SuggestedWindow));
        assert!((10 * DAY..11 * DAY).contains(&d.due_at), "{d:?}");
        // Certificates spread across the window instead of renewing in one second.
        let dues: std::collections::BTreeSet<i64> = (0..50)
            .map(|n| {
                let id = format!("mc-{n}");
                decide(&RenewalInput { id: &id, ..early.clone() }).due_at
            })
            .collect();
        assert!(dues.len() > 40, "{} distinct due times", dues.len());
        // Before the window: wait for it, and say so.
        let mut before = input(DAY, None);
        before.suggested_window = Some((60 * DAY, 62 * DAY));
        let d = decide(&before);
        assert_eq!((d.action, d.reason), (RenewalAction::Wait, RenewalReason::NotDue));
        assert!(d.due_at >= 60 * DAY && d.next_check_at == d.due_at, "{d:?}");
        // A window that already ended: renew now.
        let mut past = input(70 * DAY, None);
        past.suggested_window = Some((60 * DAY, 62 * DAY));
        let d = decide(&past);
        assert_eq!(d.action, RenewalAction::Renew);
        assert!(d.message.contains("suggested renewal window"), "{}", d.message);
        // A backwards window is ignored: the lifetime rule decides.
        let mut backwards = input(10 * DAY, None);
        backwards.suggested_window = Some((11 * DAY, 10 * DAY));
        assert_eq!(decide(&backwards).reason, RenewalReason::NotDue);
        assert!(decide(&backwards).due_at > 55 * DAY);
    }
}
