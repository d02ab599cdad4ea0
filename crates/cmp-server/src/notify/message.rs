//! What a delivery says: a sentence per notice, an email's subject and text, the webhook's
//! JSON body and its Slack form.

use cmp_api::NoticeView;
use cmp_domain::NotificationEvent as Event;
use cmp_store::{Delivery, Notice, NotificationRule};
use serde_json::{Value, json};

/// A delivery, written out.
pub struct Message {
    pub delivery_id: String,
    pub subject: String,
    pub text: String,
    /// CMP's webhook body.
    pub body: Value,
    /// The same as `{"text": ...}` for Slack-compatible receivers.
    pub slack: Value,
}

fn date(unix: Option<i64>) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    unix.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "an unknown time".into())
}

fn text<'a>(details: &'a Value, key: &str) -> &'a str {
    details.get(key).and_then(Value::as_str).unwrap_or("?")
}

/// One sentence for a notice.
pub fn summary(notice: &Notice) -> String {
    let d = &notice.details;
    let int = |key: &str| d.get(key).and_then(Value::as_i64);
    match notice.event {
        Event::CertificateExpiring => {
            let name = d.get("common_name").and_then(Value::as_str).unwrap_or(text(d, "subject"));
            format!(
                "Certificate {name} (serial {}) expires within {} days, on {}",
                text(d, "serial_number"),
                notice.level,
                date(int("not_after"))
            )
        }
        Event::RenewalOverdue => {
            let reason = d
                .pointer("/decision/message")
                .and_then(Value::as_str)
                .unwrap_or("no reason recorded");
            let mut line = format!(
                "Renewal of {} is overdue since {}: {reason}",
                text(d, "name"),
                date(int("due_at"))
            );
            if let Some(error) = d.get("last_error").and_then(Value::as_str) {
                line.push_str(&format!("; last error: {error}"));
            }
            line
        }
        Event::RequestFailed => format!(
            "Request {} ({}) failed: {}",
            text(d, "request_id"),
            text(d, "kind"),
            d.get("last_error").and_then(Value::as_str).unwrap_or("no reason given")
        ),
        Event::RequestAwaitingApproval => format!(
            "Request {} ({}) by {} awaits approval",
            text(d, "request_id"),
            text(d, "kind"),
            text(d, "requested_by")
        ),
        Event::AdapterUnhealthy => format!(
            "Adapter {} ({}) is unhealthy: {}",
            text(d, "name"),
            text(d, "kind"),
            text(d, "message")
        ),
        Event::DeploymentFailed if d.get("stale").and_then(Value::as_bool) == Some(true) => {
            format!(
                "Deployment of {} to {}/{} has not been verified with the current version \
                 since {}",
                text(d, "name"),
                text(d, "agent"),
                text(d, "target"),
                date(int("updated_at"))
            )
        }
        Event::DeploymentFailed => format!(
            "Deployment of {} to {}/{} failed at {}: {}",
            text(d, "name"),
            text(d, "agent"),
            text(d, "target"),
            d.get("failed_step").and_then(Value::as_str).unwrap_or("an unknown step"),
            d.get("last_error").and_then(Value::as_str).unwrap_or("no reason given")
        ),
        Event::AgentOffline => format!(
            "Agent {} has not been heard from since {}",
            text(d, "name"),
            date(int("last_seen_at"))
        ),
        Event::CertificateIssued => format!(
            "Certificate {} was issued for request {}",
            text(d, "certificate_id"),
            text(d, "request_id")
        ),
        Event::CertificateRenewed => format!(
            "Managed certificate {} was renewed: certificate {}",
            text(d, "managed_certificate_id"),
            text(d, "certificate_id")
        ),
        Event::CertificateRevoked => format!(
            "Certificate {} was revoked (request {})",
            text(d, "certificate_id"),
            text(d, "request_id")
        ),
        Event::Test => format!("Test notification of rule {}", text(d, "rule")),
    }
}

/// A notice as the API shows it.
pub fn notice_view(notice: &Notice) -> NoticeView {
    NoticeView {
        event: notice.event,
        subject: notice.subject.clone(),
        level: notice.level,
        summary: summary(notice),
        details: notice.details.clone(),
    }
}

impl Message {
    pub fn new(
        rule: &NotificationRule,
        delivery: &Delivery,
        owner: Option<String>,
        now: i64,
    ) -> Message {
        let lines: Vec<String> = delivery.notices.iter().map(summary).collect();
        let unlisted = delivery.notice_count - i64::try_from(lines.len()).unwrap_or(0);
        let whose = owner.as_deref().map(|o| format!(" for {o}")).unwrap_or_default();
        let subject = match lines.as_slice() {
            [one] if delivery.notice_count == 1 => format!("[CMP] {one}"),
            _ => format!("[CMP] {} notices{whose}", delivery.notice_count),
        };
        let mut text = lines.iter().map(|l| format!("- {l}\n")).collect::<String>();
        if unlisted > 0 {
            text.push_str(&format!("- and {unlisted} more\n"));
        }
        text.push_str(&format!("\nRule {} of CMP, delivery {}.\n", rule.name, delivery.id));
        let body = json!({
            "delivery_id": delivery.id,
            "rule": {"id": rule.id, "name": rule.name},
            "owner": owner,
            "digest": delivery.notice_count > 1,
            "notice_count": delivery.notice_count,
            "notices": delivery.notices.iter().map(notice_view).collect::<Vec<_>>(),
            "sent_at": now,
        });
        let slack =
            json!({"text": format!("*{}*\n{}", subject.trim_start_matches("[CMP] "), text)});
        Message { delivery_id: delivery.id.clone(), subject, text, body, slack }
    }
}
