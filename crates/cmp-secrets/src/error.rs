//! The one error type of every secret store backend.

/// Why a secret store operation failed. Messages name secrets and files, never their bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The secret name breaks the naming rules; holds what is wrong with it.
    #[error("invalid secret name: {0}")]
    InvalidName(String),
    /// No secret is stored under this name; holds the name.
    #[error("secret not found: {0}")]
    NotFound(String),
    /// A stored record does not open (bad format, unknown master key, failed authentication,
    /// or a record moved from another name); holds the name (or record file) and why.
    #[error("secret record is corrupt or was tampered with: {0}")]
    Corrupt(String),
    /// The backend cannot be used (unsafe master key file permissions, unreadable master
    /// keys, a backend that does not answer); holds what to fix.
    #[error("secret store unavailable: {0}")]
    Unavailable(String),
    /// Reading or writing a file failed; holds the path and the operating system's reason.
    #[error("secret store I/O failed: {0}")]
    Io(String),
}
