//! What can go wrong talking to a provider or checking its tokens. No variant carries a token.

/// An OpenID Connect failure.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider could not be reached, or answered with a server error.
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider's discovery document or key set cannot be used.
    #[error("the identity provider is misconfigured: {0}")]
    BadProvider(String),
    /// A token was refused; the text says which check failed.
    #[error("token refused: {0}")]
    InvalidToken(String),
    /// The provider refused a grant (a used or unknown code, a wrong PKCE verifier, an
    /// expired device code); the text is its `error` and description.
    #[error("the identity provider refused: {0}")]
    Refused(String),
}

impl OidcError {
    pub(crate) fn invalid(reason: impl Into<String>) -> OidcError {
        OidcError::InvalidToken(reason.into())
    }
}

/// The error of a failed HTTP call, without its URL's query (which can hold a code).
pub(crate) fn unavailable(what: &str, error: reqwest::Error) -> OidcError {
    OidcError::Unavailable(format!("{what}: {}", error.without_url()))
}
