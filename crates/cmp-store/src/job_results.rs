//! Agents' job results, recorded in batches. After a deployment to a fleet, thousands of
//! agents report within seconds; one transaction each (a dozen statements, each a round trip
//! to the database's one writer) would hold up the next jobs' hand-out behind them. The results
//! that come in while a batch is being recorded wait for the next batch, which records them all
//! in one transaction: the jobs read and updated in one statement each, the verified
//! deployments and their locations in a few multi-row statements, and one audit append.

use std::collections::{HashMap, HashSet};

use cmp_domain::{JobKind, LocationKind};
use serde_json::json;
use sqlx::{Any, Row, Transaction};

use crate::agents::{JOB_COLUMNS, event, finished_job, job_from_row, record_job_effects};
use crate::audit;
use crate::sql::{Arg, SqlBuilder, run_statements};
use crate::{
    AuditAction, AuditContext, JobOutcome, JobRecord, NewAuditEvent, SqlStore, StoreError,
    StoreResult,
};

/// Results per batch: a few hundred parameters per multi-row statement.
pub(crate) const RESULTS_PER_BATCH: usize = 200;

/// A job's result as an agent reports it (see [`crate::AgentStore::finish_job`]).
#[derive(Debug, Clone)]
pub struct JobResultItem {
    pub ctx: AuditContext,
    pub agent_id: String,
    pub job_id: String,
    pub outcome: JobOutcome,
}

type Answer = StoreResult<JobRecord>;

/// The results waiting for the next batch.
pub(crate) type JobResults = crate::batch::Batcher<JobResultItem, Answer>;

/// A verified deployment of the current version (see [`verify_deployments`]).
pub(crate) struct Verified<'a> {
    pub job: &'a JobRecord,
    pub managed_id: &'a str,
    pub certificate_id: &'a str,
    pub served_fingerprint: Option<&'a str>,
    pub now: i64,
}

impl SqlStore {
    /// Records a job's result with the others that come in meanwhile.
    pub(crate) async fn record_job_result(&self, result: JobResultItem) -> Answer {
        let store = self.clone();
        let serve = move |results: Vec<JobResultItem>| {
            let store = store.clone();
            async move { store.record_batch(&results).await }
        };
        self.job_results
            .submit(result, serve)
            .await
            .map_err(|e| StoreError::corrupt("job result", e))?
    }

    /// Records a batch of results in one transaction or, when that fails as a whole (a result
    /// taken by another replica meanwhile, a database error), each in its own, so that each
    /// gets its own answer.
    async fn record_batch(&self, results: &[JobResultItem]) -> Vec<Answer> {
        if results.len() > 1 {
            match self.record_together(results).await {
                Ok(answers) => return answers,
                Err(e) => {
                    tracing::debug!(error = %e, results = results.len(), "job results fell back")
                }
            }
        }
        let mut answers = Vec::with_capacity(results.len());
        for result in results {
            answers.push(self.finish_job_alone(result).await);
        }
        answers
    }

    /// Records results in one transaction (see `record_together`). For tests, which choose the
    /// batches.
    #[cfg(feature = "testing")]
    pub async fn record_job_results_together(
        &self,
        results: &[JobResultItem],
    ) -> StoreResult<Vec<Answer>> {
        self.record_together(results).await
    }

    /// Records results in one transaction: all, or (`Err`) none. A result refused on its own
    /// (another agent's job, one not leased) gets its error inside the `Ok`.
    async fn record_together(&self, results: &[JobResultItem]) -> StoreResult<Vec<Answer>> {
        let mut tx = self.begin().await?;
        let jobs = jobs_in(&mut tx, results.iter().map(|r| r.job_id.as_str())).await?;
        let mut answers = Vec::with_capacity(results.len());
        let mut taken = HashSet::new();
        let mut finished = Vec::new();
        for result in results {
            let answer = match jobs.get(&result.job_id) {
                Some(job) if job.agent_id == result.agent_id => {
                    finished_job(job, &result.outcome, result.ctx.now()).and_then(|done| {
                        if taken.insert(&job.id) {
                            finished.push((result, job, done.clone()));
                            Ok(done)
                        } else {
                            Err(StoreError::Conflict(format!("job {}: reported twice", job.id)))
                        }
                    })
                }
                _ => Err(StoreError::not_found("job", &result.job_id)),
            };
            answers.push(answer);
        }
        if finished.is_empty() {
            return Ok(answers);
        }
        update_jobs(&mut tx, finished.iter().map(|(_, _, done)| done)).await?;

        // The deployments: verified ones of the current version together, the rest (failures,
        // removals, older versions) one by one.
        let managed: Vec<&str> = finished
            .iter()
            .filter_map(|(_, job, _)| job.managed_certificate_id.as_deref())
            .collect();
        let current = current_versions(&mut tx, &managed).await?;
        let mut events: Vec<(&AuditContext, NewAuditEvent)> = Vec::new();
        let mut verified = Vec::new();
        for (result, job, _) in &finished {
            let outcome = &result.outcome;
            match (&job.managed_certificate_id, &job.certificate_id, outcome) {
                (
                    Some(managed_id),
                    Some(certificate_id),
                    JobOutcome::Succeeded { served_fingerprint, .. },
                ) if job.kind == JobKind::Deploy
                    && current.get(managed_id.as_str()) == Some(certificate_id) =>
                {
                    verified.push((
                        &result.ctx,
                        Verified {
                            job,
                            managed_id,
                            certificate_id,
                            served_fingerprint: served_fingerprint.as_deref(),
                            now: result.ctx.now(),
                        },
                    ));
                }
                _ => {
                    let mut own = Vec::new();
                    record_job_effects(&mut tx, result.ctx.now(), job, outcome, &mut own).await?;
                    events.extend(own.into_iter().map(|e| (&result.ctx, e)));
                }
            }
        }
        let (contexts, verified): (Vec<_>, Vec<_>) = verified.into_iter().unzip();
        let (mut statements, verified_events) = verify_deployments(&mut tx, &verified).await?;
        events.extend(contexts.into_iter().zip(verified_events));
        let attributed: Vec<_> = events.iter().map(|(ctx, e)| (*ctx, e)).collect();
        statements.extend(audit::append_statements(&mut tx, &attributed).await?.1);
        run_statements(&mut tx, statements).await?;
        tx.commit().await?;
        Ok(answers)
    }
}

/// The jobs with these ids, by id.
async fn jobs_in<'a>(
    tx: &mut Transaction<'_, Any>,
    ids: impl Iterator<Item = &'a str>,
) -> StoreResult<HashMap<String, JobRecord>> {
    let mut q = SqlBuilder::bulk(tx, &format!("{JOB_COLUMNS} WHERE id IN "));
    q.row(ids.map(|id| Arg::Text(id.to_string())));
    let mut jobs = HashMap::new();
    for row in q.query().fetch_all(&mut **tx).await? {
        let job = job_from_row(&row)?;
        jobs.insert(job.id.clone(), job);
    }
    Ok(jobs)
}

/// Writes the jobs as their results leave them, in one statement; `Err` unless each was still
/// leased (another replica took a result meanwhile: the batch falls back).
async fn update_jobs<'a>(
    tx: &mut Transaction<'_, Any>,
    jobs: impl Iterator<Item = &'a JobRecord>,
) -> StoreResult<()> {
    let mut q = SqlBuilder::bulk(
        tx,
        "WITH v (id, state, step, result, not_before, updated_at) AS (VALUES ",
    );
    let rows = jobs
        .map(|job| {
            Ok([
                Arg::Text(job.id.clone()),
                Arg::Text(job.state.as_str().to_string()),
                Arg::OptText(job.step.clone()),
                Arg::Text(crate::sql::to_json(&job.result)?),
                Arg::Int(job.not_before),
                Arg::Int(job.updated_at),
            ])
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let n = rows.len() as u64;
    q.rows(rows);
    q.push(
        ") UPDATE agent_jobs SET state = v.state, step = v.step, result = v.result, \
         not_before = v.not_before, lease_until = NULL, updated_at = v.updated_at \
         FROM v WHERE agent_jobs.id = v.id AND agent_jobs.state = 'leased'",
    );
    let updated = q.query().execute(&mut **tx).await?.rows_affected();
    if updated != n {
        return Err(StoreError::Conflict(format!(
            "{} of {n} jobs were no longer leased",
            n - updated
        )));
    }
    Ok(())
}

/// The current version of each of these managed certificates that has one.
async fn current_versions(
    tx: &mut Transaction<'_, Any>,
    managed: &[&str],
) -> StoreResult<HashMap<String, String>> {
    let mut current = HashMap::new();
    if managed.is_empty() {
        return Ok(current);
    }
    let mut q = SqlBuilder::bulk(
        tx,
        "SELECT id, current_certificate_id FROM managed_certificates WHERE id IN ",
    );
    let unique: HashSet<&str> = managed.iter().copied().collect();
    q.row(unique.into_iter().map(|id| Arg::Text(id.to_string())));
    for row in q.query().fetch_all(&mut **tx).await? {
        if let Some(version) = row.try_get::<Option<String>, _>("current_certificate_id")? {
            current.insert(row.try_get("id")?, version);
        }
    }
    Ok(current)
}

/// The statements that mark these deployments verified and record where each version is
/// served now (no longer the one before it), and their audit events, one per deployment in
/// order.
pub(crate) async fn verify_deployments(
    tx: &mut Transaction<'_, Any>,
    verified: &[Verified<'_>],
) -> StoreResult<(Vec<SqlBuilder>, Vec<NewAuditEvent>)> {
    if verified.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let names = agent_names(tx, verified.iter().map(|v| v.job.agent_id.as_str())).await?;
    let name_of = |agent_id: &str| {
        names.get(agent_id).cloned().ok_or_else(|| StoreError::not_found("agent", agent_id))
    };
    let agent = LocationKind::Agent.as_str();
    let (mut deployment_rows, mut location_rows) = (Vec::new(), Vec::new());
    // The addresses of each version, whose older locations there go.
    let mut addresses: HashMap<&str, Vec<Arg>> = HashMap::new();
    let (mut seen, mut events) = (HashSet::new(), Vec::new());
    for v in verified {
        let job = v.job;
        if !seen.insert((v.managed_id, job.agent_id.as_str(), job.target.as_str())) {
            // Two results for one deployment: left to the one-by-one path.
            return Err(StoreError::Conflict("two results for one deployment".into()));
        }
        deployment_rows.push([
            Arg::Text(v.managed_id.to_string()),
            Arg::Text(job.agent_id.clone()),
            Arg::Text(job.target.clone()),
            Arg::Text(v.certificate_id.to_string()),
            Arg::OptText(v.served_fingerprint.map(str::to_string)),
            Arg::Int(v.now),
        ]);
        let name = name_of(&job.agent_id)?;
        let address = format!("{name}/{}", job.target);
        location_rows.push([
            Arg::Text(uuid::Uuid::now_v7().to_string()),
            Arg::Text(v.certificate_id.to_string()),
            Arg::Text(agent.to_string()),
            Arg::Text(address.clone()),
            Arg::Int(v.now),
            Arg::Int(v.now),
        ]);
        addresses.entry(v.certificate_id).or_default().push(Arg::Text(address));
        let details = json!({
            "agent": name, "target": job.target, "job_id": job.id,
            "certificate_id": v.certificate_id, "served_fingerprint": v.served_fingerprint,
        });
        events.push(event(
            AuditAction::DeploymentVerified,
            "managed_certificate",
            v.managed_id,
            details,
        ));
    }
    let mut deployments = SqlBuilder::bulk(
        tx,
        "WITH v (managed_certificate_id, agent_id, target, certificate_id, served_fingerprint, \
         verified_at) AS (VALUES ",
    );
    deployments.rows(deployment_rows).push(
        ") UPDATE deployments SET state = 'verified', certificate_id = v.certificate_id, \
         served_fingerprint = v.served_fingerprint, verified_at = v.verified_at, \
         failed_step = NULL, last_error = NULL, updated_at = v.verified_at FROM v \
         WHERE deployments.managed_certificate_id = v.managed_certificate_id \
         AND deployments.agent_id = v.agent_id AND deployments.target = v.target",
    );
    let mut statements = vec![deployments];
    // Each version's older locations at these addresses, one statement per version.
    for (version, at) in addresses {
        let mut delete = SqlBuilder::bulk(tx, "DELETE FROM locations WHERE kind = ");
        delete.bind(Arg::Text(agent.to_string())).push(" AND certificate_id <> ");
        delete.bind(Arg::Text(version.to_string())).push(" AND address IN ").row(at);
        statements.push(delete);
    }
    let mut locations = SqlBuilder::bulk(
        tx,
        "INSERT INTO locations (id, certificate_id, kind, address, first_seen, last_seen) VALUES ",
    );
    locations.rows(location_rows).push(
        " ON CONFLICT (certificate_id, kind, address) DO UPDATE SET last_seen = excluded.last_seen",
    );
    statements.push(locations);
    Ok((statements, events))
}

/// The names of these agents, by id.
async fn agent_names<'a>(
    tx: &mut Transaction<'_, Any>,
    ids: impl Iterator<Item = &'a str>,
) -> StoreResult<HashMap<String, String>> {
    let unique: HashSet<&str> = ids.collect();
    let mut q = SqlBuilder::bulk(tx, "SELECT id, name FROM agents WHERE id IN ");
    q.row(unique.into_iter().map(|id| Arg::Text(id.to_string())));
    let mut names = HashMap::new();
    for row in q.query().fetch_all(&mut **tx).await? {
        names.insert(row.try_get("id")?, row.try_get("name")?);
    }
    Ok(names)
}
