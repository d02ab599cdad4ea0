//! The provider's signing keys (its JWKS), kept between requests so that checking a token
//! costs no network call, and fetched again when a token names a key not seen yet: that is how
//! a provider's key rotation reaches CMP.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

use crate::error::OidcError;
use crate::provider::Provider;

/// One public key of the provider.
pub(crate) struct SigningKey {
    pub key: DecodingKey,
    /// The `alg` the key set pins the key to, if it does.
    pub alg: Option<Algorithm>,
}

/// Keys by `kid`, and when they were last fetched.
#[derive(Default)]
pub(crate) struct KeyCache {
    keys: RwLock<HashMap<String, Arc<SigningKey>>>,
    fetched_at: Mutex<Option<Instant>>,
}

#[derive(Deserialize)]
struct KeySetDocument {
    keys: Vec<serde_json::Value>,
}

impl KeyCache {
    /// The key a token names (no `kid`: the only key, if there is one), fetching the key set
    /// when it is not known and the last fetch is older than the refetch interval.
    pub async fn key(
        &self,
        provider: &Provider,
        kid: Option<&str>,
    ) -> Result<Arc<SigningKey>, OidcError> {
        if let Some(found) = self.lookup(kid).await {
            return Ok(found);
        }
        let mut fetched_at = self.fetched_at.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(found) = self.lookup(kid).await {
            return Ok(found);
        }
        let interval = provider.settings.key_refetch_interval;
        if fetched_at.is_some_and(|at| at.elapsed() < interval) {
            return Err(OidcError::invalid("signed by a key the provider does not publish"));
        }
        *fetched_at = Some(Instant::now());
        let fresh = fetch(provider).await?;
        tracing::info!(
            issuer = %provider.settings.issuer,
            keys = fresh.len(),
            "fetched the identity provider's signing keys"
        );
        *self.keys.write().await = fresh;
        drop(fetched_at);
        self.lookup(kid)
            .await
            .ok_or_else(|| OidcError::invalid("signed by a key the provider does not publish"))
    }

    async fn lookup(&self, kid: Option<&str>) -> Option<Arc<SigningKey>> {
        let keys = self.keys.read().await;
        match kid {
            Some(kid) => keys.get(kid).cloned(),
            None if keys.len() == 1 => keys.values().next().cloned(),
            None => None,
        }
    }
}

/// Reads the key set; keys CMP cannot use (encryption keys, unknown types) are left out, one
/// at a time, so that one odd key does not hide the others.
async fn fetch(provider: &Provider) -> Result<HashMap<String, Arc<SigningKey>>, OidcError> {
    let metadata = provider.metadata().await?;
    let document: KeySetDocument = provider.get_json(&metadata.jwks_uri, "key set").await?;
    let mut keys = HashMap::new();
    for value in document.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
            continue;
        }
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        let alg = jwk.common.key_algorithm.and_then(|a| a.to_string().parse::<Algorithm>().ok());
        let kid = jwk.common.key_id.clone().unwrap_or_default();
        keys.insert(kid, Arc::new(SigningKey { key, alg }));
    }
    if keys.is_empty() {
        return Err(OidcError::BadProvider("the key set holds no usable signing key".into()));
    }
    Ok(keys)
}
