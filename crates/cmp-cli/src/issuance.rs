//! `cmpctl request|approve|reject|managed|renew|revoke|download|policy|adapter|pki`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use cmp_api::{
    AdapterCreate, AdapterPatch, AgentTokenCreate, ManagedCreate, Request, RequestCreate, Subject,
};
use cmp_client::Client;
use cmp_domain::{KeyRule, KeyType, Policy, RequestKind, RequestState, RevocationReason};
use cmp_pki::{OcspAnswer, ocsp_request, read_ocsp_response};
use time::format_description::well_known::Rfc3339;
use x509_parser::prelude::FromDer;

use crate::output::{Output, write_raw};
use crate::{one_of, resolve};

/// What `--key-type` may ask the server to make.
const SERVER_KEY_TYPES: [&str; 6] =
    ["ecdsa_p256", "ecdsa_p384", "rsa2048", "rsa3072", "rsa4096", "ed25519"];

/// Names and lifetime of a certificate.
#[derive(Debug, Args)]
pub struct SubjectArgs {
    /// DNS name; repeatable. Default: the CSR's names.
    #[arg(long = "dns")]
    dns_names: Vec<String>,
    /// IP address; repeatable.
    #[arg(long = "ip")]
    ip_addresses: Vec<String>,
    /// Subject common name (optional: the names go in the SAN).
    #[arg(long)]
    common_name: Option<String>,
    /// Lifetime in days (default: issuer.default_validity_days, within the owner's policy).
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
    /// Have the server make the key (kept in its secret store; `cmpctl download` gives it).
    #[arg(long, value_parser = one_of(SERVER_KEY_TYPES))]
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

/// `cmpctl request ...`.
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
    /// Requests, newest first. The table shows a carried-out revocation as `revoked` (the
    /// API and `--state` call it `issued`).
    List {
        /// Only requests in this state.
        #[arg(long, value_parser = one_of(RequestState::ALL.map(RequestState::as_str)))]
        state: Option<String>,
        /// Only requests of this kind.
        #[arg(long, value_parser = one_of(RequestKind::ALL.map(RequestKind::as_str)))]
        kind: Option<String>,
        /// Page size, 1 to 500 (default 100).
        #[arg(long)]
        limit: Option<u32>,
        /// Next page: the cursor the previous page printed.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one request: its state, certificate, attempts and decision.
    Show {
        /// Request id.
        id: String,
    },
}

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
    },
    /// List managed certificates.
    List,
    /// Show one: its versions, and the scheduler's last decision.
    Show {
        /// Managed certificate id, name, or owner/name (when you see several owners).
        id: String,
    },
}

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

/// `cmpctl pki ...`.
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// List the revoked serials of a CA's CRL, with their RFC 5280 reasons.
    Crl {
        /// The builtin CA adapter's name.
        #[arg(long, default_value = "builtin")]
        ca: String,
        /// Also save the CRL (DER) to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print a CA's chain (PEM): what clients trust.
    Chain {
        /// The builtin CA adapter's name.
        #[arg(long, default_value = "builtin")]
        ca: String,
        /// Write it to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Ask the CA's OCSP responder about a certificate (signature checked).
    Ocsp {
        /// Certificate id, SHA-256 fingerprint or a prefix of it.
        id: String,
        /// The builtin CA adapter's name.
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

/// A request's state as people read it: the API ends a carried-out revocation in `issued`
/// (its state machine has one success state for every kind), which reads as the opposite.
pub fn state_label(r: &Request) -> &'static str {
    match (r.kind, r.state) {
        (RequestKind::Revoke, RequestState::Issued) => "revoked",
        (_, state) => state.as_str(),
    }
}

fn show_request(out: &Output, r: &Request) -> anyhow::Result<ExitCode> {
    out.value(
        r,
        &[
            ("id", r.id.clone()),
            ("kind", r.kind.as_str().to_string()),
            ("state", state_label(r).to_string()),
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

/// `cmpctl request ...`.
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
        RequestCommand::List { state, kind, limit, cursor } => {
            let query = [
                ("state", state),
                ("kind", kind),
                ("limit", limit.map(|l| l.to_string())),
                ("cursor", cursor),
            ];
            let page = client.requests(&query).await?;
            let rows = page
                .items
                .iter()
                .map(|r| {
                    vec![
                        r.id.clone(),
                        r.kind.as_str().to_string(),
                        state_label(r).to_string(),
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

/// `cmpctl approve|reject`.
pub async fn decide(
    client: &Client,
    out: &Output,
    id: &str,
    approve: bool,
    comment: Option<String>,
) -> anyhow::Result<ExitCode> {
    show_request(out, &client.decide(id, approve, comment).await?)
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
    }
    Ok(ExitCode::SUCCESS)
}

/// `cmpctl renew`: the renewal request.
pub async fn renew(client: &Client, out: &Output, id: &str) -> anyhow::Result<ExitCode> {
    show_request(out, &client.renew(id).await?)
}

/// `cmpctl revoke`: the revocation request.
pub async fn revoke(
    client: &Client,
    out: &Output,
    id: &str,
    reason: &str,
    purge_key: bool,
) -> anyhow::Result<ExitCode> {
    show_request(out, &client.revoke(id, reason, purge_key).await?)
}

/// `cmpctl download`: a server-made key, to a 0600 file or standard output.
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
        None => write_raw(&bytes)?,
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

/// The RFC 5280 name of a CRL reason code, as `--reason` takes it.
fn reason_name(code: u8) -> String {
    RevocationReason::from_code(code)
        .map(|r| r.as_str().to_string())
        .unwrap_or_else(|| format!("code {code}"))
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

/// `cmpctl pki ...`: what a CA publishes, fetched without a token.
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
                    // No reason extension means unspecified (RFC 5280 5.3.1).
                    let reason = r
                        .reason_code()
                        .map(|(_, c)| reason_name(c.0))
                        .unwrap_or_else(|| RevocationReason::Unspecified.as_str().into());
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
                None => write_raw(&pem)?,
            }
        }
        PkiCommand::Ocsp { id, ca } => {
            let id = resolve::certificate_id(client, &id).await?;
            let leaf = pem::parse(client.certificate_pem(&id).await?)?.contents().to_vec();
            let issuer = client.pki(&ca, "ca").await?;
            let request = ocsp_request(&leaf, &issuer)?;
            let answer = read_ocsp_response(&client.ocsp(&ca, request).await?, &issuer)?;
            let text = match &answer {
                OcspAnswer::Good => "good".to_string(),
                OcspAnswer::Unknown => "unknown".to_string(),
                OcspAnswer::Revoked { at, reason } => format!(
                    "revoked at {at} ({})",
                    reason_name(reason.unwrap_or(RevocationReason::Unspecified.code()))
                ),
            };
            out.done(&format!("OCSP: {text} (response signature verified)"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
