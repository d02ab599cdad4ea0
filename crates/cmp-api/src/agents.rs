//! Host agents: bootstrap tokens, enrolment, the agents' own calls (identity, heartbeat,
//! jobs), and where managed certificates are deployed.

use std::collections::BTreeMap;

use cmp_domain::{AgentStatus, DeploymentState, JobKind, JobState, Secret};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// `POST /api/v1/agents/bootstrap-tokens`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BootstrapTokenCreate {
    /// Hours until the token expires unused (default 24, at most 720).
    #[serde(default)]
    pub expires_in_hours: Option<i64>,
    /// Given to the agent that enrols with it.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A bootstrap token, without its secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BootstrapToken {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub used_at: Option<OffsetDateTime>,
    /// The agent that enrolled with it.
    pub agent_id: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// A bootstrap token just made: the secret is shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BootstrapTokenCreated {
    /// `cmp_boot_...`: pass it to `cmp-agent enroll --token`.
    #[schema(value_type = String)]
    pub token: Secret<String>,
    pub info: BootstrapToken,
}

/// `POST /api/v1/agents/enroll`: a host asks to join with a bootstrap token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    #[schema(value_type = String)]
    pub token: Secret<String>,
    /// The agent's name (its host name, by default): letters, digits, `.`, `-`, `_`.
    pub name: String,
    /// A CSR for the key the agent made on the host, with the agent's name as common name.
    pub csr: String,
}

/// The client certificate an agent authenticates with.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentIdentity {
    pub certificate_pem: String,
    /// The agent CA, which signs agents' certificates.
    pub ca_pem: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
}

/// What enrolment answers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Enrolled {
    pub agent: Agent,
    pub identity: AgentIdentity,
}

/// `POST /api/v1/agent/identity`: a new CSR, to replace the agent's certificate before it ends.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityRenewal {
    pub csr: String,
}

/// An enrolled agent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub status: AgentStatus,
    pub hostname: Option<String>,
    pub version: Option<String>,
    pub os: Option<String>,
    /// The targets the agent reported in its last heartbeat.
    pub targets: Vec<TargetHealth>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_seen_at: Option<OffsetDateTime>,
    /// SHA-256 of the client certificate it must present.
    pub cert_fingerprint: String,
    #[serde(with = "time::serde::rfc3339")]
    pub cert_not_after: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub enrolled_at: OffsetDateTime,
}

/// An agent with its latest jobs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentDetail {
    #[serde(flatten)]
    pub agent: Agent,
    pub jobs: Vec<Job>,
}

/// A target as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetHealth {
    pub name: String,
    /// `nginx`, `apache`, `haproxy` or `file`.
    pub kind: String,
    /// Whether its files are readable and, where it has an endpoint, serving.
    pub healthy: bool,
    #[serde(default)]
    pub message: Option<String>,
}

/// `POST /api/v1/agent/heartbeat`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentHeartbeat {
    pub hostname: String,
    pub version: String,
    pub os: String,
    #[serde(default)]
    pub targets: Vec<TargetHealth>,
}

/// `GET /api/v1/agent/jobs/next`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NextJobParams {
    /// Seconds to hold the call open while no job is due (0 to 55, default 25).
    #[serde(default)]
    pub wait_secs: Option<u64>,
}

/// A job leased to the agent, with what it needs to do it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobAssignment {
    pub id: String,
    pub kind: JobKind,
    /// A target name from the agent's own configuration: never a path or a command.
    pub target: String,
    /// Which attempt this is (1 for the first).
    pub attempt: i64,
    /// Report before this time, or the job goes back to the queue.
    #[serde(with = "time::serde::rfc3339")]
    pub lease_until: OffsetDateTime,
    pub certificate_id: Option<String>,
    /// The certificate to install, PEM.
    pub certificate_pem: Option<String>,
    /// Its chain (issuing CA first), PEM; may be empty.
    pub chain_pem: Option<String>,
    /// Its server-made private key (PKCS#8 PEM), sealed to the key of the certificate the
    /// agent presented for this call, bound to the job's id. `None` for a key the agent made:
    /// it is on the host.
    pub sealed_key: Option<SealedKey>,
    /// For `renew_with_local_key`: the key to make and the names its CSR must carry.
    #[serde(default)]
    pub key_request: Option<LocalKeyRequest>,
}

/// A secret sealed to one agent's key: ECDH with an ephemeral key on the curve of the agent's
/// key, HKDF-SHA256 (salted with both public keys, the job id as context) and AES-256-GCM with
/// the job id as associated data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SealedKey {
    /// `ECDH-ES+HKDF-SHA256+A256GCM`.
    pub algorithm: String,
    /// The ephemeral public key, an uncompressed point, base64.
    pub ephemeral_public_key: String,
    /// The sealed PEM and its tag, base64.
    pub ciphertext: String,
}

/// What a `renew_with_local_key` job asks the agent to make: a key of `key_type` and a CSR
/// for it with exactly these names, sent to `POST /api/v1/agent/jobs/{id}/csr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LocalKeyRequest {
    /// `ecdsa_p256`, `ecdsa_p384`, `rsa2048`, `rsa3072`, `rsa4096` or `ed25519`.
    pub key_type: String,
    pub common_name: Option<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<String>,
}

/// `POST /api/v1/agent/jobs/{id}/discovery`: the certificates a `discover` job found under
/// the agent's `discovery.paths`. Only certificates travel: never a key the files may hold.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryReport {
    pub files: Vec<DiscoveredFile>,
    /// Files that looked like certificates but could not be read (a PKCS#12 file with a
    /// password, a broken PEM), with why.
    #[serde(default)]
    pub unreadable: Vec<JobStep>,
}

/// One file with certificates in it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoveredFile {
    /// Absolute path on the agent's host.
    pub path: String,
    /// Its certificates, PEM.
    pub certificates_pem: String,
}

/// What the inventory made of a discovery.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DiscoveryTaken {
    pub files: u64,
    /// Certificates new to the inventory.
    pub created: u64,
    /// Certificates it knew (their `file:` location is recorded all the same).
    pub known: u64,
    /// Files whose text held no certificate the inventory could read.
    #[serde(default)]
    pub refused: u64,
}

/// `POST /api/v1/agent/jobs/{id}/csr`: the CSR of a key the agent made for a
/// `renew_with_local_key` job.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobCsr {
    /// PEM.
    pub csr: String,
}

/// `POST /api/v1/agent/jobs/release`: what went back to the queue.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobsReleased {
    pub released: u64,
}

/// One step of a job as the agent did it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobStep {
    /// `write`, `pair`, `test`, `reload`, `verify`, `rollback`.
    pub name: String,
    pub ok: bool,
    /// What the step printed (cut by the agent).
    #[serde(default)]
    pub output: String,
}

/// `POST /api/v1/agent/jobs/{id}/result`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobResult {
    pub succeeded: bool,
    /// SHA-256 of the certificate the target's endpoint served after the install.
    #[serde(default)]
    pub served_fingerprint: Option<String>,
    /// The step that failed.
    #[serde(default)]
    pub failed_step: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub steps: Vec<JobStep>,
}

/// A job, as admins see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Job {
    pub id: String,
    pub kind: JobKind,
    pub target: String,
    pub state: JobState,
    pub attempts: i64,
    pub managed_certificate_id: Option<String>,
    pub certificate_id: Option<String>,
    /// The step the last attempt failed at.
    pub step: Option<String>,
    pub steps: Vec<JobStep>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Where to deploy a managed certificate: an agent and one of its targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentTarget {
    /// The agent's name or id.
    pub agent: String,
    pub target: String,
}

/// `PUT /api/v1/managed-certificates/{id}/deployments`: the whole list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentsSet {
    pub deployments: Vec<DeploymentTarget>,
}

/// A deployment and how its last attempt went.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Deployment {
    pub agent_id: String,
    pub agent: String,
    pub target: String,
    pub state: DeploymentState,
    /// The version the last job carried.
    pub certificate_id: Option<String>,
    /// What the target served when verified.
    pub served_fingerprint: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub verified_at: Option<OffsetDateTime>,
    pub failed_step: Option<String>,
    pub last_error: Option<String>,
}
