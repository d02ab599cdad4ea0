//! dns-01: DNS providers that publish `_acme-challenge` TXT records, and the propagation
//! check that waits until resolvers see the record before the CA is told to look.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use serde::{Deserialize, Serialize};

use crate::AcmeError;

/// Publishes and removes TXT records.
#[async_trait]
pub trait DnsProvider: Send + Sync {
    /// Adds `value` to the TXT records of `fqdn` (with a trailing dot).
    async fn present(&self, fqdn: &str, value: &str) -> Result<(), AcmeError>;
    /// Removes what `present` added.
    async fn cleanup(&self, fqdn: &str, value: &str) -> Result<(), AcmeError>;
}

/// A DNS provider's configuration (`provider` of a dns-01 solver).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DnsProviderConfig {
    /// POSTs `{"host": fqdn, "value": value}` as JSON to `present_url`, then to `cleanup_url`.
    /// Any 2xx is success. (pebble-challtestsrv's `set-txt` / `clear-txt` speak this.)
    Webhook { present_url: String, cleanup_url: String },
}

impl DnsProviderConfig {
    pub fn provider(&self) -> Result<Box<dyn DnsProvider>, AcmeError> {
        match self {
            DnsProviderConfig::Webhook { present_url, cleanup_url } => {
                for url in [present_url, cleanup_url] {
                    reqwest::Url::parse(url)
                        .map_err(|e| AcmeError::Config(format!("webhook URL {url:?}: {e}")))?;
                }
                crate::install_crypto();
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .map_err(|e| AcmeError::Config(format!("webhook client: {e}")))?;
                Ok(Box::new(Webhook {
                    http,
                    present_url: present_url.clone(),
                    cleanup_url: cleanup_url.clone(),
                }))
            }
        }
    }
}

struct Webhook {
    http: reqwest::Client,
    present_url: String,
    cleanup_url: String,
}

impl Webhook {
    async fn call(&self, url: &str, fqdn: &str, value: &str) -> Result<(), AcmeError> {
        let body = serde_json::json!({ "host": fqdn, "value": value });
        let response = self.http.post(url).json(&body).send().await.map_err(|e| {
            AcmeError::Solver(format!("DNS webhook unreachable: {}", e.without_url()))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        let text: String = text.chars().take(200).collect();
        Err(AcmeError::Solver(format!("DNS webhook answered {status}: {text}")))
    }
}

#[async_trait]
impl DnsProvider for Webhook {
    async fn present(&self, fqdn: &str, value: &str) -> Result<(), AcmeError> {
        self.call(&self.present_url, fqdn, value).await
    }

    async fn cleanup(&self, fqdn: &str, value: &str) -> Result<(), AcmeError> {
        self.call(&self.cleanup_url, fqdn, value).await
    }
}

/// Where and how long to wait for a TXT record to be visible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Propagation {
    /// Resolvers to ask (`ip:port`), typically the zone's authoritative servers; empty: the
    /// system's resolvers.
    #[serde(default)]
    pub nameservers: Vec<SocketAddr>,
    /// How long to wait before giving up, in seconds.
    #[serde(default = "default_propagation_timeout")]
    pub timeout_secs: u64,
}

fn default_propagation_timeout() -> u64 {
    120
}

impl Default for Propagation {
    fn default() -> Self {
        Propagation { nameservers: Vec::new(), timeout_secs: default_propagation_timeout() }
    }
}

impl Propagation {
    fn resolvers(&self) -> Result<Vec<TokioResolver>, AcmeError> {
        let mut options = ResolverOpts::default();
        // A cached miss would hide the record we are waiting for.
        options.cache_size = 0;
        options.timeout = Duration::from_secs(2);
        options.attempts = 1;
        if self.nameservers.is_empty() {
            let builder = TokioResolver::builder_tokio()
                .map_err(|e| AcmeError::Config(format!("system resolver: {e}")))?;
            return Ok(vec![builder.with_options(options).build()]);
        }
        // Each server asked on its own: every one of them must see the record.
        Ok(self
            .nameservers
            .iter()
            .map(|server| {
                let mut config = ResolverConfig::new();
                config.add_name_server(NameServerConfig::new(*server, Protocol::Udp));
                TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                    .with_options(options.clone())
                    .build()
            })
            .collect())
    }

    /// Waits until every resolver returns `value` among the TXT records of `fqdn`.
    pub async fn wait_for(&self, fqdn: &str, value: &str) -> Result<(), AcmeError> {
        let resolvers = self.resolvers()?;
        let deadline = Instant::now() + Duration::from_secs(self.timeout_secs);
        let mut pending: Vec<usize> = (0..resolvers.len()).collect();
        loop {
            let mut still = Vec::new();
            for index in pending {
                if !sees(&resolvers[index], fqdn, value).await {
                    still.push(index);
                }
            }
            if still.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(AcmeError::Solver(format!(
                    "the TXT record {fqdn} did not propagate within {} s",
                    self.timeout_secs
                )));
            }
            pending = still;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

async fn sees(resolver: &TokioResolver, fqdn: &str, value: &str) -> bool {
    match resolver.txt_lookup(fqdn).await {
        Ok(records) => records.iter().any(|txt| {
            let text: Vec<u8> =
                txt.txt_data().iter().flat_map(|part| part.iter().copied()).collect();
            text == value.as_bytes()
        }),
        Err(_) => false,
    }
}
