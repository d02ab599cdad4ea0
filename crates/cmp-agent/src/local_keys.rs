//! Keys the agent makes on its host for managed certificates whose key never leaves it
//! (`renew_with_local_key` jobs). Each is kept as `<state_dir>/keys/<job id>.key` (directory
//! 0700, file 0600) from the CSR until its certificate is installed: the `deploy` job that
//! brings the certificate carries no key, and the one kept here that matches it is used. A
//! retried job finds the key it made before instead of making another.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cmp_api::LocalKeyRequest;
use cmp_domain::Secret;
use cmp_pki::keygen::{KeySpec, generate_key, make_csr};

use crate::error::AgentError;
use crate::identity::write_atomic;
use crate::material::Material;

const KEY_SUFFIX: &str = ".key";

/// The kept keys of one agent.
#[derive(Debug, Clone)]
pub struct LocalKeys {
    dir: PathBuf,
}

/// A kept key that belongs to a certificate.
pub struct FoundKey {
    pub path: PathBuf,
    pub material: Material,
}

impl LocalKeys {
    pub fn new(state_dir: &Path) -> LocalKeys {
        LocalKeys { dir: state_dir.join("keys") }
    }

    /// A CSR (PEM) for the key of job `job_id`: the key made for it before, or a new one of
    /// the asked type, saved before the CSR leaves the host.
    pub fn csr_for_job(&self, job_id: &str, asked: &LocalKeyRequest) -> Result<String, AgentError> {
        // The job id is the server's: only a plain name becomes a file name.
        if !cmp_domain::agent::valid_agent_name(job_id) {
            return Err(AgentError::BadAnswer(format!("job id {job_id:?} is not a plain name")));
        }
        let spec = KeySpec::parse(&asked.key_type)
            .map_err(|_| AgentError::Csr(format!("unknown key type {}", asked.key_type)))?;
        let ips = asked
            .ip_addresses
            .iter()
            .map(|ip| ip.parse().map_err(|_| AgentError::Csr(format!("bad IP address {ip}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let path = self.dir.join(format!("{job_id}{KEY_SUFFIX}"));
        let key_der = match fs::read_to_string(&path) {
            Ok(text) => {
                let block = pem::parse(text.as_bytes())
                    .map_err(|e| AgentError::Csr(format!("{}: {e}", path.display())))?;
                zeroize::Zeroizing::new(block.into_contents())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = generate_key(spec).map_err(|e| AgentError::Csr(e.to_string()))?;
                fs::create_dir_all(&self.dir)
                    .and_then(|()| {
                        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
                    })
                    .map_err(|e| AgentError::io("cannot create", &self.dir, e))?;
                write_atomic(&path, key.to_pem().as_bytes(), 0o600)?;
                zeroize::Zeroizing::new(key.pkcs8_der().to_vec())
            }
            Err(e) => return Err(AgentError::io("cannot read", &path, e)),
        };
        let csr = make_csr(&key_der, asked.common_name.as_deref(), &asked.dns_names, &ips)
            .map_err(|e| AgentError::Csr(e.to_string()))?;
        Ok(pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", csr)))
    }

    /// The kept key that belongs to the certificate, as deployable material with its chain.
    /// `None` when no kept key is the certificate's.
    pub fn find(&self, cert_pem: &str, chain_pem: &str) -> Result<Option<FoundKey>, AgentError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(AgentError::io("cannot read", &self.dir, e)),
        };
        for entry in entries {
            let path = entry.map_err(|e| AgentError::io("cannot read", &self.dir, e))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some(&KEY_SUFFIX[1..]) {
                continue;
            }
            let key = Secret::new(
                fs::read_to_string(&path).map_err(|e| AgentError::io("cannot read", &path, e))?,
            );
            if let Ok(material) = Material::from_pem(cert_pem, chain_pem, &key)
                && material.check_pair().is_ok()
            {
                return Ok(Some(FoundKey { path, material }));
            }
        }
        Ok(None)
    }

    /// Forgets a kept key once its certificate is installed (the target's key file has it).
    pub fn forget(&self, path: &Path) {
        if let Err(e) = fs::remove_file(path) {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a used key");
        }
    }
}
