//! The issuance workflow, once for every CA: policy, approval, attempts with backoff, the
//! adapter call, and the inventory write. Handlers and the scheduler call these.

use std::time::Instant;

use cmp_api::{ManagedCreate, RequestCreate};
use cmp_ca::{CaError, RevocationReason, SignRequest};
use cmp_domain::{Backoff, Policy, RequestKind, RequestState, Role};
use cmp_pki::CsrInfo;
use cmp_pki::keygen::KeySpec;
use cmp_secrets::SecretBytes;
use cmp_store::{
    AuditContext, IdempotencyKey, IssuedRecord, ManagedRecord, NewManaged, NewRequest,
    RequestRecord, Scope,
};
use sha2::{Digest, Sha256};

use super::spec::{self, KeySource, Spec};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::inventory::service::{audit_context, resolve_owner};
use crate::state::AppState;

/// An `Idempotency-Key` header value and the body it came with.
pub struct Idempotency {
    pub key: String,
    pub body: Vec<u8>,
}

impl Idempotency {
    pub fn for_caller(&self, state: &AppState, caller: &str) -> IdempotencyKey {
        let ttl = state.config.issuer.idempotency_ttl_hours.saturating_mul(3600);
        IdempotencyKey {
            caller: caller.to_string(),
            key: self.key.clone(),
            body_hash: hex::encode(Sha256::digest(&self.body)),
            not_before: state.clock.now().unix_timestamp() - ttl,
        }
    }
}

/// The context of changes the platform makes by itself.
pub fn system_context(state: &AppState, actor: &str) -> AuditContext {
    AuditContext { actor: actor.into(), request_id: None, now_us: state.now_us() }
}

/// The adapter a request names, or the builtin CA; it must be enabled.
async fn resolve_adapter(state: &AppState, name: Option<&str>) -> ApiResult<String> {
    let name = name.unwrap_or(crate::adapter::DEFAULT_CA_NAME);
    let adapter = state.lookups.adapter(state.store.as_ref(), name).await?;
    if !adapter.enabled {
        return Err(ApiError::Conflict(format!("adapter {} is disabled", adapter.name)));
    }
    Ok(adapter.id)
}

fn parse_key_type(key_type: Option<&str>) -> ApiResult<Option<KeySpec>> {
    key_type
        .map(|k| {
            KeySpec::parse(k).map_err(|_| {
                ApiError::bad_field(
                    "key_type",
                    "one of ecdsa_p256, ecdsa_p384, rsa2048, rsa3072, rsa4096, ed25519",
                )
            })
        })
        .transpose()
}

fn parse_csr(pem: &str) -> ApiResult<CsrInfo> {
    cmp_pki::parse_csr(pem.as_bytes()).map_err(|e| ApiError::Unprocessable {
        detail: format!("csr: {e}"),
        errors: vec![cmp_api::ProblemItem {
            pointer: "csr".into(),
            reason: "invalid_csr".into(),
            detail: e.to_string(),
        }],
    })
}

/// The owner's policy, or the default one.
pub async fn policy_of(state: &AppState, owner_id: &str) -> ApiResult<(Policy, bool)> {
    match state.lookups.policy(state.store.as_ref(), owner_id).await? {
        Some(record) => {
            let policy = serde_json::from_value(record.rules)
                .map_err(|e| ApiError::Internal(format!("stored policy: {e}")))?;
            Ok((policy, true))
        }
        None => Ok((Policy::default(), false)),
    }
}

/// A validated issue: the spec, the CSR (if the requester holds the key), the key type (if
/// the server makes it), and whether approval is needed.
struct Checked {
    spec: Spec,
    csr: Option<CsrInfo>,
    key_type: Option<KeySpec>,
    require_approval: bool,
    /// The policy's longest lifetime, in seconds: a certificate longer than that is stored
    /// with a finding.
    policy_max_secs: i64,
}

async fn check_issue(
    state: &AppState,
    owner_id: &str,
    subject: &cmp_api::Subject,
    csr: Option<&str>,
    key_type: Option<&str>,
) -> ApiResult<Checked> {
    let key_type = parse_key_type(key_type)?;
    let csr = match (csr, key_type) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("give either csr or key_type, not both"));
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "give a csr (preferred: you keep the key) or a key_type for a server-made key",
            ));
        }
        (Some(pem), None) => Some(parse_csr(pem)?),
        (None, Some(_)) => None,
    };
    let spec =
        spec::build(subject, csr.as_ref(), key_type, state.config.issuer.default_validity_days)?;
    let key = match (&csr, key_type) {
        (Some(csr), _) => csr.key.clone(),
        (None, Some(k)) => spec::key_info_of(k),
        (None, None) => return Err(ApiError::Internal("no key".into())),
    };
    let (policy, _) = policy_of(state, owner_id).await?;
    policy.check(&spec.ask(&key)).map_err(ApiError::Policy)?;
    Ok(Checked {
        spec,
        csr,
        key_type,
        require_approval: policy.require_approval,
        policy_max_secs: policy.max_validity_days.saturating_mul(86_400),
    })
}

/// Makes a key in the secret store and a CSR for it.
async fn server_key(
    state: &AppState,
    secret_name: &str,
    key_type: KeySpec,
    spec: &Spec,
) -> ApiResult<Vec<u8>> {
    let (cn, dns, ips) =
        (spec.common_name.clone(), spec.dns_names.clone(), spec.ip_addresses.clone());
    let (key, csr) = tokio::task::spawn_blocking(move || {
        let key = cmp_pki::keygen::generate_key(key_type)?;
        let csr = cmp_pki::keygen::make_csr(key.pkcs8_der(), cn.as_deref(), &dns, &ips)?;
        Ok::<_, cmp_pki::keygen::KeygenError>((key, csr))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(format!("key generation: {e}")))?;
    state.secrets.put(secret_name, &SecretBytes::new(key.pkcs8_der().to_vec())).await?;
    Ok(csr)
}

/// A new request of `kind` for `spec`, approved at once unless `needs_approval`.
fn new_request(
    kind: RequestKind,
    needs_approval: bool,
    owner_id: Option<String>,
    adapter_id: String,
    managed_certificate_id: Option<String>,
    spec: &Spec,
    requested_by: &str,
) -> ApiResult<NewRequest> {
    Ok(NewRequest {
        id: uuid::Uuid::now_v7().to_string(),
        kind,
        state: if needs_approval { RequestState::AwaitingApproval } else { RequestState::Approved },
        owner_id,
        adapter_id,
        managed_certificate_id,
        certificate_id: None,
        spec: spec.to_json()?,
        csr: None,
        key_secret: None,
        requested_by: requested_by.to_string(),
        claim_until: None,
    })
}

/// Creates a request (policy-checked; idempotent with a key) and, if no approval is needed,
/// carries it out before answering.
pub async fn create_request(
    state: &AppState,
    caller: &Caller,
    body: &RequestCreate,
    idempotency: Option<&Idempotency>,
) -> ApiResult<(RequestRecord, bool)> {
    let owner_id = resolve_owner(state, caller, &body.owner).await?;
    let adapter_id = resolve_adapter(state, body.adapter.as_deref()).await?;
    let checked =
        check_issue(state, &owner_id, &body.subject, body.csr.as_deref(), body.key_type.as_deref())
            .await?;
    let key = idempotency.map(|i| i.for_caller(state, &caller.actor));
    let new = new_request(
        RequestKind::Issue,
        checked.require_approval,
        Some(owner_id),
        adapter_id,
        None,
        &checked.spec,
        &caller.actor,
    )?;
    submit(state, &audit_context(state, caller), new, &checked, key.as_ref()).await
}

/// Stores a checked request (making the server key first if asked) and runs it if approved.
async fn submit(
    state: &AppState,
    ctx: &AuditContext,
    mut new: NewRequest,
    checked: &Checked,
    key: Option<&IdempotencyKey>,
) -> ApiResult<(RequestRecord, bool)> {
    match (&checked.csr, checked.key_type) {
        (Some(csr), _) => new.csr = Some(csr.der.clone()),
        (None, Some(key_type)) => {
            // A retry must not make a key only to throw it away.
            if let Some(key) = key
                && let Some(existing) = state.store.find_idempotent(key).await?
            {
                return Ok((state.store.get_request(&existing, &Scope::All).await?, false));
            }
            let secret = format!("keys/{}", new.id);
            new.csr = Some(server_key(state, &secret, key_type, &checked.spec).await?);
            new.key_secret = Some(secret);
        }
        (None, None) => {}
    }
    // An approved request is carried out now: its first attempt is claimed as it is stored.
    new.claim_until = Some(lease_end(state));
    if let Some(done) = issue_in_process(state, ctx, &new, checked, key).await {
        let (record, created) = match done {
            Ok(done) => done,
            Err(e) => {
                discard_key(state, new.key_secret.as_deref()).await;
                return Err(e);
            }
        };
        if !created {
            discard_key(state, new.key_secret.as_deref()).await;
        }
        return Ok((record, created));
    }
    let (record, created) = match state.store.create_request(ctx, &new, key).await {
        Ok(done) => done,
        Err(e) => {
            discard_key(state, new.key_secret.as_deref()).await;
            return Err(e.into());
        }
    };
    if !created {
        // A retry raced us and won: our key is not needed.
        discard_key(state, new.key_secret.as_deref()).await;
        return Ok((record, false));
    }
    let record = if record.state == RequestState::Submitted {
        attempt(state, record).await?
    } else {
        record
    };
    Ok((record, true))
}

/// The fast path for an approved request to a builtin CA in this process: sign first, then
/// store the request, the ledger row and the certificate in one transaction (the signature
/// leaves no trace outside the database until then). `None` when it does not apply or the CA
/// refuses: the stored-first path then records the request and the refusal as usual.
async fn issue_in_process(
    state: &AppState,
    ctx: &AuditContext,
    new: &NewRequest,
    checked: &Checked,
    key: Option<&IdempotencyKey>,
) -> Option<ApiResult<(RequestRecord, bool)>> {
    let in_process = state.config.issuer.adapter_url.is_empty();
    if !in_process || new.state != RequestState::Approved {
        return None;
    }
    // Loaded builtin CAs only: any other adapter (or a CA's first request, which loads it)
    // costs no lookup here and takes the stored-first path.
    let ca = state.local_adapters.builtin.cached(&new.adapter_id).await?;
    let sign = SignRequest {
        request_id: new.id.clone(),
        csr_der: new.csr.clone()?,
        profile: checked.spec.profile(),
        replaces: None,
        acme_solver: None,
    };
    let started = Instant::now();
    // A server-made key's CSR was made here, not parsed yet.
    let made_here;
    let csr = match &checked.csr {
        Some(csr) => csr,
        None => {
            made_here = cmp_pki::parse_csr(&sign.csr_der).ok()?;
            &made_here
        }
    };
    let (entry, issued) = ca.sign_unrecorded(&sign, csr).ok()?;
    let limits = Limits {
        requested_secs: sign.profile.validity_secs,
        policy_max_secs: Some(checked.policy_max_secs),
    };
    let record = match issued_record(&issued, limits) {
        Ok(record) => record,
        Err(e) => return Some(Err(ApiError::Ca(e))),
    };
    let ledger = cmp_store::LedgerRow {
        ca_id: entry.ca_id,
        serial: entry.serial,
        request_id: entry.request_id,
        der: entry.certificate_der,
        not_after: entry.not_after,
        revoked_at: None,
        revocation_reason: None,
    };
    let item = cmp_store::IssuedRequest {
        ctx: ctx.clone(),
        request: new.clone(),
        key: key.cloned(),
        ledger,
        issued: record,
    };
    let stored = state.store.create_issued_request(item).await;
    record_duration(&new.adapter_id, "issued", new.kind, started);
    Some(stored.map_err(ApiError::from))
}

async fn discard_key(state: &AppState, secret: Option<&str>) {
    if let Some(secret) = secret
        && let Err(e) = state.secrets.delete(secret).await
    {
        tracing::warn!(error = %e, "could not delete an unused key");
    }
}

/// Approves or rejects; an approved request is carried out before answering.
pub async fn decide(
    state: &AppState,
    caller: &Caller,
    id: &str,
    approve: bool,
    comment: Option<&str>,
) -> ApiResult<RequestRecord> {
    let request = state.store.get_request(id, &Scope::All).await?;
    if request.requested_by == caller.actor {
        // Separation of duties: approval is a second person's check.
        return Err(ApiError::Forbidden(
            "a request cannot be approved or rejected by the caller who made it".into(),
        ));
    }
    if comment.is_some_and(|c| c.len() > 2000) {
        return Err(ApiError::bad_field("comment", "at most 2000 bytes"));
    }
    let decided =
        state.store.decide_request(&audit_context(state, caller), id, approve, comment).await?;
    if decided.state == RequestState::Approved { process(state, id).await } else { Ok(decided) }
}

/// Carries out one attempt of a request if it is due and nobody else holds it; returns the
/// request as it stands afterwards.
pub async fn process(state: &AppState, id: &str) -> ApiResult<RequestRecord> {
    let ctx = system_context(state, "system:issuer");
    let Some(request) = state.store.claim_request(&ctx, id, lease_end(state)).await? else {
        return Ok(state.store.get_request(id, &Scope::All).await?);
    };
    attempt(state, request).await
}

/// Until when an attempt starting now holds its request.
fn lease_end(state: &AppState) -> i64 {
    state.clock.now().unix_timestamp() + state.config.issuer.request_lease_secs
}

/// Carries out a claimed attempt and records its outcome.
async fn attempt(state: &AppState, request: RequestRecord) -> ApiResult<RequestRecord> {
    let id = request.id.as_str();
    let started = Instant::now();
    let outcome = match request.kind {
        RequestKind::Issue | RequestKind::Renew => sign(state, &request).await,
        RequestKind::Revoke => revoke_at_ca(state, &request).await,
    };
    let ctx = system_context(state, "system:issuer");
    let (record, label) = match outcome {
        Ok(Done::Issued(issued)) => {
            (state.store.complete_issue(&ctx, id, &issued).await?, "issued")
        }
        Ok(Done::Revoked(reason)) => {
            (state.store.complete_revoke(&ctx, id, reason.as_str()).await?, "issued")
        }
        Err(e) => {
            // A CA that asks to wait (a rate limit) is waited for, and that wait spends no
            // attempt: the request was not wrong, only early.
            let throttled = matches!(e, CaError::Throttled { .. });
            let retry_at = (e.is_retryable()
                && (throttled || request.attempts < state.config.issuer.max_attempts))
                .then(|| {
                    let failures = u32::try_from(request.attempts).unwrap_or(u32::MAX);
                    let backoff = Backoff { base_secs: 5, cap_secs: 600 };
                    let after_backoff =
                        state.clock.now().unix_timestamp() + backoff.delay_secs(failures);
                    e.retry_at().map_or(after_backoff, |at| at.max(after_backoff))
                });
            let label = if retry_at.is_some() { "retry" } else { "failed" };
            (state.store.fail_request(&ctx, id, &e.to_string(), retry_at).await?, label)
        }
    };
    record_duration(&request.adapter_id, label, request.kind, started);
    Ok(record)
}

/// The issuance latency histogram, by adapter, outcome and request kind.
fn record_duration(adapter: &str, outcome: &str, kind: RequestKind, started: Instant) {
    let labels = [
        ("adapter", adapter.to_string()),
        ("outcome", outcome.to_string()),
        ("kind", kind.as_str().to_string()),
    ];
    metrics::histogram!("cmp_issuance_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
}

enum Done {
    Issued(Box<IssuedRecord>),
    Revoked(RevocationReason),
}

async fn sign(state: &AppState, request: &RequestRecord) -> Result<Done, CaError> {
    let spec = Spec::from_json(&request.spec).map_err(|e| CaError::Internal(e.to_string()))?;
    let csr_der =
        request.csr.clone().ok_or_else(|| CaError::Internal("request has no CSR".into()))?;
    let adapter = state.adapters.adapter(&request.adapter_id).await?;
    let replaces = match request.kind {
        RequestKind::Renew => current_version_der(state, request).await,
        _ => None,
    };
    let sign = SignRequest {
        request_id: request.id.clone(),
        csr_der,
        profile: spec.profile(),
        replaces,
        acme_solver: spec.acme_solver.clone(),
    };
    let requested_secs = sign.profile.validity_secs;
    let issued = adapter.create_certificate(&sign).await?;
    // The policy as it is now (the request was checked against it, or an older one): a
    // policy that cannot be read only leaves the policy finding out.
    let policy_max_secs = match &request.owner_id {
        Some(owner) => policy_of(state, owner)
            .await
            .ok()
            .map(|(policy, _)| policy.max_validity_days.saturating_mul(86_400)),
        None => None,
    };
    let limits = Limits { requested_secs, policy_max_secs };
    Ok(Done::Issued(Box::new(issued_record(&issued, limits)?)))
}

/// The lifetime a certificate was asked for and the policy's longest, in seconds.
#[derive(Debug, Clone, Copy)]
struct Limits {
    requested_secs: i64,
    policy_max_secs: Option<i64>,
}

/// What the inventory keeps of a signed certificate and its chain, with a finding when the CA
/// issued it for longer than asked or than the policy allows (stored as issued: it exists,
/// and hiding it would be worse).
fn issued_record(
    issued: &cmp_ca::IssuedCertificate,
    limits: Limits,
) -> Result<IssuedRecord, CaError> {
    let parse = |der: &[u8]| {
        cmp_pki::parse_certificate(der).map_err(|e| {
            CaError::Internal(format!("the CA returned an unreadable certificate: {e}"))
        })
    };
    let facts = parse(&issued.certificate_der)?;
    let findings =
        cmp_domain::validity_findings(&facts, limits.requested_secs, limits.policy_max_secs);
    if !findings.is_empty() {
        tracing::warn!(
            serial = %facts.serial_number,
            not_after = %facts.not_after,
            requested_secs = limits.requested_secs,
            ?findings,
            "the CA issued a certificate for longer than asked or allowed"
        );
    }
    Ok(IssuedRecord {
        facts,
        chain: issued.chain_der.iter().map(|d| parse(d)).collect::<Result<_, _>>()?,
        findings,
    })
}

/// The DER of the version a renewal replaces, if it can be read (it only informs the CA).
async fn current_version_der(state: &AppState, request: &RequestRecord) -> Option<Vec<u8>> {
    let managed = state
        .store
        .get_managed(request.managed_certificate_id.as_deref()?, &Scope::All)
        .await
        .ok()?;
    state.store.get_certificate_der(&managed.current_certificate_id?, &Scope::All).await.ok()
}

async fn revoke_at_ca(state: &AppState, request: &RequestRecord) -> Result<Done, CaError> {
    let spec = Spec::from_json(&request.spec).map_err(|e| CaError::Internal(e.to_string()))?;
    let reason = spec
        .reason
        .as_deref()
        .and_then(RevocationReason::parse)
        .unwrap_or(RevocationReason::Unspecified);
    let serial =
        spec.serial.ok_or_else(|| CaError::Internal("revoke request without serial".into()))?;
    let adapter = state.adapters.adapter(&request.adapter_id).await?;
    match adapter.revoke_certificate(&serial, reason).await {
        // Revoked at the CA by an earlier attempt that died before recording it.
        Ok(()) | Err(CaError::AlreadyRevoked(_)) => Ok(Done::Revoked(reason)),
        Err(e) => Err(e),
    }
}

/// Revokes an inventory certificate through the adapter that issued it.
pub async fn revoke(
    state: &AppState,
    caller: &Caller,
    certificate_id: &str,
    reason: &str,
) -> ApiResult<RequestRecord> {
    let reason = RevocationReason::parse(reason).ok_or_else(|| {
        let names: Vec<&str> = RevocationReason::ALL.iter().map(|r| r.as_str()).collect();
        ApiError::bad_field("reason", format!("one of {}", names.join(", ")))
    })?;
    let links = state.store.certificate_links(certificate_id, &caller.scope).await?;
    if links.revoked_at.is_some() {
        return Err(ApiError::Conflict(format!("certificate {certificate_id} is already revoked")));
    }
    let adapter_id = links.adapter_id.ok_or_else(|| ApiError::Unprocessable {
        detail: "this certificate was not issued through CMP; revoke it at its CA".into(),
        errors: Vec::new(),
    })?;
    let spec = Spec {
        common_name: None,
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
        validity_days: 0,
        key_source: KeySource::Csr,
        key_type: None,
        renew_before: None,
        acme_solver: None,
        reason: Some(reason.as_str().to_string()),
        serial: Some(links.serial_number.clone()),
    };
    let mut new = new_request(
        RequestKind::Revoke,
        false,
        links.owner_id,
        adapter_id,
        links.managed_certificate_id,
        &spec,
        &caller.actor,
    )?;
    new.certificate_id = Some(links.id);
    new.claim_until = Some(lease_end(state));
    let (created, _) =
        state.store.create_request(&audit_context(state, caller), &new, None).await?;
    attempt(state, created).await
}

/// Deletes a certificate's server-made private key: from the secret store first (a purge
/// that stops halfway is repeated, never leaves the key behind), then its reference.
pub async fn purge_key(state: &AppState, caller: &Caller, certificate_id: &str) -> ApiResult<()> {
    let links = state.store.certificate_links(certificate_id, &caller.scope).await?;
    let secret = links.key_secret.ok_or_else(|| ApiError::NotFound {
        entity: "private key of certificate",
        id: certificate_id.to_string(),
    })?;
    state.secrets.delete(&secret).await?;
    state.store.purge_key(&audit_context(state, caller), &links.id).await?;
    Ok(())
}

/// Creates a managed certificate and its first issue request.
pub async fn create_managed(
    state: &AppState,
    caller: &Caller,
    body: &ManagedCreate,
    idempotency: Option<&Idempotency>,
) -> ApiResult<(ManagedRecord, RequestRecord)> {
    let name_ok = (1..=100).contains(&body.name.len())
        && body.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok || uuid::Uuid::parse_str(&body.name).is_ok() {
        return Err(ApiError::bad_field(
            "name",
            "1-100 letters, digits, '-', '_' or '.', not shaped like an id",
        ));
    }
    let owner_id = resolve_owner(state, caller, &body.owner).await?;
    let adapter_id = resolve_adapter(state, body.adapter.as_deref()).await?;
    let key_type = match (&body.csr, &body.key_type) {
        (None, None) => Some("ecdsa_p256"),
        (_, k) => k.as_deref(),
    };
    let mut checked =
        check_issue(state, &owner_id, &body.subject, body.csr.as_deref(), key_type).await?;
    if let Some(rb) = &body.renew_before {
        check_renew_before(rb, &checked.spec)?;
        checked.spec.renew_before = Some(rb.clone());
    }
    let key = idempotency.map(|i| i.for_caller(state, &caller.actor));
    if let Some(key) = &key
        && let Some(existing) = state.store.find_idempotent(key).await?
    {
        let request = state.store.get_request(&existing, &Scope::All).await?;
        let managed_id = request.managed_certificate_id.clone().unwrap_or_default();
        return Ok((state.store.get_managed(&managed_id, &Scope::All).await?, request));
    }
    let ctx = audit_context(state, caller);
    let managed = state
        .store
        .create_managed(
            &ctx,
            &NewManaged {
                name: body.name.clone(),
                owner_id: Some(owner_id.clone()),
                adapter_id: adapter_id.clone(),
                spec: checked.spec.to_json()?,
                csr: checked.csr.as_ref().map(|c| c.der.clone()),
                // Its first request ends (and wakes the scheduler) well before this.
                first_check_at: lease_end(state),
            },
        )
        .await?;
    let new = new_request(
        RequestKind::Issue,
        checked.require_approval,
        Some(owner_id),
        adapter_id,
        Some(managed.id.clone()),
        &checked.spec,
        &caller.actor,
    )?;
    let (request, _) = submit(state, &ctx, new, &checked, key.as_ref()).await?;
    let managed = state.store.get_managed(&managed.id, &Scope::All).await?;
    Ok((managed, request))
}

/// Refuses a `renew_before` that is not one (400) or that leaves a version of the asked
/// lifetime less than its minimum age (422): each new version would be due as soon as issued.
fn check_renew_before(text: &str, spec: &Spec) -> ApiResult<()> {
    let renew_before =
        cmp_domain::RenewBefore::parse(text).map_err(|e| ApiError::bad_field("renew_before", e))?;
    cmp_domain::check_renew_before(renew_before, spec.validity_days.saturating_mul(86_400)).map_err(
        |e| {
            let detail = e.as_written(text).to_string();
            ApiError::Unprocessable {
                detail: detail.clone(),
                errors: vec![cmp_api::ProblemItem {
                    pointer: "renew_before".into(),
                    reason: "leaves_no_time".into(),
                    detail,
                }],
            }
        },
    )
}

/// Starts a renewal of a managed certificate: a new key (server-made keys) or the stored CSR
/// re-signed, under the current policy. `actor` is a person or the scheduler.
pub async fn renew_managed(
    state: &AppState,
    ctx: &AuditContext,
    managed: &ManagedRecord,
    idempotency: Option<&IdempotencyKey>,
) -> ApiResult<(RequestRecord, bool)> {
    // The scheduler's next tick finds the renewal it already asked for without redoing the
    // policy check.
    if let Some(key) = idempotency
        && let Some(existing) = state.store.find_idempotent(key).await?
    {
        return Ok((state.store.get_request(&existing, &Scope::All).await?, false));
    }
    let spec = Spec::from_json(&managed.spec)?;
    let owner_id = managed.owner_id.clone().ok_or_else(|| {
        ApiError::Conflict(
            "this managed certificate has no owner any more; give it one first".into(),
        )
    })?;
    let key_type = spec.key_type.as_deref().map(|k| parse_key_type(Some(k))).transpose()?.flatten();
    let csr = match &managed.csr {
        Some(der) => Some(
            cmp_pki::parse_csr(der).map_err(|e| ApiError::Internal(format!("stored CSR: {e}")))?,
        ),
        None => None,
    };
    let key = match (&csr, key_type) {
        (Some(c), _) => c.key.clone(),
        (None, Some(k)) => spec::key_info_of(k),
        (None, None) => {
            return Err(ApiError::Internal("managed certificate without key source".into()));
        }
    };
    let (policy, _) = policy_of(state, &owner_id).await?;
    policy.check(&spec.ask(&key)).map_err(ApiError::Policy)?;
    let checked = Checked {
        spec: spec.clone(),
        csr,
        key_type,
        require_approval: policy.require_approval,
        policy_max_secs: policy.max_validity_days.saturating_mul(86_400),
    };
    let new = new_request(
        RequestKind::Renew,
        policy.require_approval,
        Some(owner_id),
        managed.adapter_id.clone(),
        Some(managed.id.clone()),
        &spec,
        &ctx.actor,
    )?;
    submit(state, ctx, new, &checked, idempotency).await
}

/// Whether the caller may download the key of a certificate owned by `owner_id`: an admin,
/// or a developer of the owning team.
pub fn may_download_key(caller: &Caller, owner_id: Option<&str>) -> bool {
    match caller.role {
        Role::Admin => true,
        Role::Developer => owner_id.is_some_and(|o| caller.may_act_for(o)),
        Role::Security | Role::Agent => false,
    }
}
