//! `cmpctl request|approve|reject|revoke|download`: issuance requests and what they produce.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use cmp_api::{Request, RequestCreate, Subject};
use cmp_client::Client;
use cmp_domain::{RequestKind, RequestState};

use crate::one_of;
use crate::output::{Output, write_raw};

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
    pub(crate) fn request(self) -> anyhow::Result<RequestCreate> {
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

pub(crate) fn show_request(out: &Output, r: &Request) -> anyhow::Result<ExitCode> {
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
