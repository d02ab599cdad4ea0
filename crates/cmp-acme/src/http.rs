//! instant-acme's HTTP client, on reqwest: CMP's TLS settings (a private CA bundle for an
//! internal ACME CA), timeouts, and the `Retry-After` of error answers, which instant-acme
//! drops when it turns a response into a problem.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cmp_domain::Clock;
use http_body_util::BodyExt;
use http_body_util::Collected;
use instant_acme::{BodyWrapper, BytesBody, BytesResponse, HttpClient};

use crate::AcmeError;

tokio::task_local! {
    /// The latest `Retry-After` (Unix seconds) an error answer carried in this task. Each
    /// order runs in its own scope, so concurrent orders never see each other's.
    static RETRY_AFTER: Cell<Option<i64>>;
}

/// Runs `work` with its own `Retry-After` slot; [`last_retry_after`] reads it.
pub(crate) async fn with_retry_after<T>(work: impl Future<Output = T>) -> T {
    RETRY_AFTER.scope(Cell::new(None), work).await
}

/// The `Retry-After` of the last error answer in this task, if any.
pub(crate) fn last_retry_after() -> Option<i64> {
    RETRY_AFTER.try_with(Cell::get).ok().flatten()
}

/// `Retry-After` as seconds or an HTTP date, as Unix seconds.
fn parse_retry_after(value: &str, now: SystemTime) -> Option<i64> {
    let value = value.trim();
    let at = match value.parse::<u64>() {
        Ok(secs) => now + Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(value).ok()?,
    };
    let secs = at.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

/// `Retry-After` as Unix seconds, from the clock's now.
pub(crate) fn parse_retry_after_now(value: &str, clock: &dyn Clock) -> Option<i64> {
    parse_retry_after(value, SystemTime::from(clock.now()))
}

/// The HTTP client of one ACME account (cheap to clone: the connection pool is shared).
#[derive(Clone)]
pub(crate) struct AcmeHttp {
    client: reqwest::Client,
    /// For the `Retry-After` of error answers.
    clock: Arc<dyn Clock>,
}

impl AcmeHttp {
    /// Trusts the system roots, plus the PEM certificates in `ca_bundle_pem` when given.
    pub(crate) fn new(
        ca_bundle_pem: Option<&str>,
        clock: Arc<dyn Clock>,
    ) -> Result<AcmeHttp, AcmeError> {
        crate::require_crypto_provider()?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("cmp/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_bundle_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| AcmeError::Config(format!("ca_bundle is not PEM: {e}")))?;
            if certificates.is_empty() {
                return Err(AcmeError::Config("ca_bundle holds no certificate".into()));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder
            .build()
            .map_err(|e| AcmeError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(AcmeHttp { client, clock })
    }

    /// The same client, for plain requests (the directory).
    pub(crate) fn client(&self) -> reqwest::Client {
        self.client.clone()
    }
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        request: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.client.clone();
        let clock = self.clock.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let Ok(body) = body.collect().await.map(Collected::to_bytes);
            let response = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e.without_url())))?;
            let status = response.status();
            let headers = response.headers().clone();
            if !status.is_success()
                && let Some(at) = headers
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after_now(v, clock.as_ref()))
            {
                let _ = RETRY_AFTER.try_with(|slot| slot.set(Some(at)));
            }
            let body = response
                .bytes()
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e.without_url())))?;
            let mut answer = http::Response::new(());
            *answer.status_mut() = status;
            *answer.headers_mut() = headers;
            let (parts, ()) = answer.into_parts();
            Ok(BytesResponse { parts, body: Box::new(body) as Box<dyn BytesBody> })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(parse_retry_after("120", now), Some(1_120));
        assert_eq!(parse_retry_after("Thu, 01 Jan 1970 00:20:00 GMT", now), Some(1_200));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[tokio::test]
    async fn retry_after_is_kept_per_task() {
        let seen = with_retry_after(async {
            let _ = RETRY_AFTER.try_with(|slot| slot.set(Some(42)));
            let other = tokio::spawn(with_retry_after(async { last_retry_after() }));
            (last_retry_after(), other.await.unwrap())
        })
        .await;
        assert_eq!(seen, (Some(42), None));
        assert_eq!(last_retry_after(), None);
    }
}
