//! Authentication and authorization: bearer API tokens, agents' client certificates, and the
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
use crate::serve::PeerCertificate;
use crate::state::AppState;

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

    pub fn get(&self, method: &Method, path: &str) -> Option<&Access> {
        self.rules.get(&(method.clone(), path.to_string()))
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
    // Copy the header out: a borrowed request (whose body is not Sync) cannot cross an await.
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Agents authenticate by their client certificate: on the routes for agents, and on any
    // other when no token is given (to be told it is forbidden, not unauthenticated).
    let peer = request.extensions().get::<PeerCertificate>().cloned();
    let as_agent = allowed.contains(&Role::Agent) || authorization.is_none();
    let caller = match peer.filter(|_| as_agent) {
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
            caller
        }
        None => authenticate(&state, authorization.as_deref()).await?,
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

async fn authenticate(state: &AppState, authorization: Option<&str>) -> Result<Caller, ApiError> {
    let header = authorization.ok_or(ApiError::Unauthorized)?;
    let secret = bearer_credentials(header)
        .filter(|s| s.starts_with(TOKEN_PREFIX))
        .ok_or(ApiError::Unauthorized)?;
    let now = state.clock.now().unix_timestamp();
    let token = state
        .store
        .find_token_by_hash(&token_hash(secret), now)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let scope = match token.role {
        Role::Admin | Role::Security => Scope::All,
        Role::Developer | Role::Agent => Scope::Owners(token.owner_ids.clone()),
    };
    Ok(Caller { actor: format!("token:{}", token.id), role: token.role, scope })
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
