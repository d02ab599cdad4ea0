//! What every handler can reach.

use std::sync::Arc;

use cmp_domain::Clock;
use cmp_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;

use cmp_acme::Http01Responder;

use crate::adapter::{AdapterDirectory, LocalAdapters, RemoteAdapters};
use crate::auth::Caller;
use crate::auth::RoutePolicies;
use crate::config::Config;
use crate::core::locks::{InProcessLock, RenewalLock};
use crate::inventory::{Discovery, Inventory};
use crate::issuer::{Fleet, Issuer};
use crate::notify::Notifier;
use crate::people::People;
use crate::platform_ca::PlatformCa;

/// What every handler can reach: one pointer, so that the state a request's layers and
/// extractors each clone costs one reference count, not one per part. Its parts are read (and,
/// while the application is put together, replaced) through `Deref`; replacing one in a state
/// that is shared changes that copy only, as with a plain struct.
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

impl std::ops::DerefMut for AppState {
    fn deref_mut(&mut self) -> &mut AppParts {
        Arc::make_mut(&mut self.0)
    }
}

/// The parts of [`AppState`].
#[derive(Clone)]
pub struct AppParts {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    pub clock: Arc<dyn Clock>,
    pub policies: Arc<RoutePolicies>,
    pub metrics: PrometheusHandle,
    /// This role's OpenAPI document.
    pub openapi: Arc<utoipa::openapi::OpenApi>,
    /// What `/metrics` reads from the database, and when it last did.
    pub scrape: Arc<crate::metrics::ScrapeCache>,
    /// Private keys and credentials.
    pub secrets: Arc<dyn cmp_secrets::SecretStore>,
    /// Every adapter this process serves (adapter role), by kind.
    pub local_adapters: Arc<LocalAdapters>,
    /// Where the issuer reaches adapters: in-process, or the adapter role over HTTP.
    pub adapters: Arc<dyn AdapterDirectory>,
    /// One scheduler per managed certificate at a time.
    pub renewal_lock: Arc<dyn RenewalLock>,
    /// CMP's ACME http-01 responder, served on `acme.http01_listen` when set.
    pub http01: Option<Arc<Http01Responder>>,
    /// The issuance workflow (issuer role).
    pub issuer: Arc<Issuer>,
    /// Import, queries and ownership of the inventory (inventory role).
    pub inventory: Arc<Inventory>,
    /// Network scans and their runs (inventory role).
    pub discovery: Arc<Discovery>,
    /// Host agents: enrolment, deployments, jobs (issuer role).
    pub fleet: Arc<Fleet>,
    /// OpenID Connect logins, sessions and bearer JWTs.
    pub people: Arc<People>,
    /// Notification rules, their evaluation and deliveries (issuer role).
    pub notifier: Arc<Notifier>,
}

impl AppState {
    /// The state of a role, without routes yet (`policies` and `openapi` are filled in by
    /// `app::build`).
    pub fn assemble(
        config: Arc<Config>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        secrets: Arc<dyn cmp_secrets::SecretStore>,
        agent_ca: Arc<PlatformCa>,
    ) -> anyhow::Result<AppState> {
        let http01 = config.acme.http01_listen.map(|_| Arc::new(Http01Responder::default()));
        let local_adapters = Arc::new(LocalAdapters::new(
            store.clone(),
            secrets.clone(),
            clock.clone(),
            config.ca_public_url(),
            http01.clone(),
        ));
        let adapters: Arc<dyn AdapterDirectory> = if config.issuer.adapter_url.is_empty() {
            local_adapters.clone()
        } else {
            Arc::new(RemoteAdapters::new(
                &config.issuer.adapter_url,
                config.issuer.adapter_token.expose(),
            )?)
        };
        let issuer = Arc::new(Issuer::new(
            store.clone(),
            adapters.clone(),
            secrets.clone(),
            clock.clone(),
            config.issuer.clone(),
        ));
        let inventory = Arc::new(Inventory::new(store.clone(), clock.clone()));
        let discovery = Arc::new(
            Discovery::new(store.clone(), clock.clone(), config.discovery.clone())
                .map_err(anyhow::Error::msg)?,
        );
        let fleet = Arc::new(Fleet::new(
            store.clone(),
            secrets.clone(),
            clock.clone(),
            agent_ca,
            issuer.clone(),
            inventory.clone(),
            config.issuer.agent_discovery_interval_hours,
        ));
        let people = Arc::new(People::new(&config, store.clone(), clock.clone())?);
        let notifier = Arc::new(Notifier::new(
            store.clone(),
            secrets.clone(),
            clock.clone(),
            adapters.clone(),
            config.notify.clone(),
        )?);
        Ok(AppState(Arc::new(AppParts {
            people,
            notifier,
            store,
            config,
            clock,
            policies: Arc::default(),
            metrics: crate::metrics::handle(),
            openapi: Arc::new(utoipa::openapi::OpenApi::default()),
            scrape: Arc::default(),
            secrets,
            local_adapters,
            adapters,
            renewal_lock: Arc::new(InProcessLock::default()),
            http01,
            issuer,
            inventory,
            discovery,
            fleet,
        })))
    }

    /// Microseconds since the epoch, now: the time stamp of audit events.
    pub fn now_us(&self) -> i64 {
        unix_micros(self.clock.now())
    }

    /// The audit context of a change `caller` makes now.
    pub fn audit_context(&self, caller: &Caller) -> cmp_store::AuditContext {
        crate::core::context::caller_context(caller, self.now_us())
    }

    /// Expiring window of the inventory, in seconds.
    pub fn expiry_window_secs(&self) -> i64 {
        self.config.inventory.expiry_window_days.saturating_mul(86_400)
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    // The one place the server reads the system clock: everything else is handed this.
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }
}

/// Microseconds since the epoch.
pub fn unix_micros(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}
