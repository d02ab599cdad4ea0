//! Envelope encryption of one record: the value is sealed with AES-256-GCM under its own
//! random data key with the secret name as associated data; the data key is sealed with
//! AES-256-GCM under a master key. A record is one JSON object (see [`Record`]).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::master::{KEY_LEN, MasterKey, MasterKeys};
use crate::{SecretBytes, SecretError};

/// The record format this code writes and reads.
const VERSION: u32 = 1;
/// Associated data prefix of a wrapped data key (followed by the master key id), so a wrapped
/// key is bound to its purpose and to the master key id recorded beside it.
const WRAP_AD_PREFIX: &[u8] = b"cmp-secrets/v1/data-key/";

/// A stored record. Every byte string is lowercase hex.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Record {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// Id of the master key that wraps the data key.
    pub master_key: String,
    /// Nonce of the data key wrap.
    pub key_nonce: String,
    /// The data key sealed under the master key (32 bytes plus the 16-byte tag).
    pub wrapped_key: String,
    /// Nonce of the value seal.
    pub value_nonce: String,
    /// The value sealed under the data key with the secret name as associated data.
    pub ciphertext: String,
}

impl Record {
    /// Seals `value` for `name` under a new data key wrapped by `master`.
    pub fn seal(name: &str, value: &[u8], master: &MasterKey) -> Result<Record, SecretError> {
        let mut data_key = Zeroizing::new([0u8; KEY_LEN]);
        aws_lc_rs::rand::fill(&mut *data_key).map_err(|_| random_failed())?;
        let (value_nonce, ciphertext) = seal(&data_key, name.as_bytes(), value)?;
        let (key_nonce, wrapped_key) = seal(master.key.expose(), &wrap_ad(&master.id), &*data_key)?;
        Ok(Record {
            version: VERSION,
            master_key: master.id.clone(),
            key_nonce: hex::encode(key_nonce),
            wrapped_key: hex::encode(wrapped_key),
            value_nonce: hex::encode(value_nonce),
            ciphertext: hex::encode(ciphertext),
        })
    }

    /// Opens the value of the record stored under `name`.
    pub fn open(&self, name: &str, keys: &MasterKeys) -> Result<SecretBytes, SecretError> {
        let data_key = self.data_key(keys, name)?;
        let nonce = decode_nonce(&self.value_nonce, name)?;
        let ciphertext = decode(&self.ciphertext, name, "ciphertext")?;
        open(&data_key, nonce, name.as_bytes(), ciphertext)
            .map(SecretBytes::from)
            .ok_or_else(|| corrupt(name, "the value does not authenticate under this name"))
    }

    /// The same record with its data key wrapped under `master` instead; the value is not
    /// touched. `what` names the record in errors.
    pub fn rewrap(
        &self,
        keys: &MasterKeys,
        master: &MasterKey,
        what: &str,
    ) -> Result<Record, SecretError> {
        let data_key = self.data_key(keys, what)?;
        let (key_nonce, wrapped_key) = seal(master.key.expose(), &wrap_ad(&master.id), &*data_key)?;
        Ok(Record {
            master_key: master.id.clone(),
            key_nonce: hex::encode(key_nonce),
            wrapped_key: hex::encode(wrapped_key),
            ..self.clone()
        })
    }

    /// Parses a record file; `what` names the record in errors.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Record, SecretError> {
        let record: Record = serde_json::from_slice(bytes)
            .map_err(|e| corrupt(what, &format!("not a record: {e}")))?;
        if record.version != VERSION {
            return Err(corrupt(what, &format!("unknown record version {}", record.version)));
        }
        Ok(record)
    }

    /// The record file contents.
    pub fn to_bytes(&self) -> Result<Vec<u8>, SecretError> {
        serde_json::to_vec(self).map_err(|e| SecretError::Io(format!("encoding a record: {e}")))
    }

    /// Unwraps the data key with the master key the record names.
    fn data_key(
        &self,
        keys: &MasterKeys,
        what: &str,
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, SecretError> {
        let master = keys.get(&self.master_key).ok_or_else(|| {
            corrupt(
                what,
                &format!("master key {:?} is not in the master key file", self.master_key),
            )
        })?;
        let nonce = decode_nonce(&self.key_nonce, what)?;
        let wrapped = decode(&self.wrapped_key, what, "wrapped key")?;
        let plain = open(master.key.expose(), nonce, &wrap_ad(&master.id), wrapped)
            .ok_or_else(|| corrupt(what, "the data key does not authenticate"))?;
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if plain.len() != KEY_LEN {
            return Err(corrupt(what, "the data key has the wrong length"));
        }
        key.copy_from_slice(&plain);
        Ok(key)
    }
}

fn wrap_ad(master_id: &str) -> Vec<u8> {
    [WRAP_AD_PREFIX, master_id.as_bytes()].concat()
}

/// AES-256-GCM with a random nonce; returns the nonce and ciphertext with tag.
fn seal(
    key: &[u8; KEY_LEN],
    ad: &[u8],
    plaintext: &[u8],
) -> Result<([u8; NONCE_LEN], Vec<u8>), SecretError> {
    let failed = || SecretError::Unavailable("AES-256-GCM sealing failed".into());
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| failed())?);
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| random_failed())?;
    // Zeroizing in case sealing fails with the plaintext still in the buffer; sized so that
    // appending the tag never reallocates.
    let mut buffer = Zeroizing::new(Vec::with_capacity(plaintext.len() + AES_256_GCM.tag_len()));
    buffer.extend_from_slice(plaintext);
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(ad), &mut *buffer)
        .map_err(|_| failed())?;
    Ok((nonce, std::mem::take(&mut *buffer)))
}

/// AES-256-GCM open; `None` if the tag does not verify.
fn open(
    key: &[u8; KEY_LEN],
    nonce: [u8; NONCE_LEN],
    ad: &[u8],
    ciphertext: Vec<u8>,
) -> Option<Zeroizing<Vec<u8>>> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).ok()?);
    let mut buffer = Zeroizing::new(ciphertext);
    let len = key
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(ad), &mut buffer)
        .ok()?
        .len();
    buffer.truncate(len);
    Some(buffer)
}

fn decode(field: &str, what: &str, label: &str) -> Result<Vec<u8>, SecretError> {
    hex::decode(field).map_err(|_| corrupt(what, &format!("the {label} is not hex")))
}

fn decode_nonce(field: &str, what: &str) -> Result<[u8; NONCE_LEN], SecretError> {
    let mut nonce = [0u8; NONCE_LEN];
    hex::decode_to_slice(field, &mut nonce)
        .map_err(|_| corrupt(what, "a nonce is not 24 hex digits"))?;
    Ok(nonce)
}

fn corrupt(what: &str, why: &str) -> SecretError {
    SecretError::Corrupt(format!("{what}: {why}"))
}

fn random_failed() -> SecretError {
    SecretError::Unavailable("the system random generator failed".into())
}
