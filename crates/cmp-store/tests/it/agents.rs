//! Agents: single-use bootstrap tokens, enrolment, disabling, and the job queue that carries
//! each new version of a managed certificate to its deployments.

use std::collections::BTreeMap;

use cmp_domain::{DeploymentState, JobState, KeySource, RequestSpec, RequestState};
use cmp_store::*;
use serde_json::json;

use crate::{NOW, ctx, on_both_databases};

fn bootstrap(hash: &str, expires_at: i64) -> NewBootstrapToken {
    let labels = BTreeMap::from([("site".to_string(), "dc1".to_string())]);
    NewBootstrapToken { token_hash: hash.into(), labels, expires_at }
}

fn agent(name: &str, fingerprint: &str) -> NewAgent {
    NewAgent {
        name: name.into(),
        cert_fingerprint: fingerprint.into(),
        cert_not_after: NOW + 86_400,
    }
}

fn is_bad_token(result: &StoreResult<AgentRecord>) -> bool {
    matches!(result, Err(StoreError::NotFound { entity: "bootstrap token", .. }))
}

async fn audit_count(store: &SqlStore) -> usize {
    store.list_audit(&AuditQuery { limit: 1000, ..Default::default() }).await.unwrap().items.len()
}

#[tokio::test]
async fn a_bootstrap_token_enrols_one_agent_once_before_it_expires() {
    on_both_databases!(|store, db| {
        store.create_bootstrap_token(&ctx(NOW), &bootstrap("h1", NOW + 600)).await.unwrap();
        let web = store.enroll_agent(&ctx(NOW + 1), "h1", &agent("web-01", "f1")).await.unwrap();
        assert_eq!(web.labels.get("site").map(String::as_str), Some("dc1"), "{:?}", db.kind);
        assert_eq!((web.name.as_str(), web.disabled_at), ("web-01", None));
        // Used: refused, and nothing is written.
        let before = audit_count(&store).await;
        let again = store.enroll_agent(&ctx(NOW + 2), "h1", &agent("web-02", "f2")).await;
        assert!(is_bad_token(&again), "{again:?}");
        assert_eq!(audit_count(&store).await, before);
        assert_eq!(store.list_agents().await.unwrap().len(), 1);

        // Expired, unknown and revoked tokens are refused alike.
        store.create_bootstrap_token(&ctx(NOW), &bootstrap("h2", NOW + 10)).await.unwrap();
        let late = store.enroll_agent(&ctx(NOW + 10), "h2", &agent("web-02", "f2")).await;
        assert!(is_bad_token(&late), "{late:?}");
        let unknown = store.enroll_agent(&ctx(NOW), "nope", &agent("web-02", "f2")).await;
        assert!(is_bad_token(&unknown), "{unknown:?}");
        let revoked = store.create_bootstrap_token(&ctx(NOW), &bootstrap("h3", NOW + 600)).await;
        store.revoke_bootstrap_token(&ctx(NOW), &revoked.unwrap().id).await.unwrap();
        let after_revoke = store.enroll_agent(&ctx(NOW), "h3", &agent("web-02", "f2")).await;
        assert!(is_bad_token(&after_revoke), "{after_revoke:?}");

        // A name taken is a conflict that leaves the token usable.
        store.create_bootstrap_token(&ctx(NOW), &bootstrap("h4", NOW + 600)).await.unwrap();
        let clash = store.enroll_agent(&ctx(NOW), "h4", &agent("web-01", "f3")).await;
        assert!(matches!(&clash, Err(StoreError::Conflict(why)) if why.contains("web-01")));
        store.enroll_agent(&ctx(NOW), "h4", &agent("web-03", "f3")).await.unwrap();
        let tokens = store.list_bootstrap_tokens().await.unwrap();
        assert_eq!(tokens.iter().filter(|t| t.used_at.is_some()).count(), 2, "{:?}", db.kind);
    });
}

#[tokio::test]
async fn a_disabled_or_deleted_agent_is_not_found_by_its_certificate() {
    on_both_databases!(|store, db| {
        store.create_bootstrap_token(&ctx(NOW), &bootstrap("h1", NOW + 600)).await.unwrap();
        let web = store.enroll_agent(&ctx(NOW), "h1", &agent("web-01", "f1")).await.unwrap();
        assert_eq!(store.find_agent_by_fingerprint("f1").await.unwrap(), Some(web.clone()));
        store.set_agent_disabled(&ctx(NOW), &web.id, true).await.unwrap();
        assert_eq!(store.find_agent_by_fingerprint("f1").await.unwrap(), None, "{:?}", db.kind);
        store.set_agent_disabled(&ctx(NOW), &web.id, false).await.unwrap();
        // A renewed identity replaces the old certificate once the new one is used: until
        // then the old one still opens (the answer may not have reached the agent).
        store.renew_agent_identity(&ctx(NOW), &web.id, "f1", "f1b", NOW + 100_000).await.unwrap();
        assert!(store.find_agent_by_fingerprint("f1").await.unwrap().is_some());
        // Lost again: renewed a second time with the old certificate, which stays the one kept.
        store.renew_agent_identity(&ctx(NOW), &web.id, "f1", "f1c", NOW + 100_000).await.unwrap();
        assert_eq!(store.find_agent_by_fingerprint("f1b").await.unwrap(), None, "{:?}", db.kind);
        let found = store.find_agent_by_fingerprint("f1").await.unwrap().unwrap();
        assert_eq!(
            (found.cert_fingerprint.as_str(), found.previous_fingerprint.as_deref()),
            ("f1c", Some("f1"))
        );
        store.forget_previous_identity(&web.id).await.unwrap();
        assert_eq!(store.find_agent_by_fingerprint("f1").await.unwrap(), None);
        assert!(store.find_agent_by_fingerprint("f1c").await.unwrap().is_some());
        store.delete_agent(&ctx(NOW), &web.id).await.unwrap();
        assert_eq!(store.find_agent_by_fingerprint("f1c").await.unwrap(), None);
        assert!(matches!(store.get_agent("web-01").await, Err(StoreError::NotFound { .. })));
    });
}

#[tokio::test]
async fn lookups_asked_together_answer_each_as_one_alone_would() {
    on_both_databases!(|store, db| {
        let agents = enrol_agents(&store, 4).await;
        // One agent renewed (its old certificate still opens), one disabled.
        store
            .renew_agent_identity(&ctx(NOW), &agents[1].id, "f1", "f1b", NOW + 100_000)
            .await
            .unwrap();
        store.set_agent_disabled(&ctx(NOW), &agents[2].id, true).await.unwrap();
        let asked = ["f0", "f1", "f1b", "f2", "f3", "nobody", "f0", "f3"];
        let mut alone = Vec::new();
        for fingerprint in asked {
            alone.push(store.find_agent_by_fingerprint(fingerprint).await.unwrap());
        }
        // Asked at once: they wait for a batch together.
        let lookups = asked.iter().map(|f| store.find_agent_by_fingerprint(f));
        let together: Vec<_> =
            futures::future::join_all(lookups).await.into_iter().map(Result::unwrap).collect();
        let names: Vec<Option<&str>> =
            together.iter().map(|a| a.as_ref().map(|a| a.name.as_str())).collect();
        let expected = ["web-0", "web-1", "web-1", "", "web-3", "", "web-0", "web-3"];
        let expected: Vec<_> =
            expected.iter().map(|n| Some(*n).filter(|n| !n.is_empty())).collect();
        assert_eq!(names, expected, "{:?}", db.kind);
        assert_eq!(together, alone, "{:?}", db.kind);
    });
}

/// Issues a new version of `managed` (as the issuer would) and returns its certificate id.
async fn issue_version(store: &SqlStore, adapter: &str, managed: &str, n: u32, at: i64) -> String {
    let mut new = crate::issuance::request(adapter, RequestState::Approved);
    new.managed_certificate_id = Some(managed.into());
    new.claim_until = Some(at + 60);
    let item = IssuedRequest {
        ctx: ctx(at),
        request: new.clone(),
        key: None,
        ledger: LedgerRow {
            ca_id: adapter.into(),
            serial: format!("{n:x}"),
            request_id: new.id.clone(),
            der: vec![n as u8],
            not_after: at + 1000,
            revoked_at: None,
            revocation_reason: None,
        },
        issued: IssuedRecord { facts: crate::facts(n, at + 1000), chain: vec![], findings: vec![] },
    };
    let (record, _) = store.create_issued_request(item).await.unwrap();
    record.certificate_id.unwrap()
}

/// The managed certificate `web` on `adapter`, with `spec`.
async fn managed_web(store: &SqlStore, adapter: &str, spec: RequestSpec) -> ManagedRecord {
    let managed = NewManaged {
        name: "web".into(),
        owner_id: None,
        adapter_id: adapter.into(),
        spec,
        csr: None,
        first_check_at: NOW + 60,
    };
    store.create_managed(&ctx(NOW), &managed).await.unwrap()
}

#[tokio::test]
async fn each_new_version_is_queued_to_every_deployment_and_leased_to_its_agent_only() {
    on_both_databases!(|store, db| {
        let adapter = crate::issuance::adapter(&store).await;
        let managed = managed_web(&store, &adapter.id, crate::spec_for(&["web.example"])).await;
        store.create_bootstrap_token(&ctx(NOW), &bootstrap("h1", NOW + 600)).await.unwrap();
        store.create_bootstrap_token(&ctx(NOW), &bootstrap("h2", NOW + 600)).await.unwrap();
        let web = store.enroll_agent(&ctx(NOW), "h1", &agent("web-01", "f1")).await.unwrap();
        let other = store.enroll_agent(&ctx(NOW), "h2", &agent("web-02", "f2")).await.unwrap();

        // No version yet: the deployment waits, with no job.
        let targets = [(web.id.clone(), "nginx".to_string())];
        let set = store.set_deployments(&ctx(NOW), &managed.id, &targets, false).await.unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(
            (set[0].state, set[0].agent_name.as_str()),
            (DeploymentState::Pending, "web-01")
        );
        assert_eq!(store.lease_job(&web.id, NOW, NOW + 60).await.unwrap(), None, "{:?}", db.kind);
        // An unknown agent is refused by name.
        let unknown = [("no-such-agent".to_string(), "nginx".to_string())];
        let refused = store.set_deployments(&ctx(NOW), &managed.id, &unknown, false).await;
        assert!(
            matches!(refused, Err(StoreError::NotFound { entity: "agent", .. })),
            "{refused:?}"
        );

        let v1 = issue_version(&store, &adapter.id, &managed.id, 1, NOW + 1).await;
        assert_eq!(
            store.agents_with_due_jobs(NOW + 1).await.unwrap(),
            std::slice::from_ref(&web.id)
        );
        assert_eq!(store.lease_job(&other.id, NOW + 1, NOW + 61).await.unwrap(), None);
        let job = store.lease_job(&web.id, NOW + 1, NOW + 61).await.unwrap().unwrap();
        assert_eq!((job.state, job.attempts), (JobState::Leased, 1));
        assert_eq!(
            (job.target.as_str(), job.certificate_id.as_deref()),
            ("nginx", Some(v1.as_str()))
        );
        assert_eq!(store.lease_job(&web.id, NOW + 2, NOW + 62).await.unwrap(), None);

        // Another agent cannot report it.
        let done =
            JobOutcome::Succeeded { served_fingerprint: Some("aa".into()), report: json!([]) };
        let stolen = store.finish_job(&ctx(NOW + 3), &other.id, &job.id, &done).await;
        assert!(matches!(stolen, Err(StoreError::NotFound { .. })), "{stolen:?}");

        // A failure puts it back after a delay, and marks the deployment failed at its step.
        let failed = JobOutcome::Failed {
            step: "test".into(),
            message: "nginx -t failed".into(),
            report: json!([{"step": "test", "ok": false}]),
        };
        let retry = store.finish_job(&ctx(NOW + 3), &web.id, &job.id, &failed).await.unwrap();
        assert_eq!(retry.state, JobState::Queued);
        assert!(retry.not_before > NOW + 3, "{:?}", db.kind);
        let deployment = &store.list_deployments(&managed.id).await.unwrap()[0];
        assert_eq!(deployment.state, DeploymentState::Failed);
        assert_eq!(deployment.failed_step.as_deref(), Some("test"));
        // Reporting twice is a conflict.
        let twice = store.finish_job(&ctx(NOW + 3), &web.id, &job.id, &failed).await;
        assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
        assert_eq!(store.lease_job(&web.id, NOW + 4, NOW + 64).await.unwrap(), None);

        // A lease that runs out puts the job back too.
        let second = store.lease_job(&web.id, retry.not_before, retry.not_before + 60).await;
        let second = second.unwrap().unwrap();
        assert_eq!((second.id.as_str(), second.attempts), (job.id.as_str(), 2));
        let third = store.lease_job(&web.id, retry.not_before + 61, retry.not_before + 121).await;
        let third = third.unwrap().unwrap();
        assert_eq!(third.attempts, 3);
        let at = retry.not_before + 62;
        let ok = store.finish_job(&ctx(at), &web.id, &job.id, &done).await.unwrap();
        assert_eq!(ok.state, JobState::Succeeded);
        let deployment = &store.list_deployments(&managed.id).await.unwrap()[0];
        assert_eq!(deployment.state, DeploymentState::Verified, "{:?}", db.kind);
        assert_eq!(deployment.served_fingerprint.as_deref(), Some("aa"));
        let located = store.get_certificate(&v1, &Scope::All).await.unwrap();
        assert!(
            located.locations.iter().any(|l| l.address == "web-01/nginx"),
            "{:?}",
            located.locations
        );

        // The next version queues a new job; the deployment waits for it.
        let v2 = issue_version(&store, &adapter.id, &managed.id, 2, at + 10).await;
        let deployment = &store.list_deployments(&managed.id).await.unwrap()[0];
        assert_eq!(deployment.state, DeploymentState::Pending);
        assert_eq!(deployment.certificate_id.as_deref(), Some(v2.as_str()));
        let next = store.lease_job(&web.id, at + 10, at + 70).await.unwrap().unwrap();
        assert_eq!(next.certificate_id.as_deref(), Some(v2.as_str()));
        // A restarted agent gives back what it held: due again at once.
        assert_eq!(store.release_jobs(&web.id, at + 11).await.unwrap(), 1);
        let again = store.lease_job(&web.id, at + 11, at + 71).await.unwrap().unwrap();
        assert_eq!((again.id.as_str(), again.attempts), (next.id.as_str(), 2));
        assert_eq!(store.list_jobs(&web.id, 10).await.unwrap().len(), 2);
        // Leases that run out, to the last attempt: the job then ends failed, for good.
        for (attempt, at) in [(3, at + 72), (4, at + 133), (5, at + 194)] {
            let leased = store.lease_job(&web.id, at, at + 60).await.unwrap().unwrap();
            assert_eq!((leased.id.as_str(), leased.attempts), (next.id.as_str(), attempt));
        }
        assert_eq!(store.lease_job(&web.id, at + 255, at + 315).await.unwrap(), None);
        let ended = store.get_job(&web.id, &next.id).await.unwrap();
        assert_eq!((ended.state, ended.lease_until), (JobState::Failed, None), "{:?}", db.kind);
        assert_eq!(store.lease_job(&web.id, at + 400, at + 460).await.unwrap(), None);

        // Deleting the agent takes its deployments and jobs with it.
        store.delete_agent(&ctx(at + 20), &web.id).await.unwrap();
        assert!(store.list_deployments(&managed.id).await.unwrap().is_empty());
        assert!(store.list_jobs(&web.id, 10).await.unwrap().is_empty());
    });
}

/// `n` enrolled agents, `web-0` to `web-<n-1>`, enrolled one second apart from `NOW`.
async fn enrol_agents(store: &SqlStore, n: i64) -> Vec<AgentRecord> {
    let mut agents = Vec::new();
    for i in 0..n {
        let hash = format!("h{i}");
        store.create_bootstrap_token(&ctx(NOW), &bootstrap(&hash, NOW + 600)).await.unwrap();
        let new = agent(&format!("web-{i}"), &format!("f{i}"));
        agents.push(store.enroll_agent(&ctx(NOW + i), &hash, &new).await.unwrap());
    }
    agents
}

/// What the dispatch tests start from: the builtin adapter, a managed certificate for
/// `web.example` and four enrolled agents.
struct Dispatch {
    adapter_id: String,
    managed: ManagedRecord,
    agents: Vec<AgentRecord>,
    ids: Vec<String>,
}

async fn dispatch_of_four(store: &SqlStore) -> Dispatch {
    let adapter_id = crate::issuance::adapter(store).await.id;
    let managed = managed_web(store, &adapter_id, crate::spec_for(&["web.example"])).await;
    let agents = enrol_agents(store, 4).await;
    let ids = agents.iter().map(|a| a.id.clone()).collect();
    Dispatch { adapter_id, managed, agents, ids }
}

#[tokio::test]
async fn one_lease_hands_each_agent_of_a_dispatch_its_oldest_due_job_only() {
    on_both_databases!(|store, db| {
        let Dispatch { adapter_id, managed, ids, .. } = dispatch_of_four(&store).await;
        // web-0 and web-1 get a deployment; web-0 and web-2 a discovery after it; web-3 nothing.
        let targets: Vec<_> = ids[..2].iter().map(|id| (id.clone(), "nginx".into())).collect();
        store.set_deployments(&ctx(NOW), &managed.id, &targets, false).await.unwrap();
        let v1 = issue_version(&store, &adapter_id, &managed.id, 1, NOW + 1).await;
        let discover_0 = store.queue_discover_job(&ctx(NOW + 2), &ids[0]).await.unwrap();
        let discover_2 = store.queue_discover_job(&ctx(NOW + 2), &ids[2]).await.unwrap();

        let mut leased = store.lease_jobs(&ids, NOW + 3, NOW + 63).await.unwrap();
        leased.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        let mut expected = vec![
            (ids[0].clone(), Some(v1.clone()), JobState::Leased),
            (ids[1].clone(), Some(v1.clone()), JobState::Leased),
            (ids[2].clone(), None, JobState::Leased),
        ];
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        let got: Vec<_> = leased
            .iter()
            .map(|j| (j.agent_id.clone(), j.certificate_id.clone(), j.state))
            .collect();
        assert_eq!(got, expected, "{:?}", db.kind);
        assert!(leased.iter().all(|j| j.attempts == 1 && j.lease_until == Some(NOW + 63)));
        assert_eq!(leased.iter().find(|j| j.agent_id == ids[2]).unwrap().id, discover_2.id);

        // Next: only web-0's discovery is still due.
        let next = store.lease_jobs(&ids, NOW + 4, NOW + 64).await.unwrap();
        let next: Vec<_> = next.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(next, [discover_0.id.as_str()], "{:?}", db.kind);
        assert!(store.lease_jobs(&ids, NOW + 5, NOW + 65).await.unwrap().is_empty());

        // Leases that run out come back, one per agent each time, until their last attempt
        // ends them.
        let mut at = NOW + 70;
        for _ in 0..20 {
            let again = store.lease_jobs(&ids, at, at + 60).await.unwrap();
            if again.is_empty() {
                break;
            }
            assert!(again.len() <= 3, "{again:?}");
            at += 61;
        }
        for agent in &ids[..3] {
            let jobs = store.list_jobs(agent, 10).await.unwrap();
            assert!(jobs.iter().all(|j| j.attempts == 5), "{jobs:?}");
            assert!(jobs.iter().all(|j| j.state == JobState::Failed), "{jobs:?}");
        }
    });
}

fn succeeded(fingerprint: Option<&str>) -> JobOutcome {
    JobOutcome::Succeeded { served_fingerprint: fingerprint.map(Into::into), report: json!([]) }
}

fn result(agent: &AgentRecord, job: &JobRecord, outcome: JobOutcome, at: i64) -> JobResultItem {
    JobResultItem { ctx: ctx(at), agent_id: agent.id.clone(), job_id: job.id.clone(), outcome }
}

async fn events_of(store: &SqlStore, action: AuditAction) -> usize {
    let all = store.list_audit(&AuditQuery { limit: 1000, ..Default::default() }).await.unwrap();
    all.items.iter().filter(|e| e.action == action.as_str()).count()
}

#[tokio::test]
async fn results_recorded_together_mark_each_deployment_as_one_at_a_time_would() {
    on_both_databases!(|store, db| {
        let Dispatch { adapter_id, managed, agents, ids } = dispatch_of_four(&store).await;
        let targets: Vec<_> = ids.iter().map(|id| (id.clone(), "nginx".into())).collect();
        store.set_deployments(&ctx(NOW), &managed.id, &targets, false).await.unwrap();
        let v1 = issue_version(&store, &adapter_id, &managed.id, 1, NOW + 1).await;
        let mut jobs = store.lease_jobs(&ids, NOW + 2, NOW + 62).await.unwrap();
        jobs.sort_by_key(|j| ids.iter().position(|id| *id == j.agent_id));
        assert_eq!(jobs.len(), 4, "{:?}", db.kind);

        let failed = JobOutcome::Failed {
            step: "reload".into(),
            message: "nginx: [emerg]".into(),
            report: json!([]),
        };
        let batch = [
            result(&agents[0], &jobs[0], succeeded(Some("aa")), NOW + 3),
            result(&agents[1], &jobs[1], succeeded(None), NOW + 3),
            result(&agents[2], &jobs[2], failed, NOW + 3),
            // web-3's job reported by web-0, and web-0's twice: refused, on their own.
            result(&agents[0], &jobs[3], succeeded(None), NOW + 3),
            result(&agents[0], &jobs[0], succeeded(Some("aa")), NOW + 3),
        ];
        let answers = store.record_job_results_together(&batch).await.unwrap();
        let states: Vec<_> = answers.iter().map(|a| a.as_ref().ok().map(|j| j.state)).collect();
        let expected = [JobState::Succeeded, JobState::Succeeded, JobState::Queued];
        assert_eq!(states[..3], expected.map(Some), "{:?} {answers:?}", db.kind);
        assert!(
            matches!(answers[3], Err(StoreError::NotFound { entity: "job", .. })),
            "{answers:?}"
        );
        assert!(matches!(answers[4], Err(StoreError::Conflict(_))), "{answers:?}");
        // What the answers say is what is stored.
        for (answer, job) in answers.iter().zip(&jobs).take(3) {
            let stored = store.get_job(&job.agent_id, &job.id).await.unwrap();
            assert_eq!(answer.as_ref().unwrap(), &stored);
        }
        assert_eq!(store.get_job(&ids[3], &jobs[3].id).await.unwrap().state, JobState::Leased);

        let deployments = store.list_deployments(&managed.id).await.unwrap();
        let shown: Vec<_> = deployments
            .iter()
            .map(|d| (d.agent_name.as_str(), d.state, d.served_fingerprint.as_deref()))
            .collect();
        assert_eq!(
            shown,
            [
                ("web-0", DeploymentState::Verified, Some("aa")),
                ("web-1", DeploymentState::Verified, None),
                ("web-2", DeploymentState::Failed, None),
                ("web-3", DeploymentState::Pending, None),
            ],
            "{:?}",
            db.kind
        );
        assert_eq!(deployments[2].failed_step.as_deref(), Some("reload"));
        let located = store.get_certificate(&v1, &Scope::All).await.unwrap().locations;
        let mut addresses: Vec<_> = located.iter().map(|l| l.address.as_str()).collect();
        addresses.sort_unstable();
        assert_eq!(addresses, ["web-0/nginx", "web-1/nginx"]);
        assert_eq!(events_of(&store, AuditAction::DeploymentVerified).await, 2);
        assert_eq!(events_of(&store, AuditAction::DeploymentFailed).await, 1);

        // A new version: web-0 serves it, and no longer v1; web-3's late result for v1 says
        // nothing about the deployment, which waits for v2.
        let v2 = issue_version(&store, &adapter_id, &managed.id, 2, NOW + 10).await;
        let next = store.lease_job(&ids[0], NOW + 11, NOW + 71).await.unwrap().unwrap();
        let batch = [
            result(&agents[0], &next, succeeded(Some("bb")), NOW + 12),
            result(&agents[3], &jobs[3], succeeded(Some("aa")), NOW + 12),
        ];
        let answers = store.record_job_results_together(&batch).await.unwrap();
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        let v1_at = store.get_certificate(&v1, &Scope::All).await.unwrap().locations;
        let v2_at = store.get_certificate(&v2, &Scope::All).await.unwrap().locations;
        let v1_at: Vec<_> = v1_at.iter().map(|l| l.address.as_str()).collect();
        let v2_at: Vec<_> = v2_at.iter().map(|l| l.address.as_str()).collect();
        assert_eq!((v1_at, v2_at), (vec!["web-1/nginx"], vec!["web-0/nginx"]), "{:?}", db.kind);
        let deployments = store.list_deployments(&managed.id).await.unwrap();
        assert_eq!(deployments[3].state, DeploymentState::Pending);
        assert_eq!(deployments[3].certificate_id.as_deref(), Some(v2.as_str()));
        assert_eq!(events_of(&store, AuditAction::DeploymentVerified).await, 3);
        assert!(store.verify_audit_chain().await.unwrap().1.is_none());

        // The same through `finish_job`, called concurrently: one batch, the same rules.
        let mut more = Vec::new();
        for (i, agent) in agents.iter().enumerate().skip(1) {
            let job = store.lease_job(&agent.id, NOW + 20, NOW + 80).await.unwrap();
            more.push((i, job.unwrap()));
        }
        let finishing = more.iter().map(|(i, job)| {
            let outcome = succeeded(Some("bb"));
            let store = store.clone();
            let agent = agents[*i].id.clone();
            async move { store.finish_job(&ctx(NOW + 21), &agent, &job.id, &outcome).await }
        });
        let done = futures::future::join_all(finishing).await;
        assert!(done.iter().all(|d| d.as_ref().is_ok_and(|j| j.state == JobState::Succeeded)));
        let deployments = store.list_deployments(&managed.id).await.unwrap();
        assert!(
            deployments.iter().all(|d| d.state == DeploymentState::Verified),
            "{deployments:?}"
        );
        assert!(store.verify_audit_chain().await.unwrap().1.is_none());
    });
}

#[tokio::test]
async fn scheduled_discoveries_come_once_per_interval_to_enabled_agents_with_none_on_its_way() {
    on_both_databases!(|store, db| {
        let agents = enrol_agents(&store, 3).await;
        let day = 86_400;
        // Counted from enrolment: none is due a day after the first enrolled.
        let queued = store.queue_scheduled_discoveries(&ctx(NOW + day), NOW).await.unwrap();
        assert!(queued.is_empty(), "{:?} {queued:?}", db.kind);
        // web-1 was asked meanwhile (its job on its way), web-2 is disabled: only web-0.
        store.queue_discover_job(&ctx(NOW + 5), &agents[1].id).await.unwrap();
        store.set_agent_disabled(&ctx(NOW + 5), &agents[2].id, true).await.unwrap();
        let before = audit_count(&store).await;
        let queued = store.queue_scheduled_discoveries(&ctx(NOW + day + 10), NOW + 10).await;
        assert_eq!(queued.unwrap(), [agents[0].id.clone()], "{:?}", db.kind);
        assert_eq!(audit_count(&store).await, before + 1);
        let jobs = store.list_jobs(&agents[0].id, 10).await.unwrap();
        assert_eq!(
            jobs.iter().map(|j| (j.kind, j.state)).collect::<Vec<_>>(),
            [(cmp_domain::JobKind::Discover, JobState::Queued)]
        );
        // Not again while it is on its way, nor within an interval of it once done.
        let again = store.queue_scheduled_discoveries(&ctx(NOW + day + 20), NOW + 20).await;
        assert!(again.unwrap().is_empty());
        let job = store.lease_job(&agents[0].id, NOW + day + 30, NOW + day + 90).await.unwrap();
        let done = JobOutcome::Succeeded { served_fingerprint: None, report: json!([]) };
        store
            .finish_job(&ctx(NOW + day + 40), &agents[0].id, &job.unwrap().id, &done)
            .await
            .unwrap();
        let soon = store.queue_scheduled_discoveries(&ctx(NOW + day + 50), NOW + 50).await;
        assert!(soon.unwrap().is_empty());
        let next_day = NOW + 2 * day + 20;
        let queued = store.queue_scheduled_discoveries(&ctx(next_day), next_day - day).await;
        assert_eq!(queued.unwrap(), [agents[0].id.clone()], "{:?}", db.kind);
    });
}

#[tokio::test]
async fn a_key_made_on_the_host_is_asked_for_once_at_a_time_and_its_failure_marks_the_deployment() {
    on_both_databases!(|store, db| {
        let adapter = crate::issuance::adapter(&store).await;
        let managed = managed_web(
            &store,
            &adapter.id,
            RequestSpec { key_source: KeySource::Agent, ..crate::spec_for(&["web.example"]) },
        )
        .await;
        store.create_bootstrap_token(&ctx(NOW), &bootstrap("h1", NOW + 600)).await.unwrap();
        let web = store.enroll_agent(&ctx(NOW), "h1", &agent("web-01", "f1")).await.unwrap();
        let targets = [(web.id.clone(), "nginx".to_string())];
        store.set_deployments(&ctx(NOW), &managed.id, &targets, true).await.unwrap();
        // One job asks for a key; asking again while it is on its way adds none.
        assert_eq!(store.queue_local_key_jobs(&ctx(NOW), &managed.id).await.unwrap(), 0);
        let job = store.lease_job(&web.id, NOW, NOW + 60).await.unwrap().unwrap();
        assert_eq!(job.kind, cmp_domain::JobKind::RenewWithLocalKey, "{:?}", db.kind);
        assert_eq!(job.certificate_id, None);
        assert_eq!(store.queue_local_key_jobs(&ctx(NOW), &managed.id).await.unwrap(), 0);
        // Its failure shows on the deployment; then a new one may be asked for.
        let failed = JobOutcome::Failed {
            step: "issue".into(),
            message: "outside policy".into(),
            report: json!([]),
        };
        store.finish_job(&ctx(NOW + 1), &web.id, &job.id, &failed).await.unwrap();
        let deployments = store.list_deployments(&managed.id).await.unwrap();
        assert_eq!(
            (deployments[0].state, deployments[0].failed_step.as_deref()),
            (DeploymentState::Failed, Some("issue"))
        );
        // The failed job is queued for its retry: still on its way.
        assert_eq!(store.queue_local_key_jobs(&ctx(NOW + 2), &managed.id).await.unwrap(), 0);
        store.delete_agent(&ctx(NOW + 3), &web.id).await.unwrap();
        assert_eq!(store.queue_local_key_jobs(&ctx(NOW + 3), &managed.id).await.unwrap(), 0);

        // A discover job: one at a time per agent.
        store.create_bootstrap_token(&ctx(NOW), &bootstrap("h2", NOW + 600)).await.unwrap();
        let db01 = store.enroll_agent(&ctx(NOW), "h2", &agent("db-01", "f2")).await.unwrap();
        // Found by name or id, each once; unknown ones left out.
        let asked = ["db-01".to_string(), db01.id.clone(), "no-such-agent".to_string()];
        let found = store.find_agents(&asked).await.unwrap();
        assert_eq!(found.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["db-01"]);
        let first = store.queue_discover_job(&ctx(NOW), &db01.id).await.unwrap();
        let second = store.queue_discover_job(&ctx(NOW), &db01.id).await.unwrap();
        assert_eq!((first.id.clone(), first.kind), (second.id, cmp_domain::JobKind::Discover));
        assert_eq!(first.state, JobState::Queued);
        let missing = store.queue_discover_job(&ctx(NOW), "no-such-agent").await;
        assert!(matches!(missing, Err(StoreError::NotFound { .. })), "{missing:?}");
    });
}
