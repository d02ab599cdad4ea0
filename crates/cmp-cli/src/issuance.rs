//! `cmpctl request|approve|reject|managed|renew|revoke|download|policy|adapter|pki`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use cmp_api::{
    AdapterCreate, AdapterPatch, AgentTokenCreate, ManagedCreate, Request, RequestCreate, Subject,
};
use cmp_ca::ocsp_client::{OcspAnswer, ocsp_request, read_ocsp_response};
use cmp_client::Client;
use cmp_domain::{KeyRule, KeyType, Policy};
use x509_parser::prelude::FromDer;

use crate::output::Output;

/// Names and lifetime of a certificate.
#[derive(Debug, Args)]
pub struct SubjectArgs {
    /// DNS name; repeatable. Default: the CSR's names.
    #[arg(long = "dns")]
    dns_names: Vec<String>,
    /// IP address; repeatable.
    #[arg(long = "ip")]
    ip_addresses: Vec<String>,
    #[arg(long)]
    common_name: Option<String>,
    #[arg(long)]
    validity_days: Option<i64>,
    /// ACME adapters: the id of the solver that proves the names (default: by name pattern).
    #[arg(long)]
    acme_solver: Option<String>,
}

impl SubjectArgs {
    fn subject(self) -> Subject {
        Subject {
            common_name: self.common_name,
            dns_names: self.dns_names,
            ip_addresses: self.ip_addresses,
            validity_days: self.validity_days,
            acme_solver: self.acme_solver,
        }
    }
}

/// Whose certificate, who makes its key, which CA signs it, and what it names.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Owner id or name.
    #[arg(long)]
    owner: String,
    /// PKCS#10 CSR file (PEM): you keep the key.
    #[arg(long, conflicts_with = "key_type")]
    csr: Option<PathBuf>,
    /// Have the server make the key: ecdsa_p256, ecdsa_p384, rsa2048, rsa3072, rsa4096, ed25519.
    #[arg(long)]
    key_type: Option<String>,
    /// Adapter id or name (default: the builtin CA).
    #[arg(long)]
    adapter: Option<String>,
    #[command(flatten)]
    subject: SubjectArgs,
}

impl IssueArgs {
    fn request(self) -> anyhow::Result<RequestCreate> {
        Ok(RequestCreate {
            owner: self.owner,
            adapter: self.adapter,
            csr: read_csr(self.csr)?,
            key_type: self.key_type,
            subject: self.subject.subject(),
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// Request a certificate for a CSR (you keep the key) or with a server-made key.
    Create {
        #[command(flatten)]
        issue: IssueArgs,
        /// Makes a retry of this command return the same request.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Requests, newest first.
    List {
        /// pending, awaiting_approval, approved, submitted, issued, failed, rejected.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
    },
    Show {
        id: String,
    },
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum ManagedCommand {
    /// Manage a certificate: issued now, renewed by the scheduler.
    Create {
        name: String,
        #[command(flatten)]
        issue: IssueArgs,
        /// 30d, 12h or 33% before expiry (default: at 2/3 of the lifetime). Must leave at
        /// least the longer of 1 h and 10% of the lifetime, so that a renewal is never due at
        /// once.
        #[arg(long)]
        renew_before: Option<String>,
    },
    List,
    Show {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    Show {
        owner: String,
    },
    /// Replace an owner's policy.
    Set {
        owner: String,
        /// Allowed name rule (api.example.com, *.example.com, .example.com); repeatable.
        #[arg(long = "allow")]
        allowed_names: Vec<String>,
        /// Allowed key as type:min_bits (rsa:3072, ec:256, ed25519); repeatable.
        #[arg(long = "key")]
        keys: Vec<String>,
        #[arg(long, default_value_t = 397)]
        max_validity_days: i64,
        /// Every request needs the security role's approval.
        #[arg(long)]
        require_approval: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdapterCommand {
    List,
    /// Configure a CA: a new builtin CA, or a Vault PKI role (`--kind vault_pki`).
    Create {
        name: String,
        /// `builtin` or `vault_pki`.
        #[arg(long, default_value = "builtin")]
        kind: String,
        /// JSON, or `@file` (`@-` for stdin): keep Vault tokens out of the shell history.
        /// builtin: '{"key_algorithm":"rsa3072"}'; vault_pki: '{"address":...,"role":...,
        /// "auth":{"method":"token","token":...}}'.
        #[arg(long)]
        config: Option<String>,
    },
    Status {
        id: String,
    },
    /// Replace a Vault adapter's credentials: JSON `{"token":...}` or `{"secret_id":...}`,
    /// from `@file` or `@-` (stdin).
    Credentials {
        id: String,
        #[arg(long)]
        from: String,
    },
    /// A short-lived, renewable Vault token for an agent (vault_pki adapters), printed once.
    AgentToken {
        id: String,
        #[arg(long)]
        agent: String,
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

#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Save a CA's CRL (DER) and list its revoked serials.
    Crl {
        #[arg(long, default_value = "builtin")]
        ca: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Save a CA's chain (PEM): what clients trust.
    Chain {
        #[arg(long, default_value = "builtin")]
        ca: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Ask the CA's OCSP responder about a certificate (signature checked).
    Ocsp {
        /// Certificate id or fingerprint.
        id: String,
        #[arg(long, default_value = "builtin")]
        ca: String,
    },
}

fn read_csr(path: Option<PathBuf>) -> anyhow::Result<Option<String>> {
    path.map(|p| {
        std::fs::read_to_string(&p).with_context(|| format!("while reading {}", p.display()))
    })
    .transpose()
}

fn show_request(out: &Output, r: &Request) -> anyhow::Result<ExitCode> {
    out.value(
        r,
        &[
            ("id", r.id.clone()),
            ("kind", format!("{:?}", r.kind).to_lowercase()),
            ("state", serde_json::to_value(r.state)?.as_str().unwrap_or_default().to_string()),
            ("certificate", r.certificate_id.clone().unwrap_or_default()),
            ("attempts", r.attempts.to_string()),
            ("last error", r.last_error.clone().unwrap_or_default()),
            ("requested by", r.requested_by.clone()),
            ("decided by", r.decided_by.clone().unwrap_or_default()),
        ],
    )?;
    let failed =
        matches!(r.state, cmp_domain::RequestState::Failed | cmp_domain::RequestState::Rejected);
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

pub async fn request(
    client: &Client,
    out: &Output,
    cmd: RequestCommand,
) -> anyhow::Result<ExitCode> {
    match cmd {
        RequestCommand::Create { issue, idempotency_key } => {
            let body = issue.request()?;
            show_request(out, &client.create_request(&body, idempotency_key.as_deref()).await?)
        }
        RequestCommand::List { state, limit } => {
            let page = client
                .requests(&[("state", state), ("limit", limit.map(|l| l.to_string()))])
                .await?;
            let rows = page
                .items
                .iter()
                .map(|r| {
                    vec![
                        r.id.clone(),
                        format!("{:?}", r.kind).to_lowercase(),
                        serde_json::to_value(r.state)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        r.certificate_id.clone().unwrap_or_default(),
                        r.requested_by.clone(),
                    ]
                })
                .collect();
            out.rows(&page, &["ID", "KIND", "STATE", "CERTIFICATE", "REQUESTED BY"], rows)?;
            Ok(ExitCode::SUCCESS)
        }
        RequestCommand::Show { id } => show_request(out, &client.issuance_request(&id).await?),
    }
}

pub async fn decide(
    client: &Client,
    out: &Output,
    id: &str,
    approve: bool,
    comment: Option<String>,
) -> anyhow::Result<ExitCode> {
    show_request(out, &client.decide(id, approve, comment).await?)
}

pub async fn managed(
    client: &Client,
    out: &Output,
    cmd: ManagedCommand,
) -> anyhow::Result<ExitCode> {
    let show = |m: &cmp_api::Managed| -> Vec<(&'static str, String)> {
        vec![
            ("id", m.id.clone()),
            ("name", m.name.clone()),
            ("current", m.current_certificate_id.clone().unwrap_or_default()),
            ("versions", m.versions.len().to_string()),
            ("renewal", m.renewal.as_ref().map(|d| d.message.clone()).unwrap_or_default()),
            ("last error", m.last_error.clone().unwrap_or_default()),
        ]
    };
    match cmd {
        ManagedCommand::Create { name, issue, renew_before } => {
            let r = issue.request()?;
            let body = ManagedCreate {
                name,
                owner: r.owner,
                adapter: r.adapter,
                csr: r.csr,
                key_type: r.key_type,
                subject: r.subject,
                renew_before,
            };
            let m = client.create_managed(&body).await?;
            out.value(&m, &show(&m))?;
        }
        ManagedCommand::List => {
            let page = client.managed_list().await?;
            let rows = page
                .items
                .iter()
                .map(|m| {
                    vec![
                        m.id.clone(),
                        m.name.clone(),
                        m.versions.len().to_string(),
                        m.renewal.as_ref().map(|d| d.message.clone()).unwrap_or_default(),
                    ]
                })
                .collect();
            out.rows(&page, &["ID", "NAME", "VERSIONS", "RENEWAL"], rows)?;
        }
        ManagedCommand::Show { id } => {
            let m = client.managed(&id).await?;
            out.value(&m, &show(&m))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn renew(client: &Client, out: &Output, id: &str) -> anyhow::Result<ExitCode> {
    show_request(out, &client.renew(id).await?)
}

pub async fn revoke(
    client: &Client,
    out: &Output,
    id: &str,
    reason: &str,
    purge_key: bool,
) -> anyhow::Result<ExitCode> {
    show_request(out, &client.revoke(id, reason, purge_key).await?)
}

pub async fn download(
    client: &Client,
    out: &Output,
    id: &str,
    pkcs12_password: Option<String>,
    file: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let bytes = client.download_key(id, pkcs12_password.as_deref()).await?;
    match file {
        Some(path) => {
            write_private(&path, &bytes)?;
            out.done(&format!("wrote the private key to {}", path.display()))?;
        }
        None if pkcs12_password.is_some() => bail!("a PKCS#12 file is binary: give --out"),
        None => print!("{}", String::from_utf8_lossy(&bytes)),
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a key readable by its owner only.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("while writing {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
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
                    ("token", t.token.clone()),
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
                ],
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn pki(client: &Client, out: &Output, cmd: PkiCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PkiCommand::Crl { ca, out: file } => {
            let der = client.pki(&ca, "crl").await?;
            if let Some(path) = &file {
                std::fs::write(path, &der)
                    .with_context(|| format!("while writing {}", path.display()))?;
            }
            let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der)
                .map_err(|e| anyhow::anyhow!("the CRL does not parse: {e}"))?;
            let rows: Vec<Vec<String>> = crl
                .iter_revoked_certificates()
                .map(|r| {
                    let reason = r
                        .reason_code()
                        .map(|(_, c)| format!("{:?}", c.0))
                        .unwrap_or_else(|| "unspecified".into());
                    vec![
                        r.raw_serial_as_string().replace(':', ""),
                        r.revocation_date.to_rfc2822().unwrap_or_default(),
                        reason,
                    ]
                })
                .collect();
            let json: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| serde_json::json!({"serial": r[0], "revoked_at": r[1], "reason": r[2]}))
                .collect();
            out.table_of(&json, &["SERIAL", "REVOKED AT", "REASON"], rows)?;
        }
        PkiCommand::Chain { ca, out: file } => {
            let pem = client.pki(&ca, "chain").await?;
            match file {
                Some(path) => std::fs::write(&path, &pem)
                    .with_context(|| format!("while writing {}", path.display()))?,
                None => print!("{}", String::from_utf8_lossy(&pem)),
            }
        }
        PkiCommand::Ocsp { id, ca } => {
            let leaf = pem::parse(client.certificate_pem(&id).await?)?.contents().to_vec();
            let issuer = client.pki(&ca, "ca").await?;
            let request = ocsp_request(&leaf, &issuer).map_err(anyhow::Error::msg)?;
            let answer = read_ocsp_response(&client.ocsp(&ca, request).await?, &issuer)
                .map_err(anyhow::Error::msg)?;
            let text = match &answer {
                OcspAnswer::Good => "good".to_string(),
                OcspAnswer::Unknown => "unknown".to_string(),
                OcspAnswer::Revoked { at, reason } => format!(
                    "revoked at {at} (reason code {})",
                    reason.map(|r| r.to_string()).unwrap_or_else(|| "unspecified".into())
                ),
            };
            out.done(&format!("OCSP: {text} (response signature verified)"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
