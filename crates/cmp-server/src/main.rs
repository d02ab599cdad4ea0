//! `cmpd`: the CMP server.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cmp_server::config::{Config, ServerRole};

/// Most of a request's work is small allocations on two threads at once (JSON, DER, SQL
/// arguments), which glibc's allocator serves slower than mimalloc (measured: PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process. mimalloc asks for them on its arenas,
/// and where the kernel grants them on request (`madvise`, Debian's default) each region the
/// allocator touches is backed 2 MiB at a time: ten thousand agents' held connections, small
/// and scattered, took 463 MB of RSS with them and 371 MB without, at the same CPU (measured:
/// PERFORMANCE.md). mimalloc's own `allow_thp = 0` does this, but can only be set from the
/// environment before the process starts.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("cmpd: could not turn transparent huge pages off ({e}); memory use is higher");
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "cmpd",
    version,
    about = "CMP server: certificate inventory, issuance, renewal and revocation through \
             pluggable CAs (builtin, Vault PKI, ACME), with an audit trail",
    after_help = "Configuration: defaults, then --config FILE (TOML), then CMPD_ environment \
                  variables (CMPD_DATABASE__URL sets database.url). `cmpd config check` prints \
                  what is in force."
)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, short, env = "CMPD_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Role to run (overrides the file): all, inventory, issuer, adapter.
    #[arg(long, global = true)]
    role: Option<ServerRole>,
    /// Address to listen on (overrides the file).
    #[arg(long, global = true)]
    listen: Option<SocketAddr>,
    /// Data directory (overrides the file).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Print the OpenAPI document of the role (all by default) and exit: what the dashboard's
    /// TypeScript types are generated from (`web/scripts/api-types`).
    Openapi,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Load and check the configuration, print it (secrets hidden), exit non-zero if invalid.
    Check,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Apply pending database migrations and exit.
    Migrate,
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = Config::load(cli.config.as_deref()).context("while loading configuration")?;
    if let Some(role) = cli.role {
        config.role = role;
    }
    if let Some(listen) = cli.listen {
        config.listen = Some(listen);
    }
    if let Some(dir) = &cli.data_dir {
        config.data_dir = dir.clone();
    }
    config.validate().map_err(anyhow::Error::msg).context("invalid configuration")?;
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    no_transparent_huge_pages();
    // The process's one rustls crypto provider, which reqwest (Vault, ACME, remote adapters)
    // takes; libraries never install it, so it is done here, before anything is built.
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was installed before main"))?;
    let cli = Cli::parse();
    match &cli.command {
        None | Some(Command::Serve) => serve(load_config(&cli)?).await,
        Some(Command::Config { command: ConfigCommand::Check }) => {
            let mut config = load_config(&cli)?;
            // What is in force: the address a default would bind, not "none".
            config.listen = Some(config.listen_addr());
            println!("configuration is valid\n{config:#?}");
            Ok(())
        }
        Some(Command::Openapi) => {
            let role = cli.role.unwrap_or(cmp_server::config::ServerRole::All);
            let (_, doc) = cmp_server::app::routes(role, true);
            println!("{}", doc.to_pretty_json().context("while writing the OpenAPI document")?);
            Ok(())
        }
        Some(Command::Admin { command: AdminCommand::Migrate }) => {
            let config = load_config(&cli)?;
            cmp_server::open_store(&config).await?;
            println!(
                "migrations applied to {}",
                cmp_server::config::redact_url(&config.database_url())
            );
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let telemetry = cmp_server::telemetry::init(&config.log, &config.trace, config.role)?;
    for name in Config::stale_env_names() {
        tracing::warn!(
            variable = %name,
            "ignored: cmpd reads its settings from CMPD_ variables (CMP_ ones are cmpctl's)"
        );
    }
    let role = config.role;
    let token_location = cmp_server::admin_token_location(&config);
    let token_file = (config.secrets.backend == cmp_server::config::SecretsBackend::Local)
        .then(|| config.data_dir.join(cmp_server::ADMIN_TOKEN_FILE));
    let ca_file = config
        .tls_enabled()
        .then(|| match &config.http.tls.cert_file {
            Some(_) => None,
            None => Some(config.data_dir.join(cmp_server::platform_ca::CA_FILE)),
        })
        .flatten();
    let server = cmp_server::start(config).await?;
    tracing::info!(role = role.as_str(), addr = %server.addr, "cmpd listening");
    // `localhost` where it reaches the listener (the TLS auto certificate names it).
    let base = match server.addr.ip() {
        ip if ip.is_unspecified() || ip == std::net::Ipv4Addr::LOCALHOST => {
            format!("{}://localhost:{}", server.scheme, server.addr.port())
        }
        _ => format!("{}://{}", server.scheme, server.addr),
    };
    let mut banner = format!(
        "CMP ({} role) is listening on {base}\n  API docs: {base}/api/v1/openapi.json\n",
        role.as_str()
    );
    if let Some(file) = &ca_file {
        banner.push_str(&format!("  Clients trust the platform CA in {}\n", file.display()));
    }
    let ca_flag = ca_file.map(|f| format!(" --ca-file {}", f.display())).unwrap_or_default();
    if let Some(token) = &server.admin_token {
        let try_it = match &token_file {
            Some(file) => format!("cmpctl --token-file {}", file.display()),
            None => "CMP_TOKEN=<the token> cmpctl".into(),
        };
        // Shown on a terminal only: stdout that is a file or a pipe ends in journald and
        // container logs, where a token must never be.
        if std::io::stdout().is_terminal() {
            banner.push_str(&format!(
                "  First start: admin API token (also saved to {token_location}):\n\n    {token}\n\n"
            ));
        } else {
            banner.push_str(&format!("  First start: admin API token saved to {token_location}\n"));
        }
        banner.push_str(&format!("  Try: {try_it}{ca_flag} --server {base} cert list\n"));
    }
    // Not println!: a closed stdout (a daemon, a pipe read once) must not stop the server.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), banner.as_bytes());
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    let stopped = server.shutdown().await;
    telemetry.shutdown().await;
    stopped
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
