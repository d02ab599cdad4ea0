//! Certificate references: the ids and full fingerprints the server takes, and the short
//! fingerprint prefixes `cmpctl cert list` prints, which only the command line resolves.

use anyhow::{Context, bail};
use cmp_api::CertificateListParams;
use cmp_client::Client;

/// Fewest hex digits taken as a fingerprint prefix: fewer would match too often to be useful.
pub const MIN_PREFIX_DIGITS: usize = 8;

/// The largest page the server gives.
const PAGE: u32 = 500;

/// The id or fingerprint to send for `reference`: itself, unless it is a fingerprint prefix
/// (8 to 63 hex digits, colons allowed), which is looked up among the certificates the caller
/// may see and must name exactly one of them.
///
/// The server has no prefix search, so this pages through the inventory (one call per 500
/// certificates) and stops at a second match.
pub async fn certificate_id(client: &Client, reference: &str) -> anyhow::Result<String> {
    let Some(prefix) = fingerprint_prefix(reference) else {
        return Ok(reference.to_string());
    };
    let mut matches: Vec<String> = Vec::new();
    let mut cursor = None;
    loop {
        let params =
            CertificateListParams { limit: Some(PAGE), cursor, ..CertificateListParams::default() };
        let page = client.list_certificates(&params).await.with_context(|| {
            format!("while looking for the certificate whose fingerprint starts with {reference}")
        })?;
        matches.extend(
            page.items
                .into_iter()
                .filter(|c| c.fingerprint_sha256.to_ascii_lowercase().starts_with(&prefix))
                .map(|c| c.id),
        );
        cursor = page.next_cursor;
        if matches.len() > 1 || cursor.is_none() {
            break;
        }
    }
    match matches.as_slice() {
        [one] => Ok(one.clone()),
        [] => {
            bail!("no certificate you may see has a SHA-256 fingerprint starting with {reference}")
        }
        [first, second, ..] => bail!(
            "{reference} is ambiguous: the fingerprints of {first} and {second} (at least) both \
             start with it; give more digits, or the id"
        ),
    }
}

/// The lowercase hex of a fingerprint prefix; `None` for an id or a full fingerprint.
fn fingerprint_prefix(reference: &str) -> Option<String> {
    let hex: String = reference.chars().filter(|c| *c != ':').collect();
    let is_prefix =
        (MIN_PREFIX_DIGITS..64).contains(&hex.len()) && hex.chars().all(|c| c.is_ascii_hexdigit());
    is_prefix.then(|| hex.to_ascii_lowercase())
}
