//! Host agents over the API: enrolment with single-use bootstrap tokens, mTLS with the agent
//! CA's certificates, disabling and deleting, and jobs handed out on long polls.

use cmp_api::{
    AgentHeartbeat, BootstrapTokenCreate, DeploymentTarget, DeploymentsSet, EnrollRequest,
    JobResult, ManagedCreate, OwnerCreate, Subject,
};
use cmp_domain::{AgentStatus, DeploymentState, Role};

use serde_json::json;

use crate::notifications::{Receiver, rule};
use crate::support::{TestApp, TestClock, on_both_databases};

fn csr_for(name: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.serialize_request(&key).unwrap().pem().unwrap()
}

/// The owner `web` and its managed certificate `shop` for `localhost`, with a server-made key.
async fn shop(app: &TestApp) -> cmp_api::Managed {
    let owner = OwnerCreate { name: "web".into(), email: None, description: None };
    app.admin.create_owner(&owner).await.unwrap();
    let subject = Subject {
        common_name: None,
        dns_names: vec!["localhost".into()],
        ip_addresses: vec![],
        validity_days: None,
        acme_solver: None,
    };
    let managed = ManagedCreate {
        name: "shop".into(),
        owner: "web".into(),
        adapter: None,
        csr: None,
        key_type: Some("ecdsa_p256".into()),
        subject,
        renew_before: None,
        key_on_agent: false,
        deployments: vec![],
    };
    app.admin.create_managed(&managed).await.unwrap()
}

/// Renews a managed certificate with a server-made key now: its new version's id.
async fn renewed(app: &TestApp, managed: &str) -> String {
    let renewal = app.admin.renew(managed).await.unwrap().into_request().unwrap();
    renewal.certificate_id.expect("issued at once")
}

fn beat() -> AgentHeartbeat {
    AgentHeartbeat {
        hostname: "web-01.example".into(),
        version: "0.1.0".into(),
        os: "Debian".into(),
        targets: vec![],
    }
}

async fn agent_rows(app: &TestApp) -> usize {
    app.admin.list_agents().await.unwrap().len()
}

#[tokio::test]
async fn a_bootstrap_token_enrols_one_agent_whose_certificate_then_opens_the_agent_routes() {
    on_both_databases!(https, |app| {
        let created = app.admin.create_bootstrap_token(&BootstrapTokenCreate::default()).await;
        let token = created.unwrap().token;
        let anonymous = app.client(None);
        let enroll = |name: &str, csr: String| EnrollRequest {
            token: token.clone(),
            name: name.into(),
            csr,
        };
        // A CSR naming another agent, or none at all, is refused and uses nothing up.
        let (_, audit_before) = app.counts().await;
        let other = anonymous.enroll(&enroll("web-01", csr_for("db-01"))).await.unwrap_err();
        assert_eq!(other.status(), Some(422), "{other}");
        assert!(other.to_string().contains("db-01"), "{other}");
        let garbage = anonymous.enroll(&enroll("web-01", "not a csr".into())).await.unwrap_err();
        assert_eq!(garbage.status(), Some(422), "{garbage}");
        let bad_name = anonymous.enroll(&enroll("../web", csr_for("../web"))).await.unwrap_err();
        assert_eq!(bad_name.status(), Some(400), "{bad_name}");
        assert_eq!((agent_rows(&app).await, app.counts().await.1), (0, audit_before));

        let enrolled = anonymous.enroll(&enroll("web-01", csr_for("web-01"))).await.unwrap();
        assert_eq!(enrolled.agent.status, AgentStatus::Offline, "never checked in yet");
        // Reused: 401, nothing written.
        let again = anonymous.enroll(&enroll("web-02", csr_for("web-02"))).await.unwrap_err();
        assert_eq!(again.status(), Some(401), "{again}");
        assert_eq!(agent_rows(&app).await, 1, "{:?}", app.kind);
        // A token that is not a bootstrap token at all is no better.
        let api_token =
            EnrollRequest { token: app.admin_token.as_str().into(), ..enroll("x", csr_for("x")) };
        assert_eq!(anonymous.enroll(&api_token).await.unwrap_err().status(), Some(401));

        // The certificate is the agent CA's, for the agent's name, for client authentication.
        let leaf = enrolled.identity.certificate_pem.clone();
        cmp_testkit::openssl::verify_chain(&leaf, &enrolled.identity.ca_pem).unwrap();
        let (identity, _) = app.enroll_agent("web-02").await;
        let agent = app.agent_client(&identity);
        agent.heartbeat(&beat()).await.unwrap();
        let listed = app.admin.agent("web-02").await.unwrap();
        assert_eq!(listed.agent.status, AgentStatus::Online);
        assert_eq!(listed.agent.hostname.as_deref(), Some("web-01.example"));
        // No job: the poll says so after its wait.
        assert!(agent.next_job(0).await.unwrap().is_none());

        // An API token cannot be an agent, and people cannot call the agent routes.
        let agent_token = app
            .admin
            .create_token(&cmp_api::TokenCreate {
                name: "fake agent".into(),
                role: Role::Agent,
                owners: vec![],
                expires_in_days: None,
            })
            .await
            .unwrap_err();
        assert_eq!(agent_token.status(), Some(400), "{agent_token}");
        assert_eq!(app.admin.heartbeat(&beat()).await.unwrap_err().status(), Some(403));
        // Nor can an agent call people's routes.
        let listing = agent.list_agents().await.unwrap_err();
        assert_eq!(listing.status(), Some(403), "{listing}");

        // A renewed identity: the old certificate still opens until the new one is used.
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, "web-02");
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let renewed = agent.renew_identity(&cmp_api::IdentityRenewal { csr }).await.unwrap();
        agent.heartbeat(&beat()).await.unwrap();
        let new_identity = format!("{}{}", renewed.certificate_pem, key.serialize_pem());
        let renewed_agent = app.agent_client(new_identity.as_bytes());
        renewed_agent.heartbeat(&beat()).await.unwrap();
        assert_eq!(agent.heartbeat(&beat()).await.unwrap_err().status(), Some(401));
        // A CSR for another name is refused.
        let other = cmp_api::IdentityRenewal { csr: csr_for("db-01") };
        assert_eq!(renewed_agent.renew_identity(&other).await.unwrap_err().status(), Some(422));
        let agent = renewed_agent;

        // Disabled: refused at once; enabled again: accepted; deleted: refused.
        app.admin.disable_agent("web-02").await.unwrap();
        assert_eq!(agent.heartbeat(&beat()).await.unwrap_err().status(), Some(401));
        assert_eq!(app.admin.agent("web-02").await.unwrap().agent.status, AgentStatus::Disabled);
        app.admin.enable_agent("web-02").await.unwrap();
        agent.heartbeat(&beat()).await.unwrap();
        app.admin.delete_agent("web-02").await.unwrap();
        assert_eq!(agent.heartbeat(&beat()).await.unwrap_err().status(), Some(401));
        let audit: Vec<String> = app
            .admin
            .audit(&cmp_api::AuditListParams { limit: Some(200), ..Default::default() })
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|e| e.action)
            .collect();
        for action in ["agent.enrolled", "agent.disabled", "agent.enabled", "agent.deleted"] {
            assert!(audit.iter().any(|a| a == action), "{action} in {audit:?}");
        }
    });
}

/// A success that saw `fingerprint` served.
fn served(fingerprint: &str) -> JobResult {
    JobResult {
        succeeded: true,
        served_fingerprint: Some(fingerprint.into()),
        failed_step: None,
        message: None,
        steps: vec![],
    }
}

/// Opens a job's sealed key with the private key of an agent's `identity` (its PEM), bound to
/// `context`.
fn open_sealed(
    identity: &[u8],
    sealed: &cmp_api::SealedKey,
    context: &[u8],
) -> Result<Vec<u8>, cmp_pki::SealError> {
    let b64 = |text: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.decode(text).unwrap()
    };
    let sealed = cmp_pki::Sealed {
        ephemeral_public_key: b64(&sealed.ephemeral_public_key),
        ciphertext: b64(&sealed.ciphertext),
    };
    let pems = pem::parse_many(identity).unwrap();
    let own = pems.into_iter().find(|p| p.tag() == "PRIVATE KEY").unwrap().into_contents();
    cmp_pki::open(&own, &sealed, context).map(|key| key.to_vec())
}

#[tokio::test]
async fn a_fleet_polling_together_gets_one_job_each_with_a_key_only_it_opens_and_reports_together()
{
    on_both_databases!(https, |app| {
        const FLEET: usize = 24;
        let mut agents = Vec::new();
        for i in 0..FLEET {
            let (identity, _) = app.enroll_agent(&format!("web-{i:02}")).await;
            agents.push((app.agent_client(&identity), identity));
        }
        let managed = shop(&app).await;
        // Every agent holds a poll, then one PUT deploys to all: the polls are woken together.
        let mut polls = tokio::task::JoinSet::new();
        for (i, (agent, _)) in agents.iter().enumerate() {
            let agent = agent.clone();
            polls.spawn(async move { (i, agent.next_job(20).await) });
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let deployments = (0..FLEET)
            .map(|i| DeploymentTarget { agent: format!("web-{i:02}"), target: "nginx".into() })
            .collect();
        app.admin.set_deployments(&managed.id, &DeploymentsSet { deployments }).await.unwrap();
        let mut jobs = Vec::new();
        while let Some(done) = polls.join_next().await {
            let (i, job) = done.unwrap();
            jobs.push((i, job.unwrap().expect("each agent gets its job")));
        }
        let mut ids: Vec<_> = jobs.iter().map(|(_, j)| j.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), FLEET, "one job each");
        // Each key opens with its own agent's key only.
        for (i, job) in &jobs {
            assert_eq!(job.certificate_id, managed.current_certificate_id);
            let sealed = job.sealed_key.as_ref().expect("a sealed key");
            let key = open_sealed(&agents[*i].1, sealed, job.id.as_bytes()).unwrap();
            assert!(String::from_utf8_lossy(&key).contains("BEGIN PRIVATE KEY"));
            let neighbour = &agents[(*i + 1) % FLEET].1;
            assert!(open_sealed(neighbour, sealed, job.id.as_bytes()).is_err());
        }
        // Every hand-over is audited, once.
        let downloads = cmp_api::AuditListParams {
            action: Some("certificate.key_downloaded".into()),
            ..Default::default()
        };
        let downloads = app.admin.audit(&downloads).await.unwrap().items;
        assert_eq!(downloads.len(), FLEET);
        // Each names the poll's request, though the batch was served outside it.
        let mut requests: Vec<_> = downloads.iter().filter_map(|e| e.request_id.clone()).collect();
        requests.sort();
        requests.dedup();
        assert_eq!(requests.len(), FLEET, "{downloads:?}");

        // All report at once, one of them for a neighbour's job too: each result is taken or
        // refused on its own.
        let v1 = managed.current_certificate_id.clone().unwrap();
        let v1_fp = app.admin.certificate(&v1).await.unwrap().fingerprint_sha256;
        let ok = served(&v1_fp);
        let mut reports = tokio::task::JoinSet::new();
        for (i, job) in &jobs {
            let (agent, job_id, ok) = (agents[*i].0.clone(), job.id.clone(), ok.clone());
            reports.spawn(async move { agent.report_job(&job_id, &ok).await.map(|_| ()) });
        }
        let (stranger, their_job) = (agents[0].0.clone(), jobs[1].1.id.clone());
        let stolen = stranger.report_job(&their_job, &ok).await;
        while let Some(done) = reports.join_next().await {
            done.unwrap().unwrap();
        }
        assert!(stolen.is_err_and(|e| e.status() == Some(404)));
        let deployments = app.admin.deployments(&managed.id).await.unwrap();
        assert_eq!(deployments.len(), FLEET);
        for d in &deployments {
            assert_eq!(d.state, DeploymentState::Verified, "{d:?}");
            assert_eq!(d.served_fingerprint.as_deref(), Some(v1_fp.as_str()));
        }
        let located = app.admin.certificate(&v1).await.unwrap().locations;
        assert_eq!(located.len(), FLEET, "{located:?}");
        assert!(app.admin.verify_audit().await.unwrap().intact);
    });
}

#[tokio::test]
async fn a_deployment_gets_each_version_as_a_job_with_its_key_for_its_agent_only() {
    on_both_databases!(https, |app| {
        let (identity, _) = app.enroll_agent("web-01").await;
        let (other_identity, _) = app.enroll_agent("web-02").await;
        let (agent, other) = (app.agent_client(&identity), app.agent_client(&other_identity));
        let managed = shop(&app).await;
        let target = |agent: &str| DeploymentTarget { agent: agent.into(), target: "nginx".into() };
        // An unknown agent is a 404 and sets nothing.
        let unknown = DeploymentsSet { deployments: vec![target("nope")] };
        let refused = app.admin.set_deployments(&managed.id, &unknown).await.unwrap_err();
        assert_eq!(refused.status(), Some(404), "{refused}");
        assert!(app.admin.deployments(&managed.id).await.unwrap().is_empty());

        let set = DeploymentsSet { deployments: vec![target("web-01")] };
        let deployments = app.admin.set_deployments(&managed.id, &set).await.unwrap();
        assert_eq!(deployments[0].state, DeploymentState::Pending);
        // The current version is queued at once, for web-01 only.
        assert!(other.next_job(0).await.unwrap().is_none());
        let job = agent.next_job(5).await.unwrap().expect("a job for the current version");
        assert_eq!((job.target.as_str(), job.attempt), ("nginx", 1));
        assert_eq!(job.certificate_id, managed.current_certificate_id);
        // The server-made key travels sealed to the agent's own key, for this job only.
        let sealed = job.sealed_key.as_ref().expect("the server-made key travels to the agent");
        let key = open_sealed(&identity, sealed, job.id.as_bytes()).unwrap();
        assert!(String::from_utf8_lossy(&key).contains("BEGIN PRIVATE KEY"));
        assert!(open_sealed(&identity, sealed, b"another job").is_err());
        // Another agent cannot report it.
        let v1 = managed.current_certificate_id.clone().unwrap();
        let v1_fp = app.admin.certificate(&v1).await.unwrap().fingerprint_sha256;
        let ok = served(&v1_fp);
        assert_eq!(other.report_job(&job.id, &ok).await.unwrap_err().status(), Some(404));
        // An agent that restarts gives back what it held: the job comes again at once.
        assert_eq!(agent.release_jobs().await.unwrap().released, 1);
        let job = agent.next_job(0).await.unwrap().expect("the released job");
        assert_eq!(job.attempt, 2);
        agent.report_job(&job.id, &ok).await.unwrap();
        assert_eq!(agent.report_job(&job.id, &ok).await.unwrap_err().status(), Some(409));
        let deployment = &app.admin.deployments(&managed.id).await.unwrap()[0];
        assert_eq!(deployment.state, DeploymentState::Verified, "{:?}", app.kind);
        assert_eq!(deployment.served_fingerprint.as_deref(), Some(v1_fp.as_str()));

        // A renewal queues the new version; a poll already waiting gets it as it comes.
        let waiting = tokio::spawn({
            let agent = agent.clone();
            async move { agent.next_job(20).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let renewal = app.admin.renew(&managed.id).await.unwrap().into_request().unwrap();
        let next = waiting.await.unwrap().unwrap().expect("the renewal's job");
        assert_eq!(next.certificate_id, renewal.certificate_id);
        // A failure is kept with its step, and the job comes back later.
        let failed = JobResult {
            succeeded: false,
            served_fingerprint: None,
            failed_step: Some("test".into()),
            message: Some("nginx: [emerg] cannot load certificate".into()),
            steps: vec![],
        };
        let job = agent.report_job(&next.id, &failed).await.unwrap();
        assert_eq!(job.state, cmp_domain::JobState::Queued);
        let deployment = &app.admin.deployments(&managed.id).await.unwrap()[0];
        assert_eq!(deployment.state, DeploymentState::Failed);
        assert_eq!(deployment.failed_step.as_deref(), Some("test"));
        assert!(deployment.last_error.as_deref().unwrap().contains("emerg"));
        // A success whose target serves something else than the job's version is no
        // deployment: it is a failure at `verify`.
        let v3 = renewed(&app, &managed.id).await;
        let v3_fp = app.admin.certificate(&v3).await.unwrap().fingerprint_sha256;
        let third = agent.next_job(5).await.unwrap().expect("the third version's job");
        let elsewhere = JobResult { served_fingerprint: Some(v1_fp.clone()), ..ok.clone() };
        let job = agent.report_job(&third.id, &elsewhere).await.unwrap();
        assert_eq!(
            (job.state, job.step.as_deref()),
            (cmp_domain::JobState::Queued, Some("verify"))
        );
        let deployment = &app.admin.deployments(&managed.id).await.unwrap()[0];
        assert_eq!(deployment.state, DeploymentState::Failed, "{deployment:?}");
        assert!(deployment.last_error.as_deref().unwrap().contains(&v3_fp), "{deployment:?}");
        // The key handed to the agent is audited as a download by that agent.
        let audit = app
            .admin
            .audit(&cmp_api::AuditListParams { limit: Some(200), ..Default::default() })
            .await
            .unwrap()
            .items;
        let downloads: Vec<_> =
            audit.iter().filter(|e| e.action == "certificate.key_downloaded").collect();
        // Four hand-overs: the first version twice (released by a restart), two renewals.
        assert_eq!(downloads.len(), 4, "{:?}", app.kind);
        assert!(downloads.iter().all(|e| e.actor == "agent:web-01"));
    });
}

/// The agent configuration for `servers` (target names `nginx`, `apache`, `haproxy`), as an
/// operator writes it; `test` replaces every target's configuration test when given.
fn agent_config(
    app: &TestApp,
    state_dir: &std::path::Path,
    servers: &[&cmp_testkit::targets::TlsServer],
    test: Option<&[&str]>,
) -> cmp_agent::AgentConfig {
    use cmp_testkit::targets::ServerKind;
    let mut toml = format!(
        "server = {:?}\nca_file = {:?}\nstate_dir = {:?}\n",
        app.base,
        app.data_dir().join("ca.pem"),
        state_dir
    );
    for server in servers {
        let (name, files) = match server.kind {
            ServerKind::Nginx => (
                "nginx",
                format!("cert = {:?}\nkey = {:?}\n", server.cert, server.key.as_ref().unwrap()),
            ),
            ServerKind::Apache => (
                "apache",
                format!("cert = {:?}\nkey = {:?}\n", server.cert, server.key.as_ref().unwrap()),
            ),
            ServerKind::Haproxy => {
                ("haproxy", format!("pem = {:?}\n", server.pem.as_ref().unwrap()))
            }
        };
        let argv = |v: &[String]| format!("{v:?}");
        let test_argv = test.map(|t| format!("{t:?}")).unwrap_or_else(|| argv(&server.test_argv));
        toml.push_str(&format!(
            "[targets.{name}]\nkind = {name:?}\n{files}test = {test_argv}\nreload = {}\n\
             verify = {{ address = {:?}, sni = \"localhost\" }}\n",
            argv(&server.reload_argv),
            server.address(),
        ));
    }
    cmp_agent::AgentConfig::from_toml_str(&toml).unwrap()
}

/// Runs the agent's job loop until it has done `n` jobs.
async fn do_jobs(agent: &mut cmp_agent::Agent, n: usize) -> Vec<cmp_agent::JobDone> {
    let mut done = Vec::new();
    while done.len() < n {
        let job = agent.run_once(10).await.unwrap().expect("a job within the wait");
        done.push(job);
    }
    done
}

#[tokio::test]
async fn an_agent_installs_each_version_on_real_nginx_apache_and_haproxy_and_rolls_back_a_failure()
{
    use cmp_testkit::targets::{TestCa, TlsServer, served_fingerprint, wait_served};
    on_both_databases!(https, |app| {
        let old = TestCa::new().leaf("old");
        let servers = [TlsServer::nginx(&old), TlsServer::apache(&old), TlsServer::haproxy(&old)];
        let state = tempfile::tempdir().unwrap();
        let refs: Vec<_> = servers.iter().collect();
        let config = agent_config(&app, state.path(), &refs, None);
        let token = app.admin.create_bootstrap_token(&Default::default()).await.unwrap().token;
        cmp_agent::enroll(&config, token.expose(), "web-01", false).await.unwrap();
        let mut agent = cmp_agent::Agent::load(config).unwrap();
        agent.heartbeat().await.unwrap();

        let managed = shop(&app).await;
        let targets = ["nginx", "apache", "haproxy"]
            .map(|t| DeploymentTarget { agent: "web-01".into(), target: t.into() });
        let set = DeploymentsSet { deployments: targets.to_vec() };
        app.admin.set_deployments(&managed.id, &set).await.unwrap();

        // Each target serves the first version: seen by the test's own handshake.
        let v1 = managed.current_certificate_id.clone().unwrap();
        let v1_fp = app.admin.certificate(&v1).await.unwrap().fingerprint_sha256;
        let done = do_jobs(&mut agent, 3).await;
        let why = app.admin.deployments(&managed.id).await.unwrap();
        assert!(done.iter().all(|d| d.succeeded), "{done:?}: {why:?}");
        for server in &servers {
            wait_served(server.port, "localhost", &v1_fp, std::time::Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("{:?}: {e}", server.kind));
        }
        let deployments = app.admin.deployments(&managed.id).await.unwrap();
        assert!(
            deployments.iter().all(|d| d.state == DeploymentState::Verified),
            "{deployments:?}"
        );
        assert!(
            deployments.iter().all(|d| d.served_fingerprint.as_deref() == Some(v1_fp.as_str()))
        );
        // Each is recorded as a location of the certificate.
        let located = app.admin.certificate(&v1).await.unwrap();
        assert_eq!(located.locations.len(), 3, "{:?}", located.locations);

        // A renewal reaches every target.
        let v2 = renewed(&app, &managed.id).await;
        let v2_fp = app.admin.certificate(&v2).await.unwrap().fingerprint_sha256;
        let done = do_jobs(&mut agent, 3).await;
        assert!(done.iter().all(|d| d.succeeded), "{done:?}");
        for server in &servers {
            wait_served(server.port, "localhost", &v2_fp, std::time::Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("{:?}: {e}", server.kind));
        }

        // A configuration test that fails leaves every target serving v2, and says where.
        let failing =
            agent_config(&app, state.path(), &refs, Some(&["sh", "-c", "echo broken >&2; exit 1"]));
        let mut agent = cmp_agent::Agent::load(failing).unwrap();
        let v3 = renewed(&app, &managed.id).await;
        let done = do_jobs(&mut agent, 3).await;
        assert!(
            done.iter().all(|d| !d.succeeded && d.failed_step.as_deref() == Some("test")),
            "{done:?}"
        );
        for server in &servers {
            assert_eq!(
                served_fingerprint(server.port, "localhost").as_deref(),
                Some(v2_fp.as_str())
            );
        }
        let deployments = app.admin.deployments(&managed.id).await.unwrap();
        for d in &deployments {
            assert_eq!(
                (d.state, d.failed_step.as_deref()),
                (DeploymentState::Failed, Some("test"))
            );
            assert_eq!(d.certificate_id.as_deref(), Some(v3.as_str()));
            assert!(!d.last_error.as_deref().unwrap_or_default().is_empty(), "{d:?}");
        }
        // Whoever watches the fleet hears of each failed target once, and of the agent once
        // it falls silent.
        let hook = Receiver::start(200).await;
        let fleet = json!({"name": "fleet", "events": ["deployment_failed", "agent_offline"],
                           "channel": {"kind": "webhook", "url": hook.url}});
        rule(&app, fleet).await;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let told = |event: &str| -> Vec<String> {
            let bodies = hook.bodies();
            let notices = bodies.iter().flat_map(|(_, b)| b["notices"].as_array().unwrap());
            let of_event = notices.filter(|n| n["event"] == event);
            of_event.map(|n| n["summary"].as_str().unwrap().to_string()).collect()
        };
        for _ in 0..2 {
            app.issuer_state(TestClock::at(now)).await.notifier.pass().await;
        }
        let failed = told("deployment_failed");
        assert_eq!(failed.len(), 3, "once per target: {failed:?}");
        for target in ["nginx", "apache", "haproxy"] {
            let summary = failed.iter().find(|s| s.contains(&format!("web-01/{target}")));
            let summary = summary.unwrap_or_else(|| panic!("{target}: {failed:?}"));
            assert!(summary.contains("failed at test") && summary.contains("broken"), "{summary}");
        }
        assert!(told("agent_offline").is_empty(), "the agent was heard from just now");
        let silent = app.config.notify.agent_offline_secs as i64 + 60;
        for _ in 0..2 {
            app.issuer_state(TestClock::at(now + silent)).await.notifier.pass().await;
        }
        let offline = told("agent_offline");
        assert_eq!(offline.len(), 1, "{offline:?}");
        assert!(offline[0].contains("Agent web-01 has not been heard from"), "{offline:?}");
        assert_eq!(told("deployment_failed").len(), 3, "nothing told twice");
        // The server-made keys went to the agent only: none is in its state directory.
        for entry in walk(state.path()) {
            let text = std::fs::read_to_string(&entry).unwrap_or_default();
            assert!(
                !text.contains("BEGIN PRIVATE KEY") || entry.ends_with("identity/key.pem"),
                "{entry:?}"
            );
        }
    });
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}

/// Whether the server's database holds these bytes (raw, base64 or hex): the SQLite file and
/// its journal, or a `pg_dump` of the PostgreSQL database.
fn database_holds(app: &TestApp, der: &[u8]) -> bool {
    use base64::Engine as _;
    let url = app.config.database.url.clone().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    // PEM lines are 64 characters: look for the first one.
    let (b64, hex) = (b64[..64].to_string(), hex::encode(&der[..32]));
    let texts: Vec<Vec<u8>> = if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap();
        ["", "-wal"].iter().filter_map(|s| std::fs::read(format!("{path}{s}")).ok()).collect()
    } else {
        let dump = std::process::Command::new("pg_dump").arg("--data-only").arg(&url).output();
        let dump = dump.unwrap();
        assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
        vec![dump.stdout]
    };
    texts.iter().any(|t| {
        t.windows(der.len().min(32)).any(|w| w == &der[..der.len().min(32)])
            || String::from_utf8_lossy(t).contains(&b64)
            || String::from_utf8_lossy(t).contains(&hex)
    })
}

#[tokio::test]
async fn a_key_made_on_the_agent_never_leaves_its_host_and_discovery_reads_its_files() {
    use cmp_testkit::targets::{TestCa, TlsServer, wait_served};
    on_both_databases!(https, |app| {
        let ca = TestCa::new();
        let nginx = TlsServer::nginx(&ca.leaf("old"));
        let state = tempfile::tempdir().unwrap();
        // What discovery finds: a PEM with a key beside its certificate, a DER file, a file
        // that says it is a certificate and is not, and a link out of the directory.
        let found = tempfile::tempdir().unwrap();
        let (pem_leaf, der_leaf) = (ca.leaf("found-pem.example"), ca.leaf("found-der.example"));
        std::fs::write(
            found.path().join("site.pem"),
            format!("{}{}", pem_leaf.cert_pem, pem_leaf.key_pem),
        )
        .unwrap();
        std::fs::create_dir(found.path().join("sub")).unwrap();
        let der = pem::parse(&der_leaf.cert_pem).unwrap().into_contents();
        std::fs::write(found.path().join("sub/api.der"), &der).unwrap();
        std::fs::write(found.path().join("broken.crt"), "not a certificate").unwrap();
        std::os::unix::fs::symlink("/etc/ssl/certs", found.path().join("elsewhere")).unwrap();
        let mut config = agent_config(&app, state.path(), &[&nginx], None);
        config.discovery.paths = vec![found.path().to_path_buf()];
        let token = app.admin.create_bootstrap_token(&Default::default()).await.unwrap().token;
        cmp_agent::enroll(&config, token.expose(), "web-01", false).await.unwrap();
        let mut agent = cmp_agent::Agent::load(config).unwrap();
        let identity = cmp_agent::Identity::load(state.path()).unwrap();
        let raw_agent = app.agent_client(&identity.client_pem());

        // A key made on an agent needs exactly one deployment, on an agent that exists.
        let owner = OwnerCreate { name: "web".into(), email: None, description: None };
        app.admin.create_owner(&owner).await.unwrap();
        let create = |deployments: Vec<DeploymentTarget>| ManagedCreate {
            name: "shop".into(),
            owner: "web".into(),
            adapter: None,
            csr: None,
            key_type: Some("ecdsa_p384".into()),
            subject: Subject {
                common_name: None,
                dns_names: vec!["localhost".into()],
                ip_addresses: vec![],
                validity_days: None,
                acme_solver: None,
            },
            renew_before: None,
            key_on_agent: true,
            deployments,
        };
        let at = |agent: &str| DeploymentTarget { agent: agent.into(), target: "nginx".into() };
        let none = app.admin.create_managed(&create(vec![])).await.unwrap_err();
        assert_eq!(none.status(), Some(400), "{none}");
        let unknown = app.admin.create_managed(&create(vec![at("db-09")])).await.unwrap_err();
        assert_eq!(unknown.status(), Some(404), "{unknown}");
        assert!(app.admin.managed_list().await.unwrap().items.is_empty());

        // The first version: the agent makes the key, sends a CSR, installs what comes back.
        let managed = app.admin.create_managed(&create(vec![at("web-01")])).await.unwrap();
        assert_eq!(managed.current_certificate_id, None);
        let done = do_jobs(&mut agent, 2).await;
        assert!(done.iter().all(|d| d.succeeded), "{done:?}");
        let v1 = app.admin.managed(&managed.id).await.unwrap().current_certificate_id.unwrap();
        let v1_cert = app.admin.certificate(&v1).await.unwrap();
        assert_eq!(v1_cert.key.bits, Some(384), "{:?}", v1_cert.key);
        wait_served(
            nginx.port,
            "localhost",
            &v1_cert.fingerprint_sha256,
            std::time::Duration::from_secs(10),
        )
        .unwrap();
        let deployments = app.admin.deployments(&managed.id).await.unwrap();
        assert_eq!(deployments[0].state, DeploymentState::Verified, "{deployments:?}");
        // The private key is on the host only: in the target's key file, in no row of the
        // database, and the server has none to hand out.
        let key_path = nginx.key.clone().unwrap();
        let key_der = pem::parse(std::fs::read(&key_path).unwrap()).unwrap().into_contents();
        assert!(!database_holds(&app, &key_der), "the agent's key is in the database");
        let download = app.admin.download_key(&v1, None).await.unwrap_err();
        assert_eq!(download.status(), Some(404), "{download}");
        assert!(
            walk(state.path()).iter().all(|p| !p.starts_with(state.path().join("keys"))
                || p.extension().is_none_or(|e| e != "key")),
            "a used key is kept"
        );

        // A renewal asks the agent for a new key; the one it made before is replaced.
        let renewed = app.admin.renew(&managed.id).await.unwrap();
        assert!(matches!(renewed, cmp_client::Renewed::OnAgent(_)), "{renewed:?}");
        let done = do_jobs(&mut agent, 2).await;
        assert!(done.iter().all(|d| d.succeeded), "{done:?}");
        let v2 = app.admin.managed(&managed.id).await.unwrap().current_certificate_id.unwrap();
        assert_ne!(v1, v2);
        let v2_fp = app.admin.certificate(&v2).await.unwrap().fingerprint_sha256;
        wait_served(nginx.port, "localhost", &v2_fp, std::time::Duration::from_secs(10)).unwrap();
        let new_key = pem::parse(std::fs::read(&key_path).unwrap()).unwrap().into_contents();
        assert_ne!(new_key, key_der, "a renewal makes a new key");

        // A CSR for other names is refused, ends the job at `issue`, and issues nothing.
        app.admin.renew(&managed.id).await.unwrap();
        let job = raw_agent.next_job(5).await.unwrap().expect("the renewal's job");
        assert_eq!(job.kind, cmp_domain::JobKind::RenewWithLocalKey);
        assert_eq!(job.key_request.as_ref().unwrap().key_type, "ecdsa_p384");
        let requests_before =
            app.admin.requests(&[("limit", Some("100".to_string()))]).await.unwrap().items.len();
        let evil = cmp_api::JobCsr { csr: csr_for("evil.example") };
        let refused = raw_agent.send_job_csr(&job.id, &evil).await.unwrap_err();
        assert_eq!(refused.status(), Some(422), "{refused}");
        let again = raw_agent.send_job_csr(&job.id, &evil).await.unwrap_err();
        assert_eq!(again.status(), Some(409), "the job ended: {again}");
        let requests_after =
            app.admin.requests(&[("limit", Some("100".to_string()))]).await.unwrap().items.len();
        assert_eq!(requests_before, requests_after);
        let deployments = app.admin.deployments(&managed.id).await.unwrap();
        assert_eq!(deployments[0].failed_step.as_deref(), Some("issue"), "{deployments:?}");
        assert_eq!(
            app.admin.managed(&managed.id).await.unwrap().current_certificate_id,
            Some(v2.clone())
        );
        // Nor does a deploy job take a CSR, nor another agent's job.
        let (other, _) = app.enroll_agent("web-02").await;
        let other = app.agent_client(&other);
        let stolen = other.send_job_csr(&job.id, &evil).await.unwrap_err();
        assert_eq!(stolen.status(), Some(404), "{stolen}");

        // Discovery: the certificates of the files go into the inventory, with where they
        // were found; the key beside one of them does not travel.
        let (certs_before, _) = app.counts().await;
        app.admin.discover_on_agent("web-01").await.unwrap();
        let done = do_jobs(&mut agent, 1).await;
        assert!(done[0].succeeded, "{done:?}");
        let (certs_after, _) = app.counts().await;
        assert_eq!(certs_after, certs_before + 2);
        for (name, file) in
            [("found-pem.example", "site.pem"), ("found-der.example", "sub/api.der")]
        {
            let q = cmp_api::CertificateListParams { q: Some(name.into()), ..Default::default() };
            let page = app.admin.list_certificates(&q).await.unwrap();
            let cert = app.admin.certificate(&page.items[0].id).await.unwrap();
            let address = format!("web-01:{}", found.path().join(file).display());
            assert!(
                cert.locations
                    .iter()
                    .any(|l| l.kind == cmp_domain::LocationKind::File && l.address == address),
                "{:?}",
                cert.locations
            );
        }
        let jobs = app.admin.agent("web-01").await.unwrap().jobs;
        let discover = jobs.iter().find(|j| j.kind == cmp_domain::JobKind::Discover).unwrap();
        assert!(
            discover.steps.iter().any(|s| s.name.ends_with("broken.crt") && !s.ok),
            "{:?}",
            discover.steps
        );
        let key_der = pem::parse(&pem_leaf.key_pem).unwrap().into_contents();
        assert!(!database_holds(&app, &key_der), "a discovered file's key is in the database");

        // A report is checked whole before anything is imported; a file without a certificate
        // is counted, not fatal.
        app.admin.discover_on_agent("web-01").await.unwrap();
        let job = raw_agent.next_job(5).await.unwrap().expect("the discover job");
        let file = |path: &str, pem: &str| cmp_api::DiscoveredFile {
            path: path.into(),
            certificates_pem: pem.into(),
        };
        let fresh = ca.leaf("found-raw.example").cert_pem;
        let (certs_before, _) = app.counts().await;
        let relative = cmp_api::DiscoveryReport {
            files: vec![file("/srv/a.pem", &fresh), file("relative.pem", &fresh)],
            unreadable: vec![],
        };
        let refused = raw_agent.send_discovery(&job.id, &relative).await.unwrap_err();
        assert_eq!(refused.status(), Some(400), "{refused}");
        assert_eq!(app.counts().await.0, certs_before);
        let mixed = cmp_api::DiscoveryReport {
            files: vec![file("/srv/junk.pem", "junk"), file("/srv/a.pem", &fresh)],
            unreadable: vec![],
        };
        let taken = raw_agent.send_discovery(&job.id, &mixed).await.unwrap();
        assert_eq!((taken.files, taken.created, taken.refused), (1, 1, 1));
        let again = raw_agent.send_discovery(&job.id, &mixed).await.unwrap_err();
        assert_eq!(again.status(), Some(409), "the job ended: {again}");

        // The target serves v2 only: v1 is no longer located there. Dropped from a served
        // target, the files stay (nginx's configuration names them), and so does v2's location.
        let on_agent = |c: &cmp_api::Certificate| {
            c.locations.iter().filter(|l| l.kind == cmp_domain::LocationKind::Agent).count()
        };
        assert_eq!(on_agent(&app.admin.certificate(&v1).await.unwrap()), 0);
        let none = DeploymentsSet { deployments: vec![] };
        app.admin.set_deployments(&managed.id, &none).await.unwrap();
        let done = do_jobs(&mut agent, 1).await;
        assert!(done[0].succeeded, "{done:?}");
        assert!(key_path.exists());
        assert_eq!(on_agent(&app.admin.certificate(&v2).await.unwrap()), 1);

        // Unasked, once a day (`issuer.agent_discovery_interval_hours`): a day on, each agent
        // gets a discover job, once.
        let day_on = time::OffsetDateTime::now_utc().unix_timestamp() + 86_400 + 60;
        let fleet = app.issuer_state(TestClock::at(day_on)).await.fleet.clone();
        assert_eq!(fleet.queue_scheduled_discoveries().await.unwrap(), 2);
        assert_eq!(fleet.queue_scheduled_discoveries().await.unwrap(), 0, "on its way already");
        for name in ["web-01", "web-02"] {
            let jobs = app.admin.agent(name).await.unwrap().jobs;
            let queued = jobs.iter().filter(|j| {
                j.kind == cmp_domain::JobKind::Discover && j.state == cmp_domain::JobState::Queued
            });
            assert_eq!(queued.count(), 1, "{name}: {jobs:?}");
        }
        let by_scheduler = cmp_api::AuditListParams {
            actor: Some("scheduler".into()),
            action: Some("agent.discovery_queued".into()),
            ..Default::default()
        };
        assert_eq!(app.admin.audit(&by_scheduler).await.unwrap().items.len(), 2);
    });
}

#[tokio::test]
async fn an_agent_polling_through_a_server_restart_gets_the_job_queued_meanwhile_once_and_a_dropped_deployment_is_removed()
 {
    on_both_databases!(https, |app| {
        // The agent's server is a replica on a port of its own, stopped and started again
        // while the agent long-polls it.
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let on_addr = move |c: &mut cmp_server::config::Config| {
            c.http.tls.mode = cmp_server::config::TlsMode::Auto;
            c.listen = Some(addr);
        };
        let first = app.start_replica(on_addr).await;
        let (state, files) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let toml = format!(
            "server = \"https://{addr}\"\nca_file = {:?}\nstate_dir = {:?}\n\
             [targets.files]\nkind = \"file\"\ncert = {:?}\nkey = {:?}\n",
            app.data_dir().join("ca.pem"),
            state.path(),
            files.path().join("shop.pem"),
            files.path().join("shop.key"),
        );
        let config = cmp_agent::AgentConfig::from_toml_str(&toml).unwrap();
        let token = app.admin.create_bootstrap_token(&Default::default()).await.unwrap().token;
        cmp_agent::enroll(&config, token.expose(), "web-01", false).await.unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let agent = tokio::spawn(cmp_agent::Agent::load(config).unwrap().run(stopped));
        let managed = shop(&app).await;
        // Checked in, so polling.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while app.admin.agent("web-01").await.unwrap().agent.last_seen_at.is_none() {
            assert!(std::time::Instant::now() < deadline, "the agent never checked in");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }

        // The stop answers the held poll instead of waiting for it; the job is queued while
        // no server answers the agent.
        first.shutdown().await.unwrap();
        let set = DeploymentsSet {
            deployments: vec![DeploymentTarget { agent: "web-01".into(), target: "files".into() }],
        };
        app.admin.set_deployments(&managed.id, &set).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let second = app.start_replica(on_addr).await;

        // The agent comes back (backoff with jitter), and does the job once.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let verified = loop {
            let deployments = app.admin.deployments(&managed.id).await.unwrap();
            if deployments[0].state == DeploymentState::Verified {
                break deployments;
            }
            assert!(std::time::Instant::now() < deadline, "not deployed: {deployments:?}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        };
        assert_eq!(verified[0].certificate_id, managed.current_certificate_id);
        let jobs = app.admin.agent("web-01").await.unwrap().jobs;
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        assert_eq!((jobs[0].state, jobs[0].attempts), (cmp_domain::JobState::Succeeded, 1));
        let written = pem::parse(std::fs::read(files.path().join("shop.pem")).unwrap()).unwrap();
        let v1 = app.admin.certificate(managed.current_certificate_id.as_deref().unwrap()).await;
        use sha2::Digest as _;
        let written_fp = hex::encode(sha2::Sha256::digest(written.contents()));
        assert_eq!(
            written_fp,
            v1.unwrap().fingerprint_sha256,
            "the file holds another certificate"
        );
        let v1 = managed.current_certificate_id.clone().unwrap();
        assert_eq!(app.admin.certificate(&v1).await.unwrap().locations.len(), 1);

        // Dropped: a `remove` job takes the files away, and the location with them.
        let none = DeploymentsSet { deployments: vec![] };
        app.admin.set_deployments(&managed.id, &none).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while files.path().join("shop.pem").exists() || files.path().join("shop.key").exists() {
            assert!(std::time::Instant::now() < deadline, "the files are still there");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !app.admin.certificate(&v1).await.unwrap().locations.is_empty() {
            assert!(std::time::Instant::now() < deadline, "the location is still recorded");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let jobs = app.admin.agent("web-01").await.unwrap().jobs;
        assert_eq!(jobs[0].kind, cmp_domain::JobKind::Remove, "{jobs:?}");
        stop.send(true).unwrap();
        agent.await.unwrap();
        second.shutdown().await.unwrap();
    });
}
