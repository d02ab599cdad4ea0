//! Owners (teams).

use async_trait::async_trait;
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use tracing::instrument;

use crate::AuditAction;
use crate::audit;
use crate::sql::{Arg, SqlBuilder};
use crate::{
    AuditContext, NewAuditEvent, NewOwner, Owner, OwnerStore, OwnerUpdate, SqlStore, StoreError,
    StoreResult,
};

fn owner_from_row(row: &AnyRow) -> StoreResult<Owner> {
    Ok(Owner {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn owner_event(action: AuditAction, owner_id: &str, details: serde_json::Value) -> NewAuditEvent {
    NewAuditEvent { action, entity_type: "owner".into(), entity_id: owner_id.into(), details }
}

#[async_trait]
impl OwnerStore for SqlStore {
    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(name = %owner.name))]
    async fn create_owner(&self, ctx: &AuditContext, owner: &NewOwner) -> StoreResult<Owner> {
        let id = uuid::Uuid::now_v7().to_string();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO owners (id, name, email, description, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&id)
        .bind(&owner.name)
        .bind(&owner.email)
        .bind(&owner.description)
        .bind(ctx.now())
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("an owner named {:?} already exists", owner.name))
            }
            other => other,
        })?;
        let details =
            json!({"name": owner.name, "email": owner.email, "description": owner.description});
        audit::append(&mut tx, ctx, &owner_event(AuditAction::OwnerCreated, &id, details)).await?;
        tx.commit().await?;
        self.directory_changed();
        self.get_owner(&id).await
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn list_owners(&self) -> StoreResult<Vec<Owner>> {
        sqlx::query("SELECT * FROM owners ORDER BY name")
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(owner_from_row)
            .collect()
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(owner = %id_or_name))]
    async fn get_owner(&self, id_or_name: &str) -> StoreResult<Owner> {
        let read = async {
            let row = sqlx::query("SELECT * FROM owners WHERE id = $1 OR name = $1")
                .bind(id_or_name)
                .fetch_optional(&self.read)
                .await?
                .ok_or_else(|| StoreError::not_found("owner", id_or_name))?;
            owner_from_row(&row)
        };
        self.directory.cached(&self.directory.owners, id_or_name, read, |_| true).await
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(owner_id = %id))]
    async fn update_owner(
        &self,
        ctx: &AuditContext,
        id: &str,
        update: &OwnerUpdate,
    ) -> StoreResult<Owner> {
        let current = self.get_owner(id).await?;
        let mut b = SqlBuilder::new("UPDATE owners SET updated_at = ");
        b.bind(Arg::Int(ctx.now()));
        let mut details = serde_json::Map::new();
        if let Some(name) = &update.name {
            b.push(", name = ").bind(Arg::Text(name.clone()));
            details.insert("name".into(), json!({"from": current.name, "to": name}));
        }
        for (column, change, before) in [
            ("email", &update.email, &current.email),
            ("description", &update.description, &current.description),
        ] {
            if let Some(value) = change {
                match value {
                    Some(v) => b.push(&format!(", {column} = ")).bind(Arg::Text(v.clone())),
                    None => b.push(&format!(", {column} = NULL")),
                };
                details.insert(column.into(), json!({"from": before, "to": value}));
            }
        }
        b.push(" WHERE id = ").bind(Arg::Text(current.id.clone()));
        let mut tx = self.begin().await?;
        b.query().execute(&mut *tx).await.map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict("an owner with that name already exists".into())
            }
            other => other,
        })?;
        let event =
            owner_event(AuditAction::OwnerUpdated, &current.id, serde_json::Value::Object(details));
        audit::append(&mut tx, ctx, &event).await?;
        tx.commit().await?;
        self.directory_changed();
        self.get_owner(&current.id).await
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(owner_id = %id))]
    async fn delete_owner(&self, ctx: &AuditContext, id: &str) -> StoreResult<()> {
        let current = self.get_owner(id).await?;
        let mut tx = self.begin().await?;
        // Certificates keep existing without an owner (ON DELETE SET NULL); say how many.
        let owned: i64 = sqlx::query("SELECT COUNT(*) AS n FROM certificates WHERE owner_id = $1")
            .bind(&current.id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        sqlx::query("DELETE FROM owners WHERE id = $1").bind(&current.id).execute(&mut *tx).await?;
        let details = json!({"name": current.name, "certificates_unassigned": owned});
        audit::append(&mut tx, ctx, &owner_event(AuditAction::OwnerDeleted, &current.id, details))
            .await?;
        tx.commit().await?;
        self.directory_changed();
        Ok(())
    }
}
