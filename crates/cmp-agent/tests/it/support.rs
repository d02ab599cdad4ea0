//! Agent configurations for the testkit's servers, and checks of files and pairs.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use cmp_agent::{AgentConfig, Material};
use cmp_domain::Secret;
use cmp_testkit::targets::{Leaf, ServerKind, TlsServer};

/// How long a test waits for a server to serve what it expects (reloads are asynchronous).
pub const SERVED_WITHIN: Duration = Duration::from_secs(10);

/// A TOML string.
pub fn quoted(text: impl AsRef<str>) -> String {
    toml_string(text.as_ref())
}

fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A TOML array of strings.
pub fn argv(args: &[String]) -> String {
    format!("[{}]", args.iter().map(|a| toml_string(a)).collect::<Vec<_>>().join(", "))
}

/// The fields of `[targets.web]` for a server, verifying on its own port.
pub fn server_fields(server: &TlsServer) -> BTreeMap<&'static str, String> {
    let mut fields = BTreeMap::new();
    let kind = match server.kind {
        ServerKind::Nginx => "nginx",
        ServerKind::Apache => "apache",
        ServerKind::Haproxy => "haproxy",
    };
    fields.insert("kind", quoted(kind));
    match &server.pem {
        Some(pem) => {
            fields.insert("pem", quoted(pem.display().to_string()));
        }
        None => {
            fields.insert("cert", quoted(server.cert.display().to_string()));
            fields.insert("key", quoted(server.key.as_ref().unwrap().display().to_string()));
        }
    }
    fields.insert("test", argv(&server.test_argv));
    fields.insert("reload", argv(&server.reload_argv));
    fields.insert(
        "verify",
        format!("{{ address = {}, sni = \"localhost\" }}", quoted(server.address())),
    );
    fields
}

/// An agent configuration with one target, `web`, from `fields`.
pub fn config_with(state_dir: &Path, fields: &BTreeMap<&'static str, String>) -> AgentConfig {
    let text = config_text(state_dir, fields);
    AgentConfig::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The text of that configuration.
pub fn config_text(state_dir: &Path, fields: &BTreeMap<&'static str, String>) -> String {
    let mut text = format!(
        "server = \"https://cmp.example:3000\"\nstate_dir = {}\n[targets.web]\n",
        quoted(state_dir.display().to_string())
    );
    for (key, value) in fields {
        text.push_str(&format!("{key} = {value}\n"));
    }
    text
}

/// The material of a leaf, with `chain` and the leaf's own key.
pub fn material(leaf: &Leaf, chain: &str) -> Material {
    Material::from_pem(&leaf.cert_pem, chain, &Secret::new(leaf.key_pem.clone())).unwrap()
}

/// Asserts that the server serves `leaf` (by `openssl s_client`), polling.
pub fn assert_serves(server: &TlsServer, leaf: &Leaf) {
    if let Err(why) = cmp_testkit::targets::wait_served(
        server.port,
        "localhost",
        &leaf.fingerprint,
        SERVED_WITHIN,
    ) {
        panic!(
            "{:?} does not serve the expected certificate: {why}\n{}",
            server.kind,
            server.log_text()
        );
    }
}

/// A file's permission bits.
pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Whether the public key of the first certificate in `cert` is the one of the key in `key`
/// (by the openssl CLI).
pub fn openssl_pair_matches(cert: &Path, key: &Path) -> bool {
    let public = |args: &[&str], path: &Path| {
        let output = std::process::Command::new("openssl").args(args).arg(path).output().unwrap();
        assert!(output.status.success(), "openssl {args:?} {}", path.display());
        output.stdout
    };
    public(&["x509", "-noout", "-pubkey", "-in"], cert) == public(&["pkey", "-pubout", "-in"], key)
}

/// Names of the files in `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
