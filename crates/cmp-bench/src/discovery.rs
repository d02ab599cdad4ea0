//! Network discovery against nmap: the same loopback range, one TLS listener per address
//! (each with its own certificate), scanned by `cmpd` (a scan run through the API, results
//! stored in its inventory) and by `nmap --script ssl-cert` (Debian's), in the same run.
//! Prints endpoints per second for both, the ratio, and whether both found the same
//! certificate at every address.
//!
//! The listeners run in this process (tokio-rustls, ECDSA P-256), on port 8443, which nmap's
//! `ssl-cert` script treats as TLS without service detection.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use cmp_api::{CertificateListParams, ScanCreate, ScanSpec};
use cmp_client::Client;
use cmp_domain::ScanRunState;

use crate::harness::{BenchDatabase, ScratchDb, ServerProcess};

/// The goal of issue 17: at least ten times nmap's rate, with the same results.
const GOAL_RATIO: f64 = 10.0;
const PORT: u16 = 8443;

/// Options of the discovery benchmark.
#[derive(Debug, Clone, clap::Args)]
pub struct DiscoveryBench {
    /// Listeners (addresses of 127.77.0.0/16 from 127.77.0.1, one certificate each); the
    /// smallest CIDR range that holds them is scanned, so a few addresses are closed.
    #[arg(long, default_value_t = 1000)]
    pub endpoints: u32,
    /// Endpoints `cmpd` tries at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: u32,
    /// The database `cmpd` runs on.
    #[arg(long, value_enum, default_value = "sqlite")]
    pub database: BenchDatabase,
    /// PostgreSQL server to create the benchmark database on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub postgres_url: String,
    /// The nmap to compare with.
    #[arg(long, default_value = "nmap")]
    pub nmap: String,
}

/// The i-th listener's address and name (`i` from 0).
fn endpoint(i: u32) -> (Ipv4Addr, String) {
    let n = i + 1;
    (Ipv4Addr::new(127, 77, (n >> 8) as u8, (n & 0xff) as u8), format!("bench-{i}.test"))
}

/// The smallest range from 127.77.0.0 that holds `count` listeners (network and broadcast
/// addresses are not scanned).
fn range_for(count: u32) -> String {
    let mut prefix = 32;
    while prefix > 16 && (1u32 << (32 - prefix)) < count + 2 {
        prefix -= 1;
    }
    format!("127.77.0.0/{prefix}")
}

pub async fn run(opts: &DiscoveryBench, cmpd: &std::path::Path) -> anyhow::Result<()> {
    // A listener and a connection or two per endpoint, here and in cmpd (which inherits it).
    crate::harness::raise_open_files(u64::from(opts.endpoints) * 3 + 1024)?;
    let expected = start_listeners(opts.endpoints).await?;
    let range = range_for(opts.endpoints);
    println!("{} TLS listeners on {range} port {PORT}, one certificate each", opts.endpoints);

    let db = ScratchDb::create(opts.database, &opts.postgres_url).await?;
    let env = [("CMPD_DISCOVERY__ALLOWED_RANGES", "[\"127.77.0.0/16\"]".to_string())];
    let server = ServerProcess::start_with(cmpd, &db.url, &env)?;
    let cpu_before = server.cpu_secs();
    let cmp = scan_with_cmp(opts, &server, &range).await;
    let cmpd_cpu = server.cpu_secs() - cpu_before;
    server.stop()?;
    db.drop_db(&opts.postgres_url).await?;
    let (cmp_secs, cmp_found, addresses) = cmp?;

    let (lib_secs, lib_found) = scan_with_library(opts, &range).await?;
    let (nmap_secs, nmap_found) = scan_with_nmap(&opts.nmap, &range)?;

    let rate = |secs: f64| addresses as f64 / secs.max(0.000_001);
    println!("\n{addresses} endpoints ({} serving TLS), {:?}:", opts.endpoints, opts.database);
    println!("  {:<58} {:>9} {:>13}", "", "seconds", "endpoints/s");
    println!(
        "  {:<58} {cmp_secs:>9.2} {:>13.0}",
        format!("cmpd: scan run, stored in the inventory (concurrency {})", opts.concurrency),
        rate(cmp_secs)
    );
    println!(
        "  {:<58} {lib_secs:>9.2} {:>13.0}",
        "cmp-discovery library alone in this process (nothing stored)",
        rate(lib_secs)
    );
    println!(
        "  {:<58} {nmap_secs:>9.2} {:>13.0}",
        "nmap -n -Pn -T4 --script ssl-cert (reference)",
        rate(nmap_secs)
    );
    println!(
        "  cmpd's CPU during its run (and the listing after it): {cmpd_cpu:.2} s of {:.2} s wall",
        cmp_secs
    );
    let ratio = nmap_secs / cmp_secs.max(0.000_001);
    let same = cmp_found == expected && nmap_found == expected && lib_found == expected;
    println!(
        "  cmpd is {ratio:.1}x nmap; the same certificate at every address: {}; goal (issue 17): \
         >= {GOAL_RATIO:.0}x with identical results: {}",
        if same { "yes" } else { "NO" },
        if same && ratio >= GOAL_RATIO { "met" } else { "missed" }
    );
    if !same {
        let differ = |found: &BTreeMap<String, String>| {
            expected.iter().filter(|(k, v)| found.get(*k) != Some(v)).count()
                + found.keys().filter(|k| !expected.contains_key(*k)).count()
        };
        println!(
            "  addresses that differ from what is served: cmpd {}, nmap {}",
            differ(&cmp_found),
            differ(&nmap_found)
        );
    }
    Ok(())
}

/// Starts the listeners; what each serves, address -> common name.
async fn start_listeners(count: u32) -> anyhow::Result<BTreeMap<String, String>> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "discovery bench CA");
    let ca = rcgen::Issuer::new(ca_params, ca_key);
    let mut expected = BTreeMap::new();
    for i in 0..count {
        let (ip, name) = endpoint(i);
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(vec![name.clone()])?;
        params.distinguished_name.push(rcgen::DnType::CommonName, name.clone());
        let cert = params.signed_by(&key, &ca)?;
        let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
            .map_err(anyhow::Error::msg)?;
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind((ip, PORT))
            .await
            .with_context(|| format!("while binding {ip}:{PORT}"))?;
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(Ok(mut tls)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
                    {
                        let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
                    }
                });
            }
        });
        expected.insert(ip.to_string(), name);
    }
    Ok(expected)
}

/// Runs the scan through `cmpd`'s API; its seconds (from the run's start to its end, results
/// stored), address -> common name found, and the endpoints it tried.
async fn scan_with_cmp(
    opts: &DiscoveryBench,
    server: &ServerProcess,
    range: &str,
) -> anyhow::Result<(f64, BTreeMap<String, String>, u64)> {
    let admin = Client::new(&server.base, Some(server.token.clone()))?;
    let spec: ScanSpec = serde_json::from_value(serde_json::json!({
        "targets": [range],
        "ports": PORT.to_string(),
        "concurrency": opts.concurrency,
    }))?;
    let create = ScanCreate {
        name: "bench".into(),
        spec,
        owner: None,
        interval_secs: None,
        cron: None,
        enabled: None,
    };
    admin.create_scan(&create).await?;
    let started = Instant::now();
    let mut run = admin.run_scan("bench").await?;
    // Asked every 5 ms: the end is seen at most that late (a few percent of the run).
    while run.state == ScanRunState::Running {
        tokio::time::sleep(Duration::from_millis(5)).await;
        run = admin.scan_run("bench", &run.id).await?;
    }
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(run.state == ScanRunState::Completed, "the scan run ended {run:?}");
    let mut found = BTreeMap::new();
    let mut params = CertificateListParams { limit: Some(500), ..Default::default() };
    loop {
        let page = admin.list_certificates(&params).await?;
        for cert in &page.items {
            for location in &cert.locations {
                let address = location.address.trim_end_matches(&format!(":{PORT}"));
                found.insert(address.to_string(), cert.common_name.clone().unwrap_or_default());
            }
        }
        match page.next_cursor {
            Some(cursor) => params.cursor = Some(cursor),
            None => break,
        }
    }
    Ok((secs, found, run.progress.scanned))
}

/// Runs the scanner library in this process with the same spec; its seconds and address ->
/// common name found.
async fn scan_with_library(
    opts: &DiscoveryBench,
    range: &str,
) -> anyhow::Result<(f64, BTreeMap<String, String>)> {
    use cmp_discovery::{AllowList, EndpointOutcome, ScanEvent, Scanner, TrustStore};
    let allow = AllowList::new(&["127.77.0.0/16".to_string()], 65_536)?;
    let scanner = Scanner::new(TrustStore::new(TrustStore::system_roots(), Vec::new()), allow)?;
    let spec = cmp_discovery::ScanSpec {
        targets: vec![range.parse()?],
        ports: cmp_discovery::parse_ports(&PORT.to_string())?,
        sni_names: Vec::new(),
        sni_reverse_dns: false,
        sni_none: true,
        concurrency: opts.concurrency as usize,
        per_host: 4,
        connect_timeout: Duration::from_secs(3),
        handshake_timeout: Duration::from_secs(5),
        budget: Duration::from_secs(3600),
        probe_legacy_tls: false,
    };
    let (events, mut results) = tokio::sync::mpsc::channel(512);
    let at = rustls::pki_types::UnixTime::now();
    let started = Instant::now();
    let cancel = tokio_util::sync::CancellationToken::new();
    let scanning = scanner.run(&spec, at, events, cancel);
    let collecting = async {
        let mut found = BTreeMap::new();
        while let Some(event) = results.recv().await {
            if let ScanEvent::Endpoint(report) = event
                && let EndpointOutcome::Served(sightings) = report.outcome
            {
                for observation in sightings.into_iter().filter_map(|s| s.result.ok()) {
                    let facts = cmp_pki::parse_certificate(&observation.handshake.chain[0])?;
                    let name = facts.common_name.unwrap_or_default();
                    found.insert(report.address.ip().to_string(), name);
                }
            }
        }
        anyhow::Ok(found)
    };
    let (_, found) = tokio::join!(scanning, collecting);
    Ok((started.elapsed().as_secs_f64(), found?))
}

/// Runs nmap; its seconds and address -> common name found.
fn scan_with_nmap(nmap: &str, range: &str) -> anyhow::Result<(f64, BTreeMap<String, String>)> {
    let started = Instant::now();
    let output = std::process::Command::new(nmap)
        .args(["-n", "-Pn", "-T4", "-p", &PORT.to_string(), "--script", "ssl-cert", range])
        .output()
        .with_context(|| format!("while running {nmap} (Debian: apt-get install nmap)"))?;
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        output.status.success(),
        "nmap failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // "Nmap scan report for 127.77.0.1" ... "| ssl-cert: Subject: commonName=bench-0.test".
    let mut found = BTreeMap::new();
    let mut host = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if let Some(address) = line.strip_prefix("Nmap scan report for ") {
            host = Some(address.trim().to_string());
        } else if let Some(subject) = line.split("ssl-cert: Subject: ").nth(1)
            && let (Some(host), Some(name)) = (&host, subject.split("commonName=").nth(1))
        {
            let name = name.split('/').next().unwrap_or(name).trim();
            found.insert(host.clone(), name.to_string());
        }
    }
    Ok((secs, found))
}
