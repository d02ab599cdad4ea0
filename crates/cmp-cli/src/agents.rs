//! `cmpctl agent ...` (bootstrap tokens and the fleet) and `cmpctl managed deploy ...`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Subcommand;
use cmp_api::{BootstrapTokenCreate, DeploymentTarget, DeploymentsSet};
use cmp_client::Client;
use time::format_description::well_known::Rfc3339;

use crate::output::Output;

/// `cmpctl agent ...`.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Bootstrap tokens, with which hosts enrol (`cmp-agent enroll --token ...`).
    #[command(subcommand)]
    Token(AgentTokenCommand),
    /// List enrolled agents and their status (online, stale, offline, disabled).
    List,
    /// Show one agent with its targets and latest jobs.
    Show {
        /// Agent name or id.
        agent: String,
    },
    /// Refuse the agent's certificate from now on (every replica, at once).
    Disable {
        /// Agent name or id.
        agent: String,
    },
    /// Accept a disabled agent's certificate again.
    Enable {
        /// Agent name or id.
        agent: String,
    },
    /// Ask an agent to read the certificates under its discovery.paths into the inventory.
    Discover {
        /// Agent name or id.
        agent: String,
    },
    /// Delete an agent with its deployments and jobs.
    Delete {
        /// Agent name or id.
        agent: String,
    },
}

/// `cmpctl agent token ...`.
#[derive(Debug, Subcommand)]
pub enum AgentTokenCommand {
    /// Make a single-use token; it is printed once.
    Create {
        /// Hours until it expires unused (1-720).
        #[arg(long, default_value_t = 24)]
        expires_in_hours: i64,
        /// A label for the agent that enrols with it, key=value (repeatable).
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    /// List bootstrap tokens (never their secrets).
    List,
    /// Revoke an unused token.
    Revoke {
        /// Bootstrap token id (from `cmpctl agent token list`).
        id: String,
    },
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{text:?}: write key=value"))
}

fn date(t: &time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn status(s: impl serde::Serialize) -> String {
    serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// `cmpctl agent ...`.
pub async fn agent(client: &Client, out: &Output, cmd: AgentCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AgentCommand::Token(AgentTokenCommand::Create { expires_in_hours, labels }) => {
            let body = BootstrapTokenCreate {
                expires_in_hours: Some(expires_in_hours),
                labels: labels.into_iter().collect::<BTreeMap<_, _>>(),
            };
            let created = client.create_bootstrap_token(&body).await?;
            let fields = [
                ("id", created.info.id.clone()),
                ("expires", date(&created.info.expires_at)),
                ("token", created.token.expose().clone()),
            ];
            out.value(&created, &fields)?;
        }
        AgentCommand::Token(AgentTokenCommand::List) => {
            let tokens = client.list_bootstrap_tokens().await?;
            let rows = tokens
                .iter()
                .map(|t| {
                    let state = match (&t.used_at, &t.revoked_at) {
                        (Some(_), _) => "used",
                        (None, Some(_)) => "revoked",
                        (None, None) => "unused",
                    };
                    vec![t.id.clone(), state.into(), date(&t.expires_at), t.created_by.clone()]
                })
                .collect();
            out.table_of(&tokens, &["ID", "STATE", "EXPIRES", "CREATED BY"], rows)?;
        }
        AgentCommand::Token(AgentTokenCommand::Revoke { id }) => {
            client.revoke_bootstrap_token(&id).await?;
            out.done(&format!("bootstrap token {id} revoked"))?;
        }
        AgentCommand::List => {
            let agents = client.list_agents().await?;
            let rows = agents
                .iter()
                .map(|a| {
                    vec![
                        a.name.clone(),
                        status(a.status),
                        a.hostname.clone().unwrap_or_default(),
                        a.version.clone().unwrap_or_default(),
                        a.last_seen_at.as_ref().map(date).unwrap_or_else(|| "never".into()),
                    ]
                })
                .collect();
            out.table_of(&agents, &["NAME", "STATUS", "HOST", "VERSION", "LAST SEEN"], rows)?;
        }
        AgentCommand::Show { agent } => {
            let detail = client.agent(&agent).await?;
            let a = &detail.agent;
            let mut fields = vec![
                ("id", a.id.clone()),
                ("name", a.name.clone()),
                ("status", status(a.status)),
                ("host", a.hostname.clone().unwrap_or_default()),
                ("os", a.os.clone().unwrap_or_default()),
                ("version", a.version.clone().unwrap_or_default()),
                ("last seen", a.last_seen_at.as_ref().map(date).unwrap_or_else(|| "never".into())),
                (
                    "certificate",
                    format!("{} (until {})", a.cert_fingerprint, date(&a.cert_not_after)),
                ),
            ];
            for t in &a.targets {
                let health = if t.healthy { "healthy" } else { "unhealthy" };
                let message = t.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
                fields.push(("target", format!("{} ({}) {health}{message}", t.name, t.kind)));
            }
            for j in &detail.jobs {
                let step = j.step.as_deref().map(|s| format!(" at {s}")).unwrap_or_default();
                let line = format!(
                    "{} {} {} {}{step}, attempt {} ({})",
                    j.id,
                    j.kind.as_str(),
                    if j.target.is_empty() { "-" } else { &j.target },
                    status(j.state),
                    j.attempts,
                    date(&j.updated_at)
                );
                fields.push(("job", line));
            }
            out.value(&detail, &fields)?;
        }
        AgentCommand::Disable { agent } => {
            let a = client.disable_agent(&agent).await?;
            out.done(&format!("agent {} disabled: its certificate is refused", a.name))?;
        }
        AgentCommand::Enable { agent } => {
            let a = client.enable_agent(&agent).await?;
            out.done(&format!("agent {} enabled", a.name))?;
        }
        AgentCommand::Discover { agent } => {
            let job = client.discover_on_agent(&agent).await?;
            out.value(&job, &[("job", job.id.clone()), ("state", status(job.state))])?;
        }
        AgentCommand::Delete { agent } => {
            client.delete_agent(&agent).await?;
            out.done(&format!("agent {agent} deleted"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `agent:target`, as `--deploy` takes it.
pub fn parse_deployment(text: &str) -> Result<DeploymentTarget, String> {
    match text.split_once(':') {
        Some((agent, target)) if !agent.is_empty() && !target.is_empty() => {
            Ok(DeploymentTarget { agent: agent.into(), target: target.into() })
        }
        _ => Err(format!("{text:?}: write agent:target, e.g. web-01:nginx")),
    }
}

/// Sets where a managed certificate is deployed and prints each deployment.
pub async fn deploy(
    client: &Client,
    out: &Output,
    managed: &str,
    deployments: Vec<DeploymentTarget>,
) -> anyhow::Result<ExitCode> {
    let set = client.set_deployments(managed, &DeploymentsSet { deployments }).await?;
    show_deployments(out, &set)
}

/// Prints deployments: agent, target, state, and the failure or what was served.
pub fn show_deployments(
    out: &Output,
    deployments: &[cmp_api::Deployment],
) -> anyhow::Result<ExitCode> {
    let rows = deployments
        .iter()
        .map(|d| {
            let detail = match (&d.failed_step, &d.served_fingerprint) {
                (Some(step), _) => {
                    format!("{step}: {}", d.last_error.clone().unwrap_or_default())
                }
                (None, Some(fp)) => format!("serves {fp}"),
                (None, None) => String::new(),
            };
            vec![d.agent.clone(), d.target.clone(), status(d.state), detail]
        })
        .collect();
    out.table_of(&deployments, &["AGENT", "TARGET", "STATE", "DETAIL"], rows)?;
    Ok(ExitCode::SUCCESS)
}
