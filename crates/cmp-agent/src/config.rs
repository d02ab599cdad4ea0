//! The agent's configuration file (`/etc/cmp/agent.toml`): where the server is, and the
//! deployment targets. A target's files and commands are fixed here, by the host's operator:
//! the server only ever names a target, never a path or a command, so a target may touch
//! exactly its configured paths (and the `.cmp-new` / `.cmp-previous` files beside them).
//!
//! Parsing is strict (`deny_unknown_fields`) and [`AgentConfig::from_toml_str`] validates
//! everything it can before the agent does anything; errors name the target and the field.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

/// Where the agent looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/cmp/agent.toml";
/// The state directory when the file names none.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/cmp-agent";
/// The mode of certificate and chain files when the target sets none.
pub const DEFAULT_CERT_MODE: u32 = 0o644;
/// The mode of files that hold a private key (`key`, HAProxy's `pem`) when the target sets none.
pub const DEFAULT_KEY_MODE: u32 = 0o600;
/// The most open mode a target may set: `mode` applies to its key files too, and a key is
/// never readable by others or writable by the group.
pub const MAX_MODE: u32 = 0o640;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The CMP server's base URL (`https://cmp.example:3000`).
    pub server: String,
    /// The CA certificate(s) the server's TLS certificate is checked against (PEM); the
    /// system's roots when absent.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Where the agent keeps its state: the deploy journal (`journal/<target>.json`).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Where discovery looks for certificates on this host.
    #[serde(default)]
    pub discovery: DiscoveryConfig,
    /// The deployment targets, by name (the name the server uses).
    #[serde(default)]
    pub targets: BTreeMap<String, TargetConfig>,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from(DEFAULT_STATE_DIR)
}

/// `[discovery]`: the directories the agent reports certificates from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// Absolute directories.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
}

/// What serves the certificate, which decides the files written (see `targets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// nginx: `cert` holds the leaf and the chain, `key` the key.
    Nginx,
    /// Apache httpd: `cert` the leaf, `chain` (optional) the chain, `key` the key.
    Apache,
    /// HAProxy: `pem` holds leaf, chain and key in one file.
    Haproxy,
    /// Plain files for any other program: `cert`, optional `chain`, `key`.
    File,
}

impl TargetKind {
    /// The name used in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Nginx => "nginx",
            TargetKind::Apache => "apache",
            TargetKind::Haproxy => "haproxy",
            TargetKind::File => "file",
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[targets.<name>]`: one place a certificate is installed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// What serves it.
    pub kind: TargetKind,
    /// The certificate file (nginx: leaf and chain; the others: the leaf, and the chain
    /// after it when no `chain` file is configured).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// A separate chain file (Apache's `SSLCertificateChainFile`, or for `file`).
    #[serde(default)]
    pub chain: Option<PathBuf>,
    /// The private key file (not for HAProxy).
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// HAProxy's one file: leaf, chain and key.
    #[serde(default)]
    pub pem: Option<PathBuf>,
    /// The owner of the files written (a user name or a numeric id); the agent's user when
    /// absent.
    #[serde(default)]
    pub owner: Option<String>,
    /// Their group (a name or a numeric id); the agent's group when absent.
    #[serde(default)]
    pub group: Option<String>,
    /// Their mode, octal (`"0640"`), at most [`MAX_MODE`]; when absent certificates get
    /// [`DEFAULT_CERT_MODE`] and key files [`DEFAULT_KEY_MODE`].
    #[serde(default)]
    pub mode: Option<String>,
    /// Check what is served after the reload.
    #[serde(default)]
    pub verify: Option<VerifyConfig>,
    /// The configuration test, as argv (no shell); required except for `file`.
    #[serde(default)]
    pub test: Option<Vec<String>>,
    /// The reload, as argv (no shell); required except for `file`.
    #[serde(default)]
    pub reload: Option<Vec<String>>,
    /// The resolved owner id (from `owner`), filled in by validation.
    #[serde(skip)]
    pub(crate) uid: Option<u32>,
    /// The resolved group id (from `group`), filled in by validation.
    #[serde(skip)]
    pub(crate) gid: Option<u32>,
    /// The parsed `mode`, filled in by validation.
    #[serde(skip)]
    pub(crate) mode_bits: Option<u32>,
}

/// `verify = { address = "127.0.0.1:443", sni = "web.example.com" }`: after the reload, the
/// agent connects there and compares the certificate served with the one it installed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// `host:port` to connect to.
    pub address: String,
    /// The server name sent (SNI; an IP address sends none).
    pub sni: String,
    /// How long to wait for the new certificate to be served, in seconds (default 10):
    /// reloads are asynchronous.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// The file is not valid TOML or does not have the expected shape (unknown keys included).
    #[error("{0}")]
    Parse(String),
    /// A field has a value that cannot be used.
    #[error("{}field `{field}`: {message}", target.as_ref().map(|t| format!("target `{t}`: ")).unwrap_or_default())]
    Invalid {
        /// The target the field belongs to, if any.
        target: Option<String>,
        /// The field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

fn invalid(target: Option<&str>, field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        target: target.map(str::to_owned),
        field: field.to_owned(),
        message: message.into(),
    }
}

impl AgentConfig {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|cause| ConfigError::Read { path: path.to_owned(), cause })?;
        Self::from_toml_str(&text)
    }

    /// Parses and validates a configuration.
    pub fn from_toml_str(text: &str) -> Result<AgentConfig, ConfigError> {
        let mut config: AgentConfig =
            toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&mut self) -> Result<(), ConfigError> {
        let server = self.server.trim();
        if !(server.starts_with("https://") || server.starts_with("http://"))
            || server.len() <= "https://".len()
        {
            return Err(invalid(None, "server", "must be a URL such as https://cmp.example:3000"));
        }
        if let Some(ca_file) = &self.ca_file {
            check_path(None, "ca_file", ca_file)?;
        }
        check_path(None, "state_dir", &self.state_dir)?;
        for path in &self.discovery.paths {
            check_path(None, "discovery.paths", path)?;
        }
        for (name, target) in &mut self.targets {
            check_name(name)?;
            target.validate(name)?;
        }
        Ok(())
    }

    /// The target called `name`, ready to deploy to.
    pub fn target(&self, name: &str) -> Option<crate::Target<'_>> {
        let (name, config) = self.targets.get_key_value(name)?;
        Some(crate::Target { name, config, state_dir: &self.state_dir })
    }

    /// Every target, in name order.
    pub fn all_targets(&self) -> impl Iterator<Item = crate::Target<'_>> {
        self.targets.iter().map(|(name, config)| crate::Target {
            name,
            config,
            state_dir: &self.state_dir,
        })
    }
}

/// Target names become file names (the journal): letters, digits, `-`, `_` and `.`, not first.
fn check_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            Some(name),
            "name",
            "a target name has 1-64 letters, digits, `-`, `_` or `.` and does not start with `.`",
        ))
    }
}

/// Absolute, no `.` or `..` components, and naming a file (not ending in `/`).
fn check_path(target: Option<&str>, field: &str, path: &Path) -> Result<(), ConfigError> {
    let text = path.to_string_lossy();
    if !path.is_absolute() {
        return Err(invalid(target, field, format!("`{text}` is not an absolute path")));
    }
    if path.components().any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        || text.contains("/./")
    {
        return Err(invalid(target, field, format!("`{text}` contains `..` or `.`")));
    }
    if text.ends_with('/') || path.file_name().is_none() {
        return Err(invalid(target, field, format!("`{text}` does not name a file")));
    }
    Ok(())
}

fn check_argv(target: &str, field: &str, argv: &Option<Vec<String>>) -> Result<(), ConfigError> {
    match argv {
        Some(argv) if argv.first().is_none_or(|program| program.trim().is_empty()) => {
            Err(invalid(Some(target), field, "must be a non-empty argv list, program first"))
        }
        Some(argv) if argv.iter().any(|arg| arg.contains('\0')) => {
            Err(invalid(Some(target), field, "an argument contains a NUL byte"))
        }
        _ => Ok(()),
    }
}

impl TargetConfig {
    fn validate(&mut self, name: &str) -> Result<(), ConfigError> {
        let target = Some(name);
        // Which path fields this kind takes, and which it requires.
        let (required, allowed): (&[&str], &[&str]) = match self.kind {
            TargetKind::Nginx => (&["cert", "key"], &["cert", "key"]),
            TargetKind::Apache | TargetKind::File => (&["cert", "key"], &["cert", "chain", "key"]),
            TargetKind::Haproxy => (&["pem"], &["pem"]),
        };
        let fields =
            [("cert", &self.cert), ("chain", &self.chain), ("key", &self.key), ("pem", &self.pem)];
        for (field, value) in fields {
            match value {
                None if required.contains(&field) => {
                    return Err(invalid(
                        target,
                        field,
                        format!("a `{}` target needs `{field}`", self.kind),
                    ));
                }
                Some(_) if !allowed.contains(&field) => {
                    let hint = match self.kind {
                        TargetKind::Nginx => " (nginx takes the chain in `cert`)",
                        TargetKind::Haproxy => " (HAProxy takes leaf, chain and key in `pem`)",
                        _ => "",
                    };
                    return Err(invalid(
                        target,
                        field,
                        format!("a `{}` target has no `{field}`{hint}", self.kind),
                    ));
                }
                Some(path) => check_path(target, field, path)?,
                None => {}
            }
        }
        let mut seen: Vec<&PathBuf> = Vec::new();
        for (field, value) in fields {
            if let Some(path) = value {
                if seen.contains(&path) {
                    return Err(invalid(
                        target,
                        field,
                        format!("`{}` is named twice in this target", path.display()),
                    ));
                }
                seen.push(path);
            }
        }
        if self.kind != TargetKind::File {
            for (field, value) in [("test", &self.test), ("reload", &self.reload)] {
                if value.is_none() {
                    return Err(invalid(
                        target,
                        field,
                        format!("a `{}` target needs `{field}` (an argv list)", self.kind),
                    ));
                }
            }
        }
        check_argv(name, "test", &self.test)?;
        check_argv(name, "reload", &self.reload)?;
        if let Some(mode) = &self.mode {
            let bits = u32::from_str_radix(mode.trim_start_matches("0o"), 8)
                .ok()
                .filter(|bits| *bits <= 0o7777)
                .ok_or_else(|| invalid(target, "mode", format!("`{mode}` is not an octal mode")))?;
            if bits & !MAX_MODE != 0 {
                return Err(invalid(
                    target,
                    "mode",
                    format!(
                        "{mode} is more open than {MAX_MODE:04o} (the mode applies to the key too)"
                    ),
                ));
            }
            self.mode_bits = Some(bits);
        }
        if let Some(owner) = &self.owner {
            self.uid = Some(
                lookup_id("/etc/passwd", owner)
                    .ok_or_else(|| invalid(target, "owner", format!("no user `{owner}`")))?,
            );
        }
        if let Some(group) = &self.group {
            self.gid = Some(
                lookup_id("/etc/group", group)
                    .ok_or_else(|| invalid(target, "group", format!("no group `{group}`")))?,
            );
        }
        if let Some(verify) = &self.verify {
            let port = verify.address.rsplit_once(':').and_then(|(host, port)| {
                (!host.is_empty()).then_some(())?;
                port.parse::<u16>().ok()
            });
            if port.is_none() {
                return Err(invalid(target, "verify.address", "must be `host:port`"));
            }
            if rustls::pki_types::ServerName::try_from(verify.sni.as_str()).is_err() {
                return Err(invalid(target, "verify.sni", "must be a DNS name or an IP address"));
            }
            if verify.timeout_secs == Some(0) {
                return Err(invalid(target, "verify.timeout_secs", "must be at least 1"));
            }
        }
        Ok(())
    }

    /// The files this target writes, in the order they are renamed into place.
    pub fn files(&self) -> Vec<crate::targets::TargetFile> {
        crate::targets::files(self)
    }

    /// The mode for a file, key files or not.
    pub(crate) fn mode_for(&self, secret: bool) -> u32 {
        self.mode_bits.unwrap_or(if secret { DEFAULT_KEY_MODE } else { DEFAULT_CERT_MODE })
    }

    /// The owner and group ids to give the files (None: the agent's own).
    pub(crate) fn ownership(&self) -> (Option<u32>, Option<u32>) {
        (self.uid, self.gid)
    }
}

/// A numeric id, or the id of a name in `/etc/passwd` / `/etc/group` (third field). Names
/// served only by NSS (LDAP, sssd) must be given as numbers.
fn lookup_id(database: &str, name: &str) -> Option<u32> {
    if let Ok(id) = name.parse::<u32>() {
        return Some(id);
    }
    let text = std::fs::read_to_string(database).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}
