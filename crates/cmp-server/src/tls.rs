//! HTTPS for `cmpd`: the server certificate from files (re-read when they change) or from the
//! platform's own internal CA (`auto`, renewed before it expires), swapped into the running
//! listener without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use cmp_domain::Clock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::config::{Config, TlsMode};
use crate::platform_ca::PlatformCa;

/// The certificate the listener presents; replaced in place on reload.
#[derive(Debug, Default)]
pub struct ReloadingCert {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

impl ReloadingCert {
    fn set(&self, key: CertifiedKey) {
        if let Ok(mut current) = self.current.write() {
            *current = Some(Arc::new(key));
        }
    }

    /// The leaf being presented now (for tests and logs).
    pub fn leaf_der(&self) -> Option<Vec<u8>> {
        let current = self.current.read().ok()?;
        current.as_ref().and_then(|k| k.cert.first()).map(|c| c.to_vec())
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().and_then(|c| c.clone())
    }
}

/// A chain (leaf first) and its private key, both PEM, checked to belong together.
pub fn certified_key(chain_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .context("while reading the certificate chain PEM")?;
    anyhow::ensure!(!chain.is_empty(), "the certificate file holds no certificate");
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .context("while reading the private key PEM (PKCS#8, PKCS#1 or SEC1)")?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    CertifiedKey::from_der(chain, key, &provider)
        .context("the private key does not fit the certificate, or its type is not supported")
}

/// TLS on the main listener: an acceptor whose certificate is kept current by a background
/// task, which ends when `stop` turns true.
pub struct Tls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub cert: Arc<ReloadingCert>,
}

/// Sets up TLS as `http.tls` says, or `None` for plain HTTP. Clients may present a
/// certificate of `agent_ca` (agents do; browsers and `cmpctl` present none and use tokens).
pub async fn start(
    config: &Config,
    platform_ca: Option<Arc<PlatformCa>>,
    agent_ca: &PlatformCa,
    clock: Arc<dyn Clock>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<Tls>> {
    let tls = &config.http.tls;
    let source = match tls.mode {
        TlsMode::Off => return Ok(None),
        TlsMode::Files => {
            let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) else {
                anyhow::bail!("http.tls.mode = \"files\" needs cert_file and key_file");
            };
            Source::Files { cert: cert.clone(), key: key.clone(), seen: None }
        }
        TlsMode::Auto => {
            let ca = platform_ca.context("http.tls.mode = \"auto\" needs the platform CA")?;
            let names =
                if tls.auto_names.is_empty() { default_names() } else { tls.auto_names.clone() };
            Source::Auto { ca, names, clock, not_after: None }
        }
    };
    let cert = Arc::new(ReloadingCert::default());
    let mut source = source;
    source.refresh(&cert).await?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut agent_roots = rustls::RootCertStore::empty();
    let agent_root = CertificateDer::from_pem_slice(agent_ca.cert_pem().as_bytes())
        .context("while reading the agent CA certificate")?;
    agent_roots.add(agent_root).context("while trusting the agent CA")?;
    // Optional: a connection without a certificate goes on, and authenticates with a token.
    let client_verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(agent_roots), provider.clone())
            .allow_unauthenticated()
            .build()
            .context("while setting up client certificates")?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("while choosing TLS versions")?
        .with_client_cert_verifier(client_verifier)
        .with_cert_resolver(cert.clone());
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let interval = Duration::from_secs(tls.reload_interval_secs);
    tokio::spawn(keep_current(source, cert.clone(), interval, stop));
    Ok(Some(Tls { acceptor, cert }))
}

/// Where the certificate comes from, and what was last loaded.
enum Source {
    /// Compared by content, not modification time: a copy that keeps the old time (`cp -p`,
    /// some sync tools) is still a change.
    Files { cert: PathBuf, key: PathBuf, seen: Option<(Vec<u8>, Zeroizing<Vec<u8>>)> },
    Auto {
        ca: Arc<PlatformCa>,
        names: Vec<String>,
        clock: Arc<dyn Clock>,
        not_after: Option<time::OffsetDateTime>,
    },
}

impl Source {
    /// Loads a new certificate when the files changed or the `auto` one nears its end.
    async fn refresh(&mut self, cert: &ReloadingCert) -> anyhow::Result<()> {
        match self {
            Source::Files { cert: cert_file, key: key_file, seen } => {
                let files = (read(cert_file)?, Zeroizing::new(read(key_file)?));
                if seen.as_ref() == Some(&files) {
                    return Ok(());
                }
                let loaded = certified_key(&files.0, &files.1).with_context(|| {
                    format!("in {} and {}", cert_file.display(), key_file.display())
                })?;
                cert.set(loaded);
                if seen.is_some() {
                    tracing::info!(file = %cert_file.display(), "TLS certificate reloaded");
                }
                *seen = Some(files);
            }
            Source::Auto { ca, names, clock, not_after } => {
                let now = clock.now();
                if not_after.is_some_and(|end| end - now > crate::platform_ca::SERVER_RENEW_BEFORE)
                {
                    return Ok(());
                }
                let issued = ca.issue_server_certificate(names, now)?;
                cert.set(certified_key(issued.chain_pem.as_bytes(), issued.key_pem.as_bytes())?);
                if not_after.is_some() {
                    tracing::info!("TLS certificate renewed from the platform CA");
                }
                *not_after = Some(issued.not_after);
            }
        }
        Ok(())
    }
}

/// Re-checks the source every `interval` until the stop; a failed reload keeps the old
/// certificate and says why, once for each new reason (not at every check).
async fn keep_current(
    mut source: Source,
    cert: Arc<ReloadingCert>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut last_error = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match source.refresh(&cert).await {
            Ok(()) => last_error = None,
            Err(e) => {
                let error = format!("{e:#}");
                if last_error.as_ref() != Some(&error) {
                    tracing::warn!(error, "TLS certificate not reloaded; keeping the old one");
                    last_error = Some(error);
                }
            }
        }
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("while reading {}", path.display()))
}

/// `localhost`, the loopback addresses and this host's name.
fn default_names() -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() && host != "localhost" {
            names.push(host.to_string());
        }
    }
    names
}
