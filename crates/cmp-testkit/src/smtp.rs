//! A real SMTP relay for notification tests: Python's aiosmtpd (`scripts/smtp-sink.py`),
//! with STARTTLS and AUTH when asked, saving each message it accepts, or refusing every
//! recipient. `scripts/services-up` installs aiosmtpd into a venv the tests find here.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// The Python that has aiosmtpd: `$AIOSMTPD_PYTHON`, or the venv of `scripts/services-up`.
fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("AIOSMTPD_PYTHON") {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let venv = home.join(".cache/cmp/tools/aiosmtpd/bin/python");
    assert!(venv.is_file(), "aiosmtpd is not installed: run ./scripts/services-up");
    venv
}

/// How the relay behaves.
#[derive(Debug, Clone, Default)]
pub struct SmtpOptions {
    /// Certificate and key (PEM) for STARTTLS, which is then required.
    pub tls: Option<(String, String)>,
    /// A login the relay asks for.
    pub login: Option<(String, String)>,
    /// Refuse every recipient (550).
    pub refuse: bool,
}

/// A message the relay accepted.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    /// The whole message, headers and body.
    pub data: String,
    pub authenticated: bool,
    pub tls: bool,
}

/// A running relay, stopped on drop.
pub struct SmtpSink {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl SmtpSink {
    pub fn start(options: SmtpOptions) -> SmtpSink {
        let dir = tempfile::tempdir().unwrap();
        let mail = dir.path().join("mail");
        std::fs::create_dir(&mail).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/smtp-sink.py");
        // The port is free when picked but may be taken before the relay binds it (tests run
        // in parallel): a relay that does not start is tried again on another port.
        for _ in 0..5 {
            let port = free_port();
            let mut command = Command::new(python());
            command.arg(script).arg("--port").arg(port.to_string()).arg("--dir").arg(&mail);
            if let Some((cert, key)) = &options.tls {
                std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
                std::fs::write(dir.path().join("key.pem"), key).unwrap();
                command.arg("--cert").arg(dir.path().join("cert.pem"));
                command.arg("--key").arg(dir.path().join("key.pem"));
            }
            if let Some((user, password)) = &options.login {
                command.args(["--user", user, "--password", password]);
            }
            if options.refuse {
                command.arg("--refuse");
            }
            use std::os::unix::process::CommandExt;
            let mut child = command
                .process_group(0)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("python with aiosmtpd starts");
            let stdout = child.stdout.take().unwrap();
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).unwrap();
            if line.trim() == "ready" {
                return SmtpSink { port, dir, child };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("the SMTP relay did not start on any of five ports");
    }

    /// What the relay accepted so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let mut paths: Vec<_> = std::fs::read_dir(self.dir.path().join("mail"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    /// The messages, once there are at least `count` (the relay writes them as it answers
    /// the sender, so they are there when the send returns; this bounds a slow disk).
    pub fn wait_for(&self, count: usize) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let messages = self.messages();
            if messages.len() >= count || Instant::now() > deadline {
                return messages;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        crate::targets::stop_group(&mut self.child);
    }
}
