//! Crate tests: the [`crate::SecretStore`] contract on [`crate::LocalSecretStore`], its files on
//! disk (permissions, what they reveal, tampering) and master key rotation.

mod basics;
mod on_disk;
mod rotation;

use std::path::{Path, PathBuf};

use crate::{LocalSecretStore, SecretBytes};

/// A store in a fresh temporary directory (kept alive by the returned guard).
fn store() -> (tempfile::TempDir, LocalSecretStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalSecretStore::open(&secrets_dir(dir.path()), now()).unwrap();
    (dir, store)
}

/// A fixed time for the keys' `created_at` (time is passed in; tests pin it).
fn now() -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000)
}

/// Where the server would put the store: `<data_dir>/secrets`.
fn secrets_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("secrets")
}

fn secret(bytes: &[u8]) -> SecretBytes {
    SecretBytes::new(bytes.to_vec())
}

/// Path of the record file of `name`: `records/<hex SHA-256 of the name>`.
fn record_path(data_dir: &Path, name: &str) -> PathBuf {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, name.as_bytes());
    secrets_dir(data_dir).join("records").join(hex::encode(digest))
}
