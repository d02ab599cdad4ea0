//! Logging in and staying logged in: the token in use, renewed at 2/3 of its lease, and a new
//! AppRole login when renewal is refused or the token has reached its maximum TTL.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use tokio::sync::Mutex;

use crate::{VaultClient, VaultError, field};

/// A token or secret id: zeroed on drop, never printed.
pub type Secret = cmp_domain::Secret<String>;

/// How the client proves who it is.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A token made for CMP; renewed while renewable, never replaced.
    Token(Secret),
    /// AppRole (`auth/<mount>/login`): tokens come and go, CMP logs in again as needed.
    AppRole { mount: String, role_id: String, secret_id: Secret },
}

/// The token in use and when to renew it.
struct Session {
    token: Secret,
    /// `None`: the token does not expire (e.g. a root token).
    lease: Option<Duration>,
    renewable: bool,
    obtained: Instant,
}

impl Session {
    fn renew_at(&self) -> Option<Instant> {
        self.lease.map(|lease| self.obtained + lease * 2 / 3)
    }

    fn expired(&self, now: Instant) -> bool {
        self.lease.is_some_and(|lease| now >= self.obtained + lease)
    }
}

pub(crate) struct Sessions {
    credentials: Credentials,
    current: Mutex<Option<Session>>,
}

/// `auth` of a login or renewal: the token, its lease and whether it renews.
fn session_of(auth: &serde_json::Value, now: Instant) -> Result<Session, VaultError> {
    let token = field(auth, "/client_token")?;
    let lease = auth["lease_duration"].as_u64().unwrap_or(0);
    Ok(Session {
        token: Secret::new(token),
        lease: (lease > 0).then(|| Duration::from_secs(lease)),
        renewable: auth["renewable"].as_bool().unwrap_or(false),
        obtained: now,
    })
}

impl Sessions {
    pub(crate) fn new(credentials: Credentials) -> Sessions {
        Sessions { credentials, current: Mutex::new(None) }
    }

    pub(crate) fn can_login(&self) -> bool {
        matches!(self.credentials, Credentials::AppRole { .. })
    }

    /// The token to use now, logging in (or learning the fixed token's lease) first if needed.
    pub(crate) async fn token(&self, client: &VaultClient) -> Result<Secret, VaultError> {
        let mut current = self.current.lock().await;
        if let Some(session) = current.as_ref()
            && !(self.can_login() && session.expired(Instant::now()))
        {
            return Ok(session.token.clone());
        }
        let session = self.start(client).await?;
        let token = session.token.clone();
        *current = Some(session);
        Ok(token)
    }

    /// Drops `token` if it is still the current one (it stopped working).
    pub(crate) async fn forget(&self, token: &Secret) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|s| &s.token == token) {
            *current = None;
        }
    }

    async fn start(&self, client: &VaultClient) -> Result<Session, VaultError> {
        let now = Instant::now();
        match &self.credentials {
            Credentials::Token(token) => {
                let answer = client
                    .send(Method::GET, "auth/token/lookup-self", None, Some(token))
                    .await
                    .map_err(|e| match e {
                        VaultError::Denied { message, .. } => VaultError::TokenInvalid(message),
                        other => other,
                    })?
                    .unwrap_or_default();
                let ttl = answer["data"]["ttl"].as_u64().unwrap_or(0);
                Ok(Session {
                    token: token.clone(),
                    lease: (ttl > 0).then(|| Duration::from_secs(ttl)),
                    renewable: answer["data"]["renewable"].as_bool().unwrap_or(false),
                    obtained: now,
                })
            }
            Credentials::AppRole { mount, role_id, secret_id } => {
                let body = json!({"role_id": role_id, "secret_id": secret_id.expose()});
                let answer = client
                    .send(Method::POST, &format!("auth/{mount}/login"), Some(&body), None)
                    .await
                    .map_err(|e| match e {
                        VaultError::Rejected { message, .. }
                        | VaultError::Denied { message, .. } => VaultError::LoginFailed(message),
                        VaultError::NotFound(_) => VaultError::LoginFailed(format!(
                            "no AppRole auth method at auth/{mount}"
                        )),
                        other => other,
                    })?
                    .unwrap_or_default();
                tracing::debug!(
                    address = client.shown_address(),
                    "logged in to Vault with AppRole"
                );
                session_of(&answer["auth"], now)
            }
        }
    }

    /// Renews the token if it is due; logs in again (AppRole) when renewal fails or the lease
    /// stops growing. Returns when to look again.
    async fn refresh(&self, client: &VaultClient) -> Duration {
        const IDLE: Duration = Duration::from_secs(60);
        let mut current = self.current.lock().await;
        let now = Instant::now();
        let Some(session) = current.as_ref() else { return IDLE };
        let Some(renew_at) = session.renew_at() else { return IDLE };
        if now < renew_at {
            return renew_at - now;
        }
        let previous = session.lease;
        let renewed = if session.renewable {
            client
                .send(Method::POST, "auth/token/renew-self", Some(&json!({})), Some(&session.token))
                .await
                .and_then(|answer| session_of(&answer.unwrap_or_default()["auth"], now))
        } else {
            Err(VaultError::TokenInvalid("the token is not renewable".into()))
        };
        // A lease that shrank has hit the token's maximum TTL: AppRole logs in afresh then, and
        // whenever renewal failed. A fixed token keeps what renewal gave.
        let shrank = |s: &Session| s.lease.zip(previous).is_some_and(|(new, old)| new < old / 2);
        let next = match renewed {
            Ok(session) if !self.can_login() || !shrank(&session) => Ok(session),
            _ if self.can_login() => self.start(client).await,
            other => other,
        };
        match next {
            Ok(session) => {
                let wait = session.renew_at().map_or(IDLE, |at| at.saturating_duration_since(now));
                *current = Some(session);
                wait
            }
            Err(e) => {
                tracing::warn!(address = client.shown_address(), error = %e, "Vault token renewal failed");
                Duration::from_secs(5)
            }
        }
    }
}

impl VaultClient {
    /// Renews the token in the background before it expires, for as long as the client lives.
    pub fn spawn_renewal(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak: Weak<VaultClient> = Arc::downgrade(self);
        tokio::spawn(async move {
            // Start the session now, so that a token nobody uses yet is renewed too.
            if let Some(client) = weak.upgrade()
                && let Err(e) = client.sessions.token(&client).await
            {
                tracing::debug!(address = client.shown_address(), error = %e, "Vault not ready yet");
            }
            let mut wait = Duration::from_secs(1);
            loop {
                tokio::time::sleep(wait.max(Duration::from_millis(500))).await;
                let Some(client) = weak.upgrade() else { return };
                wait = client.sessions.refresh(&client).await;
            }
        })
    }
}
