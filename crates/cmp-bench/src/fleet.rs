//! `cmp-bench fleet`: a fleet of host agents against one `cmpd`. N agents enrol through the
//! API, each with its own key and client certificate from the agent CA, and all hold a long
//! poll on `GET /api/v1/agent/jobs/next` over their own mTLS connection; then one managed
//! certificate is deployed to every one of them in one `PUT .../deployments`. It measures how
//! long each agent waits for its job after that PUT, and what holding the fleet and handing the
//! jobs out cost the server (resident memory, CPU). The reference, in the same run: the same
//! dispatch to a fleet of one.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use cmp_api::{
    BootstrapTokenCreate, DeploymentTarget, DeploymentsSet, EnrollRequest, JobAssignment,
    JobResult, ManagedCreate, OwnerCreate, Subject,
};
use cmp_client::Client;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::harness::{BenchDatabase, ScratchDb, ServerProcess, proc_cpu_secs, raise_open_files};

/// Options of the fleet benchmark.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetBench {
    /// Fleet sizes, each on a fresh server and database (a fleet of one is always measured
    /// first, as the reference).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    pub agents: Vec<usize>,
    /// Dispatches measured per fleet, each a new managed certificate (the fleet of one takes
    /// at least 10, for a spread).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Enrolments in flight at once.
    #[arg(long, default_value_t = 32)]
    pub enroll_concurrency: usize,
    /// TLS handshakes in flight at once while the fleet connects.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// How long each poll is held open on the server, seconds (it allows at most 55).
    #[arg(long, default_value_t = 55)]
    pub wait_secs: u64,
    /// The database cmpd runs on.
    #[arg(long, default_value = "sqlite")]
    pub database: BenchDatabase,
    /// PostgreSQL server to create the benchmark database on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub postgres_url: String,
}

/// The target name every agent is deployed to.
const TARGET: &str = "nginx";
/// Longest a dispatch may take before the run is called failed.
const DISPATCH_TIMEOUT: Duration = Duration::from_secs(300);

/// What one fleet size measured.
struct FleetRun {
    agents: usize,
    enrol_rate: f64,
    connect_secs: f64,
    rss_held_kib: u64,
    rss_after_kib: u64,
    peak_kib: u64,
    /// Server CPU seconds per round, from the PUT to the last job handed out, and to the
    /// last result taken.
    cpu_jobs: Vec<f64>,
    cpu_results: Vec<f64>,
    /// This process's CPU seconds over the same rounds (the agents' side, on the same cores).
    bench_cpu: Vec<f64>,
    put_ms: Vec<f64>,
    latency: Percentiles,
}

/// Minimum, median, 99th percentile and maximum, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
struct Percentiles {
    min: f64,
    p50: f64,
    p99: f64,
    max: f64,
}

impl Percentiles {
    fn of(mut samples: Vec<Duration>) -> Percentiles {
        samples.sort();
        let at = |q: f64| {
            let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples.get(i).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
        };
        Percentiles { min: at(0.0), p50: at(0.50), p99: at(0.99), max: at(1.0) }
    }
}

/// What an agent task tells the coordinator.
enum Event {
    /// Its first poll was answered: connected and authenticated.
    Connected,
    /// Its poll returned a job, at this instant.
    Job(Instant),
    /// Its result was taken.
    Reported,
    /// It stopped on an error.
    Failed(String),
}

/// An enrolled agent: its id and its identity (certificate, and key as PKCS#8 DER).
struct Enrolled {
    id: String,
    certificate: CertificateDer<'static>,
    key_der: Vec<u8>,
}

/// Runs the fleet benchmark against the `cmpd` at `cmpd`.
pub async fn run(opts: &FleetBench, cmpd: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(opts.rounds > 0, "--rounds must be at least 1");
    let largest = opts.agents.iter().copied().max().unwrap_or(1);
    // Each agent is one connection here and one in the server, which inherits this limit.
    let limit = raise_open_files(largest as u64 + 512)?;
    println!(
        "fleet on {:?}: agents {:?}, {} rounds each, polls held {} s; open files {limit}",
        opts.database, opts.agents, opts.rounds, opts.wait_secs
    );
    let mut runs = Vec::new();
    for (i, &n) in std::iter::once(&1).chain(&opts.agents).enumerate() {
        let rounds = if i == 0 { opts.rounds.max(10) } else { opts.rounds };
        runs.push(run_fleet(opts, cmpd, n, rounds).await?);
    }
    print_summary(&runs);
    Ok(())
}

/// One fleet of `n` agents on a fresh server and database.
async fn run_fleet(
    opts: &FleetBench,
    cmpd: &Path,
    n: usize,
    rounds: usize,
) -> anyhow::Result<FleetRun> {
    let db = ScratchDb::create(opts.database, &opts.postgres_url).await?;
    let env = [
        // HTTPS with the agent CA's client certificates, as agents need it.
        ("CMPD_HTTP__TLS__MODE", "auto".to_string()),
        ("CMPD_HTTP__MAX_CONNECTIONS", (n + 256).max(1024).to_string()),
        // Thousands of polls queue for the one SQLite writer by design here: not one warning
        // each about the wait.
        ("RUST_LOG", "warn,sqlx::pool::acquire=error".to_string()),
    ];
    let server = ServerProcess::start_with(cmpd, &db.url, &env)?;
    let ca = server.ca_pem()?;
    let admin = Client::with_ca_bundle(&server.base, Some(server.token.clone()), &ca)?;
    let anonymous = Client::with_ca_bundle(&server.base, None, &ca)?;
    admin
        .create_owner(&OwnerCreate { name: "bench".into(), email: None, description: None })
        .await?;
    println!("\n{n} agents ({}, cmpd at {}):", kind_name(opts.database), server.base);

    let started = Instant::now();
    let agents = enrol(&admin, &anonymous, n, opts.enroll_concurrency).await?;
    let enrol_secs = started.elapsed().as_secs_f64();
    let enrol_rate = n as f64 / enrol_secs;
    println!("  enrolled {n} in {enrol_secs:.1} s: {enrol_rate:.0} agents/s");

    let roots = Arc::new(roots(&ca)?);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (stop_tx, stop) = watch::channel(false);
    let connecting = Arc::new(Semaphore::new(opts.connect_concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for agent in agents.iter() {
        let http = agent_http(agent, &roots, opts.wait_secs)?;
        let (base, events, stop) = (server.base.clone(), events_tx.clone(), stop.clone());
        let (wait, connecting) = (opts.wait_secs, connecting.clone());
        tasks.spawn(async move {
            if let Err(e) = agent_loop(http, &base, wait, &connecting, &events, stop).await {
                let _ = events.send(Event::Failed(format!("{e:#}")));
            }
        });
    }
    drop(events_tx);
    let mut connected = 0;
    while connected < n {
        match events.recv().await {
            Some(Event::Connected) => connected += 1,
            Some(Event::Failed(e)) => anyhow::bail!("an agent failed while connecting: {e}"),
            Some(_) => anyhow::bail!("an agent had a job before any was deployed"),
            None => anyhow::bail!("the agents stopped"),
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    let settled = settle(&server).await;
    let (rss_held_kib, _) = server.rss_kib();
    println!(
        "  {n} connected in {connect_secs:.1} s, all polling (server quiet after {settled:.1} s \
         more): server RSS {:.0} MB",
        mib(rss_held_kib)
    );

    let mut samples = Vec::with_capacity(n * rounds);
    let (mut cpu_jobs, mut cpu_results, mut bench_cpu, mut put_ms) =
        (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let managed = admin.create_managed(&managed_certificate(round)).await?;
        let set = DeploymentsSet {
            deployments: agents
                .iter()
                .map(|a| DeploymentTarget { agent: a.id.clone(), target: TARGET.into() })
                .collect(),
        };
        let (cpu0, self0) = (server.cpu_secs(), proc_cpu_secs("self"));
        let sent = Instant::now();
        let put = {
            let admin = admin.clone();
            tokio::spawn(async move { admin.set_deployments(&managed.id, &set).await })
        };
        let mut round_samples = Vec::with_capacity(n);
        let mut reported = 0;
        let mut cpu_at_jobs = None;
        let deadline = tokio::time::Instant::now() + DISPATCH_TIMEOUT;
        while reported < n {
            let event =
                tokio::time::timeout_at(deadline, events.recv()).await.with_context(|| {
                    format!(
                        "round {round}: after {} s, {} of {n} jobs handed out, {reported} reported",
                        DISPATCH_TIMEOUT.as_secs(),
                        round_samples.len()
                    )
                })?;
            match event {
                Some(Event::Job(at)) => {
                    round_samples.push(at.duration_since(sent));
                    if round_samples.len() == n {
                        cpu_at_jobs = Some(server.cpu_secs());
                    }
                }
                Some(Event::Reported) => reported += 1,
                Some(Event::Failed(e)) => anyhow::bail!("round {round}: an agent failed: {e}"),
                Some(Event::Connected) => {}
                None => anyhow::bail!("round {round}: the agents stopped"),
            }
        }
        let cpu_end = server.cpu_secs();
        let put_elapsed = {
            let answered = put.await?.context("while setting the deployments")?;
            anyhow::ensure!(answered.len() == n, "the PUT set {} deployments", answered.len());
            sent.elapsed()
        };
        let round_latency = Percentiles::of(round_samples.clone());
        let cpu = cpu_at_jobs.unwrap_or(cpu_end) - cpu0;
        println!(
            "  round {}: jobs first {:.0} ms, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; PUT \
             answered in {:.0} ms (after {:.0} ms to the last job); server CPU {cpu:.2} s to the \
             last job, {:.2} s to the last result",
            round + 1,
            round_latency.min,
            round_latency.p50,
            round_latency.p99,
            round_latency.max,
            put_elapsed.as_secs_f64() * 1000.0,
            round_latency.max,
            cpu_end - cpu0
        );
        cpu_jobs.push(cpu);
        cpu_results.push(cpu_end - cpu0);
        bench_cpu.push(proc_cpu_secs("self") - self0);
        put_ms.push(put_elapsed.as_secs_f64() * 1000.0);
        samples.extend(round_samples);
    }
    let (rss_after_kib, peak_kib) = server.rss_kib();
    println!(
        "  after dispatch: server RSS {:.0} MB (peak {:.0} MB)",
        mib(rss_after_kib),
        mib(peak_kib)
    );

    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    server.stop()?;
    db.drop_db(&opts.postgres_url).await?;
    Ok(FleetRun {
        agents: n,
        enrol_rate,
        connect_secs,
        rss_held_kib,
        rss_after_kib,
        peak_kib,
        cpu_jobs,
        cpu_results,
        bench_cpu,
        put_ms,
        latency: Percentiles::of(samples),
    })
}

/// Enrols `n` agents, `concurrency` at a time, each as a host does: a bootstrap token made
/// by the admin, a new P-256 key and a CSR naming the agent, `POST /api/v1/agents/enroll`.
async fn enrol(
    admin: &Client,
    anonymous: &Client,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Enrolled>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.clamp(1, n.max(1)) {
        let (admin, anonymous, next) = (admin.clone(), anonymous.clone(), next.clone());
        workers.spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(done);
                }
                done.push((i, enrol_one(&admin, &anonymous, &format!("agent-{i:05}")).await?));
            }
        });
    }
    let mut agents = Vec::with_capacity(n);
    while let Some(done) = workers.join_next().await {
        agents.extend(done??);
    }
    agents.sort_by_key(|(i, _)| *i);
    Ok(agents.into_iter().map(|(_, a)| a).collect())
}

async fn enrol_one(admin: &Client, anonymous: &Client, name: &str) -> anyhow::Result<Enrolled> {
    let token = admin.create_bootstrap_token(&BootstrapTokenCreate::default()).await?.token;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    let csr = params.serialize_request(&key)?.pem()?;
    let enrolled = anonymous
        .enroll(&EnrollRequest { token, name: name.into(), csr })
        .await
        .with_context(|| format!("while enrolling {name}"))?;
    let certificate = CertificateDer::from_pem_slice(enrolled.identity.certificate_pem.as_bytes())
        .context("the enrolment's certificate is not PEM")?;
    Ok(Enrolled { id: enrolled.agent.id, certificate, key_der: key.serialize_der() })
}

/// The server's roots: the platform CA of its `auto` certificate.
fn roots(ca_pem: &[u8]) -> anyhow::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(certificate.context("the platform CA is not PEM")?)?;
    }
    Ok(roots)
}

/// The agent's own HTTP client: one HTTP/1.1 connection with its client certificate.
fn agent_http(
    agent: &Enrolled,
    roots: &Arc<rustls::RootCertStore>,
    wait_secs: u64,
) -> anyhow::Result<reqwest::Client> {
    // Built here rather than from a PEM identity through reqwest's own TLS setup, which would
    // also load the system's trust store once per agent.
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(agent.key_der.clone()));
    let mut tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots.clone())
        .with_client_auth_cert(vec![agent.certificate.clone()], key)?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .pool_max_idle_per_host(1)
        .connect_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(wait_secs + 60))
        .build()?)
}

/// One agent: a first poll that returns at once (its handshake and authentication, at most
/// `connecting` of them at a time), then long polls; each job it gets is reported done at once.
async fn agent_loop(
    http: reqwest::Client,
    base: &str,
    wait_secs: u64,
    connecting: &Semaphore,
    events: &mpsc::UnboundedSender<Event>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let next = format!("{base}/api/v1/agent/jobs/next");
    {
        let _permit = connecting.acquire().await?;
        let first = http.get(&next).query(&[("wait_secs", "0")]).send().await?;
        anyhow::ensure!(first.status() == 204, "the first poll answered {}", first.status());
    }
    let _ = events.send(Event::Connected);
    let wait = wait_secs.to_string();
    loop {
        let answer = tokio::select! {
            answer = http.get(&next).query(&[("wait_secs", wait.as_str())]).send() => answer?,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        match answer.status().as_u16() {
            204 => continue,
            200 => {}
            status => anyhow::bail!("a poll answered {status}: {}", answer.text().await?),
        }
        let body = answer.bytes().await?;
        let at = Instant::now();
        let job: JobAssignment = serde_json::from_slice(&body).context("a job that is not JSON")?;
        anyhow::ensure!(job.target == TARGET && job.sealed_key.is_some(), "an unexpected job");
        let _ = events.send(Event::Job(at));
        let result = JobResult {
            succeeded: true,
            served_fingerprint: None,
            failed_step: None,
            message: None,
            steps: Vec::new(),
        };
        let url = format!("{base}/api/v1/agent/jobs/{}/result", job.id);
        let answer = http.post(&url).json(&result).send().await?;
        anyhow::ensure!(answer.status() == 200, "a result was answered {}", answer.status());
        let _ = events.send(Event::Reported);
    }
}

/// Waits until the server has taken every poll (it then uses under a tenth of a core), up to
/// 30 s; the seconds waited.
async fn settle(server: &ServerProcess) -> f64 {
    let started = Instant::now();
    let mut cpu = server.cpu_secs();
    while started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = server.cpu_secs();
        if now - cpu < 0.05 {
            break;
        }
        cpu = now;
    }
    started.elapsed().as_secs_f64()
}

/// A managed certificate with a server-made key from the builtin CA, one per round.
fn managed_certificate(round: usize) -> ManagedCreate {
    ManagedCreate {
        name: format!("fleet-{round}"),
        owner: "bench".into(),
        adapter: None,
        csr: None,
        key_type: Some("ecdsa_p256".into()),
        subject: Subject {
            common_name: None,
            dns_names: vec![format!("fleet-{round}.example.test")],
            ip_addresses: Vec::new(),
            validity_days: Some(30),
            acme_solver: None,
        },
        renew_before: None,
        key_on_agent: false,
        deployments: Vec::new(),
    }
}

fn kind_name(db: BenchDatabase) -> &'static str {
    match db {
        BenchDatabase::Sqlite => "SQLite",
        BenchDatabase::Postgres => "PostgreSQL",
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

fn print_summary(runs: &[FleetRun]) {
    println!(
        "\n{:>6} {:>9} {:>9} {:>9} {:>10} {:>9} {:>10} {:>10} {:>8} {:>8} {:>8} {:>9} {:>12}",
        "agents",
        "enrol/s",
        "connect",
        "RSS held",
        "RSS after",
        "RSS peak",
        "CPU jobs",
        "CPU all",
        "p50",
        "p99",
        "max",
        "PUT",
        "p99/p99(1)"
    );
    let reference = runs.first().map(|r| r.latency.p99).unwrap_or(0.0);
    for run in runs {
        println!(
            "{:>6} {:>9.0} {:>8.1}s {:>6.0} MB {:>7.0} MB {:>6.0} MB {:>9.2}s {:>9.2}s {:>5.0} ms \
             {:>5.0} ms {:>5.0} ms {:>6.0} ms {:>11.1}x",
            run.agents,
            run.enrol_rate,
            run.connect_secs,
            mib(run.rss_held_kib),
            mib(run.rss_after_kib),
            mib(run.peak_kib),
            mean(&run.cpu_jobs),
            mean(&run.cpu_results),
            run.latency.p50,
            run.latency.p99,
            run.latency.max,
            mean(&run.put_ms),
            if reference > 0.0 { run.latency.p99 / reference } else { 0.0 },
        );
    }
    println!(
        "(CPU: server seconds per dispatch, from the PUT to the last job handed out and to the \
         last result taken, mean of the rounds; the agents' side used {:.2} s per dispatch at \
         the largest fleet, on the same cores. PUT: until its answer.)",
        runs.last().map(|r| mean(&r.bench_cpu)).unwrap_or(0.0)
    );
    if let Some(largest) = runs.iter().max_by_key(|r| r.agents) {
        println!(
            "goal (issue 14): 10,000 agents held, dispatch p99 < 1 s, server RSS < 500 MB: \
             {} agents, p99 {:.0} ms, RSS {:.0} MB held, {:.0} MB peak",
            largest.agents,
            largest.latency.p99,
            mib(largest.rss_held_kib),
            mib(largest.peak_kib)
        );
    }
}
