//! A newOrder signed here, for the one field instant-acme cannot send: `notAfter` (RFC 8555
//! section 7.4). instant-acme 0.8's `NewOrder` has identifiers, `profile` and `replaces` only,
//! and its payloads are signed inside it; the lifetime asked must reach the CA, so this module
//! signs that one request itself (flattened JWS, ES256, the account key and URL as `kid`).
//! The order it creates is then carried on by instant-acme like any other.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cmp_domain::Clock;
use serde_json::{Value, json};

use crate::http::parse_retry_after_now;
use crate::{AcmeError, Problem};

/// The account key (P-256, as instant-acme makes it) and the account URL.
pub(crate) struct AccountKey {
    key: EcdsaKeyPair,
    kid: String,
}

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl AccountKey {
    /// From the PKCS#8 DER of instant-acme's account credentials.
    pub(crate) fn new(pkcs8_der: &[u8], kid: &str) -> Result<AccountKey, AcmeError> {
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8_der)
            .map_err(|_| AcmeError::Config("the ACME account key is not a P-256 key".into()))?;
        Ok(AccountKey { key, kid: kid.to_string() })
    }

    /// A flattened JWS of `payload` for `url` with `nonce`.
    fn sign(&self, payload: &Value, nonce: &str, url: &str) -> Result<Value, AcmeError> {
        let protected = json!({"alg": "ES256", "kid": self.kid, "nonce": nonce, "url": url});
        let protected = URL_SAFE_NO_PAD.encode(protected.to_string());
        let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
        let signing_input = format!("{protected}.{payload}");
        let signature = self
            .key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| AcmeError::Protocol("could not sign the newOrder request".into()))?;
        Ok(json!({
            "protected": protected,
            "payload": payload,
            "signature": URL_SAFE_NO_PAD.encode(signature.as_ref()),
        }))
    }
}

/// The directory's URLs this module needs, and whether it offers ARI.
pub(crate) struct Directory {
    new_nonce: String,
    new_order: String,
    pub(crate) renewal_info: bool,
}

/// Reads the directory.
pub(crate) async fn directory(
    http: &reqwest::Client,
    directory_url: &str,
) -> Result<Directory, AcmeError> {
    let response = http
        .get(directory_url)
        .send()
        .await
        .map_err(|e| AcmeError::Unreachable(e.without_url().to_string()))?;
    if !response.status().is_success() {
        return Err(AcmeError::Unreachable(format!("directory answered {}", response.status())));
    }
    let directory: Value = response
        .json()
        .await
        .map_err(|e| AcmeError::Protocol(format!("directory is not JSON: {e}")))?;
    let url = |name: &str| {
        directory[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| AcmeError::Protocol(format!("the directory has no {name}")))
    };
    Ok(Directory {
        new_nonce: url("newNonce")?,
        new_order: url("newOrder")?,
        renewal_info: directory.get("renewalInfo").is_some(),
    })
}

async fn fresh_nonce(http: &reqwest::Client, directory: &Directory) -> Result<String, AcmeError> {
    let response = http
        .head(&directory.new_nonce)
        .send()
        .await
        .map_err(|e| AcmeError::Unreachable(e.without_url().to_string()))?;
    response
        .headers()
        .get("replay-nonce")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| AcmeError::Protocol("the CA sent no Replay-Nonce".into()))
}

/// POSTs a signed newOrder with `payload` (identifiers, `notAfter`, ...) and returns the new
/// order's URL. A refusal is the CA's problem document, with its `Retry-After`.
pub(crate) async fn post_new_order(
    http: &reqwest::Client,
    directory: &Directory,
    key: &AccountKey,
    payload: &Value,
    clock: &dyn Clock,
) -> Result<String, AcmeError> {
    let nonce = fresh_nonce(http, directory).await?;
    let body = key.sign(payload, &nonce, &directory.new_order)?;
    let response = http
        .post(&directory.new_order)
        .header(http::header::CONTENT_TYPE, "application/jose+json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| AcmeError::Unreachable(e.without_url().to_string()))?;
    let status = response.status();
    let location = response
        .headers()
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after_now(v, clock));
    if status.is_success() {
        return location.ok_or_else(|| AcmeError::Protocol("the new order has no URL".into()));
    }
    let text = response.text().await.unwrap_or_default();
    match serde_json::from_str::<instant_acme::Problem>(&text) {
        Ok(problem) => Err(AcmeError::Problem(Problem::from_acme(&problem, retry_after))),
        Err(_) if status.is_server_error() => {
            Err(AcmeError::Unreachable(format!("newOrder answered {status}")))
        }
        Err(_) => Err(AcmeError::Protocol(format!("newOrder answered {status}"))),
    }
}

/// Whether a CA's refusal is of `notAfter`/`notBefore` itself (Let's Encrypt: "NotBefore and
/// NotAfter are not supported"), so that the order can be placed again without it.
pub(crate) fn refuses_validity(problem: &Problem) -> bool {
    let detail = problem.detail.to_ascii_lowercase();
    matches!(problem.r#type.as_str(), "malformed" | "unsupported" | "serverInternal")
        && (detail.contains("notafter") || detail.contains("notbefore"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, KeyPair, UnparsedPublicKey};

    #[test]
    fn the_jws_verifies_with_the_account_key_and_names_the_account() {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let key = AccountKey::new(pkcs8.as_ref(), "https://ca/acct/1").unwrap();
        let payload = json!({"notAfter": "2027-01-01T00:00:00Z"});
        let jws = key.sign(&payload, "n0nce", "https://ca/new-order").unwrap();
        let part = |name: &str| URL_SAFE_NO_PAD.decode(jws[name].as_str().unwrap()).unwrap();
        let protected: Value = serde_json::from_slice(&part("protected")).unwrap();
        assert_eq!(protected["kid"], "https://ca/acct/1");
        assert_eq!(protected["alg"], "ES256");
        assert_eq!(serde_json::from_slice::<Value>(&part("payload")).unwrap(), payload);
        let input =
            format!("{}.{}", jws["protected"].as_str().unwrap(), jws["payload"].as_str().unwrap());
        let public =
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.key.public_key().as_ref());
        public.verify(input.as_bytes(), &part("signature")).unwrap();
        // The private key never shows.
        assert!(!format!("{key:?}").contains(&URL_SAFE_NO_PAD.encode(pkcs8.as_ref())));
    }

    #[test]
    fn a_refused_not_after_is_recognised() {
        let problem = |t: &str, detail: &str| Problem {
            kind: crate::ProblemKind::Other,
            r#type: t.into(),
            detail: detail.into(),
            subproblems: Vec::new(),
            retry_after: None,
        };
        assert!(refuses_validity(&problem(
            "malformed",
            "NotBefore and NotAfter are not supported"
        )));
        assert!(!refuses_validity(&problem("malformed", "bad identifier")));
        assert!(!refuses_validity(&problem("rateLimited", "notAfter")));
    }
}
