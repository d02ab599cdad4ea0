//! dns-01: DNS providers that publish `_acme-challenge` TXT records (a webhook, RFC 2136 with
//! TSIG), and the propagation check that waits until resolvers see the record before the CA
//! is told to look.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use hickory_client::client::{Client, ClientHandle};
use hickory_client::proto::dnssec::rdata::tsig::TsigAlgorithm;
use hickory_client::proto::dnssec::tsig::TSigner;
use hickory_client::proto::op::ResponseCode;
use hickory_client::proto::rr::rdata::TXT;
use hickory_client::proto::rr::{Name, RData, RecordSet, RecordType};
use hickory_client::proto::runtime::TokioRuntimeProvider;
use hickory_client::proto::udp::UdpClientStream;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::AcmeError;

/// Publishes and removes TXT records.
#[async_trait]
pub trait DnsProvider: Send + Sync {
    /// Adds `value` to the TXT records of `fqdn` (with a trailing dot).
    async fn present(&self, fqdn: &str, value: &str) -> Result<(), AcmeError>;
    /// Removes what `present` added.
    async fn cleanup(&self, fqdn: &str, value: &str) -> Result<(), AcmeError>;
}

/// A provider's credential (a TSIG key, a webhook token): kept in the secret store, never in
/// the adapter's stored configuration, and never printed.
pub type ProviderSecret = cmp_domain::Secret<String>;

/// TSIG algorithms for RFC 2136 updates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TsigAlgorithmName {
    #[default]
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    #[serde(rename = "hmac-sha384")]
    HmacSha384,
    #[serde(rename = "hmac-sha512")]
    HmacSha512,
}

/// A DNS provider's configuration (`provider` of a dns-01 solver).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DnsProviderConfig {
    /// POSTs `{"host": fqdn, "value": value}` as JSON to `present_url`, then to `cleanup_url`,
    /// with `Authorization: Bearer <secret>` when a secret is set. Any 2xx is success.
    /// (pebble-challtestsrv's `set-txt` / `clear-txt` speak this.)
    Webhook {
        present_url: String,
        cleanup_url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<ProviderSecret>,
    },
    /// RFC 2136 dynamic update signed with TSIG (RFC 8945): BIND, PowerDNS, Knot, Windows DNS
    /// and most enterprise DNS. `secret` is the TSIG key, base64, as `tsig-keygen` prints it.
    Rfc2136 {
        /// The primary server, `ip:port`.
        server: SocketAddr,
        /// The zone the records are in, e.g. `example.com`.
        zone: String,
        key_name: String,
        #[serde(default)]
        algorithm: TsigAlgorithmName,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<ProviderSecret>,
        /// TTL of the TXT record, seconds.
        #[serde(default = "default_ttl")]
        ttl: u32,
    },
}

fn default_ttl() -> u32 {
    60
}

impl DnsProviderConfig {
    /// Takes the credential out (to keep it in the secret store).
    pub fn take_secret(&mut self) -> Option<ProviderSecret> {
        match self {
            DnsProviderConfig::Webhook { secret, .. }
            | DnsProviderConfig::Rfc2136 { secret, .. } => secret.take(),
        }
    }

    /// Puts a credential from the secret store back.
    pub fn set_secret(&mut self, value: ProviderSecret) {
        match self {
            DnsProviderConfig::Webhook { secret, .. }
            | DnsProviderConfig::Rfc2136 { secret, .. } => {
                *secret = Some(value);
            }
        }
    }

    pub fn provider(&self) -> Result<Box<dyn DnsProvider>, AcmeError> {
        match self {
            DnsProviderConfig::Webhook { present_url, cleanup_url, secret } => {
                for url in [present_url, cleanup_url] {
                    reqwest::Url::parse(url)
                        .map_err(|e| AcmeError::Config(format!("webhook URL {url:?}: {e}")))?;
                }
                crate::require_crypto_provider()?;
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .map_err(|e| AcmeError::Config(format!("webhook client: {e}")))?;
                Ok(Box::new(Webhook {
                    http,
                    present_url: present_url.clone(),
                    cleanup_url: cleanup_url.clone(),
                    token: secret.clone(),
                }))
            }
            DnsProviderConfig::Rfc2136 { server, zone, key_name, algorithm, secret, ttl } => {
                let secret = secret.as_ref().ok_or_else(|| {
                    AcmeError::Config("rfc2136 needs the TSIG key as secret".into())
                })?;
                Ok(Box::new(Rfc2136::new(*server, zone, key_name, *algorithm, secret, *ttl)?))
            }
        }
    }
}

struct Webhook {
    http: reqwest::Client,
    present_url: String,
    cleanup_url: String,
    token: Option<ProviderSecret>,
}

impl Webhook {
    async fn call(&self, url: &str, fqdn: &str, value: &str) -> Result<(), AcmeError> {
        let body = serde_json::json!({ "host": fqdn, "value": value });
        let mut request = self.http.post(url).json(&body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose().as_str());
        }
        let response = request.send().await.map_err(|e| {
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

/// RFC 2136 updates to one zone, signed with a TSIG key.
struct Rfc2136 {
    server: SocketAddr,
    zone: Name,
    signer: Arc<TSigner>,
    ttl: u32,
}

impl Rfc2136 {
    fn new(
        server: SocketAddr,
        zone: &str,
        key_name: &str,
        algorithm: TsigAlgorithmName,
        secret: &ProviderSecret,
        ttl: u32,
    ) -> Result<Rfc2136, AcmeError> {
        let name = |what: &str, text: &str| {
            Name::from_ascii(text)
                .map(|mut n| {
                    n.set_fqdn(true);
                    n
                })
                .map_err(|e| AcmeError::Config(format!("rfc2136 {what} {text:?}: {e}")))
        };
        let key = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(secret.expose().trim())
                .map_err(|_| AcmeError::Config("the TSIG key is not base64".into()))?,
        );
        let algorithm = match algorithm {
            TsigAlgorithmName::HmacSha256 => TsigAlgorithm::HmacSha256,
            TsigAlgorithmName::HmacSha384 => TsigAlgorithm::HmacSha384,
            TsigAlgorithmName::HmacSha512 => TsigAlgorithm::HmacSha512,
        };
        // Fudge: how far apart the clocks may be (RFC 8945 recommends 300 s).
        let signer = TSigner::new(key.to_vec(), algorithm, name("key_name", key_name)?, 300)
            .map_err(|e| AcmeError::Config(format!("TSIG key: {e}")))?;
        Ok(Rfc2136 { server, zone: name("zone", zone)?, signer: Arc::new(signer), ttl })
    }

    /// Sends the update, again when no answer comes (UDP loses datagrams; `nsupdate` also
    /// tries three times). Both updates are idempotent: adding a record that exists or
    /// deleting one that does not changes nothing.
    async fn update(&self, fqdn: &str, value: &str, add: bool) -> Result<(), AcmeError> {
        let record = Name::from_ascii(fqdn)
            .map_err(|e| AcmeError::Solver(format!("record name {fqdn:?}: {e}")))?;
        if !self.zone.zone_of(&record) {
            return Err(AcmeError::Config(format!("{fqdn} is not in zone {}", self.zone)));
        }
        let mut rrset = RecordSet::new(record, RecordType::TXT, self.ttl);
        rrset.add_rdata(RData::TXT(TXT::new(vec![value.to_string()])));
        let server = self.server;
        let mut attempt = 1;
        let code = loop {
            match self.send(rrset.clone(), add).await {
                Ok(code) => break code,
                Err(e) if attempt < UPDATE_ATTEMPTS => {
                    tracing::debug!(%server, attempt, error = %e, "DNS update unanswered, again");
                    attempt += 1;
                }
                Err(e) => return Err(AcmeError::Solver(format!("DNS server {server}: {e}"))),
            }
        };
        match code {
            ResponseCode::NoError => Ok(()),
            code => Err(AcmeError::Solver(format!(
                "DNS server {server} refused the update of {fqdn}: {code}"
            ))),
        }
    }

    /// One signed update over UDP; the server's response code, or why none came.
    async fn send(&self, rrset: RecordSet, add: bool) -> Result<ResponseCode, String> {
        let stream = UdpClientStream::builder(self.server, TokioRuntimeProvider::default())
            .with_timeout(Some(Duration::from_secs(5)))
            .with_signer(Some(self.signer.clone()))
            .build();
        let (mut client, background) = Client::connect(stream).await.map_err(|e| e.to_string())?;
        let background = tokio::spawn(background);
        let zone = self.zone.clone();
        let answer = if add {
            client.append(rrset, zone, false).await
        } else {
            client.delete_by_rdata(rrset, zone).await
        };
        background.abort();
        answer.map(|a| a.response_code()).map_err(|e| e.to_string())
    }
}

/// How many times an RFC 2136 update is sent before the server counts as unreachable.
const UPDATE_ATTEMPTS: u32 = 3;

#[async_trait]
impl DnsProvider for Rfc2136 {
    async fn present(&self, fqdn: &str, value: &str) -> Result<(), AcmeError> {
        self.update(fqdn, value, true).await
    }

    async fn cleanup(&self, fqdn: &str, value: &str) -> Result<(), AcmeError> {
        self.update(fqdn, value, false).await
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

    /// The TXT values of `fqdn` as the first resolver sees them now.
    pub async fn txt_values(&self, fqdn: &str) -> Result<Vec<String>, AcmeError> {
        let resolvers = self.resolvers()?;
        match resolvers.first() {
            Some(resolver) => Ok(values(resolver, fqdn).await),
            None => Ok(Vec::new()),
        }
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

/// The TXT values of `fqdn` at one resolver; none when the name has none (or no answer).
async fn values(resolver: &TokioResolver, fqdn: &str) -> Vec<String> {
    match resolver.txt_lookup(fqdn).await {
        Ok(records) => records
            .iter()
            .map(|txt| {
                let bytes: Vec<u8> =
                    txt.txt_data().iter().flat_map(|part| part.iter().copied()).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

async fn sees(resolver: &TokioResolver, fqdn: &str, value: &str) -> bool {
    values(resolver, fqdn).await.iter().any(|v| v == value)
}
