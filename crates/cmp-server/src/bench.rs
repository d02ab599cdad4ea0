//! `cmpd bench`: benchmarks that print their figures beside a reference measured in the same run.
//!
//! `cmpd bench inventory` loads an inventory of `--count` certificates into a fresh SQLite and a
//! fresh PostgreSQL database: a `--bundle` of real, signed certificates through the real import
//! path (PEM decoding, parsing, findings, de-duplication, audit), the rest as generated facts
//! through the same store call. Then it serves that database over HTTP and times list pages.
//! References from the same run: the database's raw insert rate for rows of the same shape, and
//! the HTTP round trip of `/healthz` on the same server.

mod acme;
mod issuance;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use cmp_domain::{CertificateFacts, KeyInfo, KeyType, Role, San, SanType};
use cmp_store::{
    AuditContext, CertificateSource, CertificateStore, NewCertificate, NewOwner, OwnerStore, Scope,
    SqlStore,
};
use sqlx::Connection;
use time::OffsetDateTime;

use crate::auth::Caller;
use crate::config::Config;
use crate::inventory::views::time_of;
use crate::state::{AppState, SystemClock};

/// Benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Inventory: import rate and listing latency at scale, on SQLite and PostgreSQL.
    Inventory(InventoryBench),
    /// Issuance: builtin CA signing in-process and through the API, against OpenBao and openssl.
    Issuance(issuance::IssuanceBench),
    /// ACME: orders against a running ACME CA (Pebble; see bench/acme.sh), through the
    /// cmp-acme library and through the HTTP API.
    Acme(acme::AcmeBench),
}

/// Options of the inventory benchmark.
#[derive(Debug, Clone, clap::Args)]
pub struct InventoryBench {
    /// Certificates in the inventory at the end.
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u32,
    /// Of which this many are real signed certificates imported as one PEM bundle.
    #[arg(long, default_value_t = 100_000)]
    pub bundle: u32,
    /// Timed requests per list query.
    #[arg(long, default_value_t = 200)]
    pub samples: u32,
    /// Databases to run on.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    pub databases: Vec<BenchDatabase>,
    /// PostgreSQL server to create the benchmark database on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub postgres_url: String,
}

/// Databases the benchmark can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchDatabase {
    Sqlite,
    Postgres,
}

/// Runs a benchmark.
pub async fn run(command: &BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Inventory(opts) => inventory(opts).await,
        BenchCommand::Issuance(opts) => issuance::run(opts).await,
        BenchCommand::Acme(opts) => acme::run(opts).await,
    }
}

const OWNERS: u32 = 50;
const DAY: i64 = 86_400;

async fn inventory(opts: &InventoryBench) -> anyhow::Result<()> {
    anyhow::ensure!(opts.bundle <= opts.count, "--bundle must not exceed --count");
    println!(
        "# cmpd bench inventory: {} certificates ({} imported as a signed PEM bundle)",
        opts.count, opts.bundle
    );
    let started = Instant::now();
    let bundle = signed_bundle(opts.bundle)?;
    println!(
        "generated the bundle: {} certificates, {:.1} MB of PEM in {:.1} s\n",
        opts.bundle,
        bundle.len() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    for db in &opts.databases {
        let scratch = ScratchDb::create(*db, &opts.postgres_url).await?;
        let result = inventory_on(opts, &scratch.url, &bundle).await;
        scratch.drop_db(&opts.postgres_url).await?;
        let report = result.with_context(|| format!("while benchmarking {db:?}"))?;
        report.print(*db);
    }
    let (rss, peak) = rss_kib();
    println!(
        "\nprocess RSS at the end: {} MiB (peak {} MiB; server and benchmark driver in one process)",
        rss / 1024,
        peak / 1024
    );
    Ok(())
}

struct Report {
    bundle_rate: f64,
    bulk_rate: f64,
    raw_insert_rate: f64,
    queries: Vec<(String, Latency)>,
    healthz: Latency,
    /// Resident and peak memory of the serving process after the queries.
    server_rss_kib: (u64, u64),
}

impl Report {
    fn print(&self, db: BenchDatabase) {
        println!("## {db:?}");
        println!("| measure | value | reference | ratio |");
        println!("|---|---|---|---|");
        println!(
            "| import, real path (PEM bundle) | {:.0} certs/s | raw INSERT of same rows: {:.0} rows/s | {:.2} |",
            self.bundle_rate,
            self.raw_insert_rate,
            self.bundle_rate / self.raw_insert_rate
        );
        println!(
            "| load, generated facts (store path, audited) | {:.0} certs/s | raw INSERT: {:.0} rows/s | {:.2} |",
            self.bulk_rate,
            self.raw_insert_rate,
            self.bulk_rate / self.raw_insert_rate
        );
        for (name, l) in &self.queries {
            println!(
                "| list {name} | p50 {:.1} ms, p99 {:.1} ms | /healthz p50 {:.2} ms, p99 {:.2} ms | p99 x{:.1} |",
                l.p50_ms,
                l.p99_ms,
                self.healthz.p50_ms,
                self.healthz.p99_ms,
                l.p99_ms / self.healthz.p99_ms
            );
        }
        let (rss, peak) = self.server_rss_kib;
        println!(
            "| server RSS after the queries | {} MiB (peak {} MiB) | | |\n",
            rss / 1024,
            peak / 1024
        );
    }
}

/// One measurement: certificates per second and latency.
struct Run {
    what: String,
    concurrency: usize,
    rate: f64,
    latency: Latency,
}

/// Runs `op` from `concurrency` tasks for `seconds`; `op(n)` does one signature.
async fn measure<F, Fut>(what: &str, concurrency: usize, seconds: u64, op: F) -> anyhow::Result<Run>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let counter = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (op, counter) = (op.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while Instant::now() < end {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                op(n).await?;
                samples.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(samples)
        }));
    }
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await??);
    }
    let rate = samples.len() as f64 / started.elapsed().as_secs_f64();
    let run = Run { what: what.into(), concurrency, rate, latency: latency(samples) };
    println!(
        "{:<34} c={:<3} {:>8.0} certs/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
        run.what, run.concurrency, run.rate, run.latency.p50_ms, run.latency.p99_ms
    );
    Ok(run)
}

/// The best rate among runs whose name starts with `what`, at `concurrency` or at any.
fn best_rate(runs: &[Run], what: &str, concurrency: Option<usize>) -> f64 {
    runs.iter()
        .filter(|r| r.what.starts_with(what) && concurrency.is_none_or(|c| r.concurrency == c))
        .map(|r| r.rate)
        .fold(0.0, f64::max)
}

#[derive(Debug, Clone, Copy)]
struct Latency {
    p50_ms: f64,
    p99_ms: f64,
}

fn latency(mut samples: Vec<Duration>) -> Latency {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(i).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
    };
    Latency { p50_ms: at(0.50), p99_ms: at(0.99) }
}

/// `n` leaf certificates signed by one CA, as one PEM bundle.
fn signed_bundle(n: u32) -> anyhow::Result<String> {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "CMP Bench CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::Issuer::new(ca_params, rcgen::KeyPair::generate()?);
    // One leaf key for all: the benchmark is about the inventory, not key generation.
    let leaf_key = rcgen::KeyPair::generate()?;
    let now = OffsetDateTime::now_utc();
    let mut out = String::with_capacity(n as usize * 700);
    for i in 0..n {
        let name = format!("host{i}.team{}.bench.example", i % OWNERS);
        let mut params =
            rcgen::CertificateParams::new(vec![name.clone(), format!("alt{i}.bench.internal")])?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.serial_number =
            Some(rcgen::SerialNumber::from((u64::from(i) + 1).to_be_bytes().to_vec()));
        params.not_before = now - time::Duration::days(30);
        params.not_after = now + time::Duration::days(i64::from(i % 730) - 30);
        out.push_str(&params.signed_by(&leaf_key, &ca)?.pem());
    }
    Ok(out)
}

/// Facts of generated certificate `i` (not signed; the store does not look at signatures).
fn generated_facts(i: u32, now: i64) -> CertificateFacts {
    let name = format!("host{i}.team{}.bench.example", i % OWNERS);
    let fingerprint = cmp_pki::sha256_hex(format!("cmp-bench-{i}").as_bytes());
    CertificateFacts {
        serial_number: format!("{:x}", u64::from(i) + 1_000_000_000),
        subject: format!("CN={name}"),
        issuer: "CN=CMP Bench CA".into(),
        common_name: Some(name.clone()),
        not_before: time_of(now - 30 * DAY),
        not_after: time_of(now + (i64::from(i % 730) - 30) * DAY + i64::from(i % 86_400)),
        sans: vec![
            San { kind: SanType::Dns, value: name },
            San { kind: SanType::Dns, value: format!("alt{i}.bench.internal") },
        ],
        key: KeyInfo { kind: KeyType::Ec, bits: Some(256), curve: Some("P-256".into()) },
        signature_algorithm: "ecdsa-with-SHA256".into(),
        is_ca: false,
        self_signed: false,
        der: fingerprint.as_bytes().to_vec(),
        fingerprint_sha256: fingerprint,
    }
}

async fn inventory_on(opts: &InventoryBench, url: &str, bundle: &str) -> anyhow::Result<Report> {
    let store = Arc::new(SqlStore::connect(url, 8).await?);
    let now = OffsetDateTime::now_utc();
    let ctx = AuditContext {
        actor: "bench".into(),
        request_id: None,
        now_us: now.unix_timestamp() * 1_000_000,
    };
    let mut owner_ids = Vec::new();
    for t in 0..OWNERS {
        let owner = NewOwner { name: format!("team{t}"), email: None, description: None };
        owner_ids.push(store.create_owner(&ctx, &owner).await?.id);
    }

    // The real import path, as the API runs it, for the signed bundle.
    let config = Config {
        database: crate::config::DatabaseConfig { url: Some(url.to_string()), max_connections: 8 },
        ..Config::default()
    };
    let state = bench_state(config, store.clone()).await?;
    let admin = Caller { actor: "bench".into(), role: Role::Admin, scope: Scope::All };
    let started = Instant::now();
    let input = crate::inventory::ImportInput {
        data: bundle.as_bytes(),
        password: None,
        owner: Some("team0"),
        location: None,
        partial: false,
    };
    let imported = state
        .inventory
        .import(&admin, input)
        .await
        .map_err(|e| anyhow::anyhow!("bundle import failed: {e}"))?;
    let bundle_rate = f64::from(opts.bundle) / started.elapsed().as_secs_f64();
    anyhow::ensure!(
        imported.created == opts.bundle as usize,
        "bundle import created {}",
        imported.created
    );
    println!(
        "{url_kind}: imported the bundle at {bundle_rate:.0} certs/s",
        url_kind = kind_of(url)
    );

    // The rest: generated facts through the same store call, in batches as an import would be.
    let started = Instant::now();
    let batch = 10_000;
    let mut i = opts.bundle;
    while i < opts.count {
        let end = (i + batch).min(opts.count);
        let certs: Vec<NewCertificate> = (i..end)
            .map(|n| NewCertificate {
                facts: generated_facts(n, now.unix_timestamp()),
                source: CertificateSource::Import,
                owner_id: Some(owner_ids[(n % OWNERS) as usize].clone()),
                location: None,
                issued: None,
            })
            .collect();
        store.import_certificates(&ctx, &Scope::All, &certs).await?;
        i = end;
    }
    let generated = opts.count - opts.bundle;
    let bulk_rate =
        if generated == 0 { 0.0 } else { f64::from(generated) / started.elapsed().as_secs_f64() };
    println!(
        "{}: loaded {generated} generated certificates at {bulk_rate:.0} certs/s",
        kind_of(url)
    );
    let raw_insert_rate = raw_insert_rate(&store, 20_000, now.unix_timestamp()).await?;

    // Serve it from a separate cmpd process, so that its memory is the server's alone.
    drop(state);
    drop(store);
    let server = ServerProcess::start(url)?;
    let (base, token) = (server.base.clone(), server.token.clone());
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let http = reqwest::Client::new();
    let soon =
        (now + time::Duration::days(30)).format(&time::format_description::well_known::Rfc3339)?;
    let median =
        (now + time::Duration::days(335)).format(&time::format_description::well_known::Rfc3339)?;
    let deep_cursor =
        first_cursor(&http, &base, &token, &format!("expires_after={median}&limit=100")).await?;
    let queries = [
        ("first page (100, by expiry)", "limit=100".to_string()),
        ("by owner", "owner=team7&limit=100".to_string()),
        ("expires_before 30 days", format!("expires_before={soon}&limit=100")),
        ("status=expiring", "status=expiring&limit=100".to_string()),
        ("q substring, common", "q=team4&limit=100".to_string()),
        ("q substring, one match", format!("q=host{}.", opts.count / 2 + 7)),
        ("deep cursor (middle of 1M)", format!("limit=100&cursor={deep_cursor}")),
    ];
    let mut timed = Vec::new();
    for (name, query) in queries {
        let path = format!("{base}/api/v1/certificates?{query}");
        timed.push((name.to_string(), time_requests(&http, &path, &token, opts.samples).await?));
    }
    let healthz = time_requests(&http, &format!("{base}/healthz"), &token, opts.samples).await?;
    let server_rss_kib = server.rss_kib();
    server.stop()?;
    Ok(Report { bundle_rate, bulk_rate, raw_insert_rate, queries: timed, healthz, server_rss_kib })
}

fn kind_of(url: &str) -> &'static str {
    if url.starts_with("sqlite") { "sqlite" } else { "postgres" }
}

async fn bench_state(config: Config, store: Arc<SqlStore>) -> anyhow::Result<AppState> {
    let secrets = crate::open_secrets(&config).await?;
    AppState::assemble(Arc::new(config), store, Arc::new(SystemClock), secrets)
}

async fn first_cursor(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    query: &str,
) -> anyhow::Result<String> {
    let page: serde_json::Value = http
        .get(format!("{base}/api/v1/certificates?{query}"))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    page["next_cursor"]
        .as_str()
        .map(str::to_string)
        .context("a cursor in the middle of the inventory")
}

async fn time_requests(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    samples: u32,
) -> anyhow::Result<Latency> {
    // Warm up caches and connections first.
    for _ in 0..5 {
        http.get(url).bearer_auth(token).send().await?.error_for_status()?.bytes().await?;
    }
    let mut times = Vec::with_capacity(samples as usize);
    for _ in 0..samples {
        let t = Instant::now();
        http.get(url).bearer_auth(token).send().await?.error_for_status()?.bytes().await?;
        times.push(t.elapsed());
    }
    Ok(latency(times))
}

/// The database's own ceiling: plain INSERTs of certificate-shaped rows into a scratch table
/// with the same indexes, in one transaction, without parsing, de-duplication or audit.
async fn raw_insert_rate(store: &SqlStore, rows: u32, now: i64) -> anyhow::Result<f64> {
    store.execute_raw("CREATE TABLE bench_raw AS SELECT * FROM certificates WHERE 1 = 0").await?;
    store.execute_raw("CREATE UNIQUE INDEX bench_raw_fp ON bench_raw (fingerprint_sha256)").await?;
    store.execute_raw("CREATE INDEX bench_raw_na ON bench_raw (not_after, id)").await?;
    store
        .execute_raw("CREATE INDEX bench_raw_owner ON bench_raw (owner_id, not_after, id)")
        .await?;
    let started = Instant::now();
    store.raw_bulk_insert_for_bench(rows, now).await?;
    let rate = f64::from(rows) / started.elapsed().as_secs_f64();
    store.execute_raw("DROP TABLE bench_raw").await?;
    Ok(rate)
}

/// Resident and peak memory of this process, KiB.
fn rss_kib() -> (u64, u64) {
    proc_rss_kib("self")
}

/// Resident and peak memory of a process, KiB.
fn proc_rss_kib(pid: &str) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `cmpd` serving a benchmark database, in its own process.
struct ServerProcess {
    child: std::process::Child,
    base: String,
    token: String,
    _data: tempfile::TempDir,
}

impl ServerProcess {
    fn start(url: &str) -> anyhow::Result<ServerProcess> {
        Self::start_with(url, &[])
    }

    /// The same with more environment (`CMPD_...` settings).
    fn start_with(url: &str, env: &[(&str, String)]) -> anyhow::Result<ServerProcess> {
        use std::io::BufRead;
        let data = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data.path())
            .env("CMPD_DATABASE__URL", url)
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("while starting cmpd")?;
        let stdout = child.stdout.take().context("cmpd's stdout")?;
        // The banner says the server listens; the fresh database's bootstrap token is then in
        // the data directory (stdout is not a terminal, so it is not printed).
        let mut lines = std::io::BufReader::new(stdout).lines();
        lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.contains("is listening on"))
            .context("cmpd stopped before it listened")?;
        let token = std::fs::read_to_string(data.path().join(crate::ADMIN_TOKEN_FILE))
            .context("while reading the bootstrap admin token")?
            .trim()
            .to_string();
        // Keep reading, so that the server never writes into a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(ServerProcess { child, base: format!("http://127.0.0.1:{port}"), token, _data: data })
    }

    fn rss_kib(&self) -> (u64, u64) {
        proc_rss_kib(&self.child.id().to_string())
    }

    fn stop(mut self) -> anyhow::Result<()> {
        std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        self.child.wait()?;
        Ok(())
    }
}

/// A database made for one benchmark run and dropped after it.
struct ScratchDb {
    url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl ScratchDb {
    async fn create(db: BenchDatabase, postgres_url: &str) -> anyhow::Result<ScratchDb> {
        match db {
            BenchDatabase::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
                Ok(ScratchDb { url, pg_name: None, _dir: Some(dir) })
            }
            BenchDatabase::Postgres => {
                sqlx::any::install_default_drivers();
                let name = format!("cmp_bench_{}", uuid::Uuid::now_v7().simple());
                let mut conn = sqlx::AnyConnection::connect(postgres_url)
                    .await
                    .context("while connecting to PostgreSQL")?;
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
                let base = postgres_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(postgres_url);
                Ok(ScratchDb { url: format!("{base}/{name}"), pg_name: Some(name), _dir: None })
            }
        }
    }

    async fn drop_db(&self, postgres_url: &str) -> anyhow::Result<()> {
        if let Some(name) = &self.pg_name {
            let mut conn = sqlx::AnyConnection::connect(postgres_url).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await?;
        }
        Ok(())
    }
}
