//! `cmpctl`: the CMP command line, for people and scripts.

mod issuance;
mod output;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use cmp_api::{
    AuditListParams, CertificateListParams, CertificatePatch, ImportParams, OwnerCreate,
    OwnerPatch, TokenCreate,
};
use cmp_client::{Client, ImportBody};
use output::{Format, Output};

// No Debug: it holds the token and PKCS#12 passwords.
#[derive(Parser)]
#[command(
    name = "cmpctl",
    version,
    about = "Command line for CMP, the certificate management platform"
)]
struct Cli {
    /// Server URL.
    #[arg(long, env = "CMP_SERVER", default_value = "http://localhost:3000", global = true)]
    server: String,
    /// API token (or CMP_TOKEN).
    #[arg(long, env = "CMP_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Read the API token from this file.
    #[arg(long, global = true, conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Format::Table, global = true)]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Certificates in the inventory.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Owners (teams).
    #[command(subcommand)]
    Owner(OwnerCommand),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Issuance requests.
    #[command(subcommand)]
    Request(issuance::RequestCommand),
    /// Approve a request awaiting approval (security, admin).
    Approve {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject a request awaiting approval (security, admin).
    Reject {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Managed certificates (renewed by the scheduler).
    #[command(subcommand)]
    Managed(issuance::ManagedCommand),
    /// Renew a managed certificate now.
    Renew { id: String },
    /// Revoke a certificate through the CA that issued it.
    Revoke {
        /// Certificate id or fingerprint.
        id: String,
        /// RFC 5280 reason: unspecified, key_compromise, superseded, cessation_of_operation, ...
        #[arg(long, default_value = "unspecified")]
        reason: String,
        /// Also delete the private key the server made for it, once revoked.
        #[arg(long)]
        purge_key: bool,
    },
    /// Download a server-made private key (admins and the owning team; audited).
    Download {
        /// Certificate id or fingerprint.
        id: String,
        /// PKCS#12 with this password instead of PEM (or CMP_P12_PASSWORD).
        #[arg(long, env = "CMP_P12_PASSWORD", hide_env_values = true)]
        pkcs12_password: Option<String>,
        /// Write to this file (mode 0600) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Owners' issuance policies.
    #[command(subcommand)]
    Policy(issuance::PolicyCommand),
    /// CA adapters.
    #[command(subcommand)]
    Adapter(issuance::AdapterCommand),
    /// What a CA publishes: CRL, chain, OCSP answers.
    #[command(subcommand)]
    Pki(issuance::PkiCommand),
}

#[derive(Subcommand)]
enum CertCommand {
    /// Import PEM, DER, PKCS#7 or PKCS#12 files.
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Owner (id or name) of the certificates created.
        #[arg(long)]
        owner: Option<String>,
        /// Password of PKCS#12 files (or CMP_P12_PASSWORD).
        #[arg(long, env = "CMP_P12_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Where they were seen: endpoint:host:port, file:host:/path or k8s:cluster/ns/secret.
        #[arg(long)]
        seen_at: Option<String>,
        /// Import the good certificates even if some inputs are refused.
        #[arg(long)]
        partial: bool,
    },
    /// List certificates.
    List(ListArgs),
    /// Show one certificate (id or SHA-256 fingerprint).
    Show { id: String },
    /// Print a certificate as PEM.
    Pem { id: String },
    /// Set owner and labels.
    Update {
        id: String,
        /// Owner id or name.
        #[arg(long, conflicts_with = "no_owner")]
        owner: Option<String>,
        /// Remove the owner.
        #[arg(long)]
        no_owner: bool,
        /// Labels as key=value (replaces all labels).
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    /// Delete a certificate from the inventory.
    Delete { id: String },
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Substring of subject or SAN.
    #[arg(long)]
    q: Option<String>,
    #[arg(long)]
    status: Option<String>,
    #[arg(long)]
    owner: Option<String>,
    #[arg(long)]
    issuer: Option<String>,
    /// RFC 3339 time.
    #[arg(long)]
    expires_before: Option<String>,
    /// RFC 3339 time.
    #[arg(long)]
    expires_after: Option<String>,
    #[arg(long)]
    key_type: Option<String>,
    #[arg(long)]
    finding: Option<String>,
    /// not_after or created_at.
    #[arg(long)]
    sort: Option<String>,
    #[arg(long)]
    limit: Option<u32>,
    #[arg(long)]
    cursor: Option<String>,
}

#[derive(Debug, Subcommand)]
enum OwnerCommand {
    List,
    Show {
        id: String,
    },
    Create {
        name: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    Delete {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token; its secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        /// admin, security, developer or agent.
        #[arg(long)]
        role: String,
        /// Owner (id or name) a developer token acts for; repeatable.
        #[arg(long = "owner")]
        owners: Vec<String>,
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    List,
    Revoke {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Audit events, newest first.
    List {
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        action: Option<String>,
        #[arg(long)]
        entity_type: Option<String>,
        #[arg(long)]
        entity_id: Option<String>,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Recompute the hash chain; exits 1 when it is broken.
    Verify,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not key=value"))
}

/// Parses a JSON string enum value the way the API names it.
fn api_enum<T: serde::de::DeserializeOwned>(
    flag: &str,
    value: Option<String>,
) -> anyhow::Result<Option<T>> {
    value
        .map(|v| {
            serde_json::from_value(serde_json::Value::String(v.clone()))
                .with_context(|| format!("--{flag}: unknown value {v:?}"))
        })
        .transpose()
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let token = match &cli.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("while reading {}", path.display()))?
                .trim()
                .to_string(),
        ),
        None => cli.token.clone(),
    };
    let client = Client::new(&cli.server, token)?;
    let out = Output(cli.output);
    match cli.command {
        Command::Cert(cmd) => cert(&client, &out, cmd).await,
        Command::Owner(cmd) => owner(&client, &out, cmd).await,
        Command::Token(cmd) => token_cmd(&client, &out, cmd).await,
        Command::Audit(cmd) => audit(&client, &out, cmd).await,
        Command::Request(cmd) => issuance::request(&client, &out, cmd).await,
        Command::Approve { id, comment } => {
            issuance::decide(&client, &out, &id, true, comment).await
        }
        Command::Reject { id, comment } => {
            issuance::decide(&client, &out, &id, false, comment).await
        }
        Command::Managed(cmd) => issuance::managed(&client, &out, cmd).await,
        Command::Renew { id } => issuance::renew(&client, &out, &id).await,
        Command::Revoke { id, reason, purge_key } => {
            issuance::revoke(&client, &out, &id, &reason, purge_key).await
        }
        Command::Download { id, pkcs12_password, out: file } => {
            issuance::download(&client, &out, &id, pkcs12_password, file).await
        }
        Command::Policy(cmd) => issuance::policy(&client, &out, cmd).await,
        Command::Adapter(cmd) => issuance::adapter(&client, &out, cmd).await,
        Command::Pki(cmd) => issuance::pki(&client, &out, cmd).await,
    }
}

async fn cert(client: &Client, out: &Output, cmd: CertCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CertCommand::Import { files, owner, password, seen_at, partial } => {
            let params =
                ImportParams { owner, location: seen_at, partial: partial.then_some(true) };
            let mut failed = false;
            for file in files {
                let data = std::fs::read(&file)
                    .with_context(|| format!("while reading {}", file.display()))?;
                let is_p12 = file
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "p12" | "pfx"));
                let body = match (&password, is_p12) {
                    (Some(p), _) => ImportBody::Pkcs12 { data, password: p.clone() },
                    (None, true) => bail!("{}: PKCS#12 needs --password", file.display()),
                    (None, false) => ImportBody::Raw(data),
                };
                match client.import(body, &params).await {
                    Ok(result) => out.import(&file, &result)?,
                    Err(e) => {
                        failed = true;
                        out.error(&file.display().to_string(), &e)?;
                    }
                }
            }
            Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        CertCommand::List(a) => {
            let params = CertificateListParams {
                q: a.q,
                status: api_enum("status", a.status)?,
                owner: a.owner,
                issuer: a.issuer,
                expires_before: a.expires_before,
                expires_after: a.expires_after,
                key_type: a.key_type,
                finding: api_enum("finding", a.finding)?,
                sort: api_enum("sort", a.sort)?,
                limit: a.limit,
                cursor: a.cursor,
            };
            out.certificates(&client.list_certificates(&params).await?)?;
            Ok(ExitCode::SUCCESS)
        }
        CertCommand::Show { id } => {
            out.certificate(&client.certificate(&id).await?)?;
            Ok(ExitCode::SUCCESS)
        }
        CertCommand::Pem { id } => {
            print!("{}", client.certificate_pem(&id).await?);
            Ok(ExitCode::SUCCESS)
        }
        CertCommand::Update { id, owner, no_owner, labels } => {
            let patch = CertificatePatch {
                owner: if no_owner { Some(None) } else { owner.map(Some) },
                labels: (!labels.is_empty())
                    .then(|| labels.into_iter().collect::<BTreeMap<_, _>>()),
            };
            out.certificate(&client.update_certificate(&id, &patch).await?)?;
            Ok(ExitCode::SUCCESS)
        }
        CertCommand::Delete { id } => {
            client.delete_certificate(&id).await?;
            out.done(&format!("deleted certificate {id}"))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn owner(client: &Client, out: &Output, cmd: OwnerCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        OwnerCommand::List => out.owners(&client.owners().await?)?,
        OwnerCommand::Show { id } => out.owners(&[client.owner(&id).await?])?,
        OwnerCommand::Create { name, email, description } => {
            out.owners(&[client.create_owner(&OwnerCreate { name, email, description }).await?])?
        }
        OwnerCommand::Update { id, name, email, description } => {
            let patch =
                OwnerPatch { name, email: email.map(Some), description: description.map(Some) };
            out.owners(&[client.update_owner(&id, &patch).await?])?
        }
        OwnerCommand::Delete { id } => {
            client.delete_owner(&id).await?;
            out.done(&format!("deleted owner {id}"))?
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn token_cmd(client: &Client, out: &Output, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TokenCommand::Create { name, role, owners, expires_in_days } => {
            let role = api_enum("role", Some(role))?.context("--role is required")?;
            let created =
                client.create_token(&TokenCreate { name, role, owners, expires_in_days }).await?;
            out.token_created(&created)?;
        }
        TokenCommand::List => out.tokens(&client.tokens().await?)?,
        TokenCommand::Revoke { id } => {
            client.revoke_token(&id).await?;
            out.done(&format!("revoked token {id}"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn audit(client: &Client, out: &Output, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::List {
            actor,
            action,
            entity_type,
            entity_id,
            since,
            until,
            limit,
            cursor,
        } => {
            let params = AuditListParams {
                actor,
                action,
                entity_type,
                entity_id,
                since,
                until,
                limit,
                cursor,
            };
            out.audit(&client.audit(&params).await?)?;
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify => {
            let v = client.verify_audit().await?;
            out.verification(&v)?;
            Ok(if v.intact { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}
