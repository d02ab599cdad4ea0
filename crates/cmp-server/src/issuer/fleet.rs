//! The fleet of host agents, without HTTP: bootstrap tokens, enrolment with a CSR made on the
//! host, identity renewal, check-ins, where managed certificates are deployed, and handing
//! jobs to agents (held open until one is due) and taking their results.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cmp_api::{
    AgentHeartbeat, BootstrapTokenCreate, DeploymentTarget, DeploymentsSet, DiscoveryReport,
    DiscoveryTaken, EnrollRequest, JobAssignment, JobResult, SealedKey,
};
use cmp_domain::{
    Clock, JobKind, JobState, LocationKind, agent::valid_agent_name, agent::valid_target_name,
};
use cmp_secrets::SecretStore;
use cmp_store::{
    AgentRecord, AuditAction, AuditContext, BootstrapTokenRecord, DeploymentRecord, Heartbeat,
    JobOutcome, JobRecord, NewAgent, NewAuditEvent, NewBootstrapToken, Scope, Store, StoreError,
};
use tokio::sync::{Notify, watch};

use super::dispatch::Dispatcher;
use super::{IssueError, Issuer};
use crate::auth::Caller;
use crate::core::context::caller_context;
use crate::inventory::{ImportInput, Inventory};
use crate::platform_ca::{IssuedClientCert, PlatformCa};
use crate::state::unix_micros;
use cmp_domain::KeySource;

/// Prefix of bootstrap tokens, apart from API tokens' `cmp_` so that neither is taken for the
/// other.
pub const BOOTSTRAP_PREFIX: &str = "cmp_boot_";
/// Most files one discovery may report.
const MAX_DISCOVERED_FILES: usize = 10_000;
/// Longest a job poll is held open.
pub const MAX_WAIT_SECS: u64 = 55;
const DEFAULT_WAIT_SECS: u64 = 25;
/// How long an agent holds a job before it goes back to the queue: the longest deployment
/// (config test, reload and verification, each bounded by the agent) with room to report.
const JOB_LEASE_SECS: i64 = 300;
/// How often the jobs of waiting agents are looked for (what another replica, or the issuance
/// of a new version, queued).
const BELL_INTERVAL: Duration = Duration::from_millis(250);
/// How often agents due for a scheduled discovery are looked for.
const DISCOVERY_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// Why a fleet call was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The bootstrap token is unknown, used, revoked or expired.
    #[error("the bootstrap token is unknown, used, revoked or expired")]
    BadBootstrapToken,
    /// One field of what was asked has a bad value.
    #[error("{field}: {detail}")]
    BadField { field: &'static str, detail: String },
    /// The CSR cannot be read, its signature does not verify, or it names someone else.
    #[error("csr: {0}")]
    InvalidCsr(String),
    /// It conflicts with what exists (a managed certificate whose key the server does not have).
    #[error("{0}")]
    Conflict(String),
    /// The route is for enrolled agents, and the caller is not one.
    #[error("agent routes take an enrolled agent's client certificate, not an API token")]
    NotAnAgent,
    /// The issuance of an agent-made key's certificate was refused or failed.
    #[error(transparent)]
    Issue(#[from] IssueError),
    /// What an agent discovered could not be stored.
    #[error(transparent)]
    Inventory(#[from] crate::inventory::InventoryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] cmp_secrets::SecretError),
    /// The database or the secret store did not answer (the detail is logged where it
    /// happened).
    #[error("{0}")]
    Unavailable(&'static str),
    /// A bug or corrupt stored data; the detail goes to the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type FleetResult<T> = Result<T, FleetError>;

impl FleetError {
    fn bad_field(field: &'static str, detail: impl Into<String>) -> Self {
        FleetError::BadField { field, detail: detail.into() }
    }
}

/// Agents waiting for a job, each woken when one is due.
#[derive(Debug, Default)]
pub struct JobBell {
    waiting: Mutex<HashMap<String, Arc<Notify>>>,
    /// The server is stopping: waits end at once, so that no long poll holds up the stop.
    closed: AtomicBool,
}

impl JobBell {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Ends every wait, now and from now on.
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        for notify in self.waiting.lock().unwrap_or_else(|e| e.into_inner()).values() {
            notify.notify_one();
        }
    }

    fn enter(&self, agent_id: &str) -> Arc<Notify> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.entry(agent_id.to_string()).or_default().clone()
    }

    fn leave(&self, agent_id: &str) {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(agent_id);
    }

    fn anyone_waiting(&self) -> bool {
        !self.waiting.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// Wakes the agent's poll, or keeps the wake-up for its next wait.
    fn ring(&self, agent_id: &str) {
        if let Some(notify) = self.waiting.lock().unwrap_or_else(|e| e.into_inner()).get(agent_id) {
            notify.notify_one();
        }
    }
}

/// The fleet workflow (issuer role).
pub struct Fleet {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    agent_ca: Arc<PlatformCa>,
    /// Issues the certificates of keys that agents make.
    issuer: Arc<Issuer>,
    /// Takes in what agents discover on their hosts.
    inventory: Arc<Inventory>,
    bell: JobBell,
    /// Hands out the jobs of woken polls in batches.
    dispatcher: Dispatcher,
    /// How often each agent is asked to discover unasked, seconds (0: never).
    discovery_interval_secs: i64,
}

impl Fleet {
    pub fn new(
        store: Arc<dyn Store>,
        secrets: Arc<dyn SecretStore>,
        clock: Arc<dyn Clock>,
        agent_ca: Arc<PlatformCa>,
        issuer: Arc<Issuer>,
        inventory: Arc<Inventory>,
        discovery_interval_hours: u64,
    ) -> Fleet {
        let dispatcher = Dispatcher::new(store.clone(), secrets, clock.clone(), JOB_LEASE_SECS);
        let bell = JobBell::default();
        let discovery_interval_secs =
            i64::try_from(discovery_interval_hours.saturating_mul(3_600)).unwrap_or(i64::MAX);
        Fleet {
            store,
            clock,
            agent_ca,
            issuer,
            inventory,
            bell,
            dispatcher,
            discovery_interval_secs,
        }
    }

    fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    fn context(&self, caller: &Caller) -> AuditContext {
        caller_context(caller, unix_micros(self.clock.now()))
    }

    fn agent_context(&self, agent: &AgentRecord) -> AuditContext {
        let caller = agent_caller(agent);
        self.context(&caller)
    }

    /// The agent CA's certificate, PEM: what agents' certificates chain to.
    pub fn agent_ca_pem(&self) -> &str {
        self.agent_ca.cert_pem()
    }

    /// A new single-use bootstrap token; its secret is returned this once.
    pub async fn create_bootstrap_token(
        &self,
        caller: &Caller,
        asked: &BootstrapTokenCreate,
    ) -> FleetResult<(String, BootstrapTokenRecord)> {
        let hours = asked.expires_in_hours.unwrap_or(24);
        if !(1..=720).contains(&hours) {
            return Err(FleetError::bad_field("expires_in_hours", "between 1 and 720"));
        }
        cmp_store::validate_labels(&asked.labels)
            .map_err(|e| FleetError::bad_field("labels", e))?;
        let secret = format!(
            "{BOOTSTRAP_PREFIX}{}",
            crate::auth::new_token_secret().trim_start_matches(crate::auth::TOKEN_PREFIX)
        );
        let token = NewBootstrapToken {
            token_hash: crate::auth::token_hash(&secret),
            labels: asked.labels.clone(),
            expires_at: self.now() + hours * 3_600,
        };
        let record = self.store.create_bootstrap_token(&self.context(caller), &token).await?;
        Ok((secret, record))
    }

    /// Enrols a host: checks its CSR (signature, and its name as common name), uses up the
    /// token and records the agent with the certificate the agent CA makes for the CSR's key.
    /// Nothing is written unless all of it holds.
    pub async fn enroll(
        &self,
        asked: &EnrollRequest,
    ) -> FleetResult<(AgentRecord, IssuedClientCert)> {
        if !valid_agent_name(&asked.name) {
            return Err(FleetError::bad_field(
                "name",
                "1-63 letters, digits, '.', '-' or '_', starting with a letter or digit",
            ));
        }
        if !asked.token.expose().starts_with(BOOTSTRAP_PREFIX) {
            return Err(FleetError::BadBootstrapToken);
        }
        let issued = self.sign_identity(&asked.name, &asked.csr)?;
        let agent = NewAgent {
            name: asked.name.clone(),
            cert_fingerprint: issued.fingerprint.clone(),
            cert_not_after: issued.not_after.unix_timestamp(),
        };
        let ctx = AuditContext {
            actor: format!("agent:{}", asked.name),
            request_id: crate::core::context::REQUEST_ID.try_with(|id| id.clone()).ok(),
            now_us: unix_micros(self.clock.now()),
        };
        let token_hash = crate::auth::token_hash(asked.token.expose());
        match self.store.enroll_agent(&ctx, &token_hash, &agent).await {
            Ok(record) => Ok((record, issued)),
            Err(StoreError::NotFound { entity: "bootstrap token", .. }) => {
                Err(FleetError::BadBootstrapToken)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A new certificate for the agent's new key, before its current one ends. The one it
    /// `presented` stays accepted until the new one is first used.
    pub async fn renew_identity(
        &self,
        agent: &AgentRecord,
        presented: &str,
        csr: &str,
    ) -> FleetResult<IssuedClientCert> {
        let issued = self.sign_identity(&agent.name, csr)?;
        let ctx = self.agent_context(agent);
        let not_after = issued.not_after.unix_timestamp();
        let new = &issued.fingerprint;
        self.store.renew_agent_identity(&ctx, &agent.id, presented, new, not_after).await?;
        Ok(issued)
    }

    fn sign_identity(&self, name: &str, csr: &str) -> FleetResult<IssuedClientCert> {
        let csr = cmp_pki::parse_csr(csr.as_bytes())
            .map_err(|e| FleetError::InvalidCsr(e.to_string()))?;
        if csr.common_name.as_deref() != Some(name) {
            return Err(FleetError::InvalidCsr(format!(
                "its common name is {:?}; an agent's CSR names the agent ({name:?})",
                csr.common_name.unwrap_or_default()
            )));
        }
        self.agent_ca
            .issue_client_certificate(&csr.der, name, self.clock.now())
            .map_err(|e| FleetError::Internal(format!("{e:#}")))
    }

    /// Records a check-in.
    pub async fn heartbeat(&self, agent: &AgentRecord, beat: &AgentHeartbeat) -> FleetResult<()> {
        let targets =
            serde_json::to_value(&beat.targets).map_err(|e| FleetError::Internal(e.to_string()))?;
        let heartbeat = Heartbeat {
            hostname: beat.hostname.clone(),
            version: beat.version.clone(),
            os: beat.os.clone(),
            targets,
        };
        self.store.record_heartbeat(&agent.id, &heartbeat, self.now()).await?;
        Ok(())
    }

    /// The agent's next job, leased to it; held open up to `wait_secs` until one is due. A
    /// server-made key is sealed to `public_key`, the key of the certificate the agent
    /// presented on this connection.
    pub async fn next_job(
        &self,
        agent: &Arc<AgentRecord>,
        public_key: &Arc<[u8]>,
        wait_secs: Option<u64>,
    ) -> FleetResult<Option<JobAssignment>> {
        let wait = Duration::from_secs(wait_secs.unwrap_or(DEFAULT_WAIT_SECS).min(MAX_WAIT_SECS));
        let deadline = tokio::time::Instant::now() + wait;
        let bell = self.bell.enter(&agent.id);
        let job = loop {
            match self.dispatcher.next(agent.clone(), public_key.clone()).await {
                Ok(None) => {}
                done => break done,
            }
            // The server is stopping: answer now, and the agent's next poll finds the next.
            if self.bell.is_closed()
                || tokio::time::timeout_at(deadline, bell.notified()).await.is_err()
            {
                break Ok(None);
            }
        };
        self.bell.leave(&agent.id);
        job
    }

    /// The agent restarted: the jobs it held go back to the queue at once, instead of waiting
    /// for their leases to run out.
    pub async fn release_jobs(&self, agent: &AgentRecord) -> FleetResult<u64> {
        let released = self.store.release_jobs(&agent.id, self.now()).await?;
        if released > 0 {
            self.bell.ring(&agent.id);
        }
        Ok(released)
    }

    /// The certificate for a key the agent made for its `renew_with_local_key` job `job_id`:
    /// the CSR is issued like any request of the managed certificate (policy, approval, the
    /// CA), and the job ends with it. The certificate comes to the agent as a `deploy` job
    /// once the request is issued. A refused CSR fails the job at step `issue`.
    pub async fn issue_for_local_key(
        &self,
        agent: &AgentRecord,
        job_id: &str,
        csr: &str,
    ) -> FleetResult<cmp_store::RequestRecord> {
        let job = self.held_job(agent, job_id, JobKind::RenewWithLocalKey, "a CSR").await?;
        let managed_id = job.managed_certificate_id.as_deref().unwrap_or_default();
        let managed = self.store.get_managed(managed_id, &Scope::All).await?;
        let ctx = self.agent_context(agent);
        let (outcome, issued) =
            match self.issuer.issue_for_agent_key(&ctx, &managed, csr, job_id).await {
                Ok((request, _)) => {
                    let report = serde_json::json!([{
                        "name": "csr", "ok": true,
                        "output": format!("request {} is {}", request.id, request.state.as_str()),
                    }]);
                    (JobOutcome::Succeeded { served_fingerprint: None, report }, Ok(request))
                }
                Err(e) => {
                    let report =
                        serde_json::json!([{ "name": "issue", "ok": false, "output": "" }]);
                    let message = crate::error::cut(&e.to_string(), 2_000);
                    (JobOutcome::Failed { step: "issue".into(), message, report }, Err(e.into()))
                }
            };
        self.store.finish_job(&ctx, &agent.id, job_id, &outcome).await?;
        issued
    }

    /// Queues a `discover` job for an agent (or returns the one on its way).
    pub async fn queue_discovery(&self, caller: &Caller, agent: &str) -> FleetResult<JobRecord> {
        let agent = self.store.get_agent(agent).await?;
        let job = self.store.queue_discover_job(&self.context(caller), &agent.id).await?;
        self.bell.ring(&agent.id);
        Ok(job)
    }

    /// Queues a `discover` job for each enabled agent that has not discovered for
    /// `issuer.agent_discovery_interval_hours` (counted from its enrolment before its first),
    /// and wakes it: the number queued.
    pub async fn queue_scheduled_discoveries(&self) -> FleetResult<usize> {
        if self.discovery_interval_secs == 0 {
            return Ok(0);
        }
        let ctx = crate::core::context::system_context("scheduler", unix_micros(self.clock.now()));
        let due_before = self.now().saturating_sub(self.discovery_interval_secs);
        let queued = self.store.queue_scheduled_discoveries(&ctx, due_before).await?;
        for agent in &queued {
            self.bell.ring(agent);
        }
        Ok(queued.len())
    }

    /// Takes in what the agent's `discover` job `job_id` found: each file's certificates go
    /// into the inventory through the import path (de-duplicated), with a `file` location
    /// `<agent>:<path>`; the job ends with the counts.
    pub async fn take_discovery(
        &self,
        agent: &AgentRecord,
        job_id: &str,
        report: &DiscoveryReport,
    ) -> FleetResult<DiscoveryTaken> {
        self.held_job(agent, job_id, JobKind::Discover, "a discovery").await?;
        if report.files.len() > MAX_DISCOVERED_FILES {
            let detail = format!("at most {MAX_DISCOVERED_FILES} files per discovery");
            return Err(FleetError::bad_field("files", detail));
        }
        // Checked before anything is imported: the report is taken whole or not at all.
        if let Some((i, _)) = report.files.iter().enumerate().find(|(_, f)| {
            !f.path.starts_with('/') || f.path.len() > 900 || f.path.chars().any(char::is_control)
        }) {
            let detail = format!("files[{i}].path: an absolute path of at most 900 bytes");
            return Err(FleetError::bad_field("files", detail));
        }
        // Discovered certificates have no owner until someone gives them one.
        let caller = Caller { scope: Scope::All, ..agent_caller(agent) };
        let mut taken = DiscoveryTaken { files: 0, created: 0, known: 0, refused: 0 };
        for file in &report.files {
            let location = format!("{}:{}:{}", LocationKind::File.as_str(), agent.name, file.path);
            let input = ImportInput {
                data: file.certificates_pem.as_bytes(),
                password: None,
                owner: None,
                location: Some(&location),
                partial: true,
            };
            let imported = match self.inventory.import(&caller, input).await {
                Ok(imported) => imported,
                // No certificate in what the agent sent for this file: nothing of it to take.
                Err(crate::inventory::InventoryError::Refused { .. }) => {
                    taken.refused += 1;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            taken.files += 1;
            taken.created += imported.created as u64;
            taken.known += (imported.already_known + imported.known_elsewhere) as u64;
        }
        let mut steps = vec![serde_json::json!({
            "name": "discover", "ok": true,
            "output": format!("{} files: {} new certificates, {} known", taken.files, taken.created, taken.known),
        })];
        steps.extend(report.unreadable.iter().map(|u| serde_json::json!(u)));
        let ctx = self.agent_context(agent);
        let outcome = JobOutcome::Succeeded { served_fingerprint: None, report: steps.into() };
        self.store.finish_job(&ctx, &agent.id, job_id, &outcome).await?;
        let event = NewAuditEvent {
            action: AuditAction::AgentDiscoveryReported,
            entity_type: "agent".into(),
            entity_id: agent.id.clone(),
            details: serde_json::json!({
                "job_id": job_id, "files": taken.files, "created": taken.created,
                "known": taken.known, "refused": taken.refused,
                "unreadable": report.unreadable.len(),
            }),
        };
        self.store.append_audit(&ctx, &event).await?;
        Ok(taken)
    }

    /// The agent's job `job_id`, when it is of `kind` and the agent holds it (`NotFound` for
    /// another agent's; `Conflict` otherwise): what an answer of the job (`what`) needs.
    async fn held_job(
        &self,
        agent: &AgentRecord,
        job_id: &str,
        kind: JobKind,
        what: &str,
    ) -> FleetResult<JobRecord> {
        let job = self.store.get_job(&agent.id, job_id).await?;
        if job.kind != kind || job.state != JobState::Leased {
            return Err(FleetError::Conflict(format!(
                "job {job_id} is a {} job, {}: only a held {} job takes {what}",
                job.kind.as_str(),
                job.state.as_str(),
                kind.as_str()
            )));
        }
        Ok(job)
    }

    /// Takes the agent's result of a job it holds.
    pub async fn finish_job(
        &self,
        agent: &AgentRecord,
        job_id: &str,
        result: &JobResult,
    ) -> FleetResult<JobRecord> {
        let report =
            serde_json::to_value(&result.steps).map_err(|e| FleetError::Internal(e.to_string()))?;
        let outcome = if result.succeeded {
            if let Some(fp) = &result.served_fingerprint
                && !(fp.len() == 64 && fp.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(FleetError::bad_field("served_fingerprint", "64 hex digits (SHA-256)"));
            }
            let served = result.served_fingerprint.as_ref().map(|f| f.to_lowercase());
            match self.served_elsewise(agent, job_id, served.as_deref()).await? {
                // What the target serves is not what the job carried: not a deployment.
                Some(expected) => JobOutcome::Failed {
                    step: "verify".into(),
                    message: format!(
                        "the agent reports that the target serves {}, not this version ({expected})",
                        served.unwrap_or_default()
                    ),
                    report,
                },
                None => JobOutcome::Succeeded { served_fingerprint: served, report },
            }
        } else {
            let step = result
                .failed_step
                .clone()
                .ok_or_else(|| FleetError::bad_field("failed_step", "required on a failure"))?;
            let message = result.message.clone().unwrap_or_default();
            JobOutcome::Failed { step, message: crate::error::cut(&message, 2_000), report }
        };
        let job =
            self.store.finish_job(&self.agent_context(agent), &agent.id, job_id, &outcome).await?;
        Ok(job)
    }

    /// The fingerprint of the certificate the agent's job `job_id` carried, when the target is
    /// reported to serve another one (`None`: it serves that one, or nothing was verified).
    async fn served_elsewise(
        &self,
        agent: &AgentRecord,
        job_id: &str,
        served: Option<&str>,
    ) -> FleetResult<Option<String>> {
        let Some(served) = served else { return Ok(None) };
        let job = self.store.get_job(&agent.id, job_id).await?;
        // Only a deployment says what should be served (a remove job reports what still is).
        let (JobKind::Deploy, Some(certificate_id)) = (job.kind, job.certificate_id) else {
            return Ok(None);
        };
        let expected =
            self.store.get_certificate(&certificate_id, &Scope::All).await?.fingerprint_sha256;
        Ok((expected != served).then_some(expected))
    }

    /// Sets where a managed certificate is deployed (`agent` by name or id, `target` a name in
    /// that agent's configuration).
    pub async fn set_deployments(
        &self,
        caller: &Caller,
        managed_id: &str,
        asked: &DeploymentsSet,
    ) -> FleetResult<Vec<DeploymentRecord>> {
        let managed = self.store.get_managed(managed_id, &caller.scope).await?;
        let key_on_agent = managed.spec.key_source == KeySource::Agent;
        if key_on_agent && asked.deployments.len() > 1 {
            return Err(FleetError::Conflict(
                "this managed certificate's key is made on the host it is deployed to, and \
                 stays there: it has one deployment"
                    .into(),
            ));
        }
        if managed.csr.is_some() && !asked.deployments.is_empty() {
            return Err(FleetError::Conflict(
                "this managed certificate re-signs its requester's CSR, so CMP has no key to \
                 deploy: manage it with a server-made key (--key-type) to deploy it"
                    .into(),
            ));
        }
        let targets = self.resolve_targets(&asked.deployments).await?;
        let ctx = self.context(caller);
        let set = self.store.set_deployments(&ctx, &managed.id, &targets, key_on_agent).await?;
        for (agent_id, _) in &targets {
            self.bell.ring(agent_id);
        }
        Ok(set)
    }

    /// Deployments as (agent id, target), without repeats: an unknown agent is a `NotFound`,
    /// a bad target name a `BadField`.
    pub async fn resolve_targets(
        &self,
        deployments: &[DeploymentTarget],
    ) -> FleetResult<Vec<(String, String)>> {
        if let Some(i) = deployments.iter().position(|d| !valid_target_name(&d.target)) {
            let detail = format!("deployments[{i}].target: not a target name");
            return Err(FleetError::bad_field("deployments", detail));
        }
        // One lookup for the whole list: a deployment to a fleet names thousands of agents.
        let asked: Vec<String> = deployments.iter().map(|d| d.agent.clone()).collect();
        let mut ids = HashMap::with_capacity(asked.len());
        for agent in self.store.find_agents(&asked).await? {
            ids.insert(agent.name.clone(), agent.id.clone());
            ids.insert(agent.id.clone(), agent.id);
        }
        let mut targets = Vec::with_capacity(deployments.len());
        // A set beside the list, which keeps the order asked: a fleet is thousands of pairs.
        let mut seen = HashSet::with_capacity(deployments.len());
        for deployment in deployments {
            let agent_id = ids.get(&deployment.agent).ok_or_else(|| StoreError::NotFound {
                entity: "agent",
                id: deployment.agent.clone(),
            })?;
            let pair = (agent_id.clone(), deployment.target.clone());
            if seen.insert(pair.clone()) {
                targets.push(pair);
            }
        }
        Ok(targets)
    }

    /// Wakes waiting agents whose jobs became due (queued by issuance, by another replica, or
    /// a retry time come), and queues the scheduled discoveries each minute, until `stop`;
    /// then ends every wait, so that the server's stop is not held up by long polls (the
    /// agents poll the next server).
    pub async fn ring_due_jobs(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        // Its first tick is at once.
        let mut discoveries = tokio::time::interval(DISCOVERY_CHECK_INTERVAL);
        discoveries.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let discovery_due = tokio::select! {
                () = tokio::time::sleep(BELL_INTERVAL) => false,
                _ = discoveries.tick() => true,
                _ = stop.wait_for(|s| *s) => {
                    self.bell.close();
                    return;
                }
            };
            if discovery_due {
                if let Err(e) = self.queue_scheduled_discoveries().await {
                    tracing::warn!(error = %e, "could not queue the scheduled agent discoveries");
                }
                continue;
            }
            if !self.bell.anyone_waiting() {
                continue;
            }
            match self.store.agents_with_due_jobs(self.now()).await {
                Ok(due) => due.iter().for_each(|agent| self.bell.ring(agent)),
                Err(e) => tracing::warn!(error = %e, "could not look for due agent jobs"),
            }
        }
    }
}

/// A sealed box as the wire carries it.
pub(super) fn sealed_key(sealed: cmp_pki::Sealed) -> SealedKey {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    SealedKey {
        algorithm: cmp_pki::SEAL_ALGORITHM.into(),
        ephemeral_public_key: b64.encode(sealed.ephemeral_public_key),
        ciphertext: b64.encode(sealed.ciphertext),
    }
}

/// The caller an authenticated agent acts as.
pub fn agent_caller(agent: &AgentRecord) -> Caller {
    Caller {
        actor: format!("agent:{}", agent.name),
        role: cmp_domain::Role::Agent,
        scope: Scope::Owners(Vec::new()),
    }
}
