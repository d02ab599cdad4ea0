//! Where browser sessions and logins under way are kept: the database by default; Redis when
//! `redis.url` is set (so that every replica sees a logout at once without a database write
//! per request).

use std::sync::Arc;

use async_trait::async_trait;
use cmp_store::{LoginAttempt, NewSession, Store, StoreError, StoredSession};

/// Sessions and login attempts.
#[async_trait]
pub trait SessionBackend: Send + Sync {
    async fn save_attempt(&self, attempt: &LoginAttempt) -> Result<(), StoreError>;
    /// Takes a login once; `None` when unknown, taken or too old.
    async fn take_attempt(
        &self,
        state_hash: &str,
        now: i64,
    ) -> Result<Option<LoginAttempt>, StoreError>;
    async fn create(&self, session: &NewSession, user: &cmp_store::User) -> Result<(), StoreError>;
    async fn find(&self, id_hash: &str) -> Result<Option<StoredSession>, StoreError>;
    async fn touch(&self, id_hash: &str, now: i64) -> Result<(), StoreError>;
    async fn delete(&self, id_hash: &str) -> Result<bool, StoreError>;
}

/// Sessions in the database (`user_sessions`, `login_attempts`).
pub struct DatabaseSessions(pub Arc<dyn Store>);

#[async_trait]
impl SessionBackend for DatabaseSessions {
    async fn save_attempt(&self, attempt: &LoginAttempt) -> Result<(), StoreError> {
        self.0.save_login_attempt(attempt).await
    }

    async fn take_attempt(
        &self,
        state_hash: &str,
        now: i64,
    ) -> Result<Option<LoginAttempt>, StoreError> {
        self.0.take_login_attempt(state_hash, now).await
    }

    async fn create(&self, session: &NewSession, _: &cmp_store::User) -> Result<(), StoreError> {
        self.0.create_session(session).await
    }

    async fn find(&self, id_hash: &str) -> Result<Option<StoredSession>, StoreError> {
        self.0.find_session(id_hash).await
    }

    async fn touch(&self, id_hash: &str, now: i64) -> Result<(), StoreError> {
        self.0.touch_session(id_hash, now).await
    }

    async fn delete(&self, id_hash: &str) -> Result<bool, StoreError> {
        self.0.delete_session(id_hash).await
    }
}
