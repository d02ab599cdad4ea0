//! One renewal end to end, as a host sees it: `POST .../renew` on `cmpd` (builtin CA), the
//! deploy job handed to a real agent (`cmp_agent`, in this process, mTLS to `cmpd`), installed
//! on a real nginx (config test, reload), verified by the agent, and seen served by this
//! benchmark's own handshake. The reference is the renewal's issuance alone (the API answer),
//! measured in the same rounds: the ratio is what the deployment adds.
//!
//! A renewal the scheduler starts adds its wait for the next tick (`issuer.scheduler_interval_secs`)
//! before this; the figures start at the renewal.

use std::time::{Duration, Instant};

use anyhow::Context;
use cmp_api::{DeploymentTarget, ManagedCreate, OwnerCreate, Subject};
use cmp_client::{Client, Renewed};
use cmp_domain::DeploymentState;
use cmp_testkit::targets::{TestCa, TlsServer};

use crate::harness::{BenchDatabase, Latency, ScratchDb, ServerProcess, latency};

/// The goal of issue 14 for one renewal with the builtin CA, due to verified.
const GOAL: Duration = Duration::from_secs(2);

/// Options of the renewal benchmark.
#[derive(Debug, Clone, clap::Args)]
pub struct RenewalBench {
    /// Renewals measured (after one warm-up).
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
    /// The database `cmpd` runs on.
    #[arg(long, value_enum, default_value = "sqlite")]
    pub database: BenchDatabase,
    /// PostgreSQL server to create the benchmark database on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub postgres_url: String,
}

/// The times of one round, from the renewal's start.
struct Round {
    issued: Duration,
    served: Duration,
    verified: Duration,
}

pub async fn run(opts: &RenewalBench, cmpd: &std::path::Path) -> anyhow::Result<()> {
    let db = ScratchDb::create(opts.database, &opts.postgres_url).await?;
    let env = [("CMPD_HTTP__TLS__MODE", "auto".to_string())];
    let server = ServerProcess::start_with(cmpd, &db.url, &env)?;
    let result = measure(opts, &server).await;
    server.stop()?;
    db.drop_db(&opts.postgres_url).await?;
    let rounds = result?;
    let of = |pick: fn(&Round) -> Duration| latency(rounds.iter().map(pick).collect::<Vec<_>>());
    let max = |pick: fn(&Round) -> Duration| {
        rounds.iter().map(pick).max().unwrap_or_default().as_secs_f64() * 1000.0
    };
    let (issued, served, verified) = (of(|r| r.issued), of(|r| r.served), of(|r| r.verified));
    println!(
        "\none renewal end to end ({} rounds, builtin CA, nginx, {:?}):",
        rounds.len(),
        opts.database
    );
    println!("  {:<44} {:>9} {:>9} {:>9}", "from POST .../renew to", "p50", "p99", "max");
    let row = |what: &str, l: &Latency, max: f64| {
        println!("  {what:<44} {:>6.0} ms {:>6.0} ms {:>6.0} ms", l.p50_ms, l.p99_ms, max);
    };
    row("issued (the API's answer; reference)", &issued, max(|r| r.issued));
    row("served by nginx (this benchmark's handshake)", &served, max(|r| r.served));
    row("verified (the agent's report recorded)", &verified, max(|r| r.verified));
    println!(
        "  deployment adds {:.0}x the issuance (p50); goal (issue 14): verified < {} s: p99 {:.0} ms",
        verified.p50_ms / issued.p50_ms.max(0.001),
        GOAL.as_secs(),
        verified.p99_ms
    );
    Ok(())
}

async fn measure(opts: &RenewalBench, server: &ServerProcess) -> anyhow::Result<Vec<Round>> {
    let ca_pem = server.ca_pem()?;
    let admin = Client::with_ca_bundle(&server.base, Some(server.token.clone()), &ca_pem)?;
    let work = tempfile::tempdir()?;
    let ca_file = work.path().join("cmpd-ca.pem");
    std::fs::write(&ca_file, &ca_pem)?;
    let nginx = TlsServer::nginx(&TestCa::new().leaf("before"));
    let key = nginx.key.as_ref().context("nginx has a key file")?;
    let config = format!(
        "server = {:?}\nca_file = {ca_file:?}\nstate_dir = {:?}\n[targets.nginx]\nkind = \"nginx\"\n\
         cert = {:?}\nkey = {key:?}\ntest = {:?}\nreload = {:?}\n\
         verify = {{ address = {:?}, sni = \"localhost\" }}\n",
        server.base,
        work.path().join("state"),
        nginx.cert,
        nginx.test_argv,
        nginx.reload_argv,
        nginx.address(),
    );
    let config = cmp_agent::AgentConfig::from_toml_str(&config)?;
    let token = admin.create_bootstrap_token(&Default::default()).await?.token;
    cmp_agent::enroll(&config, token.expose(), "bench-web", false).await?;
    let agent = cmp_agent::Agent::load(config)?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let agent = tokio::spawn(agent.run(stopped));

    admin
        .create_owner(&OwnerCreate { name: "bench".into(), email: None, description: None })
        .await?;
    let managed = admin
        .create_managed(&ManagedCreate {
            name: "renewal".into(),
            owner: "bench".into(),
            adapter: None,
            csr: None,
            key_type: Some("ecdsa_p256".into()),
            subject: Subject {
                common_name: None,
                dns_names: vec!["localhost".into()],
                ip_addresses: Vec::new(),
                validity_days: Some(30),
                acme_solver: None,
            },
            renew_before: None,
            key_on_agent: false,
            deployments: vec![DeploymentTarget {
                agent: "bench-web".into(),
                target: "nginx".into(),
            }],
        })
        .await?;
    let first = managed.current_certificate_id.clone().context("the first version")?;
    wait_verified(&admin, &managed.id, &first, Instant::now()).await?;

    let mut rounds = Vec::with_capacity(opts.rounds);
    for round in 0..=opts.rounds {
        let started = Instant::now();
        let Renewed::Request(request) = admin.renew(&managed.id).await? else {
            anyhow::bail!("the renewal made no request");
        };
        let issued = started.elapsed();
        let version = request.certificate_id.context("the renewal was not issued at once")?;
        let fingerprint = admin.certificate(&version).await?.fingerprint_sha256;
        let served = wait_served(&nginx.address(), &fingerprint, started).await?;
        let verified = wait_verified(&admin, &managed.id, &version, started).await?;
        // The first round warms the server's caches and nginx's workers.
        if round > 0 {
            rounds.push(Round { issued, served, verified });
        }
    }
    let _ = stop.send(true);
    agent.await?;
    Ok(rounds)
}

/// When nginx serves `fingerprint`, from `started` (a handshake every 2 ms, for 30 s at most).
async fn wait_served(
    address: &str,
    fingerprint: &str,
    started: Instant,
) -> anyhow::Result<Duration> {
    while started.elapsed() < Duration::from_secs(30) {
        let served =
            cmp_agent::served_fingerprint(address, "localhost", Duration::from_secs(2)).await;
        if served.ok().as_deref() == Some(fingerprint) {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    anyhow::bail!("nginx did not serve {fingerprint} within 30 s")
}

/// When the deployment of `managed` is verified with `version`, from `started`.
async fn wait_verified(
    admin: &Client,
    managed: &str,
    version: &str,
    started: Instant,
) -> anyhow::Result<Duration> {
    while started.elapsed() < Duration::from_secs(30) {
        let deployments = admin.deployments(managed).await?;
        if deployments.iter().all(|d| {
            d.state == DeploymentState::Verified && d.certificate_id.as_deref() == Some(version)
        }) {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    anyhow::bail!("the deployment of {version} was not verified within 30 s")
}
