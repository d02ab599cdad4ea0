//! `cmp-bench issuance`: P-256 CSRs signed by the builtin CA, in-process (the CA and its
//! ledger) and through the HTTP API (policy, request, CA, inventory, audit), and through the
//! API with OpenBao's PKI behind a vault_pki adapter, at a few concurrency levels; beside them
//! in the same run, OpenBao's own `pki/sign` and `openssl speed ecdsap256` as the raw signing
//! limit.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use cmp_ca::{CaAdapter, Profile, SignRequest, Usage};
use cmp_domain::Clock;
use cmp_store::SqlStore;

use cmp_server::adapter::{BuiltinCas, DEFAULT_CA_NAME, ensure_default_ca};
use cmp_server::config::Config;
use cmp_server::state::SystemClock;

use crate::harness::{BenchDatabase, ScratchDb, ServerProcess, best_rate, kind_of, measure};

/// Options of the issuance benchmark.
#[derive(Debug, Clone, clap::Args)]
pub struct IssuanceBench {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
    pub concurrency: Vec<usize>,
    /// The `bao` binary for the OpenBao runs (skipped, and said so, when absent); default:
    /// `bao` on PATH, else where scripts/services-up installs it.
    #[arg(long, default_value = "bao")]
    pub bao: String,
    /// Databases the API is measured on.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    pub databases: Vec<BenchDatabase>,
    /// PostgreSQL server to create the benchmark database on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub postgres_url: String,
    /// Also measure the API with every request traced and exported over OTLP/HTTP (to a sink
    /// in this process), against the same API untraced.
    #[arg(long)]
    pub traced: bool,
}

/// An operation that POSTs `body` to `url` with one header and expects `status`.
fn post_ok(
    http: &reqwest::Client,
    url: &str,
    header: (&'static str, String),
    body: &serde_json::Value,
    status: u16,
) -> impl Fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>>
+ Send
+ Sync
+ 'static {
    let (http, url, body) = (http.clone(), url.to_string(), body.clone());
    move |_| {
        let request = http.post(&url).header(header.0, &header.1).json(&body).send();
        Box::pin(async move {
            let r = request.await?;
            anyhow::ensure!(r.status().as_u16() == status, "{} answered {}", r.url(), r.status());
            Ok(())
        })
    }
}

fn p256_csr() -> anyhow::Result<(String, Vec<u8>)> {
    let mut params = rcgen::CertificateParams::new(vec!["bench.example.test".to_string()])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let csr = params.serialize_request(&key)?;
    Ok((csr.pem()?, csr.der().to_vec()))
}

/// `openssl speed -multi <cores> -seconds 5 ecdsap256`: sign/s over all cores.
fn openssl_sign_rate() -> anyhow::Result<f64> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).to_string();
    let out = std::process::Command::new("openssl")
        .args(["speed", "-multi", &cores, "-seconds", "5", "ecdsap256"])
        .output()
        .context("while running openssl speed")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "256 bits ecdsa (nistp256)   0.0000s   0.0001s  66921.0  21374.4": sign/s is 5th from the end.
    text.lines()
        .filter(|l| l.contains("nistp256"))
        .find_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            fields.len().checked_sub(2).and_then(|i| fields.get(i)).and_then(|f| f.parse().ok())
        })
        .context("openssl speed printed no ecdsap256 line")
}

/// Runs the issuance benchmark; the API runs start the `cmpd` at `cmpd`.
pub async fn run(opts: &IssuanceBench, cmpd: &Path) -> anyhow::Result<()> {
    let (csr_pem, csr_der) = p256_csr()?;
    let mut runs = Vec::new();

    // The builtin CA in this process, with its ledger on SQLite.
    let db = ScratchDb::create(BenchDatabase::Sqlite, "").await?;
    let store = Arc::new(SqlStore::connect(&db.url, 8).await?);
    let data = tempfile::tempdir()?;
    let config = Config { data_dir: data.path().to_path_buf(), ..Config::default() };
    let secrets = cmp_server::open_secrets(&config, &SystemClock).await?;
    let cas = Arc::new(BuiltinCas::new(
        store.clone(),
        secrets,
        Arc::new(SystemClock),
        config.ca_public_url(),
    ));
    ensure_default_ca(&cas, store.as_ref(), &config.ca, 0).await?;
    let ca = cas.get(DEFAULT_CA_NAME).await?;
    // The same CA with its ledger in memory: the cost of signing alone.
    let material = cmp_ca_builtin::create_material(&Default::default(), SystemClock.now())?;
    let memory = Arc::new(cmp_ca_builtin::BuiltinCa::new(
        "bench".into(),
        "bench".into(),
        &material,
        config.ca_public_url(),
        Arc::new(cmp_ca::MemoryLedger::default()),
        Arc::new(SystemClock),
    )?);
    for (what, ca) in [("builtin CA, ledger in memory", memory), ("builtin CA, in-process", ca)] {
        for &c in &opts.concurrency {
            let (ca, csr) = (ca.clone(), csr_der.clone());
            let run_id = uuid::Uuid::now_v7();
            runs.push(
                measure(what, c, opts.seconds, move |n| {
                    let (ca, csr) = (ca.clone(), csr.clone());
                    async move {
                        let request = SignRequest {
                            replaces: None,
                            acme_solver: None,
                            request_id: format!("{run_id}-{n}"),
                            csr_der: csr,
                            profile: Profile {
                                common_name: None,
                                dns_names: vec!["bench.example.test".into()],
                                ip_addresses: Vec::new(),
                                usages: vec![Usage::ServerAuth],
                                validity_secs: 30 * 86_400,
                            },
                        };
                        ca.create_certificate(&request).await?;
                        Ok(())
                    }
                })
                .await?,
            );
        }
    }

    // OpenBao's own pki/sign on this machine: the reference, and the Vault the CMP runs use.
    let bao = match OpenBao::start(&opts.bao).await {
        Ok(bao) => Some(bao),
        Err(e) => {
            println!("OpenBao runs skipped: {e:#}");
            None
        }
    };
    let http = reqwest::Client::new();
    if let Some(bao) = &bao {
        let url = format!("{}/v1/pki/sign/bench", bao.base);
        let body =
            serde_json::json!({"csr": csr_pem, "ttl": "720h", "common_name": "bench.example.test"});
        for &c in &opts.concurrency {
            let post = post_ok(&http, &url, ("X-Vault-Token", "root".into()), &body, 200);
            runs.push(measure("OpenBao pki/sign", c, opts.seconds, post).await?);
        }
    }

    // The whole workflow through the HTTP API of a cmpd process, on each database: with the
    // builtin CA, and with OpenBao's PKI behind a vault_pki adapter.
    for database in &opts.databases {
        let api_db = ScratchDb::create(*database, &opts.postgres_url).await?;
        let server = ServerProcess::start(cmpd, &api_db.url)?;
        setup(&http, &server, "/api/v1/owners", serde_json::json!({"name": "bench"})).await?;
        let kind = kind_of(&api_db.url);
        let body = serde_json::json!({"owner": "bench", "csr": csr_pem, "validity_days": 30});
        let what = format!("CMP HTTP API ({kind})");
        measure_requests(&mut runs, opts, &http, &server, &body, &what).await?;
        if opts.traced {
            traced_api(&mut runs, opts, cmpd, *database, &body).await?;
        }
        if let Some(bao) = &bao {
            let adapter = serde_json::json!({"name": "vault", "kind": "vault_pki", "config": {
                "address": bao.base, "role": "cmp", "auth": {"method": "token", "token": "root"}}});
            setup(&http, &server, "/api/v1/adapters", adapter).await?;
            let body = serde_json::json!({"owner": "bench", "adapter": "vault", "csr": csr_pem,
                                          "validity_days": 30});
            let what = format!("CMP API -> Vault PKI ({kind})");
            measure_requests(&mut runs, opts, &http, &server, &body, &what).await?;
        }
        server.stop()?;
        api_db.drop_db(&opts.postgres_url).await?;
    }
    if let Some(bao) = bao {
        bao.stop();
    }

    let openssl = openssl_sign_rate()?;
    println!("openssl speed ecdsap256 (all cores): {openssl:.0} signs/s");
    let best = |what: &str| best_rate(&runs, what, None);
    let (api, inproc, bao) = (best("CMP HTTP"), best("builtin CA, in-process"), best("OpenBao"));
    println!("\nbest CMP HTTP API: {api:.0} certs/s; in-process CA: {inproc:.0} certs/s");
    if bao > 0.0 {
        println!("CMP HTTP API / OpenBao pki/sign: {:.2}x (goal >= 5x)", api / bao);
        // Overhead at each concurrency level: CMP in front of Vault against Vault alone.
        for &c in &opts.concurrency {
            let at = |what: &str| best_rate(&runs, what, Some(c));
            let (through, alone) = (at("CMP API -> Vault"), at("OpenBao"));
            if through > 0.0 && alone > 0.0 {
                println!(
                    "c={c}: CMP -> Vault PKI {through:.0}/s vs OpenBao pki/sign {alone:.0}/s: \
                     CMP overhead {:.0}% (goal < 20%)",
                    (1.0 - through / alone) * 100.0
                );
            }
        }
    }
    if opts.traced {
        for &c in &opts.concurrency {
            for kind in ["sqlite", "postgres"] {
                let at = |what: &str| best_rate(&runs, what, Some(c));
                let plain = at(&format!("CMP HTTP API ({kind})"));
                let traced = at(&format!("CMP HTTP API traced ({kind})"));
                if plain > 0.0 && traced > 0.0 {
                    println!(
                        "c={c} {kind}: traced {traced:.0}/s vs untraced {plain:.0}/s: x{:.2}",
                        traced / plain
                    );
                }
            }
        }
    }
    println!("CMP HTTP API / openssl raw signing: {:.1}% (goal >= 30%)", api / openssl * 100.0);
    println!("in-process CA / openssl raw signing: {:.1}%", inproc / openssl * 100.0);
    drop(db);
    Ok(())
}

/// A dev-mode OpenBao with a P-256 root and a role, for the reference.
struct OpenBao {
    child: std::process::Child,
    base: String,
}

impl OpenBao {
    async fn start(bao: &str) -> anyhow::Result<OpenBao> {
        let installed = std::env::var_os("HOME")
            .map(|home| std::path::Path::new(&home).join(".cache/cmp/tools/openbao/bin/bao"));
        let bao = match installed {
            Some(path) if bao == "bao" && path.is_file() => path.display().to_string(),
            _ => bao.to_string(),
        };
        let bao = bao.as_str();
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = std::process::Command::new(bao)
            .args(["server", "-dev", "-dev-root-token-id=root"])
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("while starting {bao} (give its path with --bao)"))?;
        let base = format!("http://127.0.0.1:{port}");
        let bao = OpenBao { child, base };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while http
            .get(format!("{}/v1/sys/health", bao.base))
            .send()
            .await
            .map(|r| !r.status().is_success())
            .unwrap_or(true)
        {
            anyhow::ensure!(Instant::now() < deadline, "OpenBao did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let call = |path: &str, body: serde_json::Value| {
            http.post(format!("{}/v1/{path}", bao.base))
                .header("X-Vault-Token", "root")
                .json(&body)
                .send()
        };
        call(
            "sys/mounts/pki",
            serde_json::json!({"type": "pki", "config": {"max_lease_ttl": "87600h"}}),
        )
        .await?
        .error_for_status()?;
        call("pki/root/generate/internal", serde_json::json!({"common_name": "Bench Root", "key_type": "ec", "key_bits": 256, "ttl": "87600h"})).await?.error_for_status()?;
        call("pki/roles/bench", serde_json::json!({"allowed_domains": ["example.test"], "allow_subdomains": true, "key_type": "any", "max_ttl": "720h"})).await?.error_for_status()?;
        // The role CMP signs with: names from CMP's checked request, not from the CSR.
        call("pki/roles/cmp", serde_json::json!({"allowed_domains": ["example.test"], "allow_subdomains": true, "key_type": "any", "max_ttl": "720h", "use_csr_common_name": false, "use_csr_sans": false})).await?.error_for_status()?;
        Ok(bao)
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The API on a fresh database of the same kind with every request traced
/// (`trace.sample_ratio` 1.0), its spans posted to an OTLP/HTTP sink in this process.
async fn traced_api(
    runs: &mut Vec<crate::harness::Run>,
    opts: &IssuanceBench,
    cmpd: &Path,
    database: BenchDatabase,
    body: &serde_json::Value,
) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let received = Arc::new(AtomicU64::new(0));
    let counted = received.clone();
    let sink = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |bytes: axum::body::Bytes| async move {
            counted.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            [("content-type", "application/x-protobuf")]
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let sink = tokio::spawn(async move { axum::serve(listener, sink).await });
    let db = ScratchDb::create(database, &opts.postgres_url).await?;
    let server =
        ServerProcess::start_with(cmpd, &db.url, &[("CMPD_TRACE__OTLP_ENDPOINT", endpoint)])?;
    let http = reqwest::Client::new();
    setup(&http, &server, "/api/v1/owners", serde_json::json!({"name": "bench"})).await?;
    let kind = kind_of(&db.url);
    let what = format!("CMP HTTP API traced ({kind})");
    measure_requests(runs, opts, &http, &server, body, &what).await?;
    server.stop()?;
    sink.abort();
    db.drop_db(&opts.postgres_url).await?;
    println!(
        "traced ({kind}): {} KiB of spans reached the sink",
        received.load(Ordering::Relaxed) / 1024
    );
    Ok(())
}

/// POSTs `body` to `path` on `server` as its admin; an error unless it succeeds.
async fn setup(
    http: &reqwest::Client,
    server: &ServerProcess,
    path: &str,
    body: serde_json::Value,
) -> anyhow::Result<()> {
    let sent = http.post(format!("{}{path}", server.base)).bearer_auth(&server.token).json(&body);
    sent.send().await?.error_for_status()?;
    Ok(())
}

/// `POST /api/v1/requests` with `body` on `server` at each concurrency, recorded as `what`.
async fn measure_requests(
    runs: &mut Vec<crate::harness::Run>,
    opts: &IssuanceBench,
    http: &reqwest::Client,
    server: &ServerProcess,
    body: &serde_json::Value,
    what: &str,
) -> anyhow::Result<()> {
    let url = format!("{}/api/v1/requests", server.base);
    let auth = ("Authorization", format!("Bearer {}", server.token));
    for &c in &opts.concurrency {
        let post = post_ok(http, &url, auth.clone(), body, 201);
        runs.push(measure(what, c, opts.seconds, post).await?);
    }
    Ok(())
}
