//! The configuration file: what it accepts, and errors that name the target and the field.

use cmp_agent::{AgentConfig, TargetKind};

const GOOD: &str = r#"
server = "https://cmp.example:3000"
ca_file = "/etc/cmp/ca.pem"
state_dir = "/var/lib/cmp-agent"
[discovery]
paths = ["/etc/ssl/private"]
[targets.web]
kind = "nginx"
cert = "/etc/nginx/tls/web.pem"
key = "/etc/nginx/tls/web.key"
owner = "root"
group = "www-data"
mode = "0640"
verify = { address = "127.0.0.1:443", sni = "web.example.com" }
test = ["nginx", "-t"]
reload = ["nginx", "-s", "reload"]
[targets.lb]
kind = "haproxy"
pem = "/etc/haproxy/tls/lb.pem"
test = ["haproxy", "-c", "-f", "/etc/haproxy/haproxy.cfg"]
reload = ["systemctl", "reload", "haproxy"]
[targets.app]
kind = "file"
cert = "/srv/app/tls/cert.pem"
chain = "/srv/app/tls/chain.pem"
key = "/srv/app/tls/key.pem"
"#;

fn error_of(text: &str) -> String {
    AgentConfig::from_toml_str(text).unwrap_err().to_string()
}

#[test]
fn the_documented_example_is_valid() {
    let config = AgentConfig::from_toml_str(GOOD).unwrap();
    assert_eq!(config.targets.len(), 3);
    let web = config.target("web").unwrap();
    assert_eq!(web.config.kind, TargetKind::Nginx);
    let files: Vec<_> = web.config.files().into_iter().map(|f| f.field).collect();
    assert_eq!(files, ["key", "cert"], "the key is renamed into place first");
    let app: Vec<_> =
        config.target("app").unwrap().config.files().into_iter().map(|f| f.field).collect();
    assert_eq!(app, ["key", "cert", "chain"]);
    assert!(config.target("nope").is_none());
}

#[test]
fn a_relative_path_is_named_with_its_target_and_field() {
    let message = error_of(&GOOD.replace("/etc/nginx/tls/web.key", "tls/web.key"));
    assert_eq!(message, "target `web`: field `key`: `tls/web.key` is not an absolute path");
    let message = error_of(&GOOD.replace("/etc/nginx/tls/web.key", "/etc/nginx/../shadow"));
    assert!(
        message.starts_with("target `web`: field `key`:") && message.contains("`..`"),
        "{message}"
    );
    let message = error_of(&GOOD.replace("\"/var/lib/cmp-agent\"", "\"var/lib\""));
    assert_eq!(message, "field `state_dir`: `var/lib` is not an absolute path");
}

#[test]
fn an_unknown_key_is_refused() {
    let message = error_of(&GOOD.replace("mode = \"0640\"", "mode = \"0640\"\nshell = \"sh -c\""));
    assert!(message.contains("unknown field `shell`"), "{message}");
    let message = error_of(&format!("{GOOD}\n[extras]\nx = 1\n"));
    assert!(message.contains("unknown field `extras`"), "{message}");
}

#[test]
fn each_kind_needs_its_files_and_no_others() {
    let message = error_of(&GOOD.replace("pem = \"/etc/haproxy/tls/lb.pem\"", ""));
    assert_eq!(message, "target `lb`: field `pem`: a `haproxy` target needs `pem`");
    let message =
        error_of(&GOOD.replace(
            "pem = \"/etc/haproxy/tls/lb.pem\"",
            "pem = \"/a/lb.pem\"\nkey = \"/a/lb.key\"",
        ));
    assert!(
        message.starts_with("target `lb`: field `key`: a `haproxy` target has no `key`"),
        "{message}"
    );
    let message = error_of(&GOOD.replace("key = \"/etc/nginx/tls/web.key\"", ""));
    assert_eq!(message, "target `web`: field `key`: a `nginx` target needs `key`");
    let message = error_of(&GOOD.replace("reload = [\"nginx\", \"-s\", \"reload\"]", ""));
    assert!(message.starts_with("target `web`: field `reload`:"), "{message}");
    let message =
        error_of(&GOOD.replace("reload = [\"nginx\", \"-s\", \"reload\"]", "reload = []"));
    assert!(
        message.starts_with("target `web`: field `reload`: must be a non-empty argv"),
        "{message}"
    );
    let message = error_of(&GOOD.replace("kind = \"file\"", "kind = \"iis\""));
    assert!(message.contains("unknown variant `iis`"), "{message}");
}

#[test]
fn a_mode_more_open_than_0640_or_an_unknown_owner_is_refused() {
    let message = error_of(&GOOD.replace("\"0640\"", "\"0644\""));
    assert!(
        message.starts_with("target `web`: field `mode`: 0644 is more open than 0640"),
        "{message}"
    );
    let message = error_of(&GOOD.replace("\"0640\"", "\"rw-r-----\""));
    assert!(message.contains("not an octal mode"), "{message}");
    let message = error_of(&GOOD.replace("owner = \"root\"", "owner = \"no-such-user-here\""));
    assert_eq!(message, "target `web`: field `owner`: no user `no-such-user-here`");
}

#[test]
fn verify_needs_a_port_and_a_server_name() {
    let message = error_of(&GOOD.replace("127.0.0.1:443", "127.0.0.1"));
    assert_eq!(message, "target `web`: field `verify.address`: must be `host:port`");
    let message = error_of(&GOOD.replace("web.example.com", "not a name"));
    assert!(message.starts_with("target `web`: field `verify.sni`:"), "{message}");
}

#[test]
fn check_config_prints_the_targets_and_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, GOOD).unwrap();
    let run = |path: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cmp-agent"))
            .args(["check-config", "--config"])
            .arg(path)
            .output()
            .unwrap()
    };
    let output = run(&path);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("target lb (haproxy): pem=/etc/haproxy/tls/lb.pem"), "{stdout}");
    assert!(stdout.contains("target web (nginx): key=/etc/nginx/tls/web.key cert=/etc/nginx/tls/web.pem verify=127.0.0.1:443"), "{stdout}");

    std::fs::write(&path, GOOD.replace("/etc/nginx/tls/web.key", "web.key")).unwrap();
    let output = run(&path);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("target `web`: field `key`: `web.key` is not an absolute path"),
        "{stderr}"
    );
}

#[test]
fn deploy_file_installs_by_hand_and_refuses_a_mismatched_key() {
    let ca = cmp_testkit::targets::TestCa::new();
    let (v1, other) = (ca.leaf("v1"), ca.leaf("other"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tls = d.join("tls");
    std::fs::create_dir(&tls).unwrap();
    let config = d.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "server = \"https://cmp.example:3000\"\nstate_dir = \"{}/state\"\n[targets.app]\n\
             kind = \"file\"\ncert = \"{t}/app.crt\"\nkey = \"{t}/app.key\"\n",
            d.display(),
            t = tls.display()
        ),
    )
    .unwrap();
    for (name, text) in [
        ("v1.crt", &v1.cert_pem),
        ("v1.key", &v1.key_pem),
        ("other.key", &other.key_pem),
        ("ca.pem", &ca.ca_pem),
    ] {
        std::fs::write(d.join(name), text).unwrap();
    }
    let run = |key: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cmp-agent"))
            .arg("deploy-file")
            .arg("--config")
            .arg(&config)
            .args(["--target", "app", "--cert"])
            .arg(d.join("v1.crt"))
            .arg("--key")
            .arg(d.join(key))
            .arg("--chain")
            .arg(d.join("ca.pem"))
            .output()
            .unwrap()
    };

    let output = run("other.key");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("failed at pair") && stderr.contains("nothing changed"), "{stderr}");
    assert!(std::fs::read_dir(&tls).unwrap().next().is_none());

    let output = run("v1.key");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains(&format!("deployed {} to app", v1.fingerprint)), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(tls.join("app.crt")).unwrap(),
        format!("{}{}", v1.cert_pem, ca.ca_pem)
    );
}
