//! When to renew a managed certificate: pure functions over an input that holds the time.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::certificate::VALIDITY_SLACK_SECS;
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

/// The minimum age of any version whose lifetime is 2 hours or more, however short.
const MIN_AGE_FLOOR_SECS: i64 = 3_600;
/// A CA's suggested window (ARI) is followed down to this age: it may be an incident in which
/// the CA revokes within days, so waiting out 10% of a 90-day lifetime could be too late; an
/// hour still stops a CA that suggests a past window for every new certificate from making
/// each scheduler tick a renewal.
const SUGGESTED_WINDOW_MIN_AGE_SECS: i64 = 3_600;

/// The minimum age of a version with a lifetime of `lifetime_secs`: the scheduler does not
/// renew it younger than this, so that a renewal can never be due as soon as the new version
/// is issued (one new certificate and key per tick). The longer of 1 hour and 10% of the
/// lifetime (an hour stops the loop for short lifetimes, 10% keeps renewals of long ones from
/// bunching up), and never more than half the lifetime, so that even a lifetime of minutes
/// renews before it ends.
pub fn min_age_secs(lifetime_secs: i64) -> i64 {
    (lifetime_secs / 10).max(MIN_AGE_FLOOR_SECS).min(lifetime_secs.max(0) / 2)
}

/// How long before `not_after` `renew_before` renews a version of `lifetime_secs`. A share is
/// rounded up, so that it is always at least a second before expiry.
pub fn renew_before_secs(renew_before: RenewBefore, lifetime_secs: i64) -> i64 {
    match renew_before {
        RenewBefore::Secs(s) => s,
        RenewBefore::Percent(p) => {
            let p = i64::from(p);
            let lifetime = lifetime_secs.max(0);
            // lifetime * p / 100, rounded up, without overflowing for any i64 lifetime.
            lifetime / 100 * p + (lifetime % 100 * p + 99) / 100
        }
    }
}

/// The longest `renew_before` a lifetime admits: the lifetime less the minimum age.
pub fn max_renew_before_secs(lifetime_secs: i64) -> i64 {
    lifetime_secs.saturating_sub(min_age_secs(lifetime_secs))
}

/// A `renew_before` that would renew a version before its minimum age
/// ([`min_age_secs`]): every version would be due as soon as it is issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewBeforeTooLong {
    /// What was asked.
    pub renew_before: RenewBefore,
    /// The lifetime asked for, in seconds.
    pub lifetime_secs: i64,
    /// `renew_before` as the caller wrote it (`24h`, not `1d`), for the message.
    pub asked: String,
}

impl RenewBeforeTooLong {
    /// Names `renew_before` in the message as the caller wrote it.
    pub fn as_written(self, text: &str) -> Self {
        RenewBeforeTooLong { asked: text.trim().to_string(), ..self }
    }
}

impl std::fmt::Display for RenewBeforeTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (rb, lifetime) = (&self.asked, self.lifetime_secs);
        let min_age = format_span(min_age_secs(lifetime));
        let why = "the minimum age of a version (the longer of 1 h and 10% of its lifetime), so \
                   that a new version is not due for renewal as soon as it is issued";
        match self.renew_before {
            RenewBefore::Secs(_) => {
                let max = max_renew_before_secs(lifetime);
                // The largest whole number of one unit, as it would be written.
                let unit = [86_400, 3_600, 60, 1].into_iter().find(|u| max >= *u).unwrap_or(1);
                write!(
                    f,
                    "renew_before ({rb}) must be shorter than the validity ({}) by at least \
                     {min_age}, {why}: give at most {} (e.g. {})",
                    format_span(lifetime),
                    format_span(max),
                    RenewBefore::Secs((max / unit * unit).max(1))
                )
            }
            RenewBefore::Percent(_) => {
                let max = (1..=99_u8)
                    .rev()
                    .find(|p| check_renew_before(RenewBefore::Percent(*p), lifetime).is_ok())
                    .unwrap_or(1);
                write!(
                    f,
                    "renew_before ({rb}) must leave at least {min_age} of the validity ({}), \
                     {why}: give at most {max}%",
                    format_span(lifetime)
                )
            }
        }
    }
}

impl std::error::Error for RenewBeforeTooLong {}

/// Whether `renew_before` leaves a version of `lifetime_secs` its minimum age before it is due
/// (jitter only ever moves the time later than that floor, never earlier). Checked wherever a
/// `renew_before` or a validity is set; the scheduler also holds back a version that a CA made
/// shorter than asked.
pub fn check_renew_before(
    renew_before: RenewBefore,
    lifetime_secs: i64,
) -> Result<(), RenewBeforeTooLong> {
    if renew_before_secs(renew_before, lifetime_secs) <= max_renew_before_secs(lifetime_secs) {
        Ok(())
    } else {
        Err(RenewBeforeTooLong { renew_before, lifetime_secs, asked: renew_before.to_string() })
    }
}

/// A span of time for people: `1 day`, `3 days 12 h`, `2 h 24 min`, `30 min`, `45 s`.
pub fn format_span(secs: i64) -> String {
    let secs = secs.max(0);
    let (days, hours, mins, s) =
        (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60, secs % 60);
    let unit = |n: i64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let (first, second) = if days > 0 {
        (unit(days, "day", "days"), (hours > 0).then(|| format!("{hours} h")))
    } else if hours > 0 {
        (format!("{hours} h"), (mins > 0).then(|| format!("{mins} min")))
    } else if mins > 0 {
        (format!("{mins} min"), (s > 0).then(|| format!("{s} s")))
    } else {
        (format!("{s} s"), None)
    };
    match second {
        Some(second) => format!("{first} {second}"),
        None => first,
    }
}

/// The version a decision is about. Times are Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentVersion {
    /// Its `notBefore`.
    pub not_before: i64,
    /// Its `notAfter`.
    pub not_after: i64,
    /// When CMP received it. A CA may backdate `not_before` (Let's Encrypt by an hour, a Vault
    /// role by any `not_before_duration`): the minimum age counts from the later of the two.
    /// `None` when unknown.
    pub issued_at: Option<i64>,
    /// The lifetime that was asked for, in seconds (within the policy's longest). A CA that
    /// ignored it and issued for longer (an ACME CA without `notAfter`) does not stretch the
    /// renewal: a version longer than asked by more than [`VALIDITY_SLACK_SECS`] is renewed as
    /// if it ended `asked_lifetime_secs` after its `not_before`. `None`: its own lifetime.
    pub asked_lifetime_secs: Option<i64>,
    /// Whether it was revoked: it is then replaced at once, whatever its age.
    pub revoked: bool,
}

/// Everything a renewal decision depends on. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalInput<'a> {
    /// The managed certificate's id: seeds its jitter, so the spread is stable across replicas.
    pub id: &'a str,
    pub now: i64,
    /// The current version; `None` when nothing was issued yet.
    pub current: Option<CurrentVersion>,
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
    /// The rule would renew now, but the current version is younger than its minimum age
    /// ([`min_age_secs`]): renewing it could renew every new version at once, in a loop.
    MinimumAge,
    /// The current version was revoked: it is replaced at once, whatever its age.
    Revoked,
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

/// The spread of renewal times: up to 5% of the lifetime, at most one hour, always earlier,
/// and never below `floor`: spread inside `floor..=due`, the jitter cannot make a version due
/// before its minimum age.
fn jittered(id: &str, lifetime: i64, due: i64, floor: i64) -> i64 {
    let span = (lifetime / 20).clamp(0, 3_600).min(due.saturating_sub(floor)).max(0);
    due - spread(id, span)
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

/// Decides whether to renew now. Whatever the rule, the CA's answer or the jitter, a version
/// is never due before it is [`min_age_secs`] old (an hour at most for a CA's suggested
/// window), counted from the later of its `not_before` and when CMP received it.
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
    let Some(version) = input.current else {
        return backoff_or(input, now, || RenewalDecision {
            action: RenewalAction::Renew,
            reason: RenewalReason::NotIssued,
            due_at: now,
            next_check_at: now,
            message: "issuing: no certificate issued yet".into(),
        });
    };
    if version.revoked {
        return backoff_or(input, now, || RenewalDecision {
            action: RenewalAction::Renew,
            reason: RenewalReason::Revoked,
            due_at: now,
            next_check_at: now,
            message: "renewing: the current version was revoked".into(),
        });
    }
    let CurrentVersion { not_before, not_after, .. } = version;
    // The renewal follows the lifetime asked for, never a longer one the CA chose (beyond
    // the slack a backdated notBefore takes, as for the `validity_exceeds_request` finding).
    let not_after = match version.asked_lifetime_secs.filter(|asked| *asked > 0) {
        Some(asked) if not_after - not_before > asked.saturating_add(VALIDITY_SLACK_SECS) => {
            not_before.saturating_add(asked)
        }
        _ => not_after,
    };
    let lifetime = (not_after - not_before).max(1);
    let issued = version.issued_at.map_or(not_before, |t| t.max(not_before));
    let min_age = min_age_secs(lifetime);
    let grown = issued.saturating_add(min_age);
    // `floor`: the earliest the version may be renewed by this rule.
    let (rule_due, reason, floor) = match (input.suggested_window, input.renew_before) {
        // RFC 9773 section 4.2: a uniformly chosen moment inside the window (stable per
        // certificate, so replicas agree); a window already over means now.
        (Some((start, end)), _) if end > start => (
            start + spread(input.id, end - start),
            RenewalReason::SuggestedWindow,
            issued.saturating_add(min_age.min(SUGGESTED_WINDOW_MIN_AGE_SECS)),
        ),
        (_, None) => (
            jittered(input.id, lifetime, not_before + lifetime * 2 / 3, grown),
            RenewalReason::LifetimeElapsed,
            grown,
        ),
        (_, Some(rb)) => (
            jittered(
                input.id,
                lifetime,
                not_after.saturating_sub(renew_before_secs(rb, lifetime)),
                grown,
            ),
            RenewalReason::RenewBeforeWindow,
            grown,
        ),
    };
    let due_at = rule_due.max(floor);
    let elapsed = percent_elapsed(not_before, not_after, now);
    if now < due_at {
        if rule_due < floor {
            let cause = match (reason, input.renew_before) {
                (RenewalReason::SuggestedWindow, _) => {
                    "the CA's suggested renewal window starts earlier".to_string()
                }
                (RenewalReason::RenewBeforeWindow, Some(rb)) => format!(
                    "renew_before ({rb}) leaves less than that of its {} lifetime",
                    format_span(lifetime)
                ),
                _ => "it reached CMP late in its lifetime".to_string(),
            };
            return RenewalDecision {
                action: RenewalAction::Wait,
                reason: RenewalReason::MinimumAge,
                due_at,
                next_check_at: due_at,
                message: format!(
                    "waiting: the current version is {} old, under its minimum age of {} \
                     before a renewal; {cause}; renews at {}",
                    format_span(now - issued),
                    format_span(floor - issued),
                    format_time(due_at)
                ),
            };
        }
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

    fn version(not_before: i64, not_after: i64) -> CurrentVersion {
        CurrentVersion {
            not_before,
            not_after,
            issued_at: Some(not_before),
            asked_lifetime_secs: None,
            revoked: false,
        }
    }

    fn input(now: i64, renew_before: Option<RenewBefore>) -> RenewalInput<'static> {
        RenewalInput {
            id: "mc-1",
            now,
            current: Some(version(0, 90 * DAY)),
            renew_before,
            failures: 0,
            last_failure_at: None,
            backoff: Backoff { base_secs: 60, cap_secs: 3_600 },
            open_request: None,
            suggested_window: None,
        }
    }

    #[test]
    fn a_version_longer_than_asked_renews_on_the_asked_lifetime() {
        // Asked for 90 days, the CA issued 5 years: due at 2/3 of 90 days, not of 5 years.
        let mut i = input(61 * DAY, None);
        i.current = Some(CurrentVersion {
            not_before: 0,
            not_after: 1_825 * DAY,
            issued_at: Some(0),
            asked_lifetime_secs: Some(90 * DAY),
            revoked: false,
        });
        let d = decide(&i);
        assert_eq!((d.action, d.reason), (RenewalAction::Renew, RenewalReason::LifetimeElapsed));
        i.now = 50 * DAY;
        assert_eq!(decide(&i).action, RenewalAction::Wait);
        // A shorter certificate than asked keeps its own end.
        i.current = Some(CurrentVersion {
            not_before: 0,
            not_after: 30 * DAY,
            issued_at: Some(0),
            asked_lifetime_secs: Some(90 * DAY),
            revoked: false,
        });
        i.now = 21 * DAY;
        assert_eq!(decide(&i).action, RenewalAction::Renew);
    }

    #[test]
    fn a_revoked_version_is_replaced_at_once_whatever_its_age_after_any_backoff() {
        // One hour old: far under its minimum age, and nowhere near its renewal window.
        let mut i = input(3_600, None);
        let young = CurrentVersion { revoked: true, ..version(0, 90 * DAY) };
        i.current = Some(young);
        let d = decide(&i);
        assert_eq!((d.action, d.reason), (RenewalAction::Renew, RenewalReason::Revoked));
        assert_eq!(d.message, "renewing: the current version was revoked");
        // The same version unrevoked waits.
        i.current = Some(CurrentVersion { revoked: false, ..young });
        assert_eq!(decide(&i).action, RenewalAction::Wait);
        // A failed replacement still backs off.
        i.current = Some(CurrentVersion { revoked: true, ..version(0, 90 * DAY) });
        (i.failures, i.last_failure_at) = (1, Some(3_590));
        assert_eq!(decide(&i).reason, RenewalReason::BackingOff);
    }

    #[test]
    fn an_open_request_is_waited_for_even_when_due_or_never_issued() {
        for current in [Some(version(0, 90 * DAY)), None] {
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

    #[test]
    fn the_minimum_age_is_an_hour_or_a_tenth_and_at_most_half() {
        assert_eq!(min_age_secs(90 * DAY), 9 * DAY);
        assert_eq!(min_age_secs(DAY), 8_640);
        assert_eq!(min_age_secs(2 * 3_600), 3_600);
        assert_eq!(min_age_secs(3_600), 1_800);
        assert_eq!(min_age_secs(60), 30);
        assert_eq!(format_span(8_640), "2 h 24 min");
        assert_eq!(format_span(DAY), "1 day");
        assert_eq!(format_span(3 * DAY + 12 * 3_600), "3 days 12 h");
        assert_eq!(format_span(125), "2 min 5 s");
        assert_eq!(format_span(-5), "0 s");
    }

    /// The example: a 1-day certificate renewed 24 h before expiry was due at once,
    /// forever.
    #[test]
    fn a_renew_before_that_leaves_no_time_is_refused_and_says_why() {
        let rb = |s: &str| RenewBefore::parse(s).unwrap();
        let refused = check_renew_before(rb("24h"), DAY).unwrap_err().as_written(" 24h");
        assert_eq!(
            refused.to_string(),
            "renew_before (24h) must be shorter than the validity (1 day) by at least 2 h 24 min, \
             the minimum age of a version (the longer of 1 h and 10% of its lifetime), so that \
             a new version is not due for renewal as soon as it is issued: give at most 21 h 36 min \
             (e.g. 21h)"
        );
        assert!(check_renew_before(rb("21h"), DAY).is_ok());
        assert!(check_renew_before(rb("22h"), DAY).is_err());
        assert!(check_renew_before(rb("90%"), DAY).is_ok());
        let share = check_renew_before(rb("91%"), DAY).unwrap_err().to_string();
        assert!(
            share.contains("must leave at least 2 h 24 min of the validity (1 day)"),
            "{share}"
        );
        assert!(share.ends_with("give at most 90%"), "{share}");
        assert!(check_renew_before(rb("81d"), 90 * DAY).is_ok());
        assert!(check_renew_before(rb("82d"), 90 * DAY).is_err());
        assert!(check_renew_before(rb("2000d"), 90 * DAY).is_err());
    }

    /// A CA that returns a shorter lifetime than asked (6 days for a renew_before of 30 days):
    /// held back until the minimum age, then renewed once.
    #[test]
    fn a_version_shorter_than_renew_before_waits_for_its_minimum_age() {
        let mut i = input(60, Some(RenewBefore::Secs(30 * DAY)));
        i.current = Some(version(0, 6 * DAY));
        let d = decide(&i);
        assert_eq!((d.action, d.reason), (RenewalAction::Wait, RenewalReason::MinimumAge));
        assert_eq!((d.due_at, d.next_check_at), (min_age_secs(6 * DAY), min_age_secs(6 * DAY)));
        assert!(
            d.message.starts_with(
                "waiting: the current version is 1 min old, under its minimum age of 14 h 24 min \
                 before a renewal; renew_before (30d) leaves less than that of its 6 days \
                 lifetime; renews at 1970-01-01T14:24:00Z"
            ),
            "{}",
            d.message
        );
        i.now = d.due_at;
        assert_eq!(decide(&i).action, RenewalAction::Renew);
    }

    /// Let's Encrypt backdates `not_before` by an hour; a Vault role may by more. The age counts
    /// from when CMP received the version.
    #[test]
    fn a_backdated_version_counts_its_age_from_when_it_was_received() {
        let mut i = input(3 * 3_600, Some(RenewBefore::Percent(90)));
        i.current = Some(CurrentVersion {
            not_before: 0,
            not_after: DAY,
            issued_at: Some(7_200),
            asked_lifetime_secs: None,
            revoked: false,
        });
        let d = decide(&i);
        assert_eq!((d.action, d.reason), (RenewalAction::Wait, RenewalReason::MinimumAge));
        assert_eq!(d.due_at, 7_200 + 8_640);
        // Received before its not_before (a postdated certificate): not_before counts.
        i.current = Some(CurrentVersion {
            not_before: 0,
            not_after: DAY,
            issued_at: Some(-50),
            asked_lifetime_secs: None,
            revoked: false,
        });
        assert_eq!(decide(&i).due_at, 8_640);
    }

    /// A CA's suggested window is followed within an hour of issuance (an incident), but not
    /// sooner, whatever the window says.
    #[test]
    fn a_suggested_window_is_followed_after_an_hour_not_before() {
        let mut fresh = input(10 * DAY + 300, None);
        fresh.current = Some(version(10 * DAY, 100 * DAY));
        fresh.suggested_window = Some((DAY, 2 * DAY));
        let d = decide(&fresh);
        assert_eq!((d.action, d.reason), (RenewalAction::Wait, RenewalReason::MinimumAge));
        assert_eq!(d.due_at, 10 * DAY + 3_600);
        assert!(d.message.contains("suggested renewal window starts earlier"), "{}", d.message);
        // Two days old: an incident window is followed, not held to 10% of 90 days.
        fresh.now = 12 * DAY;
        assert_eq!(decide(&fresh).reason, RenewalReason::SuggestedWindow);
        assert_eq!(decide(&fresh).action, RenewalAction::Renew);
    }

    #[test]
    fn the_jitter_stays_between_the_minimum_age_and_the_rule() {
        // 100 s between the minimum age and the rule's time: the spread stays inside them.
        let rb = RenewBefore::Secs(max_renew_before_secs(DAY) - 100);
        let dues: std::collections::BTreeSet<i64> = (0..200)
            .map(|n| {
                let id = format!("mc-{n}");
                let mut i = input(0, Some(rb));
                i.current = Some(version(0, DAY));
                decide(&RenewalInput { id: &id, ..i }).due_at
            })
            .collect();
        assert!(dues.iter().all(|d| (8_640..=8_740).contains(d)), "{dues:?}");
        assert!(dues.len() > 50, "{} distinct", dues.len());
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;
        use super::DAY;

        /// Lifetimes from a minute to five years, short ones as often as long ones.
        fn lifetimes() -> impl Strategy<Value = i64> {
            prop_oneof![60_i64..=7_200, 7_200_i64..=30 * DAY, 30 * DAY..=5 * 365 * DAY]
        }

        /// A `renew_before` that `check_renew_before` accepts for `lifetime`, or none.
        fn accepted(lifetime: i64) -> impl Strategy<Value = Option<RenewBefore>> {
            let max_percent = (1..=99_u8)
                .rev()
                .find(|p| check_renew_before(RenewBefore::Percent(*p), lifetime).is_ok())
                .unwrap_or(1);
            let max = max_renew_before_secs(lifetime);
            prop_oneof![
                Just(None),
                (1..=max).prop_map(|s| Some(RenewBefore::Secs(s))),
                // Near the largest accepted, where the jitter meets the minimum age.
                (max.saturating_sub(7_200).max(1)..=max).prop_map(|s| Some(RenewBefore::Secs(s))),
                (1..=max_percent).prop_map(|p| Some(RenewBefore::Percent(p))),
            ]
        }

        /// Any `renew_before` at all: what a stored spec or a CA's other lifetime can give.
        fn any_renew_before() -> impl Strategy<Value = Option<RenewBefore>> {
            prop_oneof![
                Just(None),
                (1..=10 * 365 * DAY).prop_map(|s| Some(RenewBefore::Secs(s))),
                (1..=99_u8).prop_map(|p| Some(RenewBefore::Percent(p))),
            ]
        }

        fn input_for(
            id: &str,
            now: i64,
            current: CurrentVersion,
            renew_before: Option<RenewBefore>,
            suggested_window: Option<(i64, i64)>,
        ) -> RenewalInput<'_> {
            RenewalInput {
                id,
                now,
                current: Some(current),
                renew_before,
                failures: 0,
                last_failure_at: None,
                backoff: Backoff::default(),
                open_request: None,
                suggested_window,
            }
        }

        const NOT_BEFORE: i64 = 1_750_000_000;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

            /// For an accepted renew_before (or none), any jitter seed, and a version received
            /// up to its last minimum age before expiry: renewal falls in
            /// [received + minimum age, not_after), is due there and stays due after it.
            #[test]
            fn an_accepted_rule_renews_after_the_minimum_age_and_before_expiry(
                (lifetime, renew_before, late, after) in lifetimes().prop_flat_map(|l| {
                    // Received at its not_before half the time, later the other half.
                    let late = prop_oneof![Just(0), 0..l - min_age_secs(l)];
                    (Just(l), accepted(l), late, 0..=l)
                }),
                seed in any::<u64>(),
            ) {
                let id = format!("mc-{seed}");
                let not_after = NOT_BEFORE + lifetime;
                let issued = NOT_BEFORE + late;
                let current =
                    CurrentVersion {
                        not_before: NOT_BEFORE,
                        not_after,
                        issued_at: Some(issued),
                        asked_lifetime_secs: None,
                        revoked: false,
                    };
                let d = decide(&input_for(&id, NOT_BEFORE, current, renew_before, None));
                prop_assert!(d.due_at >= issued + min_age_secs(lifetime), "{d:?}");
                prop_assert!(d.due_at < not_after, "{d:?}");
                let at = |now| decide(&input_for(&id, now, current, renew_before, None));
                prop_assert_eq!(at(d.due_at - 1).action, RenewalAction::Wait);
                prop_assert_eq!(at(d.due_at + after).action, RenewalAction::Renew);
                prop_assert_eq!(at(d.due_at).due_at, d.due_at, "the time does not move");
                if late == 0 {
                    // What the API accepted, the scheduler never needs to hold back.
                    prop_assert_ne!(at(d.due_at - 1).reason, RenewalReason::MinimumAge);
                }
            }

            /// No renew_before (accepted or not, for a lifetime a CA may have changed), no
            /// suggested window, no jitter makes a version younger than its minimum age due
            /// (an hour or its minimum age, whichever is less, for a CA's window).
            #[test]
            fn a_version_younger_than_its_minimum_age_is_never_renewed(
                (lifetime, age) in lifetimes().prop_flat_map(|l| (Just(l), 0..min_age_secs(l))),
                renew_before in any_renew_before(),
                window in proptest::option::of((-400 * DAY..=400 * DAY, 0..=30 * DAY)),
                late in -DAY..=DAY,
                seed in any::<u64>(),
            ) {
                let id = format!("mc-{seed}");
                let current = CurrentVersion {
                    not_before: NOT_BEFORE,
                    not_after: NOT_BEFORE + lifetime,
                    issued_at: Some(NOT_BEFORE + late),
                    asked_lifetime_secs: None,
                    revoked: false,
                };
                let issued = NOT_BEFORE + late.max(0);
                let window = window.map(|(start, len)| (NOT_BEFORE + start, NOT_BEFORE + start + len));
                let floor = match window {
                    Some((start, end)) if end > start => {
                        min_age_secs(lifetime).min(SUGGESTED_WINDOW_MIN_AGE_SECS)
                    }
                    _ => min_age_secs(lifetime),
                };
                prop_assume!(age < floor);
                let d = decide(&input_for(&id, issued + age, current, renew_before, window));
                prop_assert_eq!(d.action, RenewalAction::Wait, "{:?}", d);
                prop_assert!(d.due_at >= issued + floor, "{d:?}");
                prop_assert!(d.next_check_at > issued + age, "{d:?}");
            }
        }
    }
}
