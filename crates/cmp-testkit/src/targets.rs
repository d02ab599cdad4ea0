//! Real TLS servers to deploy certificates to: nginx, Apache httpd and HAProxy (Debian's, from
//! `/usr/sbin`), each with its own minimal configuration in a temporary directory, on a free
//! port, as `/work/shared/test-services/target-*.sh` run them. Each exposes the files it
//! serves, its port and the argv of its configuration test and its reload, so a test can
//! write an agent configuration for it. Also a test CA (openssl CLI) and a check of what a
//! server serves with `openssl s_client`: an implementation apart from the agent's own.
//!
//! Each server runs in a process group of its own; dropping it stops the group (TERM, then
//! KILL), workers included, and reaps the process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// A test CA (EC P-256, openssl CLI) that signs server certificates.
pub struct TestCa {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    dir: tempfile::TempDir,
}

/// A server certificate for `localhost` and `127.0.0.1` and its key.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its key (PKCS#8), PEM.
    pub key_pem: String,
    /// SHA-256 of the certificate's DER, lowercase hex (as `openssl x509 -fingerprint` says).
    pub fingerprint: String,
}

fn openssl(args: &[&str], dir: &Path) {
    let output = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl TestCa {
    /// A new CA.
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "30",
                "-subj",
                "/CN=cmp-agent test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            dir.path(),
        );
        std::fs::write(
            dir.path().join("leaf.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let ca_pem = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
        TestCa { ca_pem, dir }
    }

    /// A new leaf with its own key, `CN=<name>`.
    pub fn leaf(&self, name: &str) -> Leaf {
        let dir = self.dir.path();
        let (key, csr, cert) =
            (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
        openssl(
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
            dir,
        );
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "30",
                "-extfile",
                "leaf.ext",
                "-out",
                &cert,
            ],
            dir,
        );
        Leaf {
            cert_pem: std::fs::read_to_string(dir.join(&cert)).unwrap(),
            key_pem: std::fs::read_to_string(dir.join(&key)).unwrap(),
            fingerprint: crate::openssl::x509_view(dir.join(&cert)).fingerprint,
        }
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    Nginx,
    Apache,
    Haproxy,
}

/// A running TLS server on `127.0.0.1:<port>`, stopped (with its workers) on drop.
pub struct TlsServer {
    pub kind: ServerKind,
    pub port: u16,
    /// Its directory: configuration, logs, pid file; the served files are in `tls/`.
    pub dir: PathBuf,
    /// nginx: leaf + chain; Apache: the leaf (and chain). HAProxy: the one PEM (= `pem`).
    pub cert: PathBuf,
    /// The key file (nginx, Apache); None for HAProxy.
    pub key: Option<PathBuf>,
    /// HAProxy's PEM (leaf, chain, key); None for the others.
    pub pem: Option<PathBuf>,
    /// The configuration test, argv.
    pub test_argv: Vec<String>,
    /// The reload, argv.
    pub reload_argv: Vec<String>,
    /// The log the server writes (shown when it fails to start).
    pub log: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        stop_group(&mut self.child);
    }
}

/// Stops a server started in a process group of its own, workers included, and reaps it.
pub(crate) fn stop_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let signal = |name: &str| {
        let _ = Command::new("kill").args([name, "--", &group]).stderr(Stdio::null()).status();
    };
    // TERM lets the master stop its workers; KILL the group for whatever is left.
    signal("-TERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    signal("-KILL");
    let _ = child.kill();
    let _ = child.wait();
}

fn strings(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<String> {
    args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect()
}

impl TlsServer {
    /// nginx serving `initial` (`ssl_certificate` = `cert`, `ssl_certificate_key` = `key`).
    pub fn nginx(initial: &Leaf) -> TlsServer {
        Self::start(ServerKind::Nginx, initial)
    }

    /// Apache httpd serving `initial` (`SSLCertificateFile` = `cert`,
    /// `SSLCertificateKeyFile` = `key`).
    pub fn apache(initial: &Leaf) -> TlsServer {
        Self::start(ServerKind::Apache, initial)
    }

    /// HAProxy serving `initial` (`crt` = `pem`, leaf then key).
    pub fn haproxy(initial: &Leaf) -> TlsServer {
        Self::start(ServerKind::Haproxy, initial)
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Whether the server's main process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What the server logged.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn start(kind: ServerKind, initial: &Leaf) -> TlsServer {
        let mut last = String::new();
        // A free port can be taken between the check and the bind: try again elsewhere.
        for _ in 0..3 {
            match Self::try_start(kind, initial) {
                Ok(server) => return server,
                Err(why) => last = why,
            }
        }
        panic!("{kind:?} did not start: {last}");
    }

    fn try_start(kind: ServerKind, initial: &Leaf) -> Result<TlsServer, String> {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt;

        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        // Apache's and nginx's workers run as www-data / nobody and must reach their files.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let tls = dir.join("tls");
        std::fs::create_dir(&tls).unwrap();
        let port = free_port();
        let log = dir.join("server.log");
        let (mut command, cert, key, pem, test_argv, reload_argv);
        match kind {
            ServerKind::Nginx => {
                std::fs::create_dir(dir.join("tmp")).unwrap();
                let conf = dir.join("nginx.conf");
                cert = tls.join("server.pem");
                key = Some(tls.join("server.key"));
                pem = None;
                std::fs::write(&cert, &initial.cert_pem).unwrap();
                std::fs::write(key.as_ref().unwrap(), &initial.key_pem).unwrap();
                let d = dir.display();
                std::fs::write(
                    &conf,
                    format!(
                        "daemon off;\nmaster_process on;\nworker_processes 1;\npid {d}/nginx.pid;\n\
                         error_log {d}/server.log;\nevents {{ worker_connections 64; }}\n\
                         http {{\n  access_log off;\n  client_body_temp_path {d}/tmp/body;\n\
                         proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fastcgi;\n\
                         uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n\
                         server {{\n    listen 127.0.0.1:{port} ssl;\n    server_name localhost;\n\
                         ssl_certificate {};\n    ssl_certificate_key {};\n\
                         location / {{ return 200 \"nginx ok\\n\"; }}\n  }}\n}}\n",
                        cert.display(),
                        key.as_ref().unwrap().display()
                    ),
                )
                .unwrap();
                let base = strings(&[&"nginx", &"-p", &dir, &"-c", &conf, &"-e", &log]);
                test_argv = [base.clone(), strings(&[&"-t", &"-q"])].concat();
                reload_argv = [base.clone(), strings(&[&"-s", &"reload"])].concat();
                command = Command::new("nginx");
                command.args(&base[1..]);
            }
            ServerKind::Apache => {
                std::fs::create_dir(dir.join("run")).unwrap();
                let conf = dir.join("httpd.conf");
                cert = tls.join("server.pem");
                key = Some(tls.join("server.key"));
                pem = None;
                std::fs::write(&cert, &initial.cert_pem).unwrap();
                std::fs::write(key.as_ref().unwrap(), &initial.key_pem).unwrap();
                let (d, m) = (dir.display(), "/usr/lib/apache2/modules");
                std::fs::write(
                    &conf,
                    format!(
                        "ServerRoot {d}\nDefaultRuntimeDir {d}/run\nPidFile {d}/httpd.pid\n\
                         Mutex file:{d}/run default\nErrorLog {d}/server.log\nLogLevel warn\n\
                         ServerName localhost\nUser www-data\nGroup www-data\n\
                         LoadModule mpm_event_module {m}/mod_mpm_event.so\n\
                         LoadModule authz_core_module {m}/mod_authz_core.so\n\
                         LoadModule socache_shmcb_module {m}/mod_socache_shmcb.so\n\
                         LoadModule ssl_module {m}/mod_ssl.so\n\
                         SSLSessionCache shmcb:{d}/run/ssl_scache(512000)\n\
                         Listen 127.0.0.1:{port}\n<VirtualHost 127.0.0.1:{port}>\n  SSLEngine on\n\
                         SSLCertificateFile {}\n  SSLCertificateKeyFile {}\n  DocumentRoot {d}\n\
                         </VirtualHost>\n",
                        cert.display(),
                        key.as_ref().unwrap().display()
                    ),
                )
                .unwrap();
                let base = strings(&[&"apache2", &"-d", &dir, &"-f", &conf]);
                test_argv = [base.clone(), strings(&[&"-t"])].concat();
                reload_argv = [base.clone(), strings(&[&"-k", &"graceful"])].concat();
                command = Command::new("apache2");
                command.args(&base[1..]).arg("-DFOREGROUND");
            }
            ServerKind::Haproxy => {
                let cfg = dir.join("haproxy.cfg");
                cert = tls.join("server.pem");
                key = None;
                pem = Some(cert.clone());
                std::fs::write(&cert, format!("{}{}", initial.cert_pem, initial.key_pem)).unwrap();
                std::fs::write(
                    &cfg,
                    format!(
                        "global\n  log stderr format raw local0 notice\ndefaults\n  mode http\n\
                         log global\n  timeout connect 5s\n  timeout client 30s\n\
                         timeout server 30s\nfrontend fe_tls\n  bind 127.0.0.1:{port} ssl crt {}\n\
                         http-request return status 200 content-type text/plain string \"haproxy ok\"\n",
                        cert.display()
                    ),
                )
                .unwrap();
                test_argv = strings(&[&"haproxy", &"-c", &"-q", &"-f", &cfg]);
                // Filled in below, once the master's pid is known.
                reload_argv = Vec::new();
                command = Command::new("haproxy");
                command.arg("-W").arg("-f").arg(&cfg).arg("-p").arg(dir.join("haproxy.pid"));
            }
        }
        let check = Command::new(&test_argv[0]).args(&test_argv[1..]).output().unwrap();
        if !check.status.success() {
            panic!(
                "{kind:?} configuration test failed: {}{}",
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr)
            );
        }
        let output = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .map_err(|e| format!("cannot run {kind:?}: {e}"))?;
        let reload_argv = if kind == ServerKind::Haproxy {
            vec!["kill".into(), "-USR2".into(), child.id().to_string()]
        } else {
            reload_argv
        };
        let mut server = TlsServer {
            kind,
            port,
            dir,
            cert,
            key,
            pem,
            test_argv,
            reload_argv,
            log,
            child,
            _dir: temp,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if !server.is_running() {
                return Err(format!("exited: {}", server.log_text()));
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(format!("no listener on {port} within 10 s: {}", server.log_text()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// What `127.0.0.1:<port>` serves for `sni`, by `openssl s_client`: the SHA-256 of the leaf's
/// DER, lowercase hex, or None when no handshake completes within 5 s.
pub fn served_fingerprint(port: u16, sni: &str) -> Option<String> {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", sni])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while matches!(child.try_wait(), Ok(None)) {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let start = text.find("-----BEGIN CERTIFICATE-----")?;
    let end = text[start..].find("-----END CERTIFICATE-----")? + start + 25;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("served.pem");
    std::fs::write(&path, &text[start..end]).unwrap();
    Some(crate::openssl::x509_view(&path).fingerprint)
}

/// Polls (every 100 ms, up to `timeout`) until `127.0.0.1:<port>` serves `fingerprint`;
/// `Err` says what was served last.
pub fn wait_served(
    port: u16,
    sni: &str,
    fingerprint: &str,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let served = served_fingerprint(port, sni);
        if served.as_deref() == Some(fingerprint) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("port {port} serves {served:?}, not {fingerprint}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
