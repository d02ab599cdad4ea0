//! Network discovery: finds the TLS certificates that hosts, ranges and ports serve.
//!
//! The scanner knows no storage: the server hands it a [`ScanSpec`], the ranges allowed and
//! what to trust, and stores each [`EndpointReport`] as it arrives on a channel. Handshakes
//! use rustls and accept any certificate, to read it, never to trust it; trust, names and
//! findings are judged afterwards ([`trust`]). Mail ports speak STARTTLS first
//! ([`starttls`]); TLS 1.0/1.1 support is probed with a hand-written hello ([`legacy`]), since
//! rustls does not speak them.

mod legacy;
mod probe;
mod starttls;
pub mod targets;
pub mod trust;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cmp_domain::Finding;
use futures::StreamExt;
use hickory_resolver::TokioResolver;
use rustls::ClientConfig;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

pub use probe::Handshake;
pub use targets::{AllowList, Port, Protocol, Target, TargetError, parse_ports};
pub use trust::{ChainVerdict, TrustStore};

/// Why a scanner could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The process installed no rustls crypto provider (binaries do, first thing).
    #[error("no rustls crypto provider is installed in this process")]
    NoCryptoProvider,
    /// The TLS client could not be configured.
    #[error("TLS client configuration: {0}")]
    Tls(String),
}

/// Why one endpoint (or one SNI name on it) gave no certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// Nothing listens (connection refused).
    #[error("connection refused")]
    Closed,
    /// No TCP connection within the connect timeout.
    #[error("no connection within the connect timeout")]
    ConnectTimeout,
    /// Connected, but no handshake within the handshake timeout (a silent listener).
    #[error("no TLS handshake within the handshake timeout")]
    HandshakeTimeout,
    /// The STARTTLS dialogue failed.
    #[error("STARTTLS: {0}")]
    StartTls(String),
    /// The TLS handshake failed (garbage, an alert, an oversized chain).
    #[error("TLS: {0}")]
    Tls(String),
    /// The connection failed (reset, unreachable).
    #[error("{0}")]
    Io(String),
}

impl ProbeError {
    fn io(e: std::io::Error) -> ProbeError {
        match e.kind() {
            std::io::ErrorKind::ConnectionReset => ProbeError::Io("connection reset".into()),
            std::io::ErrorKind::UnexpectedEof => ProbeError::Io("connection closed early".into()),
            _ => ProbeError::Io(e.to_string()),
        }
    }

    /// A handshake failure: rustls reports its errors wrapped in an I/O error.
    fn tls(e: std::io::Error) -> ProbeError {
        match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(tls) => ProbeError::Tls(tls.to_string()),
            None => ProbeError::io(e),
        }
    }
}

/// One scan to run: what to reach, and how hard.
#[derive(Debug, Clone)]
pub struct ScanSpec {
    pub targets: Vec<Target>,
    pub ports: Vec<Port>,
    /// SNI names to try on every address.
    pub sni_names: Vec<String>,
    /// Also try the name the address's reverse DNS gives.
    pub sni_reverse_dns: bool,
    /// Also try without SNI (always, when no name is known for an address).
    pub sni_none: bool,
    /// Endpoints in flight at once.
    pub concurrency: usize,
    /// Connections to one address at once.
    pub per_host: usize,
    pub connect_timeout: Duration,
    /// For the STARTTLS dialogue and the TLS handshake, each.
    pub handshake_timeout: Duration,
    /// The whole run; what is not tried by then is left.
    pub budget: Duration,
    /// Probe for TLS 1.0 and 1.1 on endpoints that serve TLS.
    pub probe_legacy_tls: bool,
}

/// What a run tells as it goes.
#[derive(Debug)]
pub enum ScanEvent {
    /// Targets are resolved: this many endpoints (address and port) will be tried.
    Planned { endpoints: u64 },
    /// A target left out: a name that does not resolve, or resolves outside the allowed
    /// ranges.
    Skipped { target: String, reason: String },
    /// One endpoint tried.
    Endpoint(EndpointReport),
}

/// What one endpoint gave.
#[derive(Debug)]
pub struct EndpointReport {
    pub address: SocketAddr,
    pub protocol: Protocol,
    pub outcome: EndpointOutcome,
}

#[derive(Debug)]
pub enum EndpointOutcome {
    /// Nothing listens.
    Closed,
    /// No certificate from any SNI name tried: the first failure.
    Failed(ProbeError),
    /// At least one SNI name gave a chain; one entry per name tried.
    Served(Vec<Sighting>),
}

/// One SNI name tried on an endpoint (`None`: no SNI).
#[derive(Debug)]
pub struct Sighting {
    pub sni: Option<String>,
    pub result: Result<Observation, ProbeError>,
}

/// A chain read, and what was judged of it.
#[derive(Debug, Clone)]
pub struct Observation {
    pub handshake: Handshake,
    pub chain: ChainVerdict,
    /// Whether the leaf is valid for the SNI name sent; `None` without SNI.
    pub name_matches: Option<bool>,
    /// `TLSv1.0` / `TLSv1.1` when accepted (only when probed).
    pub legacy_versions: Vec<&'static str>,
}

impl Observation {
    /// The endpoint findings this observation carries into the inventory.
    pub fn findings(&self) -> Vec<Finding> {
        let mut findings = Vec::new();
        if self.name_matches == Some(false) {
            findings.push(Finding::NameMismatch);
        }
        match self.chain {
            ChainVerdict::Trusted => {}
            ChainVerdict::Incomplete => findings.push(Finding::IncompleteChain),
            ChainVerdict::Untrusted => findings.push(Finding::UntrustedChain),
        }
        if !self.legacy_versions.is_empty() {
            findings.push(Finding::LegacyTls);
        }
        findings
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanEnd {
    /// Every endpoint was tried.
    Completed,
    /// Stopped on request.
    Cancelled,
    /// The time budget ran out; `untried` endpoints were left.
    OutOfTime { untried: u64 },
}

/// Runs scans: one per process is enough, each run has its own limits.
pub struct Scanner {
    base: ClientConfig,
    trust: TrustStore,
    allow: AllowList,
    resolver: Option<TokioResolver>,
}

/// An address to try, with the names known for it.
struct Host {
    ip: IpAddr,
    names: BTreeSet<String>,
}

impl Scanner {
    pub fn new(trust: TrustStore, allow: AllowList) -> Result<Scanner, ScanError> {
        let resolver = match TokioResolver::builder_tokio() {
            Ok(builder) => Some(builder.build()),
            Err(error) => {
                tracing::warn!(%error, "no system resolver: reverse DNS names are not tried");
                None
            }
        };
        Ok(Scanner { base: probe::base_config()?, trust, allow, resolver })
    }

    /// Runs `spec`, sending events to `events` as they come, until done, cancelled or out of
    /// time. Chains are judged at `at`, within each leaf's validity.
    pub async fn run(
        &self,
        spec: &ScanSpec,
        at: UnixTime,
        events: mpsc::Sender<ScanEvent>,
        cancel: CancellationToken,
    ) -> ScanEnd {
        let deadline = tokio::time::Instant::now() + spec.budget;
        let hosts = tokio::select! {
            hosts = self.resolve(spec, &events) => hosts,
            () = cancel.cancelled() => return ScanEnd::Cancelled,
        };
        let total = hosts.len() as u64 * spec.ports.len() as u64;
        if events.send(ScanEvent::Planned { endpoints: total }).await.is_err() {
            return ScanEnd::Cancelled;
        }
        let per_host = PerHost::new(spec.per_host);
        let reverse = ReverseNames::default();
        // Ports outer, addresses inner: consecutive endpoints are on different hosts, so the
        // per-host limit rarely holds anyone up. Endpoints are numbered rather than iterated
        // with closures, which keeps this future `Send` for any caller.
        let mut next = 0u64;
        let mut in_flight = futures::stream::FuturesUnordered::new();
        let mut done = 0u64;
        loop {
            while in_flight.len() < spec.concurrency.max(1) && next < total {
                let (port, host) = (next / hosts.len() as u64, next % hosts.len() as u64);
                let (port, host) = (spec.ports[port as usize], &hosts[host as usize]);
                in_flight.push(self.endpoint(spec, at, host, port, &per_host, &reverse));
                next += 1;
            }
            if in_flight.is_empty() {
                return ScanEnd::Completed;
            }
            tokio::select! {
                Some(report) = in_flight.next() => {
                    done += 1;
                    if events.send(ScanEvent::Endpoint(report)).await.is_err() {
                        return ScanEnd::Cancelled;
                    }
                }
                () = cancel.cancelled() => return ScanEnd::Cancelled,
                () = tokio::time::sleep_until(deadline) => {
                    return ScanEnd::OutOfTime { untried: total.saturating_sub(done) };
                }
            }
        }
    }

    /// Every address the targets name, allowed ones only, each once with its names.
    async fn resolve(&self, spec: &ScanSpec, events: &mpsc::Sender<ScanEvent>) -> Vec<Host> {
        let mut hosts: BTreeMap<IpAddr, BTreeSet<String>> = BTreeMap::new();
        for target in &spec.targets {
            match target {
                Target::Address(ip) => {
                    hosts.entry(*ip).or_default();
                }
                Target::Range(net) => {
                    for ip in net.hosts() {
                        hosts.entry(ip).or_default();
                    }
                }
                Target::Host(name) => {
                    let found = tokio::time::timeout(
                        spec.connect_timeout.max(Duration::from_secs(5)),
                        tokio::net::lookup_host((name.as_str(), 0)),
                    )
                    .await;
                    let skip = |reason: String| ScanEvent::Skipped { target: name.clone(), reason };
                    let addresses: Vec<IpAddr> = match found {
                        Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                        Ok(Err(e)) => {
                            let _ = events.send(skip(format!("does not resolve: {e}"))).await;
                            continue;
                        }
                        Err(_) => {
                            let _ = events.send(skip("DNS did not answer in time".into())).await;
                            continue;
                        }
                    };
                    for ip in addresses {
                        if self.allow.allows(ip) {
                            hosts.entry(ip).or_default().insert(name.clone());
                        } else {
                            let reason = format!("resolves to {ip}, outside the allowed ranges");
                            let _ = events.send(skip(reason)).await;
                        }
                    }
                }
            }
        }
        // Ranges and addresses were checked when the scan was stored; the allowed ranges may
        // have narrowed since.
        hosts
            .into_iter()
            .filter(|(ip, _)| self.allow.allows(*ip))
            .map(|(ip, names)| Host { ip, names })
            .collect()
    }

    /// Tries one endpoint with every SNI name it should be tried with.
    async fn endpoint(
        &self,
        spec: &ScanSpec,
        at: UnixTime,
        host: &Host,
        port: Port,
        per_host: &PerHost,
        reverse: &ReverseNames,
    ) -> EndpointReport {
        let address = SocketAddr::new(host.ip, port.number);
        let report = |outcome| EndpointReport { address, protocol: port.protocol, outcome };
        let _permit = per_host.acquire(host.ip).await;
        let mut names: Vec<Option<String>> = host.names.iter().cloned().map(Some).collect();
        names.extend(spec.sni_names.iter().cloned().map(Some));
        if spec.sni_reverse_dns
            && let Some(name) = reverse.lookup(self.resolver.as_ref(), host.ip).await
        {
            names.push(Some(name));
        }
        if spec.sni_none || names.is_empty() {
            names.push(None);
        }
        let mut seen = BTreeSet::new();
        names.retain(|n| seen.insert(n.clone()));

        let mut sightings = Vec::with_capacity(names.len());
        for sni in names {
            let result = probe::handshake(
                &self.base,
                address,
                port.protocol,
                sni.as_deref(),
                spec.connect_timeout,
                spec.handshake_timeout,
            )
            .await;
            match result {
                // Nothing there, or nothing answering: other names will not do better.
                Err(e @ (ProbeError::Closed | ProbeError::ConnectTimeout))
                    if sightings.is_empty() =>
                {
                    return report(match e {
                        ProbeError::Closed => EndpointOutcome::Closed,
                        e => EndpointOutcome::Failed(e),
                    });
                }
                Err(e) => sightings.push(Sighting { sni, result: Err(e) }),
                Ok(handshake) => {
                    let observation = self.judge(handshake, sni.as_deref(), at);
                    sightings.push(Sighting { sni, result: Ok(observation) });
                }
            }
        }
        if !sightings.iter().any(|s| s.result.is_ok()) {
            let first = sightings.into_iter().find_map(|s| s.result.err());
            return report(EndpointOutcome::Failed(first.unwrap_or(ProbeError::Closed)));
        }
        if spec.probe_legacy_tls {
            let sni = sightings.iter().find(|s| s.result.is_ok()).and_then(|s| s.sni.clone());
            let versions = self.legacy_versions(spec, address, port.protocol, sni.as_deref()).await;
            for sighting in &mut sightings {
                if let Ok(observation) = &mut sighting.result {
                    observation.legacy_versions = versions.clone();
                }
            }
        }
        report(EndpointOutcome::Served(sightings))
    }

    fn judge(&self, handshake: Handshake, sni: Option<&str>, at: UnixTime) -> Observation {
        let leaf = &handshake.chain[0];
        let chain = self.trust.judge(&handshake.chain, within_validity(leaf, at));
        let name_matches = sni.and_then(|name| {
            let name = ServerName::try_from(name).ok()?;
            trust::name_matches(leaf, &name)
        });
        Observation { handshake, chain, name_matches, legacy_versions: Vec::new() }
    }

    /// The legacy versions an endpoint accepts (an empty list when it refuses both, or the
    /// probe fails).
    async fn legacy_versions(
        &self,
        spec: &ScanSpec,
        address: SocketAddr,
        protocol: Protocol,
        sni: Option<&str>,
    ) -> Vec<&'static str> {
        let mut versions = Vec::new();
        for asked in legacy::PROBES {
            if asked == legacy::PROBES[1] && versions.contains(&"TLSv1.0") {
                break;
            }
            let Ok(mut stream) =
                probe::connect(address, protocol, spec.connect_timeout, spec.handshake_timeout)
                    .await
            else {
                break;
            };
            let chosen =
                legacy::chosen_version(&mut stream, asked, sni, spec.handshake_timeout).await;
            for v in legacy::versions_for(asked, chosen) {
                if !versions.contains(&v) {
                    versions.push(v);
                }
            }
        }
        versions.sort_unstable();
        versions
    }
}

/// `at`, moved inside the leaf's validity when it falls outside (an expired leaf's path is
/// judged as of when it was valid); `at` when the leaf cannot be read.
fn within_validity(leaf: &CertificateDer<'_>, at: UnixTime) -> UnixTime {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf) else { return at };
    let (from, to) =
        (cert.validity().not_before.timestamp(), cert.validity().not_after.timestamp());
    let now = at.as_secs() as i64;
    let inside = if now < from || now > to { from + (to - from) / 2 } else { now };
    UnixTime::since_unix_epoch(Duration::from_secs(inside.max(0) as u64))
}

/// One semaphore per address, made when first needed.
struct PerHost {
    limit: usize,
    hosts: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
}

impl PerHost {
    fn new(limit: usize) -> PerHost {
        PerHost { limit: limit.max(1), hosts: Mutex::default() }
    }

    async fn acquire(&self, ip: IpAddr) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let semaphore = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
            hosts.entry(ip).or_insert_with(|| Arc::new(Semaphore::new(self.limit))).clone()
        };
        semaphore.acquire_owned().await.ok()
    }
}

/// Reverse DNS names, asked once per address per run.
#[derive(Default)]
struct ReverseNames {
    known: Mutex<HashMap<IpAddr, Option<String>>>,
}

impl ReverseNames {
    async fn lookup(&self, resolver: Option<&TokioResolver>, ip: IpAddr) -> Option<String> {
        if let Some(known) = self.known.lock().unwrap_or_else(|p| p.into_inner()).get(&ip) {
            return known.clone();
        }
        let name = match resolver {
            Some(resolver) => {
                let answer =
                    tokio::time::timeout(Duration::from_secs(3), resolver.reverse_lookup(ip)).await;
                answer.ok().and_then(Result::ok).and_then(|names| {
                    names.iter().next().map(|n| n.to_utf8().trim_end_matches('.').to_string())
                })
            }
            None => None,
        };
        let name = name.filter(|n| targets::is_dns_name(n));
        self.known.lock().unwrap_or_else(|p| p.into_inner()).insert(ip, name.clone());
        name
    }
}
