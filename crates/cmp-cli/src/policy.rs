//! `cmpctl policy`: per-owner policies.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use cmp_client::Client;
use cmp_domain::{KeyRule, KeyType, Policy};

use crate::output::Output;

/// `cmpctl policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Show an owner's policy (or the default it falls under).
    Show {
        /// Owner id or name.
        owner: String,
    },
    /// Replace an owner's policy.
    Set {
        /// Owner id or name.
        owner: String,
        /// Allowed name rule (api.example.com, *.example.com, .example.com); repeatable.
        #[arg(long = "allow")]
        allowed_names: Vec<String>,
        /// Allowed key as type:min_bits (rsa:3072, ec:256, ed25519); repeatable.
        #[arg(long = "key")]
        keys: Vec<String>,
        /// Longest lifetime allowed, in days.
        #[arg(long, default_value_t = 397)]
        max_validity_days: i64,
        /// Every request needs the security role's approval.
        #[arg(long)]
        require_approval: bool,
    },
}

fn parse_key_rule(s: &str) -> anyhow::Result<KeyRule> {
    let (kind, bits) = match s.split_once(':') {
        Some((k, b)) => (
            k,
            Some(b.parse::<u32>().with_context(|| format!("--key {s}: bits must be a number"))?),
        ),
        None => (s, None),
    };
    let kind =
        KeyType::parse(kind).with_context(|| format!("--key {s}: unknown key type {kind:?}"))?;
    Ok(KeyRule { kind, min_bits: bits })
}

/// Key rules as `--key` takes them (`ec:256, ed25519`); the default when there are none.
fn key_rules(rules: &[KeyRule]) -> String {
    if rules.is_empty() {
        return "default (rsa:2048, ec:256, ed25519)".into();
    }
    let rules: Vec<String> = rules
        .iter()
        .map(|r| match r.min_bits {
            Some(bits) => format!("{}:{bits}", r.kind.as_str()),
            None => r.kind.as_str().to_string(),
        })
        .collect();
    rules.join(", ")
}

/// `cmpctl policy ...`.
pub async fn policy(client: &Client, out: &Output, cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    let view = match cmd {
        PolicyCommand::Show { owner } => client.policy(&owner).await?,
        PolicyCommand::Set { owner, allowed_names, keys, max_validity_days, require_approval } => {
            let allowed_keys =
                keys.iter().map(|k| parse_key_rule(k)).collect::<anyhow::Result<_>>()?;
            let policy =
                Policy { allowed_names, allowed_keys, max_validity_days, require_approval };
            client.set_policy(&owner, &policy).await?
        }
    };
    let p = &view.policy;
    out.value(
        &view,
        &[
            ("owner", view.owner_id.clone()),
            (
                "allowed names",
                if p.allowed_names.is_empty() { "any".into() } else { p.allowed_names.join(", ") },
            ),
            ("allowed keys", key_rules(&p.allowed_keys)),
            ("max validity", format!("{} days", p.max_validity_days)),
            (
                "approval",
                if p.require_approval { "required".into() } else { "not required".into() },
            ),
            ("explicit", view.explicit.to_string()),
        ],
    )?;
    Ok(ExitCode::SUCCESS)
}
