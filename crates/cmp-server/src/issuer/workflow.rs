//! The issuance workflow, once for every CA: policy, approval, attempts with backoff, the
//! adapter call, and the inventory write. The API's handlers, the scheduler and (later) the
//! agent's renewals all call [`Issuer`]; it knows no HTTP and names no CA kind.

use std::sync::Arc;
use std::time::Instant;

use cmp_api::{ManagedCreate, RequestCreate};
use cmp_ca::{CaError, RevocationReason, SignRequest};
use cmp_domain::{Backoff, Clock, KeySource, Policy, RequestKind, RequestSpec, RequestState, Role};
use cmp_pki::CsrInfo;
use cmp_pki::keygen::KeySpec;
use cmp_secrets::{SecretBytes, SecretStore};
use cmp_store::{
    AuditContext, IdempotencyKey, IssuedRecord, ManagedRecord, NewAuditEvent, NewManaged,
    NewRequest, RequestRecord, Scope, Store,
};
use sha2::{Digest, Sha256};

use super::error::{IssueError, IssueResult};
use super::spec;
use crate::adapter::{AdapterDirectory, DEFAULT_CA_NAME};
use crate::auth::Caller;
use crate::config::IssuerConfig;
use crate::core::context::{caller_context, system_context};
use crate::state::unix_micros;

/// The issuer's actor in the audit trail, for what it does by itself.
const ISSUER: &str = "system:issuer";

/// An `Idempotency-Key` and the body it came with.
pub struct Idempotency {
    pub key: String,
    pub body: Vec<u8>,
}

/// A private key handed out, in the format asked.
pub enum KeyFile {
    /// PKCS#8 PEM (zeroed on drop).
    Pem(zeroize::Zeroizing<String>),
    /// PKCS#12 with the certificate and its chain.
    Pkcs12(Vec<u8>),
}

/// The issuance workflow and what it needs: storage, the CAs, the secret store, the time.
pub struct Issuer {
    store: Arc<dyn Store>,
    adapters: Arc<dyn AdapterDirectory>,
    secrets: Arc<dyn SecretStore>,
    clock: Arc<dyn Clock>,
    settings: IssuerConfig,
}

/// A validated issue: the spec, the CSR (if the requester holds the key), the key type (if
/// the server makes it), and whether approval is needed.
struct Checked {
    spec: RequestSpec,
    csr: Option<CsrInfo>,
    key_type: Option<KeySpec>,
    require_approval: bool,
    /// The policy's longest lifetime, in seconds: a certificate longer than that is stored
    /// with a finding.
    policy_max_secs: i64,
}

/// What a renewal started.
pub enum Renewal {
    /// A request: made now (true) or found for a retry (false).
    Requested(Box<RequestRecord>, bool),
    /// The key is made on an agent's host: a job for it was queued for each deployment that
    /// had none on its way (the number).
    OnAgent { jobs_queued: u64 },
}

/// The next version of a managed certificate: its spec and where its key comes from.
struct NextVersion {
    kind: RequestKind,
    spec: RequestSpec,
    /// The stored CSR re-signed, or the one an agent sent.
    csr: Option<CsrInfo>,
    /// A key the server makes.
    key_type: Option<KeySpec>,
}

/// What an attempt achieved at the CA.
enum Done {
    Issued(Box<IssuedRecord>),
    Revoked(RevocationReason),
}

/// The lifetime a certificate was asked for and the policy's longest, in seconds.
#[derive(Debug, Clone, Copy)]
struct Limits {
    requested_secs: i64,
    policy_max_secs: Option<i64>,
}

impl Issuer {
    pub fn new(
        store: Arc<dyn Store>,
        adapters: Arc<dyn AdapterDirectory>,
        secrets: Arc<dyn SecretStore>,
        clock: Arc<dyn Clock>,
        settings: IssuerConfig,
    ) -> Issuer {
        Issuer { store, adapters, secrets, clock, settings }
    }

    /// The issuer's settings (`[issuer]`).
    pub fn settings(&self) -> &IssuerConfig {
        &self.settings
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub(crate) fn adapters(&self) -> &dyn AdapterDirectory {
        self.adapters.as_ref()
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    fn now_us(&self) -> i64 {
        unix_micros(self.clock.now())
    }

    /// The audit context of a change `caller` makes now.
    fn context(&self, caller: &Caller) -> AuditContext {
        caller_context(caller, self.now_us())
    }

    /// The context of a change the platform makes by itself, as `actor`.
    pub(crate) fn system(&self, actor: &str) -> AuditContext {
        system_context(actor, self.now_us())
    }

    /// The stored form of an idempotency key given by `caller`: it matches for
    /// `issuer.idempotency_ttl_hours`.
    pub fn idempotency_key(&self, idempotency: &Idempotency, caller: &str) -> IdempotencyKey {
        IdempotencyKey {
            caller: caller.to_string(),
            key: idempotency.key.clone(),
            body_hash: hex::encode(Sha256::digest(&idempotency.body)),
            not_before: self.now() - self.idempotency_ttl_secs(),
        }
    }

    pub(crate) fn idempotency_ttl_secs(&self) -> i64 {
        self.settings.idempotency_ttl_hours.saturating_mul(3600)
    }

    /// Until when an attempt starting now holds its request.
    fn lease_end(&self) -> i64 {
        self.now() + self.settings.request_lease_secs
    }

    /// An owner given by id or name that `caller` may act for.
    async fn owner_for(&self, caller: &Caller, id_or_name: &str) -> IssueResult<String> {
        let owner = self.store.get_owner(id_or_name).await?;
        if !caller.may_act_for(&owner.id) {
            return Err(IssueError::Forbidden(format!(
                "this token may act only for its own teams, not for owner {id_or_name}"
            )));
        }
        Ok(owner.id)
    }

    /// The adapter a request names, or the builtin CA; it must be enabled.
    async fn enabled_adapter(&self, name: Option<&str>) -> IssueResult<String> {
        let name = name.unwrap_or(DEFAULT_CA_NAME);
        let adapter = self.store.get_adapter(name).await?;
        if !adapter.enabled {
            return Err(IssueError::Conflict(format!("adapter {} is disabled", adapter.name)));
        }
        Ok(adapter.id)
    }

    /// The owner's policy, and whether it was set (false: the default one).
    pub async fn policy_of(&self, owner_id: &str) -> IssueResult<(Policy, bool)> {
        match self.store.get_policy(owner_id).await? {
            Some(record) => {
                let policy = serde_json::from_value(record.rules)
                    .map_err(|e| IssueError::Internal(format!("stored policy: {e}")))?;
                Ok((policy, true))
            }
            None => Ok((Policy::default(), false)),
        }
    }

    async fn check_issue(
        &self,
        owner_id: &str,
        subject: &cmp_api::Subject,
        csr: Option<&str>,
        key_type: Option<&str>,
    ) -> IssueResult<Checked> {
        let key_type = parse_key_type(key_type)?;
        let csr = match (csr, key_type) {
            (Some(_), Some(_)) => {
                return Err(IssueError::BadRequest("give either csr or key_type, not both".into()));
            }
            (None, None) => {
                return Err(IssueError::BadRequest(
                    "give a csr (preferred: you keep the key) or a key_type for a server-made key"
                        .into(),
                ));
            }
            (Some(pem), None) => Some(
                cmp_pki::parse_csr(pem.as_bytes())
                    .map_err(|e| IssueError::InvalidCsr(e.to_string()))?,
            ),
            (None, Some(_)) => None,
        };
        let spec =
            spec::build(subject, csr.as_ref(), key_type, self.settings.default_validity_days)?;
        self.checked(owner_id, spec, csr, key_type).await
    }

    /// `spec` checked against the owner's policy as it is now.
    async fn checked(
        &self,
        owner_id: &str,
        spec: RequestSpec,
        csr: Option<CsrInfo>,
        key_type: Option<KeySpec>,
    ) -> IssueResult<Checked> {
        let key = match (&csr, key_type) {
            (Some(csr), _) => csr.key.clone(),
            (None, Some(k)) => spec::key_info_of(k),
            (None, None) => return Err(IssueError::Internal("no key source".into())),
        };
        let (policy, _) = self.policy_of(owner_id).await?;
        policy.check(&spec.ask(&key)).map_err(IssueError::Policy)?;
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
        &self,
        secret_name: &str,
        key_type: KeySpec,
        spec: &RequestSpec,
    ) -> IssueResult<Vec<u8>> {
        let (cn, dns, ips) =
            (spec.common_name.clone(), spec.dns_names.clone(), spec.ip_addresses.clone());
        let (key, csr) = tokio::task::spawn_blocking(move || {
            let key = cmp_pki::keygen::generate_key(key_type)?;
            let csr = cmp_pki::keygen::make_csr(key.pkcs8_der(), cn.as_deref(), &dns, &ips)?;
            Ok::<_, cmp_pki::keygen::KeygenError>((key, csr))
        })
        .await
        .map_err(|e| IssueError::Internal(e.to_string()))?
        .map_err(|e| IssueError::Internal(format!("key generation: {e}")))?;
        self.secrets.put(secret_name, &SecretBytes::new(key.pkcs8_der().to_vec())).await?;
        Ok(csr)
    }

    /// Creates a request (policy-checked; idempotent with a key) and, if no approval is
    /// needed, carries it out before answering. True when it was created (not a retry).
    #[tracing::instrument(name = "issuer create request", level = "debug", skip_all)]
    pub async fn create_request(
        &self,
        caller: &Caller,
        body: &RequestCreate,
        idempotency: Option<&Idempotency>,
    ) -> IssueResult<(RequestRecord, bool)> {
        let owner_id = self.owner_for(caller, &body.owner).await?;
        let adapter_id = self.enabled_adapter(body.adapter.as_deref()).await?;
        let checked = self
            .check_issue(&owner_id, &body.subject, body.csr.as_deref(), body.key_type.as_deref())
            .await?;
        let key = idempotency.map(|i| self.idempotency_key(i, &caller.actor));
        let new = new_request(
            RequestKind::Issue,
            checked.require_approval,
            Some(owner_id),
            adapter_id,
            None,
            &checked.spec,
            &caller.actor,
        )?;
        self.submit(&self.context(caller), new, &checked, key.as_ref()).await
    }

    /// Stores a checked request (making the server key first if asked) and runs it if
    /// approved.
    async fn submit(
        &self,
        ctx: &AuditContext,
        mut new: NewRequest,
        checked: &Checked,
        key: Option<&IdempotencyKey>,
    ) -> IssueResult<(RequestRecord, bool)> {
        match (&checked.csr, checked.key_type) {
            (Some(csr), _) => new.csr = Some(csr.der.clone()),
            (None, Some(key_type)) => {
                // A retry must not make a key only to throw it away.
                if let Some(key) = key
                    && let Some(existing) = self.store.find_idempotent(key).await?
                {
                    return Ok((self.store.get_request(&existing, &Scope::All).await?, false));
                }
                let secret = format!("keys/{}", new.id);
                new.csr = Some(self.server_key(&secret, key_type, &checked.spec).await?);
                new.key_secret = Some(secret);
            }
            (None, None) => {}
        }
        // An approved request is carried out now: its first attempt is claimed as it is
        // stored.
        new.claim_until = Some(self.lease_end());
        let stored = match self.sign_then_store(ctx, &new, checked, key).await {
            Some(stored) => stored,
            None => self.store.create_request(ctx, &new, key).await.map_err(IssueError::from),
        };
        let (record, created) = match stored {
            Ok(stored) => stored,
            Err(e) => {
                self.discard_key(new.key_secret.as_deref()).await;
                return Err(e);
            }
        };
        if !created {
            // A retry raced us and won: our key is not needed.
            self.discard_key(new.key_secret.as_deref()).await;
            return Ok((record, false));
        }
        // Stored first (the CA records its own signatures): the attempt follows.
        let record = if record.state == RequestState::Submitted {
            self.attempt(record).await?
        } else {
            record
        };
        Ok((record, true))
    }

    /// For an approved request to a CA whose signature exists only in its answer until it is
    /// stored ([`cmp_ca::SignsUnrecorded`]): sign first, then store the request, the CA's
    /// ledger row and the certificate in one transaction, batched with concurrent requests
    /// (the group commit). A crash in between leaves no trace anywhere. `None` when the CA
    /// records its signatures itself (Vault, ACME, an adapter role over HTTP), or refuses:
    /// the request is then stored first, and the attempt's outcome recorded.
    async fn sign_then_store(
        &self,
        ctx: &AuditContext,
        new: &NewRequest,
        checked: &Checked,
        key: Option<&IdempotencyKey>,
    ) -> Option<IssueResult<(RequestRecord, bool)>> {
        if new.state != RequestState::Approved {
            return None;
        }
        let adapter = self.adapters.adapter(&new.adapter_id).await.ok()?;
        let signer = adapter.unrecorded()?;
        let sign = SignRequest {
            request_id: new.id.clone(),
            csr_der: new.csr.clone()?,
            profile: spec::profile(&checked.spec),
            replaces: None,
            acme_solver: None,
        };
        let started = Instant::now();
        let (entry, issued) = signer.sign_unrecorded(&sign, checked.csr.as_ref()).ok()?;
        let limits = Limits {
            requested_secs: sign.profile.validity_secs,
            policy_max_secs: Some(checked.policy_max_secs),
        };
        let record = match issued_record(&issued, limits) {
            Ok(record) => record,
            Err(e) => return Some(Err(e.into())),
        };
        let item = cmp_store::IssuedRequest {
            // Stamped after the signature: the certificate's age (the renewal rule's minimum
            // age) counts from when CMP received it, never from before the CA signed.
            ctx: AuditContext { now_us: self.now_us(), ..ctx.clone() },
            request: new.clone(),
            key: key.cloned(),
            ledger: crate::adapter::ledger_row(entry),
            issued: record,
        };
        let stored = self.store.create_issued_request(item).await;
        record_duration(&new.adapter_id, "issued", new.kind, started);
        Some(stored.map_err(IssueError::from))
    }

    async fn discard_key(&self, secret: Option<&str>) {
        if let Some(secret) = secret
            && let Err(e) = self.secrets.delete(secret).await
        {
            tracing::warn!(error = %e, "could not delete an unused key");
        }
    }

    /// Approves or rejects; an approved request is carried out before answering.
    pub async fn decide(
        &self,
        caller: &Caller,
        id: &str,
        approve: bool,
        comment: Option<&str>,
    ) -> IssueResult<RequestRecord> {
        let request = self.store.get_request(id, &Scope::All).await?;
        if request.requested_by == caller.actor {
            // Separation of duties: approval is a second person's check.
            return Err(IssueError::Forbidden(
                "a request cannot be approved or rejected by the caller who made it".into(),
            ));
        }
        if comment.is_some_and(|c| c.len() > 2000) {
            return Err(IssueError::bad_field("comment", "at most 2000 bytes"));
        }
        let decided =
            self.store.decide_request(&self.context(caller), id, approve, comment).await?;
        if decided.state == RequestState::Approved { self.process(id).await } else { Ok(decided) }
    }

    /// Carries out one attempt of a request if it is due and nobody else holds it; returns
    /// the request as it stands afterwards.
    pub async fn process(&self, id: &str) -> IssueResult<RequestRecord> {
        let ctx = self.system(ISSUER);
        let Some(request) = self.store.claim_request(&ctx, id, self.lease_end()).await? else {
            return Ok(self.store.get_request(id, &Scope::All).await?);
        };
        self.attempt(request).await
    }

    /// Carries out a claimed attempt and records its outcome.
    #[tracing::instrument(name = "issuer attempt", level = "debug", skip_all, fields(
        request.id = %request.id,
        request.kind = request.kind.as_str(),
        adapter.id = %request.adapter_id,
        outcome = tracing::field::Empty,
    ))]
    async fn attempt(&self, request: RequestRecord) -> IssueResult<RequestRecord> {
        let id = request.id.as_str();
        let started = Instant::now();
        let outcome = match request.kind {
            RequestKind::Issue | RequestKind::Renew => self.sign(&request).await,
            RequestKind::Revoke => self.revoke_at_ca(&request).await,
        };
        let ctx = self.system(ISSUER);
        let (record, label) = match outcome {
            Ok(Done::Issued(issued)) => {
                (self.store.complete_issue(&ctx, id, &issued).await?, "issued")
            }
            Ok(Done::Revoked(reason)) => {
                (self.store.complete_revoke(&ctx, id, reason.as_str()).await?, "issued")
            }
            Err(e) => {
                let retry_at = self.retry_at(&e, request.attempts);
                let label = if retry_at.is_some() { "retry" } else { "failed" };
                (self.store.fail_request(&ctx, id, &e.to_string(), retry_at).await?, label)
            }
        };
        record_duration(&request.adapter_id, label, request.kind, started);
        tracing::Span::current().record("outcome", label);
        Ok(record)
    }

    /// When to try again after `e` on attempt number `attempts`, if at all. A CA that asks to
    /// wait (a rate limit) is waited for, and that wait spends no attempt: the request was
    /// not wrong, only early.
    fn retry_at(&self, e: &CaError, attempts: i64) -> Option<i64> {
        let throttled = matches!(e, CaError::Throttled { .. });
        let again = e.is_retryable() && (throttled || attempts < self.settings.max_attempts);
        again.then(|| {
            let failures = u32::try_from(attempts).unwrap_or(u32::MAX);
            let backoff = Backoff { base_secs: 5, cap_secs: 600 };
            let after_backoff = self.now() + backoff.delay_secs(failures);
            e.retry_at().map_or(after_backoff, |at| at.max(after_backoff))
        })
    }

    async fn sign(&self, request: &RequestRecord) -> Result<Done, CaError> {
        let spec = &request.spec;
        let csr_der =
            request.csr.clone().ok_or_else(|| CaError::Internal("request has no CSR".into()))?;
        let adapter = self.adapters.adapter(&request.adapter_id).await?;
        let replaces = match request.kind {
            RequestKind::Renew => self.current_version_der(request).await,
            _ => None,
        };
        let sign = SignRequest {
            request_id: request.id.clone(),
            csr_der,
            profile: spec::profile(spec),
            replaces,
            acme_solver: spec.acme_solver.clone(),
        };
        let requested_secs = sign.profile.validity_secs;
        let issued = adapter.create_certificate(&sign).await?;
        // The policy as it is now (the request was checked against it, or an older one): a
        // policy that cannot be read only leaves the policy finding out.
        let policy_max_secs = match &request.owner_id {
            Some(owner) => self
                .policy_of(owner)
                .await
                .ok()
                .map(|(policy, _)| policy.max_validity_days.saturating_mul(86_400)),
            None => None,
        };
        let limits = Limits { requested_secs, policy_max_secs };
        Ok(Done::Issued(Box::new(issued_record(&issued, limits)?)))
    }

    /// The DER of the version a renewal replaces, if it can be read (it only informs the CA).
    async fn current_version_der(&self, request: &RequestRecord) -> Option<Vec<u8>> {
        let managed = self
            .store
            .get_managed(request.managed_certificate_id.as_deref()?, &Scope::All)
            .await
            .ok()?;
        self.store.get_certificate_der(&managed.current_certificate_id?, &Scope::All).await.ok()
    }

    async fn revoke_at_ca(&self, request: &RequestRecord) -> Result<Done, CaError> {
        let spec = &request.spec;
        let reason = spec
            .reason
            .as_deref()
            .and_then(RevocationReason::parse)
            .unwrap_or(RevocationReason::Unspecified);
        let serial = spec
            .serial
            .as_deref()
            .ok_or_else(|| CaError::Internal("revoke request without serial".into()))?;
        let adapter = self.adapters.adapter(&request.adapter_id).await?;
        match adapter.revoke_certificate(serial, reason).await {
            // Revoked at the CA by an earlier attempt that died before recording it.
            Ok(()) | Err(CaError::AlreadyRevoked(_)) => Ok(Done::Revoked(reason)),
            Err(e) => Err(e),
        }
    }

    /// Revokes an inventory certificate through the adapter that issued it; with
    /// `purge_key`, its server-made key is deleted once the revocation is done.
    pub async fn revoke(
        &self,
        caller: &Caller,
        certificate_id: &str,
        reason: &str,
        purge_key: bool,
    ) -> IssueResult<RequestRecord> {
        let reason = RevocationReason::parse(reason).ok_or_else(|| {
            let names: Vec<&str> = RevocationReason::ALL.iter().map(|r| r.as_str()).collect();
            IssueError::bad_field("reason", format!("one of {}", names.join(", ")))
        })?;
        let links = self.store.certificate_links(certificate_id, &caller.scope).await?;
        if links.revoked_at.is_some() {
            return Err(IssueError::Conflict(format!(
                "certificate {certificate_id} is already revoked"
            )));
        }
        let adapter_id = links.adapter_id.ok_or(IssueError::NotIssuedHere)?;
        let spec = RequestSpec {
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
        new.claim_until = Some(self.lease_end());
        let (created, _) = self.store.create_request(&self.context(caller), &new, None).await?;
        let request = self.attempt(created).await?;
        if purge_key && request.state == RequestState::Issued {
            self.purge_key(caller, certificate_id).await?;
        }
        Ok(request)
    }

    /// Deletes a certificate's server-made private key: from the secret store first (a purge
    /// that stops halfway is repeated, never leaves the key behind), then its reference.
    pub async fn purge_key(&self, caller: &Caller, certificate_id: &str) -> IssueResult<()> {
        let links = self.store.certificate_links(certificate_id, &caller.scope).await?;
        let secret = links.key_secret.ok_or_else(|| IssueError::NoKey(certificate_id.into()))?;
        self.secrets.delete(&secret).await?;
        self.store.purge_key(&self.context(caller), &links.id).await?;
        Ok(())
    }

    /// The server-made private key of a certificate, for an admin or the owning team, in
    /// `format` `pem`, or `pkcs12` with its chain under `pkcs12_password`. Every download is
    /// audited.
    pub async fn download_key(
        &self,
        caller: &Caller,
        certificate_id: &str,
        format: &str,
        pkcs12_password: Option<&str>,
    ) -> IssueResult<KeyFile> {
        let links = self.store.certificate_links(certificate_id, &caller.scope).await?;
        if !may_download_key(caller, links.owner_id.as_deref()) {
            return Err(IssueError::Forbidden(
                "only an admin or a member of the owning team may download this key".into(),
            ));
        }
        let secret = links.key_secret.ok_or_else(|| IssueError::NoKey(certificate_id.into()))?;
        let key = self.secrets.get(&secret).await?;
        let file = match format {
            "pem" => {
                let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", key.expose().as_slice()));
                KeyFile::Pem(zeroize::Zeroizing::new(pem))
            }
            "pkcs12" => {
                let password = pkcs12_password.ok_or_else(|| {
                    IssueError::bad_field("X-Pkcs12-Password", "required for pkcs12")
                })?;
                let mut chain = vec![self.store.get_certificate_der(&links.id, &Scope::All).await?];
                chain.extend(self.chain_of(&links.id, links.adapter_id.as_deref()).await?);
                let p12 = cmp_pki::keygen::export_pkcs12(key.expose(), &chain, password, &links.id)
                    .map_err(|e| IssueError::bad_field("X-Pkcs12-Password", e.to_string()))?;
                KeyFile::Pkcs12(p12)
            }
            _ => return Err(IssueError::bad_field("format", "pem or pkcs12")),
        };
        let event = NewAuditEvent {
            action: cmp_store::AuditAction::CertificateKeyDownloaded,
            entity_type: "certificate".into(),
            entity_id: links.id.clone(),
            details: serde_json::json!({"format": format, "serial_number": links.serial_number}),
        };
        self.store.append_audit(&self.context(caller), &event).await?;
        Ok(file)
    }

    /// The chain the CA returned with a certificate; for one issued before chains were kept,
    /// the issuing CA as its adapter reports it now.
    async fn chain_of(
        &self,
        certificate_id: &str,
        adapter_id: Option<&str>,
    ) -> IssueResult<Vec<Vec<u8>>> {
        let stored = self.store.certificate_chain(certificate_id, &Scope::All).await?;
        if !stored.is_empty() {
            return Ok(stored);
        }
        match adapter_id {
            Some(adapter) => match self.adapters.adapter(adapter).await {
                Ok(adapter) => Ok(adapter.get_status().await.chain_der),
                Err(_) => Ok(Vec::new()),
            },
            None => Ok(Vec::new()),
        }
    }

    /// Creates a managed certificate and its first issue request; none when its key is made
    /// on an agent's host (the agent's CSR makes it, once deployments are set).
    pub async fn create_managed(
        &self,
        caller: &Caller,
        body: &ManagedCreate,
        idempotency: Option<&Idempotency>,
    ) -> IssueResult<(ManagedRecord, Option<RequestRecord>)> {
        let name_ok = (1..=100).contains(&body.name.len())
            && body.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok || uuid::Uuid::parse_str(&body.name).is_ok() {
            return Err(IssueError::bad_field(
                "name",
                "1-100 letters, digits, '-', '_' or '.', not shaped like an id",
            ));
        }
        let owner_id = self.owner_for(caller, &body.owner).await?;
        let adapter_id = self.enabled_adapter(body.adapter.as_deref()).await?;
        let key_type = match (&body.csr, &body.key_type) {
            (None, None) => Some("ecdsa_p256"),
            (_, k) => k.as_deref(),
        };
        if body.key_on_agent && body.csr.is_some() {
            return Err(IssueError::BadRequest(
                "key_on_agent has the agent make the key: give a key_type, not a csr".into(),
            ));
        }
        let mut checked =
            self.check_issue(&owner_id, &body.subject, body.csr.as_deref(), key_type).await?;
        if body.key_on_agent {
            checked.spec.key_source = KeySource::Agent;
        }
        if let Some(rb) = &body.renew_before {
            check_renew_before(rb, &checked.spec)?;
            checked.spec.renew_before = Some(rb.clone());
        }
        let key = idempotency.map(|i| self.idempotency_key(i, &caller.actor));
        if let Some(key) = &key
            && let Some(existing) = self.store.find_idempotent(key).await?
        {
            let request = self.store.get_request(&existing, &Scope::All).await?;
            let managed_id = request.managed_certificate_id.clone().unwrap_or_default();
            return Ok((self.store.get_managed(&managed_id, &Scope::All).await?, Some(request)));
        }
        let ctx = self.context(caller);
        let managed = self
            .store
            .create_managed(
                &ctx,
                &NewManaged {
                    name: body.name.clone(),
                    owner_id: Some(owner_id.clone()),
                    adapter_id: adapter_id.clone(),
                    spec: checked.spec.clone(),
                    csr: checked.csr.as_ref().map(|c| c.der.clone()),
                    // Its first request ends (and wakes the scheduler) well before this.
                    first_check_at: self.lease_end(),
                },
            )
            .await?;
        if body.key_on_agent {
            return Ok((managed, None));
        }
        let new = new_request(
            RequestKind::Issue,
            checked.require_approval,
            Some(owner_id),
            adapter_id,
            Some(managed.id.clone()),
            &checked.spec,
            &caller.actor,
        )?;
        let (request, _) = self.submit(&ctx, new, &checked, key.as_ref()).await?;
        let managed = self.store.get_managed(&managed.id, &Scope::All).await?;
        Ok((managed, Some(request)))
    }

    /// Renews a managed certificate now, on a caller's demand (idempotent with a key).
    pub async fn renew_for(
        &self,
        caller: &Caller,
        managed: &ManagedRecord,
        idempotency: Option<&Idempotency>,
    ) -> IssueResult<Renewal> {
        let key = idempotency.map(|i| self.idempotency_key(i, &caller.actor));
        self.renew_managed(&self.context(caller), managed, key.as_ref()).await
    }

    /// Starts a renewal of a managed certificate: a new key (server-made keys), the stored
    /// CSR re-signed, or, for a key made on an agent's host, a job asking the agent for a new
    /// key's CSR; all under the current policy. `ctx` names a person or the scheduler.
    pub async fn renew_managed(
        &self,
        ctx: &AuditContext,
        managed: &ManagedRecord,
        idempotency: Option<&IdempotencyKey>,
    ) -> IssueResult<Renewal> {
        // The scheduler's next tick finds the renewal it already asked for without redoing
        // the policy check.
        if let Some(key) = idempotency
            && let Some(existing) = self.store.find_idempotent(key).await?
        {
            let request = self.store.get_request(&existing, &Scope::All).await?;
            return Ok(Renewal::Requested(Box::new(request), false));
        }
        let spec = &managed.spec;
        if spec.key_source == KeySource::Agent {
            let jobs_queued = self.store.queue_local_key_jobs(ctx, &managed.id).await?;
            return Ok(Renewal::OnAgent { jobs_queued });
        }
        let key_type = parse_key_type(spec.key_type.as_deref())?;
        let csr = match &managed.csr {
            Some(der) => Some(
                cmp_pki::parse_csr(der)
                    .map_err(|e| IssueError::Internal(format!("stored CSR: {e}")))?,
            ),
            None => None,
        };
        let version = NextVersion { kind: RequestKind::Renew, spec: spec.clone(), csr, key_type };
        let (request, created) = self.submit_version(ctx, managed, version, idempotency).await?;
        Ok(Renewal::Requested(Box::new(request), created))
    }

    /// Checks the next version of a managed certificate against its owner's policy as it is
    /// now, and submits its request.
    async fn submit_version(
        &self,
        ctx: &AuditContext,
        managed: &ManagedRecord,
        version: NextVersion,
        idempotency: Option<&IdempotencyKey>,
    ) -> IssueResult<(RequestRecord, bool)> {
        let owner_id = managed.owner_id.clone().ok_or_else(|| {
            IssueError::Conflict(
                "this managed certificate has no owner any more; give it one first".into(),
            )
        })?;
        let checked = self.checked(&owner_id, version.spec, version.csr, version.key_type).await?;
        let new = new_request(
            version.kind,
            checked.require_approval,
            Some(owner_id),
            managed.adapter_id.clone(),
            Some(managed.id.clone()),
            &checked.spec,
            &ctx.actor,
        )?;
        self.submit(ctx, new, &checked, idempotency).await
    }

    /// The next version of a managed certificate whose key an agent made on its host: the
    /// agent's CSR (for the managed certificate's names and key type) is checked against the
    /// policy and issued like any request. `attempt` names the agent's job, so that a retry
    /// of the same CSR key finds the request instead of making a second one.
    pub async fn issue_for_agent_key(
        &self,
        ctx: &AuditContext,
        managed: &ManagedRecord,
        csr_pem: &str,
        attempt: &str,
    ) -> IssueResult<(RequestRecord, bool)> {
        let spec = &managed.spec;
        if spec.key_source != KeySource::Agent {
            return Err(IssueError::Conflict(
                "this managed certificate's key is not made on an agent's host".into(),
            ));
        }
        let csr = cmp_pki::parse_csr(csr_pem.as_bytes())
            .map_err(|e| IssueError::InvalidCsr(e.to_string()))?;
        spec::check_agent_csr(spec, &csr)?;
        let key = IdempotencyKey {
            caller: ctx.actor.clone(),
            key: format!("agent-key:{attempt}"),
            // The same key sent again (a lost answer) is the same renewal, whatever the CSR's
            // signature bytes.
            body_hash: hex::encode(Sha256::digest(&csr.spki_der)),
            not_before: self.now() - self.idempotency_ttl_secs(),
        };
        let kind = if managed.current_certificate_id.is_some() {
            RequestKind::Renew
        } else {
            RequestKind::Issue
        };
        let version = NextVersion { kind, spec: spec.clone(), csr: Some(csr), key_type: None };
        self.submit_version(ctx, managed, version, Some(&key)).await
    }
}

fn parse_key_type(key_type: Option<&str>) -> IssueResult<Option<KeySpec>> {
    key_type
        .map(|k| {
            KeySpec::parse(k).map_err(|_| {
                IssueError::bad_field(
                    "key_type",
                    "one of ecdsa_p256, ecdsa_p384, rsa2048, rsa3072, rsa4096, ed25519",
                )
            })
        })
        .transpose()
}

/// A new request of `kind` for `spec`, approved at once unless `needs_approval`.
fn new_request(
    kind: RequestKind,
    needs_approval: bool,
    owner_id: Option<String>,
    adapter_id: String,
    managed_certificate_id: Option<String>,
    spec: &RequestSpec,
    requested_by: &str,
) -> IssueResult<NewRequest> {
    Ok(NewRequest {
        id: uuid::Uuid::now_v7().to_string(),
        kind,
        state: if needs_approval { RequestState::AwaitingApproval } else { RequestState::Approved },
        owner_id,
        adapter_id,
        managed_certificate_id,
        certificate_id: None,
        spec: spec.clone(),
        csr: None,
        key_secret: None,
        requested_by: requested_by.to_string(),
        claim_until: None,
    })
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

/// Refuses a `renew_before` that is not one (400) or that leaves a version of the asked
/// lifetime less than its minimum age (422): each new version would be due as soon as issued.
fn check_renew_before(text: &str, spec: &RequestSpec) -> IssueResult<()> {
    let renew_before = cmp_domain::RenewBefore::parse(text)
        .map_err(|e| IssueError::bad_field("renew_before", e))?;
    cmp_domain::check_renew_before(renew_before, spec.validity_secs())
        .map_err(|e| IssueError::LeavesNoTime(e.as_written(text).to_string()))
}

/// Whether the caller may download the key of a certificate owned by `owner_id`: an admin,
/// or a developer of the owning team.
fn may_download_key(caller: &Caller, owner_id: Option<&str>) -> bool {
    match caller.role {
        Role::Admin => true,
        Role::Developer => owner_id.is_some_and(|o| caller.may_act_for(o)),
        Role::Security | Role::Agent => false,
    }
}
