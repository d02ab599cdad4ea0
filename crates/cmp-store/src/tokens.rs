//! API tokens, stored as SHA-256 hashes.

use async_trait::async_trait;
use cmp_domain::Role;
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use tracing::instrument;

use crate::AuditAction;
use crate::audit;
use crate::{
    ApiToken, AuditContext, NewApiToken, NewAuditEvent, SqlStore, StoreError, StoreResult,
    TokenStore,
};

const COLUMNS: &str = "SELECT id, name, role, owner_ids, expires_at, created_by, created_at, revoked_at FROM api_tokens";

fn token_from_row(row: &AnyRow) -> StoreResult<ApiToken> {
    let role: String = row.try_get("role")?;
    let owner_ids: String = row.try_get("owner_ids")?;
    Ok(ApiToken {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: Role::parse(&role).ok_or_else(|| StoreError::corrupt("token role", &role))?,
        owner_ids: serde_json::from_str(&owner_ids)
            .map_err(|e| StoreError::corrupt("token owners", e))?,
        expires_at: row.try_get("expires_at")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

#[async_trait]
impl TokenStore for SqlStore {
    #[instrument(
        level = "debug",
        skip_all,
        err(level = "debug"),
        fields(name = %token.name, role = token.role.as_str())
    )]
    async fn create_token(&self, ctx: &AuditContext, token: &NewApiToken) -> StoreResult<ApiToken> {
        let id = uuid::Uuid::now_v7().to_string();
        let owner_ids = serde_json::to_string(&token.owner_ids)
            .map_err(|e| StoreError::corrupt("owners", e))?;
        let mut tx = self.begin().await?;
        for owner in &token.owner_ids {
            let exists = sqlx::query("SELECT 1 FROM owners WHERE id = $1")
                .bind(owner)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Err(StoreError::not_found("owner", owner));
            }
        }
        sqlx::query(
            "INSERT INTO api_tokens (id, name, token_hash, role, owner_ids, expires_at, created_by, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(&token.name)
        .bind(&token.token_hash)
        .bind(token.role.as_str())
        .bind(&owner_ids)
        .bind(token.expires_at)
        .bind(&ctx.actor)
        .bind(ctx.now())
        .execute(&mut *tx)
        .await?;
        let event = NewAuditEvent {
            action: AuditAction::TokenCreated,
            entity_type: "api_token".into(),
            entity_id: id.clone(),
            details: json!({
                "name": token.name,
                "role": token.role.as_str(),
                "owner_ids": token.owner_ids,
                "expires_at": token.expires_at,
            }),
        };
        audit::append(&mut tx, ctx, &event).await?;
        tx.commit().await?;
        self.directory_changed();
        let row = sqlx::query(&format!("{COLUMNS} WHERE id = $1"))
            .bind(&id)
            .fetch_one(&self.read)
            .await?;
        token_from_row(&row)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn find_token_by_hash(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<ApiToken>> {
        let read = async {
            let row = sqlx::query(&format!(
                "{COLUMNS} WHERE token_hash = $1 AND revoked_at IS NULL \
                 AND (expires_at IS NULL OR expires_at > $2)"
            ))
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&self.read)
            .await?;
            row.as_ref().map(token_from_row).transpose()
        };
        let cache = &self.directory;
        let token = cache.cached(&cache.tokens, token_hash, read, Option::is_some).await?;
        // A kept copy may have expired since it was read.
        Ok(token.filter(|t| t.expires_at.is_none_or(|at| at > now)))
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn list_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        sqlx::query(&format!("{COLUMNS} ORDER BY created_at, id"))
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(token_from_row)
            .collect()
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(token_id = %id))]
    async fn revoke_token(&self, ctx: &AuditContext, id: &str, now: i64) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("api token", id));
        }
        let event = NewAuditEvent {
            action: AuditAction::TokenRevoked,
            entity_type: "api_token".into(),
            entity_id: id.into(),
            details: json!({}),
        };
        audit::append(&mut tx, ctx, &event).await?;
        tx.commit().await?;
        self.directory_changed();
        Ok(())
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn count_tokens(&self) -> StoreResult<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM api_tokens")
            .fetch_one(&self.read)
            .await?
            .try_get("n")?)
    }
}
