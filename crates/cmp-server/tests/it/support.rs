//! Spawning the app and making test certificates.

use std::sync::{Arc, Mutex};

use cmp_api::TokenCreate;
use cmp_client::Client;
use cmp_domain::{Clock, Role};
use cmp_server::config::Config;
use cmp_server::state::AppState;
use cmp_store::{AuditQuery, AuditStore, CertificateQuery, CertificateStore, SqlStore};
use cmp_testkit::{DbKind, TestDb};
use time::OffsetDateTime;

/// A server on port 0 with its data in `data_dir` and its database `db`.
fn test_config(db: &TestDb, data_dir: &std::path::Path) -> Config {
    // What cmpd's main does first: the server's clients and the test's own need it.
    cmp_testkit::install_crypto_provider();
    let mut config = Config::default();
    config.listen = Some("127.0.0.1:0".parse().unwrap());
    config.data_dir = data_dir.to_path_buf();
    config.database.url = Some(db.url.clone());
    config.database.max_connections = 4;
    config
}

/// A running server with a fresh database.
pub struct TestApp {
    pub kind: DbKind,
    pub base: String,
    pub admin_token: String,
    pub admin: Client,
    pub store: Arc<SqlStore>,
    /// The configuration the server was started with.
    pub config: Config,
    server: Option<cmp_server::Server>,
    _db: TestDb,
    _data: tempfile::TempDir,
}

impl TestApp {
    pub async fn spawn(kind: DbKind) -> TestApp {
        Self::spawn_with(kind, |_| {}).await
    }

    pub async fn spawn_with(kind: DbKind, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let db = TestDb::new(kind).await;
        let data = tempfile::tempdir().unwrap();
        let mut config = test_config(&db, data.path());
        adjust(&mut config);
        let server = cmp_server::start(config.clone()).await.expect("server starts");
        let admin_token = server.admin_token.clone().expect("first start makes an admin token");
        TestApp::around(kind, server, config, admin_token, db, data).await
    }

    /// The test's view of a started server.
    async fn around(
        kind: DbKind,
        server: cmp_server::Server,
        config: Config,
        admin_token: String,
        db: TestDb,
        data: tempfile::TempDir,
    ) -> TestApp {
        let base = format!("{}://{}", server.scheme, server.addr);
        let store = Arc::new(SqlStore::connect(&db.url, 2).await.unwrap());
        // The platform CA in `http.tls.mode = "auto"` (with files, the test brings its own).
        let ca =
            std::fs::read(data.path().join("ca.pem")).ok().filter(|_| server.scheme == "https");
        let admin = match &ca {
            Some(ca) => Client::with_ca_bundle(&base, Some(admin_token.clone()), ca).unwrap(),
            None => Client::new(&base, Some(admin_token.clone())).unwrap(),
        };
        TestApp {
            kind,
            admin,
            base,
            admin_token,
            store,
            config,
            server: Some(server),
            _db: db,
            _data: data,
        }
    }

    /// An adapter role on a fresh database, and a server of role `all` on the same database
    /// and data directory whose issuer reaches the CA only over HTTP through that adapter role.
    pub async fn spawn_with_adapter_role(
        kind: DbKind,
        adjust: impl FnOnce(&mut Config),
    ) -> (TestApp, cmp_server::Server) {
        let db = TestDb::new(kind).await;
        let data = tempfile::tempdir().unwrap();
        let mut config = test_config(&db, data.path());
        let mut adapter_config = config.clone();
        adapter_config.role = cmp_server::config::ServerRole::Adapter;
        let adapter = cmp_server::start(adapter_config).await.expect("adapter role starts");
        let admin_token = adapter.admin_token.clone().expect("first start makes an admin token");
        config.issuer.adapter_url = format!("http://{}", adapter.addr);
        config.issuer.adapter_token = admin_token.as_str().into();
        adjust(&mut config);
        let server = cmp_server::start(config.clone()).await.expect("server starts");
        (TestApp::around(kind, server, config, admin_token, db, data).await, adapter)
    }

    /// Another server of role `all` on this app's database and data directory: a replica.
    pub async fn start_replica(&self, adjust: impl FnOnce(&mut Config)) -> cmp_server::Server {
        let mut config = test_config(&self._db, self._data.path());
        adjust(&mut config);
        cmp_server::start(config).await.expect("replica starts")
    }

    /// (Re)starts an adapter role on this app's database and data directory, at `addr`.
    pub async fn start_adapter_role(&self, addr: std::net::SocketAddr) -> cmp_server::Server {
        let mut config = test_config(&self._db, self._data.path());
        config.role = cmp_server::config::ServerRole::Adapter;
        config.listen = Some(addr);
        cmp_server::start(config).await.expect("adapter role starts")
    }

    /// The platform CA of an HTTPS server (`http.tls.mode = "auto"`), which its clients trust.
    pub fn platform_ca(&self) -> Option<Vec<u8>> {
        let ca = std::fs::read(self.data_dir().join("ca.pem")).ok();
        ca.filter(|_| self.base.starts_with("https://"))
    }

    pub fn client(&self, token: Option<&str>) -> Client {
        let token = token.map(str::to_string);
        match self.platform_ca() {
            Some(ca) => Client::with_ca_bundle(&self.base, token, &ca).unwrap(),
            None => Client::new(&self.base, token).unwrap(),
        }
    }

    pub fn http(&self) -> reqwest::Client {
        self.http_builder().build().unwrap()
    }

    /// `/metrics` once it shows the database's figures: the first scrape waits for the first
    /// count only so long, and a busy machine may take longer.
    pub async fn counted_metrics(&self) -> String {
        for _ in 0..100 {
            let metrics = self.http().get(self.url("/metrics")).send().await.unwrap();
            let metrics = metrics.text().await.unwrap();
            if metrics.contains("# TYPE cmp_certificates_by_owner") {
                return metrics;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("/metrics never showed the database's figures");
    }

    /// A reqwest client that trusts the server's certificate when it serves HTTPS.
    pub fn http_builder(&self) -> reqwest::ClientBuilder {
        let mut builder = reqwest::Client::builder();
        if let Some(ca) = self.platform_ca() {
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap());
        }
        builder
    }

    /// Enrols an agent named `name` with a fresh bootstrap token: its identity (certificate
    /// then key, PEM) and what the server answered.
    pub async fn enroll_agent(&self, name: &str) -> (Vec<u8>, cmp_api::Enrolled) {
        let token = self.admin.create_bootstrap_token(&Default::default()).await.unwrap().token;
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let request = cmp_api::EnrollRequest { token, name: name.into(), csr };
        let enrolled = self.client(None).enroll(&request).await.unwrap();
        let identity = format!("{}{}", enrolled.identity.certificate_pem, key.serialize_pem());
        (identity.into_bytes(), enrolled)
    }

    /// The client of an enrolled agent (mTLS with `identity`); the server must serve HTTPS.
    pub fn agent_client(&self, identity: &[u8]) -> Client {
        let ca = self.platform_ca().expect("agents need HTTPS");
        Client::with_identity(&self.base, &ca, identity).unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a JSON body as the admin.
    pub async fn send_json(&self, method: &str, path: &str, body: &str) -> reqwest::Response {
        self.http()
            .request(method.parse().unwrap(), self.url(path))
            .bearer_auth(&self.admin_token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// A token with `role`; developers are scoped to `owners`.
    pub async fn token(&self, role: Role, owners: &[&str]) -> String {
        self.admin
            .create_token(&TokenCreate {
                name: format!("{role:?} test"),
                role,
                owners: owners.iter().map(|s| s.to_string()).collect(),
                expires_in_days: None,
            })
            .await
            .unwrap()
            .token
            .expose()
            .clone()
    }

    /// Rows in the inventory and events in the audit trail, to prove refusals wrote nothing.
    pub async fn counts(&self) -> (usize, usize) {
        let mut q = CertificateQuery::all(0);
        q.limit = 500;
        let certs = self.store.list_certificates(&q).await.unwrap().items.len();
        let audit = self
            .store
            .list_audit(&AuditQuery { limit: 500, ..Default::default() })
            .await
            .unwrap()
            .items
            .len();
        (certs, audit)
    }

    /// Where the server serves `/metrics` on its own, if it does.
    pub fn server_metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.server.as_ref()?.metrics_addr
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self._data.path()
    }

    /// Stops the server and starts a new one (a new process's state) on the same database and
    /// data directory.
    pub async fn restart(&mut self, adjust: impl FnOnce(&mut Config)) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.unwrap();
        }
        let mut config = test_config(&self._db, self._data.path());
        adjust(&mut config);
        let server = cmp_server::start(config.clone()).await.expect("server restarts");
        self.config = config;
        self.base = format!("{}://{}", server.scheme, server.addr);
        self.admin = self.client(Some(&self.admin_token.clone()));
        self.server = Some(server);
    }

    /// The issuer's state on this app's database, secrets and adapters, with the issuer on
    /// `clock`: what `scheduler::tick` runs on, so that a test takes the scheduler through
    /// hours of renewals in a moment instead of sleeping. The CAs keep the system clock, as a
    /// real CA keeps its own (Vault checks the lifetime it signs against it).
    pub async fn issuer_state(&self, clock: Arc<TestClock>) -> AppState {
        let store = Arc::new(SqlStore::connect(&self._db.url, 4).await.unwrap());
        let secrets =
            cmp_server::open_secrets(&self.config, &cmp_server::state::SystemClock).await.unwrap();
        let config = Arc::new(self.config.clone());
        let system = Arc::new(cmp_server::state::SystemClock);
        let agent_ca = cmp_server::load_agent_ca(secrets.as_ref(), system.as_ref()).await.unwrap();
        let mut state =
            AppState::assemble(config, store, system, secrets, agent_ca.clone()).unwrap();
        state.issuer = Arc::new(cmp_server::issuer::Issuer::new(
            state.store.clone(),
            state.adapters.clone(),
            state.secrets.clone(),
            clock.clone(),
            state.config.issuer.clone(),
        ));
        let discovery = cmp_server::inventory::Discovery::new(
            state.store.clone(),
            clock.clone(),
            state.config.discovery.clone(),
        );
        state.discovery = Arc::new(discovery.unwrap());
        let notifier = cmp_server::notify::Notifier::new(
            state.store.clone(),
            state.secrets.clone(),
            clock.clone(),
            state.adapters.clone(),
            state.config.notify.clone(),
        );
        state.notifier = Arc::new(notifier.unwrap());
        state.fleet = Arc::new(cmp_server::issuer::Fleet::new(
            state.store.clone(),
            state.secrets.clone(),
            clock.clone(),
            agent_ca,
            state.issuer.clone(),
            state.inventory.clone(),
            state.config.issuer.agent_discovery_interval_hours,
        ));
        state.clock = clock;
        state
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.unwrap();
        }
    }
}

/// A clock the test sets.
#[derive(Debug)]
pub struct TestClock(Mutex<OffsetDateTime>);

impl TestClock {
    /// Starts at `unix` seconds.
    pub fn at(unix: i64) -> Arc<TestClock> {
        Arc::new(TestClock(Mutex::new(OffsetDateTime::from_unix_timestamp(unix).unwrap())))
    }

    pub fn set(&self, unix: i64) {
        *self.0.lock().unwrap() = OffsetDateTime::from_unix_timestamp(unix).unwrap();
    }
}

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

/// Runs the body once per database (on HTTPS with `https`: agents need it).
macro_rules! on_both_databases {
    (|$app:ident| $body:block) => {{
        for kind in cmp_testkit::DbKind::ALL {
            let $app = crate::support::TestApp::spawn(kind).await;
            $body
            $app.stop().await;
        }
    }};
    (https, |$app:ident| $body:block) => {{
        for kind in cmp_testkit::DbKind::ALL {
            let $app = crate::support::TestApp::spawn_with(kind, |c| {
                c.http.tls.mode = cmp_server::config::TlsMode::Auto;
            })
            .await;
            $body
            $app.stop().await;
        }
    }};
}
pub(crate) use on_both_databases;

/// A CA and leaves it signs, made with rcgen.
pub struct TestPki {
    pub ca_cert: rcgen::Certificate,
    pub ca_issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestPki {
    pub fn new() -> TestPki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, "CMP Test CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_cert = params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(params, ca_key);
        TestPki { ca_cert, ca_issuer: issuer }
    }

    /// A leaf for `names`, valid for `days` from now.
    pub fn leaf(&self, names: &[&str], days: i64) -> (rcgen::Certificate, rcgen::KeyPair) {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, names[0]);
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(days);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca_issuer).unwrap();
        (cert, key)
    }
}
