//! `cmp-bench inventory`: loads an inventory of `--count` certificates into a fresh SQLite and
//! a fresh PostgreSQL database: a `--bundle` of real, signed certificates through the real
//! import path (PEM decoding, parsing, findings, de-duplication, audit), the rest as generated
//! facts through the same store call. Then it serves that database from a `cmpd` process and
//! times list pages over HTTP. References from the same run: the database's raw insert rate for
//! rows of the same shape, and the HTTP round trip of `/healthz` on the same server.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use cmp_domain::{CertificateFacts, Clock, KeyInfo, KeyType, Role, San, SanType};
use cmp_server::auth::Caller;
use cmp_server::config::Config;
use cmp_server::core::wire::time_of;
use cmp_server::state::{AppState, SystemClock};
use cmp_store::{
    AuditContext, CertificateSource, CertificateStore, NewApiToken, NewCertificate, NewOwner,
    OwnerStore, Scope, SqlStore, TokenStore,
};
use sqlx::{Connection, Executor};

use crate::harness::{BenchDatabase, Latency, ScratchDb, ServerProcess, kind_of, latency, rss_kib};

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
    /// Also time the dashboard in headless Chromium on each database (`web/bench/dashboard.mjs`:
    /// the inventory's first table paint, a filter change, the overview).
    #[arg(long)]
    pub dashboard: bool,
    /// Keep the databases afterwards (their URLs are printed), to look into a figure.
    #[arg(long)]
    pub keep: bool,
    /// Time the lists only, on a database an earlier run kept (`--keep`), with the `--count`
    /// it was loaded with: to compare two builds of `cmpd` on the same data.
    #[arg(long, value_name = "URL")]
    pub reuse: Option<String>,
    /// Time only the lists and stats whose name holds this (`one match`, `stats`, ...).
    #[arg(long, value_name = "TEXT")]
    pub only: Option<String>,
}

pub(crate) const OWNERS: u32 = 50;
const DAY: i64 = 86_400;

/// Runs the inventory benchmark, serving from the `cmpd` at `cmpd`.
pub async fn run(opts: &InventoryBench, cmpd: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(opts.bundle <= opts.count, "--bundle must not exceed --count");
    if let Some(url) = &opts.reuse {
        println!("# cmp-bench inventory: the lists on {url}; server: {}", cmpd.display());
        let lists = time_lists(opts, cmpd, url).await?;
        Report { imports: None, lists }.print(kind_of(url));
        return Ok(());
    }
    println!(
        "# cmp-bench inventory: {} certificates ({} imported as a signed PEM bundle); server: {}",
        opts.count,
        opts.bundle,
        cmpd.display()
    );
    let started = Instant::now();
    let bundle = signed_bundle(opts.bundle)?;
    println!(
        "generated the bundle: {} certificates, {:.1} MB of PEM in {:.1} s\n",
        opts.bundle,
        bundle.len() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    // What the import spends outside the database: reading the PEM and each certificate.
    let started = Instant::now();
    let parsed = cmp_pki::decode_import(bundle.as_bytes(), None).certificates.len();
    println!(
        "parsed the bundle alone (one core): {parsed} certificates at {:.0} certs/s\n",
        parsed as f64 / started.elapsed().as_secs_f64()
    );
    for db in &opts.databases {
        let scratch = ScratchDb::create(*db, &opts.postgres_url).await?;
        let result = inventory_on(opts, cmpd, &scratch.url, &bundle).await;
        let kind = kind_of(&scratch.url);
        if opts.keep {
            println!("kept: {}", scratch.keep());
        } else {
            scratch.drop_db(&opts.postgres_url).await?;
        }
        let report = result.with_context(|| format!("while benchmarking {db:?}"))?;
        report.print(kind);
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
    /// None when the lists were timed on a database loaded by an earlier run.
    imports: Option<ImportRates>,
    lists: ListTimes,
}

struct ImportRates {
    bundle_rate: f64,
    bulk_rate: f64,
    raw_insert_rate: f64,
}

struct ListTimes {
    /// Each query's latency at one client and, for the lists, at [`CLIENTS`] at once.
    queries: Vec<(String, Latency, Option<Latency>)>,
    healthz: Latency,
    /// Resident and peak memory of the serving process after the queries.
    server_rss_kib: (u64, u64),
    /// Its proportional memory then.
    server_pss_kib: u64,
}

/// Clients querying at once in the concurrent measurement.
const CLIENTS: usize = 4;

impl Report {
    fn print(&self, kind: &str) {
        println!("## {kind}");
        println!("| measure | value | reference | ratio |");
        println!("|---|---|---|---|");
        if let Some(imports) = &self.imports {
            println!(
                "| import, real path (PEM bundle) | {:.0} certs/s | raw INSERT of same rows: {:.0} rows/s | {:.2} |",
                imports.bundle_rate,
                imports.raw_insert_rate,
                imports.bundle_rate / imports.raw_insert_rate
            );
            println!(
                "| load, generated facts (store path, audited) | {:.0} certs/s | raw INSERT: {:.0} rows/s | {:.2} |",
                imports.bulk_rate,
                imports.raw_insert_rate,
                imports.bulk_rate / imports.raw_insert_rate
            );
        }
        let lists = &self.lists;
        for (name, one, many) in &lists.queries {
            let many = many.as_ref().map_or(String::new(), |m| {
                format!("; {CLIENTS} clients: p50 {:.1} ms, p99 {:.1} ms", m.p50_ms, m.p99_ms)
            });
            println!(
                "| {name} | 1 client: p50 {:.1} ms, p99 {:.1} ms{many} | /healthz p50 {:.2} ms, p99 {:.2} ms | p99 x{:.1} |",
                one.p50_ms,
                one.p99_ms,
                lists.healthz.p50_ms,
                lists.healthz.p99_ms,
                one.p99_ms / lists.healthz.p99_ms
            );
        }
        let (rss, peak) = lists.server_rss_kib;
        println!(
            "| server memory after the queries | RSS {} MiB (peak {} MiB), PSS {} MiB | | |\n",
            rss / 1024,
            peak / 1024,
            lists.server_pss_kib / 1024
        );
    }
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
    let now = SystemClock.now();
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

/// Generated certificates `range` through the store's import call, in batches as an import
/// would be, owned round-robin by `owner_ids`.
pub(crate) async fn load_generated(
    store: &SqlStore,
    ctx: &AuditContext,
    owner_ids: &[String],
    range: std::ops::Range<u32>,
    now: i64,
) -> anyhow::Result<()> {
    let mut i = range.start;
    while i < range.end {
        let end = (i + 10_000).min(range.end);
        let certs: Vec<NewCertificate> = (i..end)
            .map(|n| NewCertificate {
                facts: generated_facts(n, now),
                source: CertificateSource::Import,
                owner_id: Some(owner_ids[n as usize % owner_ids.len()].clone()),
                location: None,
                issued: None,
            })
            .collect();
        store.import_certificates(ctx, &Scope::All, &certs).await?;
        i = end;
    }
    Ok(())
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

async fn inventory_on(
    opts: &InventoryBench,
    cmpd: &Path,
    url: &str,
    bundle: &str,
) -> anyhow::Result<Report> {
    let store = Arc::new(SqlStore::connect(url, 8).await?);
    let now = SystemClock.now();
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
    let state = bench_state(url, store.clone()).await?;
    let admin = Caller { actor: "bench".into(), role: Role::Admin, scope: Scope::All };
    let started = Instant::now();
    let input = cmp_server::inventory::ImportInput {
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
    // One import has one owner; spread the bundle over every owner as the generated rest is,
    // so that the owner filter finds its share whatever `--count` is.
    let mut updates = sqlx::AnyConnection::connect(url).await?;
    if kind_of(url) == "sqlite" {
        updates.execute("PRAGMA busy_timeout = 10000").await?;
    }
    for (t, owner_id) in owner_ids.iter().enumerate().skip(1) {
        sqlx::query(
            "UPDATE certificates SET owner_id = $1 WHERE owner_id = $2 AND common_name LIKE $3",
        )
        .bind(owner_id)
        .bind(&owner_ids[0])
        .bind(format!("host%.team{t}.bench.example"))
        .execute(&mut updates)
        .await?;
    }
    updates.close().await?;
    println!(
        "{url_kind}: imported the bundle at {bundle_rate:.0} certs/s",
        url_kind = kind_of(url)
    );

    // The rest: generated facts through the same store call, in batches as an import would be.
    let started = Instant::now();
    load_generated(&store, &ctx, &owner_ids, opts.bundle..opts.count, now.unix_timestamp()).await?;
    let generated = opts.count - opts.bundle;
    let bulk_rate =
        if generated == 0 { 0.0 } else { f64::from(generated) / started.elapsed().as_secs_f64() };
    println!(
        "{}: loaded {generated} generated certificates at {bulk_rate:.0} certs/s",
        kind_of(url)
    );
    let raw_insert_rate = raw_insert_rate(url, 20_000, now.unix_timestamp()).await?;
    drop(state);
    drop(store);
    let lists = time_lists(opts, cmpd, url).await?;
    Ok(Report { imports: Some(ImportRates { bundle_rate, bulk_rate, raw_insert_rate }), lists })
}

/// Serves the database at `url` from a separate `cmpd` process, so that its memory is the
/// server's alone, and times the lists and the stats over HTTP.
async fn time_lists(opts: &InventoryBench, cmpd: &Path, url: &str) -> anyhow::Result<ListTimes> {
    settle(url).await?;
    let now = SystemClock.now();
    let server = match &opts.reuse {
        Some(_) => ServerProcess::start_with_token(cmpd, url, admin_token(url).await?)?,
        None => ServerProcess::start(cmpd, url)?,
    };
    let (base, token) = (server.base.clone(), server.token.clone());
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
    let paths: Vec<(String, String)> = queries
        .into_iter()
        .map(|(name, query)| (format!("list {name}"), format!("/api/v1/certificates?{query}")))
        .collect();
    let chosen = |name: &str| opts.only.as_ref().is_none_or(|only| name.contains(only.as_str()));
    let mut timed = Vec::new();
    for (name, path) in paths.into_iter().filter(|(name, _)| chosen(name)) {
        let url = format!("{base}{path}");
        let one = time_requests(&http, &url, &token, opts.samples).await?;
        let many = time_requests_at_once(&http, &url, &token, opts.samples).await?;
        timed.push((name, one, Some(many)));
    }
    // The dashboard's overview figures, counted over the whole inventory (one client: a
    // dashboard's, not a list load).
    for (name, path) in [
        ("stats overview", "/api/v1/stats/overview"),
        ("stats expiry (13 weeks)", "/api/v1/stats/expiry"),
    ]
    .into_iter()
    .filter(|(name, _)| chosen(name))
    {
        let one = time_requests(&http, &format!("{base}{path}"), &token, opts.samples).await?;
        timed.push((name.to_string(), one, None));
    }
    if opts.dashboard {
        dashboard_in_chromium(&base, &token)?;
    }
    let healthz = time_requests(&http, &format!("{base}/healthz"), &token, opts.samples).await?;
    let server_rss_kib = server.rss_kib();
    let server_pss_kib = server.pss_kib();
    server.stop()?;
    Ok(ListTimes { queries: timed, healthz, server_rss_kib, server_pss_kib })
}

/// A new admin token on the database at `url`, which has tokens already.
async fn admin_token(url: &str) -> anyhow::Result<String> {
    let store = SqlStore::connect(url, 1).await?;
    let secret = cmp_server::auth::new_token_secret();
    let ctx = AuditContext {
        actor: "bench".into(),
        request_id: None,
        now_us: SystemClock.now().unix_timestamp() * 1_000_000,
    };
    let token = NewApiToken {
        name: "cmp-bench inventory --reuse".into(),
        token_hash: cmp_server::auth::token_hash(&secret),
        role: Role::Admin,
        owner_ids: Vec::new(),
        expires_at: None,
    };
    store.create_token(&ctx, &token).await?;
    Ok(secret)
}

/// Settles the database before the lists are timed, as a server left alone would be: the
/// load's writes flushed out of the log rather than flushed during the timing, and on
/// PostgreSQL the table vacuumed, as autovacuum does after a change of this size (this
/// machine's PostgreSQL runs with autovacuum off; the bundle's owners were moved with an
/// UPDATE, which leaves a dead row version and its index entries behind per certificate).
async fn settle(url: &str) -> anyhow::Result<()> {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    let statements: &[&str] = match kind_of(url) {
        "sqlite" => &["PRAGMA wal_checkpoint(TRUNCATE)"],
        _ => &["VACUUM (ANALYZE) certificates", "CHECKPOINT"],
    };
    for sql in statements {
        conn.execute(*sql).await.with_context(|| format!("while running {sql}"))?;
    }
    conn.close().await?;
    Ok(())
}

/// Runs the dashboard's browser benchmark against the server; it prints its own table.
fn dashboard_in_chromium(base: &str, token: &str) -> anyhow::Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/bench/dashboard.mjs");
    let status = std::process::Command::new("node")
        .arg(&script)
        .env("CMP_BASE", base)
        .env("CMP_TOKEN", token)
        .status()
        .with_context(|| format!("while starting node {}", script.display()))?;
    anyhow::ensure!(status.success(), "the dashboard benchmark failed: {status}");
    Ok(())
}

/// The server's state on the database at `url`, served by `store`.
pub(crate) async fn bench_state(url: &str, store: Arc<SqlStore>) -> anyhow::Result<AppState> {
    let config = Config {
        database: cmp_server::config::DatabaseConfig {
            url: Some(url.to_string()),
            max_connections: 8,
        },
        ..Config::default()
    };
    let secrets = cmp_server::open_secrets(&config, &SystemClock).await?;
    let agent_ca = cmp_server::load_agent_ca(secrets.as_ref(), &SystemClock).await?;
    AppState::assemble(Arc::new(config), store, Arc::new(SystemClock), secrets, agent_ca)
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

pub(crate) async fn time_requests(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    samples: u32,
) -> anyhow::Result<Latency> {
    // Warm up caches and connections first.
    for _ in 0..5 {
        http.get(url).bearer_auth(token).send().await?.error_for_status()?.bytes().await?;
    }
    Ok(latency(one_client(http, url, token, samples).await?))
}

/// The latencies of `samples` requests sent one after another.
async fn one_client(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    samples: u32,
) -> anyhow::Result<Vec<std::time::Duration>> {
    let mut times = Vec::with_capacity(samples as usize);
    for _ in 0..samples {
        let t = Instant::now();
        http.get(url).bearer_auth(token).send().await?.error_for_status()?.bytes().await?;
        times.push(t.elapsed());
    }
    Ok(times)
}

/// [`CLIENTS`] clients sending `samples` requests each, one after another; the latencies of
/// all of them.
async fn time_requests_at_once(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    samples: u32,
) -> anyhow::Result<Latency> {
    let clients = (0..CLIENTS).map(|_| one_client(http, url, token, samples));
    let times = futures::future::try_join_all(clients).await?;
    Ok(latency(times.into_iter().flatten().collect()))
}

/// The database's own ceiling: plain INSERTs of certificate-shaped rows into a scratch table
/// with the same indexes, in one transaction, without parsing, de-duplication or audit. On a
/// connection of its own, set up as the store's SQLite writer is (the journal mode is the
/// file's, WAL, already).
async fn raw_insert_rate(url: &str, rows: u32, now: i64) -> anyhow::Result<f64> {
    let mut conn = sqlx::AnyConnection::connect(url)
        .await
        .context("while connecting for the raw INSERT reference")?;
    if kind_of(url) == "sqlite" {
        conn.execute("PRAGMA busy_timeout = 10000").await?;
        conn.execute("PRAGMA synchronous = NORMAL").await?;
        conn.execute("PRAGMA cache_size = -65536").await?;
    }
    for sql in [
        "CREATE TABLE bench_raw AS SELECT * FROM certificates WHERE 1 = 0",
        "CREATE UNIQUE INDEX bench_raw_fp ON bench_raw (fingerprint_sha256)",
        "CREATE INDEX bench_raw_na ON bench_raw (not_after, id)",
        "CREATE INDEX bench_raw_owner ON bench_raw (owner_id, not_after, id)",
    ] {
        conn.execute(sql).await?;
    }
    let started = Instant::now();
    let mut tx = conn.begin().await?;
    for i in 0..rows {
        sqlx::query(
            "INSERT INTO bench_raw (id, fingerprint_sha256, serial_number, subject, issuer, \
             common_name, not_before, not_after, sans, search_text, key_type, key_bits, \
             key_curve, signature_algorithm, is_ca, self_signed, finding_flags, owner_id, \
             labels, source, der, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, \
             $8, $9, $10, 'ec', 256, 'P-256', 'ecdsa-with-SHA256', 0, 0, 0, NULL, '{}', \
             'import', $11, $12, $12)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(format!("{i:064x}"))
        .bind(format!("{i:x}"))
        .bind(format!("CN=raw{i}.bench.example"))
        .bind("CN=CMP Bench CA")
        .bind(format!("raw{i}.bench.example"))
        .bind(now)
        .bind(now + i64::from(i))
        .bind(format!(r#"[{{"type":"dns","value":"raw{i}.bench.example"}}]"#))
        .bind(format!("cn=raw{i}.bench.example\nraw{i}.bench.example"))
        .bind(format!("{i:064x}").into_bytes())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    let rate = f64::from(rows) / started.elapsed().as_secs_f64();
    conn.execute("DROP TABLE bench_raw").await?;
    conn.close().await?;
    Ok(rate)
}
