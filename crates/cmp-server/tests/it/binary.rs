//! The `cmpd` binary as a person starts it: first-start token, logs, graceful stop.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cmp_testkit::free_port;

#[tokio::test]
async fn cmpd_prints_the_token_once_keeps_it_out_of_logs_and_stops_gracefully() {
    // reqwest needs a crypto provider even for plain HTTP; run alone, no other test set it.
    cmp_testkit::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // The file CMPD_CONFIG names is read (a provider no one reaches: nothing asks it here).
    let config = dir.path().join("cmpd.toml");
    std::fs::write(
        &config,
        "[[auth.oidc.providers]]\nname = \"from-file\"\nissuer = \"http://127.0.0.1:1\"\n\
         client_id = \"cmp\"\nclient_secret = \"s3cret\"\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cmpd"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("CMPD_CONFIG", &config)
        .env("CMPD_DATA_DIR", dir.path())
        .env("RUST_LOG", "debug")
        .env_remove("CMPD_DATABASE__URL")
        // The shell the README sets up for cmpctl: none of it is cmpd's configuration.
        .env("CMP_SERVER", "http://localhost:3000")
        .env("CMP_TOKEN", "cmp_not-a-real-token")
        .env("CMP_P12_PASSWORD", "secret")
        .env("CMP_CA_FILE", "/nonexistent/ca.pem")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read as it comes: a debug log fills a pipe's buffer long before the process stops.
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut logs = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut logs).unwrap();
        logs
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    while !printed.contains("Try:") {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "cmpd exited early: {printed}");
        printed.push_str(&line);
    }
    assert!(printed.contains(&format!("http://localhost:{port}")), "{printed}");
    // stdout is a pipe here, as under systemd or in a container: the token stays in its file.
    let token_file = dir.path().join("admin-token");
    let token = std::fs::read_to_string(&token_file).unwrap().trim().to_string();
    assert!(!printed.contains(&token[4..]), "the token went to a non-terminal stdout");
    assert!(printed.contains(&token_file.display().to_string()), "{printed}");

    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while http.get(format!("{base}/readyz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "cmpd did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resp =
        http.get(format!("{base}/api/v1/certificates")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let providers = http.get(format!("{base}/auth/providers")).send().await.unwrap();
    let providers = providers.text().await.unwrap();
    assert!(providers.contains("from-file") && !providers.contains("s3cret"), "{providers}");
    let resp = http
        .get(format!("{base}/api/v1/tokens"))
        .bearer_auth(format!("{token}x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // SIGTERM: a clean, zero exit.
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let logs = stderr.join().unwrap();
    assert!(logs.contains("\"request_id\""), "JSON logs with request ids: {logs}");
    // Each request is logged once, by its route template, with status and caller.
    let line = logs
        .lines()
        .find(|l| l.contains("\"route\":\"/api/v1/certificates\""))
        .unwrap_or_else(|| panic!("no request line: {logs}"));
    assert!(line.contains("\"status\":200") && line.contains("\"actor\":\"token:"), "{line}");
    assert!(line.contains("\"duration_ms\"") && line.contains("\"method\":\"GET\""), "{line}");
    assert!(!logs.contains(&token[4..]), "the token leaked into the logs");
    assert!(!logs.contains("s3cret"), "the provider's client secret leaked into the logs");
    assert!(logs.contains("shutting down"));
}

#[test]
fn config_check_names_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cmp.toml");
    std::fs::write(&file, "[inventory]\nexpiry_window_dayz = 3\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cmpd"))
        .args(["config", "check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expiry_window_dayz"));
    std::fs::write(&file, "[database]\nurl = \"postgres://cmp:hunter2@db/cmp\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cmpd"))
        .args(["config", "check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("postgres://***@db/cmp") && !text.contains("hunter2"), "{text}");
}
