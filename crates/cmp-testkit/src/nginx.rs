//! A real nginx with a configuration the test writes: many TLS listeners on loopback, and
//! Debian's mail module for SMTP, IMAP and POP3 with STARTTLS (`libnginx-mod-mail`). For
//! network discovery tests, which need many kinds of endpoint at once.
//!
//! nginx runs in a process group of its own; dropping it stops the group (TERM, then KILL).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's dynamic mail module.
const MAIL_MODULE: &str = "/usr/lib/nginx/modules/ngx_mail_module.so";

/// A running nginx.
pub struct Nginx {
    dir: tempfile::TempDir,
    conf: PathBuf,
    child: Child,
}

impl Nginx {
    /// A directory for the files the configuration names (certificates, keys), made
    /// readable by nginx's workers.
    pub fn dir() -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    /// Starts nginx in `dir` with `body` (its `http { }` and `mail { }` blocks; the rest is
    /// added) and waits until every one of `ports` on 127.0.0.1 accepts.
    pub fn start(dir: tempfile::TempDir, body: &str, ports: &[u16]) -> Nginx {
        let d = dir.path().display().to_string();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        let mail = if body.contains("mail {") {
            format!("load_module {MAIL_MODULE};\n")
        } else {
            String::new()
        };
        let conf = dir.path().join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "{mail}daemon off;\nmaster_process on;\nworker_processes 1;\npid {d}/nginx.pid;\n\
                 error_log {d}/server.log;\nevents {{ worker_connections 256; }}\n{body}\n"
            ),
        )
        .unwrap();
        let check = Self::command(dir.path(), &conf)
            .args(["-t", "-q"])
            .output()
            .expect("nginx is installed (scripts/services-up)");
        assert!(
            check.status.success(),
            "nginx configuration test failed: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Self::command(dir.path(), &conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let nginx = Nginx { dir, conf, child };
        nginx.wait_for(ports);
        nginx
    }

    fn command(dir: &Path, conf: &Path) -> Command {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new("nginx");
        command.arg("-p").arg(dir).arg("-c").arg(conf).arg("-e").arg(dir.join("server.log"));
        command.process_group(0);
        command
    }

    /// Its directory (the files the configuration names).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// What nginx logged.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Reloads the configuration and the files it names (`nginx -s reload`), then waits a
    /// moment for the new workers.
    pub fn reload(&self) {
        let status = Self::command(self.dir.path(), &self.conf).args(["-s", "reload"]).status();
        assert!(status.unwrap().success(), "nginx reload: {}", self.log_text());
        std::thread::sleep(Duration::from_millis(500));
    }

    fn wait_for(&self, ports: &[u16]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in ports {
            while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
                assert!(Instant::now() < deadline, "nginx: nothing on {port}: {}", self.log_text());
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        crate::targets::stop_group(&mut self.child);
    }
}
