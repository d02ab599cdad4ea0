//! Network discovery, without HTTP: scan definitions checked against the allowed ranges, runs
//! (by hand or on a schedule, one per scan at a time on every replica), and the loop that
//! feeds a run's results into the inventory in batches as they arrive.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cmp_api::{ChainTrust, EndpointFacts, ProblemItem, ScanSpec};
use cmp_discovery::{
    AllowList, ChainVerdict, EndpointOutcome, EndpointReport, ScanEnd, ScanEvent, Scanner, Target,
    TrustStore,
};
use cmp_domain::{Clock, ScanProgress, ScanRunState};
use cmp_store::{
    CertificateSource, EndpointBatch, EndpointSighting, NewCertificate, NewScan, RunTrigger, Scan,
    ScanRun, ScanUpdate, Store, StoredSchedule,
};
use rustls::pki_types::{CertificateDer, UnixTime};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::DiscoveryConfig;
use crate::core::context::system_context;
use crate::inventory::InventoryError;
use crate::state::unix_micros;

type Result<T> = std::result::Result<T, InventoryError>;

/// Results stored per transaction, and the longest a result waits to be stored.
const BATCH: usize = 200;
const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// A running run writes its progress (its heartbeat) at least this often; one silent for
/// [`STALE_AFTER_SECS`] is taken for dead.
const HEARTBEAT: Duration = Duration::from_secs(1);
const STALE_AFTER_SECS: i64 = 60;

/// Scans and their runs.
pub struct Discovery {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: DiscoveryConfig,
    allow: AllowList,
    /// Runs of this process, to cancel at once (other replicas' see the flag in the database).
    running: Mutex<HashMap<String, CancellationToken>>,
    slots: Arc<Semaphore>,
    /// Set when the server stops: its runs end as interrupted, not cancelled.
    stopping: std::sync::atomic::AtomicBool,
}

/// A checked scan definition: what is stored, and what the scanner gets.
pub struct CheckedSpec {
    pub json: serde_json::Value,
    pub scan: cmp_discovery::ScanSpec,
}

/// A schedule as asked: an interval, a cron expression, or neither.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    pub interval_secs: Option<i64>,
    pub cron: Option<String>,
    pub enabled: bool,
}

impl Discovery {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: DiscoveryConfig,
    ) -> std::result::Result<Discovery, String> {
        let allow = AllowList::new(&config.allowed_ranges, config.max_range_addresses)
            .map_err(|e| format!("discovery.allowed_ranges: {e}"))?;
        let slots = Arc::new(Semaphore::new(config.max_concurrent_runs.max(1)));
        Ok(Discovery {
            store,
            clock,
            config,
            allow,
            running: Mutex::default(),
            slots,
            stopping: Default::default(),
        })
    }

    fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    /// Checks a scan definition; every refused entry is named.
    pub fn check_spec(&self, spec: &ScanSpec) -> Result<CheckedSpec> {
        let mut problems = Vec::new();
        let mut refuse = |pointer: String, reason: &str, detail: String| {
            problems.push(ProblemItem { pointer, reason: reason.into(), detail });
        };
        if spec.targets.is_empty() {
            refuse("spec/targets".into(), "empty", "a scan needs at least one target".into());
        }
        if spec.targets.len() > 1000 {
            refuse("spec/targets".into(), "too_many", "at most 1000 targets".into());
        }
        let mut targets = Vec::new();
        for (i, item) in spec.targets.iter().enumerate().take(1000) {
            match Target::from_str(item).and_then(|t| self.allow.check(&t).map(|()| t)) {
                Ok(target) => targets.push(target),
                Err(e) => refuse(format!("spec/targets/{i}"), "refused_target", e.to_string()),
            }
        }
        let ports = cmp_discovery::parse_ports(&spec.ports)
            .map_err(|e| refuse("spec/ports".into(), "bad_ports", e.to_string()))
            .unwrap_or_default();
        if spec.sni_names.len() > 20 {
            refuse("spec/sni_names".into(), "too_many", "at most 20 SNI names".into());
        }
        for (i, name) in spec.sni_names.iter().enumerate() {
            if !cmp_discovery::targets::is_dns_name(name) {
                refuse(
                    format!("spec/sni_names/{i}"),
                    "bad_name",
                    format!("{name:?} is not a DNS name"),
                );
            }
        }
        let mut within = |field: &str, value: u32, range: std::ops::RangeInclusive<u32>| {
            if !range.contains(&value) {
                let detail = format!(
                    "{field} is {value}; it goes from {} to {}",
                    range.start(),
                    range.end()
                );
                refuse(format!("spec/{field}"), "out_of_range", detail);
            }
        };
        within("concurrency", spec.concurrency, 1..=4096);
        within("per_host", spec.per_host, 1..=64);
        within("connect_timeout_ms", spec.connect_timeout_ms, 100..=60_000);
        within("handshake_timeout_ms", spec.handshake_timeout_ms, 100..=60_000);
        within("budget_secs", spec.budget_secs, 1..=86_400);
        if !problems.is_empty() {
            let detail = match problems.as_slice() {
                [one] => format!("{}: {}", one.pointer, one.detail),
                many => {
                    format!("{} entries of the scan were refused; nothing was stored", many.len())
                }
            };
            return Err(InventoryError::Refused { detail, items: problems });
        }
        let json = serde_json::to_value(spec)
            .map_err(|e| InventoryError::Internal(format!("scan spec as JSON: {e}")))?;
        let scan = cmp_discovery::ScanSpec {
            targets,
            ports,
            sni_names: spec.sni_names.clone(),
            sni_reverse_dns: spec.sni_reverse_dns,
            sni_none: spec.sni_none,
            concurrency: spec.concurrency as usize,
            per_host: spec.per_host as usize,
            connect_timeout: Duration::from_millis(spec.connect_timeout_ms.into()),
            handshake_timeout: Duration::from_millis(spec.handshake_timeout_ms.into()),
            budget: Duration::from_secs(spec.budget_secs.into()),
            probe_legacy_tls: spec.probe_legacy_tls,
        };
        Ok(CheckedSpec { json, scan })
    }

    /// When a schedule starts its next run after `after`; `None` without a schedule.
    pub fn next_run(schedule: &Schedule, after: i64) -> Result<Option<i64>> {
        if !schedule.enabled {
            return Ok(None);
        }
        match (schedule.interval_secs, &schedule.cron) {
            (Some(_), Some(_)) => {
                Err(InventoryError::bad_field("cron", "give interval_secs or cron, not both"))
            }
            (Some(secs), None) if !(60..=366 * 86_400).contains(&secs) => {
                Err(InventoryError::bad_field("interval_secs", "from 60 seconds to 366 days"))
            }
            (Some(secs), None) => Ok(Some(after + secs)),
            (None, Some(expression)) => {
                let schedule = parse_cron(expression)?;
                let after = chrono::DateTime::from_timestamp(after, 0).unwrap_or_default();
                Ok(schedule.after(&after).next().map(|t| t.timestamp()))
            }
            (None, None) => Ok(None),
        }
    }

    /// Creates a scan.
    pub async fn create(
        &self,
        ctx: &cmp_store::AuditContext,
        name: String,
        spec: &ScanSpec,
        owner_id: Option<String>,
        schedule: Schedule,
    ) -> Result<Scan> {
        check_name(&name)?;
        let checked = self.check_spec(spec)?;
        let next_run_at = Self::next_run(&schedule, self.now())?;
        let new = NewScan {
            name,
            spec: checked.json,
            owner_id,
            interval_secs: schedule.interval_secs,
            cron: schedule.cron,
            enabled: schedule.enabled,
            next_run_at,
        };
        Ok(self.store.create_scan(ctx, &new).await?)
    }

    /// Changes a scan; a new schedule counts from now.
    pub async fn update(
        &self,
        ctx: &cmp_store::AuditContext,
        id: &str,
        mut update: ScanUpdate,
        spec: Option<&ScanSpec>,
        schedule: Option<Schedule>,
    ) -> Result<Scan> {
        if let Some(name) = &update.name {
            check_name(name)?;
        }
        if let Some(spec) = spec {
            update.spec = Some(self.check_spec(spec)?.json);
        }
        if let Some(s) = schedule {
            let next = Self::next_run(&s, self.now())?;
            update.schedule = Some(StoredSchedule {
                interval_secs: s.interval_secs,
                cron: s.cron,
                enabled: s.enabled,
                next_run_at: next,
            });
        }
        Ok(self.store.update_scan(ctx, id, &update).await?)
    }

    /// Starts a run by hand; it goes on in the background.
    pub async fn run_now(
        self: &Arc<Self>,
        ctx: &cmp_store::AuditContext,
        id: &str,
    ) -> Result<ScanRun> {
        let scan = self.store.get_scan(id).await?;
        let run = self
            .store
            .start_scan_run(ctx, &scan.id, RunTrigger::Manual)
            .await?
            .ok_or_else(|| InventoryError::Internal("a manual run was not started".into()))?;
        self.spawn(scan, run.clone());
        Ok(run)
    }

    /// Asks a scan's run to stop: at once in this process, within a heartbeat elsewhere.
    pub async fn cancel(&self, ctx: &cmp_store::AuditContext, id: &str) -> Result<ScanRun> {
        let run = self.store.request_scan_cancel(ctx, id).await?;
        if let Some(token) = self.running.lock().unwrap_or_else(|p| p.into_inner()).get(&run.id) {
            token.cancel();
        }
        Ok(run)
    }

    /// Starts the scans that are due and closes runs whose process died, every
    /// `discovery.scheduler_interval_secs`, until `stop`.
    pub async fn schedule(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        // Read the system's roots now rather than in the first run's time.
        tokio::task::spawn_blocking(|| {
            system_roots();
        });
        let every = Duration::from_secs(self.config.scheduler_interval_secs.max(1));
        loop {
            if let Err(error) = self.scheduler_pass().await {
                tracing::warn!(error = %error, "discovery scheduler pass failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => break,
            }
        }
        // Stop this process's runs; what they found so far is stored.
        self.stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        for token in self.running.lock().unwrap_or_else(|p| p.into_inner()).values() {
            token.cancel();
        }
    }

    /// One pass of the scheduler.
    pub async fn scheduler_pass(self: &Arc<Self>) -> Result<()> {
        let now = self.now();
        let ctx = system_context("system:discovery", unix_micros(self.clock.now()));
        let interrupted = self.store.interrupt_stale_runs(&ctx, now - STALE_AFTER_SECS).await?;
        if interrupted > 0 {
            tracing::warn!(interrupted, "scan runs whose process stopped were closed");
        }
        for scan in self.store.due_scans(now).await? {
            let Some(due) = scan.next_run_at else { continue };
            let schedule = Schedule {
                interval_secs: scan.interval_secs,
                cron: scan.cron.clone(),
                enabled: scan.enabled,
            };
            // A scan still running when its next run comes skips it, as cron does.
            let next = Self::next_run(&schedule, now.max(due))?;
            match self
                .store
                .start_scan_run(&ctx, &scan.id, RunTrigger::Schedule { due, next })
                .await
            {
                Ok(Some(run)) => self.spawn(scan, run),
                Ok(None) => {}
                Err(cmp_store::StoreError::Conflict(_)) => {
                    let update = ScanUpdate {
                        schedule: Some(StoredSchedule {
                            interval_secs: scan.interval_secs,
                            cron: scan.cron.clone(),
                            enabled: scan.enabled,
                            next_run_at: next,
                        }),
                        ..ScanUpdate::default()
                    };
                    self.store.update_scan(&ctx, &scan.id, &update).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn spawn(self: &Arc<Self>, scan: Scan, run: ScanRun) {
        let cancel = CancellationToken::new();
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(run.id.clone(), cancel.clone());
        let this = self.clone();
        tokio::spawn(async move {
            let run_id = run.id.clone();
            let (state, progress, detail) = match this.wait_for_slot(&run_id, &cancel).await {
                Some(_slot) => this.execute(&scan, &run, cancel).await,
                None => (this.cancelled_state(), ScanProgress::default(), None),
            };
            let ctx = system_context("system:discovery", unix_micros(this.clock.now()));
            if let Err(error) =
                this.store.finish_scan_run(&ctx, &run_id, state, &progress, detail.as_deref()).await
            {
                tracing::error!(run = %run_id, %error, "a scan run's end could not be stored");
            }
            this.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&run_id);
        });
    }

    /// A slot among `discovery.max_concurrent_runs`; the run's heartbeat goes on while it
    /// waits, so that no replica takes it for dead. `None` when it is cancelled first.
    async fn wait_for_slot(
        &self,
        run_id: &str,
        cancel: &CancellationToken,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        loop {
            tokio::select! {
                slot = self.slots.clone().acquire_owned() => return slot.ok(),
                () = cancel.cancelled() => return None,
                () = tokio::time::sleep(HEARTBEAT) => {
                    let waiting = ScanProgress::default();
                    if let Ok(true) = self.store.save_scan_progress(run_id, &waiting, self.now()).await {
                        cancel.cancel();
                    }
                }
            }
        }
    }

    /// How a run stopped before its end ended: cancelled, or interrupted by the server's stop.
    fn cancelled_state(&self) -> ScanRunState {
        if self.stopping.load(std::sync::atomic::Ordering::Relaxed) {
            ScanRunState::Interrupted
        } else {
            ScanRunState::Cancelled
        }
    }

    /// Runs a scan and stores what it finds; how it ended.
    async fn execute(
        &self,
        scan: &Scan,
        run: &ScanRun,
        cancel: CancellationToken,
    ) -> (ScanRunState, ScanProgress, Option<String>) {
        let failed = |why: String| (ScanRunState::Failed, ScanProgress::default(), Some(why));
        let spec: ScanSpec = match serde_json::from_value(scan.spec.clone()) {
            Ok(spec) => spec,
            Err(e) => return failed(format!("the stored scan cannot be read: {e}")),
        };
        // The allowed ranges may have changed since the scan was stored: check again.
        let checked = match self.check_spec(&spec) {
            Ok(checked) => checked,
            Err(e) => return failed(format!("the scan is no longer allowed: {e}")),
        };
        let trust = match self.trust_store().await {
            Ok(trust) => trust,
            Err(e) => return failed(format!("the platform's CAs could not be read: {e}")),
        };
        let scanner = match Scanner::new(trust, self.allow.clone()) {
            Ok(scanner) => scanner,
            Err(e) => return failed(e.to_string()),
        };
        let (events, mut results) = mpsc::channel(BATCH * 2);
        let at = UnixTime::since_unix_epoch(Duration::from_secs(self.now().max(0) as u64));
        let scanning = scanner.run(&checked.scan, at, events, cancel.clone());
        let mut recorder = Recorder::new(scan);
        let writer = Writer::new(self, scan, run);
        // A batch is written while the next one fills, so the scanner never waits on the
        // store unless the store falls two batches behind.
        let (to_writer, mut batches) = mpsc::channel::<EndpointBatch>(2);
        let receiving = async {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            let mut last_progress = tokio::time::Instant::now();
            loop {
                // Whether to hand the batch so far to the writer: when full, and at each tick.
                let flush = tokio::select! {
                    event = results.recv() => match event {
                        Some(event) => {
                            recorder.take(event);
                            recorder.batch.sightings.len() >= BATCH
                        }
                        None => break,
                    },
                    _ = tick.tick() => {
                        if last_progress.elapsed() >= HEARTBEAT {
                            last_progress = tokio::time::Instant::now();
                            if writer.save_progress(&recorder.progress).await {
                                cancel.cancel();
                            }
                        }
                        true
                    }
                };
                if flush && let Some(batch) = recorder.take_batch() {
                    // The writer only stops once this side has dropped its sender.
                    let _ = to_writer.send(batch).await;
                }
            }
            if let Some(batch) = recorder.take_batch() {
                let _ = to_writer.send(batch).await;
            }
            drop(to_writer);
        };
        let writing = async {
            while let Some(batch) = batches.recv().await {
                writer.write(&batch).await;
            }
        };
        let (end, (), ()) = tokio::join!(scanning, receiving, writing);
        let (state, detail) = match end {
            ScanEnd::Completed => (ScanRunState::Completed, None),
            ScanEnd::Cancelled => match self.cancelled_state() {
                ScanRunState::Interrupted => {
                    (ScanRunState::Interrupted, Some("the server stopped".to_string()))
                }
                state => (state, None),
            },
            ScanEnd::OutOfTime { untried } => (
                ScanRunState::OutOfTime,
                Some(format!(
                    "the time budget ({} s) ran out with {untried} endpoint(s) untried",
                    spec.budget_secs
                )),
            ),
        };
        let tally = writer.tally();
        (state, tally.add_to(recorder.progress), detail.or(tally.error))
    }

    /// The system's roots and the platform's own CAs (those in the chains it recorded).
    async fn trust_store(&self) -> Result<TrustStore> {
        let system = match SYSTEM_ROOTS.get() {
            Some(roots) => roots.clone(),
            None => tokio::task::spawn_blocking(|| system_roots().clone())
                .await
                .map_err(|e| InventoryError::Internal(format!("reading system roots: {e}")))?,
        };
        let (mut roots, mut intermediates) = (system, Vec::new());
        for (der, self_signed) in self.store.platform_ca_certificates().await? {
            let der = CertificateDer::from(der);
            if self_signed { roots.push(der) } else { intermediates.push(der) }
        }
        Ok(TrustStore::new(roots, intermediates))
    }
}

/// The system's trust roots, once read.
static SYSTEM_ROOTS: std::sync::OnceLock<Vec<CertificateDer<'static>>> = std::sync::OnceLock::new();

/// The system's trust roots, read once (the first caller blocks on reading them).
fn system_roots() -> &'static Vec<CertificateDer<'static>> {
    SYSTEM_ROOTS.get_or_init(TrustStore::system_roots)
}

/// Turns a run's events into batches for the store, and counts them.
struct Recorder<'a> {
    scan: &'a Scan,
    batch: EndpointBatch,
    progress: ScanProgress,
    seen: HashSet<String>,
}

impl<'a> Recorder<'a> {
    fn new(scan: &'a Scan) -> Self {
        Recorder {
            scan,
            batch: EndpointBatch::default(),
            progress: ScanProgress::default(),
            seen: HashSet::new(),
        }
    }

    /// The batch so far, unless it is empty.
    fn take_batch(&mut self) -> Option<EndpointBatch> {
        let empty = self.batch.sightings.is_empty() && self.batch.vacated.is_empty();
        (!empty).then(|| std::mem::take(&mut self.batch))
    }

    fn take(&mut self, event: ScanEvent) {
        match event {
            ScanEvent::Planned { endpoints } => self.progress.total = Some(endpoints),
            ScanEvent::Skipped { target, reason } => {
                self.progress.error(format!("{target}: {reason}"))
            }
            ScanEvent::Endpoint(report) => self.endpoint(report),
        }
    }

    fn endpoint(&mut self, report: EndpointReport) {
        self.progress.scanned += 1;
        // `192.0.2.1:443` or `[2001:db8::1]:443`.
        let endpoint = report.address.to_string();
        match report.outcome {
            EndpointOutcome::Closed => {
                self.progress.closed += 1;
                self.batch.vacated.push(endpoint);
            }
            EndpointOutcome::Failed(e) => self.progress.error(format!("{endpoint}: {e}")),
            EndpointOutcome::Served(sightings) => {
                self.progress.served += 1;
                for sighting in sightings {
                    let address = match &sighting.sni {
                        Some(sni) => format!("{endpoint}#{sni}"),
                        None => endpoint.clone(),
                    };
                    let observation = match sighting.result {
                        Ok(observation) => observation,
                        Err(e) => {
                            self.progress.error(format!("{address}: {e}"));
                            continue;
                        }
                    };
                    let leaf = &observation.handshake.chain[0];
                    let facts = match cmp_pki::parse_certificate(leaf) {
                        Ok(facts) => facts,
                        Err(e) => {
                            self.progress.error(format!("{address}: unreadable certificate: {e}"));
                            continue;
                        }
                    };
                    if self.seen.insert(facts.fingerprint_sha256.clone()) {
                        self.progress.certificates += 1;
                    }
                    let details = EndpointFacts {
                        sni: sighting.sni.clone(),
                        protocol: report.protocol.as_str().into(),
                        tls_version: observation.handshake.tls_version.clone(),
                        cipher_suite: observation.handshake.cipher_suite.clone(),
                        alpn: observation.handshake.alpn.clone(),
                        ocsp_stapled: observation.handshake.ocsp_stapled,
                        chain: match observation.chain {
                            ChainVerdict::Trusted => ChainTrust::Trusted,
                            ChainVerdict::Incomplete => ChainTrust::Incomplete,
                            ChainVerdict::Untrusted => ChainTrust::Untrusted,
                        },
                        chain_length: observation.handshake.chain.len(),
                        name_matches: observation.name_matches,
                        legacy_versions: observation
                            .legacy_versions
                            .iter()
                            .map(|v| v.to_string())
                            .collect(),
                    };
                    self.batch.sightings.push(EndpointSighting {
                        certificate: NewCertificate {
                            facts,
                            source: CertificateSource::Discovery,
                            owner_id: self.scan.owner_id.clone(),
                            location: None,
                            issued: None,
                        },
                        address,
                        findings: observation.findings(),
                        details: serde_json::to_value(details).unwrap_or_default(),
                    });
                }
            }
        }
    }
}

/// Stores a run's batches, and writes its heartbeat.
struct Writer<'a> {
    discovery: &'a Discovery,
    run: &'a ScanRun,
    actor: String,
    tally: Mutex<Tally>,
}

/// What the stored batches did, and the first store failure.
#[derive(Default, Clone)]
struct Tally {
    created: u64,
    gone: u64,
    error: Option<String>,
}

impl Tally {
    fn add_to(&self, mut progress: ScanProgress) -> ScanProgress {
        progress.created += self.created;
        progress.gone += self.gone;
        progress
    }
}

impl<'a> Writer<'a> {
    fn new(discovery: &'a Discovery, scan: &Scan, run: &'a ScanRun) -> Self {
        let actor = format!("system:scan/{}", scan.name);
        Writer { discovery, run, actor, tally: Mutex::default() }
    }

    fn tally(&self) -> Tally {
        self.tally.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stores one batch. A failure is kept for the run's detail and the batch dropped: the
    /// next run finds those endpoints again.
    async fn write(&self, batch: &EndpointBatch) {
        let ctx = system_context(&self.actor, unix_micros(self.discovery.clock.now()));
        let stored = self.discovery.store.record_endpoints(&ctx, batch).await;
        let mut tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        match stored {
            Ok(outcome) => {
                tally.created += outcome.created;
                tally.gone += outcome.gone;
            }
            Err(error) => {
                tracing::error!(run = %self.run.id, %error, "scan results could not be stored");
                tally.error.get_or_insert_with(|| format!("storing results failed: {error}"));
            }
        }
    }

    /// Writes the progress so far (the heartbeat); whether cancelling was asked.
    async fn save_progress(&self, counted: &ScanProgress) -> bool {
        let progress = self.tally().add_to(counted.clone());
        let now = self.discovery.now();
        match self.discovery.store.save_scan_progress(&self.run.id, &progress, now).await {
            Ok(cancel) => cancel,
            Err(error) => {
                tracing::warn!(run = %self.run.id, %error, "scan progress could not be saved");
                false
            }
        }
    }
}

/// Parses a cron expression: five fields (minute first) or six or seven (seconds first).
fn parse_cron(expression: &str) -> Result<cron::Schedule> {
    let fields = expression.split_whitespace().count();
    let full = if fields == 5 { format!("0 {expression}") } else { expression.to_string() };
    cron::Schedule::from_str(&full).map_err(|e| {
        InventoryError::bad_field("cron", format!("{expression:?} is not a cron expression: {e}"))
    })
}

fn check_name(name: &str) -> Result<()> {
    if crate::core::is_plain_name(name) {
        Ok(())
    } else {
        Err(InventoryError::bad_field("name", "1-100 letters, digits, '-', '_' or '.', not an id"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_give_the_next_run() {
        let every_hour = Schedule { interval_secs: Some(3600), cron: None, enabled: true };
        assert_eq!(Discovery::next_run(&every_hour, 1_000).unwrap(), Some(4_600));
        let nightly =
            Schedule { interval_secs: None, cron: Some("30 2 * * *".into()), enabled: true };
        // 1970-01-01T00:00:00Z -> 02:30 the same day.
        assert_eq!(Discovery::next_run(&nightly, 0).unwrap(), Some(2 * 3600 + 30 * 60));
        let off = Schedule { enabled: false, ..nightly.clone() };
        assert_eq!(Discovery::next_run(&off, 0).unwrap(), None);
        let both = Schedule { interval_secs: Some(60), ..nightly };
        assert!(Discovery::next_run(&both, 0).is_err());
        let bad = Schedule { interval_secs: None, cron: Some("every day".into()), enabled: true };
        assert!(Discovery::next_run(&bad, 0).is_err());
        let short = Schedule { interval_secs: Some(5), cron: None, enabled: true };
        assert!(Discovery::next_run(&short, 0).is_err());
    }
}
