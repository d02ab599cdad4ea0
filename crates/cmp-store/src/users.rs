//! People who log in through OpenID Connect, their sessions, and logins under way.

use async_trait::async_trait;
use cmp_domain::{Role, Secret};
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use tracing::instrument;

use crate::audit;
use crate::{
    AuditAction, AuditContext, LoginAttempt, NewAuditEvent, NewSession, SqlStore, StoreError,
    StoreResult, StoredSession, User, UserLogin, UserStore,
};

const USER_COLUMNS: &str = "SELECT id, provider, subject, email, name, role, owner_ids, groups, \
                            created_at, last_login_at FROM users";

fn strings(row: &AnyRow, column: &str, what: &'static str) -> StoreResult<Vec<String>> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::corrupt(what, e))
}

fn role(row: &AnyRow) -> StoreResult<Role> {
    let role: String = row.try_get("role")?;
    Role::parse(&role).ok_or_else(|| StoreError::corrupt("user role", &role))
}

fn user_from_row(row: &AnyRow) -> StoreResult<User> {
    Ok(User {
        id: row.try_get("id")?,
        provider: row.try_get("provider")?,
        subject: row.try_get("subject")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        role: role(row)?,
        owner_ids: strings(row, "owner_ids", "user owners")?,
        groups: strings(row, "groups", "user groups")?,
        created_at: row.try_get("created_at")?,
        last_login_at: row.try_get("last_login_at")?,
    })
}

fn json_list(list: &[String]) -> StoreResult<String> {
    serde_json::to_string(list).map_err(|e| StoreError::corrupt("list", e))
}

#[async_trait]
impl UserStore for SqlStore {
    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(provider = %login.provider))]
    async fn record_login(&self, ctx: &AuditContext, login: &UserLogin) -> StoreResult<User> {
        let mut tx = self.begin().await?;
        let existing = sqlx::query("SELECT id FROM users WHERE provider = $1 AND subject = $2")
            .bind(&login.provider)
            .bind(&login.subject)
            .fetch_optional(&mut *tx)
            .await?;
        let (owner_ids, groups) = (json_list(&login.owner_ids)?, json_list(&login.groups)?);
        let first_login = existing.is_none();
        let id = match existing {
            Some(row) => {
                let id: String = row.try_get("id")?;
                sqlx::query(
                    "UPDATE users SET email = $1, name = $2, role = $3, owner_ids = $4, \
                     groups = $5, last_login_at = $6 WHERE id = $7",
                )
                .bind(&login.email)
                .bind(&login.name)
                .bind(login.role.as_str())
                .bind(&owner_ids)
                .bind(&groups)
                .bind(ctx.now())
                .bind(&id)
                .execute(&mut *tx)
                .await?;
                id
            }
            None => {
                let id = uuid::Uuid::now_v7().to_string();
                sqlx::query(
                    "INSERT INTO users (id, provider, subject, email, name, role, owner_ids, \
                     groups, created_at, last_login_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
                )
                .bind(&id)
                .bind(&login.provider)
                .bind(&login.subject)
                .bind(&login.email)
                .bind(&login.name)
                .bind(login.role.as_str())
                .bind(&owner_ids)
                .bind(&groups)
                .bind(ctx.now())
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        let event = NewAuditEvent {
            action: AuditAction::UserLoggedIn,
            entity_type: "user".into(),
            entity_id: id.clone(),
            details: json!({
                "provider": login.provider,
                "subject": login.subject,
                "email": login.email,
                "role": login.role.as_str(),
                "owner_ids": login.owner_ids,
                "first_login": first_login,
            }),
        };
        audit::append(&mut tx, ctx, &event).await?;
        let row = sqlx::query(&format!("{USER_COLUMNS} WHERE id = $1"))
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
        let user = user_from_row(&row)?;
        tx.commit().await?;
        Ok(user)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn list_users(&self) -> StoreResult<Vec<User>> {
        sqlx::query(&format!("{USER_COLUMNS} ORDER BY provider, subject"))
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(user_from_row)
            .collect()
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn get_user(&self, id: &str) -> StoreResult<User> {
        let row = sqlx::query(&format!("{USER_COLUMNS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| StoreError::not_found("user", id))?;
        user_from_row(&row)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn create_session(&self, session: &NewSession) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO user_sessions (id_hash, user_id, csrf_token, role, owner_ids, \
             created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $6, $7)",
        )
        .bind(&session.id_hash)
        .bind(&session.user_id)
        .bind(session.csrf_token.expose())
        .bind(session.role.as_str())
        .bind(json_list(&session.owner_ids)?)
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn find_session(&self, id_hash: &str) -> StoreResult<Option<StoredSession>> {
        let row = sqlx::query(
            "SELECT s.user_id, s.csrf_token, s.role, s.owner_ids, s.created_at, \
             s.last_seen_at, s.expires_at, u.provider, u.subject, u.email \
             FROM user_sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(StoredSession {
            user_id: row.try_get("user_id")?,
            provider: row.try_get("provider")?,
            subject: row.try_get("subject")?,
            email: row.try_get("email")?,
            csrf_token: Secret::new(row.try_get::<String, _>("csrf_token")?),
            role: role(&row)?,
            owner_ids: strings(&row, "owner_ids", "session owners")?,
            created_at: row.try_get("created_at")?,
            last_seen_at: row.try_get("last_seen_at")?,
            expires_at: row.try_get("expires_at")?,
        }))
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn touch_session(&self, id_hash: &str, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE user_sessions SET last_seen_at = $1 WHERE id_hash = $2")
            .bind(now)
            .bind(id_hash)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn delete_session(&self, id_hash: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM user_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn purge_sessions(&self, idle_before: i64, now: i64) -> StoreResult<u64> {
        let sessions =
            sqlx::query("DELETE FROM user_sessions WHERE last_seen_at < $1 OR expires_at <= $2")
                .bind(idle_before)
                .bind(now)
                .execute(&self.write)
                .await?;
        let attempts = sqlx::query("DELETE FROM login_attempts WHERE created_at < $1")
            .bind(now - crate::LOGIN_ATTEMPT_SECS)
            .execute(&self.write)
            .await?;
        Ok(sessions.rows_affected() + attempts.rows_affected())
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn save_login_attempt(&self, attempt: &LoginAttempt) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO login_attempts (state_hash, provider, nonce, pkce_verifier, return_to, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&attempt.state_hash)
        .bind(&attempt.provider)
        .bind(attempt.nonce.expose())
        .bind(attempt.pkce_verifier.expose())
        .bind(&attempt.return_to)
        .bind(attempt.created_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn take_login_attempt(
        &self,
        state_hash: &str,
        now: i64,
    ) -> StoreResult<Option<LoginAttempt>> {
        // One statement: of two callbacks with the same state, only one gets the row.
        let row = sqlx::query(
            "DELETE FROM login_attempts WHERE state_hash = $1 RETURNING state_hash, provider, \
             nonce, pkce_verifier, return_to, created_at",
        )
        .bind(state_hash)
        .fetch_optional(&self.write)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let attempt = LoginAttempt {
            state_hash: row.try_get("state_hash")?,
            provider: row.try_get("provider")?,
            nonce: Secret::new(row.try_get::<String, _>("nonce")?),
            pkce_verifier: Secret::new(row.try_get::<String, _>("pkce_verifier")?),
            return_to: row.try_get("return_to")?,
            created_at: row.try_get("created_at")?,
        };
        Ok((attempt.created_at + crate::LOGIN_ATTEMPT_SECS > now).then_some(attempt))
    }
}
