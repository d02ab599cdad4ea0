//! Test support: a fresh database per test run, on SQLite or on the local PostgreSQL server;
//! a real OpenBao server; a real Pebble ACME server; a real BIND; real nginx, Apache and
//! HAProxy to deploy certificates to; a real OpenID provider.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test support: failing loudly is the point

pub mod bind;
#[cfg(test)]
mod dependency_rules;
pub mod nginx;
pub mod oidc;
pub mod openbao;
pub mod openssl;
pub mod pebble;
pub mod smtp;
pub mod targets;

/// Installs aws-lc-rs as the process's rustls crypto provider, as each binary's `main` does
/// (library code never installs it). A test that builds a TLS or HTTP client, directly or
/// through a library, calls this first; the servers here call it themselves. Idempotent.
pub fn install_crypto_provider() {
    // Err only when a provider is installed already: aws-lc-rs, the workspace's only one.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A port free on 127.0.0.1 (TCP and UDP) a moment ago, for a server that is told its port
/// before it binds it. It is taken below the kernel's ephemeral range (32768-60999 here):
/// there, an outgoing connection or another test's `:0` bind could take it in the meantime
/// (seen: Pebble's http-01 port, taken while Pebble started).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Test processes running side by side start at different places.
    let start = std::process::id().wrapping_mul(7_919);
    for _ in 0..COUNT {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(FIRST + start.wrapping_add(n) % COUNT).unwrap();
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + COUNT);
}

use std::path::PathBuf;

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

impl DbKind {
    pub const ALL: [DbKind; 2] = [DbKind::Sqlite, DbKind::Postgres];
}

/// Admin URL of the local PostgreSQL server (trust auth); `CMP_TEST_PG_URL` overrides it.
pub fn postgres_admin_url() -> String {
    std::env::var("CMP_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database that exists for as long as this value lives.
pub struct TestDb {
    /// Connection URL for the store.
    pub url: String,
    pub kind: DbKind,
    dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    /// Creates an empty database of the given kind.
    pub async fn new(kind: DbKind) -> TestDb {
        match kind {
            DbKind::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path: PathBuf = dir.path().join("cmp.db");
                TestDb {
                    url: format!("sqlite://{}?mode=rwc", path.display()),
                    kind,
                    dir: Some(dir),
                    pg_name: None,
                }
            }
            DbKind::Postgres => {
                let name = format!("cmp_test_{}", uuid::Uuid::now_v7().simple());
                let admin = postgres_admin_url();
                sqlx::any::install_default_drivers();
                let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL at {admin} must be running: {e}"));
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
                TestDb { url: format!("{base}/{name}"), kind, dir: None, pg_name: Some(name) }
            }
        }
    }

    /// Directory of the SQLite file (None for PostgreSQL).
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_ref().map(|d| d.path())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop the database from a plain thread: Drop may run inside or outside a runtime.
        let admin = postgres_admin_url();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let mut conn =
                    <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}
