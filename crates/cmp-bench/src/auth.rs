//! Bearer JWT validation on the request path: an authenticated list call with a provider's JWT
//! against the same call with a `cmp_` API token, same server, same run, interleaved.

use anyhow::Context;
use cmp_api::{CertificateListParams, TokenCreate};
use cmp_client::Client;
use cmp_domain::Role;
use cmp_testkit::oidc::{OidcOptions, OidcProvider, WEB_CLIENT_ID, WEB_CLIENT_SECRET};

use crate::harness::{BenchDatabase, Run, ScratchDb, ServerProcess, best_rate, measure};

/// Issue 15's goal: JWT requests at least this share of API-token requests.
const GOAL: f64 = 0.9;

/// Options of the authentication benchmark.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthBench {
    /// Seconds per measured run (each credential runs twice, interleaved).
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Requests in flight.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// The database `cmpd` runs on.
    #[arg(long, value_enum, default_value = "sqlite")]
    pub database: BenchDatabase,
    /// PostgreSQL server to create the benchmark database on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub postgres_url: String,
}

pub async fn run(opts: &AuthBench, cmpd: &std::path::Path) -> anyhow::Result<()> {
    let op = OidcProvider::start(OidcOptions::default()).await;
    let work = tempfile::tempdir()?;
    let config = work.path().join("cmpd.toml");
    std::fs::write(
        &config,
        format!(
            "[[auth.oidc.providers]]\nname = \"corp\"\nissuer = {:?}\nclient_id = {:?}\n\
             client_secret = {:?}\naudience = {:?}\n[auth.oidc.providers.roles]\n\
             cmp-automation = \"security\"\n",
            op.issuer, WEB_CLIENT_ID, WEB_CLIENT_SECRET, op.options.audience
        ),
    )?;
    let db = ScratchDb::create(opts.database, &opts.postgres_url).await?;
    let env = [("CMPD_CONFIG", config.display().to_string())];
    let server = ServerProcess::start_with(cmpd, &db.url, &env)?;
    let result = compare(opts, &server, &op).await;
    server.stop()?;
    db.drop_db(&opts.postgres_url).await?;
    let runs = result?;
    let token = best_rate(&runs, "list, cmp_ token", None);
    let jwt = best_rate(&runs, "list, provider JWT", None);
    let ratio = jwt / token.max(0.001);
    println!(
        "\nbearer JWT against cmp_ token, GET /api/v1/certificates ({:?}, c={}):",
        opts.database, opts.concurrency
    );
    println!("  cmp_ token (reference) {token:>8.0} req/s");
    println!("  provider JWT           {jwt:>8.0} req/s  = {ratio:.2}x (goal >= {GOAL}x)");
    Ok(())
}

async fn compare(
    opts: &AuthBench,
    server: &ServerProcess,
    op: &OidcProvider,
) -> anyhow::Result<Vec<Run>> {
    let admin = Client::new(&server.base, Some(server.token.clone()))?;
    let token = admin
        .create_token(&TokenCreate {
            name: "bench".into(),
            role: Role::Security,
            owners: vec![],
            expires_in_days: None,
        })
        .await?
        .token;
    let jwt = op.service_token().await;
    let as_token = Client::new(&server.base, Some(token.expose().clone()))?;
    let as_jwt = Client::new(&server.base, Some(jwt))?;
    let me = as_jwt.me().await.context("the server does not accept the provider's JWT")?;
    anyhow::ensure!(me.role == Role::Security, "the JWT maps to {:?}", me.role);
    let params = CertificateListParams { limit: Some(10), ..Default::default() };
    let mut runs = Vec::new();
    for _ in 0..2 {
        for (what, client) in [("list, cmp_ token", &as_token), ("list, provider JWT", &as_jwt)] {
            let (client, params) = (client.clone(), params.clone());
            let run = measure(what, opts.concurrency, opts.seconds, move |_| {
                let (client, params) = (client.clone(), params.clone());
                async move {
                    client.list_certificates(&params).await?;
                    Ok(())
                }
            })
            .await?;
            runs.push(run);
        }
    }
    Ok(runs)
}
