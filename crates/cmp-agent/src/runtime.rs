//! The agent's conversation with the server: enrolment with a bootstrap token, then, with the
//! client certificate that gives, heartbeats, identity renewal, and jobs (long poll, deploy
//! with the engine of [`crate::deploy`], report). Nothing here is process-wide: an [`Agent`]
//! is built from its configuration, so tests can run several.
//!
//! The server only names a target; paths and commands come from the agent's own
//! configuration, and a job for a target the configuration lacks touches no file.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cmp_api::{
    AgentHeartbeat, EnrollRequest, IdentityRenewal, JobAssignment, JobCsr, JobResult, JobStep,
};
use cmp_client::{Client, ClientError, ClientResult};
use cmp_domain::{Clock, JobKind, Secret};
use rand::Rng;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::Target;
use crate::config::AgentConfig;
use crate::deploy::{Recovered, Removed, Step, StepRecord, deploy, recover, remove};
use crate::error::AgentError;
use crate::health::target_status;
use crate::identity::{Identity, new_key_and_csr};
use crate::local_keys::LocalKeys;
use crate::material::Material;
use crate::verify::served_fingerprint;

/// How often the agent checks in.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);
/// How long a job poll is held open by the server.
pub const POLL_WAIT_SECS: u64 = 25;
/// How long a `remove` job waits for the handshake that says what a kept target serves.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the agent waits for a call other than the poll.
const CALL_TIMEOUT_SECS: u64 = 30;
/// How long after a failed identity renewal the next is tried (jobs go on meanwhile).
const RENEW_RETRY: Duration = Duration::from_secs(300);
/// How many times a job's result is sent when the server cannot be reached.
const REPORT_ATTEMPTS: u32 = 3;
/// The most of a step's output or a message a report carries.
pub const REPORT_OUTPUT_LIMIT: usize = crate::command::OUTPUT_LIMIT;
/// Where the system's CA bundle is looked for when the configuration names no `ca_file`.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The wall clock (the agent's only reader of it).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// What [`Agent::run_once`] did with a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDone {
    /// The job's id.
    pub job_id: String,
    /// The target it named.
    pub target: String,
    /// Whether the deployment succeeded.
    pub succeeded: bool,
    /// SHA-256 of the leaf the target served afterwards (only when `verify` saw it).
    pub served_fingerprint: Option<String>,
    /// The step that failed (`target`, `material`, `recover`, or a deploy step).
    pub failed_step: Option<String>,
}

impl JobDone {
    /// A job whose answer ended it on the server (a CSR, a discovery): nothing more to report.
    fn ended_by_server(job: &JobAssignment, failed_step: Option<&str>) -> JobDone {
        JobDone {
            job_id: job.id.clone(),
            target: job.target.clone(),
            succeeded: failed_step.is_none(),
            served_fingerprint: None,
            failed_step: failed_step.map(str::to_owned),
        }
    }
}

/// Exponential backoff for calls that fail: 1 s, doubling to 60 s, each delay ±20 %
/// (never above 60 s), back to 1 s on [`Backoff::reset`].
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: Backoff::MIN }
    }
}

impl Backoff {
    /// The first delay (before jitter).
    pub const MIN: Duration = Duration::from_secs(1);
    /// The longest delay.
    pub const MAX: Duration = Duration::from_secs(60);

    /// The delay before the next try; each call doubles the next one, up to [`Backoff::MAX`].
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (base * 2).min(Backoff::MAX);
        base.mul_f64(rand::rng().random_range(0.8..=1.2)).min(Backoff::MAX)
    }

    /// After a success: start again from [`Backoff::MIN`].
    pub fn reset(&mut self) {
        self.next = Backoff::MIN;
    }
}

/// A call to the server, bounded by `secs`.
async fn timed<T>(secs: u64, call: impl Future<Output = ClientResult<T>>) -> Result<T, AgentError> {
    tokio::time::timeout(Duration::from_secs(secs), call)
        .await
        .map_err(|_| AgentError::Timeout(secs))?
        .map_err(AgentError::from)
}

fn require_https(server: &str) -> Result<(), AgentError> {
    if server.trim().to_ascii_lowercase().starts_with("https://") {
        Ok(())
    } else {
        Err(AgentError::NotHttps(server.to_owned()))
    }
}

/// The configuration's `ca_file`, read; `None` when it names none.
pub fn configured_ca_bundle(config: &AgentConfig) -> Result<Option<Vec<u8>>, AgentError> {
    config
        .ca_file
        .as_ref()
        .map(|path| {
            std::fs::read(path)
                .map_err(|e| AgentError::CaBundle(format!("{}: {e}", path.display())))
        })
        .transpose()
}

/// The CA bundle the server's certificate is checked against: `ca_file`, or else the system's
/// bundle (`SSL_CERT_FILE`, then the usual places). The mTLS client needs one in PEM; the
/// platform's roots are trusted as well either way.
pub fn server_ca_bundle(config: &AgentConfig) -> Result<Vec<u8>, AgentError> {
    if let Some(pem) = configured_ca_bundle(config)? {
        return Ok(pem);
    }
    let from_env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    let candidates = from_env.into_iter().chain(SYSTEM_CA_BUNDLES.iter().map(Into::into));
    for path in candidates {
        if let Ok(pem) = std::fs::read(&path) {
            return Ok(pem);
        }
    }
    Err(AgentError::CaBundle(format!(
        "no `ca_file` in the configuration and no system CA bundle (looked in {})",
        SYSTEM_CA_BUNDLES.join(", ")
    )))
}

fn identity_client(
    server: &str,
    server_ca: &[u8],
    identity: &Identity,
) -> Result<Client, AgentError> {
    require_https(server)?;
    Ok(Client::with_identity(server, server_ca, &identity.client_pem())?)
}

/// Enrols this host as the agent `name` with a bootstrap token: makes a key here, sends a CSR
/// for it to `config.server`, and saves the identity under `config.state_dir`. Refuses when
/// an identity exists, unless `force` (which replaces it). Needs an installed rustls crypto
/// provider.
pub async fn enroll(
    config: &AgentConfig,
    token: &str,
    name: &str,
    force: bool,
) -> Result<Identity, AgentError> {
    if !cmp_domain::agent::valid_agent_name(name) {
        return Err(AgentError::BadName(name.to_owned()));
    }
    require_https(&config.server)?;
    if !force && Identity::exists(&config.state_dir) {
        let enrolled = Identity::load(&config.state_dir).map(|i| i.name);
        return Err(AgentError::AlreadyEnrolled {
            name: enrolled.unwrap_or_else(|_| "(unreadable)".into()),
            dir: crate::identity::identity_dir(&config.state_dir),
        });
    }
    let new = new_key_and_csr(name)?;
    let client = match configured_ca_bundle(config)? {
        Some(pem) => Client::with_ca_bundle(&config.server, None, &pem)?,
        None => Client::new(&config.server, None)?,
    };
    let request = EnrollRequest { token: token.into(), name: name.to_owned(), csr: new.csr_pem };
    let enrolled = timed(CALL_TIMEOUT_SECS, client.enroll(&request)).await?;
    let identity = Identity::from_parts(
        enrolled.agent.name,
        enrolled.agent.id,
        config.server.clone(),
        enrolled.identity.certificate_pem,
        new.key_pem,
        enrolled.identity.ca_pem,
    )
    .map_err(AgentError::BadAnswer)?;
    identity.save(&config.state_dir)?;
    tracing::info!(agent = %identity.name, id = %identity.id, "enrolled");
    Ok(identity)
}

/// Undoes, for every configured target, a deployment a crash interrupted (see
/// [`crate::deploy::recover`]); logs what it did and returns what failed.
pub async fn recover_all(config: &AgentConfig) -> Vec<crate::DeployFailure> {
    let mut failures = Vec::new();
    for target in config.all_targets() {
        match recover(&target).await {
            Ok(Recovered::Nothing) => {}
            Ok(Recovered::Undone { phase, .. }) => {
                tracing::warn!(target = target.name, ?phase, "undid an interrupted deployment");
            }
            Err(failure) => {
                tracing::error!(target = target.name, error = %failure, "recovery failed");
                failures.push(failure);
            }
        }
    }
    failures
}

/// A report's copy of a text: at most [`REPORT_OUTPUT_LIMIT`] bytes (the end).
fn cut(text: &str) -> String {
    crate::command::truncate(text)
}

fn job_step(name: &str, record: &StepRecord) -> JobStep {
    JobStep { name: name.to_owned(), ok: record.ok, output: cut(&record.output) }
}

fn failed(step: &str, message: String, steps: Vec<JobStep>) -> JobResult {
    JobResult {
        succeeded: false,
        served_fingerprint: None,
        failed_step: Some(step.to_owned()),
        message: Some(cut(&message)),
        steps,
    }
}

/// Does a deploy or remove job on this host, without the server: finds the target in
/// `config`, takes the material from the job (`key` opened from it, or one kept on this host),
/// undoes an interrupted deployment of that target, deploys, and says how it went. A target the configuration lacks, or material that cannot be used, fails the
/// job before any file is touched. Needs an installed rustls crypto provider.
pub async fn execute_job(
    config: &AgentConfig,
    job: JobAssignment,
    key: Option<Secret<String>>,
) -> JobResult {
    if !matches!(job.kind, JobKind::Deploy | JobKind::Remove) {
        let message = format!("a {} job needs the server", job.kind.as_str());
        return failed("kind", message, Vec::new());
    }
    let Some(target) = config.target(&job.target) else {
        let message = format!("this agent has no target `{}` in its configuration", job.target);
        return failed("target", message, Vec::new());
    };
    if job.kind == JobKind::Remove {
        return remove_from(&target).await;
    }
    let chain = job.chain_pem.as_deref().unwrap_or("");
    let local_keys = LocalKeys::new(&config.state_dir);
    // Where the key came from when this host made it: forgotten once installed.
    let mut kept_key = None;
    let material = match (job.certificate_pem.as_deref(), key) {
        (None, _) => return failed("material", "the job carries no certificate".into(), vec![]),
        (Some(cert), Some(key)) => match Material::from_pem(cert, chain, &key) {
            Ok(material) => material,
            Err(e) => return failed("material", e.to_string(), Vec::new()),
        },
        // The key was made here, for a renew_with_local_key job.
        (Some(cert), None) => match local_keys.find(cert, chain) {
            Ok(Some(found)) => {
                kept_key = Some(found.path);
                found.material
            }
            Ok(None) => {
                let message = "the job carries no key, and no key kept on this host belongs \
                               to its certificate"
                    .to_owned();
                return failed("material", message, Vec::new());
            }
            Err(e) => return failed("material", e.to_string(), Vec::new()),
        },
    };
    let mut steps = Vec::new();
    match recover(&target).await {
        Ok(Recovered::Nothing) => {}
        Ok(Recovered::Undone { phase, steps: undone }) => {
            tracing::warn!(target = target.name, ?phase, "undid an interrupted deployment");
            steps.extend(undone.iter().map(|s| job_step("recover", s)));
        }
        Err(failure) => {
            steps.extend(failure.steps.iter().map(|s| job_step("recover", s)));
            let message =
                format!("an interrupted deployment could not be undone: {}", failure.message);
            return failed("recover", message, steps);
        }
    }
    match deploy(&target, &material).await {
        Ok(report) => {
            if let Some(path) = kept_key {
                local_keys.forget(&path);
            }
            steps.extend(report.steps.iter().map(|s| job_step(s.step.as_str(), s)));
            let verified = report.steps.iter().any(|s| s.step == Step::Verify && s.ok);
            JobResult {
                succeeded: true,
                served_fingerprint: verified.then(|| report.fingerprint.clone()),
                failed_step: None,
                message: Some(format!("installed {} on `{}`", report.fingerprint, report.target)),
                steps,
            }
        }
        Err(failure) => {
            steps.extend(failure.steps.iter().map(|s| job_step(s.step.as_str(), s)));
            let state = failure.outcome();
            failed(failure.step.as_str(), format!("{} ({state})", failure.message), steps)
        }
    }
}

/// A `remove` job: undoes an interrupted deployment, then takes the files away (a `file`
/// target) or leaves them and says what the target serves.
async fn remove_from(target: &Target<'_>) -> JobResult {
    let mut steps = Vec::new();
    if let Err(failure) = recover(target).await {
        steps.extend(failure.steps.iter().map(|s| job_step("recover", s)));
        return failed("recover", failure.message, steps);
    }
    match remove(target) {
        Ok(Removed::Files(paths)) => {
            let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            let output = format!("removed {}", list.join(", "));
            steps.push(JobStep { name: "remove".into(), ok: true, output: cut(&output) });
            JobResult {
                succeeded: true,
                served_fingerprint: None,
                failed_step: None,
                message: Some(format!("removed the files of `{}`", target.name)),
                steps,
            }
        }
        Ok(Removed::LeftInPlace) => {
            // What it serves now, so that the server keeps the location while it is true.
            let served = match &target.config.verify {
                Some(v) => served_fingerprint(&v.address, &v.sni, VERIFY_TIMEOUT).await.ok(),
                None => None,
            };
            let output = format!(
                "left in place: the {} configuration names these files",
                target.config.kind.as_str()
            );
            steps.push(JobStep { name: "remove".into(), ok: true, output });
            JobResult {
                succeeded: true,
                served_fingerprint: served,
                failed_step: None,
                message: Some(format!("`{}` keeps its files", target.name)),
                steps,
            }
        }
        Err(message) => failed("remove", message, steps),
    }
}

/// The host's name (`/proc/sys/kernel/hostname`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The operating system (`PRETTY_NAME` of `/etc/os-release`).
pub fn os_name() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix("PRETTY_NAME="))
        .map(|value| value.trim().trim_matches('"').trim_matches('\'').to_owned())
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| std::env::consts::OS.to_owned())
}

/// Resolves when `stop` turns true or its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// An enrolled agent: its configuration, identity and mTLS client.
pub struct Agent {
    config: AgentConfig,
    identity: Identity,
    server_ca: Vec<u8>,
    client: Client,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("name", &self.identity.name)
            .field("id", &self.identity.id)
            .field("server", &self.config.server)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Reads the identity under the configuration's state directory and builds the mTLS
    /// client (the wall clock for renewal). Needs an installed rustls crypto provider.
    pub fn load(config: AgentConfig) -> Result<Agent, AgentError> {
        Agent::with_clock(config, Arc::new(SystemClock))
    }

    /// [`Agent::load`] with a clock of the caller's (renewal decisions read it).
    pub fn with_clock(config: AgentConfig, clock: Arc<dyn Clock>) -> Result<Agent, AgentError> {
        let identity = Identity::load(&config.state_dir)?;
        if identity.server.trim_end_matches('/') != config.server.trim_end_matches('/') {
            tracing::warn!(
                enrolled_with = %identity.server,
                configured = %config.server,
                "the configured server is not the one this agent enrolled with"
            );
        }
        let server_ca = server_ca_bundle(&config)?;
        let client = identity_client(&config.server, &server_ca, &identity)?;
        Ok(Agent { config, identity, server_ca, client, clock })
    }

    /// The agent's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Its configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// Checks in: host name, version, OS, and the health of every target.
    pub async fn heartbeat(&self) -> Result<(), AgentError> {
        let mut targets = Vec::new();
        for target in self.config.all_targets() {
            targets.push(target_status(&target).await.to_health());
        }
        let beat = AgentHeartbeat {
            hostname: hostname(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            os: os_name(),
            targets,
        };
        timed(CALL_TIMEOUT_SECS, self.client.heartbeat(&beat)).await
    }

    /// Whether less than a third of the certificate's lifetime is left.
    pub fn needs_renewal(&self) -> bool {
        self.identity.needs_renewal(self.clock.now())
    }

    /// Replaces the identity: a new key, a CSR for it, the server's new certificate; saved,
    /// and the client rebuilt with it.
    pub async fn renew_identity(&mut self) -> Result<(), AgentError> {
        let new = new_key_and_csr(&self.identity.name)?;
        let request = IdentityRenewal { csr: new.csr_pem };
        let renewed = timed(CALL_TIMEOUT_SECS, self.client.renew_identity(&request)).await?;
        let identity = Identity::from_parts(
            self.identity.name.clone(),
            self.identity.id.clone(),
            self.identity.server.clone(),
            renewed.certificate_pem,
            new.key_pem,
            renewed.ca_pem,
        )
        .map_err(AgentError::BadAnswer)?;
        // From here the server knows only the new certificate: use it even if saving fails.
        self.client = identity_client(&self.config.server, &self.server_ca, &identity)?;
        self.identity = identity;
        self.identity.save(&self.config.state_dir)?;
        tracing::info!(not_after = %self.identity.not_after, "renewed the agent's certificate");
        Ok(())
    }

    /// Asks for the next job, waiting up to `wait_secs` (at most 55) on the server.
    async fn poll(&self, wait_secs: u64) -> Result<Option<JobAssignment>, AgentError> {
        timed(wait_secs + CALL_TIMEOUT_SECS, self.client.next_job(wait_secs)).await
    }

    /// Does a job and reports its result (retrying the report while the server is
    /// unreachable).
    async fn handle(&self, job: JobAssignment) -> Result<JobDone, AgentError> {
        let (job_id, target, attempt) = (job.id.clone(), job.target.clone(), job.attempt);
        tracing::info!(job = %job_id, kind = job.kind.as_str(), target = %target, attempt, "job received");
        let result = match job.kind {
            JobKind::Deploy | JobKind::Remove => match self.unseal(&job) {
                Ok(key) => execute_job(&self.config, job, key).await,
                Err(result) => result,
            },
            JobKind::RenewWithLocalKey => match self.send_local_key_csr(&job).await {
                // The server ended the job with the CSR: nothing more to report.
                Ok(done) => return Ok(done),
                Err(result) => result,
            },
            JobKind::Discover => match self.send_discovery(&job).await {
                Ok(done) => return Ok(done),
                Err(result) => result,
            },
        };
        tracing::info!(
            job = %job_id,
            target = %target,
            succeeded = result.succeeded,
            failed_step = result.failed_step.as_deref().unwrap_or(""),
            message = result.message.as_deref().unwrap_or(""),
            "job done"
        );
        let mut attempt = 1;
        loop {
            match timed(CALL_TIMEOUT_SECS, self.client.report_job(&job_id, &result)).await {
                Ok(_) => break,
                Err(
                    e @ (AgentError::Timeout(_) | AgentError::Server(ClientError::Transport(_))),
                ) if attempt < REPORT_ATTEMPTS => {
                    tracing::warn!(job = %job_id, error = %e, "reporting failed; trying again");
                    tokio::time::sleep(Backoff::MIN * 2u32.pow(attempt - 1)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(JobDone {
            job_id,
            target,
            succeeded: result.succeeded,
            served_fingerprint: result.served_fingerprint,
            failed_step: result.failed_step,
        })
    }

    /// Opens the server-made key a job carries with this agent's own key (it was sealed to
    /// the certificate presented when the job was leased, for this job only).
    fn unseal(&self, job: &JobAssignment) -> Result<Option<Secret<String>>, JobResult> {
        use base64::Engine as _;
        let Some(sealed) = &job.sealed_key else { return Ok(None) };
        let refused = |why: String| failed("material", why, Vec::new());
        let b64 = base64::engine::general_purpose::STANDARD;
        let sealed = match (
            sealed.algorithm == cmp_pki::SEAL_ALGORITHM,
            b64.decode(&sealed.ephemeral_public_key),
            b64.decode(&sealed.ciphertext),
        ) {
            (true, Ok(ephemeral_public_key), Ok(ciphertext)) => {
                cmp_pki::Sealed { ephemeral_public_key, ciphertext }
            }
            _ => {
                return Err(refused(format!(
                    "a sealed key of another kind ({})",
                    sealed.algorithm
                )));
            }
        };
        let own = pem::parse(self.identity.key_pem.expose().as_bytes())
            .map_err(|e| refused(format!("the agent's own key: {e}")))?;
        let own = zeroize::Zeroizing::new(own.into_contents());
        let opened = cmp_pki::open(&own, &sealed, job.id.as_bytes())
            .map_err(|e| refused(format!("the job's key: {e}")))?;
        let text = String::from_utf8(opened.to_vec())
            .map_err(|_| refused("the job's key is not PEM text".into()))?;
        Ok(Some(Secret::new(text)))
    }

    /// Makes a key here for a `renew_with_local_key` job (or takes the one made for it before)
    /// and sends its CSR: the server issues it and ends the job, and the certificate comes
    /// back as a `deploy` job. `Err` holds the failure to report when no CSR could be sent or
    /// the server refused it without ending the job.
    async fn send_local_key_csr(&self, job: &JobAssignment) -> Result<JobDone, JobResult> {
        let Some(asked) = &job.key_request else {
            return Err(failed("key", "the job does not say which key to make".into(), vec![]));
        };
        if self.config.target(&job.target).is_none() {
            let message = format!("this agent has no target `{}` in its configuration", job.target);
            return Err(failed("target", message, Vec::new()));
        }
        let local_keys = LocalKeys::new(&self.config.state_dir);
        let (id, asked) = (job.id.clone(), asked.clone());
        let csr = tokio::task::spawn_blocking(move || local_keys.csr_for_job(&id, &asked))
            .await
            .map_err(|e| failed("key", e.to_string(), Vec::new()))?
            .map_err(|e| failed("key", e.to_string(), Vec::new()))?;
        let csr = JobCsr { csr };
        let sent = timed(CALL_TIMEOUT_SECS, self.client.send_job_csr(&job.id, &csr));
        match sent.await {
            Ok(request) => {
                tracing::info!(job = %job.id, request = %request.id, state = ?request.state, "CSR sent");
                Ok(JobDone::ended_by_server(job, None))
            }
            // Refused with a problem document: the server ended the job as failed.
            Err(AgentError::Server(ClientError::Api(problem))) => {
                tracing::warn!(job = %job.id, status = problem.status, detail = %problem.detail.unwrap_or_default(), "CSR refused");
                Ok(JobDone::ended_by_server(job, Some("issue")))
            }
            Err(e) => Err(failed("csr", e.to_string(), Vec::new())),
        }
    }

    /// Reads the certificates under `discovery.paths` for a `discover` job and sends them: the
    /// server takes them into the inventory and ends the job. `Err` holds the failure to
    /// report when they could not be sent.
    async fn send_discovery(&self, job: &JobAssignment) -> Result<JobDone, JobResult> {
        let paths = self.config.discovery.paths.clone();
        let report = tokio::task::spawn_blocking(move || crate::discovery::discover(&paths))
            .await
            .map_err(|e| failed("discover", e.to_string(), Vec::new()))?;
        match timed(CALL_TIMEOUT_SECS, self.client.send_discovery(&job.id, &report)).await {
            Ok(taken) => {
                tracing::info!(job = %job.id, files = taken.files, created = taken.created, "discovery sent");
                Ok(JobDone::ended_by_server(job, None))
            }
            Err(AgentError::Server(ClientError::Api(problem))) => {
                tracing::warn!(job = %job.id, detail = %problem.detail.unwrap_or_default(), "discovery refused");
                Err(failed(
                    "discover",
                    format!("the server refused the discovery: {}", problem.title),
                    Vec::new(),
                ))
            }
            Err(e) => Err(failed("discover", e.to_string(), Vec::new())),
        }
    }

    /// One poll for a job (held open up to `wait_secs`); a job that comes is done and
    /// reported. `Ok(None)` when none came.
    pub async fn run_once(&mut self, wait_secs: u64) -> Result<Option<JobDone>, AgentError> {
        match self.poll(wait_secs).await? {
            Some(job) => self.handle(job).await.map(Some),
            None => Ok(None),
        }
    }

    /// The agent's life until `stop` turns true: undoes interrupted deployments, then checks
    /// in every [`HEARTBEAT_INTERVAL`], renews its certificate when a third of its lifetime is
    /// left, and polls for jobs; failed calls are retried after a [`Backoff`]. A stop ends a
    /// poll at once, but never a deployment under way.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        recover_all(&self.config).await;
        // Jobs held by this agent before it stopped were undone above: ask for them again now
        // rather than when their leases run out (a failure here only costs that wait).
        match self.client.release_jobs().await {
            Ok(r) if r.released > 0 => tracing::info!(jobs = r.released, "asked again for jobs"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not give back the jobs held before"),
        }
        tracing::info!(agent = %self.identity.name, server = %self.config.server, "running");
        let mut backoff = Backoff::default();
        let mut next_beat = Instant::now();
        let mut next_renewal = Instant::now();
        loop {
            if *stop.borrow() {
                break;
            }
            let result = self.cycle(&mut next_beat, &mut next_renewal, &mut stop).await;
            match result {
                Ok(true) => backoff.reset(),
                Ok(false) => break,
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "server call failed");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = stopped(&mut stop) => break,
                    }
                }
            }
        }
        tracing::info!("stopped");
    }

    /// One turn of [`Agent::run`]: `Ok(false)` when stopped.
    async fn cycle(
        &mut self,
        next_beat: &mut Instant,
        next_renewal: &mut Instant,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<bool, AgentError> {
        if Instant::now() >= *next_beat {
            *next_beat = Instant::now() + HEARTBEAT_INTERVAL;
            self.heartbeat().await?;
        }
        if Instant::now() >= *next_renewal && self.needs_renewal() {
            // A failed renewal does not hold up jobs: the certificate has a third of its
            // lifetime left, and the renewal is tried again a while later.
            if let Err(e) = self.renew_identity().await {
                tracing::warn!(error = %e, "renewing the agent's certificate failed");
                *next_renewal = Instant::now() + RENEW_RETRY;
            }
        }
        let wait =
            next_beat.saturating_duration_since(Instant::now()).as_secs().clamp(1, POLL_WAIT_SECS);
        let job = tokio::select! {
            job = self.poll(wait) => job?,
            () = stopped(stop) => return Ok(false),
        };
        if let Some(job) = job {
            self.handle(job).await?;
        }
        Ok(true)
    }
}
