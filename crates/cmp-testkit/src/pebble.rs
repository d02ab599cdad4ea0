//! A real Pebble (Let's Encrypt's ACME test server) and pebble-challtestsrv per test, on free
//! ports, so that tests run side by side. `scripts/services-up` installs both (Debian `pebble`).
//!
//! challtestsrv answers every A query with 127.0.0.1 and serves the TXT records set through
//! its management API; its own http-01 responder is off, so the code under test serves
//! `http_port`, where Pebble validates.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::free_port;

/// Pebble's example EAB key id and HMAC (base64url), as in its packaged EAB config.
pub const EAB_KID: &str = "kid-1";
pub const EAB_HMAC: &str = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";

/// How to start Pebble.
#[derive(Debug, Clone, Copy, Default)]
pub struct PebbleOptions {
    /// Require External Account Binding (key [`EAB_KID`]).
    pub eab: bool,
    /// Percentage of good nonces Pebble rejects as bad (`PEBBLE_WFE_NONCEREJECT`).
    pub nonce_reject_percent: u8,
    /// The DNS server Pebble resolves with (e.g. a [`crate::bind::Bind`]); default:
    /// challtestsrv's.
    pub dns_server: Option<SocketAddr>,
}

/// A running Pebble and challtestsrv, stopped on drop.
pub struct Pebble {
    /// `https://127.0.0.1:<port>/dir`.
    pub directory: String,
    /// Management API, `https://127.0.0.1:<port>`.
    pub management: String,
    /// Where Pebble connects for http-01 validation (on 127.0.0.1).
    pub http_port: u16,
    /// challtestsrv's management API, `http://127.0.0.1:<port>`.
    pub challtestsrv: String,
    /// challtestsrv's DNS server: Pebble's resolver, and the one to check propagation at.
    pub dns: SocketAddr,
    /// The self-signed certificate of Pebble's listeners, PEM: what a client trusts.
    pub tls_pem: String,
    children: Vec<Child>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Pebble {
    /// Starts challtestsrv and Pebble and waits until Pebble's directory answers.
    pub async fn start(options: PebbleOptions) -> Pebble {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(options).await {
                Ok(pebble) => return pebble,
                Err(why) => last = why,
            }
        }
        panic!("Pebble did not start: {last}");
    }

    async fn try_start(options: PebbleOptions) -> Result<Pebble, String> {
        crate::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let made = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
            .args(["-nodes", "-days", "2", "-subj", "/CN=pebble"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            // webpki refuses a CA certificate as a server's own: make it an end entity.
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .args(["-addext", "extendedKeyUsage=serverAuth"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .map_err(|e| format!("cannot run openssl: {e}"))?;
        if !made.status.success() {
            return Err(String::from_utf8_lossy(&made.stderr).into_owned());
        }
        let tls_pem = std::fs::read_to_string(&cert).unwrap();
        let (api_port, management_port, http_port) = (free_port(), free_port(), free_port());
        let (dns_port, challtestsrv_port) = (free_port(), free_port());
        let mut config = json!({
            "listenAddress": format!("127.0.0.1:{api_port}"),
            "managementListenAddress": format!("127.0.0.1:{management_port}"),
            "certificate": cert,
            "privateKey": key,
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": options.eab,
        });
        if options.eab {
            config["externalAccountMACKeys"] = json!({ EAB_KID: EAB_HMAC });
        }
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, json!({ "pebble": config }).to_string()).unwrap();
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
        let mut children = Vec::new();
        let challtestsrv = Command::new("pebble-challtestsrv")
            .args(["-http01", "", "-https01", "", "-tlsalpn01", "", "-defaultIPv6", ""])
            .arg("-dns01")
            .arg(format!("127.0.0.1:{dns_port}"))
            .arg("-management")
            .arg(format!("127.0.0.1:{challtestsrv_port}"))
            .stdin(Stdio::null())
            .stdout(log("challtestsrv.log"))
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run pebble-challtestsrv (./scripts/services-up): {e}"))?;
        children.push(challtestsrv);
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .arg("-dnsserver")
            .arg(options.dns_server.map_or(format!("127.0.0.1:{dns_port}"), |a| a.to_string()))
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_AUTHZREUSE", "0")
            .env("PEBBLE_WFE_NONCEREJECT", options.nonce_reject_percent.to_string())
            .stdin(Stdio::null())
            .stdout(log("pebble.log"))
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run pebble (./scripts/services-up): {e}"))?;
        children.push(pebble);
        let ca = reqwest::Certificate::from_pem(tls_pem.as_bytes()).unwrap();
        let http = reqwest::Client::builder().add_root_certificate(ca).build().unwrap();
        let mut pebble = Pebble {
            directory: format!("https://127.0.0.1:{api_port}/dir"),
            management: format!("https://127.0.0.1:{management_port}"),
            http_port,
            challtestsrv: format!("http://127.0.0.1:{challtestsrv_port}"),
            dns: SocketAddr::from(([127, 0, 0, 1], dns_port)),
            tls_pem,
            children: Vec::new(),
            http,
            _dir: dir,
        };
        pebble.children = children;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            for child in &mut pebble.children {
                if let Ok(Some(status)) = child.try_wait() {
                    let logs = pebble.logs();
                    return Err(format!("a Pebble process exited with {status}: {logs}"));
                }
            }
            let directory = pebble.http.get(&pebble.directory).send().await;
            let challtestsrv = pebble
                .http
                .post(format!("{}/clear-txt", pebble.challtestsrv))
                .json(&json!({ "host": "ready.test." }))
                .send()
                .await;
            if directory.is_ok_and(|r| r.status().is_success()) && challtestsrv.is_ok() {
                return Ok(pebble);
            }
            if Instant::now() > deadline {
                return Err(format!("no answer within 15 s: {}", pebble.logs()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self._dir.path().join(name));
        format!(
            "pebble: {}\nchalltestsrv: {}",
            read("pebble.log").unwrap_or_default(),
            read("challtestsrv.log").unwrap_or_default()
        )
    }

    /// The root that Pebble's chains end in (made anew at each start), PEM.
    pub async fn root_pem(&self) -> String {
        let url = format!("{}/roots/0", self.management);
        let response = self.http.get(url).send().await.unwrap();
        assert!(response.status().is_success(), "roots/0: {}", response.status());
        response.text().await.unwrap()
    }

    /// The issuing intermediate, PEM.
    pub async fn intermediate_pem(&self) -> String {
        let url = format!("{}/intermediates/0", self.management);
        self.http.get(url).send().await.unwrap().text().await.unwrap()
    }

    /// What Pebble's management API says about a serial (lowercase hex): `Status` is `Valid`
    /// or `Revoked`.
    pub async fn cert_status(&self, serial_hex: &str) -> Value {
        let url = format!("{}/cert-status-by-serial/{serial_hex}", self.management);
        let response = self.http.get(url).send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "cert-status-by-serial: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// challtestsrv's URL for an API call, e.g. `set-txt`.
    pub fn challtestsrv_url(&self, call: &str) -> String {
        format!("{}/{call}", self.challtestsrv)
    }
}
