//! `cmpctl login`, `whoami` and `logout`: a person's token from the server's identity provider
//! (device authorization flow, RFC 8628), or a pasted one, kept per server in
//! `credentials.json` of the user's config directory (mode 0600) and used when no `--token`
//! or `CMP_TOKEN` is given.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use cmp_client::Client;
use cmp_oidc::{DevicePoll, Provider, ProviderSettings};
use serde::{Deserialize, Serialize};

/// What is kept for one server.
#[derive(Serialize, Deserialize)]
struct Saved {
    token: String,
    /// Unix seconds; a kept token past it is not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    /// The provider it came from, or none for a pasted token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider: Option<String>,
}

/// `$CMP_CONFIG_DIR`, else `$XDG_CONFIG_HOME/cmp`, else `~/.config/cmp`.
fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CMP_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("cmp"));
    }
    let home = std::env::var_os("HOME").context("HOME is not set: set CMP_CONFIG_DIR")?;
    Ok(PathBuf::from(home).join(".config/cmp"))
}

fn credentials_file() -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join("credentials.json"))
}

fn read_all() -> anyhow::Result<BTreeMap<String, Saved>> {
    let file = credentials_file()?;
    match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not readable: remove it", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e).with_context(|| format!("while reading {}", file.display())),
    }
}

/// Writes the file readable by its owner only, through a temporary file and a rename, so that
/// a crash never leaves half a file.
fn write_all(saved: &BTreeMap<String, Saved>) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let file = credentials_file()?;
    let dir = file.parent().context("the credentials file has no directory")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("while creating {}", dir.display()))?;
    let temporary = dir.join(".credentials.json.new");
    let _ = std::fs::remove_file(&temporary);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("while creating {}", temporary.display()))?;
    out.write_all(&serde_json::to_vec_pretty(saved)?)?;
    out.sync_all()?;
    std::fs::rename(&temporary, &file)
        .with_context(|| format!("while writing {}", file.display()))?;
    Ok(())
}

/// The kept token for `server`, unless it has expired.
pub fn saved_token(server: &str) -> anyhow::Result<Option<String>> {
    let now = now();
    Ok(read_all()?
        .remove(server)
        .filter(|s| s.expires_at.is_none_or(|at| at > now))
        .map(|s| s.token))
}

/// CLI time: there is no clock to pass in at this edge.
#[allow(clippy::disallowed_methods)]
fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `cmpctl login`: checks the token with the server before keeping it.
pub async fn login(
    server: &str,
    make_client: impl Fn(Option<String>) -> anyhow::Result<Client>,
    provider: Option<String>,
    with_token: bool,
) -> anyhow::Result<ExitCode> {
    let (token, expires_at, provider) = if with_token {
        let mut pasted = String::new();
        std::io::stdin().read_to_string(&mut pasted).context("while reading the token")?;
        let pasted = pasted.trim().to_string();
        if pasted.is_empty() {
            bail!("--with-token reads the token from standard input, and it was empty");
        }
        (pasted, None, None)
    } else {
        device_login(&make_client(None)?, provider).await?
    };
    let me = make_client(Some(token.clone()))?
        .me()
        .await
        .context("the server does not accept this token; nothing was kept")?;
    let mut saved = read_all()?;
    saved.insert(server.to_string(), Saved { token, expires_at, provider });
    write_all(&saved)?;
    eprintln!(
        "Logged in to {server} as {} ({}); kept in {}",
        me.actor,
        me.role.as_str(),
        credentials_file()?.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The device flow at the server's provider (named, or the first that has a client for the
/// command line): the token, its end, and the provider's name.
async fn device_login(
    client: &Client,
    wanted: Option<String>,
) -> anyhow::Result<(String, Option<i64>, Option<String>)> {
    let providers = client.auth_providers().await.context("while asking the server")?;
    let chosen = providers
        .into_iter()
        .filter(|p| p.cli_client_id.is_some())
        .find(|p| wanted.as_ref().is_none_or(|w| *w == p.name));
    let Some(chosen) = chosen else {
        bail!(
            "the server has no identity provider{} for the command line \
             (auth.oidc.providers.*.cli_client_id); log in with --with-token instead",
            wanted.map(|w| format!(" named {w}")).unwrap_or_default()
        );
    };
    let client_id = chosen.cli_client_id.clone().unwrap_or_default();
    let provider = Provider::new(ProviderSettings {
        issuer: chosen.issuer.clone(),
        client_id: client_id.clone(),
        client_secret: None,
        redirect_url: String::new(),
        scopes: ["openid", "email", "profile", "groups"].map(String::from).to_vec(),
        audience: chosen.audience.clone(),
        leeway_secs: 30,
        key_refetch_interval: Duration::from_secs(10),
        timeout: Duration::from_secs(15),
    })?;
    let device = provider.start_device_login(&client_id).await?;
    let open = device.verification_uri_complete.as_deref().unwrap_or(&device.verification_uri);
    eprintln!("To log in to {}, open {open}", chosen.name);
    eprintln!("and confirm the code {}", device.user_code);
    let mut interval = device.interval.max(1);
    let deadline = std::time::Instant::now() + Duration::from_secs(device.expires_in.max(1) as u64);
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        if std::time::Instant::now() > deadline {
            bail!("the code expired before the login was confirmed; run cmpctl login again");
        }
        match provider.poll_device_login(&client_id, &device.device_code).await? {
            DevicePoll::Pending => {}
            DevicePoll::SlowDown => interval += 5,
            DevicePoll::Done(tokens) => {
                let expires_at = tokens.expires_in.map(|secs| now() + secs);
                return Ok((tokens.access_token.expose().clone(), expires_at, Some(chosen.name)));
            }
        }
    }
}

/// `cmpctl logout`: forgets the kept token of `server`.
pub fn logout(server: &str) -> anyhow::Result<ExitCode> {
    let mut saved = read_all()?;
    if saved.remove(server).is_some() {
        write_all(&saved)?;
        eprintln!("Logged out of {server}");
    } else {
        eprintln!("No kept login for {server}");
    }
    Ok(ExitCode::SUCCESS)
}
