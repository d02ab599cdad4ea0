//! The secret store: private keys and credentials behind one backend-neutral trait,
//! [`SecretStore`], with [`LocalSecretStore`] (envelope encryption on local disk) as the
//! embedded default.
//!
//! Secrets are addressed by names such as `ca/<id>/issuing-key` or `keys/<request-id>`
//! (see [`validate_name`]). Values travel as [`SecretBytes`], which zeroes its buffer on drop
//! and never prints its contents. Errors never carry secret bytes.

mod error;
mod local;
mod name;
mod secret;

#[cfg(test)]
mod tests;

pub use error::SecretError;
pub use local::LocalSecretStore;
pub use name::{MAX_NAME_LEN, validate_name};
pub use secret::SecretBytes;

use async_trait::async_trait;

/// A store of named secrets. Implementations must be safe for concurrent use from many tasks.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Stores (or replaces) a secret under a name such as "ca/<id>/issuing-key" or
    /// "keys/<request-id>".
    async fn put(&self, name: &str, value: &SecretBytes) -> Result<(), SecretError>;
    /// Reads a secret; [`SecretError::NotFound`] if absent.
    async fn get(&self, name: &str) -> Result<SecretBytes, SecretError>;
    /// Deletes a secret (ok if absent).
    async fn delete(&self, name: &str) -> Result<(), SecretError>;
    /// Whether the backend is usable (for /readyz).
    async fn check(&self) -> Result<(), SecretError>;
    /// A short name of the backend for logs ("local", "vault").
    fn backend(&self) -> &'static str;
}
