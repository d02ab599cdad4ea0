//! How a configured target is doing, cheaply: whether its files exist and, when it has a
//! `verify` endpoint, whether one handshake there shows the certificate installed. What the
//! heartbeat reports and `cmp-agent status` prints.

use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::Target;
use crate::config::TargetKind;
use crate::targets::Content;
use crate::verify::served_fingerprint;

/// The bound on the one handshake of a health check.
pub const HEALTH_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// One file of a target.
#[derive(Debug, Clone)]
pub struct FileStatus {
    /// The configuration field that names it.
    pub field: &'static str,
    /// The file.
    pub path: PathBuf,
    /// Whether it exists.
    pub exists: bool,
}

/// What a health check of a target found.
#[derive(Debug, Clone)]
pub struct TargetStatus {
    /// The target's name.
    pub name: String,
    /// Its kind.
    pub kind: TargetKind,
    /// Its files.
    pub files: Vec<FileStatus>,
    /// SHA-256 of the leaf in its certificate file, when it can be read.
    pub installed: Option<String>,
    /// With `verify`: SHA-256 of the leaf served, or why no handshake worked.
    pub served: Option<Result<String, String>>,
}

impl TargetStatus {
    /// All files exist and, with `verify`, the installed leaf is served.
    pub fn healthy(&self) -> bool {
        self.message().is_none()
    }

    /// What is wrong, if anything.
    pub fn message(&self) -> Option<String> {
        let missing: Vec<String> =
            self.files.iter().filter(|f| !f.exists).map(|f| f.path.display().to_string()).collect();
        if !missing.is_empty() {
            return Some(format!("missing: {}", missing.join(", ")));
        }
        match (&self.served, &self.installed) {
            (None, _) => None,
            (Some(Err(e)), _) => Some(format!("verify: {e}")),
            (Some(Ok(served)), Some(installed)) if served == installed => None,
            (Some(Ok(served)), Some(installed)) => {
                Some(format!("serves {served}, not the installed {installed}"))
            }
            (Some(Ok(_)), None) => Some("the installed certificate cannot be read".into()),
        }
    }

    /// As the heartbeat reports it.
    pub fn to_health(&self) -> cmp_api::TargetHealth {
        cmp_api::TargetHealth {
            name: self.name.clone(),
            kind: self.kind.as_str().to_owned(),
            healthy: self.healthy(),
            message: self.message(),
        }
    }
}

/// Checks `target`: its files, and with `verify` one handshake (bounded by
/// [`HEALTH_HANDSHAKE_TIMEOUT`]). Needs an installed rustls crypto provider for the handshake.
pub async fn target_status(target: &Target<'_>) -> TargetStatus {
    let files = target.config.files();
    let installed = files
        .iter()
        .find(|f| {
            matches!(f.content, Content::Leaf | Content::LeafAndChain | Content::LeafChainKey)
        })
        .and_then(|f| installed_fingerprint(&f.path));
    let served = match &target.config.verify {
        Some(verify) => Some(
            served_fingerprint(&verify.address, &verify.sni, HEALTH_HANDSHAKE_TIMEOUT)
                .await
                .map_err(|e| e.to_string()),
        ),
        None => None,
    };
    TargetStatus {
        name: target.name.to_owned(),
        kind: target.config.kind,
        files: files
            .into_iter()
            .map(|f| FileStatus { field: f.field, exists: f.path.exists(), path: f.path })
            .collect(),
        installed,
        served,
    }
}

/// SHA-256 of the first certificate in the file. Only that block is decoded: HAProxy's file
/// holds the key too, and its bytes stay in a buffer zeroed on drop.
fn installed_fingerprint(path: &std::path::Path) -> Option<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let bytes = Zeroizing::new(std::fs::read(path).ok()?);
    let text = std::str::from_utf8(&bytes).ok()?;
    let start = text.find(BEGIN)?;
    let end = start + text[start..].find(END)? + END.len();
    let block = pem::parse(&text[start..end]).ok()?;
    Some(hex::encode(Sha256::digest(block.contents())))
}
