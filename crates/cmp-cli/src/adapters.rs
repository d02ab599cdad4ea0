//! `cmpctl adapter`: CA adapters.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use cmp_api::{AdapterCreate, AdapterPatch, AgentTokenCreate};
use cmp_client::Client;

use crate::output::Output;

/// `cmpctl adapter ...`.
#[derive(Debug, Subcommand)]
pub enum AdapterCommand {
    /// List the configured CAs.
    List,
    /// Configure a CA: a new builtin CA, a Vault PKI role (docs/VAULT.md) or an ACME CA
    /// (docs/ACME.md).
    Create {
        /// Unique name, used by `--adapter` in requests.
        name: String,
        /// Which kind of CA: builtin, vault_pki or acme (the server lists the kinds it knows
        /// when it refuses one).
        #[arg(long, default_value = "builtin")]
        kind: String,
        /// JSON, or `@file` (`@-` for stdin): keep Vault tokens and EAB keys out of the shell
        /// history. builtin: '{"key_algorithm":"rsa3072"}'; vault_pki: '{"address":...,
        /// "role":..., "auth":{"method":"token","token":...}}'; acme: '{"directory_url":...,
        /// "contact_email":..., "solvers":[{"challenge":"http-01"}]}'.
        #[arg(long)]
        config: Option<String>,
    },
    /// Check that a CA answers, and what it can do.
    Status {
        /// Adapter id or name.
        id: String,
    },
    /// Replace a Vault adapter's credentials: JSON `{"token":...}` or `{"secret_id":...}`,
    /// from `@file` or `@-` (stdin).
    Credentials {
        /// Adapter id or name.
        id: String,
        /// The JSON: `@file` or `@-`.
        #[arg(long)]
        from: String,
    },
    /// A short-lived, renewable Vault token for an agent (vault_pki adapters), printed once.
    AgentToken {
        /// Adapter id or name.
        id: String,
        /// The agent's name (a-z, 0-9, '-').
        #[arg(long)]
        agent: String,
        /// Lifetime before renewal, 60 to 86400 seconds (default 3600).
        #[arg(long)]
        ttl_secs: Option<i64>,
    },
}

/// JSON given inline, or `@file`, or `@-` for stdin.
fn json_argument(value: &str, what: &str) -> anyhow::Result<serde_json::Value> {
    let text = match value.strip_prefix('@') {
        Some("-") => std::io::read_to_string(std::io::stdin()).context("while reading stdin")?,
        Some(file) => {
            std::fs::read_to_string(file).with_context(|| format!("while reading {file}"))?
        }
        None => value.to_string(),
    };
    serde_json::from_str(&text).with_context(|| format!("{what} must be JSON"))
}

/// `cmpctl adapter ...`.
pub async fn adapter(
    client: &Client,
    out: &Output,
    cmd: AdapterCommand,
) -> anyhow::Result<ExitCode> {
    match cmd {
        AdapterCommand::List => {
            let all = client.adapters().await?;
            let rows = all
                .iter()
                .map(|a| {
                    vec![
                        a.id.clone(),
                        a.name.clone(),
                        a.kind.clone(),
                        a.enabled.to_string(),
                        a.crl_url.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            out.table_of(&all, &["ID", "NAME", "KIND", "ENABLED", "CRL"], rows)?;
        }
        AdapterCommand::Create { name, kind, config } => {
            let config = match config {
                Some(c) => json_argument(&c, "--config")?,
                None => serde_json::json!({}),
            };
            let a = client.create_adapter(&AdapterCreate { name, kind, config }).await?;
            out.value(
                &a,
                &[("id", a.id.clone()), ("name", a.name.clone()), ("kind", a.kind.clone())],
            )?;
        }
        AdapterCommand::Credentials { id, from } => {
            let credentials = Some(json_argument(&from, "--from")?);
            let a = client.patch_adapter(&id, &AdapterPatch { enabled: None, credentials }).await?;
            out.value(&a, &[("id", a.id.clone()), ("credentials", "replaced".into())])?;
        }
        AdapterCommand::AgentToken { id, agent, ttl_secs } => {
            let t = client.agent_token(&id, &AgentTokenCreate { agent, ttl_secs }).await?;
            out.value(
                &t,
                &[
                    ("token", t.token.expose().clone()),
                    ("accessor", t.accessor.clone()),
                    ("ttl", format!("{} s (renewable: {})", t.ttl_secs, t.renewable)),
                    ("vault", t.vault_address.clone()),
                    ("sign with", t.sign_path.clone()),
                    ("read", t.kv_path.clone()),
                ],
            )?;
        }
        AdapterCommand::Status { id } => {
            let s = client.adapter_status(&id).await?;
            out.value(
                &s,
                &[
                    ("healthy", s.healthy.to_string()),
                    ("message", s.message.clone()),
                    ("max validity", format!("{} s", s.max_validity_secs)),
                    ("honours validity", s.honours_validity.to_string()),
                    (
                        "issued validity",
                        s.issued_validity_secs.map_or("-".into(), |v| format!("{v} s")),
                    ),
                ],
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
