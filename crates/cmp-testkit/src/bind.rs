//! A real BIND 9 (`named`, Debian `bind9`) per test: one primary zone that accepts RFC 2136
//! updates signed with a TSIG key, on a free port of 127.0.0.1. `scripts/services-up`
//! installs it.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// The TSIG key's name in named.conf.
pub const KEY_NAME: &str = "cmp-acme";

/// A running `named`, stopped on drop.
pub struct Bind {
    /// UDP and TCP, 127.0.0.1.
    pub addr: SocketAddr,
    /// The zone (`dns.test`): every name in it has A 127.0.0.1.
    pub zone: String,
    /// The TSIG key (hmac-sha256), base64.
    pub secret: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bind {
    /// Starts `named` with zone `zone` and waits until it answers.
    pub async fn start(zone: &str) -> Bind {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        let port = free_port();
        let secret = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
        };
        let conf = format!(
            "options {{ directory \"{root}\"; listen-on port {port} {{ 127.0.0.1; }}; \
             listen-on-v6 {{ none; }}; pid-file \"{root}/named.pid\"; \
             session-keyfile \"{root}/session.key\"; managed-keys-directory \"{root}\"; \
             recursion no; dnssec-validation no; allow-query {{ any; }}; }};\n\
             controls {{ }};\n\
             key \"{KEY_NAME}\" {{ algorithm hmac-sha256; secret \"{secret}\"; }};\n\
             zone \"{zone}\" {{ type primary; file \"{root}/zone.db\"; \
             allow-update {{ key \"{KEY_NAME}\"; }}; }};\n"
        );
        let zone_file = format!(
            "$TTL 60\n@ IN SOA ns.{zone}. hostmaster.{zone}. 1 60 60 600 60\n\
             @ IN NS ns.{zone}.\n@ IN A 127.0.0.1\n* IN A 127.0.0.1\n"
        );
        std::fs::write(dir.path().join("named.conf"), conf).unwrap();
        std::fs::write(dir.path().join("zone.db"), zone_file).unwrap();
        let log = std::fs::File::create(dir.path().join("named.log")).unwrap();
        let child = Command::new("named")
            .arg("-g")
            .arg("-c")
            .arg(dir.path().join("named.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("named runs (./scripts/services-up installs bind9)");
        let mut bind = Bind {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            zone: zone.to_string(),
            secret,
            child,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = bind.child.try_wait() {
                panic!("named exited with {status}: {}", bind.log());
            }
            // Not "running": named prints "running on Linux ..." first thing, before its zones
            // load, and an update that comes then is a SERVFAIL.
            if bind.log().contains("all zones loaded") {
                return bind;
            }
            assert!(Instant::now() < deadline, "named did not start: {}", bind.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What named printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("named.log")).unwrap_or_default()
    }
}
