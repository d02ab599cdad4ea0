//! The fleet of host agents, without HTTP: bootstrap tokens, enrolment with a CSR made on the
//! host, identity renewal, check-ins, where managed certificates are deployed, and handing
//! jobs to agents (held open until one is due) and taking their results.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cmp_api::{
    AgentHeartbeat, BootstrapTokenCreate, DeploymentsSet, EnrollRequest, JobAssignment, JobResult,
};
use cmp_domain::{Clock, agent::valid_agent_name, agent::valid_target_name};
use cmp_secrets::SecretStore;
use cmp_store::{
    AgentRecord, AuditAction, AuditContext, BootstrapTokenRecord, DeploymentRecord, Heartbeat,
    JobOutcome, JobRecord, NewAgent, NewAuditEvent, NewBootstrapToken, Scope, Store, StoreError,
};
use tokio::sync::{Notify, watch};

use crate::auth::Caller;
use crate::core::context::caller_context;
use crate::platform_ca::{IssuedClientCert, PlatformCa};
use crate::state::unix_micros;

/// Prefix of bootstrap tokens, apart from API tokens' `cmp_` so that neither is taken for the
/// other.
pub const BOOTSTRAP_PREFIX: &str = "cmp_boot_";
/// Longest a job poll is held open.
pub const MAX_WAIT_SECS: u64 = 55;
const DEFAULT_WAIT_SECS: u64 = 25;
/// How long an agent holds a job before it goes back to the queue: the longest deployment
/// (config test, reload and verification, each bounded by the agent) with room to report.
const JOB_LEASE_SECS: i64 = 300;
/// How often the jobs of waiting agents are looked for (what another replica, or the issuance
/// of a new version, queued).
const BELL_INTERVAL: Duration = Duration::from_millis(250);

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
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] cmp_secrets::SecretError),
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
}

impl JobBell {
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
    secrets: Arc<dyn SecretStore>,
    clock: Arc<dyn Clock>,
    agent_ca: Arc<PlatformCa>,
    bell: JobBell,
}

impl Fleet {
    pub fn new(
        store: Arc<dyn Store>,
        secrets: Arc<dyn SecretStore>,
        clock: Arc<dyn Clock>,
        agent_ca: Arc<PlatformCa>,
    ) -> Fleet {
        Fleet { store, secrets, clock, agent_ca, bell: JobBell::default() }
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
        if !asked.token.starts_with(BOOTSTRAP_PREFIX) {
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
        let token_hash = crate::auth::token_hash(&asked.token);
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

    /// The agent's next job, leased to it; held open up to `wait_secs` until one is due.
    pub async fn next_job(
        &self,
        agent: &AgentRecord,
        wait_secs: Option<u64>,
    ) -> FleetResult<Option<JobAssignment>> {
        let wait = Duration::from_secs(wait_secs.unwrap_or(DEFAULT_WAIT_SECS).min(MAX_WAIT_SECS));
        let deadline = tokio::time::Instant::now() + wait;
        let bell = self.bell.enter(&agent.id);
        let job = loop {
            let now = self.now();
            match self.store.lease_job(&agent.id, now, now + JOB_LEASE_SECS).await {
                Ok(Some(job)) => break Some(job),
                Ok(None) => {}
                Err(e) => {
                    self.bell.leave(&agent.id);
                    return Err(e.into());
                }
            }
            if tokio::time::timeout_at(deadline, bell.notified()).await.is_err() {
                break None;
            }
        };
        self.bell.leave(&agent.id);
        match job {
            Some(job) => Ok(Some(self.assignment(agent, job).await?)),
            None => Ok(None),
        }
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

    /// What the agent needs for `job`: the certificate, its chain and its key. Handing the key
    /// over is audited as a key download by the agent.
    async fn assignment(&self, agent: &AgentRecord, job: JobRecord) -> FleetResult<JobAssignment> {
        let lease_until = job
            .lease_until
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
            .ok_or_else(|| FleetError::Internal(format!("job {} has no lease", job.id)))?;
        let mut assignment = JobAssignment {
            id: job.id.clone(),
            kind: job.kind,
            target: job.target.clone(),
            attempt: job.attempts,
            lease_until,
            certificate_id: job.certificate_id.clone(),
            certificate_pem: None,
            chain_pem: None,
            key_pem: None,
        };
        let Some(certificate_id) = &job.certificate_id else {
            return Ok(assignment);
        };
        let leaf = self.store.get_certificate_der(certificate_id, &Scope::All).await?;
        let chain = self.store.certificate_chain(certificate_id, &Scope::All).await?;
        let links = self.store.certificate_links(certificate_id, &Scope::All).await?;
        let pem_of = |der: &[u8]| pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()));
        assignment.certificate_pem = Some(pem_of(&leaf));
        assignment.chain_pem = Some(chain.iter().map(|der| pem_of(der)).collect());
        if let Some(secret) = links.key_secret {
            let key = self.secrets.get(&secret).await?;
            assignment.key_pem =
                Some(pem::encode(&pem::Pem::new("PRIVATE KEY", key.expose().as_slice())));
            let event = NewAuditEvent {
                action: AuditAction::CertificateKeyDownloaded,
                entity_type: "certificate".into(),
                entity_id: certificate_id.clone(),
                details: serde_json::json!({
                    "to_agent": agent.name, "target": job.target, "job_id": job.id,
                    "serial_number": links.serial_number,
                }),
            };
            self.store.append_audit(&self.agent_context(agent), &event).await?;
        }
        Ok(assignment)
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
        let Some(certificate_id) = job.certificate_id else { return Ok(None) };
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
        if managed.csr.is_some() && !asked.deployments.is_empty() {
            return Err(FleetError::Conflict(
                "this managed certificate re-signs its requester's CSR, so CMP has no key to \
                 deploy: manage it with a server-made key (--key-type) to deploy it"
                    .into(),
            ));
        }
        let mut targets = Vec::with_capacity(asked.deployments.len());
        // A set beside the list, which keeps the order asked: a fleet is thousands of pairs.
        let mut seen = HashSet::with_capacity(asked.deployments.len());
        for (i, deployment) in asked.deployments.iter().enumerate() {
            if !valid_target_name(&deployment.target) {
                let detail = format!("deployments[{i}].target: not a target name");
                return Err(FleetError::bad_field("deployments", detail));
            }
            let agent = self.store.get_agent(&deployment.agent).await?;
            let pair = (agent.id, deployment.target.clone());
            if seen.insert(pair.clone()) {
                targets.push(pair);
            }
        }
        let set = self.store.set_deployments(&self.context(caller), &managed.id, &targets).await?;
        for (agent_id, _) in &targets {
            self.bell.ring(agent_id);
        }
        Ok(set)
    }

    /// Wakes waiting agents whose jobs became due (queued by issuance, by another replica, or
    /// a retry time come), until `stop`.
    pub async fn ring_due_jobs(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(BELL_INTERVAL) => {}
                _ = stop.wait_for(|s| *s) => return,
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

/// The caller an authenticated agent acts as.
pub fn agent_caller(agent: &AgentRecord) -> Caller {
    Caller {
        actor: format!("agent:{}", agent.name),
        role: cmp_domain::Role::Agent,
        scope: Scope::Owners(Vec::new()),
    }
}
