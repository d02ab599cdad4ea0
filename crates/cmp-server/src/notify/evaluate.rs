//! Evaluation: what each enabled rule should tell now, from the state of the platform (with
//! the time passed in), grouped into one delivery per owner (a digest when several notices
//! fire at once). The store's marks make each notice fire once per rule, on every replica.

use std::collections::BTreeMap;
use std::time::Duration;

use cmp_domain::NotificationEvent as Event;
use cmp_store::{Delivery, Notice, NotificationRule};
use serde_json::json;

use super::{Notifier, Result};

/// Certificates taken per threshold per pass: a first evaluation over a large inventory is
/// spread over passes instead of one huge digest.
const EXPIRING_PER_LEVEL: u32 = 5_000;
/// Requests read per kind of notice per pass.
const REQUESTS_PER_PASS: u32 = 500;
/// Failed and finished requests older than this are not news (a rule made today does not
/// tell of last year's failures either: it starts at its creation).
const REQUEST_LOOKBACK_SECS: i64 = 7 * 86_400;

/// An adapter's answer to its status check.
pub struct AdapterHealth {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub healthy: bool,
    pub message: String,
}

impl Notifier {
    /// Evaluates every enabled rule at `now`; returns the deliveries made.
    pub async fn evaluate(&self, now: i64) -> Result<Vec<Delivery>> {
        let rules = self.store.list_notification_rules().await?;
        let health = self.adapter_health().await;
        let mut made = Vec::new();
        for rule in rules.iter().filter(|r| r.enabled) {
            match self.evaluate_rule(rule, now, &health).await {
                Ok(deliveries) => made.extend(deliveries),
                Err(e) => tracing::warn!(rule = %rule.name, error = %e, "rule not evaluated"),
            }
        }
        Ok(made)
    }

    /// Asks every enabled adapter for its status (each within the send timeout), and sets
    /// `cmp_adapter_up`.
    async fn adapter_health(&self) -> Vec<AdapterHealth> {
        let adapters = match self.store.list_adapters().await {
            Ok(adapters) => adapters,
            Err(e) => {
                tracing::warn!(error = %e, "could not list adapters");
                return Vec::new();
            }
        };
        let timeout = Duration::from_secs(self.config.send_timeout_secs);
        let mut health = Vec::new();
        for adapter in adapters.into_iter().filter(|a| a.enabled) {
            let (healthy, message) = match self.adapters.adapter(&adapter.id).await {
                Ok(ca) => match tokio::time::timeout(timeout, ca.get_status()).await {
                    Ok(status) => (status.healthy, status.message),
                    Err(_) => (false, format!("no status within {} s", timeout.as_secs())),
                },
                Err(e) => (false, e.to_string()),
            };
            metrics::gauge!("cmp_adapter_up", "adapter" => adapter.name.clone(), "kind" => adapter.kind.clone())
                .set(if healthy { 1.0 } else { 0.0 });
            health.push(AdapterHealth {
                id: adapter.id,
                name: adapter.name,
                kind: adapter.kind,
                healthy,
                message,
            });
        }
        health
    }

    async fn evaluate_rule(
        &self,
        rule: &NotificationRule,
        now: i64,
        health: &[AdapterHealth],
    ) -> Result<Vec<Delivery>> {
        let store = &self.store;
        let owner = rule.owner_id.as_deref();
        let wants = |event: Event| rule.events.contains(&event);
        let mut notices = Vec::new();
        if wants(Event::CertificateExpiring) {
            // Bands between thresholds, tightest first: a certificate is told at the tightest
            // threshold it has crossed.
            let mut levels = rule.thresholds.clone();
            levels.sort_unstable();
            let mut after = now;
            for days in levels {
                let until = now + i64::from(days) * 86_400;
                let level = i64::from(days);
                notices.extend(
                    store
                        .expiring_notices(&rule.id, owner, after, until, level, EXPIRING_PER_LEVEL)
                        .await?,
                );
                after = until;
            }
        }
        if wants(Event::RenewalOverdue) {
            let due_before = now - self.config.overdue_margin_secs;
            notices.extend(store.overdue_renewal_notices(owner, due_before).await?);
        }
        let request_events = [
            Event::RequestFailed,
            Event::RequestAwaitingApproval,
            Event::CertificateIssued,
            Event::CertificateRenewed,
            Event::CertificateRevoked,
        ];
        if request_events.into_iter().any(wants) {
            let since = rule.created_at.max(now - REQUEST_LOOKBACK_SECS);
            let found = store.request_notices(owner, since, REQUESTS_PER_PASS).await?;
            notices.extend(found.into_iter().filter(|n| wants(n.event)));
        }
        if wants(Event::DeploymentFailed) {
            let stale_before = now - self.config.deployment_stale_secs;
            notices.extend(store.deployment_notices(owner, stale_before).await?);
        }
        if owner.is_none() && wants(Event::AgentOffline) {
            let offline_before = now - self.config.agent_offline_secs;
            notices.extend(store.agent_offline_notices(offline_before).await?);
        }
        if owner.is_none() && wants(Event::AdapterUnhealthy) {
            for adapter in health {
                if adapter.healthy {
                    // The outage ended: the next one is news again.
                    store.forget_notice(&rule.id, Event::AdapterUnhealthy, &adapter.id).await?;
                } else {
                    notices.push(Notice {
                        event: Event::AdapterUnhealthy,
                        subject: adapter.id.clone(),
                        level: 0,
                        owner_id: None,
                        details: json!({
                            "adapter_id": adapter.id, "name": adapter.name,
                            "kind": adapter.kind, "message": adapter.message,
                        }),
                    });
                }
            }
        }
        if notices.is_empty() {
            return Ok(Vec::new());
        }
        // One message per owner: a digest when several fire at once.
        let mut by_owner: BTreeMap<Option<String>, Vec<Notice>> = BTreeMap::new();
        for notice in notices {
            by_owner.entry(notice.owner_id.clone()).or_default().push(notice);
        }
        Ok(store.record_notices(&rule.id, now, now, by_owner.into_values().collect()).await?)
    }
}
