//! Handing jobs to waiting agents in batches. A deployment to a fleet wakes thousands of long
//! polls at once; one at a time, each would lease its job in a transaction of its own, read the
//! same certificate, chain and key again and audit its key hand-over in another transaction,
//! all through the database's one writer. Here the polls that ask while a batch is being
//! handed out wait for the next one: its jobs are leased in one transaction, each version's
//! material is read once, the keys are sealed to their agents on the blocking threads (both
//! cores), and the hand-overs are audited in one append.

use std::collections::HashMap;
use std::sync::Arc;

use cmp_api::{JobAssignment, LocalKeyRequest};
use cmp_domain::{Clock, JobKind};
use cmp_secrets::SecretStore;
use cmp_store::batch::Batcher;
use cmp_store::{
    AgentRecord, AuditAction, AuditContext, JobRecord, NewAuditEvent, Scope, Store, StoreError,
};
use zeroize::Zeroizing;

use super::fleet::{FleetError, FleetResult, agent_caller, sealed_key};
use crate::core::context::REQUEST_ID;
use crate::state::unix_micros;

/// Polls per batch: the lease statement takes one parameter per agent.
const MAX_BATCH: usize = 1_000;
/// Seals per blocking task: enough work to be worth a hand-off to another thread.
const SEALS_PER_TASK: usize = 64;

/// A waiting poll.
struct Poll {
    agent: Arc<AgentRecord>,
    /// The key of the certificate the agent presented: server-made keys are sealed to it.
    public_key: Arc<[u8]>,
    /// The poll's request, for the audit events of what it is handed (the batch is served in
    /// a task of its own, outside the request).
    request_id: Option<String>,
}
type Answer = FleetResult<Option<JobAssignment>>;
/// A poll's place in a batch: its leased job, if any, with the assignment made so far (or why
/// it could not be made).
type Slot = Option<(JobRecord, FleetResult<JobAssignment>)>;

/// The batching hand-out of jobs (see the module's documentation).
#[derive(Clone)]
pub(super) struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    secrets: Arc<dyn SecretStore>,
    clock: Arc<dyn Clock>,
    /// How long a leased job stays with its agent, seconds.
    lease_secs: i64,
    polls: Arc<Batcher<Poll, Answer>>,
}

/// What a version's job carries, read once per batch.
struct Material {
    certificate_pem: String,
    chain_pem: String,
    /// The server-made key (PKCS#8 PEM), when the server has it.
    key_pem: Option<Zeroizing<String>>,
    serial_number: String,
}

impl Dispatcher {
    pub(super) fn new(
        store: Arc<dyn Store>,
        secrets: Arc<dyn SecretStore>,
        clock: Arc<dyn Clock>,
        lease_secs: i64,
    ) -> Dispatcher {
        // A poll whose agent went away gets no job: it would stay leased to no one.
        let polls = Arc::new(Batcher::new(MAX_BATCH).leaving_out_abandoned());
        Dispatcher { inner: Arc::new(Inner { store, secrets, clock, lease_secs, polls }) }
    }

    /// The agent's next due job, leased to it with what it needs, or `None` when none is due.
    pub(super) async fn next(&self, agent: Arc<AgentRecord>, public_key: Arc<[u8]>) -> Answer {
        let dispatcher = self.clone();
        let serve = move |polls: Vec<Poll>| {
            let dispatcher = dispatcher.clone();
            async move { dispatcher.serve(polls).await }
        };
        self.inner
            .polls
            .submit(
                Poll { agent, public_key, request_id: REQUEST_ID.try_with(Clone::clone).ok() },
                serve,
            )
            .await
            .map_err(|e| FleetError::Internal(format!("the job dispatch: {e}")))?
    }

    /// Answers a batch of polls, one answer each, in order. A poll that went away leaves its
    /// job leased: the lease runs out, and the job is handed out again.
    async fn serve(&self, polls: Vec<Poll>) -> Vec<Answer> {
        match self.hand_out(&polls).await {
            Ok(answers) => answers,
            Err(e) => {
                tracing::warn!(error = %e, polls = polls.len(), "could not lease the polls' jobs");
                polls.iter().map(|_| Err(e.for_each_agent())).collect()
            }
        }
    }

    /// Leases the next due job of each agent (one per agent: a second poll of the same agent
    /// gets `None`) and makes its assignment. `Err` when nothing could be leased; otherwise
    /// one answer per agent, in order.
    async fn hand_out(&self, agents: &[Poll]) -> FleetResult<Vec<Answer>> {
        let inner = &self.inner;
        let now = inner.clock.now().unix_timestamp();
        let mut ids: Vec<String> = agents.iter().map(|p| p.agent.id.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        let leased = inner.store.lease_jobs(&ids, now, now + inner.lease_secs).await?;
        let mut jobs: HashMap<String, JobRecord> =
            leased.into_iter().map(|job| (job.agent_id.clone(), job)).collect();
        let mut assignments: Vec<Slot> = agents
            .iter()
            .map(|poll| {
                let job = jobs.remove(&poll.agent.id)?;
                let assignment = assignment(&job);
                Some((job, assignment))
            })
            .collect();
        if assignments.iter().all(Option::is_none) {
            return Ok(assignments.into_iter().map(|_| Ok(None)).collect());
        }
        self.add_key_requests(&mut assignments).await;
        let materials = self.materials(&assignments).await;
        let sealed = seal_keys(agents, &assignments, &materials).await;
        self.add_material(agents, &mut assignments, &materials, sealed).await;
        Ok(assignments
            .into_iter()
            .map(|slot| match slot {
                Some((_, assignment)) => assignment.map(Some),
                None => Ok(None),
            })
            .collect())
    }

    /// What a `renew_with_local_key` job asks the agent to make: read once per managed
    /// certificate.
    async fn add_key_requests(&self, assignments: &mut [Slot]) {
        let mut requests: HashMap<String, FleetResult<LocalKeyRequest>> = HashMap::new();
        for (job, result) in assignments.iter_mut().flatten() {
            if job.kind != JobKind::RenewWithLocalKey || result.is_err() {
                continue;
            }
            let managed_id = job.managed_certificate_id.clone().unwrap_or_default();
            if !requests.contains_key(&managed_id) {
                let request = self.key_request(&managed_id).await;
                if let Err(e) = &request {
                    tracing::warn!(error = %e, managed = %managed_id, "could not read a key request");
                }
                requests.insert(managed_id.clone(), request);
            }
            match (&requests[&managed_id], result.as_mut()) {
                (Ok(request), Ok(assignment)) => assignment.key_request = Some(request.clone()),
                (Err(e), _) => *result = Err(e.for_each_agent()),
                (_, Err(_)) => {}
            }
        }
    }

    async fn key_request(&self, managed_id: &str) -> FleetResult<LocalKeyRequest> {
        let spec = self.inner.store.get_managed(managed_id, &Scope::All).await?.spec;
        Ok(LocalKeyRequest {
            key_type: spec.key_type.unwrap_or_else(|| "ecdsa_p256".into()),
            common_name: spec.common_name,
            dns_names: spec.dns_names,
            ip_addresses: spec.ip_addresses.iter().map(ToString::to_string).collect(),
        })
    }

    /// The certificate, chain and key of each version the batch's jobs carry.
    async fn materials(&self, assignments: &[Slot]) -> HashMap<String, FleetResult<Arc<Material>>> {
        let mut materials = HashMap::new();
        for (job, _) in assignments.iter().flatten() {
            if let Some(id) = &job.certificate_id
                && !materials.contains_key(id)
            {
                let material = self.material(id).await.map(Arc::new);
                if let Err(e) = &material {
                    tracing::warn!(error = %e, certificate = %id, "could not read what a job carries");
                }
                materials.insert(id.clone(), material);
            }
        }
        materials
    }

    async fn material(&self, certificate_id: &str) -> FleetResult<Material> {
        let store = &self.inner.store;
        let leaf = store.get_certificate_der(certificate_id, &Scope::All).await?;
        let chain = store.certificate_chain(certificate_id, &Scope::All).await?;
        let links = store.certificate_links(certificate_id, &Scope::All).await?;
        let pem_of = |der: &[u8]| pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()));
        let key_pem = match links.key_secret {
            Some(secret) => {
                let key = self.inner.secrets.get(&secret).await?;
                Some(Zeroizing::new(pem::encode(&pem::Pem::new(
                    "PRIVATE KEY",
                    key.expose().as_slice(),
                ))))
            }
            None => None,
        };
        Ok(Material {
            certificate_pem: pem_of(&leaf),
            chain_pem: chain.iter().map(|der| pem_of(der)).collect(),
            key_pem,
            serial_number: links.serial_number,
        })
    }

    /// Puts each job's certificate, chain and sealed key in its assignment, and audits the
    /// key hand-overs in one append: a key goes out only once its hand-over is recorded.
    async fn add_material(
        &self,
        agents: &[Poll],
        assignments: &mut [Slot],
        materials: &HashMap<String, FleetResult<Arc<Material>>>,
        mut sealed: HashMap<usize, Result<cmp_pki::Sealed, String>>,
    ) {
        let now_us = unix_micros(self.inner.clock.now());
        let mut handed_over = Vec::new();
        for (i, slot) in assignments.iter_mut().enumerate() {
            let Some((job, result)) = slot else { continue };
            let (Some(certificate_id), Ok(assignment)) = (&job.certificate_id, result.as_mut())
            else {
                continue;
            };
            let material = match &materials[certificate_id] {
                Ok(material) => material,
                Err(e) => {
                    *result = Err(e.for_each_agent());
                    continue;
                }
            };
            assignment.certificate_pem = Some(material.certificate_pem.clone());
            assignment.chain_pem = Some(material.chain_pem.clone());
            match sealed.remove(&i) {
                Some(Ok(sealed)) => assignment.sealed_key = Some(sealed_key(sealed)),
                Some(Err(e)) => {
                    let detail = format!("the agent's certificate key: {e}");
                    *result = Err(FleetError::Conflict(detail));
                    continue;
                }
                None => continue,
            }
            let Poll { agent, request_id, .. } = &agents[i];
            let event = NewAuditEvent {
                action: AuditAction::CertificateKeyDownloaded,
                entity_type: "certificate".into(),
                entity_id: certificate_id.clone(),
                details: serde_json::json!({
                    "to_agent": agent.name, "target": job.target, "job_id": job.id,
                    "serial_number": material.serial_number,
                }),
            };
            let ctx = AuditContext {
                actor: agent_caller(agent).actor,
                request_id: request_id.clone(),
                now_us,
            };
            handed_over.push((i, (ctx, event)));
        }
        if handed_over.is_empty() {
            return;
        }
        let (slots, events): (Vec<usize>, Vec<_>) = handed_over.into_iter().unzip();
        if let Err(e) = self.inner.store.append_audits(&events).await {
            let e = FleetError::from(e);
            tracing::warn!(error = %e, keys = slots.len(), "could not record the key hand-overs");
            for i in slots {
                if let Some((_, assignment)) = &mut assignments[i] {
                    *assignment = Err(e.for_each_agent());
                }
            }
        }
    }
}

/// The assignment of a leased job, without its material yet.
fn assignment(job: &JobRecord) -> FleetResult<JobAssignment> {
    let lease_until = job
        .lease_until
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .ok_or_else(|| FleetError::Internal(format!("job {} has no lease", job.id)))?;
    Ok(JobAssignment {
        id: job.id.clone(),
        kind: job.kind,
        target: job.target.clone(),
        attempt: job.attempts,
        lease_until,
        certificate_id: job.certificate_id.clone(),
        certificate_pem: None,
        chain_pem: None,
        sealed_key: None,
        key_request: None,
    })
}

/// Seals each server-made key to the agent its job goes to, spread over the blocking
/// threads: one seal is an ephemeral key agreement, tens of microseconds, and a batch has
/// hundreds. Keyed by the job's place in the batch.
async fn seal_keys(
    agents: &[Poll],
    assignments: &[Slot],
    materials: &HashMap<String, FleetResult<Arc<Material>>>,
) -> HashMap<usize, Result<cmp_pki::Sealed, String>> {
    let mut work = Vec::new();
    for (i, slot) in assignments.iter().enumerate() {
        let Some((job, Ok(_))) = slot else { continue };
        let Some(Ok(material)) = job.certificate_id.as_ref().map(|id| &materials[id]) else {
            continue;
        };
        if material.key_pem.is_some() {
            work.push((i, agents[i].public_key.clone(), material.clone(), job.id.clone()));
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    while !work.is_empty() {
        let chunk: Vec<_> = work.drain(..work.len().min(SEALS_PER_TASK)).collect();
        tasks.spawn_blocking(move || {
            chunk
                .into_iter()
                .map(|(i, public_key, material, job_id)| {
                    let key = material.key_pem.as_deref().map(String::as_bytes).unwrap_or_default();
                    // Bound to the job: a sealed key replayed into another job does not open.
                    let sealed = cmp_pki::seal(&public_key, key, job_id.as_bytes())
                        .map_err(|e| e.to_string());
                    (i, sealed)
                })
                .collect::<Vec<_>>()
        });
    }
    let mut sealed = HashMap::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(chunk) => sealed.extend(chunk),
            Err(e) => tracing::error!(error = %e, "a sealing task failed"),
        }
    }
    sealed
}

impl FleetError {
    /// This error as each agent of a batch is told it (the batch logs its detail once).
    fn for_each_agent(&self) -> FleetError {
        match self {
            FleetError::Store(StoreError::Database(_)) => {
                FleetError::Unavailable("the database did not answer; try again")
            }
            FleetError::Secret(cmp_secrets::SecretError::Unavailable(_)) => {
                FleetError::Unavailable("the secret store did not answer; try again")
            }
            other => FleetError::Internal(other.to_string()),
        }
    }
}
