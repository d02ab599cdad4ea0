//! The inventory's operations, without HTTP: import, listing queries, ownership changes.
//! Handlers and the benchmark call [`Inventory`].

use std::sync::Arc;

use cmp_api::{ImportOutcome, ImportRejection, ImportResponse, ImportedCertificate, ProblemItem};
use cmp_domain::{Clock, LocationKind, Role};
use cmp_store::{
    CertificateRecord, CertificateSource, CertificateUpdate, ImportBatch, NewCertificate,
    NewLocation, Scope, Store, StoreError,
};

use crate::auth::Caller;
use crate::core::context::caller_context;
use crate::state::unix_micros;

/// Certificates handed from the import's reader to the store at a time.
const IMPORT_BATCH: usize = 500;

/// Why an inventory call was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// One field or parameter has a bad value.
    #[error("{field}: {detail}")]
    BadField { field: &'static str, detail: String },
    /// The input was read but refused (no certificate in it, or some items refused); nothing
    /// was stored. `items` says which and why.
    #[error("{detail}")]
    Refused { detail: String, items: Vec<ProblemItem> },
    /// The caller may not do this (another team's owner).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Storage failed, or what was named does not exist.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug; the detail goes to the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl InventoryError {
    pub(crate) fn bad_field(field: &'static str, detail: impl Into<String>) -> Self {
        InventoryError::BadField { field, detail: detail.into() }
    }
}

type InventoryResult<T> = Result<T, InventoryError>;

/// The inventory and what it needs: storage and the time.
pub struct Inventory {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

/// What an import was given.
#[derive(Clone, Copy)]
pub struct ImportInput<'a> {
    /// PEM, DER, PKCS#7 or PKCS#12 bytes.
    pub data: &'a [u8],
    /// PKCS#12 password.
    pub password: Option<&'a str>,
    /// Owner (id or name) of the certificates created.
    pub owner: Option<&'a str>,
    /// Where they were seen, `kind:address`.
    pub location: Option<&'a str>,
    /// Store the good certificates even if some input items are refused.
    pub partial: bool,
}

impl Inventory {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Inventory {
        Inventory { store, clock }
    }

    /// Resolves an owner given by id or name, and checks that the caller may act for it.
    pub async fn owner_for(&self, caller: &Caller, id_or_name: &str) -> InventoryResult<String> {
        let owner = self.store.get_owner(id_or_name).await?;
        if !caller.may_act_for(&owner.id) {
            return Err(InventoryError::Forbidden(format!(
                "this token may act only for its own teams, not for owner {id_or_name}"
            )));
        }
        Ok(owner.id)
    }

    /// The owner new certificates get: the one asked for, or a developer's only team.
    async fn import_owner(
        &self,
        caller: &Caller,
        asked: Option<&str>,
    ) -> InventoryResult<Option<String>> {
        match (asked, &caller.scope) {
            (Some(owner), _) => self.owner_for(caller, owner).await.map(Some),
            (None, Scope::All) => Ok(None),
            (None, Scope::Owners(ids)) if ids.len() == 1 => Ok(Some(ids[0].clone())),
            (None, Scope::Owners(_)) => Err(InventoryError::bad_field(
                "owner",
                "a developer token with several teams must name the owner of imported \
                 certificates",
            )),
        }
    }

    /// Decodes, checks and stores an import. All or nothing unless `partial`.
    pub async fn import(
        &self,
        caller: &Caller,
        input: ImportInput<'_>,
    ) -> InventoryResult<ImportResponse> {
        let owner_id = self.import_owner(caller, input.owner).await?;
        let location = input.location.map(parse_location).transpose()?;
        let partial = input.partial;
        let ctx = caller_context(caller, unix_micros(self.clock.now()));
        // Reading a large bundle takes a while: it runs off the async workers, and hands over
        // batches that the store writes while the rest is read. The store commits only when
        // told that the whole input was read and is acceptable.
        let (batches, received) = tokio::sync::mpsc::channel(4);
        let (data, password) = (input.data.to_vec(), input.password.map(str::to_string));
        let decoder = tokio::task::spawn_blocking(move || {
            let mut subjects = Vec::new();
            let mut batch = Vec::new();
            // A store that stopped (it failed) has dropped its end: what is sent then is lost,
            // and its error is what the caller gets.
            let send = |batch: ImportBatch| {
                let _ = batches.blocking_send(batch);
            };
            let rejected = cmp_pki::decode_import_each(&data, password.as_deref(), &mut |facts| {
                subjects.push(facts.subject.clone());
                batch.push(NewCertificate {
                    facts,
                    source: CertificateSource::Import,
                    owner_id: owner_id.clone(),
                    location: location.clone(),
                    issued: None,
                });
                if batch.len() == IMPORT_BATCH {
                    send(ImportBatch::Certificates(std::mem::take(&mut batch)));
                }
            });
            if !subjects.is_empty() && (rejected.is_empty() || partial) {
                send(ImportBatch::Certificates(batch));
                send(ImportBatch::End);
            }
            (subjects, rejected)
        });
        let stored = self.store.import_certificate_batches(&ctx, &caller.scope, received).await;
        let (subjects, rejected) = decoder
            .await
            .map_err(|e| InventoryError::Internal(format!("import decoder stopped: {e}")))?;
        let rejected: Vec<ImportRejection> = rejected
            .into_iter()
            .map(|r| ImportRejection {
                item: r.item,
                reason: r.reason.to_string(),
                detail: r.detail,
            })
            .collect();
        if subjects.is_empty() || (!rejected.is_empty() && !partial) {
            let detail = if subjects.is_empty() {
                "no certificate could be read from the input".to_string()
            } else {
                format!(
                    "{} input item(s) refused; nothing was imported (pass partial=true to import the rest)",
                    rejected.len()
                )
            };
            return Err(InventoryError::Refused {
                detail,
                items: rejected
                    .into_iter()
                    .map(|r| ProblemItem { pointer: r.item, reason: r.reason, detail: r.detail })
                    .collect(),
            });
        }
        let outcomes = stored?.ok_or_else(|| {
            InventoryError::Internal("the import ended before the input was read".into())
        })?;
        let outcomes: Vec<(ImportOutcome, cmp_store::ImportOutcome)> =
            outcomes.into_iter().map(|o| (outcome_of(&o), o)).collect();
        let count = |which: ImportOutcome| outcomes.iter().filter(|(o, _)| *o == which).count();
        let created = count(ImportOutcome::Created);
        metrics::counter!("cmp_certificates_imported_total", "outcome" => "created")
            .increment(created as u64);
        Ok(ImportResponse {
            created,
            already_known: count(ImportOutcome::AlreadyKnown),
            known_elsewhere: count(ImportOutcome::KnownElsewhere),
            certificates: outcomes
                .into_iter()
                .zip(subjects)
                .map(|((outcome, o), subject)| ImportedCertificate {
                    // Another team's certificate: that it exists, nothing more.
                    id: (outcome != ImportOutcome::KnownElsewhere).then_some(o.id),
                    fingerprint_sha256: o.fingerprint_sha256,
                    subject,
                    outcome,
                })
                .collect(),
            rejected,
        })
    }

    /// Changes a certificate's owner and/or labels; a developer may give certificates only to
    /// its own teams.
    pub async fn update_certificate(
        &self,
        caller: &Caller,
        id: &str,
        owner: Option<Option<String>>,
        labels: Option<std::collections::BTreeMap<String, String>>,
    ) -> InventoryResult<CertificateRecord> {
        let mut update = CertificateUpdate { owner_id: None, labels: None };
        if let Some(owner) = owner {
            let owner_id = match owner {
                Some(o) => Some(self.store.get_owner(&o).await?.id),
                None => None,
            };
            check_owner_change(caller, owner_id.as_deref())?;
            update.owner_id = Some(owner_id);
        }
        if let Some(labels) = labels {
            cmp_store::validate_labels(&labels)
                .map_err(|e| InventoryError::bad_field("labels", e))?;
            update.labels = Some(labels);
        }
        let ctx = caller_context(caller, unix_micros(self.clock.now()));
        Ok(self.store.update_certificate(&ctx, id, &caller.scope, &update).await?)
    }
}

/// Whether the caller may change certificates' owners to `owner_id`.
fn check_owner_change(caller: &Caller, owner_id: Option<&str>) -> InventoryResult<()> {
    match (caller.role, owner_id) {
        (Role::Admin | Role::Security, _) => Ok(()),
        (_, Some(id)) if caller.may_act_for(id) => Ok(()),
        // A developer may not give a certificate away to a team it is not in, or orphan it.
        _ => Err(InventoryError::Forbidden(
            "a developer may give certificates only to its own teams".into(),
        )),
    }
}

/// What the caller is told about one imported certificate.
fn outcome_of(o: &cmp_store::ImportOutcome) -> ImportOutcome {
    match (o.created, o.in_scope) {
        (true, _) => ImportOutcome::Created,
        (false, true) => ImportOutcome::AlreadyKnown,
        (false, false) => ImportOutcome::KnownElsewhere,
    }
}

/// Parses `kind:address`, e.g. `endpoint:web1.example.com:443`.
pub fn parse_location(value: &str) -> InventoryResult<NewLocation> {
    let bad = |why: &str| InventoryError::bad_field("location", why.to_string());
    let (kind, address) = value.split_once(':').ok_or_else(|| bad("expected kind:address"))?;
    let kind = LocationKind::parse(kind).ok_or_else(|| bad("kind is endpoint, file or k8s"))?;
    if address.is_empty() || address.len() > 1024 || address.chars().any(char::is_control) {
        return Err(bad("address must be 1-1024 printable characters"));
    }
    Ok(NewLocation { kind, address: address.to_string(), endpoint: None })
}
