//! The adapter role reached over HTTP: the issuer's `CaAdapter` in distributed mode.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cmp_api::{
    AdapterHealth, Problem, RenewalWindowAnswer, RenewalWindowCall, RevokeCall, SignCall,
    SignedChain,
};
use cmp_ca::{
    AdapterStatus, CaAdapter, CaError, Capabilities, IssuedCertificate, RevocationReason,
    SignRequest,
};

use tracing::Instrument;

use super::directory::AdapterDirectory;

/// Adapters served by a remote adapter role.
pub struct RemoteAdapters {
    client: reqwest::Client,
    base_url: String,
    token: String,
}

impl RemoteAdapters {
    pub fn new(base_url: &str, token: &str) -> anyhow::Result<Self> {
        // reqwest panics without the process's crypto provider (cmpd's main installs it).
        anyhow::ensure!(rustls::crypto::CryptoProvider::get_default().is_some(), "no TLS provider");
        let client =
            reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
        Ok(RemoteAdapters {
            client,
            base_url: base_url.trim_end_matches('/').to_string(),
            token: token.to_string(),
        })
    }
}

#[async_trait]
impl AdapterDirectory for RemoteAdapters {
    async fn adapter(&self, adapter_id: &str) -> Result<Arc<dyn CaAdapter>, CaError> {
        Ok(Arc::new(RemoteAdapter {
            client: self.client.clone(),
            url: format!("{}/api/v1/adapters/{adapter_id}", self.base_url),
            token: self.token.clone(),
        }))
    }
}

/// One adapter behind the adapter role.
struct RemoteAdapter {
    client: reqwest::Client,
    url: String,
    token: String,
}

/// The adapter role's problem `type` slugs for CA errors, back to `CaError`; `retry_after` is
/// the answer's `Retry-After`.
fn ca_error_of(problem: Problem, retry_after: Option<i64>) -> CaError {
    let detail = problem.detail.unwrap_or_else(|| problem.title.clone());
    let slug = problem.kind.rsplit('/').next().unwrap_or_default();
    match CaError::from_slug(slug, detail.clone(), retry_after) {
        Some(e) => e,
        None if problem.status >= 500 => CaError::Unavailable(detail),
        None => CaError::Refused(detail),
    }
}

impl RemoteAdapter {
    /// Sends `request`, traced as `operation` when traces are exported.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, CaError> {
        let (span, request) = crate::telemetry::client_call(operation, request);
        self.answer(request).instrument(span).await
    }

    async fn answer<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, CaError> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| CaError::Unavailable(format!("adapter role unreachable: {e}")))?;
        if response.status().is_success() {
            return response
                .json()
                .await
                .map_err(|e| CaError::Unavailable(format!("adapter role answer unreadable: {e}")));
        }
        let status = response.status();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|since| i64::try_from(since.as_secs()).ok());
        match response.json::<Problem>().await {
            Ok(problem) => Err(ca_error_of(problem, retry_after)),
            Err(_) => Err(CaError::Unavailable(format!("adapter role answered {status}"))),
        }
    }
}

fn decode(b64: &str) -> Result<Vec<u8>, CaError> {
    STANDARD.decode(b64).map_err(|e| CaError::Unavailable(format!("bad base64 from adapter: {e}")))
}

#[async_trait]
impl CaAdapter for RemoteAdapter {
    async fn create_certificate(
        &self,
        request: &SignRequest,
    ) -> Result<IssuedCertificate, CaError> {
        let profile = &request.profile;
        let body = SignCall {
            request_id: request.request_id.clone(),
            csr: STANDARD.encode(&request.csr_der),
            common_name: profile.common_name.clone(),
            dns_names: profile.dns_names.clone(),
            ip_addresses: profile.ip_addresses.iter().map(ToString::to_string).collect(),
            usages: profile.usages.iter().map(|u| super::usage_name(*u).to_string()).collect(),
            validity_secs: profile.validity_secs,
            replaces: request.replaces.as_ref().map(|der| STANDARD.encode(der)),
            acme_solver: request.acme_solver.clone(),
        };
        let signed: SignedChain = self
            .call("adapter sign", self.client.post(format!("{}/sign", self.url)).json(&body))
            .await?;
        Ok(IssuedCertificate {
            certificate_der: decode(&signed.certificate)?,
            chain_der: signed.chain.iter().map(|c| decode(c)).collect::<Result<_, _>>()?,
            serial: signed.serial,
        })
    }

    async fn revoke_certificate(
        &self,
        serial: &str,
        reason: RevocationReason,
    ) -> Result<(), CaError> {
        let body = RevokeCall { serial: serial.to_string(), reason: reason.as_str().to_string() };
        let _: serde_json::Value = self
            .call("adapter revoke", self.client.post(format!("{}/revoke", self.url)).json(&body))
            .await?;
        Ok(())
    }

    async fn renewal_window(&self, certificate_der: &[u8]) -> Result<Option<(i64, i64)>, CaError> {
        let body = RenewalWindowCall { certificate: STANDARD.encode(certificate_der) };
        let url = format!("{}/renewal-window", self.url);
        let answer: RenewalWindowAnswer =
            self.call("adapter renewal window", self.client.post(url).json(&body)).await?;
        Ok(answer.window.map(|w| (w.start, w.end)))
    }

    async fn get_status(&self) -> AdapterStatus {
        match self
            .call::<AdapterHealth>(
                "adapter status",
                self.client.get(format!("{}/status", self.url)),
            )
            .await
        {
            Ok(h) => AdapterStatus {
                healthy: h.healthy,
                message: h.message,
                capabilities: Capabilities {
                    supports_csr: h.supports_csr,
                    supports_revocation: h.supports_revocation,
                    publishes_crl: h.publishes_crl,
                    answers_ocsp: h.answers_ocsp,
                    max_validity_secs: h.max_validity_secs,
                    key_types: h.key_types,
                    honours_validity: h.honours_validity,
                    issued_validity_secs: h.issued_validity_secs,
                },
                chain_der: h
                    .chain
                    .iter()
                    .filter_map(|c| pem::parse(c).ok().map(pem::Pem::into_contents))
                    .collect(),
            },
            Err(e) => AdapterStatus {
                healthy: false,
                message: e.to_string(),
                capabilities: Capabilities::default(),
                chain_der: Vec::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(slug: &str, status: u16) -> Problem {
        Problem {
            kind: format!("https://cmp.dev/problems/{slug}"),
            title: "t".into(),
            status,
            detail: Some("rate limited by the CA".into()),
            instance: None,
            errors: Vec::new(),
        }
    }

    #[test]
    fn a_throttled_answer_comes_back_with_its_retry_time() {
        let e = ca_error_of(problem("ca-throttled", 503), Some(1_800_000_000));
        assert_eq!(e.retry_at(), Some(1_800_000_000));
        // Without Retry-After it is a plain outage, retried with the issuer's backoff.
        let e = ca_error_of(problem("ca-throttled", 503), None);
        assert!(matches!(e, CaError::Unavailable(_)));
        assert!(matches!(ca_error_of(problem("ca-refused", 422), None), CaError::Refused(_)));
    }
}
