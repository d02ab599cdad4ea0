//! `cmpctl scan ...`: network scans (admin, security), and following a run with a progress bar.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use cmp_api::{Scan, ScanCreate, ScanPatch, ScanRun, ScanSpec};
use cmp_client::Client;
use cmp_domain::ScanRunState;
use time::format_description::well_known::Rfc3339;

use crate::output::Output;

/// `cmpctl scan ...`.
#[derive(Debug, Subcommand)]
pub enum ScanCommand {
    /// Define a scan (targets must be inside the server's discovery.allowed_ranges).
    Create {
        /// Scan name.
        name: String,
        #[command(flatten)]
        spec: SpecArgs,
        #[command(flatten)]
        schedule: ScheduleArgs,
        /// Owner (name or id) of the certificates it finds first.
        #[arg(long)]
        owner: Option<String>,
    },
    /// List scans with their latest run.
    List,
    /// Show a scan and its latest runs.
    Show {
        /// Scan name or id.
        scan: String,
    },
    /// Change a scan's schedule, or turn it on or off.
    Update {
        /// Scan name or id.
        scan: String,
        #[command(flatten)]
        schedule: ScheduleArgs,
        /// Stop the schedule (a run by hand still works).
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        /// Start the schedule again.
        #[arg(long)]
        enable: bool,
        /// Run by hand only: drop the interval or cron schedule.
        #[arg(long, conflicts_with_all = ["every", "cron"])]
        no_schedule: bool,
    },
    /// Start a run now.
    Run {
        /// Scan name or id.
        scan: String,
        /// Follow the run with a progress bar until it ends; the exit status is 0 only when
        /// it completed.
        #[arg(long)]
        wait: bool,
    },
    /// Stop the scan's running run (what it found so far stays).
    Cancel {
        /// Scan name or id.
        scan: String,
    },
    /// Delete a scan and its runs (what it found stays in the inventory).
    Delete {
        /// Scan name or id.
        scan: String,
    },
}

/// What to scan and how hard.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// A host name, address or CIDR range (repeatable).
    #[arg(long = "target", required = true)]
    targets: Vec<String>,
    /// Ports and ranges, with an optional protocol: 443,8443-8445,2525/smtp.
    #[arg(long, default_value = "443")]
    ports: String,
    /// An SNI name to try on every address (repeatable).
    #[arg(long = "sni")]
    sni_names: Vec<String>,
    /// Also try the name reverse DNS gives for each address.
    #[arg(long)]
    reverse_dns: bool,
    /// Do not try without SNI where a name is known.
    #[arg(long)]
    no_sni_none: bool,
    /// Endpoints tried at once.
    #[arg(long, default_value_t = 256)]
    concurrency: u32,
    /// Connections to one address at once.
    #[arg(long, default_value_t = 4)]
    per_host: u32,
    /// Milliseconds to wait for a connection.
    #[arg(long, default_value_t = 3000)]
    connect_timeout_ms: u32,
    /// Milliseconds for STARTTLS and the TLS handshake, each.
    #[arg(long, default_value_t = 5000)]
    handshake_timeout_ms: u32,
    /// Seconds the whole run may take.
    #[arg(long, default_value_t = 3600)]
    budget_secs: u32,
    /// Also probe each TLS endpoint for TLS 1.0 and 1.1.
    #[arg(long)]
    legacy_tls: bool,
}

/// When the scan runs by itself.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// Run every this many seconds (60 or more).
    #[arg(long, conflicts_with = "cron")]
    every: Option<i64>,
    /// Run on a cron schedule, UTC: "30 2 * * *".
    #[arg(long)]
    cron: Option<String>,
}

fn date(t: &time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn progress_text(run: &ScanRun) -> String {
    let p = &run.progress;
    let total = p.total.map(|t| t.to_string()).unwrap_or_else(|| "?".into());
    format!(
        "{}/{total} scanned, {} served, {} certificates ({} new), {} closed, {} errors, {} gone",
        p.scanned, p.served, p.certificates, p.created, p.closed, p.errors, p.gone
    )
}

fn run_fields(run: &ScanRun) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("run", run.id.clone()),
        ("state", run.state.as_str().to_string()),
        ("started", date(&run.started_at)),
        ("finished", run.finished_at.as_ref().map(date).unwrap_or_default()),
        ("progress", progress_text(run)),
    ];
    if let Some(detail) = &run.detail {
        fields.push(("detail", detail.clone()));
    }
    for sample in &run.progress.error_samples {
        fields.push(("error", sample.clone()));
    }
    fields
}

fn scan_fields(scan: &Scan) -> Vec<(&'static str, String)> {
    let schedule = match (&scan.interval_secs, &scan.cron) {
        (Some(secs), _) => format!("every {secs} s"),
        (None, Some(cron)) => format!("cron {cron}"),
        (None, None) => "by hand".into(),
    };
    vec![
        ("id", scan.id.clone()),
        ("name", scan.name.clone()),
        ("targets", scan.spec.targets.join(", ")),
        ("ports", scan.spec.ports.clone()),
        ("sni", scan.spec.sni_names.join(", ")),
        ("owner", scan.owner.as_ref().map(|o| o.name.clone()).unwrap_or_default()),
        ("schedule", format!("{schedule}{}", if scan.enabled { "" } else { " (disabled)" })),
        ("next run", scan.next_run_at.as_ref().map(date).unwrap_or_default()),
    ]
}

/// `cmpctl scan ...`.
pub async fn scan(client: &Client, out: &Output, cmd: ScanCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ScanCommand::Create { name, spec, schedule, owner } => {
            let spec = ScanSpec {
                targets: spec.targets,
                ports: spec.ports,
                sni_names: spec.sni_names,
                sni_reverse_dns: spec.reverse_dns,
                sni_none: !spec.no_sni_none,
                concurrency: spec.concurrency,
                per_host: spec.per_host,
                connect_timeout_ms: spec.connect_timeout_ms,
                handshake_timeout_ms: spec.handshake_timeout_ms,
                budget_secs: spec.budget_secs,
                probe_legacy_tls: spec.legacy_tls,
            };
            let body = ScanCreate {
                name,
                spec,
                owner,
                interval_secs: schedule.every,
                cron: schedule.cron,
                enabled: None,
            };
            let created = client.create_scan(&body).await?;
            out.value(&created, &scan_fields(&created))?;
        }
        ScanCommand::List => {
            let scans = client.scans().await?;
            let rows = scans
                .iter()
                .map(|s| {
                    let last = s.last_run.as_ref();
                    vec![
                        s.name.clone(),
                        s.spec.targets.join(","),
                        s.spec.ports.clone(),
                        last.map(|r| r.state.as_str().to_string()).unwrap_or_else(|| "-".into()),
                        last.map(|r| date(&r.started_at)).unwrap_or_default(),
                        s.next_run_at.as_ref().map(date).unwrap_or_default(),
                    ]
                })
                .collect();
            let headers = ["NAME", "TARGETS", "PORTS", "LAST RUN", "STARTED", "NEXT RUN"];
            out.table_of(&scans, &headers, rows)?;
        }
        ScanCommand::Show { scan } => {
            let found = client.scan(&scan).await?;
            let runs = client.scan_runs(&found.id, 5).await?;
            let mut fields = scan_fields(&found);
            for run in &runs {
                fields.push((
                    "run",
                    format!(
                        "{} {} {}",
                        date(&run.started_at),
                        run.state.as_str(),
                        progress_text(run)
                    ),
                ));
            }
            out.value(&serde_json::json!({"scan": found, "runs": runs}), &fields)?;
        }
        ScanCommand::Update { scan, schedule, disable, enable, no_schedule } => {
            let mut patch = ScanPatch::default();
            if no_schedule {
                patch.interval_secs = Some(None);
                patch.cron = Some(None);
            }
            if let Some(every) = schedule.every {
                patch.interval_secs = Some(Some(every));
                patch.cron = Some(None);
            }
            if let Some(cron) = schedule.cron {
                patch.cron = Some(Some(cron));
                patch.interval_secs = Some(None);
            }
            if disable || enable {
                patch.enabled = Some(enable);
            }
            let updated = client.update_scan(&scan, &patch).await?;
            out.value(&updated, &scan_fields(&updated))?;
        }
        ScanCommand::Run { scan, wait } => {
            let run = client.run_scan(&scan).await?;
            if !wait {
                out.value(&run, &run_fields(&run))?;
                return Ok(ExitCode::SUCCESS);
            }
            let ended = follow(client, &scan, run).await?;
            out.value(&ended, &run_fields(&ended))?;
            if ended.state != ScanRunState::Completed {
                return Ok(ExitCode::FAILURE);
            }
        }
        ScanCommand::Cancel { scan } => {
            let run = client.cancel_scan(&scan).await?;
            out.done(&format!("run {} of scan {scan} is stopping", run.id))?;
        }
        ScanCommand::Delete { scan } => {
            client.delete_scan(&scan).await?;
            out.done(&format!("scan {scan} deleted"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Polls a run every half second, drawing its progress on stderr (hidden when stderr is not
/// a terminal), until it ends.
async fn follow(client: &Client, scan: &str, mut run: ScanRun) -> anyhow::Result<ScanRun> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} endpoints  {msg}",
        )?
        .progress_chars("=> "),
    );
    while run.state == ScanRunState::Running {
        let p = &run.progress;
        bar.set_length(p.total.unwrap_or(0));
        bar.set_position(p.scanned);
        bar.set_message(format!("{} certificates, {} errors", p.certificates, p.errors));
        tokio::time::sleep(Duration::from_millis(500)).await;
        run = client.scan_run(scan, &run.id).await?;
    }
    bar.finish_and_clear();
    Ok(run)
}
