//! Where browser sessions and logins under way are kept: the database by default; Redis when
//! `redis.url` is set, so that replicas share them without a database write per login and a
//! logout ends the session on every replica at once.

use std::sync::Arc;

use async_trait::async_trait;
use cmp_domain::{Role, Secret};
use cmp_store::{LoginAttempt, NewSession, Store, StoredSession, User};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use super::PeopleError;

/// Sessions and login attempts.
#[async_trait]
pub trait SessionBackend: Send + Sync {
    async fn save_attempt(&self, attempt: &LoginAttempt) -> Result<(), PeopleError>;
    /// Takes a login once; `None` when unknown, taken or too old.
    async fn take_attempt(
        &self,
        state_hash: &str,
        now: i64,
    ) -> Result<Option<LoginAttempt>, PeopleError>;
    async fn create(&self, session: &NewSession, user: &User) -> Result<(), PeopleError>;
    async fn find(&self, id_hash: &str) -> Result<Option<StoredSession>, PeopleError>;
    async fn touch(&self, id_hash: &str, now: i64) -> Result<(), PeopleError>;
    async fn delete(&self, id_hash: &str) -> Result<bool, PeopleError>;
}

/// Sessions in the database (`user_sessions`, `login_attempts`).
pub struct DatabaseSessions(pub Arc<dyn Store>);

#[async_trait]
impl SessionBackend for DatabaseSessions {
    async fn save_attempt(&self, attempt: &LoginAttempt) -> Result<(), PeopleError> {
        Ok(self.0.save_login_attempt(attempt).await?)
    }

    async fn take_attempt(
        &self,
        state_hash: &str,
        now: i64,
    ) -> Result<Option<LoginAttempt>, PeopleError> {
        Ok(self.0.take_login_attempt(state_hash, now).await?)
    }

    async fn create(&self, session: &NewSession, _: &User) -> Result<(), PeopleError> {
        Ok(self.0.create_session(session).await?)
    }

    async fn find(&self, id_hash: &str) -> Result<Option<StoredSession>, PeopleError> {
        Ok(self.0.find_session(id_hash).await?)
    }

    async fn touch(&self, id_hash: &str, now: i64) -> Result<(), PeopleError> {
        Ok(self.0.touch_session(id_hash, now).await?)
    }

    async fn delete(&self, id_hash: &str) -> Result<bool, PeopleError> {
        Ok(self.0.delete_session(id_hash).await?)
    }
}

/// Sessions in Redis: a hash per session (`cmp:session:<id hash>`: the session as JSON, and
/// its last use apart so that marking it used rewrites one field), expiring at the session's
/// absolute end; logins under way as strings expiring with their time limit.
pub struct RedisSessions {
    redis: ConnectionManager,
}

/// A session as kept in Redis.
#[derive(Serialize, Deserialize)]
struct SessionRecord {
    user_id: String,
    provider: String,
    subject: String,
    email: Option<String>,
    csrf_token: Secret<String>,
    role: Role,
    owner_ids: Vec<String>,
    created_at: i64,
    expires_at: i64,
}

/// A login under way as kept in Redis.
#[derive(Serialize, Deserialize)]
struct AttemptRecord {
    provider: String,
    nonce: Secret<String>,
    pkce_verifier: Secret<String>,
    return_to: String,
    created_at: i64,
}

/// Marks a session used only if it still exists: a plain HSET after a logout elsewhere would
/// bring back a session with no data and no expiry.
const TOUCH_IF_EXISTS: &str = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HSET', KEYS[1], 'seen', ARGV[1]) end return 0";

fn session_key(id_hash: &str) -> String {
    format!("cmp:session:{id_hash}")
}

fn attempt_key(state_hash: &str) -> String {
    format!("cmp:login:{state_hash}")
}

fn unavailable(e: redis::RedisError) -> PeopleError {
    PeopleError::SessionsUnavailable(format!("Redis: {e}"))
}

fn corrupt(e: serde_json::Error) -> PeopleError {
    PeopleError::SessionsUnavailable(format!("a record in Redis is not readable: {e}"))
}

impl RedisSessions {
    /// Connects (and keeps reconnecting) to `url`.
    pub async fn connect(url: &str) -> Result<RedisSessions, redis::RedisError> {
        let client = redis::Client::open(url)?;
        Ok(RedisSessions { redis: ConnectionManager::new(client).await? })
    }
}

#[async_trait]
impl SessionBackend for RedisSessions {
    async fn save_attempt(&self, attempt: &LoginAttempt) -> Result<(), PeopleError> {
        let record = AttemptRecord {
            provider: attempt.provider.clone(),
            nonce: attempt.nonce.clone(),
            pkce_verifier: attempt.pkce_verifier.clone(),
            return_to: attempt.return_to.clone(),
            created_at: attempt.created_at,
        };
        let json = serde_json::to_string(&record).map_err(corrupt)?;
        let ttl = u64::try_from(cmp_store::LOGIN_ATTEMPT_SECS).unwrap_or(600);
        let mut redis = self.redis.clone();
        let () =
            redis.set_ex(attempt_key(&attempt.state_hash), json, ttl).await.map_err(unavailable)?;
        Ok(())
    }

    async fn take_attempt(
        &self,
        state_hash: &str,
        now: i64,
    ) -> Result<Option<LoginAttempt>, PeopleError> {
        let mut redis = self.redis.clone();
        // GETDEL: of two callbacks with the same state, only one gets it.
        let json: Option<String> =
            redis.get_del(attempt_key(state_hash)).await.map_err(unavailable)?;
        let Some(json) = json else {
            return Ok(None);
        };
        let record: AttemptRecord = serde_json::from_str(&json).map_err(corrupt)?;
        let attempt = LoginAttempt {
            state_hash: state_hash.to_string(),
            provider: record.provider,
            nonce: record.nonce,
            pkce_verifier: record.pkce_verifier,
            return_to: record.return_to,
            created_at: record.created_at,
        };
        Ok((attempt.created_at + cmp_store::LOGIN_ATTEMPT_SECS > now).then_some(attempt))
    }

    async fn create(&self, session: &NewSession, user: &User) -> Result<(), PeopleError> {
        let record = SessionRecord {
            user_id: user.id.clone(),
            provider: user.provider.clone(),
            subject: user.subject.clone(),
            email: user.email.clone(),
            csrf_token: session.csrf_token.clone(),
            role: session.role,
            owner_ids: session.owner_ids.clone(),
            created_at: session.created_at,
            expires_at: session.expires_at,
        };
        let json = serde_json::to_string(&record).map_err(corrupt)?;
        let key = session_key(&session.id_hash);
        let mut redis = self.redis.clone();
        let () = redis::pipe()
            .atomic()
            .hset_multiple(&key, &[("data", json), ("seen", session.created_at.to_string())])
            .ignore()
            .expire_at(&key, session.expires_at)
            .ignore()
            .query_async(&mut redis)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn find(&self, id_hash: &str) -> Result<Option<StoredSession>, PeopleError> {
        let mut redis = self.redis.clone();
        let (json, seen): (Option<String>, Option<i64>) = redis::cmd("HMGET")
            .arg(session_key(id_hash))
            .arg("data")
            .arg("seen")
            .query_async(&mut redis)
            .await
            .map_err(unavailable)?;
        let (Some(json), Some(seen)) = (json, seen) else {
            return Ok(None);
        };
        let r: SessionRecord = serde_json::from_str(&json).map_err(corrupt)?;
        Ok(Some(StoredSession {
            user_id: r.user_id,
            provider: r.provider,
            subject: r.subject,
            email: r.email,
            csrf_token: r.csrf_token,
            role: r.role,
            owner_ids: r.owner_ids,
            created_at: r.created_at,
            last_seen_at: seen,
            expires_at: r.expires_at,
        }))
    }

    async fn touch(&self, id_hash: &str, now: i64) -> Result<(), PeopleError> {
        let mut redis = self.redis.clone();
        let _: i64 = redis::cmd("EVAL")
            .arg(TOUCH_IF_EXISTS)
            .arg(1)
            .arg(session_key(id_hash))
            .arg(now)
            .query_async(&mut redis)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn delete(&self, id_hash: &str) -> Result<bool, PeopleError> {
        let mut redis = self.redis.clone();
        let removed: i64 = redis.del(session_key(id_hash)).await.map_err(unavailable)?;
        Ok(removed > 0)
    }
}
