//! One configured provider: its settings, its discovery document (read once, when first
//! needed) and its keys.

use std::sync::Arc;
use std::time::Duration;

use cmp_domain::Secret;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use tokio::sync::RwLock;

use crate::error::{OidcError, unavailable};
use crate::keys::KeyCache;

/// How CMP is registered at a provider, and what it accepts from it.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// The issuer URL, exactly as the provider writes it in `iss`.
    pub issuer: String,
    /// CMP's client for the browser login (confidential: it has a secret).
    pub client_id: String,
    pub client_secret: Option<Secret<String>>,
    /// Where the provider sends the browser back: `<public URL>/auth/callback`.
    pub redirect_url: String,
    /// Asked at login; `openid` is added when missing.
    pub scopes: Vec<String>,
    /// The `aud` of access tokens meant for CMP's API; `None`: bearer JWTs from this provider
    /// are not accepted.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway_secs: i64,
    /// At most one fetch of the key set per interval when tokens name unknown keys, so that a
    /// flood of forged `kid`s cannot hammer the provider.
    pub key_refetch_interval: Duration,
    /// Per HTTP call to the provider.
    pub timeout: Duration,
}

/// The parts of the discovery document CMP uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
}

/// A provider CMP trusts.
pub struct Provider {
    pub(crate) settings: ProviderSettings,
    pub(crate) http: reqwest::Client,
    metadata: RwLock<Option<Arc<ProviderMetadata>>>,
    pub(crate) keys: KeyCache,
}

impl Provider {
    /// A provider that is not contacted until first used.
    pub fn new(settings: ProviderSettings) -> Result<Provider, OidcError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            // A provider never redirects its API calls; a redirect is not followed blindly.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| OidcError::BadProvider(format!("HTTP client: {e}")))?;
        Ok(Provider { settings, http, metadata: RwLock::new(None), keys: KeyCache::default() })
    }

    pub fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    /// The discovery document, fetched on first use and kept; a failed fetch is tried again
    /// at the next call.
    pub async fn metadata(&self) -> Result<Arc<ProviderMetadata>, OidcError> {
        if let Some(found) = self.metadata.read().await.as_ref() {
            return Ok(found.clone());
        }
        let mut slot = self.metadata.write().await;
        if let Some(found) = slot.as_ref() {
            return Ok(found.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.settings.issuer.trim_end_matches('/')
        );
        let metadata: ProviderMetadata = self.get_json(&url, "discovery").await?;
        // OpenID Connect Discovery 1.0, section 4.3: the document must name the issuer it was
        // fetched for, or tokens could be accepted from another one.
        if metadata.issuer != self.settings.issuer {
            return Err(OidcError::BadProvider(format!(
                "discovery names the issuer {:?}, not the configured {:?}",
                metadata.issuer, self.settings.issuer
            )));
        }
        let metadata = Arc::new(metadata);
        *slot = Some(metadata.clone());
        Ok(metadata)
    }

    /// The signature algorithms accepted from this provider: those it says it signs ID tokens
    /// with, less any that are not public-key signatures (`none`, HMAC).
    pub(crate) fn allowed_algorithms(metadata: &ProviderMetadata) -> Vec<Algorithm> {
        let listed = if metadata.id_token_signing_alg_values_supported.is_empty() {
            // The discovery spec's default.
            vec!["RS256".to_string()]
        } else {
            metadata.id_token_signing_alg_values_supported.clone()
        };
        listed
            .iter()
            .filter_map(|name| name.parse::<Algorithm>().ok())
            .filter(|alg| !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
            .collect()
    }

    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        what: &str,
    ) -> Result<T, OidcError> {
        let response = self.http.get(url).send().await.map_err(|e| unavailable(what, e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(OidcError::Unavailable(format!("{what}: {url} answered {status}")));
        }
        response
            .json()
            .await
            .map_err(|e| OidcError::BadProvider(format!("{what}: {}", e.without_url())))
    }
}
