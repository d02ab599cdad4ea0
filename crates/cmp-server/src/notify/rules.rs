//! Notification rules: checked (every refused entry named, nothing stored), their channel
//! secret sealed in the secret store, and a test send.

use std::str::FromStr;

use cmp_api::{NotificationChannel, NotificationRuleCreate, NotificationRulePatch, ProblemItem};
use cmp_domain::{DEFAULT_EXPIRY_THRESHOLDS, NotificationEvent};
use cmp_secrets::SecretBytes;
use cmp_store::{
    AuditContext, Delivery, NewNotificationRule, Notice, NotificationRule, NotificationRuleUpdate,
};
use serde_json::json;

use super::{Notifier, NotifyError, Result, secret_name};

/// A rule as asked, its owner resolved.
pub struct RuleInput {
    pub name: String,
    pub owner_id: Option<String>,
    pub events: Option<Vec<String>>,
    pub channel: NotificationChannel,
    pub thresholds_days: Option<Vec<u32>>,
    pub enabled: bool,
}

/// Collects refused entries, each with its JSON pointer.
#[derive(Default)]
struct Refusals(Vec<ProblemItem>);

impl Refusals {
    fn add(&mut self, pointer: impl Into<String>, reason: &str, detail: impl Into<String>) {
        self.0.push(ProblemItem {
            pointer: pointer.into(),
            reason: reason.into(),
            detail: detail.into(),
        });
    }

    fn finish(self) -> Result<()> {
        let detail = match self.0.as_slice() {
            [] => return Ok(()),
            [one] => format!("{}: {}", one.pointer, one.detail),
            many => format!("{} entries of the rule were refused; nothing was stored", many.len()),
        };
        Err(NotifyError::Refused { detail, items: self.0 })
    }
}

fn check_name(name: &str, refuse: &mut Refusals) {
    if !crate::core::is_plain_name(name) {
        refuse.add("name", "bad_name", "1-100 letters, digits, '-', '_' or '.', not an id");
    }
}

fn check_events(
    names: Option<&[String]>,
    for_one_owner: bool,
    refuse: &mut Refusals,
) -> Vec<NotificationEvent> {
    let Some(names) = names else {
        return NotificationEvent::DEFAULT
            .into_iter()
            .filter(|e| !(for_one_owner && e.is_global_only()))
            .collect();
    };
    if names.is_empty() {
        refuse.add("events", "empty", "a rule needs at least one event");
    }
    let mut events = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match NotificationEvent::parse(name) {
            Some(NotificationEvent::Test) | None => {
                let known: Vec<_> = NotificationEvent::ALL
                    .iter()
                    .filter(|e| **e != NotificationEvent::Test)
                    .map(|e| e.as_str())
                    .collect();
                let shown = crate::error::cut(name, 60);
                let detail = format!("unknown event {shown:?}; known: {}", known.join(", "));
                refuse.add(format!("events/{i}"), "unknown_event", detail);
            }
            Some(event) if for_one_owner && event.is_global_only() => refuse.add(
                format!("events/{i}"),
                "global_only",
                format!("{name} is about the platform, told only to rules without an owner"),
            ),
            Some(event) if !events.contains(&event) => events.push(event),
            Some(_) => {}
        }
    }
    events.sort();
    events
}

fn check_thresholds(days: Option<&[u32]>, refuse: &mut Refusals) -> Vec<u32> {
    let Some(days) = days else { return DEFAULT_EXPIRY_THRESHOLDS.to_vec() };
    if days.is_empty() || days.len() > 10 {
        refuse.add("thresholds_days", "bad_thresholds", "give 1 to 10 thresholds");
    }
    for (i, day) in days.iter().enumerate() {
        if !(1..=365).contains(day) {
            refuse.add(
                format!("thresholds_days/{i}"),
                "out_of_range",
                format!("{day} days; a threshold goes from 1 to 365"),
            );
        }
    }
    let mut days = days.to_vec();
    days.sort_unstable_by(|a, b| b.cmp(a));
    days.dedup();
    days
}

fn check_channel(channel: &NotificationChannel, refuse: &mut Refusals) {
    match channel {
        NotificationChannel::Email(email) => {
            let host = email.smtp_host.trim();
            if host.is_empty() || host.len() > 253 || host.contains(char::is_whitespace) {
                refuse.add("channel/smtp_host", "bad_host", "an SMTP host name or address");
            }
            if email.smtp_port == Some(0) {
                refuse.add("channel/smtp_port", "out_of_range", "a port from 1 to 65535");
            }
            if lettre::message::Mailbox::from_str(&email.from).is_err() {
                let shown = crate::error::cut(&email.from, 100);
                refuse.add(
                    "channel/from",
                    "bad_address",
                    format!("{shown:?} is not an email address"),
                );
            }
            if email.to.is_empty() || email.to.len() > 50 {
                refuse.add("channel/to", "bad_recipients", "give 1 to 50 recipients");
            }
            for (i, to) in email.to.iter().enumerate() {
                if lettre::message::Mailbox::from_str(to).is_err() {
                    let shown = crate::error::cut(to, 100);
                    refuse.add(
                        format!("channel/to/{i}"),
                        "bad_address",
                        format!("{shown:?} is not an email address"),
                    );
                }
            }
            if let Some(pem) = &email.ca_pem
                && lettre::transport::smtp::client::Certificate::from_pem(pem.as_bytes()).is_err()
            {
                refuse.add("channel/ca_pem", "bad_pem", "not a PEM certificate");
            }
        }
        NotificationChannel::Webhook(hook) => match reqwest::Url::parse(&hook.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            Ok(_) => refuse.add("channel/url", "bad_url", "an http:// or https:// URL with a host"),
            Err(e) => refuse.add("channel/url", "bad_url", format!("not a URL: {e}")),
        },
    }
}

fn channel_json(channel: &NotificationChannel) -> Result<serde_json::Value> {
    serde_json::to_value(channel)
        .map_err(|e| NotifyError::Internal(format!("channel as JSON: {e}")))
}

impl Notifier {
    /// Creates a rule; its secret (SMTP password, webhook signing key) goes to the secret
    /// store, under the rule's id, before the rule is stored.
    pub async fn create_rule(
        &self,
        ctx: &AuditContext,
        input: RuleInput,
        secret: Option<String>,
    ) -> Result<NotificationRule> {
        let mut refuse = Refusals::default();
        check_name(&input.name, &mut refuse);
        let events = check_events(input.events.as_deref(), input.owner_id.is_some(), &mut refuse);
        let thresholds = check_thresholds(input.thresholds_days.as_deref(), &mut refuse);
        check_channel(&input.channel, &mut refuse);
        check_secret(secret.as_deref(), &mut refuse);
        refuse.finish()?;
        let id = uuid::Uuid::now_v7().to_string();
        if let Some(secret) = &secret {
            self.seal(&id, secret).await?;
        }
        let rule = NewNotificationRule {
            id: id.clone(),
            name: input.name,
            owner_id: input.owner_id,
            events,
            channel: channel_json(&input.channel)?,
            has_secret: secret.is_some(),
            thresholds,
            enabled: input.enabled,
        };
        match self.store.create_notification_rule(ctx, &rule).await {
            Ok(rule) => Ok(rule),
            Err(e) => {
                // Nothing half-written: a secret without its rule is removed again.
                if secret.is_some() {
                    let _ = self.secrets.delete(&secret_name(&id)).await;
                }
                Err(e.into())
            }
        }
    }

    /// Changes a rule: what the patch gives is checked and replaced.
    pub async fn update_rule(
        &self,
        ctx: &AuditContext,
        id: &str,
        patch: NotificationRulePatch,
        owner_id: Option<Option<String>>,
    ) -> Result<NotificationRule> {
        let current = self.store.get_notification_rule(id).await?;
        let for_one_owner = owner_id.clone().unwrap_or(current.owner_id.clone()).is_some();
        let mut refuse = Refusals::default();
        if let Some(name) = &patch.name {
            check_name(name, &mut refuse);
        }
        let events = match &patch.events {
            Some(names) => Some(check_events(Some(names), for_one_owner, &mut refuse)),
            None if for_one_owner && current.events.iter().any(|e| e.is_global_only()) => {
                refuse.add(
                    "owner",
                    "global_only",
                    "the rule has events told only to rules without an owner",
                );
                None
            }
            None => None,
        };
        let thresholds =
            patch.thresholds_days.as_deref().map(|t| check_thresholds(Some(t), &mut refuse));
        if let Some(channel) = &patch.channel {
            check_channel(channel, &mut refuse);
        }
        if let Some(Some(secret)) = &patch.secret {
            check_secret(Some(secret), &mut refuse);
        }
        refuse.finish()?;
        match &patch.secret {
            Some(Some(secret)) => self.seal(&current.id, secret).await?,
            Some(None) if current.has_secret => {
                self.secrets.delete(&secret_name(&current.id)).await.map_err(|e| {
                    NotifyError::Internal(format!("could not remove the channel's secret: {e}"))
                })?
            }
            _ => {}
        }
        let update = NotificationRuleUpdate {
            name: patch.name,
            owner_id,
            events,
            channel: patch.channel.as_ref().map(channel_json).transpose()?,
            has_secret: patch.secret.as_ref().map(|s| s.is_some()),
            thresholds,
            enabled: patch.enabled,
        };
        Ok(self.store.update_notification_rule(ctx, &current.id, &update).await?)
    }

    /// Deletes a rule, its deliveries, and its secret.
    pub async fn delete_rule(&self, ctx: &AuditContext, id: &str) -> Result<()> {
        let rule = self.store.get_notification_rule(id).await?;
        self.store.delete_notification_rule(ctx, &rule.id).await?;
        if rule.has_secret
            && let Err(e) = self.secrets.delete(&secret_name(&rule.id)).await
        {
            tracing::warn!(rule = %rule.name, error = %e, "the deleted rule's secret stays");
        }
        Ok(())
    }

    /// Sends a test message through the rule's channel now, once (no retry), and returns
    /// the delivery with its outcome.
    pub async fn send_test(&self, ctx: &AuditContext, id: &str) -> Result<Delivery> {
        let rule = self.store.get_notification_rule(id).await?;
        let now = self.now();
        let notice = Notice {
            event: NotificationEvent::Test,
            subject: uuid::Uuid::now_v7().to_string(),
            level: 0,
            owner_id: rule.owner_id.clone(),
            details: json!({"rule": rule.name, "requested_by": ctx.actor}),
        };
        // Not due before it is sent here: the background pass does not send it too.
        let hold = now + 3_600;
        let made = self.store.record_notices(&rule.id, now, hold, vec![vec![notice]]).await?;
        let delivery = made
            .into_iter()
            .next()
            .ok_or_else(|| NotifyError::Internal("the test notice was not recorded".into()))?;
        let delivery = self
            .store
            .claim_delivery(&delivery.id, now + 60)
            .await?
            .ok_or_else(|| NotifyError::Internal("the test delivery was taken".into()))?;
        self.attempt(&rule, delivery, now, false)
            .await
            .ok_or_else(|| NotifyError::Internal("the test delivery was not recorded".into()))
    }

    async fn seal(&self, rule_id: &str, secret: &str) -> Result<()> {
        let value = SecretBytes::new(secret.as_bytes().to_vec());
        self.secrets
            .put(&secret_name(rule_id), &value)
            .await
            .map_err(|e| NotifyError::Internal(format!("could not keep the channel's secret: {e}")))
    }
}

fn check_secret(secret: Option<&str>, refuse: &mut Refusals) {
    if let Some(secret) = secret
        && (secret.is_empty() || secret.len() > 4096)
    {
        refuse.add("secret", "bad_secret", "a secret of 1 to 4096 bytes");
    }
}

impl RuleInput {
    /// The rule as asked in a create call, and its secret.
    pub fn from_create(
        body: NotificationRuleCreate,
        owner_id: Option<String>,
    ) -> (RuleInput, Option<String>) {
        let input = RuleInput {
            name: body.name,
            owner_id,
            events: body.events,
            channel: body.channel,
            thresholds_days: body.thresholds_days,
            enabled: body.enabled.unwrap_or(true),
        };
        (input, body.secret)
    }
}
