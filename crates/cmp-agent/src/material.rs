//! What is deployed: a leaf certificate, its chain and its private key, checked on the way in
//! (exactly one leaf, certificates only in the chain, one unencrypted key) and normalised to
//! plain PEM. The key stays in zeroed-on-drop buffers and never prints.
//!
//! Also the pair check: a certificate and a key belong together when the certificate's
//! SubjectPublicKeyInfo equals the public key the crypto provider derives from the key.

use std::sync::Arc;

use cmp_domain::Secret;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::targets::Content;

/// Material that cannot be deployed.
#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    /// The text is not PEM.
    #[error("{what}: not PEM: {message}")]
    NotPem {
        /// Which part (`certificate`, `chain`, `key`).
        what: &'static str,
        /// The PEM parser's words.
        message: String,
    },
    /// The PEM holds the wrong blocks.
    #[error("{what}: {message}")]
    Content {
        /// Which part.
        what: &'static str,
        /// What was expected and found.
        message: String,
    },
    /// The key does not belong to the certificate, or cannot be compared with it.
    #[error("certificate and key do not match: {0}")]
    Mismatch(String),
    /// No rustls crypto provider is installed (each binary's `main` installs aws-lc-rs).
    #[error("no rustls crypto provider is installed")]
    NoCryptoProvider,
}

/// A certificate, its chain and its key, ready to be written.
pub struct Material {
    leaf_der: Vec<u8>,
    chain_der: Vec<Vec<u8>>,
    key: Secret<Vec<u8>>,
    key_tag: KeyTag,
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Material")
            .field("leaf_sha256", &self.fingerprint())
            .field("chain_len", &self.chain_der.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The key's PEM label, which says how it is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyTag {
    Pkcs8,
    Sec1,
    Pkcs1,
}

impl KeyTag {
    fn label(self) -> &'static str {
        match self {
            KeyTag::Pkcs8 => "PRIVATE KEY",
            KeyTag::Sec1 => "EC PRIVATE KEY",
            KeyTag::Pkcs1 => "RSA PRIVATE KEY",
        }
    }
}

fn parse_pem(what: &'static str, text: &str) -> Result<Vec<pem::Pem>, MaterialError> {
    pem::parse_many(text).map_err(|e| MaterialError::NotPem { what, message: e.to_string() })
}

fn certificates(what: &'static str, text: &str) -> Result<Vec<Vec<u8>>, MaterialError> {
    parse_pem(what, text)?
        .into_iter()
        .map(|block| {
            if block.tag() == "CERTIFICATE" {
                Ok(block.into_contents())
            } else {
                Err(MaterialError::Content {
                    what,
                    message: format!(
                        "holds a `{}` block; only certificates belong here",
                        block.tag()
                    ),
                })
            }
        })
        .collect()
}

/// The one private key in `text`: its DER (zeroed on drop) and encoding.
fn private_key(what: &'static str, text: &str) -> Result<(Secret<Vec<u8>>, KeyTag), MaterialError> {
    let mut found = None;
    for block in parse_pem(what, text)? {
        let tag = match block.tag() {
            "PRIVATE KEY" => KeyTag::Pkcs8,
            "EC PRIVATE KEY" => KeyTag::Sec1,
            "RSA PRIVATE KEY" => KeyTag::Pkcs1,
            // OpenSSL's `ecparam -genkey` writes the curve before the key.
            "EC PARAMETERS" => continue,
            "CERTIFICATE" if what != "key" => continue,
            other => {
                return Err(MaterialError::Content {
                    what,
                    message: format!(
                        "holds a `{other}` block; expected one unencrypted private key"
                    ),
                });
            }
        };
        let der = Secret::new(Zeroizing::new(block.into_contents()).to_vec());
        if found.replace((der, tag)).is_some() {
            return Err(MaterialError::Content { what, message: "holds more than one key".into() });
        }
    }
    found.ok_or(MaterialError::Content { what, message: "holds no private key".into() })
}

impl Material {
    /// Checks and takes the leaf (exactly one certificate), the chain (zero or more
    /// certificates; may be empty) and the key (one unencrypted PKCS#8, SEC1 or PKCS#1 key).
    pub fn from_pem(
        leaf_pem: &str,
        chain_pem: &str,
        key_pem: &Secret<String>,
    ) -> Result<Material, MaterialError> {
        let mut leaf = certificates("certificate", leaf_pem)?;
        let leaf_der = match (leaf.pop(), leaf.is_empty()) {
            (Some(der), true) => der,
            _ => {
                return Err(MaterialError::Content {
                    what: "certificate",
                    message: "must hold exactly one certificate (the chain goes apart)".into(),
                });
            }
        };
        let chain_der = certificates("chain", chain_pem)?;
        let (key, key_tag) = private_key("key", key_pem.expose())?;
        Ok(Material { leaf_der, chain_der, key, key_tag })
    }

    /// SHA-256 of the leaf's DER, lowercase hex: what `verify` compares with what is served.
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(&self.leaf_der))
    }

    /// The leaf certificate, DER.
    pub fn leaf_der(&self) -> &[u8] {
        &self.leaf_der
    }

    /// Checks that the key belongs to the leaf, with the process's crypto provider.
    pub fn check_pair(&self) -> Result<(), MaterialError> {
        check_pair(&self.leaf_der, &self.key, self.key_tag)
    }

    /// The bytes of a file that holds `content` (zeroed on drop: it may hold the key).
    pub(crate) fn render(&self, content: Content) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        let cert = |der: &[u8]| encode(&pem::Pem::new("CERTIFICATE", der.to_vec()));
        if matches!(content, Content::Leaf | Content::LeafAndChain | Content::LeafChainKey) {
            out.extend_from_slice(cert(&self.leaf_der).as_bytes());
        }
        if matches!(content, Content::Chain | Content::LeafAndChain | Content::LeafChainKey) {
            for der in &self.chain_der {
                out.extend_from_slice(cert(der).as_bytes());
            }
        }
        if content.is_secret() {
            let block = pem::Pem::new(self.key_tag.label(), self.key.expose().clone());
            let key = Zeroizing::new(encode(&block));
            // `Pem` does not zero its buffer on drop.
            drop(Zeroizing::new(block.into_contents()));
            out.extend_from_slice(key.as_bytes());
        }
        out
    }
}

/// PEM with `\n` line ends, as OpenSSL writes it (the `pem` crate's default is `\r\n`).
fn encode(block: &pem::Pem) -> String {
    pem::encode_config(block, pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF))
}

/// What the files of a target hold, read back from disk: the first certificate of the
/// certificate file and the key.
pub(crate) struct OnDisk {
    pub(crate) leaf_der: Option<Vec<u8>>,
    key: Option<(Secret<Vec<u8>>, KeyTag)>,
}

impl OnDisk {
    /// Reads the leaf and key from files' contents (`(content kind, bytes)`).
    pub(crate) fn parse(files: &[(Content, Zeroizing<Vec<u8>>)]) -> Result<OnDisk, MaterialError> {
        let mut on_disk = OnDisk { leaf_der: None, key: None };
        for (content, bytes) in files {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| MaterialError::NotPem { what: "file", message: "not UTF-8".into() })?;
            if matches!(content, Content::Leaf | Content::LeafAndChain | Content::LeafChainKey) {
                let blocks = parse_pem("certificate file", text)?;
                on_disk.leaf_der = blocks
                    .into_iter()
                    .find(|b| b.tag() == "CERTIFICATE")
                    .map(pem::Pem::into_contents);
            }
            if content.is_secret() {
                on_disk.key = Some(private_key("key file", text)?);
            }
        }
        Ok(on_disk)
    }

    /// SHA-256 of the leaf found, lowercase hex.
    pub(crate) fn fingerprint(&self) -> Option<String> {
        self.leaf_der.as_ref().map(|der| hex::encode(Sha256::digest(der)))
    }

    /// Checks that the files hold a matching pair.
    pub(crate) fn check_pair(&self) -> Result<(), MaterialError> {
        let leaf = self.leaf_der.as_ref().ok_or_else(|| {
            MaterialError::Mismatch("no certificate in the certificate file".into())
        })?;
        let (key, tag) = self
            .key
            .as_ref()
            .ok_or_else(|| MaterialError::Mismatch("no key in the key file".into()))?;
        check_pair(leaf, key, *tag)
    }
}

fn check_pair(leaf_der: &[u8], key: &Secret<Vec<u8>>, tag: KeyTag) -> Result<(), MaterialError> {
    let provider: &Arc<CryptoProvider> =
        CryptoProvider::get_default().ok_or(MaterialError::NoCryptoProvider)?;
    let der = key.expose().clone();
    let key_der: PrivateKeyDer<'static> = match tag {
        KeyTag::Pkcs8 => PrivatePkcs8KeyDer::from(der).into(),
        KeyTag::Sec1 => PrivateSec1KeyDer::from(der).into(),
        KeyTag::Pkcs1 => PrivatePkcs1KeyDer::from(der).into(),
    };
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| MaterialError::Mismatch(format!("the key cannot be loaded: {e}")))?;
    let certified =
        rustls::sign::CertifiedKey::new(vec![CertificateDer::from(leaf_der.to_vec())], signing_key);
    // `Unknown` (a key whose public half the provider cannot tell) is refused too: an
    // unchecked pair is what stops Apache.
    certified.keys_match().map_err(|e| MaterialError::Mismatch(e.to_string()))
}
