//! `cmpctl managed|renew`: managed certificates.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use cmp_api::ManagedCreate;
use cmp_client::Client;
use time::format_description::well_known::Rfc3339;

use crate::output::Output;
use crate::requests::{IssueArgs, show_request, state_label};

/// `cmpctl managed ...`.
// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum ManagedCommand {
    /// Manage a certificate: requested now, renewed by the scheduler. Prints the request it
    /// made and its state (in JSON under `request`).
    Create {
        /// Name, unique among the owner's managed certificates, e.g. shop-www (letters, digits,
        /// '-', '_', '.').
        name: String,
        #[command(flatten)]
        issue: IssueArgs,
        /// 30d, 12h or 33% before expiry (default: at 2/3 of the lifetime). Must leave at
        /// least the longer of 1 h and 10% of the lifetime, so that a renewal is never due at
        /// once.
        #[arg(long)]
        renew_before: Option<String>,
        /// Deploy it with an agent's target, agent:target (repeatable), e.g. web-01:nginx.
        #[arg(long = "deploy", value_parser = crate::agents::parse_deployment)]
        deploy: Vec<cmp_api::DeploymentTarget>,
        /// Make each version's key on the host of its one --deploy target: the agent sends a
        /// CSR, and the private key never leaves that host.
        #[arg(long, requires = "deploy")]
        key_on_agent: bool,
    },
    /// List managed certificates.
    List,
    /// Show one: its versions, and the scheduler's last decision.
    Show {
        /// Managed certificate id, name, or owner/name (when you see several owners).
        id: String,
    },
    /// Set where it is deployed: the whole list of agent:target (none to stop deploying it).
    /// Each new version goes to every one of them.
    Deploy {
        /// Managed certificate id, name, or owner/name.
        id: String,
        /// agent:target, e.g. web-01:nginx (the target as the agent's configuration names it).
        #[arg(value_parser = crate::agents::parse_deployment)]
        deployments: Vec<cmp_api::DeploymentTarget>,
    },
    /// Where it is deployed, and whether each target serves the current version.
    Deployments {
        /// Managed certificate id, name, or owner/name.
        id: String,
    },
}

/// `cmpctl managed ...`.
pub async fn managed(
    client: &Client,
    out: &Output,
    cmd: ManagedCommand,
) -> anyhow::Result<ExitCode> {
    let show = |m: &cmp_api::Managed| -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("id", m.id.clone()),
            ("owner", m.owner_name.clone().unwrap_or_default()),
            ("name", m.name.clone()),
            ("current", m.current_certificate_id.clone().unwrap_or_default()),
            ("versions", m.versions.len().to_string()),
        ];
        for v in &m.versions {
            let revoked = if v.revoked { ", revoked" } else { "" };
            let until = v.not_after.format(&Rfc3339).unwrap_or_default();
            fields.push(("version", format!("{} (until {until}{revoked})", v.certificate_id)));
        }
        fields.extend([
            (
                "renewal",
                m.renewal
                    .as_ref()
                    .map(|d| d.message.clone())
                    .unwrap_or_else(|| "not checked yet".into()),
            ),
            ("last error", m.last_error.clone().unwrap_or_default()),
        ]);
        fields
    };
    match cmd {
        ManagedCommand::Create { name, issue, renew_before, deploy, key_on_agent } => {
            let r = issue.request()?;
            let body = ManagedCreate {
                name,
                owner: r.owner,
                adapter: r.adapter,
                csr: r.csr,
                key_type: r.key_type,
                subject: r.subject,
                renew_before,
                key_on_agent,
                deployments: deploy.clone(),
            };
            let m = client.create_managed(&body).await?;
            // The answer is the managed certificate alone; its first request is the newest
            // one that names it.
            let query = [("managed_certificate", Some(m.id.clone())), ("limit", Some("1".into()))];
            let request = client
                .requests(&query)
                .await
                .context("while reading the request it made")?
                .items
                .into_iter()
                .next();
            let mut fields = show(&m);
            if let Some(r) = &request {
                fields.push(("request", r.id.clone()));
                fields.push(("request state", state_label(r).to_string()));
            }
            let mut json = serde_json::to_value(&m)?;
            if !deploy.is_empty() {
                let deployments = client
                    .deployments(&m.id)
                    .await
                    .context("while reading where it is deployed")?;
                for d in &deployments {
                    fields.push(("deployment", format!("{}:{} (pending)", d.agent, d.target)));
                }
                if let Some(object) = json.as_object_mut() {
                    object.insert("deployments".into(), serde_json::to_value(&deployments)?);
                }
            }
            if let Some(object) = json.as_object_mut() {
                object.insert("request".into(), serde_json::to_value(&request)?);
            }
            out.value(&json, &fields)?;
        }
        ManagedCommand::List => {
            let page = client.managed_list().await?;
            let rows = page
                .items
                .iter()
                .map(|m| {
                    vec![
                        m.id.clone(),
                        m.owner_name.clone().unwrap_or_default(),
                        m.name.clone(),
                        m.versions.len().to_string(),
                        m.renewal.as_ref().map(|d| d.message.clone()).unwrap_or_default(),
                    ]
                })
                .collect();
            out.rows(&page, &["ID", "OWNER", "NAME", "VERSIONS", "RENEWAL"], rows)?;
        }
        ManagedCommand::Show { id } => {
            let m = client.managed(&id).await?;
            out.value(&m, &show(&m))?;
        }
        ManagedCommand::Deploy { id, deployments } => {
            return crate::agents::deploy(client, out, &id, deployments).await;
        }
        ManagedCommand::Deployments { id } => {
            return crate::agents::show_deployments(out, &client.deployments(&id).await?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `cmpctl renew`: the renewal request.
pub async fn renew(client: &Client, out: &Output, id: &str) -> anyhow::Result<ExitCode> {
    match client.renew(id).await? {
        cmp_client::Renewed::Request(request) => show_request(out, &request),
        cmp_client::Renewed::OnAgent(m) => {
            let fields = vec![
                ("managed certificate", m.id.clone()),
                ("renewal", "its key is made on the agent's host: the agent was asked for a new key's CSR (see `cmpctl managed deployments`)".to_string()),
            ];
            out.value(&m, &fields)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
