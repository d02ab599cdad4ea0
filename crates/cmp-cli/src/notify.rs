//! `cmpctl notify ...`: notification rules (admin, security), test sends, deliveries.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use cmp_api::{
    DeliveryListParams, EmailChannel, NotificationChannel, NotificationDelivery, NotificationRule,
    NotificationRuleCreate, NotificationRulePatch, SmtpTls, WebhookChannel, WebhookFormat,
};
use cmp_client::Client;
use cmp_domain::DeliveryState;
use time::format_description::well_known::Rfc3339;

use crate::output::Output;

/// `cmpctl notify ...`.
#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Make a rule: email (--email-to) or a webhook (--webhook).
    Create {
        /// Rule name.
        name: String,
        #[command(flatten)]
        channel: ChannelArgs,
        #[command(flatten)]
        rule: RuleArgs,
        /// Make it turned off.
        #[arg(long)]
        disabled: bool,
    },
    /// List rules.
    List,
    /// Show a rule.
    Show {
        /// Rule name or id.
        rule: String,
    },
    /// Change a rule's events, thresholds or secret, or turn it on or off.
    Update {
        /// Rule name or id.
        rule: String,
        #[command(flatten)]
        rule_args: RuleArgs,
        /// Stop the rule (nothing is evaluated or sent for it).
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        /// Start it again.
        #[arg(long)]
        enable: bool,
    },
    /// Delete a rule, its deliveries and its secret.
    Delete {
        /// Rule name or id.
        rule: String,
    },
    /// Send a test message now; the exit status is 0 only when it was delivered.
    Test {
        /// Rule name or id.
        rule: String,
    },
    /// Deliveries, newest first.
    Deliveries {
        /// Only this rule's (name or id).
        #[arg(long)]
        rule: Option<String>,
        /// pending, sent or failed.
        #[arg(long, value_parser = ["pending", "sent", "failed"])]
        state: Option<String>,
        /// How many, newest first (1-500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

/// Where messages go.
#[derive(Debug, Args)]
pub struct ChannelArgs {
    /// Email recipient (repeatable).
    #[arg(long = "email-to", required_unless_present = "webhook", conflicts_with = "webhook")]
    email_to: Vec<String>,
    /// SMTP relay host.
    #[arg(long, requires = "email_to")]
    smtp_host: Option<String>,
    /// SMTP port (default: 587 for starttls, 465 for tls, 25 for none).
    #[arg(long)]
    smtp_port: Option<u16>,
    /// starttls, tls or none.
    #[arg(long, default_value = "starttls", value_parser = ["starttls", "tls", "none"])]
    smtp_tls: String,
    /// SMTP login (the password is the rule's secret).
    #[arg(long)]
    smtp_user: Option<String>,
    /// Sender address.
    #[arg(long, default_value = "cmp@localhost")]
    from: String,
    /// PEM file of the CA of the relay's certificate, when the system does not trust it.
    #[arg(long)]
    smtp_ca_file: Option<PathBuf>,
    /// Webhook URL.
    #[arg(long)]
    webhook: Option<String>,
    /// Post Slack's `{"text": ...}` instead of CMP's JSON.
    #[arg(long, requires = "webhook")]
    slack: bool,
}

/// What a rule listens to, and its secret.
#[derive(Debug, Args)]
pub struct RuleArgs {
    /// Only this owner's certificates (name or id); default every owner.
    #[arg(long)]
    owner: Option<String>,
    /// Event (repeatable): certificate_expiring, renewal_overdue, request_failed,
    /// request_awaiting_approval, adapter_unhealthy, deployment_failed, agent_offline,
    /// certificate_issued, certificate_renewed, certificate_revoked. Default: all but the last
    /// three.
    #[arg(long = "event")]
    events: Vec<String>,
    /// Days before expiry (repeatable; default 30, 14, 7, 1).
    #[arg(long = "threshold")]
    thresholds: Vec<u32>,
    /// File holding the SMTP password or the webhook signing key (or set CMP_NOTIFY_SECRET);
    /// never on the command line.
    #[arg(long)]
    secret_file: Option<PathBuf>,
}

impl RuleArgs {
    fn secret(&self) -> anyhow::Result<Option<String>> {
        if let Some(path) = &self.secret_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("while reading {}: {e}", path.display()))?;
            return Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()));
        }
        Ok(std::env::var("CMP_NOTIFY_SECRET").ok().filter(|s| !s.is_empty()))
    }
}

fn channel(args: ChannelArgs) -> anyhow::Result<NotificationChannel> {
    if let Some(url) = args.webhook {
        let format = if args.slack { WebhookFormat::Slack } else { WebhookFormat::Json };
        return Ok(NotificationChannel::Webhook(WebhookChannel { url, format }));
    }
    let ca_pem = match &args.smtp_ca_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("while reading {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let tls = match args.smtp_tls.as_str() {
        "tls" => SmtpTls::Tls,
        "none" => SmtpTls::None,
        _ => SmtpTls::Starttls,
    };
    Ok(NotificationChannel::Email(EmailChannel {
        smtp_host: args.smtp_host.unwrap_or_else(|| "localhost".into()),
        smtp_port: args.smtp_port,
        tls,
        username: args.smtp_user,
        from: args.from,
        to: args.email_to,
        ca_pem,
    }))
}

fn rule_fields(rule: &NotificationRule) -> Vec<(&'static str, String)> {
    let channel = match &rule.channel {
        NotificationChannel::Email(e) => {
            format!("email to {} via {}", e.to.join(", "), e.smtp_host)
        }
        NotificationChannel::Webhook(w) => format!("webhook {}", w.url),
    };
    let events: Vec<_> = rule.events.iter().map(|e| e.as_str()).collect();
    let days: Vec<_> = rule.thresholds_days.iter().map(|d| d.to_string()).collect();
    vec![
        ("id", rule.id.clone()),
        ("name", rule.name.clone()),
        ("owner", rule.owner.as_ref().map(|o| o.name.clone()).unwrap_or_else(|| "all".into())),
        ("events", events.join(", ")),
        ("thresholds", format!("{} days", days.join(", "))),
        ("channel", channel),
        ("secret", if rule.has_secret { "kept" } else { "none" }.into()),
        ("enabled", rule.enabled.to_string()),
    ]
}

fn date(t: &time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn delivery_fields(d: &NotificationDelivery) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("id", d.id.clone()),
        ("state", d.state.as_str().to_string()),
        ("attempts", d.attempts.to_string()),
        ("notices", d.notice_count.to_string()),
        ("created", date(&d.created_at)),
    ];
    if let Some(sent) = &d.sent_at {
        fields.push(("sent", date(sent)));
    }
    if let Some(error) = &d.last_error {
        fields.push(("error", error.clone()));
    }
    for notice in &d.notices {
        fields.push(("notice", notice.summary.clone()));
    }
    fields
}

/// `cmpctl notify ...`.
pub async fn notify(client: &Client, out: &Output, cmd: NotifyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        NotifyCommand::Create { name, channel: channel_args, rule, disabled } => {
            let body = NotificationRuleCreate {
                name,
                secret: rule.secret()?,
                owner: rule.owner,
                events: (!rule.events.is_empty()).then_some(rule.events),
                channel: channel(channel_args)?,
                thresholds_days: (!rule.thresholds.is_empty()).then_some(rule.thresholds),
                enabled: Some(!disabled),
            };
            let created = client.create_notification_rule(&body).await?;
            out.value(&created, &rule_fields(&created))?;
        }
        NotifyCommand::List => {
            let rules = client.notification_rules().await?;
            let rows = rules
                .iter()
                .map(|r| {
                    let fields = rule_fields(r);
                    vec![
                        r.name.clone(),
                        fields[2].1.clone(),
                        fields[5].1.clone(),
                        r.events.len().to_string(),
                        r.enabled.to_string(),
                    ]
                })
                .collect();
            out.table_of(&rules, &["NAME", "OWNER", "CHANNEL", "EVENTS", "ENABLED"], rows)?;
        }
        NotifyCommand::Show { rule } => {
            let found = client.notification_rule(&rule).await?;
            out.value(&found, &rule_fields(&found))?;
        }
        NotifyCommand::Update { rule, rule_args, disable, enable } => {
            let patch = NotificationRulePatch {
                secret: rule_args.secret()?.map(Some),
                owner: rule_args.owner.map(Some),
                events: (!rule_args.events.is_empty()).then_some(rule_args.events),
                thresholds_days: (!rule_args.thresholds.is_empty()).then_some(rule_args.thresholds),
                enabled: (disable || enable).then_some(enable),
                ..NotificationRulePatch::default()
            };
            let updated = client.update_notification_rule(&rule, &patch).await?;
            out.value(&updated, &rule_fields(&updated))?;
        }
        NotifyCommand::Delete { rule } => {
            client.delete_notification_rule(&rule).await?;
            out.done(&format!("rule {rule} deleted"))?;
        }
        NotifyCommand::Test { rule } => {
            let delivery = client.test_notification_rule(&rule).await?;
            out.value(&delivery, &delivery_fields(&delivery))?;
            if delivery.state != DeliveryState::Sent {
                return Ok(ExitCode::FAILURE);
            }
        }
        NotifyCommand::Deliveries { rule, state, limit } => {
            let params = DeliveryListParams {
                rule,
                state: state.as_deref().and_then(DeliveryState::parse),
                limit: Some(limit),
                cursor: None,
            };
            let page = client.notification_deliveries(&params).await?;
            let rows = page
                .items
                .iter()
                .map(|d| {
                    let first = d.notices.first().map(|n| n.summary.clone()).unwrap_or_default();
                    vec![
                        date(&d.created_at),
                        d.state.as_str().to_string(),
                        d.attempts.to_string(),
                        d.notice_count.to_string(),
                        first.chars().take(80).collect(),
                        d.last_error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            let headers = ["CREATED", "STATE", "ATTEMPTS", "NOTICES", "FIRST", "ERROR"];
            out.table_of(&page.items, &headers, rows)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
