//! The master key file `master.keys`: JSON lines `{"id":"mk-<8 hex>","key":"<64 hex>",
//! "created_at":<unix seconds>}`, the last line being the current key. Mode 0600; a file that
//! group or others may access is refused.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use cmp_domain::Secret;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::files::{self, io_error};
use crate::SecretError;

/// File name of the master key file inside the store directory.
pub(crate) const MASTER_FILE: &str = "master.keys";
/// Length of a master key (AES-256).
pub(crate) const KEY_LEN: usize = 32;

/// One master key; the key bytes are zeroed on drop and never printed.
#[derive(Debug, Clone)]
pub(crate) struct MasterKey {
    /// `mk-` and 8 hex digits; recorded in every record wrapped under this key.
    pub id: String,
    /// The AES-256 key.
    pub key: Secret<[u8; KEY_LEN]>,
    /// Unix seconds when the key was made.
    pub created_at: u64,
}

impl MasterKey {
    /// A new random key whose id is not `taken`, made at `now`.
    fn generate(taken: impl Fn(&str) -> bool, now: SystemTime) -> Result<MasterKey, SecretError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        random(&mut *key)?;
        let id = loop {
            let mut id = [0u8; 4];
            random(&mut id)?;
            let id = format!("mk-{}", hex::encode(id));
            if !taken(&id) {
                break id;
            }
        };
        let created_at = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        Ok(MasterKey { id, key: key.into(), created_at })
    }
}

/// The master keys of a store: the current one wraps new data keys, older ones still unwrap.
#[derive(Debug, Clone)]
pub(crate) struct MasterKeys {
    older: Vec<MasterKey>,
    current: MasterKey,
}

impl MasterKeys {
    /// The key that wraps new data keys (the file's last line).
    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    /// The key with this id.
    pub fn get(&self, id: &str) -> Option<&MasterKey> {
        self.iter().find(|k| k.id == id)
    }

    /// Every key, oldest first.
    fn iter(&self) -> impl Iterator<Item = &MasterKey> {
        self.older.iter().chain(std::iter::once(&self.current))
    }

    /// These keys plus a new current one, made at `now`.
    pub fn with_new_key(&self, now: SystemTime) -> Result<MasterKeys, SecretError> {
        let new = MasterKey::generate(|id| self.get(id).is_some(), now)?;
        let mut older = self.older.clone();
        older.push(self.current.clone());
        Ok(MasterKeys { older, current: new })
    }

    /// The file contents, one JSON line per key.
    fn to_file(&self) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        // Sized up front so the buffer holding key material never reallocates.
        let mut out = Zeroizing::new(Vec::with_capacity((self.older.len() + 1) * 192));
        for key in self.iter() {
            let mut key_hex = Zeroizing::new([0u8; KEY_LEN * 2]);
            let encoded = hex::encode_to_slice(key.key.expose(), &mut *key_hex)
                .ok()
                .and_then(|()| std::str::from_utf8(&*key_hex).ok())
                .ok_or_else(|| SecretError::Unavailable("encoding a master key failed".into()))?;
            let line = LineOut { id: &key.id, key: encoded, created_at: key.created_at };
            serde_json::to_writer(&mut *out, &line)
                .map_err(|e| SecretError::Unavailable(format!("writing master keys: {e}")))?;
            out.push(b'\n');
        }
        Ok(out)
    }

    /// Parses the file contents; `path` is only for messages.
    fn parse(contents: &[u8], path: &Path) -> Result<MasterKeys, SecretError> {
        let bad = |line: usize, why: &str| {
            SecretError::Unavailable(format!(
                "master key file {} line {line}: {why}",
                path.display()
            ))
        };
        let mut keys: Vec<MasterKey> = Vec::new();
        for (index, raw) in contents.split(|b| *b == b'\n').enumerate() {
            let number = index + 1;
            if raw.trim_ascii().is_empty() {
                continue;
            }
            // Only the position: serde_json's messages can quote values, and values are keys.
            let mut line: Line = serde_json::from_slice(raw).map_err(|e| {
                bad(number, &format!("not a master key line (error at column {})", e.column()))
            })?;
            let mut key = Zeroizing::new([0u8; KEY_LEN]);
            let decoded = hex::decode_to_slice(&line.key, &mut *key);
            line.key.zeroize();
            decoded.map_err(|_| bad(number, "the key is not 64 hex digits"))?;
            if !valid_id(&line.id) {
                return Err(bad(number, "the id is not mk- and 8 lowercase hex digits"));
            }
            if keys.iter().any(|k| k.id == line.id) {
                return Err(bad(number, &format!("the id {} appears twice", line.id)));
            }
            keys.push(MasterKey {
                id: line.id.clone(),
                key: key.into(),
                created_at: line.created_at,
            });
        }
        let current = keys.pop().ok_or_else(|| {
            SecretError::Unavailable(format!("master key file {} holds no key", path.display()))
        })?;
        Ok(MasterKeys { older: keys, current })
    }
}

/// One line of the master key file, as written.
#[derive(Serialize)]
struct LineOut<'a> {
    id: &'a str,
    key: &'a str,
    created_at: u64,
}

/// One line of the master key file, as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    id: String,
    key: String,
    created_at: u64,
}

fn valid_id(id: &str) -> bool {
    id.strip_prefix("mk-").is_some_and(|hex| {
        hex.len() == 8 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

fn random(buf: &mut [u8]) -> Result<(), SecretError> {
    aws_lc_rs::rand::fill(buf)
        .map_err(|_| SecretError::Unavailable("the system random generator failed".into()))
}

/// Loads `dir/master.keys`, creating it with one new key (mode 0600) made at `now` if it does
/// not exist.
pub(crate) fn load_or_create(dir: &Path, now: SystemTime) -> Result<MasterKeys, SecretError> {
    let path = dir.join(MASTER_FILE);
    if !path.exists() {
        let first = MasterKey::generate(|_| false, now)?;
        let keys = MasterKeys { older: Vec::new(), current: first };
        // Another process may create it at the same moment: then its keys win.
        if files::create_atomic(dir, MASTER_FILE, &keys.to_file()?)? {
            return Ok(keys);
        }
    }
    load(&path)
}

/// Replaces the master key file with `keys`, atomically.
pub(crate) fn save(dir: &Path, keys: &MasterKeys) -> Result<(), SecretError> {
    files::write_atomic(dir, MASTER_FILE, &keys.to_file()?)
}

/// Checks that the master key file is still there and private.
pub(crate) fn check_file(dir: &Path) -> Result<(), SecretError> {
    let path = dir.join(MASTER_FILE);
    let file = File::open(&path).map_err(|e| io_error("opening", &path, &e))?;
    check_mode(&file, &path)
}

fn load(path: &Path) -> Result<MasterKeys, SecretError> {
    let mut file = File::open(path).map_err(|e| io_error("opening", path, &e))?;
    check_mode(&file, path)?;
    let mut contents = Zeroizing::new(Vec::with_capacity(64 * 1024));
    file.read_to_end(&mut contents).map_err(|e| io_error("reading", path, &e))?;
    MasterKeys::parse(&contents, path)
}

/// Refuses a master key file that is not a regular file or that group or others may access.
fn check_mode(file: &File, path: &Path) -> Result<(), SecretError> {
    let meta = file.metadata().map_err(|e| io_error("inspecting", path, &e))?;
    if !meta.is_file() {
        return Err(SecretError::Unavailable(format!(
            "master key file {} is not a regular file",
            path.display()
        )));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SecretError::Unavailable(format!(
            "master key file {path} has mode {mode:04o}, which lets group or others access it; \
             set mode 0600 (chmod 600 {path})",
            path = path.display()
        )));
    }
    Ok(())
}
