//! Network discovery: scan definitions, their runs (one running per scan, on every replica),
//! and what scans find, stored through the import path with endpoint locations that carry
//! their findings and handshake facts, and are marked gone (never deleted) when the endpoint
//! stops serving the certificate.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use cmp_domain::{Finding, LocationKind, ScanProgress, ScanRunState};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use tracing::instrument;

use crate::audit;
use crate::certificates::{flags_of, import_chunk_with};
use crate::sql::{Arg, SqlBuilder, to_json};
use crate::{
    AuditAction, AuditContext, EndpointSeen, NewAuditEvent, NewCertificate, NewLocation, Scope,
    SqlStore, StoreError, StoreResult,
};

/// A scan definition as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Scan {
    pub id: String,
    pub name: String,
    /// What to scan and how (the API's `ScanSpec`, as JSON).
    pub spec: serde_json::Value,
    pub owner_id: Option<String>,
    pub interval_secs: Option<i64>,
    pub cron: Option<String>,
    pub enabled: bool,
    pub next_run_at: Option<i64>,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A scan to create.
#[derive(Debug, Clone)]
pub struct NewScan {
    pub name: String,
    pub spec: serde_json::Value,
    pub owner_id: Option<String>,
    pub interval_secs: Option<i64>,
    pub cron: Option<String>,
    pub enabled: bool,
    pub next_run_at: Option<i64>,
}

/// Changes to a scan; the schedule fields are written together (the caller computes them).
#[derive(Debug, Clone, Default)]
pub struct ScanUpdate {
    pub name: Option<String>,
    pub spec: Option<serde_json::Value>,
    pub owner_id: Option<Option<String>>,
    pub schedule: Option<StoredSchedule>,
}

/// A scan's schedule as stored; the caller computes `next_run_at`.
#[derive(Debug, Clone, Default)]
pub struct StoredSchedule {
    pub interval_secs: Option<i64>,
    pub cron: Option<String>,
    pub enabled: bool,
    pub next_run_at: Option<i64>,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanRun {
    pub id: String,
    pub scan_id: String,
    pub state: ScanRunState,
    /// `manual` or `schedule`.
    pub trigger: String,
    pub started_by: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub heartbeat_at: i64,
    pub cancel_requested: bool,
    pub progress: ScanProgress,
    pub detail: Option<String>,
}

/// How a run is started.
#[derive(Debug, Clone, Copy)]
pub enum RunTrigger {
    /// By a person or a token.
    Manual,
    /// By the scheduler, for the scan's run due at `due`; `next` is the one after.
    Schedule { due: i64, next: Option<i64> },
}

/// What one endpoint served under one name: a location of the leaf.
#[derive(Debug, Clone)]
pub struct EndpointSighting {
    /// The leaf, parsed, with the scan's owner; its location is set by the store.
    pub certificate: NewCertificate,
    /// `host:port` or `host:port#sni`.
    pub address: String,
    /// Findings of this endpoint (only [`Finding::ENDPOINT`] ones are kept).
    pub findings: Vec<Finding>,
    /// Handshake facts, as JSON.
    pub details: serde_json::Value,
}

/// A batch of scan results, stored in one transaction.
#[derive(Debug, Clone, Default)]
pub struct EndpointBatch {
    pub sightings: Vec<EndpointSighting>,
    /// Endpoints (`host:port`) where nothing listens any more: every location there, under
    /// any SNI name, is gone.
    pub vacated: Vec<String>,
}

/// What storing a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointBatchOutcome {
    /// Certificates new to the inventory.
    pub created: u64,
    /// Locations newly marked gone.
    pub gone: u64,
}

/// Scan definitions, runs, and what they find.
#[async_trait]
pub trait ScanStore: Send + Sync {
    async fn create_scan(&self, ctx: &AuditContext, scan: &NewScan) -> StoreResult<Scan>;
    async fn list_scans(&self) -> StoreResult<Vec<Scan>>;
    /// A scan by id or name.
    async fn get_scan(&self, id_or_name: &str) -> StoreResult<Scan>;
    async fn update_scan(
        &self,
        ctx: &AuditContext,
        id: &str,
        update: &ScanUpdate,
    ) -> StoreResult<Scan>;
    /// Deletes a scan and its runs; `Conflict` while it runs.
    async fn delete_scan(&self, ctx: &AuditContext, id: &str) -> StoreResult<()>;
    /// Enabled scans whose next run is due at `now`.
    async fn due_scans(&self, now: i64) -> StoreResult<Vec<Scan>>;
    /// Starts a run; `Conflict` when one is running. A scheduled start also moves the scan's
    /// next run, and starts nothing (`Ok(None)`) when another replica took this one.
    async fn start_scan_run(
        &self,
        ctx: &AuditContext,
        scan_id: &str,
        trigger: RunTrigger,
    ) -> StoreResult<Option<ScanRun>>;
    async fn get_scan_run(&self, id: &str) -> StoreResult<ScanRun>;
    /// A scan's latest runs, newest first.
    async fn list_scan_runs(&self, scan_id: &str, limit: u32) -> StoreResult<Vec<ScanRun>>;
    /// Saves a running run's progress and heartbeat; whether cancelling was asked.
    async fn save_scan_progress(
        &self,
        run_id: &str,
        progress: &ScanProgress,
        now: i64,
    ) -> StoreResult<bool>;
    /// Ends a running run (audited); `Ok(None)` when it had ended already.
    async fn finish_scan_run(
        &self,
        ctx: &AuditContext,
        run_id: &str,
        state: ScanRunState,
        progress: &ScanProgress,
        detail: Option<&str>,
    ) -> StoreResult<Option<ScanRun>>;
    /// Asks a scan's running run to stop (audited); `Conflict` when none runs.
    async fn request_scan_cancel(&self, ctx: &AuditContext, scan_id: &str) -> StoreResult<ScanRun>;
    /// Ends the runs whose heartbeat is older than `stale_before` as interrupted.
    async fn interrupt_stale_runs(&self, ctx: &AuditContext, stale_before: i64)
    -> StoreResult<u64>;
    /// The CA certificates in the chains the platform recorded with what it issued (DER, and
    /// whether self-signed): what "the platform's own CAs" are to a scan.
    async fn platform_ca_certificates(&self) -> StoreResult<Vec<(Vec<u8>, bool)>>;
    /// Stores scan results: certificates through the import path, each endpoint location
    /// with its findings and facts, older locations at the same endpoint marked gone.
    async fn record_endpoints(
        &self,
        ctx: &AuditContext,
        batch: &EndpointBatch,
    ) -> StoreResult<EndpointBatchOutcome>;
}

const SCAN_COLUMNS: &str = "id, name, spec, owner_id, interval_secs, cron, enabled, next_run_at, \
     created_by, created_at, updated_at";

fn scan_from_row(row: &AnyRow) -> StoreResult<Scan> {
    let spec: String = row.try_get("spec")?;
    Ok(Scan {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        spec: serde_json::from_str(&spec).map_err(|e| StoreError::corrupt("scan spec", e))?,
        owner_id: row.try_get("owner_id")?,
        interval_secs: row.try_get("interval_secs")?,
        cron: row.try_get("cron")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        next_run_at: row.try_get("next_run_at")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn run_from_row(row: &AnyRow) -> StoreResult<ScanRun> {
    let state: String = row.try_get("state")?;
    let progress: String = row.try_get("progress")?;
    Ok(ScanRun {
        id: row.try_get("id")?,
        scan_id: row.try_get("scan_id")?,
        state: ScanRunState::parse(&state)
            .ok_or_else(|| StoreError::corrupt("run state", &state))?,
        trigger: row.try_get("trigger")?,
        started_by: row.try_get("started_by")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        heartbeat_at: row.try_get("heartbeat_at")?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        progress: serde_json::from_str(&progress)
            .map_err(|e| StoreError::corrupt("run progress", e))?,
        detail: row.try_get("detail")?,
    })
}

fn scan_event(action: AuditAction, id: &str, details: serde_json::Value) -> NewAuditEvent {
    NewAuditEvent { action, entity_type: "scan".into(), entity_id: id.into(), details }
}

fn name_conflict(name: &str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
    move |e| match StoreError::from(e) {
        StoreError::Conflict(_) => StoreError::Conflict(format!("a scan named {name:?} exists")),
        other => other,
    }
}

/// Addresses (or ids) per lookup statement: well inside both databases' parameter limits.
const GONE_LOOKUP_CHUNK: usize = 200;

/// Bits of the endpoint findings in `finding_flags`.
fn endpoint_mask() -> i64 {
    flags_of(&Finding::ENDPOINT)
}

async fn running_run(tx: &mut Transaction<'_, Any>, scan_id: &str) -> StoreResult<Option<String>> {
    Ok(sqlx::query("SELECT id FROM scan_runs WHERE scan_id = $1 AND state = 'running'")
        .bind(scan_id)
        .fetch_optional(&mut **tx)
        .await?
        .map(|row| row.try_get("id"))
        .transpose()?)
}

#[async_trait]
impl ScanStore for SqlStore {
    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(name = %scan.name))]
    async fn create_scan(&self, ctx: &AuditContext, scan: &NewScan) -> StoreResult<Scan> {
        let id = uuid::Uuid::now_v7().to_string();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO scans (id, name, spec, owner_id, interval_secs, cron, enabled, \
             next_run_at, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(&id)
        .bind(&scan.name)
        .bind(to_json(&scan.spec)?)
        .bind(&scan.owner_id)
        .bind(scan.interval_secs)
        .bind(&scan.cron)
        .bind(i64::from(scan.enabled))
        .bind(scan.next_run_at)
        .bind(&ctx.actor)
        .bind(ctx.now())
        .execute(&mut *tx)
        .await
        .map_err(name_conflict(&scan.name))?;
        let details = json!({
            "name": scan.name, "spec": scan.spec, "owner_id": scan.owner_id,
            "interval_secs": scan.interval_secs, "cron": scan.cron, "enabled": scan.enabled,
        });
        audit::append(&mut tx, ctx, &scan_event(AuditAction::ScanCreated, &id, details)).await?;
        tx.commit().await?;
        self.get_scan(&id).await
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn list_scans(&self) -> StoreResult<Vec<Scan>> {
        sqlx::query(&format!("SELECT {SCAN_COLUMNS} FROM scans ORDER BY name"))
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(scan_from_row)
            .collect()
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(scan = %id_or_name))]
    async fn get_scan(&self, id_or_name: &str) -> StoreResult<Scan> {
        let row =
            sqlx::query(&format!("SELECT {SCAN_COLUMNS} FROM scans WHERE id = $1 OR name = $1"))
                .bind(id_or_name)
                .fetch_optional(&self.read)
                .await?
                .ok_or_else(|| StoreError::not_found("scan", id_or_name))?;
        scan_from_row(&row)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(scan = %id))]
    async fn update_scan(
        &self,
        ctx: &AuditContext,
        id: &str,
        update: &ScanUpdate,
    ) -> StoreResult<Scan> {
        let current = self.get_scan(id).await?;
        let mut b = SqlBuilder::new("UPDATE scans SET updated_at = ");
        b.bind(Arg::Int(ctx.now()));
        let mut details = serde_json::Map::new();
        if let Some(name) = &update.name {
            b.push(", name = ").bind(Arg::Text(name.clone()));
            details.insert("name".into(), json!({"from": current.name, "to": name}));
        }
        if let Some(spec) = &update.spec {
            b.push(", spec = ").bind(Arg::Text(to_json(spec)?));
            details.insert("spec".into(), json!({"from": current.spec, "to": spec}));
        }
        if let Some(owner) = &update.owner_id {
            b.push(", owner_id = ").bind(Arg::OptText(owner.clone()));
            details.insert("owner_id".into(), json!({"from": current.owner_id, "to": owner}));
        }
        if let Some(StoredSchedule { interval_secs: interval, cron, enabled, next_run_at: next }) =
            &update.schedule
        {
            b.push(", interval_secs = ").bind(Arg::OptInt(*interval));
            b.push(", cron = ").bind(Arg::OptText(cron.clone()));
            b.push(", enabled = ").bind(Arg::Int(i64::from(*enabled)));
            b.push(", next_run_at = ").bind(Arg::OptInt(*next));
            details.insert(
                "schedule".into(),
                json!({"interval_secs": interval, "cron": cron, "enabled": enabled}),
            );
        }
        b.push(" WHERE id = ").bind(Arg::Text(current.id.clone()));
        let mut tx = self.begin().await?;
        let name = update.name.as_deref().unwrap_or(&current.name);
        b.query().execute(&mut *tx).await.map_err(name_conflict(name))?;
        let event = scan_event(AuditAction::ScanUpdated, &current.id, details.into());
        audit::append(&mut tx, ctx, &event).await?;
        tx.commit().await?;
        self.get_scan(&current.id).await
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(scan = %id))]
    async fn delete_scan(&self, ctx: &AuditContext, id: &str) -> StoreResult<()> {
        let current = self.get_scan(id).await?;
        let mut tx = self.begin().await?;
        if running_run(&mut tx, &current.id).await?.is_some() {
            return Err(StoreError::Conflict(format!(
                "scan {:?} is running: cancel the run first",
                current.name
            )));
        }
        sqlx::query("DELETE FROM scan_runs WHERE scan_id = $1")
            .bind(&current.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM scans WHERE id = $1").bind(&current.id).execute(&mut *tx).await?;
        let event =
            scan_event(AuditAction::ScanDeleted, &current.id, json!({"name": current.name}));
        audit::append(&mut tx, ctx, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn due_scans(&self, now: i64) -> StoreResult<Vec<Scan>> {
        sqlx::query(&format!(
            "SELECT {SCAN_COLUMNS} FROM scans WHERE next_run_at IS NOT NULL \
             AND next_run_at <= $1 AND enabled = 1 ORDER BY next_run_at"
        ))
        .bind(now)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(scan_from_row)
        .collect()
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(scan = %scan_id))]
    async fn start_scan_run(
        &self,
        ctx: &AuditContext,
        scan_id: &str,
        trigger: RunTrigger,
    ) -> StoreResult<Option<ScanRun>> {
        let scan = self.get_scan(scan_id).await?;
        let mut tx = self.begin().await?;
        if let RunTrigger::Schedule { due, next } = trigger {
            // Compare and set: of two replicas that found it due, one moves it on and starts.
            let moved =
                sqlx::query("UPDATE scans SET next_run_at = $1 WHERE id = $2 AND next_run_at = $3")
                    .bind(next)
                    .bind(&scan.id)
                    .bind(due)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            if moved == 0 {
                return Ok(None);
            }
        }
        if running_run(&mut tx, &scan.id).await?.is_some() {
            return Err(StoreError::Conflict(format!(
                "scan {:?} is running already: one run per scan at a time",
                scan.name
            )));
        }
        let id = uuid::Uuid::now_v7().to_string();
        let trigger_name = match trigger {
            RunTrigger::Manual => "manual",
            RunTrigger::Schedule { .. } => "schedule",
        };
        sqlx::query(
            "INSERT INTO scan_runs (id, scan_id, state, trigger, started_by, started_at, \
             heartbeat_at, progress) VALUES ($1, $2, 'running', $3, $4, $5, $5, $6)",
        )
        .bind(&id)
        .bind(&scan.id)
        .bind(trigger_name)
        .bind(&ctx.actor)
        .bind(ctx.now())
        .bind(to_json(&ScanProgress::default())?)
        .execute(&mut *tx)
        .await
        // The unique index: another replica started one since the check.
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("scan {:?} is running already", scan.name))
            }
            other => other,
        })?;
        let details = json!({"run_id": id, "trigger": trigger_name, "name": scan.name});
        let event = scan_event(AuditAction::ScanRunStarted, &scan.id, details);
        audit::append(&mut tx, ctx, &event).await?;
        tx.commit().await?;
        self.get_scan_run(&id).await.map(Some)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(run = %id))]
    async fn get_scan_run(&self, id: &str) -> StoreResult<ScanRun> {
        let row = sqlx::query("SELECT * FROM scan_runs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| StoreError::not_found("scan run", id))?;
        run_from_row(&row)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(scan = %scan_id))]
    async fn list_scan_runs(&self, scan_id: &str, limit: u32) -> StoreResult<Vec<ScanRun>> {
        sqlx::query(
            "SELECT * FROM scan_runs WHERE scan_id = $1 ORDER BY started_at DESC, id DESC \
             LIMIT $2",
        )
        .bind(scan_id)
        .bind(i64::from(limit.clamp(1, 500)))
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(run_from_row)
        .collect()
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(run = %run_id))]
    async fn save_scan_progress(
        &self,
        run_id: &str,
        progress: &ScanProgress,
        now: i64,
    ) -> StoreResult<bool> {
        let row = sqlx::query(
            "UPDATE scan_runs SET progress = $1, heartbeat_at = $2 \
             WHERE id = $3 AND state = 'running' RETURNING cancel_requested",
        )
        .bind(to_json(progress)?)
        .bind(now)
        .bind(run_id)
        .fetch_optional(&self.write)
        .await?;
        // A run that is no longer running (interrupted by another replica) stops too.
        Ok(match row {
            Some(row) => row.try_get::<i64, _>("cancel_requested")? != 0,
            None => true,
        })
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(run = %run_id))]
    async fn finish_scan_run(
        &self,
        ctx: &AuditContext,
        run_id: &str,
        state: ScanRunState,
        progress: &ScanProgress,
        detail: Option<&str>,
    ) -> StoreResult<Option<ScanRun>> {
        let mut tx = self.begin().await?;
        let ended = sqlx::query(
            "UPDATE scan_runs SET state = $1, progress = $2, detail = $3, finished_at = $4, \
             heartbeat_at = $4 WHERE id = $5 AND state = 'running' RETURNING scan_id",
        )
        .bind(state.as_str())
        .bind(to_json(progress)?)
        .bind(detail)
        .bind(ctx.now())
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = ended else { return Ok(None) };
        let scan_id: String = row.try_get("scan_id")?;
        let details = json!({
            "run_id": run_id, "state": state.as_str(), "detail": detail,
            "scanned": progress.scanned, "served": progress.served, "errors": progress.errors,
            "certificates": progress.certificates, "created": progress.created,
            "gone": progress.gone,
        });
        let event = scan_event(AuditAction::ScanRunFinished, &scan_id, details);
        audit::append(&mut tx, ctx, &event).await?;
        tx.commit().await?;
        self.get_scan_run(run_id).await.map(Some)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(scan = %scan_id))]
    async fn request_scan_cancel(&self, ctx: &AuditContext, scan_id: &str) -> StoreResult<ScanRun> {
        let scan = self.get_scan(scan_id).await?;
        let mut tx = self.begin().await?;
        let Some(run_id) = running_run(&mut tx, &scan.id).await? else {
            return Err(StoreError::Conflict(format!("scan {:?} is not running", scan.name)));
        };
        sqlx::query("UPDATE scan_runs SET cancel_requested = 1 WHERE id = $1")
            .bind(&run_id)
            .execute(&mut *tx)
            .await?;
        let event =
            scan_event(AuditAction::ScanRunCancelRequested, &scan.id, json!({"run_id": run_id}));
        audit::append(&mut tx, ctx, &event).await?;
        tx.commit().await?;
        self.get_scan_run(&run_id).await
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn interrupt_stale_runs(
        &self,
        ctx: &AuditContext,
        stale_before: i64,
    ) -> StoreResult<u64> {
        let stale: Vec<String> =
            sqlx::query("SELECT id FROM scan_runs WHERE state = 'running' AND heartbeat_at < $1")
                .bind(stale_before)
                .fetch_all(&self.read)
                .await?
                .iter()
                .map(|row| row.try_get("id"))
                .collect::<Result<_, _>>()?;
        let mut ended = 0;
        for id in stale {
            let run = self.get_scan_run(&id).await?;
            let detail = "its process stopped before the run ended";
            if self
                .finish_scan_run(ctx, &id, ScanRunState::Interrupted, &run.progress, Some(detail))
                .await?
                .is_some()
            {
                ended += 1;
            }
        }
        Ok(ended)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn platform_ca_certificates(&self) -> StoreResult<Vec<(Vec<u8>, bool)>> {
        sqlx::query(
            "SELECT der, self_signed FROM certificates WHERE id IN \
             (SELECT chain_certificate_id FROM certificate_chains)",
        )
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("der")?, row.try_get::<i64, _>("self_signed")? != 0)))
        .collect()
    }

    #[instrument(
        level = "debug",
        skip_all,
        err(level = "debug"),
        fields(sightings = batch.sightings.len(), vacated = batch.vacated.len())
    )]
    async fn record_endpoints(
        &self,
        ctx: &AuditContext,
        batch: &EndpointBatch,
    ) -> StoreResult<EndpointBatchOutcome> {
        let now = ctx.now();
        let mut tx = self.begin().await?;
        let mut events = Vec::new();
        let mut certificates = Vec::with_capacity(batch.sightings.len());
        for s in &batch.sightings {
            let seen = EndpointSeen {
                finding_flags: flags_of(&s.findings) & endpoint_mask(),
                details: to_json(&s.details)?,
            };
            certificates.push(NewCertificate {
                location: Some(NewLocation {
                    kind: LocationKind::Endpoint,
                    address: s.address.clone(),
                    endpoint: Some(seen),
                }),
                ..s.certificate.clone()
            });
        }
        let mut outcome = EndpointBatchOutcome::default();
        // Discovery sees everything it is allowed to reach: its scope is all certificates.
        let imported =
            import_chunk_with(&mut tx, ctx, &Scope::All, &certificates, &mut events).await?;
        let mut touched: BTreeSet<String> = imported.iter().map(|i| i.id.clone()).collect();
        outcome.created = imported.iter().filter(|i| i.created).count() as u64;
        // What these endpoints served before under these names, and serve no more.
        let serving: HashMap<&str, &str> = batch
            .sightings
            .iter()
            .zip(&imported)
            .map(|(s, i)| (s.address.as_str(), i.id.as_str()))
            .collect();
        let mut gone = Vec::new();
        for chunk in batch.sightings.chunks(GONE_LOOKUP_CHUNK) {
            let mut b = SqlBuilder::new(
                "SELECT certificate_id, address FROM locations WHERE kind = 'endpoint' \
                 AND gone_at IS NULL AND address IN ",
            );
            b.row(chunk.iter().map(|s| Arg::Text(s.address.clone())));
            for (id, address) in live_locations(&mut tx, &b).await? {
                if serving.get(address.as_str()) != Some(&id.as_str()) {
                    gone.push((id, address));
                }
            }
        }
        // Everything at an endpoint where nothing listens now, under any name: `host:port`
        // and `host:port#sni` ('#' sorts just before '$').
        for chunk in batch.vacated.chunks(GONE_LOOKUP_CHUNK) {
            let mut b = SqlBuilder::new(
                "SELECT certificate_id, address FROM locations WHERE kind = 'endpoint' \
                 AND gone_at IS NULL AND (",
            );
            for (i, endpoint) in chunk.iter().enumerate() {
                b.push(if i == 0 { "address = " } else { " OR address = " });
                b.bind(Arg::Text(endpoint.clone()));
                b.push(" OR (address > ").bind(Arg::Text(format!("{endpoint}#")));
                b.push(" AND address < ").bind(Arg::Text(format!("{endpoint}$"))).push(")");
            }
            b.push(")");
            gone.extend(live_locations(&mut tx, &b).await?);
        }
        for (id, address) in gone {
            sqlx::query(
                "UPDATE locations SET gone_at = $1 WHERE certificate_id = $2 \
                 AND kind = 'endpoint' AND address = $3",
            )
            .bind(now)
            .bind(&id)
            .bind(&address)
            .execute(&mut *tx)
            .await?;
            events.push(NewAuditEvent {
                action: AuditAction::CertificateLocationGone,
                entity_type: "certificate".into(),
                entity_id: id.clone(),
                details: json!({"kind": "endpoint", "address": address}),
            });
            outcome.gone += 1;
            touched.insert(id);
        }
        refresh_endpoint_findings(&mut tx, &touched).await?;
        if !events.is_empty() {
            audit::append_many(&mut tx, ctx, &events).await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }
}

/// Endpoint locations a lookup of `b` finds: (certificate id, address).
async fn live_locations(
    tx: &mut Transaction<'_, Any>,
    b: &SqlBuilder,
) -> StoreResult<Vec<(String, String)>> {
    b.query()
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("certificate_id")?, row.try_get("address")?)))
        .collect()
}

/// Sets each certificate's endpoint findings to those of the endpoints still serving it (a
/// fixed endpoint clears them; other findings stay).
async fn refresh_endpoint_findings(
    tx: &mut Transaction<'_, Any>,
    certificates: &BTreeSet<String>,
) -> StoreResult<()> {
    if certificates.is_empty() {
        return Ok(());
    }
    let ids: Vec<&String> = certificates.iter().collect();
    let mut flags: HashMap<String, (i64, i64)> = HashMap::new();
    for chunk in ids.chunks(GONE_LOOKUP_CHUNK) {
        let mut b = SqlBuilder::new(
            "SELECT c.id, c.finding_flags, l.finding_flags AS location_flags \
             FROM certificates c LEFT JOIN locations l ON l.certificate_id = c.id \
             AND l.kind = 'endpoint' AND l.gone_at IS NULL WHERE c.id IN ",
        );
        b.row(chunk.iter().map(|id| Arg::Text((*id).clone())));
        for row in b.query().fetch_all(&mut **tx).await? {
            let id: String = row.try_get("id")?;
            let own: i64 = row.try_get("finding_flags")?;
            let location: Option<i64> = row.try_get("location_flags")?;
            flags.entry(id).or_insert((own, 0)).1 |= location.unwrap_or(0);
        }
    }
    // Few distinct values: one statement for each, whatever the batch's size.
    let mask = endpoint_mask();
    let mut changes: HashMap<i64, Vec<String>> = HashMap::new();
    for (id, (own, served)) in flags {
        let wanted = (own & !mask) | (served & mask);
        if wanted != own {
            changes.entry(wanted).or_default().push(id);
        }
    }
    for (wanted, ids) in changes {
        for chunk in ids.chunks(GONE_LOOKUP_CHUNK) {
            let mut b = SqlBuilder::new("UPDATE certificates SET finding_flags = ");
            b.bind(Arg::Int(wanted)).push(" WHERE id IN ");
            b.row(chunk.iter().map(|id| Arg::Text(id.clone())));
            b.query().execute(&mut **tx).await?;
        }
    }
    Ok(())
}
