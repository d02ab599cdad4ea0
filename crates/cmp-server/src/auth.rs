//! Authentication and authorization: bearer API tokens, bearer JWTs and browser sessions of
//! OpenID Connect providers (through [`crate::people`]), agents' client certificates, and the
//! roles each route admits.
//!
//! The roles a route admits are declared once, in its `#[utoipa::path(security(...))]`. At start
//! the server reads them back from the OpenAPI document into a [`RoutePolicies`] table, and
//! [`authorize`] enforces that table for every request by its matched route: the document and
//! the enforcement cannot disagree, and a route missing from the table is refused.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use cmp_domain::Role;
use cmp_store::Scope;
use rand::RngCore;
use sha2::{Digest, Sha256};
use utoipa::openapi::OpenApi;

use crate::error::ApiError;
use crate::issuer::agents::AgentCaller;
use crate::people::{Authenticated, cookies};
use crate::serve::PeerCertificate;
use crate::state::AppState;
use cmp_api::AuthMethod;

/// Name of the security scheme in the OpenAPI document.
pub const BEARER: &str = "bearer";
/// Prefix of every API token, so that leaked tokens are easy to recognise and scan for.
pub const TOKEN_PREFIX: &str = "cmp_";

/// Who is calling, once authenticated.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `token:<id>` for API tokens.
    pub actor: String,
    pub role: Role,
    /// What certificates the caller may see.
    pub scope: Scope,
}

impl Caller {
    /// A caller of `role`: admins and security see everything, others the owners given.
    pub fn with_role(actor: String, role: Role, owner_ids: Vec<String>) -> Caller {
        let scope = match role {
            Role::Admin | Role::Security => Scope::All,
            Role::Developer | Role::Agent => Scope::Owners(owner_ids),
        };
        Caller { actor, role, scope }
    }

    /// Whether the caller may act for `owner_id`.
    pub fn may_act_for(&self, owner_id: &str) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Owners(ids) => ids.iter().any(|id| id == owner_id),
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No authentication (health, metrics, the OpenAPI document).
    Public,
    /// An authenticated caller holding one of these roles.
    Roles(Vec<Role>),
}

/// Access rules by (method, route pattern), read from the OpenAPI document.
#[derive(Debug, Default)]
pub struct RoutePolicies {
    rules: HashMap<(Method, String), Access>,
}

impl RoutePolicies {
    /// Reads each operation's security requirement: none means public; `bearer` with role
    /// names as scopes means those roles.
    pub fn from_openapi(doc: &OpenApi) -> Result<RoutePolicies, String> {
        let mut rules = HashMap::new();
        let doc_json = serde_json::to_value(doc).map_err(|e| e.to_string())?;
        let paths = doc_json["paths"].as_object().cloned().unwrap_or_default();
        for (path, item) in paths {
            let Some(ops) = item.as_object() else {
                continue;
            };
            for (method, op) in ops {
                let Ok(method) = Method::from_bytes(method.to_uppercase().as_bytes()) else {
                    continue;
                };
                let access = match op.get("security").and_then(|s| s.as_array()) {
                    None => Access::Public,
                    Some(reqs) => {
                        let mut roles = Vec::new();
                        for req in reqs {
                            for name in req[BEARER].as_array().into_iter().flatten() {
                                let name = name.as_str().unwrap_or_default();
                                roles.push(Role::parse(name).ok_or_else(|| {
                                    format!("{method} {path}: unknown role {name:?}")
                                })?);
                            }
                        }
                        if roles.is_empty() {
                            return Err(format!("{method} {path}: security without roles"));
                        }
                        Access::Roles(roles)
                    }
                };
                rules.insert((method, path.clone()), access);
            }
        }
        Ok(RoutePolicies { rules })
    }

    /// The rule of the route `path`. A route that takes the rest of the path (`{*name}`)
    /// follows the rule of the one segment it is documented with (`{name}`).
    pub fn get(&self, method: &Method, path: &str) -> Option<&Access> {
        self.rules.get(&(method.clone(), path.to_string())).or_else(|| {
            let documented = path.replace("{*", "{");
            (documented != path).then(|| self.rules.get(&(method.clone(), documented))).flatten()
        })
    }
}

/// Makes a new token secret: the prefix and 32 random bytes, URL-safe base64.
pub fn new_token_secret() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// What is stored of a token: its SHA-256. Tokens are 256-bit random, so no slow hash is needed.
pub fn token_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Middleware: finds the route's access rule, authenticates, checks the role, and hands the
/// [`Caller`] to the handler as a request extension.
pub async fn authorize(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(matched) = request.extensions().get::<MatchedPath>().cloned() else {
        // Fallback routes (404/405) carry no matched path; they reveal nothing.
        return Ok(next.run(request).await);
    };
    // HEAD is served by the GET route and follows its rule.
    let method =
        if request.method() == Method::HEAD { Method::GET } else { request.method().clone() };
    let access =
        state.policies.get(&method, matched.as_str()).cloned().ok_or_else(|| {
            ApiError::Internal(format!("no access rule for {}", matched.as_str()))
        })?;
    let Access::Roles(allowed) = access else {
        return Ok(next.run(request).await);
    };
    // Copy the credentials out: a borrowed request (whose body is not Sync) cannot cross an
    // await.
    let presented = Presented::of(&request);
    // Agents authenticate by their client certificate: on the routes for agents, and on any
    // other when nothing else is presented (to be told it is forbidden, not unauthenticated).
    let peer = request.extensions().get::<PeerCertificate>().cloned();
    let as_agent = allowed.contains(&Role::Agent) || presented.is_empty();
    let (caller, details) = match peer.filter(|_| as_agent) {
        Some(peer) => {
            let agent = state
                .store
                .find_agent_by_fingerprint(&peer.fingerprint)
                .await?
                .ok_or(ApiError::Unauthorized)?;
            // The first call with a renewed certificate retires the one it replaced.
            if agent.previous_fingerprint.is_some() && agent.cert_fingerprint == *peer.fingerprint {
                state.store.forget_previous_identity(&agent.id).await?;
            }
            let caller = crate::issuer::fleet::agent_caller(&agent);
            let (presented, public_key) = (peer.fingerprint.clone(), peer.public_key.clone());
            let agent = AgentCaller { agent: Arc::new(agent), presented, public_key };
            request.extensions_mut().insert(agent);
            (caller, Authenticated::by(AuthMethod::AgentCertificate))
        }
        // Boxed: people's logins need far more room than an agent's lookup, and every held
        // agent poll would otherwise keep that room for its whole wait.
        None => Box::pin(authenticate(&state, presented, &method)).await?,
    };
    if !allowed.contains(&caller.role) {
        return Err(ApiError::Forbidden(format!(
            "{} {} needs the role {}; this caller has the role {}",
            method,
            matched.as_str(),
            allowed.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" or "),
            caller.role.as_str()
        )));
    }
    let actor = Actor(caller.actor.clone());
    request.extensions_mut().insert(Arc::new(caller));
    request.extensions_mut().insert(Arc::new(details));
    let mut response = next.run(request).await;
    response.extensions_mut().insert(actor);
    Ok(response)
}

/// Who made a request, on its response, for the request log.
#[derive(Debug, Clone)]
pub struct Actor(pub String);

/// The credentials of an `Authorization: Bearer ...` header; the scheme is matched without
/// regard to case (RFC 7235).
fn bearer_credentials(header: &str) -> Option<&str> {
    let (scheme, credentials) = header.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| credentials.trim())
}

/// The credentials a request carries, copied out of it.
struct Presented {
    authorization: Option<String>,
    session: Option<String>,
    csrf: Option<String>,
}

impl Presented {
    fn of(request: &Request) -> Presented {
        let headers = request.headers();
        let text = |name: &str| headers.get(name)?.to_str().ok().map(str::to_owned);
        Presented {
            authorization: text(header::AUTHORIZATION.as_str()),
            session: cookies::read(headers, cookies::SESSION).filter(|s| !s.is_empty()),
            csrf: text(cookies::CSRF_HEADER),
        }
    }

    fn is_empty(&self) -> bool {
        self.authorization.is_none() && self.session.is_none()
    }
}

/// A bearer token (an API token or a provider's JWT) wins over a session cookie: scripts that
/// send one mean it.
async fn authenticate(
    state: &AppState,
    presented: Presented,
    method: &Method,
) -> Result<(Caller, Authenticated), ApiError> {
    let Some(header) = presented.authorization else {
        let session = presented.session.ok_or(ApiError::Unauthorized)?;
        let write = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        let found = state.people.session_caller(&session, write, presented.csrf.as_deref()).await?;
        return Ok(found);
    };
    let credentials = bearer_credentials(&header).ok_or(ApiError::Unauthorized)?;
    if !credentials.starts_with(TOKEN_PREFIX) {
        if !state.people.enabled() {
            return Err(ApiError::Unauthorized);
        }
        return Ok(state.people.bearer_caller(credentials).await?);
    }
    let caller = api_token_caller(state, credentials).await?;
    Ok((caller, Authenticated::by(AuthMethod::ApiToken)))
}

async fn api_token_caller(state: &AppState, secret: &str) -> Result<Caller, ApiError> {
    let now = state.clock.now().unix_timestamp();
    let token = state
        .store
        .find_token_by_hash(&token_hash(secret), now)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let caller =
        Caller::with_role(format!("token:{}", token.id), token.role, token.owner_ids.clone());
    // With single sign-on in place, the bootstrap token is the way in when the provider is
    // down: every use is on the record.
    if state.people.enabled() && crate::is_bootstrap_token(&token) {
        let event = cmp_store::NewAuditEvent {
            action: cmp_store::AuditAction::BreakGlassUsed,
            entity_type: "api_token".into(),
            entity_id: token.id.clone(),
            details: serde_json::json!({ "token": token.name }),
        };
        state.store.append_audit(&state.audit_context(&caller), &event).await?;
    }
    Ok(caller)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for header in ["Bearer cmp_x", "bearer cmp_x", "BEARER cmp_x", "bEaReR  cmp_x "] {
            assert_eq!(bearer_credentials(header), Some("cmp_x"), "{header}");
        }
        assert_eq!(bearer_credentials("Basic cmp_x"), None);
        assert_eq!(bearer_credentials("Bearercmp_x"), None);
    }

    #[test]
    fn token_secrets_are_random_and_prefixed() {
        let a = new_token_secret();
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() > 40);
        assert_ne!(a, new_token_secret());
        assert_eq!(token_hash(&a).len(), 64);
    }
}
