//! What the issuance workflow can fail with, in its own words: `error.rs` turns each into a
//! problem document, the scheduler into a log line.

use cmp_ca::CaError;
use cmp_secrets::SecretError;
use cmp_store::StoreError;

/// Why an issuance, renewal, revocation or approval was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// One field of what was asked has a bad value.
    #[error("{field}: {detail}")]
    BadField { field: &'static str, detail: String },
    /// What was asked does not hold together (a CSR and a key type, or neither).
    #[error("{0}")]
    BadRequest(String),
    /// The CSR cannot be read, or its signature does not verify.
    #[error("csr: {0}")]
    InvalidCsr(String),
    /// `renew_before` leaves a version of the asked lifetime no time before it is due again.
    #[error("{0}")]
    LeavesNoTime(String),
    /// Outside the owner's policy.
    #[error("outside policy ({}): {}", .0.rule, .0.message)]
    Policy(cmp_domain::Violation),
    /// The caller may not do this (another team's owner, approving one's own request).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// It conflicts with what exists: a disabled adapter, a certificate already revoked, a
    /// managed certificate without an owner.
    #[error("{0}")]
    Conflict(String),
    /// The certificate was not issued through CMP, so CMP cannot revoke it.
    #[error("this certificate was not issued through CMP; revoke it at its CA")]
    NotIssuedHere,
    /// The certificate has no server-made private key (the requester made it, or it was
    /// purged).
    #[error("private key of certificate {0} not found")]
    NoKey(String),
    /// Storage failed, or what was named does not exist.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The CA refused or failed.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The secret store refused or failed.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A bug or corrupt stored data; the detail goes to the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl IssueError {
    pub(crate) fn bad_field(field: &'static str, detail: impl Into<String>) -> Self {
        IssueError::BadField { field, detail: detail.into() }
    }
}

/// What the workflow's calls return.
pub type IssueResult<T> = Result<T, IssueError>;
