//! `cmp-agent`: enrols the host with the server, runs the agent (heartbeats, jobs), shows its
//! state, checks its configuration, and deploys a certificate by hand to a configured target
//! (the same engine the server's jobs drive).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cmp_agent::{AgentConfig, Material, Recovered, StepRecord};
use cmp_domain::Secret;

#[derive(Parser)]
#[command(name = "cmp-agent", version, about = "CMP's host agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enrol this host with the server with a bootstrap token: the key is made here, only a
    /// CSR leaves the host; the identity is kept under the state directory.
    Enroll {
        /// The configuration file.
        #[arg(long, default_value = cmp_agent::config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// The bootstrap token (`cmp_boot_...`), from `cmpctl` or an admin.
        #[arg(long, env = "CMP_AGENT_TOKEN", hide_env_values = true)]
        token: String,
        /// The agent's name (default: the host name).
        #[arg(long)]
        name: Option<String>,
        /// The server, instead of the configuration's `server`.
        #[arg(long)]
        server: Option<String>,
        /// Enrol again, replacing the identity there is.
        #[arg(long)]
        force: bool,
    },
    /// Run the agent until SIGTERM or SIGINT: heartbeats, identity renewal and deploy jobs.
    Run {
        /// The configuration file.
        #[arg(long, default_value = cmp_agent::config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Show the identity and, for each target, its files and what it serves (no server call).
    Status {
        /// The configuration file.
        #[arg(long, default_value = cmp_agent::config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Parse and validate the configuration, and print its targets.
    CheckConfig {
        /// The configuration file.
        #[arg(long, default_value = cmp_agent::config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Deploy a certificate from files to one configured target (test, reload, verify, and
    /// roll back on failure).
    DeployFile {
        /// The configuration file.
        #[arg(long, default_value = cmp_agent::config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// The target's name in the configuration.
        #[arg(long)]
        target: String,
        /// The leaf certificate (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// Its private key (PEM).
        #[arg(long)]
        key: PathBuf,
        /// The chain (PEM), if any.
        #[arg(long)]
        chain: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    // The process's one crypto provider, before anything uses rustls.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CheckConfig { config } => check_config(config),
        Command::DeployFile { config, target, cert, key, chain } => {
            block_on(deploy_file(config, target, cert, key, chain))
        }
        Command::Enroll { config, token, name, server, force } => {
            block_on(enroll(config, token, name, server, force))
        }
        Command::Run { config } => block_on(run(config)),
        Command::Status { config } => block_on(status(config)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cmp-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn block_on(work: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("while starting the async runtime")?
        .block_on(work)
}

async fn enroll(
    path: PathBuf,
    token: String,
    name: Option<String>,
    server: Option<String>,
    force: bool,
) -> anyhow::Result<()> {
    let mut config = AgentConfig::load(&path)?;
    if let Some(server) = server {
        config.server = server;
    }
    let name = name.unwrap_or_else(cmp_agent::runtime::hostname);
    let identity = cmp_agent::enroll(&config, &token, &name, force).await?;
    println!(
        "enrolled as `{}` (id {}) with {}; certificate valid until {}",
        identity.name,
        identity.id,
        identity.server,
        rfc3339(identity.not_after)
    );
    println!("identity in {}", cmp_agent::identity::identity_dir(&config.state_dir).display());
    Ok(())
}

async fn run(path: PathBuf) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CMP_AGENT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let config = AgentConfig::load(&path)?;
    let agent = cmp_agent::Agent::load(config)?;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("while installing the SIGTERM handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
        }
        let _ = stop_tx.send(true);
    });
    agent.run(stop).await;
    Ok(())
}

async fn status(path: PathBuf) -> anyhow::Result<()> {
    let config = AgentConfig::load(&path)?;
    match cmp_agent::Identity::load(&config.state_dir) {
        Ok(identity) => {
            println!("agent    {} (id {})", identity.name, identity.id);
            println!("server   {}", config.server);
            if identity.server != config.server {
                println!("         (enrolled with {})", identity.server);
            }
            println!("expires  {}", rfc3339(identity.not_after));
            println!("cert     sha256 {}", identity.fingerprint());
        }
        Err(cmp_agent::AgentError::NotEnrolled(_)) => {
            println!("agent    not enrolled (cmp-agent enroll --token ...)");
            println!("server   {}", config.server);
        }
        Err(e) => println!("agent    identity unusable: {e}"),
    }
    for target in config.all_targets() {
        let status = cmp_agent::target_status(&target).await;
        let health = match status.message() {
            None => "healthy".to_owned(),
            Some(message) => format!("UNHEALTHY: {message}"),
        };
        println!("target {} ({}): {health}", status.name, status.kind);
        for file in &status.files {
            let exists = if file.exists { "" } else { " (missing)" };
            println!("  {:<6} {}{exists}", file.field, file.path.display());
        }
        if let Some(installed) = &status.installed {
            println!("  installed sha256 {installed}");
        }
        match &status.served {
            None => println!("  served    (no verify configured)"),
            Some(Ok(served)) if Some(served) == status.installed.as_ref() => {
                println!("  served    the installed certificate")
            }
            Some(Ok(served)) => println!("  served    sha256 {served} (not the installed one)"),
            Some(Err(e)) => println!("  served    unknown: {e}"),
        }
    }
    Ok(())
}

fn check_config(path: PathBuf) -> anyhow::Result<()> {
    let config = AgentConfig::load(&path)?;
    println!("{}: valid; server {}", path.display(), config.server);
    for target in config.all_targets() {
        let files: Vec<String> = target
            .config
            .files()
            .iter()
            .map(|f| format!("{}={}", f.field, f.path.display()))
            .collect();
        let verify = target
            .config
            .verify
            .as_ref()
            .map(|v| format!(" verify={} sni={}", v.address, v.sni))
            .unwrap_or_default();
        println!("target {} ({}): {}{verify}", target.name, target.config.kind, files.join(" "));
    }
    Ok(())
}

/// A time as people and scripts read it: `2027-01-02T12:48:26Z`.
fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| at.to_string())
}

fn print_steps(steps: &[StepRecord]) {
    for step in steps {
        let status = if step.ok { "ok" } else { "FAILED" };
        println!(
            "{:<8} {status:<6} {:>6} ms  {}",
            step.step,
            step.millis,
            step.output.replace('\n', "\n                          ")
        );
    }
}

async fn deploy_file(
    path: PathBuf,
    name: String,
    cert: PathBuf,
    key: PathBuf,
    chain: Option<PathBuf>,
) -> anyhow::Result<()> {
    let config = AgentConfig::load(&path)?;
    let target = config
        .target(&name)
        .with_context(|| format!("{} has no target `{name}`", path.display()))?;
    let read = |file: &PathBuf| {
        std::fs::read_to_string(file).with_context(|| format!("while reading {}", file.display()))
    };
    let key_pem = Secret::new(read(&key)?);
    let chain_pem = chain.as_ref().map(read).transpose()?.unwrap_or_default();
    let material = Material::from_pem(&read(&cert)?, &chain_pem, &key_pem)?;
    if let Recovered::Undone { phase, steps } = cmp_agent::recover(&target).await? {
        println!("undid an interrupted deployment (it had reached {phase:?})");
        print_steps(&steps);
    }
    match cmp_agent::deploy(&target, &material).await {
        Ok(report) => {
            print_steps(&report.steps);
            println!("deployed {} to {}", report.fingerprint, report.target);
            Ok(())
        }
        Err(failure) => {
            print_steps(&failure.steps);
            let state = failure.outcome();
            anyhow::bail!("{failure} ({state})")
        }
    }
}
