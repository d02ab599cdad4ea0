//! `cmp-bench acme`: orders against a running ACME CA (bench/acme.sh starts Pebble and
//! pebble-challtestsrv), proved over http-01, at a few concurrency levels. The reference, in
//! the same run against the same CA: the cmp-acme library alone (one account, CMP's http-01
//! responder, no database). Then the whole workflow through the HTTP API of a cmpd process with
//! an acme adapter (policy, request, order journal, ledger, inventory, audit), on each database.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use cmp_acme::{AcmeClient, AcmeSettings, Http01Responder, SolverConfig, Solvers};
use cmp_server::state::SystemClock;

use crate::harness::{BenchDatabase, Run, ScratchDb, ServerProcess, best_rate, kind_of, measure};

/// Options of the ACME benchmark.
#[derive(Debug, Clone, clap::Args)]
pub struct AcmeBench {
    /// The CA's directory URL.
    #[arg(long)]
    pub directory: String,
    /// PEM file of the certificate(s) to trust for the directory's TLS.
    #[arg(long)]
    pub ca_bundle: Option<std::path::PathBuf>,
    /// Port on 127.0.0.1 where the CA validates http-01 (Pebble's httpPort); names resolve to
    /// 127.0.0.1.
    #[arg(long)]
    pub http01_port: u16,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    pub concurrency: Vec<usize>,
    /// Databases the API is measured on.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    pub databases: Vec<BenchDatabase>,
    /// PostgreSQL server to create the benchmark database on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub postgres_url: String,
}

/// A P-256 CSR for one name, DER and PEM.
fn csr_for(name: &str) -> anyhow::Result<(Vec<u8>, String)> {
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let csr = params.serialize_request(&key)?;
    Ok((csr.der().to_vec(), csr.pem()?))
}

/// Runs the ACME benchmark; the API runs start the `cmpd` at `cmpd`.
pub async fn run(opts: &AcmeBench, cmpd: &Path) -> anyhow::Result<()> {
    let ca_bundle = match &opts.ca_bundle {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("while reading {}", path.display()))?,
        ),
        None => None,
    };
    let settings = AcmeSettings {
        directory_url: opts.directory.clone(),
        contact_email: None,
        ca_bundle: ca_bundle.clone(),
        profile: None,
        order_timeout_secs: 60,
        send_not_after: true,
    };
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let run_tag = run_id.get(run_id.len() - 8..).unwrap_or("bench").to_string();
    println!("# cmp-bench acme: {} ({} s per measurement)", opts.directory, opts.seconds);
    let mut runs: Vec<Run> = Vec::new();

    // The reference: the cmp-acme library with its own responder, one account.
    let http01 = SocketAddr::from(([127, 0, 0, 1], opts.http01_port));
    let responder = Arc::new(Http01Responder::default());
    let listener = tokio::net::TcpListener::bind(http01)
        .await
        .with_context(|| format!("while binding the http-01 port {http01}"))?;
    let serving = tokio::spawn(responder.clone().serve(listener));
    let client = Arc::new(AcmeClient::register(&settings, None, Arc::new(SystemClock)).await?.0);
    let solvers = Arc::new(Solvers::new(
        &[SolverConfig::Http01 { id: None, names: Vec::new() }],
        Some(&responder),
    )?);
    for &c in &opts.concurrency {
        let (client, solvers, tag) = (client.clone(), solvers.clone(), run_tag.clone());
        let what = "cmp-acme library (reference)";
        runs.push(
            measure(what, c, opts.seconds, move |n| {
                let (client, solvers) = (client.clone(), solvers.clone());
                let name = format!("l{n}-{tag}.bench.test");
                async move {
                    let (csr, _) = csr_for(&name)?;
                    let mut order = client.new_order(&[name], None).await?;
                    client.complete(&mut order, &solvers, None, &csr).await?;
                    Ok(())
                }
            })
            .await?,
        );
    }
    serving.abort();
    let _ = serving.await; // the port is free once the task (and its listener) is gone

    // The whole workflow through a cmpd process, whose own responder takes the port over.
    let http = reqwest::Client::new();
    for database in &opts.databases {
        let db = ScratchDb::create(*database, &opts.postgres_url).await?;
        let env = [("CMPD_ACME__HTTP01_LISTEN", http01.to_string())];
        let server = ServerProcess::start_with(cmpd, &db.url, &env)?;
        let auth = format!("Bearer {}", server.token);
        let setup = |path: &str, body: serde_json::Value| {
            http.post(format!("{}{path}", server.base))
                .header("Authorization", auth.clone())
                .json(&body)
                .send()
        };
        setup("/api/v1/owners", serde_json::json!({"name": "bench"})).await?.error_for_status()?;
        let adapter = serde_json::json!({"name": "acme", "kind": "acme", "config": {
            "directory_url": opts.directory, "ca_bundle": ca_bundle,
            "solvers": [{"challenge": "http-01"}]}});
        setup("/api/v1/adapters", adapter).await?.error_for_status()?;
        let kind = kind_of(&db.url);
        let url = format!("{}/api/v1/requests", server.base);
        for &c in &opts.concurrency {
            let (http, url, auth, tag) = (http.clone(), url.clone(), auth.clone(), run_tag.clone());
            let what = format!("CMP HTTP API -> ACME ({kind})");
            runs.push(
                measure(&what, c, opts.seconds, move |n| {
                    let (http, url, auth) = (http.clone(), url.clone(), auth.clone());
                    let name = format!("a{n}-{kind}-{tag}.bench.test");
                    async move {
                        let (_, csr) = csr_for(&name)?;
                        let body = serde_json::json!({"owner": "bench", "adapter": "acme",
                                                      "csr": csr});
                        let r = http.post(&url).header("Authorization", auth).json(&body).send();
                        let answer: serde_json::Value = r.await?.error_for_status()?.json().await?;
                        anyhow::ensure!(answer["state"] == "issued", "not issued: {answer}");
                        Ok(())
                    }
                })
                .await?,
            );
        }
        server.stop()?;
        db.drop_db(&opts.postgres_url).await?;
    }

    println!();
    if let Some(one) = runs.iter().find(|r| r.concurrency == 1 && r.what.starts_with("cmp-acme")) {
        println!(
            "one order (library, c=1): p50 {:.0} ms, p99 {:.0} ms",
            one.latency.p50_ms, one.latency.p99_ms
        );
    }
    for &c in &opts.concurrency {
        let at = |what: &str| best_rate(&runs, what, Some(c));
        let (library, api) = (at("cmp-acme library"), at("CMP HTTP API"));
        if library > 0.0 {
            println!(
                "c={c}: CMP HTTP API {api:.1} orders/s vs library {library:.1} orders/s: {:.2}x",
                api / library
            );
        }
    }
    Ok(())
}
