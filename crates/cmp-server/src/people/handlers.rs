//! `/auth/*` (the browser login) and `/api/v1/me`, `/api/v1/users`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cmp_api::{AuthProvider, Me, Problem, User};
use serde::Deserialize;
use utoipa::IntoParams;

use super::Authenticated;
use super::cookies::{self, CookieSpec};
use crate::auth::Caller;
use crate::config::ServerRole;
use crate::core::wire::time_of;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::state::AppState;

/// `GET /auth/login` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LoginQuery {
    /// The provider's name; default: the first configured.
    provider: Option<String>,
    /// Where to go after the login: a path on this server (default `/`).
    return_to: Option<String>,
    /// Passed on to the provider (`login_hint`).
    login_hint: Option<String>,
}

/// `GET /auth/callback` parameters, as the provider sends them.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    /// The provider's refusal (`access_denied`, ...).
    error: Option<String>,
    error_description: Option<String>,
}

/// The identity providers one can log in with.
#[utoipa::path(get, path = "/auth/providers", tag = "auth",
    responses((status = 200, body = Vec<AuthProvider>)))]
pub async fn providers(State(state): State<AppState>) -> Json<Vec<AuthProvider>> {
    let base = state.config.auth_public_url();
    Json(
        state
            .people
            .providers()
            .iter()
            .map(|p| AuthProvider {
                name: p.name.clone(),
                issuer: p.oidc.settings().issuer.clone(),
                login_url: format!("{base}/auth/login?provider={}", p.name),
                cli_client_id: p.cli_client_id.clone(),
                audience: p.oidc.settings().audience.clone(),
            })
            .collect(),
    )
}

/// Starts a browser login: redirects to the provider, with a login cookie that ties the
/// callback to this browser.
#[utoipa::path(get, path = "/auth/login", tag = "auth", params(LoginQuery),
    responses((status = 303, description = "to the provider"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn login(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<LoginQuery>,
) -> ApiResult<Response> {
    let (url, login_state) = state
        .people
        .begin_login(
            query.provider.as_deref(),
            query.return_to.as_deref(),
            query.login_hint.as_deref(),
        )
        .await?;
    let cookie = CookieSpec {
        name: cookies::LOGIN,
        value: &login_state,
        path: "/auth",
        max_age_secs: Some(cmp_store::LOGIN_ATTEMPT_SECS),
        http_only: true,
        secure: state.people.secure_cookies,
    };
    Ok(redirect(&url, &[cookie]))
}

/// The provider sends the browser back here: the session starts, and the browser goes on to
/// where the login began. A refused login is a problem document, or, for a browser (`Accept:
/// text/html`) on role `all`, a 303 to the dashboard with the problem's detail in `login_error`.
#[utoipa::path(get, path = "/auth/callback", tag = "auth", params(CallbackQuery),
    responses((status = 303, description = "logged in: to `return_to`, with the session cookie; or refused, for a browser: to `/?login_error=<detail>`"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<CallbackQuery>,
) -> ApiResult<Response> {
    match finish_callback(&state, &headers, &query).await {
        // A person in a browser sees why on the dashboard's sign-in page, not as raw JSON.
        Err(e) if state.config.role == ServerRole::All && wants_html(&headers) => {
            let problem = e.to_problem();
            let detail = problem.detail.unwrap_or(problem.title);
            let query = serde_urlencoded::to_string([("login_error", detail.as_str())])
                .map_err(|e| ApiError::Internal(format!("encoding a login error: {e}")))?;
            let secure = state.people.secure_cookies;
            Ok(redirect(&format!("/?{query}"), &[removed(cookies::LOGIN, "/auth", secure)]))
        }
        outcome => outcome,
    }
}

/// Whether the caller is a browser navigating (it asks for HTML), not a script.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

async fn finish_callback(
    state: &AppState,
    headers: &HeaderMap,
    query: &CallbackQuery,
) -> ApiResult<Response> {
    if let Some(error) = &query.error {
        let description = query.error_description.as_deref().unwrap_or("no description");
        return Err(ApiError::BadCredentials(crate::error::cut(
            &format!("the identity provider refused the login: {error} ({description})"),
            crate::error::MAX_DETAIL_CHARS,
        )));
    }
    let (Some(login_state), Some(code)) = (&query.state, &query.code) else {
        return Err(ApiError::bad_request("the callback needs state and code"));
    };
    let login_cookie = cookies::read(headers, cookies::LOGIN);
    let done = state.people.finish_login(login_state, login_cookie.as_deref(), code).await?;
    let secure = state.people.secure_cookies;
    let set = [
        CookieSpec {
            name: cookies::SESSION,
            value: &done.session_id,
            path: "/",
            max_age_secs: Some(done.max_age_secs),
            http_only: true,
            secure,
        },
        CookieSpec {
            name: cookies::CSRF,
            value: &done.csrf_token,
            path: "/",
            max_age_secs: Some(done.max_age_secs),
            http_only: false,
            secure,
        },
        removed(cookies::LOGIN, "/auth", secure),
    ];
    Ok(redirect(&done.return_to, &set))
}

/// Ends the session here and, where the provider has an end-session endpoint, sends the
/// browser there to log out too.
#[utoipa::path(get, path = "/auth/logout", tag = "auth",
    responses((status = 303, description = "to the provider's logout, or to /"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let mut to = None;
    if let Some(session) = cookies::read(&headers, cookies::SESSION) {
        to = state.people.logout(&session).await?;
    }
    let secure = state.people.secure_cookies;
    let clear = [removed(cookies::SESSION, "/", secure), removed(cookies::CSRF, "/", secure)];
    Ok(redirect(to.as_deref().unwrap_or("/"), &clear))
}

/// Who is calling, with what role and owners; for a session, its CSRF token.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth",
    responses((status = 200, body = Me)),
    security(("bearer" = ["admin", "security", "developer", "agent"]))
)]
pub async fn me(caller: Caller, details: Option<axum::Extension<Arc<Authenticated>>>) -> Json<Me> {
    let details = details.map(|d| Authenticated::clone(&d.0));
    let details = details.unwrap_or(Authenticated::by(cmp_api::AuthMethod::ApiToken));
    let owners = match caller.scope {
        cmp_store::Scope::All => Vec::new(),
        cmp_store::Scope::Owners(ids) => ids,
    };
    let (csrf_token, session_expires_at) = match details.session {
        Some((csrf, ends)) => (Some(csrf), Some(time_of(ends))),
        None => (None, None),
    };
    Json(Me {
        actor: caller.actor,
        role: caller.role,
        owners,
        auth: details.method,
        email: details.email,
        csrf_token,
        session_expires_at,
    })
}

/// Everyone who logged in through a provider, with what their last login gave.
#[utoipa::path(get, path = "/api/v1/users", tag = "auth",
    responses((status = 200, body = Vec<User>)),
    security(("bearer" = ["admin"]))
)]
pub async fn users(State(state): State<AppState>) -> ApiResult<Json<Vec<User>>> {
    let users = state.store.list_users().await?;
    Ok(Json(
        users
            .into_iter()
            .map(|u| User {
                id: u.id,
                provider: u.provider,
                subject: u.subject,
                email: u.email,
                name: u.name,
                role: u.role,
                owners: u.owner_ids,
                groups: u.groups,
                created_at: time_of(u.created_at),
                last_login_at: time_of(u.last_login_at),
            })
            .collect(),
    ))
}

fn removed<'a>(name: &'a str, path: &'a str, secure: bool) -> CookieSpec<'a> {
    CookieSpec { name, value: "", path, max_age_secs: Some(0), http_only: true, secure }
}

/// A 303 to `to`, setting `cookies`.
fn redirect(to: &str, cookies: &[CookieSpec<'_>]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(location) = header::HeaderValue::from_str(to) {
        headers.insert(header::LOCATION, location);
    }
    for cookie in cookies {
        if let Some(value) = cookie.header() {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}
