//! What can go wrong talking to Vault, sorted by what the caller should do about it.

/// Why a Vault call failed. Messages are Vault's own (or the transport's); they never hold a
/// token, a secret id or secret data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// No answer: connection refused, DNS, TLS or a timeout.
    #[error("Vault at {address} is unreachable: {reason}")]
    Unreachable { address: String, reason: String },
    /// Vault answers but is sealed.
    #[error("Vault is sealed")]
    Sealed,
    /// Vault answered 5xx or 429 (standby, overloaded, internal error).
    #[error("Vault is unavailable ({status}): {message}")]
    Unavailable { status: u16, message: String },
    /// Our token is expired or revoked and cannot be renewed by logging in again.
    #[error("the Vault token is expired or revoked: {0}")]
    TokenInvalid(String),
    /// Logging in failed (wrong role id or secret id, auth method not enabled).
    #[error("Vault login failed: {0}")]
    LoginFailed(String),
    /// The token is valid but its policy does not allow this path.
    #[error("Vault denied {path}: {message}")]
    Denied { path: String, message: String },
    /// Vault refused the request itself (a role that does not allow a name, a bad CSR).
    #[error("Vault refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// Nothing at this path.
    #[error("Vault has nothing at {0}")]
    NotFound(String),
    /// The client's own settings are wrong (address, CA bundle, a mount or role name).
    #[error("invalid Vault settings: {0}")]
    InvalidConfig(String),
    /// Vault's answer is not what its API documents.
    #[error("unexpected answer from Vault: {0}")]
    Protocol(String),
}

impl VaultError {
    /// Whether the same call may succeed later without anyone changing configuration.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            VaultError::Unreachable { .. }
                | VaultError::Sealed
                | VaultError::Unavailable { .. }
                | VaultError::TokenInvalid(_)
        )
    }
}

/// Vault's `{"errors": [...]}` as one line: multi-error text ("1 error occurred:\n\t* x")
/// reduced to its items.
pub(crate) fn error_message(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<String>,
    }
    let items = match serde_json::from_str::<Errors>(body) {
        Ok(parsed) if !parsed.errors.is_empty() => parsed.errors,
        _ => return body.chars().take(300).collect::<String>().trim().to_string(),
    };
    let mut parts = Vec::new();
    for item in items {
        for line in item.lines() {
            let line = line.trim().trim_start_matches("* ").trim();
            if line.is_empty() || (line.ends_with("occurred:") && line.contains("error")) {
                continue;
            }
            parts.push(line.to_string());
        }
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_errors_become_one_line() {
        let body = r#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#;
        assert_eq!(error_message(body), "permission denied");
        let body = r#"{"errors":["common name x not allowed by this role", "second"]}"#;
        assert_eq!(error_message(body), "common name x not allowed by this role; second");
        assert_eq!(error_message("plain text"), "plain text");
    }
}
