//! CA adapters (configured CA connections), the builtin CA's material, and its ledger of
//! issued and revoked serials.

use async_trait::async_trait;
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use tracing::instrument;

use crate::AuditAction;
use crate::audit;
use crate::sql::{Arg, SqlBuilder};
use crate::{AuditContext, NewAuditEvent, SqlStore, StoreError, StoreResult};

/// A configured CA connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterRecord {
    pub id: String,
    pub name: String,
    /// `builtin` (later `vault_pki`, `acme`).
    pub kind: String,
    /// Settings without credentials (those are in the secret store).
    pub config: serde_json::Value,
    pub enabled: bool,
    pub has_credentials: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A new adapter; `material` for a builtin CA, written in the same transaction.
#[derive(Debug, Clone)]
pub struct NewAdapter {
    /// Made by the caller, which may have stored secrets under it already.
    pub id: String,
    pub name: String,
    pub kind: String,
    pub config: serde_json::Value,
    pub has_credentials: bool,
    pub material: Option<CaCertificates>,
}

/// Changes to an adapter.
#[derive(Debug, Clone, Default)]
pub struct AdapterUpdate {
    pub config: Option<serde_json::Value>,
    pub enabled: Option<bool>,
    pub has_credentials: Option<bool>,
}

/// The builtin CA's certificates, DER (its keys are in the secret store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCertificates {
    pub root_der: Vec<u8>,
    pub issuing_der: Vec<u8>,
}

/// One serial a builtin CA signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    pub ca_id: String,
    pub serial: String,
    pub request_id: String,
    pub der: Vec<u8>,
    pub not_after: i64,
    pub revoked_at: Option<i64>,
    /// RFC 5280 reason name, snake_case.
    pub revocation_reason: Option<String>,
}

/// What revoking a ledger serial found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerRevoke {
    Revoked,
    AlreadyRevoked,
    Unknown,
}

/// Adapters and the builtin CA's state.
#[async_trait]
pub trait AdapterStore: Send + Sync {
    async fn create_adapter(
        &self,
        ctx: &AuditContext,
        adapter: &NewAdapter,
    ) -> StoreResult<AdapterRecord>;
    async fn list_adapters(&self) -> StoreResult<Vec<AdapterRecord>>;
    /// An adapter by id or name.
    async fn get_adapter(&self, id_or_name: &str) -> StoreResult<AdapterRecord>;
    async fn update_adapter(
        &self,
        ctx: &AuditContext,
        id: &str,
        update: &AdapterUpdate,
    ) -> StoreResult<AdapterRecord>;
    async fn get_ca_certificates(&self, adapter_id: &str) -> StoreResult<CaCertificates>;

    async fn ledger_find_by_request(
        &self,
        ca_id: &str,
        request_id: &str,
    ) -> StoreResult<Option<LedgerRow>>;
    async fn ledger_find_by_serial(
        &self,
        ca_id: &str,
        serial: &str,
    ) -> StoreResult<Option<LedgerRow>>;
    /// Inserts the row unless the request id already has one; returns the row that stands.
    async fn ledger_record(&self, row: &LedgerRow) -> StoreResult<LedgerRow>;
    async fn ledger_revoke(
        &self,
        ca_id: &str,
        serial: &str,
        reason: &str,
        at: i64,
    ) -> StoreResult<LedgerRevoke>;
    /// Revoked rows not expired at `now`.
    async fn ledger_revoked(&self, ca_id: &str, now: i64) -> StoreResult<Vec<LedgerRow>>;

    /// The URL of the ACME order placed for a request, if any.
    async fn acme_order_find(&self, ca_id: &str, request_id: &str) -> StoreResult<Option<String>>;
    /// Records a request's ACME order unless one is recorded; returns the URL that stands.
    async fn acme_order_record(
        &self,
        ca_id: &str,
        request_id: &str,
        order_url: &str,
    ) -> StoreResult<String>;
}

/// The head of a (multi-row) ledger INSERT; rows come from [`ledger_row`].
pub(crate) const LEDGER_INSERT: &str =
    "INSERT INTO ca_ledger (ca_id, serial, request_id, der, not_after) VALUES ";

/// The values of a new ledger row.
pub(crate) fn ledger_row(row: &LedgerRow) -> [Arg; 5] {
    [
        Arg::Text(row.ca_id.clone()),
        Arg::Text(row.serial.clone()),
        Arg::Text(row.request_id.clone()),
        Arg::Bytes(row.der.clone()),
        Arg::Int(row.not_after),
    ]
}

/// A ledger row, unless its request id has one already.
fn ledger_insert_once(row: &LedgerRow) -> SqlBuilder {
    let mut b = SqlBuilder::new(LEDGER_INSERT);
    b.row(ledger_row(row)).push(" ON CONFLICT (ca_id, request_id) DO NOTHING");
    b
}

/// Inserts a ledger row inside a transaction; `false` if its request id had one already.
pub(crate) async fn ledger_insert_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    row: &LedgerRow,
) -> StoreResult<bool> {
    let inserted = ledger_insert_once(row).query().execute(&mut **tx).await?.rows_affected();
    Ok(inserted == 1)
}

fn adapter_from_row(row: &AnyRow) -> StoreResult<AdapterRecord> {
    let config: String = row.try_get("config")?;
    Ok(AdapterRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        config: serde_json::from_str(&config).map_err(|e| StoreError::corrupt("config", e))?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        has_credentials: row.try_get::<i64, _>("has_credentials")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn ledger_from_row(row: &AnyRow) -> StoreResult<LedgerRow> {
    Ok(LedgerRow {
        ca_id: row.try_get("ca_id")?,
        serial: row.try_get("serial")?,
        request_id: row.try_get("request_id")?,
        der: row.try_get("der")?,
        not_after: row.try_get("not_after")?,
        revoked_at: row.try_get("revoked_at")?,
        revocation_reason: row.try_get("revocation_reason")?,
    })
}

fn adapter_event(action: AuditAction, id: &str, details: serde_json::Value) -> NewAuditEvent {
    NewAuditEvent { action, entity_type: "adapter".into(), entity_id: id.into(), details }
}

impl SqlStore {
    /// The ledger row of `ca_id` whose `column` (unique together with `ca_id`) is `value`.
    async fn ledger_find(
        &self,
        column: &str,
        ca_id: &str,
        value: &str,
    ) -> StoreResult<Option<LedgerRow>> {
        sqlx::query(&format!("SELECT * FROM ca_ledger WHERE ca_id = $1 AND {column} = $2"))
            .bind(ca_id)
            .bind(value)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(ledger_from_row)
            .transpose()
    }
}

#[async_trait]
impl AdapterStore for SqlStore {
    #[instrument(
        level = "debug",
        skip_all,
        err(level = "debug"),
        fields(adapter_id = %adapter.id, kind = %adapter.kind)
    )]
    async fn create_adapter(
        &self,
        ctx: &AuditContext,
        adapter: &NewAdapter,
    ) -> StoreResult<AdapterRecord> {
        let id = adapter.id.clone();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO adapters (id, name, kind, config, enabled, has_credentials, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, 1, $5, $6, $6)",
        )
        .bind(&id)
        .bind(&adapter.name)
        .bind(&adapter.kind)
        .bind(adapter.config.to_string())
        .bind(i64::from(adapter.has_credentials))
        .bind(ctx.now())
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("an adapter named {:?} already exists", adapter.name))
            }
            other => other,
        })?;
        if let Some(material) = &adapter.material {
            sqlx::query(
                "INSERT INTO ca_material (adapter_id, root_der, issuing_der, created_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&id)
            .bind(material.root_der.as_slice())
            .bind(material.issuing_der.as_slice())
            .bind(ctx.now())
            .execute(&mut *tx)
            .await?;
        }
        let details = json!({"name": adapter.name, "kind": adapter.kind, "config": adapter.config});
        audit::append(&mut tx, ctx, &adapter_event(AuditAction::AdapterCreated, &id, details))
            .await?;
        tx.commit().await?;
        self.directory_changed();
        self.get_adapter(&id).await
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn list_adapters(&self) -> StoreResult<Vec<AdapterRecord>> {
        sqlx::query("SELECT * FROM adapters ORDER BY name")
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(adapter_from_row)
            .collect()
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(adapter = %id_or_name))]
    async fn get_adapter(&self, id_or_name: &str) -> StoreResult<AdapterRecord> {
        let read = async {
            let row = sqlx::query("SELECT * FROM adapters WHERE id = $1 OR name = $1")
                .bind(id_or_name)
                .fetch_optional(&self.read)
                .await?
                .ok_or_else(|| StoreError::not_found("adapter", id_or_name))?;
            adapter_from_row(&row)
        };
        self.directory.cached(&self.directory.adapters, id_or_name, read, |_| true).await
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(adapter_id = %id))]
    async fn update_adapter(
        &self,
        ctx: &AuditContext,
        id: &str,
        update: &AdapterUpdate,
    ) -> StoreResult<AdapterRecord> {
        let current = self.get_adapter(id).await?;
        let mut b = SqlBuilder::new("UPDATE adapters SET updated_at = ");
        b.bind(Arg::Int(ctx.now()));
        let mut details = serde_json::Map::new();
        if let Some(config) = &update.config {
            b.push(", config = ").bind(Arg::Text(config.to_string()));
            details.insert("config".into(), json!({"from": current.config, "to": config}));
        }
        if let Some(enabled) = update.enabled {
            b.push(", enabled = ").bind(Arg::Int(i64::from(enabled)));
            details.insert("enabled".into(), json!({"from": current.enabled, "to": enabled}));
        }
        if let Some(has) = update.has_credentials {
            b.push(", has_credentials = ").bind(Arg::Int(i64::from(has)));
            details.insert("credentials_changed".into(), json!(true));
        }
        b.push(" WHERE id = ").bind(Arg::Text(current.id.clone()));
        let mut tx = self.begin().await?;
        b.query().execute(&mut *tx).await?;
        let event = adapter_event(AuditAction::AdapterUpdated, &current.id, details.into());
        audit::append(&mut tx, ctx, &event).await?;
        tx.commit().await?;
        self.directory_changed();
        self.get_adapter(&current.id).await
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(adapter_id = %adapter_id))]
    async fn get_ca_certificates(&self, adapter_id: &str) -> StoreResult<CaCertificates> {
        let row =
            sqlx::query("SELECT root_der, issuing_der FROM ca_material WHERE adapter_id = $1")
                .bind(adapter_id)
                .fetch_optional(&self.read)
                .await?
                .ok_or_else(|| StoreError::not_found("CA material of adapter", adapter_id))?;
        Ok(CaCertificates {
            root_der: row.try_get("root_der")?,
            issuing_der: row.try_get("issuing_der")?,
        })
    }

    #[instrument(
        level = "debug",
        skip_all,
        err(level = "debug"),
        fields(ca_id = %ca_id, request_id = %request_id)
    )]
    async fn ledger_find_by_request(
        &self,
        ca_id: &str,
        request_id: &str,
    ) -> StoreResult<Option<LedgerRow>> {
        // A reader sees every committed row; a race with an uncommitted one is settled by
        // `ledger_record`'s conflict rule.
        self.ledger_find("request_id", ca_id, request_id).await
    }

    #[instrument(
        level = "debug",
        skip_all,
        err(level = "debug"),
        fields(ca_id = %ca_id, serial = %serial)
    )]
    async fn ledger_find_by_serial(
        &self,
        ca_id: &str,
        serial: &str,
    ) -> StoreResult<Option<LedgerRow>> {
        self.ledger_find("serial", ca_id, serial).await
    }

    #[instrument(
        level = "debug",
        skip_all,
        err(level = "debug"),
        fields(ca_id = %row.ca_id, request_id = %row.request_id, serial = %row.serial)
    )]
    async fn ledger_record(&self, row: &LedgerRow) -> StoreResult<LedgerRow> {
        let inserted = ledger_insert_once(row).query().execute(&self.write).await?.rows_affected();
        if inserted == 1 {
            return Ok(row.clone());
        }
        self.ledger_find_by_request(&row.ca_id, &row.request_id)
            .await?
            .ok_or_else(|| StoreError::Conflict("ledger row vanished during a race".into()))
    }

    #[instrument(
        level = "debug",
        skip_all,
        err(level = "debug"),
        fields(ca_id = %ca_id, serial = %serial, reason = %reason)
    )]
    async fn ledger_revoke(
        &self,
        ca_id: &str,
        serial: &str,
        reason: &str,
        at: i64,
    ) -> StoreResult<LedgerRevoke> {
        let changed = sqlx::query(
            "UPDATE ca_ledger SET revoked_at = $1, revocation_reason = $2 \
             WHERE ca_id = $3 AND serial = $4 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(reason)
        .bind(ca_id)
        .bind(serial)
        .execute(&self.write)
        .await?
        .rows_affected();
        if changed == 1 {
            return Ok(LedgerRevoke::Revoked);
        }
        let exists = sqlx::query("SELECT 1 AS one FROM ca_ledger WHERE ca_id = $1 AND serial = $2")
            .bind(ca_id)
            .bind(serial)
            .fetch_optional(&self.write)
            .await?
            .is_some();
        Ok(if exists { LedgerRevoke::AlreadyRevoked } else { LedgerRevoke::Unknown })
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(ca_id = %ca_id))]
    async fn ledger_revoked(&self, ca_id: &str, now: i64) -> StoreResult<Vec<LedgerRow>> {
        sqlx::query(
            "SELECT * FROM ca_ledger WHERE ca_id = $1 AND revoked_at IS NOT NULL \
             AND not_after >= $2 ORDER BY serial",
        )
        .bind(ca_id)
        .bind(now)
        .fetch_all(&self.write)
        .await?
        .iter()
        .map(ledger_from_row)
        .collect()
    }

    #[instrument(
        level = "debug",
        skip_all,
        err(level = "debug"),
        fields(ca_id = %ca_id, request_id = %request_id)
    )]
    async fn acme_order_find(&self, ca_id: &str, request_id: &str) -> StoreResult<Option<String>> {
        let row =
            sqlx::query("SELECT order_url FROM acme_orders WHERE ca_id = $1 AND request_id = $2")
                .bind(ca_id)
                .bind(request_id)
                .fetch_optional(&self.read)
                .await?;
        Ok(row.map(|r| r.try_get("order_url")).transpose()?)
    }

    #[instrument(
        level = "debug",
        skip_all,
        err(level = "debug"),
        fields(ca_id = %ca_id, request_id = %request_id)
    )]
    async fn acme_order_record(
        &self,
        ca_id: &str,
        request_id: &str,
        order_url: &str,
    ) -> StoreResult<String> {
        sqlx::query(
            "INSERT INTO acme_orders (ca_id, request_id, order_url) VALUES ($1, $2, $3) \
             ON CONFLICT (ca_id, request_id) DO NOTHING",
        )
        .bind(ca_id)
        .bind(request_id)
        .bind(order_url)
        .execute(&self.write)
        .await?;
        // The row that stands, ours or the one that won a race (committed either way).
        self.acme_order_find(ca_id, request_id)
            .await?
            .ok_or_else(|| StoreError::Conflict("ACME order row vanished during a race".into()))
    }
}
