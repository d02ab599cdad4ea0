//! [`SecretBytes`]: the bytes of a secret, as the secret store keeps them.

/// Bytes of a secret: a [`cmp_domain::Secret`], zeroed on drop and never printed.
pub type SecretBytes = cmp_domain::Secret<Vec<u8>>;
