//! `cmp-agent`: checks the agent's configuration, and deploys a certificate by hand to a
//! configured target (the same engine the server's jobs will drive).

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
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime.block_on(deploy_file(config, target, cert, key, chain)),
                Err(e) => Err(e.into()),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cmp-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
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
            let state = if failure.rolled_back {
                "rolled back"
            } else if failure.changed_files {
                "NOT rolled back"
            } else {
                "nothing changed"
            };
            anyhow::bail!("{failure} ({state})")
        }
    }
}
