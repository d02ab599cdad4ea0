//! `cmp-bench`: CMP's benchmarks, kept out of the server binary (as rustls keeps
//! `rustls-bench` apart from the library). Each prints its figures beside a reference measured
//! in the same run. The runs through the HTTP API start the `cmpd` binary as a child process:
//! build both, e.g. `cargo build --release -p cmp-server -p cmp-bench`.

mod acme;
mod auth;
mod discovery;
mod fleet;
mod harness;
mod inventory;
mod issuance;
mod notify;
mod renewal;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// The allocator `cmpd` uses, so that the in-process figures compare with the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "cmp-bench",
    version,
    about = "CMP benchmarks: each prints its figures beside a reference measured in the same run",
    after_help = "The API runs start `cmpd` as a child process: by default the one next to this \
                  binary (build both: cargo build --release -p cmp-server -p cmp-bench)."
)]
struct Cli {
    /// The `cmpd` binary the API runs start; default: `cmpd` in this binary's directory.
    #[arg(long, global = true, env = "CMP_BENCH_CMPD")]
    cmpd: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// Benchmarks.
#[derive(Debug, Subcommand)]
enum Command {
    /// Inventory: import rate and listing latency at scale, on SQLite and PostgreSQL.
    Inventory(inventory::InventoryBench),
    /// Issuance: builtin CA signing in-process and through the API, against OpenBao and openssl.
    Issuance(issuance::IssuanceBench),
    /// ACME: orders against a running ACME CA (Pebble; see bench/acme.sh), through the
    /// cmp-acme library and through the HTTP API.
    Acme(acme::AcmeBench),
    /// Fleet: N agents enrolled with their own mTLS identities, all long-polling for jobs;
    /// one deployment to every one of them, and how long each waits for its job.
    Fleet(fleet::FleetBench),
    /// Renewal: one renewal end to end, from the API to a real nginx serving it, verified by
    /// a real agent; against the issuance alone.
    Renewal(renewal::RenewalBench),
    /// Discovery: a scan of a loopback range of TLS listeners by cmpd, against nmap's ssl-cert
    /// script on the same range (Debian's nmap; ./scripts/services-up installs it).
    Discovery(discovery::DiscoveryBench),
    /// Authentication: an API call with a provider's bearer JWT against the same call with a
    /// `cmp_` token (starts a real OpenID provider; ./scripts/services-up installs it).
    Auth(auth::AuthBench),
    /// Notifications: rules evaluated over a large inventory, and /metrics scraped from it.
    Notify(notify::NotifyBench),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The process's one rustls crypto provider, which reqwest takes; libraries never install
    // it, so it is done here, before any client is built.
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was installed before main"))?;
    let cli = Cli::parse();
    // Checked before anything is measured: a run can take minutes before it first needs cmpd.
    let cmpd = cmpd_path(cli.cmpd)?;
    match &cli.command {
        Command::Inventory(opts) => inventory::run(opts, &cmpd).await,
        Command::Issuance(opts) => issuance::run(opts, &cmpd).await,
        Command::Acme(opts) => acme::run(opts, &cmpd).await,
        Command::Fleet(opts) => fleet::run(opts, &cmpd).await,
        Command::Renewal(opts) => renewal::run(opts, &cmpd).await,
        Command::Auth(opts) => auth::run(opts, &cmpd).await,
        Command::Discovery(opts) => discovery::run(opts, &cmpd).await,
        Command::Notify(opts) => notify::run(opts, &cmpd).await,
    }
}

/// The `cmpd` to start: the one given, or the one cargo built next to this binary.
fn cmpd_path(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(path) => path,
        None => std::env::current_exe()
            .context("while locating this binary, to find cmpd beside it (or give --cmpd)")?
            .with_file_name("cmpd"),
    };
    anyhow::ensure!(
        path.is_file(),
        "no cmpd at {}: build it beside cmp-bench (cargo build --release -p cmp-server -p \
         cmp-bench) or give its path with --cmpd",
        path.display()
    );
    Ok(path)
}
