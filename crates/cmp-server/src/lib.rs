//! The CMP server: roles, API, authentication, audit, metrics. `cmpd` is its binary.

pub mod adapter;
pub mod app;
pub mod auth;
pub mod config;
pub mod core;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod inventory;
pub mod issuer;
pub mod metrics;
pub mod notify;
pub mod people;
pub mod platform_ca;
pub mod serve;
pub mod state;
pub mod telemetry;
pub mod tls;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use cmp_domain::{Clock, Role};
use cmp_store::{AuditContext, NewApiToken, SqlStore, Store};

use crate::config::{Config, SecretsBackend, ServerRole, VaultConfig};
use crate::platform_ca::{CaPurpose, PlatformCa};
use crate::state::SystemClock;

/// Name of the file in the data directory that holds the bootstrap admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Opens the configured database, applying migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<SqlStore>> {
    let url = config.database_url();
    let store = SqlStore::connect(&url, config.database.max_connections)
        .await
        .with_context(|| format!("while opening database {}", config::redact_url(&url)))?;
    let ttl = std::time::Duration::from_millis(config.http.lookup_cache_ms);
    Ok(Arc::new(store.with_directory_cache(ttl)))
}

/// Name of the secret that holds the bootstrap admin token when secrets live in Vault.
pub const ADMIN_TOKEN_SECRET: &str = "bootstrap/admin-token";

/// Where the bootstrap admin token is kept: a 0600 file in the data directory, or (with
/// `secrets.backend = "vault"`) the secret store, so that nothing secret touches the disk.
pub fn admin_token_location(config: &Config) -> String {
    match config.secrets.backend {
        SecretsBackend::Local => config.data_dir.join(ADMIN_TOKEN_FILE).display().to_string(),
        SecretsBackend::Vault => format!(
            "Vault KV {}/data/{}/{ADMIN_TOKEN_SECRET}",
            config.vault.kv_mount, config.vault.kv_prefix
        ),
    }
}

/// The name of the admin token made at the first start.
pub const BOOTSTRAP_TOKEN_NAME: &str = "bootstrap admin";

/// Whether `token` is the admin token made at the first start.
pub fn is_bootstrap_token(token: &cmp_store::ApiToken) -> bool {
    token.name == BOOTSTRAP_TOKEN_NAME && token.created_by == "system"
}

/// On the first start (no token exists), creates an admin token, keeps it where
/// [`admin_token_location`] says, and returns it so that it can be shown once.
pub async fn bootstrap_admin_token(
    store: &dyn Store,
    clock: &dyn Clock,
    config: &Config,
    secrets: &dyn cmp_secrets::SecretStore,
) -> anyhow::Result<Option<String>> {
    if store.count_tokens().await? > 0 {
        return Ok(None);
    }
    let secret = auth::new_token_secret();
    let ctx = AuditContext {
        actor: "system".into(),
        request_id: None,
        now_us: state::unix_micros(clock.now()),
    };
    let token = NewApiToken {
        name: BOOTSTRAP_TOKEN_NAME.into(),
        token_hash: auth::token_hash(&secret),
        role: Role::Admin,
        owner_ids: Vec::new(),
        expires_at: None,
    };
    // Kept first: a token in the database that nobody can read would lock everyone out.
    match config.secrets.backend {
        SecretsBackend::Local => {
            write_secret_file(&config.data_dir.join(ADMIN_TOKEN_FILE), &secret)?;
        }
        SecretsBackend::Vault => {
            let value = cmp_secrets::SecretBytes::new(secret.as_bytes().to_vec());
            secrets
                .put(ADMIN_TOKEN_SECRET, &value)
                .await
                .context("while keeping the bootstrap admin token in Vault")?;
        }
    }
    store.create_token(&ctx, &token).await?;
    Ok(Some(secret))
}

/// Writes a file readable by its owner only, atomically (a temporary file, then a rename).
fn write_secret_file(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("while creating {}", dir.display()))?;
    }
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("while writing {}", temporary.display()))?;
    writeln!(file, "{content}")?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("while writing {}", path.display()))?;
    Ok(())
}

/// The configured secret store: local files under the data directory, or Vault KV v2
/// (checked now, so that a wrong address or token stops the start with a clear message).
/// `clock` stamps the master key of a new local store.
pub async fn open_secrets(
    config: &Config,
    clock: &dyn Clock,
) -> anyhow::Result<Arc<dyn cmp_secrets::SecretStore>> {
    match config.secrets.backend {
        SecretsBackend::Local => {
            let dir = config.data_dir.join("secrets");
            let store = cmp_secrets::LocalSecretStore::open(&dir, clock.now().into())
                .with_context(|| format!("while opening the secret store in {}", dir.display()))?;
            Ok(Arc::new(store))
        }
        SecretsBackend::Vault => {
            let vault = &config.vault;
            let client = Arc::new(vault_client(vault)?);
            client.spawn_renewal();
            let store = cmp_vault::VaultKvStore::new(client, &vault.kv_mount, &vault.kv_prefix)?;
            cmp_secrets::SecretStore::check(&store).await.with_context(|| {
                format!(
                    "while opening the secret store at {}",
                    cmp_vault::redacted_address(&vault.address)
                )
            })?;
            Ok(Arc::new(store))
        }
    }
}

/// The platform's agent CA, made on the first start.
pub async fn load_agent_ca(
    secrets: &dyn cmp_secrets::SecretStore,
    clock: &dyn Clock,
) -> anyhow::Result<Arc<PlatformCa>> {
    Ok(Arc::new(PlatformCa::load_or_create(secrets, CaPurpose::Agents, clock.now()).await?))
}

/// A client of the Vault in `[vault]`.
pub fn vault_client(vault: &VaultConfig) -> anyhow::Result<cmp_vault::VaultClient> {
    let mut settings = cmp_vault::VaultSettings::new(&vault.address);
    settings.namespace = Some(vault.namespace.clone()).filter(|n| !n.is_empty());
    if let Some(file) = &vault.ca_bundle_file {
        let pem = std::fs::read_to_string(file)
            .with_context(|| format!("while reading vault.ca_bundle_file {}", file.display()))?;
        settings.ca_bundle_pem = Some(pem);
    }
    let credentials = if vault.token.expose().is_empty() {
        cmp_vault::Credentials::AppRole {
            mount: vault.approle_mount.clone(),
            role_id: vault.role_id.clone(),
            secret_id: vault.secret_id.clone(),
        }
    } else {
        cmp_vault::Credentials::Token(vault.token.clone())
    };
    Ok(cmp_vault::VaultClient::new(&settings, credentials)?)
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    /// Where `/metrics` is served on its own (`http.metrics_listen`).
    pub metrics_addr: Option<SocketAddr>,
    /// `https` or `http`.
    pub scheme: &'static str,
    /// The certificate the HTTPS listener presents (`None` in plain HTTP).
    pub tls_cert: Option<Arc<tls::ReloadingCert>>,
    pub admin_token: Option<String>,
    shutdown: tokio::sync::watch::Sender<bool>,
    /// The listeners (API, and `/metrics` and ACME http-01 when they have their own).
    listeners: tokio::task::JoinSet<()>,
}

impl Server {
    /// Stops accepting, lets in-flight requests finish, and waits until every listener is
    /// closed.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        while let Some(joined) = self.listeners.join_next().await {
            joined.context("while joining a listener")?;
        }
        Ok(())
    }
}

/// Opens storage, bootstraps, binds and serves in the background.
pub async fn start(mut config: Config) -> anyhow::Result<Server> {
    config.validate().map_err(anyhow::Error::msg)?;
    create_data_dir(&config.data_dir)?;
    let store = open_store(&config).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let secrets = open_secrets(&config, clock.as_ref()).await?;
    let admin_token =
        bootstrap_admin_token(store.as_ref(), clock.as_ref(), &config, secrets.as_ref()).await?;
    let (shutdown, stopped) = tokio::sync::watch::channel(false);
    let agent_ca = load_agent_ca(secrets.as_ref(), clock.as_ref()).await?;
    let platform_ca = match config.http.tls.mode {
        config::TlsMode::Auto => {
            let ca =
                PlatformCa::load_or_create(secrets.as_ref(), CaPurpose::Tls, clock.now()).await?;
            let file = config.data_dir.join(platform_ca::CA_FILE);
            std::fs::write(&file, ca.cert_pem()).with_context(|| {
                format!("while exporting the platform CA to {}", file.display())
            })?;
            Some(Arc::new(ca))
        }
        config::TlsMode::Off | config::TlsMode::Files => None,
    };
    let tls =
        tls::start(&config, platform_ca, &agent_ca, clock.clone(), shutdown.subscribe()).await?;
    if !config.tls_enabled() && !config.listen_addr().ip().is_loopback() {
        tracing::warn!(
            addr = %config.listen_addr(),
            "serving plain HTTP beyond loopback (http.allow_plain_http): tokens and keys cross \
             the network in clear"
        );
    }
    let listener = tokio::net::TcpListener::bind(config.listen_addr())
        .await
        .with_context(|| format!("while binding {}", config.listen_addr()))?;
    let addr = listener.local_addr()?;
    // The port the kernel chose for `:0`, so that derived URLs (`ca.public_url`) hold it.
    config.listen = Some(addr);
    let metrics_listener = bind_if_set(config.http.metrics_listen, "http.metrics_listen").await?;
    let metrics_addr = metrics_listener.as_ref().map(|l| l.local_addr()).transpose()?;
    let pki_at = config.http.pki_listen.filter(|_| config.role.serves(ServerRole::Adapter));
    let pki_listener = bind_if_set(pki_at, "http.pki_listen").await?;
    if let Some(listener) = &pki_listener {
        config.http.pki_listen = Some(listener.local_addr()?);
    }
    let role = config.role;
    let scheme = config.scheme();
    let mut state =
        state::AppState::assemble(Arc::new(config), store.clone(), clock, secrets, agent_ca)?;
    if let Some(url) = &state.config.redis.url {
        let redis = people::sessions::RedisSessions::connect(url)
            .await
            .with_context(|| format!("while connecting to Redis at {}", config::redact_url(url)))?;
        let people = people::People::new(&state.config, state.store.clone(), state.clock.clone())?;
        state.people = Arc::new(people.with_sessions(Arc::new(redis)));
    }
    if role.serves(ServerRole::Adapter) {
        adapter::ensure_default_ca(
            &state.local_adapters.builtin,
            store.as_ref(),
            &state.config.ca,
            state.now_us(),
        )
        .await?;
    }
    let (router, state) = app::build(state).map_err(anyhow::Error::msg)?;
    let options = serve::ServeOptions {
        header_timeout: std::time::Duration::from_secs(state.config.http.header_timeout_secs),
        max_connections: state.config.http.max_connections,
        tls: None,
    };
    let mut listeners = tokio::task::JoinSet::new();
    if let Some(listener) = metrics_listener {
        let router = app::metrics_router(state.clone());
        listeners.spawn(serve::serve(listener, router, options.clone(), shutdown.subscribe()));
    }
    if let Some(listener) = pki_listener {
        let router = app::pki_router(state.clone());
        listeners.spawn(serve::serve(listener, router, options.clone(), shutdown.subscribe()));
    }
    if role.serves(ServerRole::Adapter)
        && let (Some(responder), Some(addr)) = (&state.http01, state.config.acme.http01_listen)
    {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("while binding acme.http01_listen {addr}"))?;
        let router = responder.clone().router();
        listeners.spawn(serve::serve(listener, router, options.clone(), shutdown.subscribe()));
    }
    if role.serves(ServerRole::Inventory) {
        tokio::spawn(state.people.clone().purge_ended(shutdown.subscribe()));
        tokio::spawn(state.discovery.clone().schedule(shutdown.subscribe()));
    }
    if role.serves(ServerRole::Issuer) {
        let (issuer, lock) = (state.issuer.clone(), state.renewal_lock.clone());
        tokio::spawn(issuer::scheduler::run(issuer, lock, shutdown.subscribe()));
        tokio::spawn(state.fleet.clone().ring_due_jobs(shutdown.subscribe()));
        tokio::spawn(state.notifier.clone().run(shutdown.subscribe()));
    }
    let tls_cert = tls.as_ref().map(|t| t.cert.clone());
    let options = serve::ServeOptions { tls: tls.map(|t| t.acceptor), ..options };
    listeners.spawn(serve::serve(listener, router, options, stopped));
    Ok(Server { addr, metrics_addr, scheme, tls_cert, admin_token, shutdown, listeners })
}

/// A listener on `at`, when the setting named `setting` is set.
async fn bind_if_set(
    at: Option<SocketAddr>,
    setting: &str,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let Some(at) = at else { return Ok(None) };
    let listener = tokio::net::TcpListener::bind(at)
        .await
        .with_context(|| format!("while binding {setting} {at}"))?;
    Ok(Some(listener))
}

/// Creates the data directory readable by its owner only (it holds the database, the sealed
/// keys and the bootstrap token); an existing directory is left as it is.
fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("while creating data dir {}", dir.display()))
}
