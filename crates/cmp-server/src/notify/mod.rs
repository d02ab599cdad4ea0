//! Notifications, without HTTP: rules (checked, their channel secrets sealed in the secret
//! store), the evaluation that turns the platform's state into notices (each told once per
//! rule, on every replica), and the delivery of messages by email and webhook, retried with
//! backoff. The issuer role runs [`Notifier::run`]; tests call [`Notifier::pass`] with the
//! time they set.

mod email;
mod evaluate;
mod handlers;
mod message;
mod rules;
mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cmp_api::{NotificationChannel, ProblemItem};
use cmp_domain::{Clock, MAX_DELIVERY_ATTEMPTS, delivery_retry_secs};
use cmp_secrets::SecretStore;
use cmp_store::{Delivery, DeliveryOutcome, NotificationRule, Store, StoreError};
use futures::StreamExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::adapter::AdapterDirectory;
use crate::config::NotifyConfig;
use crate::state::AppState;

pub use message::notice_view;
pub use rules::RuleInput;

/// Why a notification call was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("{field}: {detail}")]
    BadField { field: &'static str, detail: String },
    /// The rule was read but refused; `items` says which entries and why. Nothing was stored.
    #[error("{detail}")]
    Refused { detail: String, items: Vec<ProblemItem> },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

type Result<T> = std::result::Result<T, NotifyError>;

/// Deliveries taken per pass; the rest wait for the next.
const DELIVERIES_PER_PASS: u32 = 200;

/// Rules, their evaluation and their deliveries.
pub struct Notifier {
    store: Arc<dyn Store>,
    secrets: Arc<dyn SecretStore>,
    clock: Arc<dyn Clock>,
    adapters: Arc<dyn AdapterDirectory>,
    config: NotifyConfig,
    http: reqwest::Client,
}

/// The secret store's name of a rule's channel secret.
fn secret_name(rule_id: &str) -> String {
    format!("notify/{rule_id}")
}

impl Notifier {
    pub fn new(
        store: Arc<dyn Store>,
        secrets: Arc<dyn SecretStore>,
        clock: Arc<dyn Clock>,
        adapters: Arc<dyn AdapterDirectory>,
        config: NotifyConfig,
    ) -> anyhow::Result<Notifier> {
        // reqwest panics without one; the binary's main installs it (ARCHITECTURE.md).
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            anyhow::bail!("no rustls crypto provider is installed for webhook calls");
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.send_timeout_secs))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cmp/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Notifier { store, secrets, clock, adapters, config, http })
    }

    fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    /// Runs passes every `notify.interval_secs` until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let interval = Duration::from_secs(self.config.interval_secs);
        loop {
            self.pass().await;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// One pass: every enabled rule evaluated, then the deliveries due sent.
    pub async fn pass(&self) {
        let now = self.now();
        if let Err(e) = self.evaluate(now).await {
            tracing::warn!(error = %e, "could not evaluate notification rules");
        }
        if let Err(e) = self.deliver_due(now).await {
            tracing::warn!(error = %e, "could not send notifications");
        }
    }

    /// Sends the deliveries due at `now`, several at once: a receiver that hangs holds its
    /// own attempt (up to `notify.send_timeout_secs`), never the others.
    pub async fn deliver_due(&self, now: i64) -> Result<usize> {
        // Held for two timeouts: a crashed attempt is retried after that, a live one is over.
        let lease = now + 2 * i64::try_from(self.config.send_timeout_secs).unwrap_or(60) + 30;
        let due = self.store.claim_deliveries(now, lease, DELIVERIES_PER_PASS).await?;
        let count = due.len();
        if count == 0 {
            return Ok(0);
        }
        let rules: HashMap<String, NotificationRule> = self
            .store
            .list_notification_rules()
            .await?
            .into_iter()
            .map(|rule| (rule.id.clone(), rule))
            .collect();
        let mut attempts = Vec::with_capacity(count);
        for delivery in due {
            match rules.get(&delivery.rule_id) {
                Some(rule) => attempts.push((rule.clone(), delivery)),
                // Deleted since it was claimed: its deliveries went with it.
                None => tracing::warn!(delivery = %delivery.id, "delivery without its rule"),
            }
        }
        futures::stream::iter(attempts)
            .map(|(rule, delivery)| async move { self.attempt(&rule, delivery, now, true).await })
            .buffer_unordered(self.config.max_parallel_sends)
            .collect::<Vec<_>>()
            .await;
        Ok(count)
    }

    /// One attempt of a claimed delivery, and its outcome recorded: a failure is tried again
    /// later when `retry` says so and attempts are left.
    async fn attempt(
        &self,
        rule: &NotificationRule,
        delivery: Delivery,
        now: i64,
        retry: bool,
    ) -> Option<Delivery> {
        // A rule turned off tells nothing more, not even what it found before.
        let sent = if rule.enabled {
            self.send(rule, &delivery).await
        } else {
            Err("the rule is disabled".to_string())
        };
        let channel = channel_kind(rule);
        let outcome = match sent {
            Ok(()) => DeliveryOutcome::Sent,
            Err(error)
                if !retry
                    || !rule.enabled
                    || delivery.attempts >= i64::from(MAX_DELIVERY_ATTEMPTS) =>
            {
                DeliveryOutcome::GaveUp { error }
            }
            Err(error) => {
                let wait = delivery_retry_secs(u32::try_from(delivery.attempts).unwrap_or(1));
                DeliveryOutcome::Retry { error, at: now + wait }
            }
        };
        let label = match &outcome {
            DeliveryOutcome::Sent => "sent",
            DeliveryOutcome::Retry { .. } => "retry",
            DeliveryOutcome::GaveUp { .. } => "failed",
        };
        if let DeliveryOutcome::Retry { error, .. } | DeliveryOutcome::GaveUp { error } = &outcome {
            tracing::warn!(delivery = %delivery.id, rule = %rule.name, attempt = delivery.attempts,
                %error, "notification not delivered");
        }
        metrics::counter!("cmp_notification_deliveries_total", "channel" => channel, "outcome" => label)
            .increment(1);
        match self.store.finish_delivery(&delivery.id, now, &outcome).await {
            Ok(done) => Some(done),
            Err(e) => {
                tracing::warn!(delivery = %delivery.id, error = %e, "could not record a delivery");
                None
            }
        }
    }

    /// Sends one message through the rule's channel; the error says why it did not go.
    async fn send(
        &self,
        rule: &NotificationRule,
        delivery: &Delivery,
    ) -> std::result::Result<(), String> {
        let channel: NotificationChannel = serde_json::from_value(rule.channel.clone())
            .map_err(|e| format!("the rule's channel is unreadable: {e}"))?;
        let secret = if rule.has_secret {
            let value = self
                .secrets
                .get(&secret_name(&rule.id))
                .await
                .map_err(|e| format!("the channel's secret is unavailable: {e}"))?;
            Some(String::from_utf8_lossy(value.expose()).into_owned())
        } else {
            None
        };
        let owner = match &delivery.owner_id {
            Some(id) => self.store.get_owner(id).await.ok().map(|o| o.name),
            None => None,
        };
        let message = message::Message::new(rule, delivery, owner, self.now());
        let timeout = Duration::from_secs(self.config.send_timeout_secs);
        match channel {
            NotificationChannel::Email(email) => {
                email::send(&email, secret.as_deref(), &message, timeout).await
            }
            NotificationChannel::Webhook(hook) => {
                webhook::send(&self.http, &hook, secret.as_deref(), &message, self.now()).await
            }
        }
    }
}

fn channel_kind(rule: &NotificationRule) -> &'static str {
    match rule.channel.get("kind").and_then(|k| k.as_str()) {
        Some("email") => "email",
        Some("webhook") => "webhook",
        _ => "unknown",
    }
}

/// Routes of notifications (served by the issuer role, which runs the evaluation).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::list_rules, handlers::create_rule))
        .routes(routes!(handlers::get_rule, handlers::patch_rule, handlers::delete_rule))
        .routes(routes!(handlers::test_rule))
        .routes(routes!(handlers::list_deliveries))
        .routes(routes!(handlers::get_delivery))
}
