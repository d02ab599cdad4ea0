//! `/api/v1/agents` (admins: bootstrap tokens, enrolment, the fleet), `/api/v1/agent` (an
//! enrolled agent, by its client certificate: identity, heartbeat, jobs) and
//! `/api/v1/managed-certificates/{id}/deployments`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use cmp_api::{
    Agent, AgentDetail, AgentHeartbeat, AgentIdentity, BootstrapToken, BootstrapTokenCreate,
    BootstrapTokenCreated, Deployment, DeploymentsSet, DiscoveryReport, DiscoveryTaken,
    EnrollRequest, Enrolled, IdentityRenewal, Job, JobCsr, JobResult, JobsReleased, NextJobParams,
    Problem, Request,
};
use cmp_store::AgentRecord;

use super::fleet::FleetError;
use super::views;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

/// The enrolled agent a request comes from, known by its client certificate (`presented`,
/// its fingerprint: the current one, or the previous one just after a renewal).
#[derive(Debug, Clone)]
pub struct AgentCaller {
    pub agent: Arc<AgentRecord>,
    pub presented: Arc<str>,
    /// The public key of the certificate presented: server-made keys are sealed to it.
    pub public_key: Arc<[u8]>,
}

impl<S: Send + Sync> FromRequestParts<S> for AgentCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<AgentCaller>().cloned().ok_or_else(|| FleetError::NotAnAgent.into())
    }
}

/// Make a single-use token with which one host enrols its agent.
#[utoipa::path(post, path = "/api/v1/agents/bootstrap-tokens", tag = "agents",
    request_body = BootstrapTokenCreate,
    responses((status = 201, body = BootstrapTokenCreated),
        (status = 400, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"])))]
pub async fn create_bootstrap_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<BootstrapTokenCreate>,
) -> ApiResult<(StatusCode, Json<BootstrapTokenCreated>)> {
    let (token, record) = state.fleet.create_bootstrap_token(&caller, &body).await?;
    Ok((
        StatusCode::CREATED,
        Json(BootstrapTokenCreated {
            token: cmp_domain::Secret::new(token),
            info: views::bootstrap_token(record),
        }),
    ))
}

/// Bootstrap tokens, used or not (never their secrets).
#[utoipa::path(get, path = "/api/v1/agents/bootstrap-tokens", tag = "agents",
    responses((status = 200, body = Vec<BootstrapToken>)),
    security(("bearer" = ["admin"])))]
pub async fn list_bootstrap_tokens(
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<BootstrapToken>>> {
    let tokens = state.store.list_bootstrap_tokens().await?;
    Ok(Json(tokens.into_iter().map(views::bootstrap_token).collect()))
}

/// Revoke a bootstrap token before it is used.
#[utoipa::path(delete, path = "/api/v1/agents/bootstrap-tokens/{id}", tag = "agents",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"])))]
pub async fn revoke_bootstrap_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.store.revoke_bootstrap_token(&state.audit_context(&caller), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enrol a host's agent: a bootstrap token and a CSR for the key the agent made on the host
/// give a client certificate from the platform's agent CA. The token is used up.
#[utoipa::path(post, path = "/api/v1/agents/enroll", tag = "agents",
    request_body = EnrollRequest,
    responses((status = 201, body = Enrolled),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "The token is unknown, used, revoked or expired", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The CSR is invalid or names another agent", body = Problem, content_type = "application/problem+json")))]
pub async fn enroll(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<EnrollRequest>,
) -> ApiResult<(StatusCode, Json<Enrolled>)> {
    let (agent, issued) = state.fleet.enroll(&body).await?;
    let identity = views::identity(issued, state.fleet.agent_ca_pem());
    let agent = views::agent(agent, state.clock.now().unix_timestamp());
    Ok((StatusCode::CREATED, Json(Enrolled { agent, identity })))
}

/// Enrolled agents.
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents",
    responses((status = 200, body = Vec<Agent>)),
    security(("bearer" = ["admin", "security"])))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<Agent>>> {
    let now = state.clock.now().unix_timestamp();
    let agents = state.store.list_agents().await?;
    Ok(Json(agents.into_iter().map(|a| views::agent(a, now)).collect()))
}

/// One agent, by name or id, with its latest jobs.
#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "Name or id")),
    responses((status = 200, body = AgentDetail), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security"])))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<AgentDetail>> {
    let agent = state.store.get_agent(&id).await?;
    let jobs = state.store.list_jobs(&agent.id, 20).await?;
    let now = state.clock.now().unix_timestamp();
    let jobs = jobs.into_iter().map(views::job).collect();
    Ok(Json(AgentDetail { agent: views::agent(agent, now), jobs }))
}

/// Refuse the agent's certificate from now on, on every replica.
#[utoipa::path(post, path = "/api/v1/agents/{id}/disable", tag = "agents",
    params(("id" = String, Path, description = "Name or id")),
    responses((status = 200, body = Agent), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"])))]
pub async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Agent>> {
    set_disabled(&state, &caller, &id, true).await
}

/// Accept the agent's certificate again.
#[utoipa::path(post, path = "/api/v1/agents/{id}/enable", tag = "agents",
    params(("id" = String, Path, description = "Name or id")),
    responses((status = 200, body = Agent), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"])))]
pub async fn enable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Agent>> {
    set_disabled(&state, &caller, &id, false).await
}

async fn set_disabled(
    state: &AppState,
    caller: &Caller,
    id: &str,
    disabled: bool,
) -> ApiResult<Json<Agent>> {
    let agent = state.store.get_agent(id).await?;
    let ctx = state.audit_context(caller);
    let agent = state.store.set_agent_disabled(&ctx, &agent.id, disabled).await?;
    Ok(Json(views::agent(agent, state.clock.now().unix_timestamp())))
}

/// Delete an agent with its deployments and jobs; its certificate is refused from now on.
#[utoipa::path(delete, path = "/api/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "Name or id")),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let agent = state.store.get_agent(&id).await?;
    state.store.delete_agent(&state.audit_context(&caller), &agent.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The calling agent replaces its certificate (a CSR for a new key) before it ends.
#[utoipa::path(post, path = "/api/v1/agent/identity", tag = "agent",
    request_body = IdentityRenewal,
    responses((status = 200, body = AgentIdentity),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["agent"])))]
pub async fn renew_identity(
    State(state): State<AppState>,
    AgentCaller { agent, presented, .. }: AgentCaller,
    ApiJson(body): ApiJson<IdentityRenewal>,
) -> ApiResult<Json<AgentIdentity>> {
    let issued = state.fleet.renew_identity(&agent, &presented, &body.csr).await?;
    Ok(Json(views::identity(issued, state.fleet.agent_ca_pem())))
}

/// The calling agent checks in: its version, host and targets.
#[utoipa::path(post, path = "/api/v1/agent/heartbeat", tag = "agent",
    request_body = AgentHeartbeat,
    responses((status = 204)),
    security(("bearer" = ["agent"])))]
pub async fn heartbeat(
    State(state): State<AppState>,
    AgentCaller { agent, .. }: AgentCaller,
    ApiJson(body): ApiJson<AgentHeartbeat>,
) -> ApiResult<StatusCode> {
    state.fleet.heartbeat(&agent, &body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The calling agent's next job, leased to it. Held open up to `wait_secs` while none is due,
/// and answered as soon as one is; 204 when none came.
#[utoipa::path(get, path = "/api/v1/agent/jobs/next", tag = "agent", params(NextJobParams),
    responses((status = 200, body = cmp_api::JobAssignment), (status = 204, description = "No job came in the wait")),
    security(("bearer" = ["agent"])))]
pub async fn next_job(
    State(state): State<AppState>,
    AgentCaller { agent, public_key, .. }: AgentCaller,
    ApiQuery(params): ApiQuery<NextJobParams>,
) -> ApiResult<Response> {
    Ok(match state.fleet.next_job(&agent, &public_key, params.wait_secs).await? {
        Some(job) => Json(job).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// The calling agent (re)started: the jobs it held go back to the queue now, to be handed out
/// again (its restart undid any deployment it was in the middle of).
#[utoipa::path(post, path = "/api/v1/agent/jobs/release", tag = "agent",
    responses((status = 200, body = JobsReleased)),
    security(("bearer" = ["agent"])))]
pub async fn release_jobs(
    State(state): State<AppState>,
    AgentCaller { agent, .. }: AgentCaller,
) -> ApiResult<Json<JobsReleased>> {
    let released = state.fleet.release_jobs(&agent).await?;
    Ok(Json(JobsReleased { released }))
}

/// The calling agent reports how a job it holds went.
#[utoipa::path(post, path = "/api/v1/agent/jobs/{id}/result", tag = "agent",
    params(("id" = String, Path)), request_body = JobResult,
    responses((status = 200, body = Job),
        (status = 404, description = "No such job of this agent", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job is not held (reported already, or its lease ran out)", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["agent"])))]
pub async fn job_result(
    State(state): State<AppState>,
    AgentCaller { agent, .. }: AgentCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<JobResult>,
) -> ApiResult<Json<Job>> {
    let job = state.fleet.finish_job(&agent, &id, &body).await?;
    Ok(Json(views::job(job)))
}

/// The CSR of a key the calling agent made for its `renew_with_local_key` job: issued like any
/// request of the managed certificate, and the job ends with it. The certificate comes back as
/// a `deploy` job once issued (at once, unless an approval or the CA holds it).
#[utoipa::path(post, path = "/api/v1/agent/jobs/{id}/csr", tag = "agent",
    params(("id" = String, Path)), request_body = JobCsr,
    responses((status = 201, body = Request),
        (status = 404, description = "No such job of this agent", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not a held renew_with_local_key job", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The CSR is unreadable, names other names or another key type, or is outside policy", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["agent"])))]
pub async fn job_csr(
    State(state): State<AppState>,
    AgentCaller { agent, .. }: AgentCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<JobCsr>,
) -> ApiResult<(StatusCode, Json<Request>)> {
    let request = state.fleet.issue_for_local_key(&agent, &id, &body.csr).await?;
    Ok((StatusCode::CREATED, Json(views::request(request))))
}

/// What the calling agent's `discover` job found on its host: the certificates go into the
/// inventory with `file` locations, and the job ends.
#[utoipa::path(post, path = "/api/v1/agent/jobs/{id}/discovery", tag = "agent",
    params(("id" = String, Path)), request_body = DiscoveryReport,
    responses((status = 200, body = DiscoveryTaken),
        (status = 404, description = "No such job of this agent", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not a held discover job", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["agent"])))]
pub async fn job_discovery(
    State(state): State<AppState>,
    AgentCaller { agent, .. }: AgentCaller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DiscoveryReport>,
) -> ApiResult<Json<DiscoveryTaken>> {
    Ok(Json(state.fleet.take_discovery(&agent, &id, &body).await?))
}

/// Ask an agent to read the certificates under its `discovery.paths` into the inventory (a
/// `discover` job; the one on its way if there is one).
#[utoipa::path(post, path = "/api/v1/agents/{id}/discover", tag = "agents",
    params(("id" = String, Path, description = "Id or name")),
    responses((status = 202, body = Job), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security"])))]
pub async fn discover(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    let job = state.fleet.queue_discovery(&caller, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(views::job(job))))
}

/// Where a managed certificate is deployed, and how each deployment stands.
#[utoipa::path(get, path = "/api/v1/managed-certificates/{id}/deployments", tag = "managed-certificates",
    params(("id" = String, Path, description = "Id, name, or owner/name")),
    responses((status = 200, body = Vec<Deployment>), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security", "developer"])))]
pub async fn deployments(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Deployment>>> {
    let managed = state.store.get_managed(&id, &caller.scope).await?;
    let deployments = state.store.list_deployments(&managed.id).await?;
    Ok(Json(deployments.into_iter().map(views::deployment).collect()))
}

/// Set where a managed certificate is deployed (the whole list). A new deployment gets the
/// current version at once; every new version goes to all of them.
#[utoipa::path(put, path = "/api/v1/managed-certificates/{id}/deployments", tag = "managed-certificates",
    params(("id" = String, Path, description = "Id, name, or owner/name")),
    request_body = DeploymentsSet,
    responses((status = 200, body = Vec<Deployment>),
        (status = 404, description = "No such managed certificate or agent", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The server has no key to deploy", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "developer"])))]
pub async fn set_deployments(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DeploymentsSet>,
) -> ApiResult<Json<Vec<Deployment>>> {
    let set = state.fleet.set_deployments(&caller, &id, &body).await?;
    Ok(Json(set.into_iter().map(views::deployment).collect()))
}
