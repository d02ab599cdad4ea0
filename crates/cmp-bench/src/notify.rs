//! `cmp-bench notify`: notification rules evaluated over a large inventory (generated facts
//! through the store, as `cmp-bench inventory` loads them), on SQLite and PostgreSQL: the
//! first evaluation (which records what it tells), the passes until everything due is told,
//! and a pass with nothing new, the everyday case; the process's memory; then `/metrics`
//! scraped from a `cmpd` serving that database, with per-certificate series off and on.
//! References from the same run: an index range count of the certificates within 30 days of
//! expiry, and `/healthz` on the same server.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use cmp_domain::{Clock, NotificationEvent};
use cmp_server::state::SystemClock;
use cmp_store::{
    AuditContext, NewNotificationRule, NewOwner, NotificationStore, OwnerStore, SqlStore,
    StatsStore,
};

use crate::harness::{BenchDatabase, ScratchDb, ServerProcess, kind_of, latency, rss_kib};
use crate::inventory::{OWNERS, bench_state, load_generated, time_requests};

/// Options of the notification benchmark.
#[derive(Debug, Clone, clap::Args)]
pub struct NotifyBench {
    /// Certificates in the inventory.
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u32,
    /// Databases to run on.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    pub databases: Vec<BenchDatabase>,
    /// PostgreSQL server to create the benchmark database on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub postgres_url: String,
    /// Timed scrapes of `/metrics`.
    #[arg(long, default_value_t = 50)]
    pub samples: u32,
}

pub async fn run(opts: &NotifyBench, cmpd: &Path) -> anyhow::Result<()> {
    println!("# cmp-bench notify: {} certificates; server: {}", opts.count, cmpd.display());
    for db in &opts.databases {
        let scratch = ScratchDb::create(*db, &opts.postgres_url).await?;
        let result = notify_on(opts, cmpd, &scratch.url).await;
        scratch.drop_db(&opts.postgres_url).await?;
        result.with_context(|| format!("while benchmarking {db:?}"))?;
    }
    Ok(())
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn notify_on(opts: &NotifyBench, cmpd: &Path, url: &str) -> anyhow::Result<()> {
    let store = Arc::new(SqlStore::connect(url, 8).await?);
    let now = SystemClock.now().unix_timestamp();
    let ctx = AuditContext { actor: "bench".into(), request_id: None, now_us: now * 1_000_000 };
    let mut owners = Vec::new();
    for t in 0..OWNERS {
        let owner = NewOwner { name: format!("team{t}"), email: None, description: None };
        owners.push(store.create_owner(&ctx, &owner).await?.id);
    }
    let started = Instant::now();
    load_generated(&store, &ctx, &owners, 0..opts.count, now).await?;
    println!(
        "{}: loaded {} certificates in {:.0} s",
        kind_of(url),
        opts.count,
        started.elapsed().as_secs_f64()
    );

    // What autovacuum does within a minute or so of a bulk load: the evaluation's plans on
    // PostgreSQL depend on these statistics.
    if kind_of(url) == "postgres" {
        sqlx::query("ANALYZE certificates").execute(&sqlx::AnyPool::connect(url).await?).await?;
    }

    // One rule for everyone, one per owner: the evaluation reads the inventory once per rule.
    let rule = |name: String, owner_id: Option<String>| NewNotificationRule {
        id: uuid::Uuid::now_v7().to_string(),
        name,
        owner_id,
        events: NotificationEvent::DEFAULT.into_iter().filter(|e| !e.is_global_only()).collect(),
        channel: serde_json::json!({"kind": "webhook", "url": "http://127.0.0.1:9/none"}),
        has_secret: false,
        thresholds: cmp_domain::DEFAULT_EXPIRY_THRESHOLDS.to_vec(),
        enabled: true,
    };
    store.create_notification_rule(&ctx, &rule("everyone".into(), None)).await?;
    store.create_notification_rule(&ctx, &rule("team7".into(), Some(owners[7].clone()))).await?;

    let state = bench_state(url, store.clone()).await?;
    let t = Instant::now();
    let first = state.notifier.evaluate(now).await?;
    let first_ms = ms(t.elapsed());
    let told = |made: &[cmp_store::Delivery]| made.iter().map(|d| d.notice_count).sum::<i64>();
    let mut notices = told(&first);
    let mut passes = 1;
    let mut drain_ms = Vec::new();
    loop {
        let t = Instant::now();
        let made = state.notifier.evaluate(now).await?;
        let elapsed = ms(t.elapsed());
        if made.is_empty() {
            break;
        }
        drain_ms.push(elapsed);
        notices += told(&made);
        passes += 1;
    }
    let mut steady = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        anyhow::ensure!(state.notifier.evaluate(now).await?.is_empty(), "nothing new to tell");
        steady.push(t.elapsed());
    }
    let steady = latency(steady);
    // The reference: counting the certificates within the widest threshold, on the same index.
    let t = Instant::now();
    let mut b = sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM certificates WHERE not_after > $1 AND not_after <= $2",
    );
    b = b.bind(now).bind(now + 30 * 86_400);
    let within_30: i64 = b.fetch_one(&sqlx::AnyPool::connect(url).await?).await?;
    let count_ms = ms(t.elapsed());
    let (rss, peak) = rss_kib();
    let kind = kind_of(url);
    println!("## {kind}");
    println!("| measure | value | reference | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| first evaluation (2 rules, records what it tells) | {first_ms:.0} ms, {} notices | count of {within_30} certificates within 30 days: {count_ms:.1} ms | x{:.0} |",
        told(&first),
        first_ms / count_ms
    );
    let drain_max = drain_ms.iter().copied().fold(0.0, f64::max);
    println!(
        "| passes until all is told | {passes} passes, {notices} notices, slowest after the first {drain_max:.0} ms | | |"
    );
    println!(
        "| evaluation with nothing new (everyday) | p50 {:.0} ms, max {:.0} ms | count: {count_ms:.1} ms | x{:.1} |",
        steady.p50_ms,
        steady.p99_ms,
        steady.p99_ms / count_ms
    );
    println!(
        "| bench process RSS (evaluator; the server is not running) | {} MiB (peak {} MiB) | | |",
        rss / 1024,
        peak / 1024
    );
    // The per-certificate series' query, timed here: a server reads it with the counts.
    let t = Instant::now();
    let series = store.expiry_series(10_000).await?;
    println!(
        "| per-certificate series read (10,000 soonest, counted in the background) | {:.0} ms, {} series | | |",
        ms(t.elapsed()),
        series.len()
    );
    // The server would send what is pending to the rules' unreachable webhook: gone with them.
    for rule in store.list_notification_rules().await? {
        store.delete_notification_rule(&ctx, &rule.id).await?;
    }
    drop(state);
    drop(store);

    // (A second server on the same database would find no bootstrap token: one, with the
    // per-certificate series off, as the goal is stated.)
    let env = [
        ("CMPD_METRICS__PER_CERTIFICATE", "false".to_string()),
        ("CMPD_NOTIFY__INTERVAL_SECS", "86400".to_string()),
    ];
    let server = ServerProcess::start_with(cmpd, url, &env)?;
    let http = reqwest::Client::new();
    let metrics = format!("{}/metrics", server.base);
    let t = Instant::now();
    let mut text = http.get(&metrics).send().await?.error_for_status()?.text().await?;
    let first_scrape = ms(t.elapsed());
    // The first count goes on after the first scrape's bounded wait: when it is there.
    while !text.contains("# TYPE cmp_certificates_by_owner") {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        text = http.get(&metrics).send().await?.error_for_status()?.text().await?;
    }
    let counted = ms(t.elapsed());
    let scrapes = time_requests(&http, &metrics, &server.token, opts.samples).await?;
    let healthz =
        time_requests(&http, &format!("{}/healthz", server.base), &server.token, opts.samples)
            .await?;
    let (rss, _) = server.rss_kib();
    println!(
        "| /metrics, per-certificate series off ({} KB) | first after start {first_scrape:.0} ms (the database's figures from {counted:.0} ms); then p50 {:.1} ms, p99 {:.1} ms | /healthz p99 {:.2} ms | p99 x{:.1} |",
        text.len() / 1024,
        scrapes.p50_ms,
        scrapes.p99_ms,
        healthz.p99_ms,
        scrapes.p99_ms / healthz.p99_ms
    );
    println!("| server RSS after the scrapes | {} MiB | | |", rss / 1024);
    server.stop()?;
    println!();
    Ok(())
}
