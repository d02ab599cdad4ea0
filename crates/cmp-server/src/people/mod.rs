//! People: OpenID Connect login in the browser (code flow with PKCE), the sessions it opens,
//! bearer JWTs from the same providers, and the users known from logins.
//!
//! A login's groups decide its role and owners ([`mapping`]) at that login, and a JWT's at each
//! request, so that a change at the provider counts from the next login or token. Sessions are
//! opaque random ids in an HttpOnly cookie; only their SHA-256 is stored, with a CSRF token
//! that cookie-authenticated writes must send back as a header.

pub mod cookies;
pub mod handlers;
pub mod mapping;
pub mod sessions;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cmp_api::AuthMethod;
use cmp_domain::{Clock, Role, Secret};
use cmp_oidc::{OidcError, Provider, ProviderSettings, random_token};
use cmp_store::{
    AuditAction, LoginAttempt, NewAuditEvent, NewSession, Store, StoreError, UserLogin,
};
use serde_json::json;

use crate::auth::{Caller, token_hash};
use crate::config::Config;
use crate::core::context::caller_context;
use mapping::GroupMapping;
use sessions::{DatabaseSessions, SessionBackend};

/// Logins one client address may start or finish at once, and how often one more comes back.
const LOGIN_BURST: u32 = 20;
const LOGIN_REFILL_MS: u64 = 2000;

/// The browser login's routes (limited per client address, so that a flood from one address
/// cannot fill the login table or lock others out), `/api/v1/me` and `/api/v1/users`.
pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    use tower_governor::governor::GovernorConfigBuilder;
    use utoipa_axum::routes;
    let limited = GovernorConfigBuilder::default()
        .per_millisecond(LOGIN_REFILL_MS)
        .burst_size(LOGIN_BURST)
        .finish()
        .map(|config| tower_governor::GovernorLayer::new(std::sync::Arc::new(config)));
    let login = utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(handlers::login))
        .routes(routes!(handlers::callback))
        .routes(routes!(handlers::logout));
    // The builder refuses only a zero period or burst, which the constants are not.
    let login = match limited {
        Some(layer) => login.layer(layer),
        None => login,
    };
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(handlers::providers))
        .merge(login)
        .routes(routes!(handlers::me))
        .routes(routes!(handlers::users))
}

/// Bearer JWTs kept checked at most (a flood of distinct tokens empties the memo, it does not
/// grow it).
const MAX_MEMO: usize = 10_000;

/// A session's last use is written at most this often (its idle timeout is that coarse).
const TOUCH_EVERY_SECS: i64 = 60;

/// What went wrong with a login, a session or a bearer JWT.
#[derive(Debug, thiserror::Error)]
pub enum PeopleError {
    /// No provider of that name is configured.
    #[error("no identity provider named {0:?} is configured")]
    UnknownProvider(String),
    /// No provider is configured at all.
    #[error("no identity provider is configured (auth.oidc.providers)")]
    NoProviders,
    /// A bad `return_to`, or a callback without its parameters.
    #[error("{0}")]
    BadRequest(String),
    /// The credential was checked and refused; the text says why.
    #[error("{0}")]
    Refused(String),
    /// The person is known to the provider, but their groups give no role in CMP.
    #[error("{0}")]
    NoRole(String),
    /// A write authenticated by the session cookie came without its CSRF token.
    #[error(
        "a write with a session cookie needs the X-CSRF-Token header (its value is in the \
         cmp_csrf cookie and in GET /api/v1/me)"
    )]
    CsrfMissing,
    /// The provider could not be reached.
    #[error("{0}")]
    ProviderUnavailable(String),
    /// Where sessions are kept (Redis) does not answer.
    #[error("{0}")]
    SessionsUnavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<OidcError> for PeopleError {
    fn from(e: OidcError) -> Self {
        match e {
            OidcError::Unavailable(_) | OidcError::BadProvider(_) => {
                PeopleError::ProviderUnavailable(e.to_string())
            }
            OidcError::InvalidToken(_) | OidcError::Refused(_) => {
                PeopleError::Refused(e.to_string())
            }
        }
    }
}

/// How a caller proved who it is: for `/api/v1/me`, on the request beside its [`Caller`].
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub method: AuthMethod,
    pub email: Option<String>,
    /// For a session: its CSRF token and absolute end.
    pub session: Option<(String, i64)>,
}

impl Authenticated {
    pub fn by(method: AuthMethod) -> Authenticated {
        Authenticated { method, email: None, session: None }
    }
}

/// One configured provider.
pub struct ConfiguredProvider {
    pub name: String,
    pub oidc: Provider,
    pub mapping: GroupMapping,
    pub groups_claim: String,
    pub cli_client_id: Option<String>,
}

/// A finished login: the cookies to set and where to send the browser.
pub struct LoggedIn {
    pub session_id: String,
    pub csrf_token: String,
    pub return_to: String,
    pub max_age_secs: i64,
}

/// Logins, sessions and bearer JWTs.
pub struct People {
    providers: Vec<ConfiguredProvider>,
    store: Arc<dyn Store>,
    sessions: Arc<dyn SessionBackend>,
    clock: Arc<dyn Clock>,
    idle_secs: i64,
    absolute_secs: i64,
    /// Cookies are `Secure` when CMP serves HTTPS.
    pub secure_cookies: bool,
    public_url: String,
    /// Bearer JWTs checked lately, by SHA-256: a client sends the same token for an hour, and
    /// its signature check and claim mapping need not run on every call. Kept for
    /// `http.lookup_cache_ms`, as API tokens are, and never past the token's `exp`.
    memo: std::sync::Mutex<HashMap<String, Memo>>,
    memo_for: Duration,
}

/// A checked bearer JWT.
struct Memo {
    until: std::time::Instant,
    exp: i64,
    caller: Caller,
    details: Authenticated,
}

impl People {
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<People, OidcError> {
        let public_url = config.auth_public_url();
        let mut providers = Vec::new();
        for p in &config.auth.oidc.providers {
            let settings = ProviderSettings {
                issuer: p.issuer.clone(),
                client_id: p.client_id.clone(),
                client_secret: Some(p.client_secret.clone()).filter(|s| !s.expose().is_empty()),
                redirect_url: format!("{public_url}/auth/callback"),
                scopes: p.scopes.clone(),
                audience: p.audience.clone(),
                leeway_secs: p.leeway_secs,
                key_refetch_interval: Duration::from_secs(p.key_refetch_secs),
                timeout: Duration::from_secs(10),
            };
            providers.push(ConfiguredProvider {
                name: p.name.clone(),
                oidc: Provider::new(settings)?,
                mapping: GroupMapping { roles: p.roles.clone(), teams: p.teams.clone() },
                groups_claim: p.groups_claim.clone(),
                cli_client_id: p.cli_client_id.clone(),
            });
        }
        Ok(People {
            providers,
            sessions: Arc::new(DatabaseSessions(store.clone())),
            store,
            clock,
            idle_secs: config.auth.session_idle_minutes.saturating_mul(60),
            absolute_secs: config.auth.session_absolute_hours.saturating_mul(3600),
            secure_cookies: config.tls_enabled(),
            public_url,
            memo: std::sync::Mutex::default(),
            memo_for: Duration::from_millis(config.http.lookup_cache_ms),
        })
    }

    /// Keeps sessions and logins under way somewhere else (Redis).
    pub fn with_sessions(self, sessions: Arc<dyn SessionBackend>) -> People {
        People { sessions, ..self }
    }

    pub fn providers(&self) -> &[ConfiguredProvider] {
        &self.providers
    }

    /// Whether anyone can log in through a provider (the bootstrap token is then break-glass).
    pub fn enabled(&self) -> bool {
        !self.providers.is_empty()
    }

    fn provider(&self, name: Option<&str>) -> Result<&ConfiguredProvider, PeopleError> {
        match name {
            Some(name) => self
                .providers
                .iter()
                .find(|p| p.name == name)
                .ok_or_else(|| PeopleError::UnknownProvider(name.to_string())),
            None => self.providers.first().ok_or(PeopleError::NoProviders),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    /// Starts a login at `provider` (the first configured when `None`): the URL to send the
    /// browser to, and the `state` for the login cookie.
    pub async fn begin_login(
        &self,
        provider: Option<&str>,
        return_to: Option<&str>,
        login_hint: Option<&str>,
    ) -> Result<(String, String), PeopleError> {
        let return_to = return_to.unwrap_or("/");
        // A path of CMP's own only: an absolute or scheme-relative URL would make the login an
        // open redirect.
        let own_path = return_to.starts_with('/')
            && !return_to.starts_with("//")
            && !return_to.contains('\\')
            && return_to.len() <= 2000;
        if !own_path {
            return Err(PeopleError::BadRequest(
                "return_to must be a path on this server, such as /certificates".into(),
            ));
        }
        let provider = self.provider(provider)?;
        let start = provider.oidc.begin_login(login_hint).await?;
        let attempt = LoginAttempt {
            state_hash: token_hash(&start.state),
            provider: provider.name.clone(),
            nonce: Secret::new(start.nonce),
            pkce_verifier: Secret::new(start.pkce_verifier),
            return_to: return_to.to_string(),
            created_at: self.now(),
        };
        self.sessions.save_attempt(&attempt).await?;
        Ok((start.url, start.state))
    }

    /// Finishes a login at its callback: checks that the browser is the one that started it,
    /// trades the code, checks the ID token, maps the groups, records the user and opens a
    /// session. Nothing is written unless all of it holds.
    pub async fn finish_login(
        &self,
        state: &str,
        state_cookie: Option<&str>,
        code: &str,
    ) -> Result<LoggedIn, PeopleError> {
        let Some(cookie) = state_cookie else {
            return Err(PeopleError::Refused(
                "no login is under way in this browser (the login cookie is missing): start \
                 again at /auth/login"
                    .into(),
            ));
        };
        if cookie != state {
            return Err(PeopleError::Refused(
                "the callback's state is not this browser's login".into(),
            ));
        }
        let now = self.now();
        let attempt =
            self.sessions.take_attempt(&token_hash(state), now).await?.ok_or_else(|| {
                PeopleError::Refused(
                    "the login state is unknown, used already or expired: start again at \
                     /auth/login"
                        .into(),
                )
            })?;
        let provider = self.provider(Some(&attempt.provider))?;
        let tokens = provider.oidc.exchange_code(code, attempt.pkce_verifier.expose()).await?;
        let id_token = tokens.id_token.ok_or_else(|| {
            PeopleError::Refused("the provider answered without an ID token".into())
        })?;
        let verified =
            provider.oidc.verify_id_token(id_token.expose(), attempt.nonce.expose(), now).await?;
        let claims = verified.claims;
        let groups = claims.strings(&provider.groups_claim);
        let (role, owner_ids) = self.grant(provider, &claims.sub, &groups).await?;
        let login = UserLogin {
            provider: provider.name.clone(),
            subject: claims.sub.clone(),
            email: claims.email.clone(),
            name: claims.name.clone().or(claims.preferred_username.clone()),
            role,
            owner_ids: owner_ids.clone(),
            groups,
        };
        let caller = person(&provider.name, &claims.sub, role, owner_ids.clone());
        let ctx = caller_context(&caller, crate::state::unix_micros(self.clock.now()));
        let user = self.store.record_login(&ctx, &login).await?;
        let (session_id, csrf_token) = (random_token(), random_token());
        let session = NewSession {
            id_hash: token_hash(&session_id),
            user_id: user.id.clone(),
            csrf_token: Secret::new(csrf_token.clone()),
            role,
            owner_ids,
            created_at: now,
            expires_at: now.saturating_add(self.absolute_secs),
        };
        self.sessions.create(&session, &user).await?;
        Ok(LoggedIn {
            session_id,
            csrf_token,
            return_to: attempt.return_to,
            max_age_secs: self.absolute_secs,
        })
    }

    /// The caller of a session cookie; `write` says whether the request changes something (it
    /// then needs the CSRF token).
    pub async fn session_caller(
        &self,
        session_id: &str,
        write: bool,
        csrf_header: Option<&str>,
    ) -> Result<(Caller, Authenticated), PeopleError> {
        let id_hash = token_hash(session_id);
        let session = self.sessions.find(&id_hash).await?.ok_or_else(|| {
            PeopleError::Refused("the session is unknown or has ended: log in again".into())
        })?;
        let now = self.now();
        let ended = if now >= session.expires_at {
            Some("the session reached its absolute timeout")
        } else if now - session.last_seen_at >= self.idle_secs {
            Some("the session was idle too long")
        } else {
            None
        };
        if let Some(why) = ended {
            self.sessions.delete(&id_hash).await?;
            return Err(PeopleError::Refused(format!("{why}: log in again")));
        }
        if write && csrf_header != Some(session.csrf_token.expose().as_str()) {
            return Err(PeopleError::CsrfMissing);
        }
        if now - session.last_seen_at >= TOUCH_EVERY_SECS {
            self.sessions.touch(&id_hash, now).await?;
        }
        let caller = person(&session.provider, &session.subject, session.role, session.owner_ids);
        let details = Authenticated {
            method: AuthMethod::Session,
            email: session.email,
            session: Some((session.csrf_token.expose().clone(), session.expires_at)),
        };
        Ok((caller, details))
    }

    /// The caller of a bearer JWT from one of the providers (its `iss` says which).
    pub async fn bearer_caller(&self, token: &str) -> Result<(Caller, Authenticated), PeopleError> {
        let key = token_hash(token);
        let now = self.now();
        if let Ok(memo) = self.memo.lock()
            && let Some(m) = memo.get(&key)
            && m.until > std::time::Instant::now()
            && m.exp > now
        {
            return Ok((m.caller.clone(), m.details.clone()));
        }
        let (caller, details, exp) = self.check_bearer(token).await?;
        if !self.memo_for.is_zero()
            && let Ok(mut memo) = self.memo.lock()
        {
            if memo.len() >= MAX_MEMO {
                let at = std::time::Instant::now();
                memo.retain(|_, m| m.until > at);
                if memo.len() >= MAX_MEMO {
                    memo.clear();
                }
            }
            let until = std::time::Instant::now() + self.memo_for;
            let (c, d) = (caller.clone(), details.clone());
            memo.insert(key, Memo { until, exp, caller: c, details: d });
        }
        Ok((caller, details))
    }

    /// Checks a bearer JWT: the caller, how, and the token's `exp`.
    async fn check_bearer(&self, token: &str) -> Result<(Caller, Authenticated, i64), PeopleError> {
        let issuer = Provider::unverified_issuer(token).ok_or_else(|| {
            PeopleError::Refused("the bearer token is neither a CMP token nor a JWT".into())
        })?;
        let provider = self
            .providers
            .iter()
            .find(|p| p.oidc.settings().issuer == issuer && p.oidc.settings().audience.is_some())
            .ok_or_else(|| {
                PeopleError::Refused(
                    "the bearer JWT's issuer is not a provider whose tokens CMP accepts".into(),
                )
            })?;
        let claims = provider.oidc.verify_access_token(token, self.now()).await?.claims;
        let groups = claims.strings(&provider.groups_claim);
        let (role, owner_ids) = self.grant(provider, &claims.sub, &groups).await?;
        let caller = person(&provider.name, &claims.sub, role, owner_ids);
        let details = Authenticated { method: AuthMethod::Jwt, email: claims.email, session: None };
        Ok((caller, details, claims.exp))
    }

    /// Ends a session (audited) and says where to log out at the provider too.
    pub async fn logout(&self, session_id: &str) -> Result<Option<String>, PeopleError> {
        let id_hash = token_hash(session_id);
        let Some(session) = self.sessions.find(&id_hash).await? else {
            return Ok(None);
        };
        self.sessions.delete(&id_hash).await?;
        let caller = person(&session.provider, &session.subject, session.role, vec![]);
        let ctx = caller_context(&caller, crate::state::unix_micros(self.clock.now()));
        let event = NewAuditEvent {
            action: AuditAction::UserLoggedOut,
            entity_type: "user".into(),
            entity_id: session.user_id.clone(),
            details: json!({ "provider": session.provider, "email": session.email }),
        };
        self.store.append_audit(&ctx, &event).await?;
        let Ok(provider) = self.provider(Some(&session.provider)) else {
            return Ok(None);
        };
        // The provider being down must not keep the person logged in here.
        let back = format!("{}/", self.public_url);
        Ok(provider.oidc.end_session_url(Some(&back)).await.ok().flatten())
    }

    /// Removes ended sessions and stale logins from the database every ten minutes, until
    /// `stop` (Redis expires its own).
    pub async fn purge_ended(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut every = tokio::time::interval(Duration::from_secs(600));
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = stop.changed() => return,
            }
            let now = self.now();
            match self.store.purge_sessions(now - self.idle_secs, now).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "removed ended sessions and stale logins"),
                Err(e) => tracing::warn!(error = %e, "could not remove ended sessions"),
            }
        }
    }

    /// The role and owner ids `groups` give at `provider`.
    async fn grant(
        &self,
        provider: &ConfiguredProvider,
        subject: &str,
        groups: &[String],
    ) -> Result<(Role, Vec<String>), PeopleError> {
        let granted = provider.mapping.grant(groups).ok_or_else(|| {
            PeopleError::NoRole(format!(
                "{subject} at {} has no role in CMP: none of the groups {groups:?} (claim {}) is \
                 mapped in auth.oidc.providers.roles or .teams",
                provider.name, provider.groups_claim
            ))
        })?;
        let mut owner_ids = Vec::with_capacity(granted.teams.len());
        for team in &granted.teams {
            match self.store.get_owner(team).await {
                Ok(owner) => owner_ids.push(owner.id),
                // A team mapped before its owner exists gives nothing yet.
                Err(StoreError::NotFound { .. }) => {
                    tracing::warn!(team = %team, "a mapped team names no owner");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok((granted.role, owner_ids))
    }
}

/// The caller of a person (or a client) of a provider.
fn person(provider: &str, subject: &str, role: Role, owner_ids: Vec<String>) -> Caller {
    Caller::with_role(format!("oidc:{provider}:{subject}"), role, owner_ids)
}
