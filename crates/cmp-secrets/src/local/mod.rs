//! [`LocalSecretStore`]: the embedded secret store, one encrypted file per secret under a
//! directory, with the master keys beside them.
//!
//! Layout of the directory: `master.keys` (see `master.rs`) and `records/<hex SHA-256 of the
//! name>` (see `envelope.rs`), all mode 0600, written atomically. File I/O runs on Tokio's
//! blocking pool. Reads take no lock: a record file is always whole (atomic rename) and every
//! master key a record can name is loaded before any record is wrapped under it. Writers
//! (put, delete) share a lock that master key rotation takes exclusively, so a rotation never
//! writes back a record that a put replaced or a delete removed meanwhile.

mod envelope;
mod files;
mod master;

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use async_trait::async_trait;

use self::envelope::Record;
use self::files::io_error;
use self::master::MasterKeys;
use crate::{SecretBytes, SecretError, SecretStore, validate_name};

/// Subdirectory holding one file per secret.
const RECORDS_DIR: &str = "records";

/// The embedded secret store: envelope encryption (AES-256-GCM) on local disk.
#[derive(Debug, Clone)]
pub struct LocalSecretStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    records: PathBuf,
    keys: RwLock<Arc<MasterKeys>>,
    /// Shared by put and delete, exclusive for rotation.
    writers: RwLock<()>,
}

impl LocalSecretStore {
    /// Opens the store in `dir` (synchronously: meant for start-up), creating the directory,
    /// `records/` and a master key file with one new key (stamped `now`) if they do not exist.
    /// Refuses a master key file whose mode lets group or others access it.
    pub fn open(dir: &Path, now: SystemTime) -> Result<LocalSecretStore, SecretError> {
        let records = dir.join(RECORDS_DIR);
        files::create_dir(&records)?;
        let keys = master::load_or_create(dir, now)?;
        Ok(LocalSecretStore {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                records,
                keys: RwLock::new(Arc::new(keys)),
                writers: RwLock::new(()),
            }),
        })
    }

    /// Appends a new master key (which becomes current) and re-wraps every record's data key
    /// under it (stamped `now`); values are not re-encrypted. Returns the new key's id.
    ///
    /// The old keys stay in the master key file, so records not yet re-wrapped stay readable
    /// throughout, and after a failure part-way (the error names the record file that
    /// failed); running the rotation again finishes the job under another new key.
    pub async fn rotate_master_key(&self, now: SystemTime) -> Result<String, SecretError> {
        self.blocking(move |inner| inner.rotate(now)).await
    }

    /// The id of the master key that wraps new records.
    pub fn current_master_key_id(&self) -> String {
        self.inner.keys().current().id.clone()
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, SecretError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, SecretError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| SecretError::Unavailable(format!("secret store task failed: {e}")))?
    }
}

#[async_trait]
impl SecretStore for LocalSecretStore {
    async fn put(&self, name: &str, value: &SecretBytes) -> Result<(), SecretError> {
        validate_name(name)?;
        let name = name.to_owned();
        let value = value.clone();
        self.blocking(move |inner| inner.put(&name, &value)).await
    }

    async fn get(&self, name: &str) -> Result<SecretBytes, SecretError> {
        validate_name(name)?;
        let name = name.to_owned();
        self.blocking(move |inner| inner.get(&name)).await
    }

    async fn delete(&self, name: &str) -> Result<(), SecretError> {
        validate_name(name)?;
        let name = name.to_owned();
        self.blocking(move |inner| inner.delete(&name)).await
    }

    async fn check(&self) -> Result<(), SecretError> {
        self.blocking(|inner| inner.check()).await
    }

    fn backend(&self) -> &'static str {
        "local"
    }
}

impl Inner {
    /// A snapshot of the master keys.
    fn keys(&self) -> Arc<MasterKeys> {
        // The lock guards a pointer swap only, so a poisoned lock still holds valid keys.
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn put(&self, name: &str, value: &SecretBytes) -> Result<(), SecretError> {
        let _writer = self.writers.read().unwrap_or_else(PoisonError::into_inner);
        let record = Record::seal(name, value.expose(), self.keys().current())?;
        files::write_atomic(&self.records, &record_file_name(name), &record.to_bytes()?)
    }

    fn get(&self, name: &str) -> Result<SecretBytes, SecretError> {
        let path = self.records.join(record_file_name(name));
        let bytes =
            files::read_optional(&path)?.ok_or_else(|| SecretError::NotFound(name.to_owned()))?;
        // Keys are read after the record, so they include the key the record was wrapped
        // under even if a rotation re-wrapped it a moment ago.
        Record::from_bytes(&bytes, name)?.open(name, &self.keys())
    }

    fn delete(&self, name: &str) -> Result<(), SecretError> {
        let _writer = self.writers.read().unwrap_or_else(PoisonError::into_inner);
        files::remove(&self.records, &record_file_name(name)).map(|_| ())
    }

    fn check(&self) -> Result<(), SecretError> {
        master::check_file(&self.dir)?;
        std::fs::read_dir(&self.records)
            .map(|_| ())
            .map_err(|e| io_error("listing", &self.records, &e))
    }

    fn rotate(&self, now: SystemTime) -> Result<String, SecretError> {
        let _writer = self.writers.write().unwrap_or_else(PoisonError::into_inner);
        let keys = Arc::new(self.keys().with_new_key(now)?);
        master::save(&self.dir, &keys)?;
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&keys);
        let new = keys.current();
        let entries =
            std::fs::read_dir(&self.records).map_err(|e| io_error("listing", &self.records, &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error("listing", &self.records, &e))?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str().filter(|n| is_record_file_name(n)) else {
                continue; // temporary files and anything else that is not a record
            };
            let path = entry.path();
            let what = format!("record file {}", path.display());
            let Some(bytes) = files::read_optional(&path)? else {
                continue;
            };
            let record = Record::from_bytes(&bytes, &what)?;
            if record.master_key == new.id {
                continue;
            }
            let rewrapped = record.rewrap(&keys, new, &what)?;
            files::write_atomic(&self.records, file_name, &rewrapped.to_bytes()?)?;
        }
        Ok(new.id.clone())
    }
}

/// The record file of a secret: hex SHA-256 of its name, so listings do not reveal names.
fn record_file_name(name: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, name.as_bytes()))
}

fn is_record_file_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
