//! Notifications: rules, the facts that make notices (certificates near expiry, overdue
//! renewals, failed requests, deployments, agents), the marks that make each notice fire once
//! on every replica, and deliveries with their attempts.

use async_trait::async_trait;
use cmp_domain::{DeliveryState, NotificationEvent};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use tracing::instrument;

use crate::audit;
use crate::sql::{Arg, SqlBuilder, from_json, to_json};
use crate::{
    AuditAction, AuditContext, Cursor, NewAuditEvent, Page, SqlStore, StoreError, StoreResult,
};

/// A rule as stored. The channel's secret (SMTP password, webhook signing key) is in the
/// secret store, never here.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationRule {
    pub id: String,
    pub name: String,
    /// `None`: every owner, and the platform's own events.
    pub owner_id: Option<String>,
    pub events: Vec<NotificationEvent>,
    /// The channel (the API's `NotificationChannel`), as JSON.
    pub channel: serde_json::Value,
    pub has_secret: bool,
    /// Days before expiry.
    pub thresholds: Vec<u32>,
    pub enabled: bool,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A rule to create (`id` chosen by the caller, which seals its secret under it first).
#[derive(Debug, Clone)]
pub struct NewNotificationRule {
    pub id: String,
    pub name: String,
    pub owner_id: Option<String>,
    pub events: Vec<NotificationEvent>,
    pub channel: serde_json::Value,
    pub has_secret: bool,
    pub thresholds: Vec<u32>,
    pub enabled: bool,
}

/// Changes to a rule: what is `Some` is replaced.
#[derive(Debug, Clone, Default)]
pub struct NotificationRuleUpdate {
    pub name: Option<String>,
    pub owner_id: Option<Option<String>>,
    pub events: Option<Vec<NotificationEvent>>,
    pub channel: Option<serde_json::Value>,
    pub has_secret: Option<bool>,
    pub thresholds: Option<Vec<u32>>,
    pub enabled: Option<bool>,
}

/// Something to tell: one subject at one level (the threshold in days for expiry, 0
/// otherwise). The subject names the episode, so that the same trouble is told once and a
/// new one (the next version, the next outage) again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub event: NotificationEvent,
    pub subject: String,
    pub level: i64,
    pub owner_id: Option<String>,
    /// The facts, for the message and the webhook body.
    pub details: serde_json::Value,
}

/// Notices listed in one delivery; a digest of more says how many were left out.
pub const MAX_NOTICES_PER_DELIVERY: usize = 100;

/// A message, sent or to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: String,
    pub rule_id: String,
    pub owner_id: Option<String>,
    /// Up to [`MAX_NOTICES_PER_DELIVERY`] of them.
    pub notices: Vec<Notice>,
    /// All the notices this message stands for.
    pub notice_count: i64,
    pub state: DeliveryState,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum DeliveryOutcome {
    Sent,
    /// Failed; try again at `at`.
    Retry {
        error: String,
        at: i64,
    },
    /// Failed for the last time.
    GaveUp {
        error: String,
    },
}

/// Which deliveries to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    pub rule_id: Option<String>,
    pub state: Option<DeliveryState>,
    pub limit: u32,
    pub cursor: Option<Cursor>,
}

/// Rules, the facts they are evaluated on, and deliveries.
#[async_trait]
pub trait NotificationStore: Send + Sync {
    async fn create_notification_rule(
        &self,
        ctx: &AuditContext,
        rule: &NewNotificationRule,
    ) -> StoreResult<NotificationRule>;
    async fn list_notification_rules(&self) -> StoreResult<Vec<NotificationRule>>;
    /// A rule by id or name.
    async fn get_notification_rule(&self, id_or_name: &str) -> StoreResult<NotificationRule>;
    async fn update_notification_rule(
        &self,
        ctx: &AuditContext,
        id: &str,
        update: &NotificationRuleUpdate,
    ) -> StoreResult<NotificationRule>;
    /// Deletes a rule with its marks and deliveries.
    async fn delete_notification_rule(&self, ctx: &AuditContext, id: &str) -> StoreResult<()>;

    /// Certificates expiring in `(after, until]` that `rule_id` has not announced at `level`:
    /// not revoked, and either not managed or the current version of their managed
    /// certificate (an older version's expiry is no news). At most `limit`, soonest first.
    async fn expiring_notices(
        &self,
        rule_id: &str,
        owner_id: Option<&str>,
        after: i64,
        until: i64,
        level: i64,
        limit: u32,
    ) -> StoreResult<Vec<Notice>>;
    /// Managed certificates with a current version whose scheduler decision put renewal
    /// at or before `due_before` (subject: the managed certificate and its current version).
    async fn overdue_renewal_notices(
        &self,
        owner_id: Option<&str>,
        due_before: i64,
    ) -> StoreResult<Vec<Notice>>;
    /// Requests awaiting approval, and those that failed or were issued (issue, renew,
    /// revoke) since `since`; at most `limit` of each kind of notice, newest first.
    async fn request_notices(
        &self,
        owner_id: Option<&str>,
        since: i64,
        limit: u32,
    ) -> StoreResult<Vec<Notice>>;
    /// Deployments of enabled agents that failed, or have not been verified with the current
    /// version since before `stale_before`.
    async fn deployment_notices(
        &self,
        owner_id: Option<&str>,
        stale_before: i64,
    ) -> StoreResult<Vec<Notice>>;
    /// Enabled agents last heard from before `offline_before`.
    async fn agent_offline_notices(&self, offline_before: i64) -> StoreResult<Vec<Notice>>;

    /// Records notices for `rule_id` in one transaction: each group (an owner's notices)
    /// becomes one delivery of what was not told before (on any replica), due at `send_at`;
    /// groups with nothing new make none. Returns the deliveries made.
    async fn record_notices(
        &self,
        rule_id: &str,
        now: i64,
        send_at: i64,
        groups: Vec<Vec<Notice>>,
    ) -> StoreResult<Vec<Delivery>>;
    /// Forgets that `subject` was told (the trouble ended: the next one is news again).
    async fn forget_notice(
        &self,
        rule_id: &str,
        event: NotificationEvent,
        subject: &str,
    ) -> StoreResult<()>;

    /// Takes pending deliveries due at `now` for an attempt: each counts the attempt and is
    /// held until `lease_until` (an attempt cut short by a crash is retried then). Another
    /// replica never takes the same attempt.
    async fn claim_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>>;
    /// Takes one pending delivery for an attempt now, due or not (a test send); `None` when
    /// it is not pending or another caller took it first.
    async fn claim_delivery(&self, id: &str, lease_until: i64) -> StoreResult<Option<Delivery>>;
    async fn finish_delivery(
        &self,
        id: &str,
        now: i64,
        outcome: &DeliveryOutcome,
    ) -> StoreResult<Delivery>;
    async fn get_delivery(&self, id: &str) -> StoreResult<Delivery>;
    async fn list_deliveries(&self, query: &DeliveryQuery) -> StoreResult<Page<Delivery>>;
}

const RULE_COLUMNS: &str = "id, name, owner_id, events, channel, has_secret, thresholds, \
     enabled, created_by, created_at, updated_at";
const DELIVERY_COLUMNS: &str = "id, rule_id, owner_id, notices, notice_count, state, attempts, \
     next_attempt_at, last_error, created_at, sent_at";

fn rule_from_row(row: &AnyRow) -> StoreResult<NotificationRule> {
    let events: Vec<String> = from_json(row, "events")?;
    Ok(NotificationRule {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        owner_id: row.try_get("owner_id")?,
        events: events
            .iter()
            .map(|e| NotificationEvent::parse(e).ok_or_else(|| StoreError::corrupt("event", e)))
            .collect::<StoreResult<_>>()?,
        channel: from_json(row, "channel")?,
        has_secret: row.try_get::<i64, _>("has_secret")? != 0,
        thresholds: from_json(row, "thresholds")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn delivery_from_row(row: &AnyRow) -> StoreResult<Delivery> {
    let state: String = row.try_get("state")?;
    Ok(Delivery {
        id: row.try_get("id")?,
        rule_id: row.try_get("rule_id")?,
        owner_id: row.try_get("owner_id")?,
        notices: from_json(row, "notices")?,
        notice_count: row.try_get("notice_count")?,
        state: DeliveryState::parse(&state)
            .ok_or_else(|| StoreError::corrupt("delivery state", &state))?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        sent_at: row.try_get("sent_at")?,
    })
}

fn event_names(events: &[NotificationEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.as_str()).collect()
}

fn rule_event(action: AuditAction, id: &str, details: serde_json::Value) -> NewAuditEvent {
    NewAuditEvent { action, entity_type: "notification_rule".into(), entity_id: id.into(), details }
}

fn name_conflict(name: &str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
    move |e| match StoreError::from(e) {
        StoreError::Conflict(_) => {
            StoreError::Conflict(format!("a notification rule named {name:?} exists"))
        }
        other => other,
    }
}

fn owner_filter(b: &mut SqlBuilder, column: &str, owner_id: Option<&str>) {
    if let Some(owner) = owner_id {
        b.push(&format!(" AND {column} = ")).bind(Arg::Text(owner.to_string()));
    }
}

/// Marks per INSERT: six parameters each, well inside both databases' limits.
const MARK_CHUNK: usize = 200;

impl SqlStore {
    /// Counts an attempt of `delivery` and holds it until `lease_until`, with a compare and
    /// set on the attempt count: of two replicas, one takes the attempt.
    async fn take_delivery(
        &self,
        mut delivery: Delivery,
        lease_until: i64,
    ) -> StoreResult<Option<Delivery>> {
        let taken = sqlx::query(
            "UPDATE notification_deliveries SET attempts = attempts + 1, next_attempt_at = $1 \
             WHERE id = $2 AND state = 'pending' AND attempts = $3",
        )
        .bind(lease_until)
        .bind(&delivery.id)
        .bind(delivery.attempts)
        .execute(&self.write)
        .await?
        .rows_affected();
        if taken != 1 {
            return Ok(None);
        }
        delivery.attempts += 1;
        delivery.next_attempt_at = Some(lease_until);
        Ok(Some(delivery))
    }
}

#[async_trait]
impl NotificationStore for SqlStore {
    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(name = %rule.name))]
    async fn create_notification_rule(
        &self,
        ctx: &AuditContext,
        rule: &NewNotificationRule,
    ) -> StoreResult<NotificationRule> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO notification_rules (id, name, owner_id, events, channel, has_secret, \
             thresholds, enabled, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(&rule.id)
        .bind(&rule.name)
        .bind(&rule.owner_id)
        .bind(to_json(&event_names(&rule.events))?)
        .bind(to_json(&rule.channel)?)
        .bind(i64::from(rule.has_secret))
        .bind(to_json(&rule.thresholds)?)
        .bind(i64::from(rule.enabled))
        .bind(&ctx.actor)
        .bind(ctx.now())
        .execute(&mut *tx)
        .await
        .map_err(name_conflict(&rule.name))?;
        let details = json!({
            "name": rule.name, "owner_id": rule.owner_id, "events": event_names(&rule.events),
            "channel": rule.channel, "thresholds": rule.thresholds, "enabled": rule.enabled,
        });
        let event = rule_event(AuditAction::NotificationRuleCreated, &rule.id, details);
        audit::append(&mut tx, ctx, &event).await?;
        tx.commit().await?;
        self.get_notification_rule(&rule.id).await
    }

    async fn list_notification_rules(&self) -> StoreResult<Vec<NotificationRule>> {
        sqlx::query(&format!("SELECT {RULE_COLUMNS} FROM notification_rules ORDER BY name"))
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(rule_from_row)
            .collect()
    }

    async fn get_notification_rule(&self, id_or_name: &str) -> StoreResult<NotificationRule> {
        let row = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM notification_rules WHERE id = $1 OR name = $1"
        ))
        .bind(id_or_name)
        .fetch_optional(&self.read)
        .await?
        .ok_or_else(|| StoreError::not_found("notification rule", id_or_name))?;
        rule_from_row(&row)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(rule = %id))]
    async fn update_notification_rule(
        &self,
        ctx: &AuditContext,
        id: &str,
        update: &NotificationRuleUpdate,
    ) -> StoreResult<NotificationRule> {
        let current = self.get_notification_rule(id).await?;
        let mut b = SqlBuilder::new("UPDATE notification_rules SET updated_at = ");
        b.bind(Arg::Int(ctx.now()));
        let mut details = serde_json::Map::new();
        if let Some(name) = &update.name {
            b.push(", name = ").bind(Arg::Text(name.clone()));
            details.insert("name".into(), json!({"from": current.name, "to": name}));
        }
        if let Some(owner_id) = &update.owner_id {
            b.push(", owner_id = ").bind(Arg::OptText(owner_id.clone()));
            details.insert("owner_id".into(), json!({"from": current.owner_id, "to": owner_id}));
        }
        if let Some(events) = &update.events {
            b.push(", events = ").bind(Arg::Text(to_json(&event_names(events))?));
            details.insert("events".into(), json!(event_names(events)));
        }
        if let Some(channel) = &update.channel {
            b.push(", channel = ").bind(Arg::Text(to_json(channel)?));
            details.insert("channel".into(), channel.clone());
        }
        if let Some(has_secret) = update.has_secret {
            b.push(", has_secret = ").bind(Arg::Int(i64::from(has_secret)));
            // Only that it changed: the secret itself never reaches the database.
            details.insert("secret".into(), json!("replaced"));
        }
        if let Some(thresholds) = &update.thresholds {
            b.push(", thresholds = ").bind(Arg::Text(to_json(thresholds)?));
            details.insert("thresholds".into(), json!(thresholds));
        }
        if let Some(enabled) = update.enabled {
            b.push(", enabled = ").bind(Arg::Int(i64::from(enabled)));
            details.insert("enabled".into(), json!(enabled));
        }
        b.push(" WHERE id = ").bind(Arg::Text(current.id.clone()));
        let mut tx = self.begin().await?;
        b.query()
            .execute(&mut *tx)
            .await
            .map_err(name_conflict(update.name.as_deref().unwrap_or(&current.name)))?;
        let event = rule_event(AuditAction::NotificationRuleUpdated, &current.id, details.into());
        audit::append(&mut tx, ctx, &event).await?;
        tx.commit().await?;
        self.get_notification_rule(&current.id).await
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(rule = %id))]
    async fn delete_notification_rule(&self, ctx: &AuditContext, id: &str) -> StoreResult<()> {
        let current = self.get_notification_rule(id).await?;
        let mut tx = self.begin().await?;
        // Explicit, not left to ON DELETE CASCADE: SQLite enforces it only with foreign keys on.
        for table in ["notification_marks", "notification_deliveries"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE rule_id = $1"))
                .bind(&current.id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM notification_rules WHERE id = $1")
            .bind(&current.id)
            .execute(&mut *tx)
            .await?;
        let details = json!({"name": current.name});
        let event = rule_event(AuditAction::NotificationRuleDeleted, &current.id, details);
        audit::append(&mut tx, ctx, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(level))]
    async fn expiring_notices(
        &self,
        rule_id: &str,
        owner_id: Option<&str>,
        after: i64,
        until: i64,
        level: i64,
        limit: u32,
    ) -> StoreResult<Vec<Notice>> {
        let mut b = SqlBuilder::new(
            "SELECT c.id, c.common_name, c.subject, c.issuer, c.serial_number, c.not_after, \
             c.owner_id, c.managed_certificate_id FROM certificates c \
             LEFT JOIN managed_certificates m ON m.id = c.managed_certificate_id \
             WHERE c.not_after > ",
        );
        b.bind(Arg::Int(after)).push(" AND c.not_after <= ").bind(Arg::Int(until));
        b.push(" AND c.revoked_at IS NULL");
        owner_filter(&mut b, "c.owner_id", owner_id);
        b.push(
            " AND (c.managed_certificate_id IS NULL OR m.id IS NULL \
             OR m.current_certificate_id = c.id) \
             AND NOT EXISTS (SELECT 1 FROM notification_marks k WHERE k.rule_id = ",
        );
        b.bind(Arg::Text(rule_id.into()));
        b.push(" AND k.event = 'certificate_expiring' AND k.subject = c.id AND k.level = ");
        b.bind(Arg::Int(level));
        b.push(") ORDER BY c.not_after LIMIT ").bind(Arg::Int(i64::from(limit)));
        let rows = b.query().fetch_all(&self.read).await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                let details = json!({
                    "certificate_id": id,
                    "common_name": row.try_get::<Option<String>, _>("common_name")?,
                    "subject": row.try_get::<String, _>("subject")?,
                    "issuer": row.try_get::<String, _>("issuer")?,
                    "serial_number": row.try_get::<String, _>("serial_number")?,
                    "not_after": row.try_get::<i64, _>("not_after")?,
                    "managed_certificate_id":
                        row.try_get::<Option<String>, _>("managed_certificate_id")?,
                    "threshold_days": level,
                });
                Ok(Notice {
                    event: NotificationEvent::CertificateExpiring,
                    subject: id,
                    level,
                    owner_id: row.try_get("owner_id")?,
                    details,
                })
            })
            .collect()
    }

    async fn overdue_renewal_notices(
        &self,
        owner_id: Option<&str>,
        due_before: i64,
    ) -> StoreResult<Vec<Notice>> {
        let mut b = SqlBuilder::new(
            "SELECT m.id, m.name, m.owner_id, m.current_certificate_id, m.decision, \
             m.renewal_failures, m.last_error, c.created_at AS version_at, \
             (SELECT MIN(r.created_at) FROM issuance_requests r \
              WHERE r.managed_certificate_id = m.id AND r.created_at >= c.created_at \
              AND r.state NOT IN ('issued', 'failed', 'rejected')) AS open_since \
             FROM managed_certificates m JOIN certificates c ON c.id = m.current_certificate_id \
             WHERE m.decision IS NOT NULL",
        );
        owner_filter(&mut b, "m.owner_id", owner_id);
        let mut notices = Vec::new();
        for row in b.query().fetch_all(&self.read).await? {
            let decision: serde_json::Value = from_json(&row, "decision")?;
            // While a renewal request is open (awaiting approval, retrying), the decision
            // only says "waiting" as of its own time: renewal was due when the request was
            // made.
            let open_since: Option<i64> = row.try_get("open_since")?;
            let waiting = decision.get("reason").and_then(|r| r.as_str()) == Some("request_open");
            let recorded = decision.get("due_at").and_then(|v| v.as_i64());
            let Some(due_at) = (if waiting { open_since.or(recorded) } else { recorded }) else {
                continue;
            };
            // A decision due before the current version was stored was about the version
            // before it (the scheduler has not looked at the new one yet).
            let version_at: i64 = row.try_get("version_at")?;
            if due_at > due_before || due_at <= version_at {
                continue;
            }
            let id: String = row.try_get("id")?;
            let current: String = row.try_get("current_certificate_id")?;
            notices.push(Notice {
                event: NotificationEvent::RenewalOverdue,
                subject: format!("{id}:{current}"),
                level: 0,
                owner_id: row.try_get("owner_id")?,
                details: json!({
                    "managed_certificate_id": id,
                    "name": row.try_get::<String, _>("name")?,
                    "current_certificate_id": current,
                    "due_at": due_at,
                    "decision": decision,
                    "renewal_failures": row.try_get::<i64, _>("renewal_failures")?,
                    "last_error": row.try_get::<Option<String>, _>("last_error")?,
                }),
            });
        }
        Ok(notices)
    }

    async fn request_notices(
        &self,
        owner_id: Option<&str>,
        since: i64,
        limit: u32,
    ) -> StoreResult<Vec<Notice>> {
        let mut notices = Vec::new();
        // (state, only changes since `since`)
        for (state, recent) in [("awaiting_approval", false), ("failed", true), ("issued", true)] {
            let mut b = SqlBuilder::new(
                "SELECT id, kind, owner_id, managed_certificate_id, certificate_id, last_error, \
                 requested_by, updated_at FROM issuance_requests WHERE state = ",
            );
            b.bind(Arg::Text(state.into()));
            if recent {
                b.push(" AND updated_at >= ").bind(Arg::Int(since));
            }
            owner_filter(&mut b, "owner_id", owner_id);
            b.push(" ORDER BY updated_at DESC LIMIT ").bind(Arg::Int(i64::from(limit)));
            for row in b.query().fetch_all(&self.read).await? {
                let kind: String = row.try_get("kind")?;
                let event = match (state, kind.as_str()) {
                    ("awaiting_approval", _) => NotificationEvent::RequestAwaitingApproval,
                    ("failed", _) => NotificationEvent::RequestFailed,
                    (_, "renew") => NotificationEvent::CertificateRenewed,
                    (_, "revoke") => NotificationEvent::CertificateRevoked,
                    _ => NotificationEvent::CertificateIssued,
                };
                let id: String = row.try_get("id")?;
                notices.push(Notice {
                    event,
                    subject: id.clone(),
                    level: 0,
                    owner_id: row.try_get("owner_id")?,
                    details: json!({
                        "request_id": id,
                        "kind": kind,
                        "managed_certificate_id":
                            row.try_get::<Option<String>, _>("managed_certificate_id")?,
                        "certificate_id": row.try_get::<Option<String>, _>("certificate_id")?,
                        "last_error": row.try_get::<Option<String>, _>("last_error")?,
                        "requested_by": row.try_get::<String, _>("requested_by")?,
                        "at": row.try_get::<i64, _>("updated_at")?,
                    }),
                });
            }
        }
        Ok(notices)
    }

    async fn deployment_notices(
        &self,
        owner_id: Option<&str>,
        stale_before: i64,
    ) -> StoreResult<Vec<Notice>> {
        let mut b = SqlBuilder::new(
            "SELECT d.managed_certificate_id, d.target, d.state, d.failed_step, d.last_error, \
             d.updated_at, m.name, m.owner_id, m.current_certificate_id, a.id AS agent_id, \
             a.name AS agent_name FROM deployments d \
             JOIN managed_certificates m ON m.id = d.managed_certificate_id \
             JOIN agents a ON a.id = d.agent_id \
             WHERE a.disabled_at IS NULL AND m.current_certificate_id IS NOT NULL \
             AND (d.state = 'failed' OR ((d.state <> 'verified' OR d.certificate_id IS NULL \
             OR d.certificate_id <> m.current_certificate_id) AND d.updated_at < ",
        );
        b.bind(Arg::Int(stale_before)).push("))");
        owner_filter(&mut b, "m.owner_id", owner_id);
        b.query()
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|row| {
                let managed: String = row.try_get("managed_certificate_id")?;
                let agent: String = row.try_get("agent_id")?;
                let target: String = row.try_get("target")?;
                let current: String = row.try_get("current_certificate_id")?;
                let state: String = row.try_get("state")?;
                Ok(Notice {
                    event: NotificationEvent::DeploymentFailed,
                    subject: format!("{managed}:{agent}:{target}:{current}"),
                    level: 0,
                    owner_id: row.try_get("owner_id")?,
                    details: json!({
                        "managed_certificate_id": managed,
                        "name": row.try_get::<String, _>("name")?,
                        "agent": row.try_get::<String, _>("agent_name")?,
                        "target": target,
                        "state": state,
                        "stale": state != "failed",
                        "failed_step": row.try_get::<Option<String>, _>("failed_step")?,
                        "last_error": row.try_get::<Option<String>, _>("last_error")?,
                        "current_certificate_id": current,
                        "updated_at": row.try_get::<i64, _>("updated_at")?,
                    }),
                })
            })
            .collect()
    }

    async fn agent_offline_notices(&self, offline_before: i64) -> StoreResult<Vec<Notice>> {
        sqlx::query(
            "SELECT id, name, hostname, last_seen_at FROM agents \
             WHERE disabled_at IS NULL AND last_seen_at IS NOT NULL AND last_seen_at < $1",
        )
        .bind(offline_before)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|row| {
            let id: String = row.try_get("id")?;
            let last_seen: i64 = row.try_get("last_seen_at")?;
            Ok(Notice {
                event: NotificationEvent::AgentOffline,
                // One notice per silence: once it is heard again, a new silence is news.
                subject: format!("{id}:{last_seen}"),
                level: 0,
                owner_id: None,
                details: json!({
                    "agent_id": id,
                    "name": row.try_get::<String, _>("name")?,
                    "hostname": row.try_get::<Option<String>, _>("hostname")?,
                    "last_seen_at": last_seen,
                }),
            })
        })
        .collect()
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(rule = %rule_id))]
    async fn record_notices(
        &self,
        rule_id: &str,
        now: i64,
        send_at: i64,
        groups: Vec<Vec<Notice>>,
    ) -> StoreResult<Vec<Delivery>> {
        let mut made = Vec::new();
        let mut marked = 0;
        let mut tx = self.begin().await?;
        for group in groups {
            let delivery_id = uuid::Uuid::now_v7().to_string();
            let mut fresh = Vec::new();
            for chunk in group.chunks(MARK_CHUNK) {
                let mut b = SqlBuilder::new(
                    "INSERT INTO notification_marks \
                     (rule_id, event, subject, level, delivery_id, created_at) VALUES ",
                );
                for (i, notice) in chunk.iter().enumerate() {
                    if i > 0 {
                        b.push(", ");
                    }
                    b.row([
                        Arg::Text(rule_id.into()),
                        Arg::Text(notice.event.as_str().into()),
                        Arg::Text(notice.subject.clone()),
                        Arg::Int(notice.level),
                        Arg::Text(delivery_id.clone()),
                        Arg::Int(now),
                    ]);
                }
                b.push(" ON CONFLICT DO NOTHING RETURNING event, subject, level");
                let inserted = b.query().fetch_all(&mut *tx).await?;
                let mut told = std::collections::HashSet::new();
                for row in &inserted {
                    let event: String = row.try_get("event")?;
                    let subject: String = row.try_get("subject")?;
                    let level: i64 = row.try_get("level")?;
                    told.insert((event, subject, level));
                }
                fresh.extend(chunk.iter().filter(|n| {
                    told.contains(&(n.event.as_str().to_string(), n.subject.clone(), n.level))
                }));
            }
            marked += fresh.len();
            let Some(first) = fresh.first() else { continue };
            let owner_id = first.owner_id.clone();
            let count = i64::try_from(fresh.len()).unwrap_or(i64::MAX);
            let listed: Vec<Notice> =
                fresh.iter().take(MAX_NOTICES_PER_DELIVERY).map(|n| (*n).clone()).collect();
            sqlx::query(
                "INSERT INTO notification_deliveries (id, rule_id, owner_id, notices, \
                 notice_count, state, attempts, next_attempt_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $7)",
            )
            .bind(&delivery_id)
            .bind(rule_id)
            .bind(&owner_id)
            .bind(to_json(&listed)?)
            .bind(count)
            .bind(send_at)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            made.push(Delivery {
                id: delivery_id,
                rule_id: rule_id.to_string(),
                owner_id,
                notices: listed,
                notice_count: count,
                state: DeliveryState::Pending,
                attempts: 0,
                next_attempt_at: Some(send_at),
                last_error: None,
                created_at: now,
                sent_at: None,
            });
        }
        tx.commit().await?;
        // PostgreSQL plans the next evaluation's anti-join on the marks' statistics: left at
        // "empty" after a first evaluation over a large inventory, it scans every mark for each
        // certificate (a pass of minutes at 1M, measured).
        self.refresh_statistics("notification_marks", marked).await;
        Ok(made)
    }

    async fn forget_notice(
        &self,
        rule_id: &str,
        event: NotificationEvent,
        subject: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "DELETE FROM notification_marks WHERE rule_id = $1 AND event = $2 AND subject = $3",
        )
        .bind(rule_id)
        .bind(event.as_str())
        .bind(subject)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn claim_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        let due = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM notification_deliveries \
             WHERE state = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2"
        ))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(delivery_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
        let mut claimed = Vec::with_capacity(due.len());
        for delivery in due {
            claimed.extend(self.take_delivery(delivery, lease_until).await?);
        }
        Ok(claimed)
    }

    async fn claim_delivery(&self, id: &str, lease_until: i64) -> StoreResult<Option<Delivery>> {
        let delivery = self.get_delivery(id).await?;
        if delivery.state != DeliveryState::Pending {
            return Ok(None);
        }
        self.take_delivery(delivery, lease_until).await
    }

    async fn finish_delivery(
        &self,
        id: &str,
        now: i64,
        outcome: &DeliveryOutcome,
    ) -> StoreResult<Delivery> {
        let (state, next, error, sent) = match outcome {
            DeliveryOutcome::Sent => (DeliveryState::Sent, None, None, Some(now)),
            DeliveryOutcome::Retry { error, at } => {
                (DeliveryState::Pending, Some(*at), Some(error.as_str()), None)
            }
            DeliveryOutcome::GaveUp { error } => {
                (DeliveryState::Failed, None, Some(error.as_str()), None)
            }
        };
        let changed = sqlx::query(
            "UPDATE notification_deliveries SET state = $1, next_attempt_at = $2, \
             last_error = COALESCE($3, last_error), sent_at = $4 WHERE id = $5",
        )
        .bind(state.as_str())
        .bind(next)
        .bind(error)
        .bind(sent)
        .bind(id)
        .execute(&self.write)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::not_found("delivery", id));
        }
        self.get_delivery(id).await
    }

    async fn get_delivery(&self, id: &str) -> StoreResult<Delivery> {
        let row = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM notification_deliveries WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.write)
        .await?
        .ok_or_else(|| StoreError::not_found("delivery", id))?;
        delivery_from_row(&row)
    }

    async fn list_deliveries(&self, query: &DeliveryQuery) -> StoreResult<Page<Delivery>> {
        let limit = query.limit.clamp(1, 500);
        let mut b = SqlBuilder::new(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM notification_deliveries WHERE 1 = 1"
        ));
        if let Some(rule) = &query.rule_id {
            b.push(" AND rule_id = ").bind(Arg::Text(rule.clone()));
        }
        if let Some(state) = query.state {
            b.push(" AND state = ").bind(Arg::Text(state.as_str().into()));
        }
        b.newest_first_page(query.cursor.as_ref(), limit);
        let items = b
            .query()
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(delivery_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_rows(items, limit, |d| Cursor { key: d.created_at, id: d.id.clone() }))
    }
}
