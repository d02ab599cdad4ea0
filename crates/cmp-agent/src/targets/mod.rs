//! The target kinds: which files a kind writes and what goes into each. Everything else
//! (writing, checking, testing, reloading, verifying, rolling back) is the same for every
//! kind and lives in `deploy`. A new kind is one module here plus its arm in [`files`] (and its
//! fields in `config`).

mod apache;
mod file;
mod haproxy;
mod nginx;

use std::path::PathBuf;

use crate::config::{TargetConfig, TargetKind};

/// What a file holds, built from the material.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// The leaf certificate alone.
    Leaf,
    /// The leaf, then the chain.
    LeafAndChain,
    /// The chain alone (may be empty).
    Chain,
    /// The private key.
    Key,
    /// Leaf, chain, then key (HAProxy).
    LeafChainKey,
}

impl Content {
    /// Whether the file holds the private key (its mode defaults to 0600).
    pub fn is_secret(self) -> bool {
        matches!(self, Content::Key | Content::LeafChainKey)
    }
}

/// One file a target writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetFile {
    /// The configuration field that names it (`cert`, `chain`, `key`, `pem`).
    pub field: &'static str,
    /// Where it goes.
    pub path: PathBuf,
    /// What it holds.
    pub content: Content,
}

/// The files of a validated target, key first: the key is renamed into place before the
/// certificate, so a server that restarts on its own between the two renames at worst sees
/// the new key with the old certificate, which it refuses (and keeps what it runs), rather
/// than the reverse order's same mismatch; either way the window is two `rename` calls.
pub fn files(config: &TargetConfig) -> Vec<TargetFile> {
    match config.kind {
        TargetKind::Nginx => nginx::files(config),
        TargetKind::Apache => apache::files(config),
        TargetKind::Haproxy => haproxy::files(config),
        TargetKind::File => file::files(config),
    }
}

fn file(field: &'static str, path: &Option<PathBuf>, content: Content) -> Option<TargetFile> {
    path.as_ref().map(|path| TargetFile { field, path: path.clone(), content })
}

/// Key, certificate and optional chain: Apache and plain files. Without a chain file, the
/// chain follows the leaf in the certificate file, so it is never dropped.
fn key_cert_chain(config: &TargetConfig) -> Vec<TargetFile> {
    let cert_content = if config.chain.is_some() { Content::Leaf } else { Content::LeafAndChain };
    [
        file("key", &config.key, Content::Key),
        file("cert", &config.cert, cert_content),
        file("chain", &config.chain, Content::Chain),
    ]
    .into_iter()
    .flatten()
    .collect()
}
