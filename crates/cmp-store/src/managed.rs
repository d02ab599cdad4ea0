//! Managed certificates (desired state, with their versions) and per-owner policies.

use async_trait::async_trait;
use cmp_domain::RequestSpec;
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use tracing::instrument;

use crate::AuditAction;
use crate::audit;
use crate::certificates::push_owner_scope;
use crate::sql::{Arg, SqlBuilder, from_json, to_json};
use crate::{AuditContext, Cursor, NewAuditEvent, Page, Scope, SqlStore, StoreError, StoreResult};

/// A managed certificate: what should exist, and which certificate currently is it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedRecord {
    pub id: String,
    /// Unique per owner, not across owners.
    pub name: String,
    pub owner_id: Option<String>,
    /// The owner's name, read with the record.
    pub owner_name: Option<String>,
    pub adapter_id: String,
    /// Names, key, validity, renew-before.
    pub spec: RequestSpec,
    /// The requester's CSR, re-signed at each renewal, when the key is not made by the server.
    pub csr: Option<Vec<u8>>,
    pub current_certificate_id: Option<String>,
    pub renewal_failures: i64,
    pub last_failure_at: Option<i64>,
    pub last_error: Option<String>,
    pub next_check_at: i64,
    /// The scheduler's last decision (JSON).
    pub decision: Option<serde_json::Value>,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A managed certificate to create.
#[derive(Debug, Clone)]
pub struct NewManaged {
    pub name: String,
    pub owner_id: Option<String>,
    pub adapter_id: String,
    pub spec: RequestSpec,
    pub csr: Option<Vec<u8>>,
    /// When the scheduler first looks at it: after its first request had time to finish.
    pub first_check_at: i64,
}

/// One version of a managed certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRow {
    pub certificate_id: String,
    pub serial_number: String,
    pub not_before: i64,
    pub not_after: i64,
    pub revoked_at: Option<i64>,
    pub created_at: i64,
}

/// An owner's issuance policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    pub owner_id: String,
    /// `cmp_domain::Policy` as JSON.
    pub rules: serde_json::Value,
    pub updated_by: String,
    pub updated_at: i64,
}

/// What the key of an issued certificate is, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateLinks {
    /// The certificate's platform id (it may have been asked for by fingerprint).
    pub id: String,
    pub owner_id: Option<String>,
    pub adapter_id: Option<String>,
    pub managed_certificate_id: Option<String>,
    pub key_secret: Option<String>,
    pub serial_number: String,
    pub revoked_at: Option<i64>,
    pub revocation_reason: Option<String>,
}

/// Managed certificates and policies.
#[async_trait]
pub trait ManagedStore: Send + Sync {
    async fn create_managed(
        &self,
        ctx: &AuditContext,
        new: &NewManaged,
    ) -> StoreResult<ManagedRecord>;
    /// By id, `owner/name` (owner by id or name) or a bare name, within the scope. A bare name
    /// that several owners in the scope use is [`StoreError::AmbiguousName`].
    async fn get_managed(&self, id_or_name: &str, scope: &Scope) -> StoreResult<ManagedRecord>;
    /// By name, newest first after the cursor.
    async fn list_managed(
        &self,
        scope: &Scope,
        limit: u32,
        cursor: Option<&Cursor>,
    ) -> StoreResult<Page<ManagedRecord>>;
    /// Ids of managed certificates whose next check is due at `now`.
    async fn due_managed(&self, now: i64, limit: u32) -> StoreResult<Vec<String>>;
    /// Stores the scheduler's decision and when to look again.
    async fn record_decision(
        &self,
        id: &str,
        decision: &serde_json::Value,
        next_check_at: i64,
    ) -> StoreResult<()>;
    /// Every certificate issued for it, newest first.
    /// Every certificate issued for each of `ids`, newest first, in one query.
    async fn managed_versions(
        &self,
        ids: &[String],
    ) -> StoreResult<std::collections::HashMap<String, Vec<VersionRow>>>;
    /// The issuance links of an inventory certificate, within the scope.
    async fn certificate_links(&self, id: &str, scope: &Scope) -> StoreResult<CertificateLinks>;
    /// Forgets the secret name of a certificate's server-made key (the caller deleted the
    /// secret), audited as `certificate.key_purged`. Not found when no key is kept.
    async fn purge_key(&self, ctx: &AuditContext, certificate_id: &str) -> StoreResult<()>;

    async fn put_policy(
        &self,
        ctx: &AuditContext,
        owner_id: &str,
        rules: &serde_json::Value,
    ) -> StoreResult<PolicyRecord>;
    async fn get_policy(&self, owner_id: &str) -> StoreResult<Option<PolicyRecord>>;
}

fn managed_from_row(row: &AnyRow) -> StoreResult<ManagedRecord> {
    let decision: Option<String> = row.try_get("decision")?;
    Ok(ManagedRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        owner_id: row.try_get("owner_id")?,
        owner_name: row.try_get("owner_name")?,
        adapter_id: row.try_get("adapter_id")?,
        spec: from_json(row, "spec")?,
        csr: row.try_get("csr")?,
        current_certificate_id: row.try_get("current_certificate_id")?,
        renewal_failures: row.try_get("renewal_failures")?,
        last_failure_at: row.try_get("last_failure_at")?,
        last_error: row.try_get("last_error")?,
        next_check_at: row.try_get("next_check_at")?,
        decision: decision
            .map(|d| serde_json::from_str(&d))
            .transpose()
            .map_err(|e| StoreError::corrupt("decision", e))?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Managed certificates with their owner's name; `m` and `o` in the rest of the query.
const SELECT_MANAGED: &str = "SELECT m.*, o.name AS owner_name FROM managed_certificates m \
    LEFT JOIN owners o ON o.id = m.owner_id";

/// Rows a name lookup reads at most: one is the answer, more are named in the ambiguity error.
const NAME_CANDIDATES: i64 = 10;

fn policy_from_row(row: &AnyRow) -> StoreResult<PolicyRecord> {
    let rules: String = row.try_get("rules")?;
    Ok(PolicyRecord {
        owner_id: row.try_get("owner_id")?,
        rules: serde_json::from_str(&rules).map_err(|e| StoreError::corrupt("policy", e))?,
        updated_by: row.try_get("updated_by")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn event(
    action: AuditAction,
    entity_type: &str,
    id: &str,
    details: serde_json::Value,
) -> NewAuditEvent {
    NewAuditEvent { action, entity_type: entity_type.into(), entity_id: id.into(), details }
}

#[async_trait]
impl ManagedStore for SqlStore {
    #[instrument(
        level = "debug",
        skip_all,
        err(level = "debug"),
        fields(name = %new.name, adapter_id = %new.adapter_id)
    )]
    async fn create_managed(
        &self,
        ctx: &AuditContext,
        new: &NewManaged,
    ) -> StoreResult<ManagedRecord> {
        let id = uuid::Uuid::now_v7().to_string();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO managed_certificates (id, name, owner_id, adapter_id, spec, csr, \
             next_check_at, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $9, $8, $7, $7)",
        )
        .bind(&id)
        .bind(&new.name)
        .bind(&new.owner_id)
        .bind(&new.adapter_id)
        .bind(to_json(&new.spec)?)
        .bind(new.csr.as_deref())
        .bind(ctx.now())
        .bind(&ctx.actor)
        .bind(new.first_check_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            // Names are unique per owner: a clash is within the caller's own team.
            StoreError::Conflict(_) => StoreError::Conflict(format!(
                "this owner already has a managed certificate named {:?}",
                new.name
            )),
            other => other,
        })?;
        let details = json!({"name": new.name, "owner_id": new.owner_id, "adapter_id": new.adapter_id, "spec": new.spec});
        let created =
            event(AuditAction::ManagedCertificateCreated, "managed_certificate", &id, details);
        audit::append(&mut tx, ctx, &created).await?;
        tx.commit().await?;
        self.get_managed(&id, &Scope::All).await
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(managed = %id_or_name))]
    async fn get_managed(&self, id_or_name: &str, scope: &Scope) -> StoreResult<ManagedRecord> {
        let mut b = SqlBuilder::new(SELECT_MANAGED);
        // Neither owner names nor managed names contain '/': it can only separate the two.
        match id_or_name.split_once('/') {
            Some((owner, name)) => {
                b.push(" WHERE (m.owner_id = ")
                    .bind(Arg::Text(owner.into()))
                    .push(" OR o.name = ")
                    .bind(Arg::Text(owner.into()))
                    .push(") AND m.name = ")
                    .bind(Arg::Text(name.into()));
            }
            None => {
                b.push(" WHERE (m.id = ")
                    .bind(Arg::Text(id_or_name.into()))
                    .push(" OR m.name = ")
                    .bind(Arg::Text(id_or_name.into()))
                    .push(")");
            }
        }
        push_owner_scope(&mut b, "m.owner_id", scope);
        b.push(" ORDER BY o.name, m.id LIMIT ").bind(Arg::Int(NAME_CANDIDATES));
        let mut found = b
            .query()
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(managed_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        if let Some(by_id) = found.iter().position(|m| m.id == id_or_name) {
            return Ok(found.swap_remove(by_id));
        }
        match found.len() {
            0 => Err(StoreError::not_found("managed certificate", id_or_name)),
            1 => Ok(found.remove(0)),
            _ => Err(StoreError::AmbiguousName {
                entity: "managed certificate",
                name: id_or_name.to_string(),
                candidates: found
                    .iter()
                    .map(|m| match &m.owner_name {
                        Some(owner) => format!("{owner}/{}", m.name),
                        None => m.id.clone(),
                    })
                    .collect(),
            }),
        }
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(limit))]
    async fn list_managed(
        &self,
        scope: &Scope,
        limit: u32,
        cursor: Option<&Cursor>,
    ) -> StoreResult<Page<ManagedRecord>> {
        let limit = limit.clamp(1, 500);
        let mut b = SqlBuilder::new(SELECT_MANAGED);
        b.push(" WHERE 1 = 1");
        push_owner_scope(&mut b, "m.owner_id", scope);
        if let Some(cursor) = cursor {
            b.push(" AND m.id > ").bind(Arg::Text(cursor.id.clone()));
        }
        b.push(" ORDER BY m.id LIMIT ").bind(Arg::Int(i64::from(limit) + 1));
        let items = b
            .query()
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(managed_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_rows(items, limit, |m| Cursor { key: 0, id: m.id.clone() }))
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(limit))]
    async fn due_managed(&self, now: i64, limit: u32) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT id FROM managed_certificates WHERE next_check_at <= $1 \
             ORDER BY next_check_at LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(managed_id = %id))]
    async fn record_decision(
        &self,
        id: &str,
        decision: &serde_json::Value,
        next_check_at: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE managed_certificates SET decision = $1, next_check_at = $2 WHERE id = $3",
        )
        .bind(decision.to_string())
        .bind(next_check_at)
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(count = ids.len()))]
    async fn managed_versions(
        &self,
        ids: &[String],
    ) -> StoreResult<std::collections::HashMap<String, Vec<VersionRow>>> {
        let mut versions = std::collections::HashMap::<String, Vec<VersionRow>>::new();
        if ids.is_empty() {
            return Ok(versions);
        }
        let mut b = SqlBuilder::new(
            "SELECT managed_certificate_id, id, serial_number, not_before, not_after, revoked_at, \
             created_at FROM certificates WHERE managed_certificate_id IN ",
        );
        b.row(ids.iter().map(|id| Arg::Text(id.clone())));
        b.push(" ORDER BY not_after DESC, id DESC");
        for r in b.query().fetch_all(&self.read).await? {
            versions.entry(r.try_get("managed_certificate_id")?).or_default().push(VersionRow {
                certificate_id: r.try_get("id")?,
                serial_number: r.try_get("serial_number")?,
                not_before: r.try_get("not_before")?,
                not_after: r.try_get("not_after")?,
                revoked_at: r.try_get("revoked_at")?,
                created_at: r.try_get("created_at")?,
            });
        }
        Ok(versions)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(certificate = %id))]
    async fn certificate_links(&self, id: &str, scope: &Scope) -> StoreResult<CertificateLinks> {
        let mut b = SqlBuilder::new(
            "SELECT c.id, c.owner_id, c.adapter_id, c.managed_certificate_id, c.key_secret, \
             c.serial_number, c.revoked_at, c.revocation_reason FROM certificates c \
             WHERE (c.id = ",
        );
        b.bind(Arg::Text(id.into()))
            .push(" OR c.fingerprint_sha256 = ")
            .bind(Arg::Text(id.into()))
            .push(")");
        push_owner_scope(&mut b, "c.owner_id", scope);
        let row = b
            .query()
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| StoreError::not_found("certificate", id))?;
        Ok(CertificateLinks {
            id: row.try_get("id")?,
            owner_id: row.try_get("owner_id")?,
            adapter_id: row.try_get("adapter_id")?,
            managed_certificate_id: row.try_get("managed_certificate_id")?,
            key_secret: row.try_get("key_secret")?,
            serial_number: row.try_get("serial_number")?,
            revoked_at: row.try_get("revoked_at")?,
            revocation_reason: row.try_get("revocation_reason")?,
        })
    }

    #[instrument(
        level = "debug",
        skip_all,
        err(level = "debug"),
        fields(certificate_id = %certificate_id)
    )]
    async fn purge_key(&self, ctx: &AuditContext, certificate_id: &str) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let purged = sqlx::query(
            "UPDATE certificates SET key_secret = NULL WHERE id = $1 AND key_secret IS NOT NULL",
        )
        .bind(certificate_id)
        .execute(&mut *tx)
        .await?;
        if purged.rows_affected() == 0 {
            return Err(StoreError::not_found("private key of certificate", certificate_id));
        }
        let purged =
            event(AuditAction::CertificateKeyPurged, "certificate", certificate_id, json!({}));
        audit::append(&mut tx, ctx, &purged).await?;
        tx.commit().await?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(owner_id = %owner_id))]
    async fn put_policy(
        &self,
        ctx: &AuditContext,
        owner_id: &str,
        rules: &serde_json::Value,
    ) -> StoreResult<PolicyRecord> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO policies (owner_id, rules, updated_by, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (owner_id) DO UPDATE SET rules = excluded.rules, \
             updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )
        .bind(owner_id)
        .bind(rules.to_string())
        .bind(&ctx.actor)
        .bind(ctx.now())
        .execute(&mut *tx)
        .await?;
        let set = event(AuditAction::PolicySet, "owner", owner_id, json!({"rules": rules}));
        audit::append(&mut tx, ctx, &set).await?;
        tx.commit().await?;
        self.directory_changed();
        self.get_policy(owner_id)
            .await?
            .ok_or_else(|| StoreError::not_found("policy of owner", owner_id))
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(owner_id = %owner_id))]
    async fn get_policy(&self, owner_id: &str) -> StoreResult<Option<PolicyRecord>> {
        let read = async {
            sqlx::query("SELECT * FROM policies WHERE owner_id = $1")
                .bind(owner_id)
                .fetch_optional(&self.read)
                .await?
                .as_ref()
                .map(policy_from_row)
                .transpose()
        };
        // Its absence is kept too: owners are few.
        self.directory.cached(&self.directory.policies, owner_id, read, |_| true).await
    }
}
