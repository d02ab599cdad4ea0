//! Configuration: defaults, then a TOML file, then `CMPD_` environment variables
//! (`CMPD_DATABASE__URL` sets `database.url`). Unknown keys are rejected by name.
//!
//! The prefix is `CMPD_`, not `CMP_`, because `cmpctl` reads `CMP_SERVER`, `CMP_TOKEN` and
//! friends: a shell set up for the one must not stop the other.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use cmp_domain::Secret;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Which part of the platform this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ServerRole {
    /// Every role in one process, on one port (3000).
    All,
    /// Certificates, locations, owners, import, search (8081).
    Inventory,
    /// Managed certificates, requests, policies, approvals, renewal (8082).
    Issuer,
    /// CA adapters: sign, revoke, status; CRL and OCSP (8083).
    Adapter,
}

impl ServerRole {
    pub fn default_port(self) -> u16 {
        match self {
            ServerRole::All => 3000,
            ServerRole::Inventory => 8081,
            ServerRole::Issuer => 8082,
            ServerRole::Adapter => 8083,
        }
    }

    /// Whether this process serves the routes of `part`.
    pub fn serves(self, part: ServerRole) -> bool {
        self == ServerRole::All || self == part
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ServerRole::All => "all",
            ServerRole::Inventory => "inventory",
            ServerRole::Issuer => "issuer",
            ServerRole::Adapter => "adapter",
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Pretty on a terminal, JSON otherwise.
    Auto,
    Json,
    Pretty,
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub role: ServerRole,
    /// Address to listen on; default `127.0.0.1:<the role's port>` in plain HTTP and
    /// `0.0.0.0:<the role's port>` with TLS.
    pub listen: Option<SocketAddr>,
    /// Where the embedded database, keys and the bootstrap token live.
    pub data_dir: PathBuf,
    pub database: DatabaseConfig,
    pub http: HttpConfig,
    pub inventory: InventoryConfig,
    pub discovery: DiscoveryConfig,
    pub notify: NotifyConfig,
    pub metrics: MetricsConfig,
    pub issuer: IssuerConfig,
    pub ca: CaConfig,
    pub secrets: SecretsConfig,
    pub vault: VaultConfig,
    pub acme: AcmeConfig,
    pub auth: AuthConfig,
    pub redis: RedisConfig,
    pub log: LogConfig,
    pub trace: TraceConfig,
}

/// Redis, shared by the replicas of a distributed deployment.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[:password@]host:6379/0`; set: browser sessions live there instead of the
    /// database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig").field("url", &self.url.as_deref().map(redact_url)).finish()
    }
}

/// How people log in: OpenID Connect providers, and the sessions of the browser login.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Where browsers reach CMP (`https://cmp.example.com`): the base of the login callback
    /// (`<public_url>/auth/callback`, to register at the provider). Unset: the main
    /// listener's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// A session unused for this long ends.
    pub session_idle_minutes: i64,
    /// A session ends this long after its login, used or not.
    pub session_absolute_hours: i64,
    pub oidc: OidcConfig,
}

/// OpenID Connect.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// Providers people log in with; each also vouches for the bearer JWTs it signs.
    pub providers: Vec<OidcProviderConfig>,
}

/// One OpenID Connect provider (Keycloak, Auth0, Entra ID, Dex, ...).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderConfig {
    /// CMP's name for it: in `/auth/login?provider=<name>` and in actors `oidc:<name>:<sub>`.
    pub name: String,
    /// The issuer URL, exactly as in its tokens' `iss`.
    pub issuer: String,
    /// CMP's confidential client for the browser login.
    pub client_id: String,
    pub client_secret: Secret<String>,
    /// Scopes asked at login, besides `openid`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The `aud` of access tokens meant for CMP's API: set it to accept this provider's JWTs
    /// as bearer tokens (client credentials, `cmpctl login`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// The public client `cmpctl login` uses (device flow); unset: `cmpctl login` cannot use
    /// this provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cli_client_id: Option<String>,
    /// The claim that lists the person's groups (a dotted path reads nested claims, e.g.
    /// `realm_access.roles`).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Group -> role (`admin`, `security` or `developer`); with several, the strongest wins.
    #[serde(default)]
    pub roles: std::collections::BTreeMap<String, cmp_domain::Role>,
    /// Group -> owner (team) name: a member is a developer of that owner, unless a role above
    /// gives more.
    #[serde(default)]
    pub teams: std::collections::BTreeMap<String, String>,
    /// Clock skew allowed on token times, in seconds.
    #[serde(default = "default_leeway_secs")]
    pub leeway_secs: i64,
    /// When a token names a key CMP has not seen (the provider rotated its keys), the key set
    /// is fetched again, at most once per this many seconds.
    #[serde(default = "default_key_refetch_secs")]
    pub key_refetch_secs: u64,
}

fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile", "groups"].map(String::from).to_vec()
}

fn default_groups_claim() -> String {
    "groups".into()
}

fn default_leeway_secs() -> i64 {
    30
}

fn default_key_refetch_secs() -> u64 {
    10
}

/// Process-wide ACME settings (each ACME CA is an adapter of kind `acme`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// Where CMP's http-01 responder listens (point port 80 of the names at it), e.g.
    /// `0.0.0.0:80`; unset: no http-01, only dns-01.
    pub http01_listen: Option<SocketAddr>,
}

/// Where private keys and credentials are kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// `local` (AES-256-GCM files under the data dir) or `vault` (KV v2 of `[vault]`).
    pub backend: SecretsBackend,
}

/// A secret store implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretsBackend {
    Local,
    Vault,
}

/// The Vault (or OpenBao) CMP keeps its secrets in, when `secrets.backend = "vault"`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// `https://vault:8200`.
    pub address: String,
    /// A token for CMP (renewed while renewable); or use AppRole below.
    pub token: Secret<String>,
    /// AppRole login: mount (default `approle`), role id and secret id.
    pub approle_mount: String,
    pub role_id: String,
    pub secret_id: Secret<String>,
    /// Namespace (Vault Enterprise, OpenBao), sent as `X-Vault-Namespace`.
    pub namespace: String,
    /// PEM file of the CAs to trust for Vault's TLS; empty: the system roots.
    pub ca_bundle_file: Option<PathBuf>,
    /// KV v2 mount and the path under it that holds CMP's secrets.
    pub kv_mount: String,
    pub kv_prefix: String,
}

impl std::fmt::Debug for VaultConfig {
    // The address may carry credentials in its user info (the tokens are `Secret`s).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultConfig")
            .field("address", &cmp_vault::redacted_address(&self.address))
            .field("token", &self.token)
            .field("approle_mount", &self.approle_mount)
            .field("role_id", &self.role_id)
            .field("secret_id", &self.secret_id)
            .field("namespace", &self.namespace)
            .field("ca_bundle_file", &self.ca_bundle_file)
            .field("kv_mount", &self.kv_mount)
            .field("kv_prefix", &self.kv_prefix)
            .finish()
    }
}

/// Issuance workflow and renewal scheduler.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Lifetime of a certificate when the request names none, in days.
    pub default_validity_days: i64,
    /// How often the scheduler looks for due renewals and stranded requests, in seconds.
    pub scheduler_interval_secs: u64,
    /// How long one attempt may hold a request before another worker may take it over.
    pub request_lease_secs: i64,
    /// Attempts before a request fails for good when the CA is unavailable.
    pub max_attempts: i64,
    /// How long an `Idempotency-Key` is remembered, in hours.
    pub idempotency_ttl_hours: i64,
    /// Base URL of the adapter role (`http://adapter:8083`); empty: adapters run in-process.
    pub adapter_url: String,
    /// API token (admin role) the issuer presents to the adapter role.
    pub adapter_token: Secret<String>,
    /// How often each enabled agent reads its `discovery.paths` into the inventory unasked (a
    /// `discover` job), in hours; 0: only when asked.
    pub agent_discovery_interval_hours: u64,
}

/// The builtin CA made on first start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaConfig {
    /// `ecdsa_p256`, `ecdsa_p384`, `rsa2048`, `rsa3072` or `rsa4096`.
    pub key_algorithm: String,
    /// Prefix of the CA names ("<name> Root CA", "<name> Issuing CA").
    pub common_name: String,
    /// Base URL clients reach this server at, written into certificates (CRL, OCSP, AIA).
    /// Unset: `http.pki_listen`, or else the main listener (its scheme and port, on 127.0.0.1
    /// or on the address it listens on when that is a specific one). Set it to the name other
    /// hosts reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
}

/// Database connection.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://...` or `postgres://...`; default: SQLite in the data dir.
    pub url: Option<String>,
    pub max_connections: u32,
}

impl std::fmt::Debug for DatabaseConfig {
    // A PostgreSQL URL may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// Hides the credentials of a URL: its user info (by `cmp_vault::without_userinfo`'s rule,
/// shown as `***@`) and a `password=` query parameter.
pub fn redact_url(url: &str) -> String {
    let shown = cmp_vault::without_userinfo(url);
    let shown = match url.find("://") {
        Some(scheme_end) if shown != url => {
            format!("{}***@{}", &url[..scheme_end + 3], &shown[scheme_end + 3..])
        }
        _ => shown,
    };
    let Some((base, query)) = shown.split_once('?') else {
        return shown;
    };
    let params: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_string(),
        })
        .collect();
    format!("{base}?{}", params.join("&"))
}

/// Highest `http.max_connections`: far beyond what one process's file descriptors allow.
const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;

/// HTTP serving.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// How long API calls reuse a token, owner, adapter or policy they read, in milliseconds
    /// (0: read every time). Changes made through this process apply at once; other
    /// replicas see them after at most this long.
    pub lookup_cache_ms: u64,
    /// How long a client may take to send a request's headers, and how long a kept-alive
    /// connection may sit idle between requests, in seconds.
    pub header_timeout_secs: u64,
    /// How long a client may take to send a request's body, in seconds.
    pub body_timeout_secs: u64,
    /// Connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Serve plain HTTP on an address other than loopback (tokens and keys then cross the
    /// network in clear; a warning is logged). Not needed with TLS.
    pub allow_plain_http: bool,
    /// Where `/metrics` is served on its own (e.g. `127.0.0.1:9100`, plain HTTP, no other
    /// route); unset: on the main listener, beside the API.
    pub metrics_listen: Option<SocketAddr>,
    /// Where the builtin CA's CRL, OCSP responder and CA certificates (`/pki/...`, public) are
    /// also served in plain HTTP, as RFC 5280 expects of the URLs written in certificates (a
    /// client checking a TLS certificate's revocation should not need TLS for it). When set,
    /// the default `ca.public_url` points here. Roles that serve the adapter only.
    pub pki_listen: Option<SocketAddr>,
    pub tls: TlsConfig,
}

/// TLS on the main listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// `off` (plain HTTP), `files` (`cert_file` and `key_file`, reloaded when they change) or
    /// `auto` (a server certificate from CMP's own internal CA, renewed before it expires).
    pub mode: TlsMode,
    /// PEM certificate chain, leaf first (mode `files`).
    pub cert_file: Option<PathBuf>,
    /// PEM private key (mode `files`).
    pub key_file: Option<PathBuf>,
    /// Names of the `auto` server certificate (DNS names or IP addresses); default
    /// `localhost`, `127.0.0.1`, `::1` and the host name.
    pub auto_names: Vec<String>,
    /// How often the certificate files are checked for changes (and the `auto` certificate
    /// for renewal), in seconds.
    pub reload_interval_secs: u64,
}

/// How the main listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    Off,
    Files,
    Auto,
}

/// Inventory rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryConfig {
    /// A certificate is `expiring` when it expires within this many days.
    pub expiry_window_days: i64,
}

/// Network discovery (scans run by the inventory role).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// CIDR ranges (or addresses) that scans may reach; none by default, so that no scan runs
    /// until an administrator says where. Loopback and link-local addresses are reached only
    /// through a range listed here that is itself loopback or link-local.
    pub allowed_ranges: Vec<String>,
    /// The most addresses one target may name (65,536: an IPv4 /16).
    pub max_range_addresses: u64,
    /// How often the scheduler looks for due scans and for runs whose process died.
    pub scheduler_interval_secs: u64,
    /// Runs at once in this process; a scheduled scan due while they run waits its turn.
    pub max_concurrent_runs: usize,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            allowed_ranges: Vec::new(),
            max_range_addresses: 65_536,
            scheduler_interval_secs: 30,
            max_concurrent_runs: 4,
        }
    }
}

/// Notifications (evaluated and sent by the issuer role).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// How often rules are evaluated and due deliveries sent.
    pub interval_secs: u64,
    /// A managed certificate this long past its renewal time with no new version is overdue.
    pub overdue_margin_secs: i64,
    /// A deployment not verified with the current version for this long is stale.
    pub deployment_stale_secs: i64,
    /// An enabled agent silent for this long is offline.
    pub agent_offline_secs: i64,
    /// The longest one send (SMTP or HTTP) may take before it counts as failed.
    pub send_timeout_secs: u64,
    /// Sends at once: a slow receiver holds one slot, not the others.
    pub max_parallel_sends: usize,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            interval_secs: 60,
            overdue_margin_secs: 3_600,
            deployment_stale_secs: 3_600,
            agent_offline_secs: 900,
            send_timeout_secs: 10,
            max_parallel_sends: 8,
        }
    }
}

/// What `/metrics` exposes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `cmp_certificate_expiration_timestamp_seconds`, one series per certificate: turn off
    /// for very large inventories (a million series is too many for most Prometheus setups).
    pub per_certificate: bool,
    /// Per-certificate series are left out beyond this many certificates (the soonest to
    /// expire are kept).
    pub per_certificate_limit: u32,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { per_certificate: true, per_certificate_limit: 10_000 }
    }
}

/// Distributed traces: W3C `traceparent` in and out, spans exported over OTLP/HTTP.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceConfig {
    /// An OTLP/HTTP collector, e.g. `http://otel-collector:4318`; empty (the default): no spans
    /// are made or sent.
    pub otlp_endpoint: String,
    /// The `service.name` of the spans; empty: `cmp-<role>`.
    pub service_name: String,
    /// The share of new traces kept, 0.0 to 1.0; a caller's sampled `traceparent` is followed.
    pub sample_ratio: f64,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig { otlp_endpoint: String::new(), service_name: String::new(), sample_ratio: 1.0 }
    }
}

impl std::fmt::Debug for TraceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A collector's URL may carry credentials.
        f.debug_struct("TraceConfig")
            .field("otlp_endpoint", &redact_url(&self.otlp_endpoint))
            .field("service_name", &self.service_name)
            .field("sample_ratio", &self.sample_ratio)
            .finish()
    }
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// `tracing` filter, e.g. `info,cmp_server=debug`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            role: ServerRole::All,
            listen: None,
            data_dir: PathBuf::from("./cmp-data"),
            database: DatabaseConfig { url: None, max_connections: 16 },
            http: HttpConfig {
                body_limit_bytes: 10 * 1024 * 1024,
                lookup_cache_ms: 2000,
                header_timeout_secs: 10,
                body_timeout_secs: 30,
                max_connections: 1024,
                allow_plain_http: false,
                metrics_listen: None,
                pki_listen: None,
                tls: TlsConfig {
                    mode: TlsMode::Off,
                    cert_file: None,
                    key_file: None,
                    auto_names: Vec::new(),
                    reload_interval_secs: 60,
                },
            },
            inventory: InventoryConfig {
                expiry_window_days: cmp_domain::DEFAULT_EXPIRY_WINDOW_DAYS,
            },
            discovery: DiscoveryConfig::default(),
            notify: NotifyConfig::default(),
            metrics: MetricsConfig::default(),
            issuer: IssuerConfig {
                default_validity_days: 90,
                scheduler_interval_secs: 30,
                request_lease_secs: 120,
                max_attempts: 5,
                idempotency_ttl_hours: 24,
                agent_discovery_interval_hours: 24,
                adapter_url: String::new(),
                adapter_token: Secret::default(),
            },
            ca: CaConfig {
                key_algorithm: "ecdsa_p256".into(),
                common_name: "CMP Builtin".into(),
                public_url: None,
            },
            secrets: SecretsConfig { backend: SecretsBackend::Local },
            vault: VaultConfig {
                address: String::new(),
                token: Secret::default(),
                approle_mount: "approle".into(),
                role_id: String::new(),
                secret_id: Secret::default(),
                namespace: String::new(),
                ca_bundle_file: None,
                kv_mount: "secret".into(),
                kv_prefix: "cmp".into(),
            },
            acme: AcmeConfig { http01_listen: None },
            auth: AuthConfig {
                public_url: None,
                session_idle_minutes: 60,
                session_absolute_hours: 12,
                oidc: OidcConfig::default(),
            },
            redis: RedisConfig::default(),
            log: LogConfig { format: LogFormat::Auto, level: "info".into() },
            trace: TraceConfig::default(),
        }
    }
}

/// Prefix of the environment variables that configure `cmpd`.
pub const ENV_PREFIX: &str = "CMPD_";

impl Config {
    /// Loads defaults, then `file` (if any), then the `CMPD_` environment.
    pub fn load(file: Option<&Path>) -> Result<Config, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(Box::new(figment::Error::from(format!(
                    "config file {} does not exist",
                    file.display()
                ))));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        // CMPD_CONFIG names the file; it is not a key.
        let env = Env::prefixed(ENV_PREFIX)
            .split("__")
            .filter(|key| !key.as_str().eq_ignore_ascii_case("config"));
        figment.merge(env).extract().map_err(Box::new)
    }

    /// `CMP_` variables that look like the configuration of an older `cmpd` (which read that
    /// prefix), so that the start can say they are ignored now.
    pub fn stale_env_names() -> Vec<String> {
        std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .filter(|name| name.starts_with("CMP_") && name.contains("__"))
            .collect()
    }

    /// The address to listen on: the role's port, on every address with TLS and on loopback
    /// without (so that tokens never cross a network in clear unless asked).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.unwrap_or_else(|| {
            let ip = if self.tls_enabled() {
                std::net::IpAddr::from([0, 0, 0, 0])
            } else {
                std::net::IpAddr::from([127, 0, 0, 1])
            };
            SocketAddr::new(ip, self.role.default_port())
        })
    }

    /// Whether the main listener speaks TLS.
    pub fn tls_enabled(&self) -> bool {
        self.http.tls.mode != TlsMode::Off
    }

    /// `https` or `http`: how clients reach the main listener.
    pub fn scheme(&self) -> &'static str {
        if self.tls_enabled() { "https" } else { "http" }
    }

    /// `ca.public_url`, or where `/pki` is reached on this host: `http.pki_listen` in plain
    /// HTTP, else the main listener.
    pub fn ca_public_url(&self) -> String {
        if let Some(url) = &self.ca.public_url {
            return url.clone();
        }
        let (scheme, mut addr) = match self.http.pki_listen {
            Some(addr) => ("http", addr),
            None => (self.scheme(), self.listen_addr()),
        };
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::IpAddr::from([127, 0, 0, 1]));
        }
        format!("{scheme}://{addr}")
    }

    /// The database URL, defaulting to SQLite in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("cmp.db").display()),
        }
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), String> {
        if self.inventory.expiry_window_days < 0 {
            return Err("inventory.expiry_window_days must not be negative".into());
        }
        if self.http.body_limit_bytes < 1024 {
            return Err("http.body_limit_bytes must be at least 1024".into());
        }
        let http = &self.http;
        if http.max_connections > MAX_CONNECTIONS_LIMIT {
            return Err(format!("http.max_connections must be at most {MAX_CONNECTIONS_LIMIT}"));
        }
        if http.header_timeout_secs == 0 || http.body_timeout_secs == 0 || http.max_connections == 0
        {
            return Err("http.header_timeout_secs, http.body_timeout_secs and \
                        http.max_connections must be positive"
                .into());
        }
        if !self.tls_enabled() && !http.allow_plain_http && !self.listen_addr().ip().is_loopback() {
            return Err(format!(
                "plain HTTP on {} would send tokens and keys in clear: set http.tls.mode \
                 (\"auto\" or \"files\"), listen on 127.0.0.1, or set \
                 http.allow_plain_http = true",
                self.listen_addr()
            ));
        }
        match http.tls.mode {
            TlsMode::Files if http.tls.cert_file.is_none() || http.tls.key_file.is_none() => {
                return Err("http.tls.mode = \"files\" needs http.tls.cert_file and \
                            http.tls.key_file"
                    .into());
            }
            TlsMode::Off | TlsMode::Files | TlsMode::Auto => {}
        }
        if http.tls.reload_interval_secs == 0 {
            return Err("http.tls.reload_interval_secs must be positive".into());
        }
        if self.database.max_connections == 0 {
            return Err("database.max_connections must be at least 1".into());
        }
        if !(1..=3650).contains(&self.issuer.default_validity_days) {
            return Err("issuer.default_validity_days must be between 1 and 3650".into());
        }
        if self.issuer.scheduler_interval_secs == 0 || self.issuer.request_lease_secs < 5 {
            return Err("issuer.scheduler_interval_secs must be positive and \
                        issuer.request_lease_secs at least 5"
                .into());
        }
        if !self.issuer.adapter_url.is_empty() && self.issuer.adapter_token.expose().is_empty() {
            return Err("issuer.adapter_url needs issuer.adapter_token".into());
        }
        if self.secrets.backend == SecretsBackend::Vault {
            let vault = &self.vault;
            let approle = !vault.role_id.is_empty() && !vault.secret_id.expose().is_empty();
            if vault.address.is_empty() || (vault.token.expose().is_empty() && !approle) {
                return Err("secrets.backend = \"vault\" needs vault.address and either \
                            vault.token or vault.role_id and vault.secret_id"
                    .into());
            }
        }
        let discovery = &self.discovery;
        cmp_discovery::AllowList::new(&discovery.allowed_ranges, discovery.max_range_addresses)
            .map_err(|e| format!("discovery.allowed_ranges: {e}"))?;
        let notify = &self.notify;
        if notify.interval_secs == 0
            || notify.send_timeout_secs == 0
            || notify.max_parallel_sends == 0
        {
            return Err("notify.interval_secs, notify.send_timeout_secs and \
                 notify.max_parallel_sends must be at least 1"
                .into());
        }
        if discovery.scheduler_interval_secs == 0 || discovery.max_concurrent_runs == 0 {
            return Err("discovery.scheduler_interval_secs and discovery.max_concurrent_runs \
                        must be positive"
                .into());
        }
        let trace = &self.trace;
        if !trace.otlp_endpoint.is_empty() {
            let endpoint = reqwest::Url::parse(&trace.otlp_endpoint)
                .map_err(|e| format!("trace.otlp_endpoint {:?}: {e}", trace.otlp_endpoint))?;
            if !matches!(endpoint.scheme(), "http" | "https") {
                return Err("trace.otlp_endpoint must be an http:// or https:// URL".into());
            }
        }
        if !(0.0..=1.0).contains(&trace.sample_ratio) {
            return Err("trace.sample_ratio must be between 0.0 and 1.0".into());
        }
        self.validate_auth()?;
        cmp_store::Dialect::from_url(&self.database_url()).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn validate_auth(&self) -> Result<(), String> {
        let auth = &self.auth;
        if auth.session_idle_minutes < 1 || auth.session_absolute_hours < 1 {
            return Err("auth.session_idle_minutes and auth.session_absolute_hours must be \
                        positive"
                .into());
        }
        let mut names = std::collections::BTreeSet::new();
        for provider in &auth.oidc.providers {
            let name = &provider.name;
            let valid_name = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid_name {
                return Err(format!(
                    "auth.oidc.providers: name {name:?} must be letters, digits, - or _"
                ));
            }
            if !names.insert(name) {
                return Err(format!("auth.oidc.providers: {name} is named twice"));
            }
            if provider.issuer.is_empty() || provider.client_id.is_empty() {
                return Err(format!("auth.oidc.providers.{name}: issuer and client_id are needed"));
            }
            if provider.roles.values().any(|role| *role == cmp_domain::Role::Agent) {
                return Err(format!(
                    "auth.oidc.providers.{name}.roles: the agent role is for enrolled hosts only"
                ));
            }
            if !(0..=300).contains(&provider.leeway_secs) {
                return Err(format!(
                    "auth.oidc.providers.{name}.leeway_secs must be between 0 and 300"
                ));
            }
        }
        Ok(())
    }

    /// Where browsers reach CMP: `auth.public_url`, or the main listener.
    pub fn auth_public_url(&self) -> String {
        if let Some(url) = &self.auth.public_url {
            return url.trim_end_matches('/').to_string();
        }
        let mut addr = self.listen_addr();
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::IpAddr::from([127, 0, 0, 1]));
        }
        format!("{}://{addr}", self.scheme())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cmp.toml");
        std::fs::write(&file, "[database]\nurl = \"sqlite://x.db\"\nmax_conections = 3\n").unwrap();
        let err = Config::load(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("max_conections"), "{err}");
    }

    #[test]
    fn the_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cmp.toml");
        std::fs::write(&file, "role = \"inventory\"\n[inventory]\nexpiry_window_days = 14\n")
            .unwrap();
        let config = Config::load(Some(&file)).unwrap();
        assert_eq!(config.role, ServerRole::Inventory);
        assert_eq!(config.inventory.expiry_window_days, 14);
        assert_eq!(config.listen_addr().port(), 8081);
    }

    #[test]
    fn trace_settings_are_checked_and_a_collector_password_is_hidden() {
        let mut config = Config::default();
        config.trace.otlp_endpoint = "otel-collector:4318".into();
        let err = config.validate().unwrap_err();
        assert!(err.contains("trace.otlp_endpoint"), "{err}");
        config.trace.otlp_endpoint = "http://ingest:s3cret@otel-collector:4318".into();
        config.trace.sample_ratio = 1.5;
        assert!(config.validate().unwrap_err().contains("trace.sample_ratio"));
        config.trace.sample_ratio = 0.25;
        config.validate().unwrap();
        assert!(!format!("{:?}", config.trace).contains("s3cret"));
    }

    #[test]
    fn passwords_in_urls_are_hidden() {
        assert_eq!(redact_url("postgres://cmp:s3cret@db:5432/cmp"), "postgres://***@db:5432/cmp");
        assert_eq!(redact_url("postgres://u:p?w/d@db/cmp"), "postgres://***@db/cmp");
        assert_eq!(
            redact_url("postgres://db/cmp?user=u&password=pw"),
            "postgres://db/cmp?user=u&password=***"
        );
        let config = DatabaseConfig { url: Some("postgres://u:pw@h/d".into()), max_connections: 1 };
        assert!(!format!("{config:?}").contains("pw"));
        let mut config = Config::default();
        config.issuer.adapter_token = Secret::new("cmp_secret-service-token");
        config.vault.token = Secret::new("s.vault-root-token");
        config.vault.secret_id = Secret::new("approle-secret-id");
        config.redis.url = Some("redis://:redis-password@redis:6379/0".into());
        config.auth.oidc.providers = vec![OidcProviderConfig {
            name: "corp".into(),
            issuer: "https://id.example".into(),
            client_id: "cmp".into(),
            client_secret: Secret::new("oidc-client-secret"),
            scopes: default_scopes(),
            audience: None,
            cli_client_id: None,
            groups_claim: default_groups_claim(),
            roles: Default::default(),
            teams: Default::default(),
            leeway_secs: default_leeway_secs(),
            key_refetch_secs: default_key_refetch_secs(),
        }];
        let printed = format!("{config:#?}");
        assert!(!printed.contains("redis-password") && printed.contains("redis:6379"));
        assert!(!printed.contains("oidc-client-secret") && printed.contains("client_secret"));
        assert!(!printed.contains("secret-service-token") && printed.contains("adapter_token"));
        assert!(!printed.contains("vault-root-token") && !printed.contains("approle-secret-id"));
    }
}
