//! Host agents: bootstrap tokens, enrolment, deployments of managed certificates and the job
//! queue that carries each new version to the agents.
//!
//! Jobs are queued in the transaction that makes a version current
//! ([`queue_deploy_jobs`], called by the issuance completion), so a version never exists
//! without its jobs. An agent leases its jobs one at a time; a lease that runs out puts the job
//! back in the queue, and a job's result is taken only from the agent holding it.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use cmp_domain::agent::{MAX_JOB_ATTEMPTS, job_retry_delay_secs};
use cmp_domain::{DeploymentState, JobKind, JobState, LocationKind};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use tracing::instrument;

use crate::audit;
use crate::job_results::{JobResultItem, Verified, verify_deployments};
use crate::sql::{Arg, SqlBuilder, run_statements};
use crate::{AuditAction, AuditContext, NewAuditEvent, SqlStore, StoreError, StoreResult};

/// A single-use token that lets one host enrol, as an admin made it.
#[derive(Debug, Clone)]
pub struct NewBootstrapToken {
    pub token_hash: String,
    /// Given to the agent that enrols with it.
    pub labels: BTreeMap<String, String>,
    pub expires_at: i64,
}

/// A bootstrap token as stored (without its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapTokenRecord {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    pub expires_at: i64,
    pub created_by: String,
    pub created_at: i64,
    pub used_at: Option<i64>,
    /// The agent that enrolled with it.
    pub agent_id: Option<String>,
    pub revoked_at: Option<i64>,
}

/// An agent to enrol: its name and the client certificate the agent CA just made for it.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub name: String,
    pub cert_fingerprint: String,
    pub cert_not_after: i64,
}

/// An enrolled agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRecord {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// SHA-256 of the DER of its current client certificate.
    pub cert_fingerprint: String,
    /// The certificate it renewed, still accepted until the current one is first used.
    pub previous_fingerprint: Option<String>,
    pub cert_not_after: i64,
    pub disabled_at: Option<i64>,
    pub hostname: Option<String>,
    pub version: Option<String>,
    pub os: Option<String>,
    /// The targets the agent reported in its last heartbeat (JSON, as it sent them).
    pub targets: serde_json::Value,
    pub last_seen_at: Option<i64>,
    pub enrolled_at: i64,
    /// The bootstrap token it enrolled with.
    pub enrolled_with: String,
}

/// What an agent says when it checks in.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub hostname: String,
    pub version: String,
    pub os: String,
    pub targets: serde_json::Value,
}

/// Where a managed certificate is deployed, with how the last attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRecord {
    pub managed_certificate_id: String,
    pub agent_id: String,
    pub agent_name: String,
    pub target: String,
    pub state: DeploymentState,
    /// The version the last job carried.
    pub certificate_id: Option<String>,
    /// What the target served when it was verified.
    pub served_fingerprint: Option<String>,
    pub verified_at: Option<i64>,
    pub failed_step: Option<String>,
    pub last_error: Option<String>,
    pub updated_at: i64,
}

/// A job for one agent's target.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: String,
    pub agent_id: String,
    pub target: String,
    pub kind: JobKind,
    pub managed_certificate_id: Option<String>,
    pub certificate_id: Option<String>,
    pub state: JobState,
    pub attempts: i64,
    pub not_before: i64,
    pub lease_until: Option<i64>,
    /// The step the last attempt failed at.
    pub step: Option<String>,
    /// The agent's last report (steps and their output).
    pub result: Option<serde_json::Value>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// How an attempt at a job ended, as its agent reports it.
#[derive(Debug, Clone)]
pub enum JobOutcome {
    /// Installed and, where the target has an endpoint, seen served with this fingerprint.
    Succeeded { served_fingerprint: Option<String>, report: serde_json::Value },
    /// Failed at `step`; the agent put the previous files back.
    Failed { step: String, message: String, report: serde_json::Value },
}

/// Agents, their deployments and jobs.
#[async_trait]
pub trait AgentStore: Send + Sync {
    async fn create_bootstrap_token(
        &self,
        ctx: &AuditContext,
        token: &NewBootstrapToken,
    ) -> StoreResult<BootstrapTokenRecord>;
    async fn list_bootstrap_tokens(&self) -> StoreResult<Vec<BootstrapTokenRecord>>;
    async fn revoke_bootstrap_token(&self, ctx: &AuditContext, id: &str) -> StoreResult<()>;

    /// Uses up the bootstrap token with `token_hash` and creates the agent, in one transaction.
    /// `NotFound` (entity `bootstrap token`) when no such token is live (unknown, used,
    /// revoked or expired); `Conflict` when the name is taken.
    async fn enroll_agent(
        &self,
        ctx: &AuditContext,
        token_hash: &str,
        agent: &NewAgent,
    ) -> StoreResult<AgentRecord>;
    /// The enabled agent whose current (or, until that is first used, previous) certificate
    /// has this fingerprint. Never cached: a disabled or deleted agent is refused at once, on
    /// every replica.
    async fn find_agent_by_fingerprint(
        &self,
        fingerprint: &str,
    ) -> StoreResult<Option<AgentRecord>>;
    /// An agent by id or name.
    async fn get_agent(&self, id_or_name: &str) -> StoreResult<AgentRecord>;
    /// The agents among these ids and names (in no order; an unknown one is left out).
    async fn find_agents(&self, ids_or_names: &[String]) -> StoreResult<Vec<AgentRecord>>;
    async fn list_agents(&self) -> StoreResult<Vec<AgentRecord>>;
    async fn set_agent_disabled(
        &self,
        ctx: &AuditContext,
        id: &str,
        disabled: bool,
    ) -> StoreResult<AgentRecord>;
    /// Deletes an agent with its jobs and deployments.
    async fn delete_agent(&self, ctx: &AuditContext, id: &str) -> StoreResult<()>;
    /// Replaces the agent's certificate (it renewed its identity); the one it `presented` for
    /// the call stays accepted until the new one is first used.
    async fn renew_agent_identity(
        &self,
        ctx: &AuditContext,
        id: &str,
        presented: &str,
        cert_fingerprint: &str,
        cert_not_after: i64,
    ) -> StoreResult<AgentRecord>;
    /// The agent used its current certificate: the previous one is refused from now on.
    async fn forget_previous_identity(&self, id: &str) -> StoreResult<()>;
    /// Records a check-in (not audited: it changes nothing but liveness).
    async fn record_heartbeat(&self, id: &str, heartbeat: &Heartbeat, now: i64) -> StoreResult<()>;

    /// Sets where a managed certificate is deployed. New deployments get a job at once: a
    /// `renew_with_local_key` when `key_on_agent` (the key is made on the host), otherwise a
    /// `deploy` of the current version if there is one. Dropped ones lose their queued jobs.
    async fn set_deployments(
        &self,
        ctx: &AuditContext,
        managed_id: &str,
        targets: &[(String, String)],
        key_on_agent: bool,
    ) -> StoreResult<Vec<DeploymentRecord>>;
    async fn list_deployments(&self, managed_id: &str) -> StoreResult<Vec<DeploymentRecord>>;

    /// Queues a `renew_with_local_key` job for each deployment of `managed_id` that has none
    /// queued or leased, and marks those deployments pending: the number queued.
    async fn queue_local_key_jobs(&self, ctx: &AuditContext, managed_id: &str) -> StoreResult<u64>;
    /// Queues a `discover` job for the agent, or returns the one already queued or leased.
    async fn queue_discover_job(
        &self,
        ctx: &AuditContext,
        agent_id: &str,
    ) -> StoreResult<JobRecord>;

    /// Queues a `discover` job for each enabled agent whose last one was queued before
    /// `due_before` (or, before its first, that enrolled before it) and that has none on its
    /// way: the agents queued.
    async fn queue_scheduled_discoveries(
        &self,
        ctx: &AuditContext,
        due_before: i64,
    ) -> StoreResult<Vec<String>>;

    /// Leases the agent's next due job until `lease_until`, or `None` when none is due.
    async fn lease_job(
        &self,
        agent_id: &str,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<Option<JobRecord>> {
        let ids = [agent_id.to_string()];
        Ok(self.lease_jobs(&ids, now, lease_until).await?.pop())
    }
    /// Leases the next due job of each of `agent_ids` until `lease_until`, all in one
    /// transaction: at most one job per agent, the oldest due. A job whose lease ran out on
    /// its last attempt ends failed instead. What a dispatch to many waiting agents does.
    async fn lease_jobs(
        &self,
        agent_ids: &[String],
        now: i64,
        lease_until: i64,
    ) -> StoreResult<Vec<JobRecord>>;
    /// Records the result of a job the agent holds (`NotFound` for another agent's job,
    /// `Conflict` for a job it does not hold), and updates the deployment.
    async fn finish_job(
        &self,
        ctx: &AuditContext,
        agent_id: &str,
        job_id: &str,
        outcome: &JobOutcome,
    ) -> StoreResult<JobRecord>;
    /// Puts the jobs the agent holds back in the queue, due now (it restarted, and undid what
    /// it was doing): the number put back.
    async fn release_jobs(&self, agent_id: &str, now: i64) -> StoreResult<u64>;
    /// One of the agent's jobs (`NotFound` for another agent's).
    async fn get_job(&self, agent_id: &str, job_id: &str) -> StoreResult<JobRecord>;
    /// The agent's latest jobs, newest first.
    async fn list_jobs(&self, agent_id: &str, limit: i64) -> StoreResult<Vec<JobRecord>>;
    /// Agents with a job due at `now` (to wake their long polls).
    async fn agents_with_due_jobs(&self, now: i64) -> StoreResult<Vec<String>>;
}

const TOKEN_COLUMNS: &str = "SELECT id, labels, expires_at, created_by, created_at, used_at, \
     agent_id, revoked_at FROM agent_bootstrap_tokens";
pub(crate) const AGENT_COLUMNS: &str = "SELECT id, name, labels, cert_fingerprint, \
     previous_fingerprint, cert_not_after, disabled_at, hostname, version, os, targets, \
     last_seen_at, enrolled_at, enrolled_with FROM agents";
const DEPLOYMENT_COLUMNS: &str = "SELECT d.managed_certificate_id, d.agent_id, a.name AS \
     agent_name, d.target, d.state, d.certificate_id, d.served_fingerprint, d.verified_at, \
     d.failed_step, d.last_error, d.updated_at FROM deployments d JOIN agents a ON a.id = d.agent_id";
macro_rules! job_fields {
    () => {
        "id, agent_id, target, kind, managed_certificate_id, certificate_id, state, attempts, \
         not_before, lease_until, step, result, created_at, updated_at"
    };
}
const JOB_FIELDS: &str = job_fields!();
/// Agents per lease statement (one parameter each).
const LEASE_CHUNK: usize = 500;
pub(crate) const JOB_COLUMNS: &str = concat!("SELECT ", job_fields!(), " FROM agent_jobs");

fn labels_from(text: &str) -> StoreResult<BTreeMap<String, String>> {
    serde_json::from_str(text).map_err(|e| StoreError::corrupt("labels", e))
}

fn labels_text(labels: &BTreeMap<String, String>) -> StoreResult<String> {
    serde_json::to_string(labels).map_err(|e| StoreError::corrupt("labels", e))
}

fn token_from_row(row: &AnyRow) -> StoreResult<BootstrapTokenRecord> {
    Ok(BootstrapTokenRecord {
        id: row.try_get("id")?,
        labels: labels_from(&row.try_get::<String, _>("labels")?)?,
        expires_at: row.try_get("expires_at")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        used_at: row.try_get("used_at")?,
        agent_id: row.try_get("agent_id")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

pub(crate) fn agent_from_row(row: &AnyRow) -> StoreResult<AgentRecord> {
    let targets: String = row.try_get("targets")?;
    Ok(AgentRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        labels: labels_from(&row.try_get::<String, _>("labels")?)?,
        cert_fingerprint: row.try_get("cert_fingerprint")?,
        previous_fingerprint: row.try_get("previous_fingerprint")?,
        cert_not_after: row.try_get("cert_not_after")?,
        disabled_at: row.try_get("disabled_at")?,
        hostname: row.try_get("hostname")?,
        version: row.try_get("version")?,
        os: row.try_get("os")?,
        targets: serde_json::from_str(&targets)
            .map_err(|e| StoreError::corrupt("agent targets", e))?,
        last_seen_at: row.try_get("last_seen_at")?,
        enrolled_at: row.try_get("enrolled_at")?,
        enrolled_with: row.try_get("enrolled_with")?,
    })
}

fn deployment_from_row(row: &AnyRow) -> StoreResult<DeploymentRecord> {
    let state: String = row.try_get("state")?;
    Ok(DeploymentRecord {
        managed_certificate_id: row.try_get("managed_certificate_id")?,
        agent_id: row.try_get("agent_id")?,
        agent_name: row.try_get("agent_name")?,
        target: row.try_get("target")?,
        state: DeploymentState::parse(&state)
            .ok_or_else(|| StoreError::corrupt("deployment state", &state))?,
        certificate_id: row.try_get("certificate_id")?,
        served_fingerprint: row.try_get("served_fingerprint")?,
        verified_at: row.try_get("verified_at")?,
        failed_step: row.try_get("failed_step")?,
        last_error: row.try_get("last_error")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(crate) fn job_from_row(row: &AnyRow) -> StoreResult<JobRecord> {
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    let result: Option<String> = row.try_get("result")?;
    Ok(JobRecord {
        id: row.try_get("id")?,
        agent_id: row.try_get("agent_id")?,
        target: row.try_get("target")?,
        kind: JobKind::parse(&kind).ok_or_else(|| StoreError::corrupt("job kind", &kind))?,
        managed_certificate_id: row.try_get("managed_certificate_id")?,
        certificate_id: row.try_get("certificate_id")?,
        state: JobState::parse(&state).ok_or_else(|| StoreError::corrupt("job state", &state))?,
        attempts: row.try_get("attempts")?,
        not_before: row.try_get("not_before")?,
        lease_until: row.try_get("lease_until")?,
        step: row.try_get("step")?,
        result: result
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(|e| StoreError::corrupt("job result", e))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(crate) fn event(
    action: AuditAction,
    entity_type: &str,
    id: &str,
    details: serde_json::Value,
) -> NewAuditEvent {
    NewAuditEvent { action, entity_type: entity_type.into(), entity_id: id.into(), details }
}

/// Queues a deploy job of `certificate_id` for each deployment of `managed_id`, and marks the
/// deployments pending. Queued jobs of an older version are dropped (failed, step
/// `superseded`); a job already leased runs on, and its result does not mark the new version.
pub(crate) async fn queue_deploy_jobs(
    tx: &mut Transaction<'_, Any>,
    managed_id: &str,
    certificate_id: &str,
    now: i64,
) -> StoreResult<()> {
    let deployments =
        sqlx::query("SELECT agent_id, target FROM deployments WHERE managed_certificate_id = $1")
            .bind(managed_id)
            .fetch_all(&mut **tx)
            .await?;
    if deployments.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE agent_jobs SET state = 'failed', step = 'superseded', updated_at = $1 \
         WHERE managed_certificate_id = $2 AND state = 'queued' AND kind = 'deploy'",
    )
    .bind(now)
    .bind(managed_id)
    .execute(&mut **tx)
    .await?;
    let job = NewJob {
        kind: JobKind::Deploy,
        managed_id: Some(managed_id),
        certificate_id: Some(certificate_id),
    };
    let mut rows = Vec::with_capacity(deployments.len());
    for row in &deployments {
        let (agent_id, target): (String, String) =
            (row.try_get("agent_id")?, row.try_get("target")?);
        rows.push(job_row(new_job_id(), &job, &agent_id, &target, now));
    }
    run_statements(tx, job_inserts(tx, rows)).await?;
    sqlx::query(
        "UPDATE deployments SET state = 'pending', certificate_id = $1, failed_step = NULL, \
         last_error = NULL, updated_at = $2 WHERE managed_certificate_id = $3",
    )
    .bind(certificate_id)
    .bind(now)
    .bind(managed_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What a new job carries.
struct NewJob<'a> {
    kind: JobKind,
    /// None for an agent's own job (discovery).
    managed_id: Option<&'a str>,
    /// The version a `deploy` installs.
    certificate_id: Option<&'a str>,
}

const JOB_INSERT: &str = "INSERT INTO agent_jobs (id, agent_id, target, kind, \
     managed_certificate_id, certificate_id, state, attempts, not_before, created_at, \
     updated_at) VALUES ";

/// Rows per multi-row INSERT (a dozen parameters each).
const ROWS_PER_INSERT: usize = 500;

fn new_job_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A new job's row for [`JOB_INSERT`], queued now.
fn job_row(id: String, job: &NewJob<'_>, agent_id: &str, target: &str, now: i64) -> [Arg; 11] {
    [
        Arg::Text(id),
        Arg::Text(agent_id.to_string()),
        Arg::Text(target.to_string()),
        Arg::Text(job.kind.as_str().to_string()),
        Arg::OptText(job.managed_id.map(str::to_string)),
        Arg::OptText(job.certificate_id.map(str::to_string)),
        Arg::Text(JobState::Queued.as_str().to_string()),
        Arg::Int(0),
        Arg::Int(now),
        Arg::Int(now),
        Arg::Int(now),
    ]
}

/// The multi-row INSERTs of these job rows, [`ROWS_PER_INSERT`] each, for `conn`.
fn job_inserts(conn: &sqlx::AnyConnection, rows: Vec<[Arg; 11]>) -> Vec<SqlBuilder> {
    rows.chunks(ROWS_PER_INSERT)
        .map(|chunk| {
            let mut insert = SqlBuilder::bulk(conn, JOB_INSERT);
            insert.rows(chunk.iter().cloned());
            insert
        })
        .collect()
}

async fn insert_job(
    tx: &mut Transaction<'_, Any>,
    agent_id: &str,
    target: &str,
    job: &NewJob<'_>,
    now: i64,
) -> StoreResult<String> {
    let id = new_job_id();
    let mut insert = SqlBuilder::new(JOB_INSERT);
    insert.row(job_row(id.clone(), job, agent_id, target, now));
    insert.query().execute(&mut **tx).await?;
    Ok(id)
}

impl SqlStore {
    /// Records one job's result in a transaction of its own (see [`AgentStore::finish_job`]).
    pub(crate) async fn finish_job_alone(&self, result: &JobResultItem) -> StoreResult<JobRecord> {
        let JobResultItem { ctx, agent_id, job_id, outcome } = result;
        let mut tx = self.begin().await?;
        let row = sqlx::query(&format!("{JOB_COLUMNS} WHERE id = $1 AND agent_id = $2"))
            .bind(job_id)
            .bind(agent_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::not_found("job", job_id))?;
        let job = job_from_row(&row)?;
        let finished = finished_job(&job, outcome, ctx.now())?;
        sqlx::query(
            "UPDATE agent_jobs SET state = $1, step = $2, result = $3, not_before = $4, \
             lease_until = NULL, updated_at = $5 WHERE id = $6",
        )
        .bind(finished.state.as_str())
        .bind(&finished.step)
        .bind(crate::sql::to_json(&finished.result)?)
        .bind(finished.not_before)
        .bind(finished.updated_at)
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
        let mut events = Vec::new();
        record_job_effects(&mut tx, ctx.now(), &job, outcome, &mut events).await?;
        audit::append_many(&mut tx, ctx, &events).await?;
        tx.commit().await?;
        Ok(finished)
    }

    async fn agent_in(tx: &mut Transaction<'_, Any>, id: &str) -> StoreResult<AgentRecord> {
        let row = sqlx::query(&format!("{AGENT_COLUMNS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::not_found("agent", id))?;
        agent_from_row(&row)
    }
}

#[async_trait]
impl AgentStore for SqlStore {
    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn create_bootstrap_token(
        &self,
        ctx: &AuditContext,
        token: &NewBootstrapToken,
    ) -> StoreResult<BootstrapTokenRecord> {
        let id = uuid::Uuid::now_v7().to_string();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO agent_bootstrap_tokens (id, token_hash, labels, expires_at, created_by, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(&token.token_hash)
        .bind(labels_text(&token.labels)?)
        .bind(token.expires_at)
        .bind(&ctx.actor)
        .bind(ctx.now())
        .execute(&mut *tx)
        .await?;
        let details = json!({ "labels": token.labels, "expires_at": token.expires_at });
        let created =
            event(AuditAction::AgentBootstrapTokenCreated, "agent_bootstrap_token", &id, details);
        audit::append(&mut tx, ctx, &created).await?;
        let row = sqlx::query(&format!("{TOKEN_COLUMNS} WHERE id = $1"))
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        token_from_row(&row)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn list_bootstrap_tokens(&self) -> StoreResult<Vec<BootstrapTokenRecord>> {
        sqlx::query(&format!("{TOKEN_COLUMNS} ORDER BY created_at, id"))
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(token_from_row)
            .collect()
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(token_id = %id))]
    async fn revoke_bootstrap_token(&self, ctx: &AuditContext, id: &str) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE agent_bootstrap_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(ctx.now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("bootstrap token", id));
        }
        let revoked = event(AuditAction::TokenRevoked, "agent_bootstrap_token", id, json!({}));
        audit::append(&mut tx, ctx, &revoked).await?;
        tx.commit().await?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(agent = %agent.name))]
    async fn enroll_agent(
        &self,
        ctx: &AuditContext,
        token_hash: &str,
        agent: &NewAgent,
    ) -> StoreResult<AgentRecord> {
        let now = ctx.now();
        let id = uuid::Uuid::now_v7().to_string();
        let mut tx = self.begin().await?;
        // Taking the token is the first write: of two enrolments with one token, the second
        // waits on this row and then finds it used.
        let token = sqlx::query(
            "UPDATE agent_bootstrap_tokens SET used_at = $1, agent_id = $2 WHERE token_hash = $3 \
             AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1 \
             RETURNING id, labels",
        )
        .bind(now)
        .bind(&id)
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::not_found("bootstrap token", "(given)"))?;
        let token_id: String = token.try_get("id")?;
        let labels: String = token.try_get("labels")?;
        let taken = sqlx::query("SELECT 1 FROM agents WHERE name = $1")
            .bind(&agent.name)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!(
                "an agent named {:?} is enrolled already: delete it first, or choose another name",
                agent.name
            )));
        }
        sqlx::query(
            "INSERT INTO agents (id, name, labels, cert_fingerprint, cert_not_after, enrolled_at, \
             enrolled_with) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(&agent.name)
        .bind(&labels)
        .bind(&agent.cert_fingerprint)
        .bind(agent.cert_not_after)
        .bind(now)
        .bind(&token_id)
        .execute(&mut *tx)
        .await?;
        let details = json!({
            "name": agent.name,
            "bootstrap_token_id": token_id,
            "cert_fingerprint": agent.cert_fingerprint,
            "cert_not_after": agent.cert_not_after,
        });
        audit::append(&mut tx, ctx, &event(AuditAction::AgentEnrolled, "agent", &id, details))
            .await?;
        let record = Self::agent_in(&mut tx, &id).await?;
        tx.commit().await?;
        Ok(record)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn find_agent_by_fingerprint(
        &self,
        fingerprint: &str,
    ) -> StoreResult<Option<AgentRecord>> {
        self.look_up_agent(fingerprint).await
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(agent = %id_or_name))]
    async fn get_agent(&self, id_or_name: &str) -> StoreResult<AgentRecord> {
        let row = sqlx::query(&format!("{AGENT_COLUMNS} WHERE id = $1 OR name = $1"))
            .bind(id_or_name)
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| StoreError::not_found("agent", id_or_name))?;
        agent_from_row(&row)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(n = ids_or_names.len()))]
    async fn find_agents(&self, ids_or_names: &[String]) -> StoreResult<Vec<AgentRecord>> {
        let mut found = Vec::with_capacity(ids_or_names.len());
        // One query per 500 names (a deployment to a fleet names thousands).
        for chunk in ids_or_names.chunks(500) {
            let list = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let sql = format!("{AGENT_COLUMNS} WHERE id IN ({list}) OR name IN ({list})");
            let mut query = sqlx::query(&sql);
            for name in chunk {
                query = query.bind(name);
            }
            for row in query.fetch_all(&self.read).await? {
                found.push(agent_from_row(&row)?);
            }
        }
        Ok(found)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn list_agents(&self) -> StoreResult<Vec<AgentRecord>> {
        sqlx::query(&format!("{AGENT_COLUMNS} ORDER BY name"))
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(agent_from_row)
            .collect()
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(agent = %id))]
    async fn set_agent_disabled(
        &self,
        ctx: &AuditContext,
        id: &str,
        disabled: bool,
    ) -> StoreResult<AgentRecord> {
        let mut tx = self.begin().await?;
        let agent = Self::agent_in(&mut tx, id).await?;
        if agent.disabled_at.is_some() != disabled {
            sqlx::query("UPDATE agents SET disabled_at = $1 WHERE id = $2")
                .bind(disabled.then(|| ctx.now()))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let action =
                if disabled { AuditAction::AgentDisabled } else { AuditAction::AgentEnabled };
            let details = json!({ "name": agent.name });
            audit::append(&mut tx, ctx, &event(action, "agent", id, details)).await?;
        }
        let record = Self::agent_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(record)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(agent = %id))]
    async fn delete_agent(&self, ctx: &AuditContext, id: &str) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let agent = Self::agent_in(&mut tx, id).await?;
        // Explicitly, not by the cascade: SQLite applies it only with foreign keys on.
        for table in ["agent_jobs", "deployments"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE agent_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM agents WHERE id = $1").bind(id).execute(&mut *tx).await?;
        let details = json!({ "name": agent.name });
        audit::append(&mut tx, ctx, &event(AuditAction::AgentDeleted, "agent", id, details))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(agent = %id))]
    async fn renew_agent_identity(
        &self,
        ctx: &AuditContext,
        id: &str,
        presented: &str,
        cert_fingerprint: &str,
        cert_not_after: i64,
    ) -> StoreResult<AgentRecord> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE agents SET cert_fingerprint = $1, cert_not_after = $2, \
             previous_fingerprint = $3 WHERE id = $4 AND disabled_at IS NULL",
        )
        .bind(cert_fingerprint)
        .bind(cert_not_after)
        .bind(presented)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("agent", id));
        }
        let details =
            json!({ "cert_fingerprint": cert_fingerprint, "cert_not_after": cert_not_after });
        let renewed = event(AuditAction::AgentIdentityRenewed, "agent", id, details);
        audit::append(&mut tx, ctx, &renewed).await?;
        let record = Self::agent_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(record)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(agent = %id))]
    async fn forget_previous_identity(&self, id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE agents SET previous_fingerprint = NULL WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(agent = %id))]
    async fn record_heartbeat(&self, id: &str, heartbeat: &Heartbeat, now: i64) -> StoreResult<()> {
        let targets = serde_json::to_string(&heartbeat.targets)
            .map_err(|e| StoreError::corrupt("agent targets", e))?;
        sqlx::query(
            "UPDATE agents SET hostname = $1, version = $2, os = $3, targets = $4, \
             last_seen_at = $5 WHERE id = $6",
        )
        .bind(&heartbeat.hostname)
        .bind(&heartbeat.version)
        .bind(&heartbeat.os)
        .bind(targets)
        .bind(now)
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(managed = %managed_id))]
    async fn set_deployments(
        &self,
        ctx: &AuditContext,
        managed_id: &str,
        targets: &[(String, String)],
        key_on_agent: bool,
    ) -> StoreResult<Vec<DeploymentRecord>> {
        let now = ctx.now();
        let mut tx = self.begin().await?;
        let current: Option<String> =
            sqlx::query("SELECT current_certificate_id FROM managed_certificates WHERE id = $1")
                .bind(managed_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::not_found("managed certificate", managed_id))?
                .try_get("current_certificate_id")?;
        let existing: Vec<(String, String)> = sqlx::query(
            "SELECT agent_id, target FROM deployments WHERE managed_certificate_id = $1",
        )
        .bind(managed_id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("agent_id")?, row.try_get("target")?)))
        .collect::<StoreResult<_>>()?;
        // Sets, not `Vec::contains`: a deployment to a fleet is thousands of pairs.
        let wanted: HashSet<&(String, String)> = targets.iter().collect();
        let had: HashSet<&(String, String)> = existing.iter().collect();
        for (agent_id, target) in existing.iter().filter(|d| !wanted.contains(d)) {
            let deployed: Option<String> = sqlx::query(
                "DELETE FROM deployments WHERE managed_certificate_id = $1 AND agent_id = $2 \
                 AND target = $3 RETURNING certificate_id",
            )
            .bind(managed_id)
            .bind(agent_id)
            .bind(target)
            .fetch_one(&mut *tx)
            .await?
            .try_get("certificate_id")?;
            sqlx::query(
                "UPDATE agent_jobs SET state = 'failed', step = 'removed', updated_at = $1 \
                 WHERE managed_certificate_id = $2 AND agent_id = $3 AND target = $4 \
                 AND state = 'queued'",
            )
            .bind(now)
            .bind(managed_id)
            .bind(agent_id)
            .bind(target)
            .execute(&mut *tx)
            .await?;
            // The agent takes its files away (a served target's stay; see JobKind::Remove).
            let job = NewJob {
                kind: JobKind::Remove,
                managed_id: Some(managed_id),
                certificate_id: deployed.as_deref(),
            };
            insert_job(&mut tx, agent_id, target, &job, now).await?;
        }
        let added: Vec<_> = targets.iter().filter(|d| !had.contains(d)).collect();
        let job_kind = match &current {
            // The key for this host is made there, whatever versions exist.
            _ if key_on_agent => Some(JobKind::RenewWithLocalKey),
            Some(_) => Some(JobKind::Deploy),
            None => None,
        };
        // Multi-row statements: a deployment to a fleet adds thousands.
        let mut statements = Vec::new();
        for chunk in added.chunks(ROWS_PER_INSERT) {
            let mut deployments = SqlBuilder::bulk(
                &tx,
                "INSERT INTO deployments (managed_certificate_id, agent_id, target, state, \
                 certificate_id, updated_at) VALUES ",
            );
            deployments.rows(chunk.iter().map(|(agent_id, target)| {
                [
                    Arg::Text(managed_id.to_string()),
                    Arg::Text(agent_id.clone()),
                    Arg::Text(target.clone()),
                    Arg::Text(DeploymentState::Pending.as_str().to_string()),
                    Arg::OptText(current.clone()),
                    Arg::Int(now),
                ]
            }));
            statements.push(deployments);
        }
        if let Some(kind) = job_kind {
            let certificate_id = current.as_deref().filter(|_| kind == JobKind::Deploy);
            let job = NewJob { kind, managed_id: Some(managed_id), certificate_id };
            let rows = added
                .iter()
                .map(|(agent_id, target)| job_row(new_job_id(), &job, agent_id, target, now));
            statements.extend(job_inserts(&tx, rows.collect()));
        }
        if let Err(e) = run_statements(&mut tx, statements).await {
            // An agent deleted since the caller looked it up is named.
            if let StoreError::Conflict(_) = e {
                let asked: Vec<String> = added.iter().map(|(a, _)| a.clone()).collect();
                let found = self.find_agents(&asked).await?;
                let found: HashSet<&str> = found.iter().map(|f| f.id.as_str()).collect();
                if let Some(gone) = asked.iter().find(|a| !found.contains(a.as_str())) {
                    return Err(StoreError::not_found("agent", gone));
                }
            }
            return Err(e);
        }
        let details = json!({
            "deployments": targets
                .iter()
                .map(|(agent, target)| json!({ "agent_id": agent, "target": target }))
                .collect::<Vec<_>>(),
        });
        let set = event(AuditAction::DeploymentsSet, "managed_certificate", managed_id, details);
        audit::append(&mut tx, ctx, &set).await?;
        tx.commit().await?;
        self.list_deployments(managed_id).await
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(managed = %managed_id))]
    async fn list_deployments(&self, managed_id: &str) -> StoreResult<Vec<DeploymentRecord>> {
        sqlx::query(&format!(
            "{DEPLOYMENT_COLUMNS} WHERE d.managed_certificate_id = $1 ORDER BY a.name, d.target"
        ))
        .bind(managed_id)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(deployment_from_row)
        .collect()
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(managed = %managed_id))]
    async fn queue_local_key_jobs(&self, ctx: &AuditContext, managed_id: &str) -> StoreResult<u64> {
        let now = ctx.now();
        let mut tx = self.begin().await?;
        let waiting = sqlx::query(
            "SELECT agent_id, target FROM deployments d WHERE managed_certificate_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM agent_jobs j WHERE j.managed_certificate_id = $1 \
             AND j.agent_id = d.agent_id AND j.target = d.target AND j.kind = $2 \
             AND j.state IN ('queued', 'leased'))",
        )
        .bind(managed_id)
        .bind(JobKind::RenewWithLocalKey.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let job = NewJob {
            kind: JobKind::RenewWithLocalKey,
            managed_id: Some(managed_id),
            certificate_id: None,
        };
        for row in &waiting {
            let (agent_id, target): (String, String) =
                (row.try_get("agent_id")?, row.try_get("target")?);
            let id = insert_job(&mut tx, &agent_id, &target, &job, now).await?;
            sqlx::query(
                "UPDATE deployments SET state = 'pending', updated_at = $1 \
                 WHERE managed_certificate_id = $2 AND agent_id = $3 AND target = $4",
            )
            .bind(now)
            .bind(managed_id)
            .bind(&agent_id)
            .bind(&target)
            .execute(&mut *tx)
            .await?;
            let details = json!({ "agent_id": agent_id, "target": target, "job_id": id });
            let queued = event(
                AuditAction::DeploymentKeyRequested,
                "managed_certificate",
                managed_id,
                details,
            );
            audit::append(&mut tx, ctx, &queued).await?;
        }
        tx.commit().await?;
        Ok(waiting.len() as u64)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(agent = %agent_id))]
    async fn queue_discover_job(
        &self,
        ctx: &AuditContext,
        agent_id: &str,
    ) -> StoreResult<JobRecord> {
        let mut tx = self.begin().await?;
        let agent = Self::agent_in(&mut tx, agent_id).await?;
        let open = sqlx::query(&format!(
            "{JOB_COLUMNS} WHERE agent_id = $1 AND kind = $2 AND state IN ('queued', 'leased')"
        ))
        .bind(&agent.id)
        .bind(JobKind::Discover.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = open {
            return job_from_row(&row);
        }
        let job = NewJob { kind: JobKind::Discover, managed_id: None, certificate_id: None };
        let id = insert_job(&mut tx, &agent.id, "", &job, ctx.now()).await?;
        let details = json!({ "agent": agent.name, "job_id": id });
        audit::append(
            &mut tx,
            ctx,
            &event(AuditAction::AgentDiscoveryQueued, "agent", &agent.id, details),
        )
        .await?;
        let row = sqlx::query(&format!("{JOB_COLUMNS} WHERE id = $1"))
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        job_from_row(&row)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn queue_scheduled_discoveries(
        &self,
        ctx: &AuditContext,
        due_before: i64,
    ) -> StoreResult<Vec<String>> {
        let mut tx = self.begin().await?;
        let due = sqlx::query(
            "SELECT a.id, a.name FROM agents a WHERE a.disabled_at IS NULL \
             AND a.enrolled_at < $1 AND NOT EXISTS (SELECT 1 FROM agent_jobs j \
             WHERE j.agent_id = a.id AND j.kind = $2 \
             AND (j.created_at >= $1 OR j.state IN ('queued', 'leased')))",
        )
        .bind(due_before)
        .bind(JobKind::Discover.as_str())
        .fetch_all(&mut *tx)
        .await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let job = NewJob { kind: JobKind::Discover, managed_id: None, certificate_id: None };
        let (mut queued, mut events, mut rows) = (Vec::new(), Vec::new(), Vec::new());
        for row in &due {
            let (agent_id, name): (String, String) = (row.try_get("id")?, row.try_get("name")?);
            let id = new_job_id();
            let details = json!({ "agent": name, "job_id": id, "scheduled": true });
            events.push(event(AuditAction::AgentDiscoveryQueued, "agent", &agent_id, details));
            rows.push(job_row(id, &job, &agent_id, "", ctx.now()));
            queued.push(agent_id);
        }
        let inserts = job_inserts(&tx, rows);
        run_statements(&mut tx, inserts).await?;
        audit::append_many(&mut tx, ctx, &events).await?;
        tx.commit().await?;
        Ok(queued)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(agents = agent_ids.len()))]
    async fn lease_jobs(
        &self,
        agent_ids: &[String],
        now: i64,
        lease_until: i64,
    ) -> StoreResult<Vec<JobRecord>> {
        let mut leased = Vec::with_capacity(agent_ids.len());
        let mut tx = self.begin().await?;
        for chunk in agent_ids.chunks(LEASE_CHUNK) {
            // Parameters: $1 now, $2 the attempts allowed, then the agents, then (leasing)
            // the lease's end.
            let agents = (3..3 + chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>();
            let due = format!(
                "agent_id IN ({}) AND ((state = 'queued' AND not_before <= $1) \
                 OR (state = 'leased' AND lease_until < $1))",
                agents.join(", ")
            );
            let bound = |sql| {
                let query = sqlx::query(sql).bind(now).bind(MAX_JOB_ATTEMPTS);
                chunk.iter().fold(query, |query, agent| query.bind(agent))
            };
            // A job out of attempts ends here rather than being handed out again.
            let exhausted = format!(
                "UPDATE agent_jobs SET state = 'failed', lease_until = NULL, updated_at = $1 \
                 WHERE {due} AND attempts >= $2"
            );
            bound(&exhausted).execute(&mut *tx).await?;
            // The oldest due job of each agent. The condition is repeated outside the
            // sub-select so that, on PostgreSQL, a row another replica leased meanwhile is
            // checked again and left alone.
            let lease = format!(
                "UPDATE agent_jobs SET state = 'leased', lease_until = ${}, \
                 attempts = attempts + 1, updated_at = $1 \
                 WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER \
                 (PARTITION BY agent_id ORDER BY created_at, id) AS n \
                 FROM agent_jobs WHERE {due} AND attempts < $2) oldest WHERE n = 1) \
                 AND {due} AND attempts < $2 RETURNING {JOB_FIELDS}",
                3 + chunk.len()
            );
            for row in bound(&lease).bind(lease_until).fetch_all(&mut *tx).await? {
                leased.push(job_from_row(&row)?);
            }
        }
        tx.commit().await?;
        Ok(leased)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(job = %job_id))]
    async fn finish_job(
        &self,
        ctx: &AuditContext,
        agent_id: &str,
        job_id: &str,
        outcome: &JobOutcome,
    ) -> StoreResult<JobRecord> {
        let result = JobResultItem {
            ctx: ctx.clone(),
            agent_id: agent_id.to_string(),
            job_id: job_id.to_string(),
            outcome: outcome.clone(),
        };
        self.record_job_result(result).await
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(agent = %agent_id))]
    async fn release_jobs(&self, agent_id: &str, now: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE agent_jobs SET state = 'queued', lease_until = NULL, not_before = $1, \
             updated_at = $1 WHERE agent_id = $2 AND state = 'leased'",
        )
        .bind(now)
        .bind(agent_id)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(job = %job_id))]
    async fn get_job(&self, agent_id: &str, job_id: &str) -> StoreResult<JobRecord> {
        let row = sqlx::query(&format!("{JOB_COLUMNS} WHERE id = $1 AND agent_id = $2"))
            .bind(job_id)
            .bind(agent_id)
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| StoreError::not_found("job", job_id))?;
        job_from_row(&row)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(agent = %agent_id))]
    async fn list_jobs(&self, agent_id: &str, limit: i64) -> StoreResult<Vec<JobRecord>> {
        sqlx::query(&format!(
            "{JOB_COLUMNS} WHERE agent_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(agent_id)
        .bind(limit)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(job_from_row)
        .collect()
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn agents_with_due_jobs(&self, now: i64) -> StoreResult<Vec<String>> {
        sqlx::query(
            "SELECT DISTINCT agent_id FROM agent_jobs WHERE (state = 'queued' AND not_before <= $1) \
             OR (state = 'leased' AND lease_until < $1)",
        )
        .bind(now)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|row| Ok(row.try_get("agent_id")?))
        .collect()
    }
}

/// The job as its result leaves it (`Conflict` unless it is leased): done, or failed for good
/// on its last attempt, or queued again after a delay.
pub(crate) fn finished_job(
    job: &JobRecord,
    outcome: &JobOutcome,
    now: i64,
) -> StoreResult<JobRecord> {
    if job.state != JobState::Leased {
        return Err(StoreError::Conflict(format!(
            "job {} is {}, not leased: its result was taken already or its lease ran out",
            job.id,
            job.state.as_str()
        )));
    }
    let (state, step, report, not_before) = match outcome {
        JobOutcome::Succeeded { report, .. } => (JobState::Succeeded, None, report, job.not_before),
        JobOutcome::Failed { step, report, .. } if job.attempts >= MAX_JOB_ATTEMPTS => {
            (JobState::Failed, Some(step.clone()), report, job.not_before)
        }
        JobOutcome::Failed { step, report, .. } => {
            let retry_at = now + job_retry_delay_secs(job.attempts);
            (JobState::Queued, Some(step.clone()), report, retry_at)
        }
    };
    Ok(JobRecord {
        state,
        step,
        result: Some(report.clone()),
        not_before,
        lease_until: None,
        updated_at: now,
        ..job.clone()
    })
}

/// What a job's result changes besides the job: its deployment and where the certificate is
/// served. The audit events go to `events`, for the caller to append.
pub(crate) async fn record_job_effects(
    tx: &mut Transaction<'_, Any>,
    now: i64,
    job: &JobRecord,
    outcome: &JobOutcome,
    events: &mut Vec<NewAuditEvent>,
) -> StoreResult<()> {
    match (&job.managed_certificate_id, &job.certificate_id, outcome) {
        (Some(managed_id), _, JobOutcome::Succeeded { served_fingerprint, .. })
            if job.kind == JobKind::Remove =>
        {
            // Unless the target still serves a certificate, its files are gone.
            record_removal(tx, job, managed_id, served_fingerprint.is_some(), events).await
        }
        _ if job.kind == JobKind::Remove => Ok(()),
        (Some(managed_id), Some(certificate_id), _) => {
            record_deployment(tx, now, job, managed_id, certificate_id, outcome, events).await
        }
        // No key could be made or certified on the host: the deployment cannot follow.
        (Some(managed_id), None, JobOutcome::Failed { step, message, .. }) => {
            deployment_failed(tx, now, job, managed_id, step, message, events).await
        }
        _ => Ok(()),
    }
}

/// Carries a job's outcome to its deployment, when the job carried the managed certificate's
/// current version (a superseded job's result says nothing about what should be served), and
/// records where a verified certificate is served as a location.
async fn record_deployment(
    tx: &mut Transaction<'_, Any>,
    now: i64,
    job: &JobRecord,
    managed_id: &str,
    certificate_id: &str,
    outcome: &JobOutcome,
    events: &mut Vec<NewAuditEvent>,
) -> StoreResult<()> {
    let current: Option<String> =
        sqlx::query("SELECT current_certificate_id FROM managed_certificates WHERE id = $1")
            .bind(managed_id)
            .fetch_optional(&mut **tx)
            .await?
            .map(|row| row.try_get("current_certificate_id"))
            .transpose()?
            .flatten();
    if current.as_deref() != Some(certificate_id) {
        return Ok(());
    }
    let served_fingerprint = match outcome {
        JobOutcome::Failed { step, message, .. } => {
            return deployment_failed(tx, now, job, managed_id, step, message, events).await;
        }
        JobOutcome::Succeeded { served_fingerprint, .. } => served_fingerprint,
    };
    let verified = Verified {
        job,
        managed_id,
        certificate_id,
        served_fingerprint: served_fingerprint.as_deref(),
        now,
    };
    let (statements, verified_events) = verify_deployments(tx, &[verified]).await?;
    run_statements(tx, statements).await?;
    events.extend(verified_events);
    Ok(())
}

/// A `remove` job done: unless the target still serves a certificate (`left`, its files stayed),
/// it is no longer a location of any certificate.
async fn record_removal(
    tx: &mut Transaction<'_, Any>,
    job: &JobRecord,
    managed_id: &str,
    left: bool,
    events: &mut Vec<NewAuditEvent>,
) -> StoreResult<()> {
    let address = format!("{}/{}", agent_name(tx, &job.agent_id).await?, job.target);
    if !left {
        sqlx::query("DELETE FROM locations WHERE kind = $1 AND address = $2")
            .bind(LocationKind::Agent.as_str())
            .bind(&address)
            .execute(&mut **tx)
            .await?;
    }
    let details = json!({ "target": address, "job_id": job.id, "files_left_in_place": left });
    events.push(event(AuditAction::DeploymentRemoved, "managed_certificate", managed_id, details));
    Ok(())
}

async fn agent_name(tx: &mut Transaction<'_, Any>, agent_id: &str) -> StoreResult<String> {
    Ok(sqlx::query("SELECT name FROM agents WHERE id = $1")
        .bind(agent_id)
        .fetch_one(&mut **tx)
        .await?
        .try_get("name")?)
}

/// Marks the deployment `job` was for failed at `step`.
async fn deployment_failed(
    tx: &mut Transaction<'_, Any>,
    now: i64,
    job: &JobRecord,
    managed_id: &str,
    step: &str,
    message: &str,
    events: &mut Vec<NewAuditEvent>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE deployments SET state = 'failed', failed_step = $1, last_error = $2, \
         updated_at = $3 WHERE managed_certificate_id = $4 AND agent_id = $5 AND target = $6",
    )
    .bind(step)
    .bind(message)
    .bind(now)
    .bind(managed_id)
    .bind(&job.agent_id)
    .bind(&job.target)
    .execute(&mut **tx)
    .await?;
    let agent = agent_name(tx, &job.agent_id).await?;
    let details = json!({
        "agent": agent, "target": job.target, "job_id": job.id, "kind": job.kind.as_str(),
        "certificate_id": job.certificate_id, "step": step, "message": message,
        "attempt": job.attempts,
    });
    events.push(event(AuditAction::DeploymentFailed, "managed_certificate", managed_id, details));
    Ok(())
}
