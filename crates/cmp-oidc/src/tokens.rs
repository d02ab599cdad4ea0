//! Checking ID tokens and JWT access tokens.

use jsonwebtoken::{Validation, decode, decode_header};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::OidcError;
use crate::provider::Provider;

/// The claims CMP reads from a token, and the rest as JSON (groups and roles live there, under
/// a name each deployment chooses).
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    #[serde(default, deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    pub exp: i64,
    #[serde(default)]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub iat: Option<i64>,
    #[serde(default)]
    pub nonce: Option<String>,
    /// The party the ID token was issued to, when it has several audiences.
    #[serde(default)]
    pub azp: Option<String>,
    /// The client of a client-credentials access token.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub preferred_username: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Claims {
    /// The strings of a claim that holds a list (or one string): `groups`, `roles`. A claim
    /// path with dots reads nested objects (`realm_access.roles`, as Keycloak writes it).
    pub fn strings(&self, claim: &str) -> Vec<String> {
        let mut parts = claim.split('.');
        let Some(first) = parts.next() else {
            return Vec::new();
        };
        let mut value = self.other.get(first);
        for part in parts {
            value = value.and_then(|v| v.get(part));
        }
        match value {
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(many)) => {
                many.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()
            }
            _ => Vec::new(),
        }
    }
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

/// A token whose signature and claims were checked.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub claims: Claims,
    /// The key that signed it (`kid`), for the logs.
    pub key_id: Option<String>,
}

impl Provider {
    /// Checks an ID token from this provider's token endpoint: signed by one of its keys with
    /// an allowed algorithm, issued by it, for CMP's client, not expired, and carrying the
    /// nonce of the login that asked for it.
    pub async fn verify_id_token(
        &self,
        token: &str,
        nonce: &str,
        now: i64,
    ) -> Result<VerifiedToken, OidcError> {
        let client_id = self.settings.client_id.clone();
        let verified = self.verify(token, &client_id, now).await?;
        let claims = &verified.claims;
        // OpenID Connect Core 3.1.3.7: with several audiences, `azp` must name this client.
        if claims.aud.len() > 1 && claims.azp.as_deref() != Some(client_id.as_str()) {
            return Err(OidcError::invalid("the ID token was issued to another party (azp)"));
        }
        if claims.nonce.as_deref() != Some(nonce) {
            return Err(OidcError::invalid("the ID token's nonce is not the login's"));
        }
        Ok(verified)
    }

    /// Checks a bearer access token (a JWT, RFC 9068) meant for CMP's API.
    pub async fn verify_access_token(
        &self,
        token: &str,
        now: i64,
    ) -> Result<VerifiedToken, OidcError> {
        let audience =
            self.settings.audience.clone().ok_or_else(|| {
                OidcError::invalid("this provider's access tokens are not accepted")
            })?;
        self.verify(token, &audience, now).await
    }

    /// The issuer a token claims, read without any check (not even of its header): which
    /// provider to verify it with.
    pub fn unverified_issuer(token: &str) -> Option<String> {
        use base64::Engine;
        #[derive(Deserialize)]
        struct Issuer {
            iss: String,
        }
        let payload = token.split('.').nth(1)?;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
        serde_json::from_slice::<Issuer>(&json).ok().map(|i| i.iss)
    }

    async fn verify(
        &self,
        token: &str,
        audience: &str,
        now: i64,
    ) -> Result<VerifiedToken, OidcError> {
        // An `alg` outside jsonwebtoken's list (`none` among them) fails here.
        let header =
            decode_header(token).map_err(|e| OidcError::invalid(format!("malformed: {e}")))?;
        let metadata = self.metadata().await?;
        let allowed = Provider::allowed_algorithms(&metadata);
        if !allowed.contains(&header.alg) {
            return Err(OidcError::invalid(format!(
                "signed with {:?}, which the provider does not list",
                header.alg
            )));
        }
        let key = self.keys.key(self, header.kid.as_deref()).await?;
        if key.alg.is_some_and(|alg| alg != header.alg) {
            return Err(OidcError::invalid("signed with another algorithm than its key's"));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[audience]);
        // Time is checked below against the time passed in, not the system clock.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["iss", "aud", "sub"]);
        let data = decode::<Claims>(token, &key.key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            OidcError::invalid(match e.kind() {
                ErrorKind::InvalidSignature => "bad signature".to_string(),
                ErrorKind::InvalidAudience => "issued for another audience".to_string(),
                ErrorKind::InvalidIssuer => "issued by another issuer".to_string(),
                ErrorKind::InvalidAlgorithm => "the key does not fit the algorithm".to_string(),
                _ => format!("malformed: {e}"),
            })
        })?;
        let claims = data.claims;
        let leeway = self.settings.leeway_secs;
        if claims.exp + leeway <= now {
            return Err(OidcError::invalid("expired"));
        }
        if claims.nbf.is_some_and(|nbf| nbf - leeway > now) {
            return Err(OidcError::invalid("not valid yet (nbf)"));
        }
        if claims.iat.is_some_and(|iat| iat - leeway > now) {
            return Err(OidcError::invalid("issued in the future (iat)"));
        }
        Ok(VerifiedToken { claims, key_id: header.kid })
    }
}
