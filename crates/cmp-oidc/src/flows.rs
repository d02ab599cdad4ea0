//! The grants CMP uses: authorization code with PKCE (the browser), and the device
//! authorization grant (the command line).

use base64::Engine;
use cmp_domain::Secret;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{OidcError, unavailable};
use crate::provider::Provider;
use crate::random_token;

/// A login on its way to the provider: send the browser to `url`, keep the rest on the server
/// until the callback.
pub struct LoginStart {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// What a token endpoint answers.
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    pub access_token: Secret<String>,
    #[serde(default)]
    pub id_token: Option<Secret<String>>,
    #[serde(default)]
    pub refresh_token: Option<Secret<String>>,
    #[serde(default)]
    pub expires_in: Option<i64>,
    #[serde(default)]
    pub token_type: Option<String>,
}

/// A device login under way: show `user_code` and `verification_uri` to the person, then
/// poll with `device_code`.
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceLogin {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    pub expires_in: i64,
    /// Seconds between polls (RFC 8628 says 5 when the provider does not say).
    #[serde(default = "default_interval")]
    pub interval: u64,
}

fn default_interval() -> u64 {
    5
}

/// One poll of a device login.
#[derive(Debug)]
pub enum DevicePoll {
    /// The person has not finished yet: poll again after the interval.
    Pending,
    /// Polling too fast: add 5 seconds to the interval (RFC 8628, 3.5).
    SlowDown,
    Done(TokenResponse),
}

/// An OAuth error answer.
#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl Provider {
    /// Starts a browser login: the provider's authorization URL with a fresh `state`, `nonce`
    /// and PKCE challenge (S256). `login_hint` is passed on when given.
    pub async fn begin_login(&self, login_hint: Option<&str>) -> Result<LoginStart, OidcError> {
        let metadata = self.metadata().await?;
        let (state, nonce, pkce_verifier) = (random_token(), random_token(), random_token());
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(pkce_verifier.as_bytes()));
        let mut url = reqwest::Url::parse(&metadata.authorization_endpoint).map_err(|e| {
            OidcError::BadProvider(format!("authorization endpoint is not a URL: {e}"))
        })?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.settings.client_id)
                .append_pair("redirect_uri", &self.settings.redirect_url)
                .append_pair("scope", &self.scope())
                .append_pair("state", &state)
                .append_pair("nonce", &nonce)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            if let Some(hint) = login_hint {
                query.append_pair("login_hint", hint);
            }
        }
        Ok(LoginStart { url: url.into(), state, nonce, pkce_verifier })
    }

    /// Trades the callback's code (with the login's PKCE verifier) for tokens.
    pub async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &str,
    ) -> Result<TokenResponse, OidcError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.settings.redirect_url.as_str()),
            ("code_verifier", pkce_verifier),
            ("client_id", self.settings.client_id.as_str()),
        ];
        match self.token_call(&form, true).await? {
            Ok(tokens) => Ok(tokens),
            Err(refused) => Err(OidcError::Refused(refused.to_string())),
        }
    }

    /// Where to send the browser to log out at the provider too (RP-initiated logout), when
    /// it has an end-session endpoint.
    pub async fn end_session_url(
        &self,
        post_logout_redirect: Option<&str>,
    ) -> Result<Option<String>, OidcError> {
        let metadata = self.metadata().await?;
        let Some(endpoint) = &metadata.end_session_endpoint else {
            return Ok(None);
        };
        let mut url = reqwest::Url::parse(endpoint)
            .map_err(|e| OidcError::BadProvider(format!("end-session endpoint: {e}")))?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("client_id", &self.settings.client_id);
            if let Some(back) = post_logout_redirect {
                query.append_pair("post_logout_redirect_uri", back);
            }
        }
        Ok(Some(url.into()))
    }

    /// Starts a device login for a public client (`client_id`, no secret).
    pub async fn start_device_login(&self, client_id: &str) -> Result<DeviceLogin, OidcError> {
        let metadata = self.metadata().await?;
        let endpoint = metadata.device_authorization_endpoint.clone().ok_or_else(|| {
            OidcError::BadProvider("the provider offers no device authorization".into())
        })?;
        let response = self
            .http
            .post(&endpoint)
            .form(&[("client_id", client_id), ("scope", self.scope().as_str())])
            .send()
            .await
            .map_err(|e| unavailable("device authorization", e))?;
        if !response.status().is_success() {
            return Err(OidcError::Refused(error_text(response).await));
        }
        response
            .json()
            .await
            .map_err(|e| OidcError::BadProvider(format!("device authorization: {e}")))
    }

    /// Polls the token endpoint once for a device login.
    pub async fn poll_device_login(
        &self,
        client_id: &str,
        device_code: &str,
    ) -> Result<DevicePoll, OidcError> {
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code),
            ("client_id", client_id),
        ];
        match self.token_call(&form, false).await? {
            Ok(tokens) => Ok(DevicePoll::Done(tokens)),
            Err(answer) if answer.error == "authorization_pending" => Ok(DevicePoll::Pending),
            Err(answer) if answer.error == "slow_down" => Ok(DevicePoll::SlowDown),
            Err(answer) => Err(OidcError::Refused(answer.to_string())),
        }
    }

    /// The scopes asked, `openid` first.
    fn scope(&self) -> String {
        let mut scopes = vec!["openid"];
        scopes.extend(self.settings.scopes.iter().map(String::as_str).filter(|s| *s != "openid"));
        scopes.join(" ")
    }

    /// A call to the token endpoint: the tokens, or the provider's OAuth error (a 4xx).
    async fn token_call(
        &self,
        form: &[(&str, &str)],
        authenticate: bool,
    ) -> Result<Result<TokenResponse, ErrorAnswer>, OidcError> {
        let metadata = self.metadata().await?;
        let mut request = self.http.post(&metadata.token_endpoint).form(form);
        if authenticate && let Some(secret) = &self.settings.client_secret {
            request = request.basic_auth(&self.settings.client_id, Some(secret.expose()));
        }
        let response = request.send().await.map_err(|e| unavailable("token endpoint", e))?;
        let status = response.status();
        if status.is_success() {
            return response
                .json()
                .await
                .map(Ok)
                .map_err(|e| OidcError::BadProvider(format!("token endpoint: {e}")));
        }
        if status.is_client_error() {
            let text = response.text().await.unwrap_or_default();
            if let Ok(answer) = serde_json::from_str::<ErrorAnswer>(&text) {
                return Ok(Err(answer));
            }
            return Err(OidcError::Refused(format!("token endpoint answered {status}")));
        }
        Err(OidcError::Unavailable(format!("token endpoint answered {status}")))
    }
}

impl std::fmt::Display for ErrorAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error_description {
            Some(description) => write!(f, "{}: {description}", self.error),
            None => f.write_str(&self.error),
        }
    }
}

async fn error_text(response: reqwest::Response) -> String {
    let status = response.status();
    match response.json::<ErrorAnswer>().await {
        Ok(answer) => answer.to_string(),
        Err(_) => format!("answered {status}"),
    }
}
