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
    let store = LocalSecretStore::open(&secrets_dir(dir.path())).unwrap();
    (dir, store)
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
