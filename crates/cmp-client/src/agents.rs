//! Agents: what admins call to enrol and manage them, and what an enrolled agent calls.

use cmp_api::{
    Agent, AgentDetail, AgentHeartbeat, AgentIdentity, BootstrapToken, BootstrapTokenCreate,
    BootstrapTokenCreated, Deployment, DeploymentsSet, DiscoveryReport, DiscoveryTaken,
    EnrollRequest, Enrolled, IdentityRenewal, Job, JobAssignment, JobCsr, JobResult, NextJobParams,
    Request,
};
use reqwest::{Method, StatusCode};

use crate::{Client, ClientResult};

impl Client {
    pub async fn create_bootstrap_token(
        &self,
        body: &BootstrapTokenCreate,
    ) -> ClientResult<BootstrapTokenCreated> {
        self.send_json(Method::POST, "/api/v1/agents/bootstrap-tokens", body).await
    }

    pub async fn list_bootstrap_tokens(&self) -> ClientResult<Vec<BootstrapToken>> {
        self.get("/api/v1/agents/bootstrap-tokens", &()).await
    }

    pub async fn revoke_bootstrap_token(&self, id: &str) -> ClientResult<()> {
        let path = format!("/api/v1/agents/bootstrap-tokens/{id}");
        Self::empty(self.request(Method::DELETE, &path).send().await?).await
    }

    /// Enrols an agent (no token or identity needed: the bootstrap token is in the body).
    pub async fn enroll(&self, body: &EnrollRequest) -> ClientResult<Enrolled> {
        self.send_json(Method::POST, "/api/v1/agents/enroll", body).await
    }

    pub async fn list_agents(&self) -> ClientResult<Vec<Agent>> {
        self.get("/api/v1/agents", &()).await
    }

    pub async fn agent(&self, id: &str) -> ClientResult<AgentDetail> {
        self.get(&format!("/api/v1/agents/{}", crate::segment(id)), &()).await
    }

    pub async fn disable_agent(&self, id: &str) -> ClientResult<Agent> {
        self.send_json(Method::POST, &format!("/api/v1/agents/{}/disable", crate::segment(id)), &())
            .await
    }

    pub async fn enable_agent(&self, id: &str) -> ClientResult<Agent> {
        self.send_json(Method::POST, &format!("/api/v1/agents/{}/enable", crate::segment(id)), &())
            .await
    }

    pub async fn delete_agent(&self, id: &str) -> ClientResult<()> {
        let path = format!("/api/v1/agents/{}", crate::segment(id));
        Self::empty(self.request(Method::DELETE, &path).send().await?).await
    }

    pub async fn deployments(&self, managed: &str) -> ClientResult<Vec<Deployment>> {
        let path = format!("/api/v1/managed-certificates/{}/deployments", crate::segment(managed));
        self.get(&path, &()).await
    }

    pub async fn set_deployments(
        &self,
        managed: &str,
        body: &DeploymentsSet,
    ) -> ClientResult<Vec<Deployment>> {
        let path = format!("/api/v1/managed-certificates/{}/deployments", crate::segment(managed));
        self.send_json(Method::PUT, &path, body).await
    }

    // What an enrolled agent calls, with its client certificate.

    pub async fn renew_identity(&self, body: &IdentityRenewal) -> ClientResult<AgentIdentity> {
        self.send_json(Method::POST, "/api/v1/agent/identity", body).await
    }

    pub async fn heartbeat(&self, body: &AgentHeartbeat) -> ClientResult<()> {
        let request = self.request(Method::POST, "/api/v1/agent/heartbeat").json(body);
        Self::empty(request.send().await?).await
    }

    /// The next job, waiting up to `wait_secs` on the server for one; `None` when none came.
    pub async fn next_job(&self, wait_secs: u64) -> ClientResult<Option<JobAssignment>> {
        let params = NextJobParams { wait_secs: Some(wait_secs) };
        let response =
            self.request(Method::GET, "/api/v1/agent/jobs/next").query(&params).send().await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        Self::read(response).await.map(Some)
    }

    /// After a restart: the jobs this agent held go back to the queue at once.
    pub async fn release_jobs(&self) -> ClientResult<cmp_api::JobsReleased> {
        self.send_json(Method::POST, "/api/v1/agent/jobs/release", &()).await
    }

    pub async fn report_job(&self, id: &str, body: &JobResult) -> ClientResult<Job> {
        self.send_json(Method::POST, &format!("/api/v1/agent/jobs/{id}/result"), body).await
    }

    /// Sends what the `discover` job `id` found.
    pub async fn send_discovery(
        &self,
        id: &str,
        body: &DiscoveryReport,
    ) -> ClientResult<DiscoveryTaken> {
        self.send_json(Method::POST, &format!("/api/v1/agent/jobs/{id}/discovery"), body).await
    }

    /// Asks an agent to read its `discovery.paths` into the inventory.
    pub async fn discover_on_agent(&self, agent: &str) -> ClientResult<Job> {
        self.send_json(
            Method::POST,
            &format!("/api/v1/agents/{}/discover", crate::segment(agent)),
            &(),
        )
        .await
    }

    /// Sends the CSR of a key made for the `renew_with_local_key` job `id`.
    pub async fn send_job_csr(&self, id: &str, body: &JobCsr) -> ClientResult<Request> {
        self.send_json(Method::POST, &format!("/api/v1/agent/jobs/{id}/csr"), body).await
    }
}
