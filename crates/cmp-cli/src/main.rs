//! `cmpctl`: the CMP command line, for people and scripts.

mod adapters;
mod agents;
mod login;
mod managed;
mod notify;
mod output;
mod pki;
mod policy;
mod requests;
mod resolve;
mod scans;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand};
use cmp_api::{
    AuditListParams, CertificateListParams, CertificatePatch, ImportParams, OwnerCreate,
    OwnerPatch, TokenCreate,
};
use cmp_client::{Client, ImportBody};
use cmp_domain::{CertificateStatus, Finding, KeyType, RevocationReason, Role};
use output::{Format, Output};

// No Debug: it holds the token and PKCS#12 passwords.
#[derive(Parser)]
#[command(
    name = "cmpctl",
    version,
    about = "Command line for CMP, the certificate management platform",
    after_help = "Certificates are named by id, by SHA-256 fingerprint, or by the first 8 or more \
                  hex digits of it (the SHA256 column of `cmpctl cert list`).\n\
                  Exit codes: 0 done, 1 a check or an item failed, 2 an error, 141 standard \
                  output closed early (`cmpctl ... | head`)."
)]
struct Cli {
    /// Server URL, http:// or https:// (a bare localhost:PORT, 127.0.0.1:PORT or
    /// [::1]:PORT gets http://; other hosts must say which).
    #[arg(
        long,
        env = "CMP_SERVER",
        default_value = "http://localhost:3000",
        global = true,
        help_heading = "Global options"
    )]
    server: String,
    /// API token.
    #[arg(
        long,
        env = "CMP_TOKEN",
        hide_env_values = true,
        global = true,
        help_heading = "Global options"
    )]
    token: Option<String>,
    /// Read the API token from this file.
    #[arg(long, global = true, conflicts_with = "token", help_heading = "Global options")]
    token_file: Option<PathBuf>,
    /// PEM file of CA certificates to trust, besides the system's, for an https:// server.
    #[arg(long, env = "CMP_CA_FILE", global = true, help_heading = "Global options")]
    ca_file: Option<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Format::Table, global = true, help_heading = "Global options")]
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
    Request(requests::RequestCommand),
    /// Approve a request awaiting approval (security, admin).
    Approve {
        /// Request id.
        id: String,
        /// Why, kept with the decision.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject a request awaiting approval (security, admin).
    Reject {
        /// Request id.
        id: String,
        /// Why, kept with the decision.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Managed certificates (renewed by the scheduler).
    #[command(subcommand)]
    Managed(managed::ManagedCommand),
    /// Host agents and the bootstrap tokens they enrol with (admin; list and show: security).
    #[command(subcommand)]
    Agent(agents::AgentCommand),
    /// Network scans that find the certificates hosts and ranges serve (admin, security).
    #[command(subcommand)]
    Scan(scans::ScanCommand),
    /// Notification rules (email, webhooks), test sends and deliveries (admin, security).
    #[command(subcommand)]
    Notify(notify::NotifyCommand),
    /// Renew a managed certificate now.
    Renew {
        /// Managed certificate id, name, or owner/name (when you see several owners).
        id: String,
    },
    /// Revoke a certificate through the CA that issued it.
    Revoke {
        /// Certificate id, SHA-256 fingerprint or a prefix of it.
        id: String,
        /// RFC 5280 reason.
        #[arg(long, default_value = "unspecified", value_parser = revocation_reasons())]
        reason: String,
        /// Also delete the private key the server made for it, once revoked.
        #[arg(long)]
        purge_key: bool,
    },
    /// Download a server-made private key (admins and the owning team; audited).
    Download {
        /// Certificate id, SHA-256 fingerprint or a prefix of it.
        id: String,
        /// PKCS#12 with this password instead of PEM.
        #[arg(long, env = "CMP_P12_PASSWORD", hide_env_values = true)]
        pkcs12_password: Option<String>,
        /// Write to this file (mode 0600) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Owners' issuance policies.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Log in at the server's identity provider (device flow), or keep a pasted token, for
    /// this server; later commands use it when no --token or CMP_TOKEN is given.
    Login {
        /// The provider's name (`cmpctl login` lists none: see GET /auth/providers).
        #[arg(long)]
        provider: Option<String>,
        /// Read a token (an API token or a provider's JWT) from standard input instead.
        #[arg(long)]
        with_token: bool,
    },
    /// Who the credentials in use are: actor, role, owners, how authenticated.
    Whoami,
    /// Forget the login kept for this server.
    Logout,
    /// CA adapters.
    #[command(subcommand)]
    Adapter(adapters::AdapterCommand),
    /// What a CA publishes: CRL, chain, OCSP answers.
    #[command(subcommand)]
    Pki(pki::PkiCommand),
}

/// A parser that accepts only `values` and lists them in `--help`.
pub(crate) fn one_of<const N: usize>(values: [&'static str; N]) -> PossibleValuesParser {
    PossibleValuesParser::new(values)
}

fn revocation_reasons() -> PossibleValuesParser {
    one_of(RevocationReason::ALL.map(RevocationReason::as_str))
}

#[derive(Subcommand)]
enum CertCommand {
    /// Import PEM, DER, PKCS#7 or PKCS#12 files.
    Import {
        /// Files to import; each may hold several certificates.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Owner (id or name) of the certificates created.
        #[arg(long)]
        owner: Option<String>,
        /// Password of PKCS#12 files.
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
    /// Show one certificate.
    Show {
        /// Certificate id, SHA-256 fingerprint or a prefix of it (8 hex digits or more).
        id: String,
    },
    /// Print a certificate as PEM (with --chain, followed by the chain its CA returned).
    Pem {
        /// Certificate id, SHA-256 fingerprint or a prefix of it.
        id: String,
        /// Follow the certificate with the chain its CA returned (issuing CA first), as a
        /// server sends it.
        #[arg(long)]
        chain: bool,
    },
    /// Set owner and labels.
    Update {
        /// Certificate id, SHA-256 fingerprint or a prefix of it.
        id: String,
        /// Owner id or name.
        #[arg(long, conflicts_with = "no_owner")]
        owner: Option<String>,
        /// Remove the owner.
        #[arg(long)]
        no_owner: bool,
        /// Labels as key=value (replaces all labels); repeatable.
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    /// Delete a certificate from the inventory.
    Delete {
        /// Certificate id, SHA-256 fingerprint or a prefix of it.
        id: String,
    },
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Substring of subject or SAN.
    #[arg(long)]
    q: Option<String>,
    /// Status (expiring: within inventory.expiry_window_days).
    #[arg(long, value_parser = one_of(CertificateStatus::ALL.map(CertificateStatus::as_str)))]
    status: Option<String>,
    /// Owner id or name.
    #[arg(long)]
    owner: Option<String>,
    /// Issuer DN, RFC 4514, exactly as `cert show` prints it.
    #[arg(long)]
    issuer: Option<String>,
    /// Expiring before this RFC 3339 time.
    #[arg(long)]
    expires_before: Option<String>,
    /// Expiring after this RFC 3339 time.
    #[arg(long)]
    expires_after: Option<String>,
    /// Key algorithm.
    #[arg(long, value_parser = one_of(
        [KeyType::Rsa, KeyType::Ec, KeyType::Ed25519, KeyType::Ed448, KeyType::Dsa, KeyType::Other]
            .map(KeyType::as_str)
    ))]
    key_type: Option<String>,
    /// Only certificates with this finding.
    #[arg(long, value_parser = one_of(Finding::ALL.map(Finding::as_str)))]
    finding: Option<String>,
    /// Sort order (default: not_after).
    #[arg(long, value_parser = one_of(["not_after", "created_at"]))]
    sort: Option<String>,
    /// Page size, 1 to 500 (default 100).
    #[arg(long)]
    limit: Option<u32>,
    /// Next page: the cursor the previous page printed.
    #[arg(long)]
    cursor: Option<String>,
}

#[derive(Debug, Subcommand)]
enum OwnerCommand {
    /// List owners.
    List,
    /// Show one owner.
    Show {
        /// Owner id or name.
        id: String,
    },
    /// Create an owner (a team that owns certificates).
    Create {
        /// Unique name.
        name: String,
        /// Contact address.
        #[arg(long)]
        email: Option<String>,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
    },
    /// Change an owner's name, email or description.
    Update {
        /// Owner id or name.
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New contact address.
        #[arg(long)]
        email: Option<String>,
        /// New description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete an owner.
    Delete {
        /// Owner id or name.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token; its secret is printed once.
    Create {
        /// A name to recognise it by.
        #[arg(long)]
        name: String,
        /// What it may do.
        #[arg(long, value_parser = one_of(Role::ALL.map(Role::as_str)))]
        role: String,
        /// Owner (id or name) a developer token acts for; repeatable.
        #[arg(long = "owner")]
        owners: Vec<String>,
        /// Lifetime in days (default: no expiry).
        #[arg(long)]
        expires_in_days: Option<u32>,
        /// Print only the secret, for `DEV=$(cmpctl token create ... --quiet)`.
        #[arg(long, short)]
        quiet: bool,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token: it stops working at once.
    Revoke {
        /// Token id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Audit events, newest first.
    List {
        /// Who: `token:<id>` or `system`.
        #[arg(long)]
        actor: Option<String>,
        /// What, e.g. certificate.created, request.approved, token.revoked.
        #[arg(long)]
        action: Option<String>,
        /// Kind of entity: certificate, owner, api_token, issuance_request, adapter, ...
        #[arg(long)]
        entity_type: Option<String>,
        /// The entity's id.
        #[arg(long)]
        entity_id: Option<String>,
        /// From this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Until this RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// Page size, 1 to 500 (default 100).
        #[arg(long)]
        limit: Option<u32>,
        /// Next page: the cursor the previous page printed.
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

/// The server URL to call: a bare loopback `host:port` gets `http://` (nothing leaves the
/// machine); anything else without a scheme is left to the client, which says a scheme is
/// needed, rather than guessing http:// and sending a token in clear across a network.
fn server_url(server: &str) -> String {
    if server.contains("://") {
        return server.to_string();
    }
    let authority = server.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback { format!("http://{server}") } else { server.to_string() }
}

/// An error and its causes on one line, each cause once: reqwest repeats its own message in
/// its source.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    // An error may echo its input (a 100 KB argument in a URL): a screenful is enough.
    match text.char_indices().nth(MAX_ERROR_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// Longest error message printed, in characters.
const MAX_ERROR_CHARS: usize = 1000;

/// The exit status of a process killed by SIGPIPE, as a shell reports it (128 + 13).
const EXIT_BROKEN_PIPE: u8 = 141;

#[tokio::main]
async fn main() -> ExitCode {
    // The process's one rustls crypto provider, which reqwest takes; libraries never install
    // it, so it is done here, before the client is built. Nothing else can have installed one.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let result = run(cli).await;
    // What is still buffered goes out now, so that a closed pipe is seen here too.
    let result = result.and_then(|code| {
        std::io::stdout().flush().context("while writing to standard output")?;
        Ok(code)
    });
    match result {
        Ok(code) => code,
        // The reader (`| head`) has what it wanted: end as cat or git would, without a word.
        Err(e) if output::is_broken_pipe(&e) => ExitCode::from(EXIT_BROKEN_PIPE),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {}", error_text(&e));
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let server = server_url(&cli.server);
    let ca_bundle = match &cli.ca_file {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("--ca-file: while reading {}", path.display()))?,
        ),
        None => None,
    };
    let make_client = |token: Option<String>| -> anyhow::Result<Client> {
        Ok(match (&ca_bundle, &cli.ca_file) {
            (Some(pem), Some(path)) => Client::with_ca_bundle(&server, token, pem)
                .with_context(|| format!("--ca-file {}", path.display()))?,
            _ => Client::new(&server, token)?,
        })
    };
    match &cli.command {
        Command::Login { provider, with_token } => {
            return login::login(&server, make_client, provider.clone(), *with_token).await;
        }
        Command::Logout => return login::logout(&server),
        _ => {}
    }
    let token = match &cli.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("while reading {}", path.display()))?
                .trim()
                .to_string(),
        ),
        None => match cli.token.clone() {
            Some(token) => Some(token),
            None => login::saved_token(&server)?,
        },
    };
    let client = make_client(token)?;
    let out = Output(cli.output);
    match cli.command {
        Command::Cert(cmd) => cert(&client, &out, cmd).await,
        Command::Owner(cmd) => owner(&client, &out, cmd).await,
        Command::Token(cmd) => token_cmd(&client, &out, cmd).await,
        Command::Audit(cmd) => audit(&client, &out, cmd).await,
        Command::Request(cmd) => requests::request(&client, &out, cmd).await,
        Command::Approve { id, comment } => {
            requests::decide(&client, &out, &id, true, comment).await
        }
        Command::Reject { id, comment } => {
            requests::decide(&client, &out, &id, false, comment).await
        }
        Command::Managed(cmd) => managed::managed(&client, &out, cmd).await,
        Command::Agent(cmd) => agents::agent(&client, &out, cmd).await,
        Command::Scan(cmd) => scans::scan(&client, &out, cmd).await,
        Command::Notify(cmd) => notify::notify(&client, &out, cmd).await,
        Command::Renew { id } => managed::renew(&client, &out, &id).await,
        Command::Revoke { id, reason, purge_key } => {
            let id = resolve::certificate_id(&client, &id).await?;
            requests::revoke(&client, &out, &id, &reason, purge_key).await
        }
        Command::Download { id, pkcs12_password, out: file } => {
            let id = resolve::certificate_id(&client, &id).await?;
            requests::download(&client, &out, &id, pkcs12_password, file).await
        }
        Command::Policy(cmd) => policy::policy(&client, &out, cmd).await,
        Command::Adapter(cmd) => adapters::adapter(&client, &out, cmd).await,
        Command::Pki(cmd) => pki::pki(&client, &out, cmd).await,
        Command::Whoami => {
            out.me(&client.me().await?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Login { .. } | Command::Logout => Ok(ExitCode::SUCCESS),
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
            let id = resolve::certificate_id(client, &id).await?;
            out.certificate(&client.certificate(&id).await?)?;
            Ok(ExitCode::SUCCESS)
        }
        CertCommand::Pem { id, chain } => {
            let id = resolve::certificate_id(client, &id).await?;
            let pem = if chain {
                client.certificate_pem_chain(&id).await?
            } else {
                client.certificate_pem(&id).await?
            };
            output::write_raw(pem.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        CertCommand::Update { id, owner, no_owner, labels } => {
            let id = resolve::certificate_id(client, &id).await?;
            let patch = CertificatePatch {
                owner: if no_owner { Some(None) } else { owner.map(Some) },
                labels: (!labels.is_empty())
                    .then(|| labels.into_iter().collect::<BTreeMap<_, _>>()),
            };
            out.certificate(&client.update_certificate(&id, &patch).await?)?;
            Ok(ExitCode::SUCCESS)
        }
        CertCommand::Delete { id } => {
            let id = resolve::certificate_id(client, &id).await?;
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
        TokenCommand::Create { name, role, owners, expires_in_days, quiet } => {
            let role = api_enum("role", Some(role))?.context("--role is required")?;
            let created =
                client.create_token(&TokenCreate { name, role, owners, expires_in_days }).await?;
            if quiet {
                outln!("{}", created.token.expose())?;
            } else {
                out.token_created(&created)?;
            }
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
