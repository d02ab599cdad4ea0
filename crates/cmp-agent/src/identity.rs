//! The agent's identity: the client certificate the agent CA made for a key that never left
//! this host, kept under `<state_dir>/identity/`:
//!
//! | file | holds | mode |
//! |---|---|---|
//! | `cert.pem` | the agent's client certificate | 0644 |
//! | `key.pem` | its P-256 key, PKCS#8 | 0600 |
//! | `agent-ca.pem` | the agent CA (what the certificate chains to) | 0644 |
//! | `agent.json` | `{ "name", "id", "server" }` | 0644 |
//!
//! Every file is written atomically (temp file, fsync, rename, fsync of the directory), the
//! directory is 0700. A renewal replaces the certificate and the key together: both are first
//! written as `key.pem.new` and `cert.pem.new`, then renamed into place, key first; [`Identity::load`]
//! finishes a pair a crash left half renamed (the server already counts only the new
//! certificate) and drops a lone `key.pem.new` (the certificate never came).

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use cmp_domain::Secret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::error::AgentError;

/// The identity's directory under the state directory.
pub const IDENTITY_DIR: &str = "identity";
/// The client certificate.
pub const CERT_FILE: &str = "cert.pem";
/// Its private key.
pub const KEY_FILE: &str = "key.pem";
/// The agent CA's certificate.
pub const AGENT_CA_FILE: &str = "agent-ca.pem";
/// Name, id and server.
pub const META_FILE: &str = "agent.json";
/// The suffix of a renewed certificate or key before it is renamed into place.
const PENDING_SUFFIX: &str = ".new";

/// Where the identity of the agent with this state directory lives.
pub fn identity_dir(state_dir: &Path) -> PathBuf {
    state_dir.join(IDENTITY_DIR)
}

/// An enrolled agent's identity. `Debug` shows no key.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The agent's name (its certificate's common name).
    pub name: String,
    /// The id the server gave it.
    pub id: String,
    /// The server it enrolled with.
    pub server: String,
    /// Its client certificate, PEM.
    pub cert_pem: String,
    /// The certificate's private key, PKCS#8 PEM.
    pub key_pem: Secret<String>,
    /// The agent CA's certificate, PEM.
    pub agent_ca_pem: String,
    /// The certificate's start.
    pub not_before: OffsetDateTime,
    /// The certificate's end.
    pub not_after: OffsetDateTime,
}

/// `agent.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    name: String,
    id: String,
    server: String,
}

/// A key made on this host, and a CSR for it naming the agent.
#[derive(Debug)]
pub struct NewKey {
    /// The key, PKCS#8 PEM.
    pub key_pem: Secret<String>,
    /// The CSR, PEM.
    pub csr_pem: String,
}

/// Makes a P-256 key and a CSR whose common name is `name` (what the server requires).
pub fn new_key_and_csr(name: &str) -> Result<NewKey, AgentError> {
    let csr_error = |e: rcgen::Error| AgentError::Csr(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(csr_error)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(csr_error)?;
    let mut subject = rcgen::DistinguishedName::new();
    subject.push(rcgen::DnType::CommonName, name);
    params.distinguished_name = subject;
    let csr_pem = params.serialize_request(&key).map_err(csr_error)?.pem().map_err(csr_error)?;
    Ok(NewKey { key_pem: Secret::new(key.serialize_pem()), csr_pem })
}

/// The DER of the first certificate in `pem_text`.
fn first_certificate(pem_text: &str) -> Result<Vec<u8>, String> {
    pem::parse_many(pem_text)
        .map_err(|e| format!("the certificate is not PEM: {e}"))?
        .into_iter()
        .find(|block| block.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .ok_or_else(|| "no certificate in it".to_owned())
}

impl Identity {
    /// An identity from its parts, once the certificate is read and the key is known to
    /// belong to it.
    pub fn from_parts(
        name: String,
        id: String,
        server: String,
        cert_pem: String,
        key_pem: Secret<String>,
        agent_ca_pem: String,
    ) -> Result<Identity, String> {
        let der = first_certificate(&cert_pem)?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| format!("the certificate cannot be read: {e}"))?;
        let key = rcgen::KeyPair::from_pem(key_pem.expose())
            .map_err(|e| format!("the key cannot be read: {e}"))?;
        if rcgen::PublicKeyData::subject_public_key_info(&key) != cert.public_key().raw {
            return Err("the key does not belong to the certificate".into());
        }
        let validity = cert.validity();
        Ok(Identity {
            name,
            id,
            server,
            cert_pem,
            key_pem,
            agent_ca_pem,
            not_before: validity.not_before.to_datetime(),
            not_after: validity.not_after.to_datetime(),
        })
    }

    /// Whether an identity (or part of one) is stored under `state_dir`.
    pub fn exists(state_dir: &Path) -> bool {
        let dir = identity_dir(state_dir);
        [META_FILE, CERT_FILE, KEY_FILE].iter().any(|file| dir.join(file).exists())
    }

    /// Reads the identity under `state_dir`, finishing a renewal a crash interrupted.
    pub fn load(state_dir: &Path) -> Result<Identity, AgentError> {
        let dir = identity_dir(state_dir);
        let meta_path = dir.join(META_FILE);
        let meta = match fs::read(&meta_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(AgentError::NotEnrolled(dir)),
            Err(e) => return Err(AgentError::io("cannot read", &meta_path, e)),
        };
        let bad = |message: String| AgentError::BadIdentity { dir: dir.clone(), message };
        let meta: Meta = serde_json::from_slice(&meta)
            .map_err(|e| bad(format!("{META_FILE} is unreadable: {e}")))?;
        finish_pending(&dir)?;
        let read = |file: &str| {
            let path = dir.join(file);
            fs::read_to_string(&path).map_err(|e| match e.kind() {
                ErrorKind::NotFound => bad(format!("{file} is missing")),
                _ => AgentError::io("cannot read", &path, e),
            })
        };
        let cert_pem = read(CERT_FILE)?;
        let key_pem = Secret::new(read(KEY_FILE)?);
        let agent_ca_pem = read(AGENT_CA_FILE)?;
        Identity::from_parts(meta.name, meta.id, meta.server, cert_pem, key_pem, agent_ca_pem)
            .map_err(bad)
    }

    /// Writes the identity under `state_dir` (see the module documentation).
    pub fn save(&self, state_dir: &Path) -> Result<(), AgentError> {
        let dir = identity_dir(state_dir);
        fs::create_dir_all(&dir).map_err(|e| AgentError::io("cannot create", &dir, e))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| AgentError::io("cannot restrict", &dir, e))?;
        let pending = |file: &str| dir.join(format!("{file}{PENDING_SUFFIX}"));
        write_atomic(&pending(KEY_FILE), self.key_pem.expose().as_bytes(), 0o600)?;
        write_atomic(&pending(CERT_FILE), self.cert_pem.as_bytes(), 0o644)?;
        for file in [KEY_FILE, CERT_FILE] {
            rename(&pending(file), &dir.join(file))?;
        }
        write_atomic(&dir.join(AGENT_CA_FILE), self.agent_ca_pem.as_bytes(), 0o644)?;
        let meta =
            Meta { name: self.name.clone(), id: self.id.clone(), server: self.server.clone() };
        let json = serde_json::to_vec_pretty(&meta)
            .map_err(|e| AgentError::BadIdentity { dir: dir.clone(), message: e.to_string() })?;
        write_atomic(&dir.join(META_FILE), &json, 0o644)?;
        sync_dir(&dir)
    }

    /// The certificate followed by the key, PEM: what the mTLS client presents.
    pub fn client_pem(&self) -> Zeroizing<Vec<u8>> {
        let mut pem = Zeroizing::new(Vec::with_capacity(
            self.cert_pem.len() + self.key_pem.expose().len() + 1,
        ));
        pem.extend_from_slice(self.cert_pem.as_bytes());
        if !self.cert_pem.ends_with('\n') {
            pem.push(b'\n');
        }
        pem.extend_from_slice(self.key_pem.expose().as_bytes());
        pem
    }

    /// SHA-256 of the certificate's DER, lowercase hex (what the server knows the agent by).
    pub fn fingerprint(&self) -> String {
        first_certificate(&self.cert_pem)
            .map(|der| hex::encode(Sha256::digest(der)))
            .unwrap_or_default()
    }

    /// Whether less than a third of the certificate's lifetime is left at `now`.
    pub fn needs_renewal(&self, now: OffsetDateTime) -> bool {
        needs_renewal(self.not_before, self.not_after, now)
    }
}

/// Whether less than a third of the lifetime `not_before..not_after` is left at `now`.
pub fn needs_renewal(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
) -> bool {
    let lifetime = not_after - not_before;
    not_after - now < lifetime / 3
}

/// Finishes or drops a renewed pair a crash left (see the module documentation).
fn finish_pending(dir: &Path) -> Result<(), AgentError> {
    let pending = |file: &str| dir.join(format!("{file}{PENDING_SUFFIX}"));
    let (key_new, cert_new) = (pending(KEY_FILE), pending(CERT_FILE));
    if cert_new.exists() {
        // Both were written in full before the first rename: finish.
        if key_new.exists() {
            rename(&key_new, &dir.join(KEY_FILE))?;
        }
        rename(&cert_new, &dir.join(CERT_FILE))?;
        tracing::warn!(dir = %dir.display(), "finished an interrupted identity renewal");
    } else if key_new.exists() {
        fs::remove_file(&key_new).map_err(|e| AgentError::io("cannot remove", &key_new, e))?;
    }
    Ok(())
}

fn rename(from: &Path, to: &Path) -> Result<(), AgentError> {
    fs::rename(from, to).map_err(|e| AgentError::io("cannot rename", from, e))
}

fn sync_dir(dir: &Path) -> Result<(), AgentError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| AgentError::io("cannot sync", dir, e))
}

/// Writes `bytes` to `path` through a temp file beside it, with `mode` from the start.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), AgentError> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    // A temp file a crash left may have another mode: start afresh.
    match fs::remove_file(&temp) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            return Err(AgentError::io("cannot remove", &temp, e));
        }
        _ => {}
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)
        .map_err(|e| AgentError::io("cannot create", &temp, e))?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| file.sync_all())
        .map_err(|e| AgentError::io("cannot write", &temp, e))?;
    drop(file);
    rename(&temp, path)?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}
