//! Settings of the builtin CA: the algorithm of its own keys, its names, lifetimes and URLs.

use serde::{Deserialize, Serialize};

/// Algorithm of the builtin CA's own keys (root and issuing CA alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyAlgorithm {
    /// ECDSA on P-256, signatures with SHA-256.
    #[default]
    EcdsaP256,
    /// ECDSA on P-384, signatures with SHA-384.
    EcdsaP384,
    /// RSA 2048-bit, PKCS#1 v1.5 signatures with SHA-256.
    Rsa2048,
    /// RSA 3072-bit, PKCS#1 v1.5 signatures with SHA-256.
    Rsa3072,
    /// RSA 4096-bit, PKCS#1 v1.5 signatures with SHA-256.
    Rsa4096,
}

/// Configuration of the builtin CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuiltinConfig {
    /// Algorithm of the root and issuing CA keys.
    pub key_algorithm: KeyAlgorithm,
    /// Base of the CA names: `"CMP Builtin"` gives "CMP Builtin Root CA" and
    /// "CMP Builtin Issuing CA".
    pub common_name: String,
    /// Lifetime of the root certificate, in days.
    pub root_validity_days: i64,
    /// Lifetime of the issuing CA certificate, in days (at most the root's).
    pub issuing_validity_days: i64,
    /// Public base URL of the server, e.g. `http://127.0.0.1:3000`: leaves point at
    /// `{base_url}/pki/{name}/crl`, `/ocsp` and `/ca`.
    pub base_url: String,
}

impl Default for BuiltinConfig {
    fn default() -> Self {
        BuiltinConfig {
            key_algorithm: KeyAlgorithm::default(),
            common_name: "CMP Builtin".into(),
            root_validity_days: 3650,
            issuing_validity_days: 1825,
            base_url: "http://127.0.0.1:3000".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names() {
        let names: Vec<String> = [
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::Rsa2048,
            KeyAlgorithm::Rsa3072,
            KeyAlgorithm::Rsa4096,
        ]
        .iter()
        .map(|a| serde_json::to_string(a).unwrap())
        .collect();
        assert_eq!(
            names,
            ["\"ecdsa_p256\"", "\"ecdsa_p384\"", "\"rsa2048\"", "\"rsa3072\"", "\"rsa4096\""]
        );
    }
}
