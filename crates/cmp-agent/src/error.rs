//! What the agent's conversation with the server (enrolment, identity, jobs) can fail with.

use std::path::PathBuf;

/// Why enrolment, loading the identity or a call to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A file of the agent's state could not be read or written.
    // `cause`, not `source`: the message carries it, so a chain printed with `{:#}` does not
    // repeat it.
    #[error("{what} {}: {cause}", path.display())]
    Io {
        /// What was being done (`cannot write`, ...).
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// No identity under the state directory: the agent was never enrolled.
    #[error("not enrolled: no identity in {} (run `cmp-agent enroll --token ...`)", .0.display())]
    NotEnrolled(PathBuf),
    /// An identity exists and enrolment was not forced.
    #[error(
        "already enrolled as `{name}` ({}); pass --force to enrol again with a new key",
        dir.display()
    )]
    AlreadyEnrolled {
        /// The enrolled agent's name.
        name: String,
        /// Where its identity is.
        dir: PathBuf,
    },
    /// The identity on disk is unusable (unreadable certificate, key not matching it, ...).
    #[error("the identity in {}: {message}", dir.display())]
    BadIdentity {
        /// The identity directory.
        dir: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The agent name is not one the server accepts.
    #[error(
        "agent name `{0}`: 1-63 letters, digits, '.', '-' or '_', starting with a letter or digit"
    )]
    BadName(String),
    /// The server URL cannot carry the agent's client certificate.
    #[error("server `{0}`: an agent talks to the server over https:// only")]
    NotHttps(String),
    /// Making the key or the CSR failed.
    #[error("cannot make the key or the CSR: {0}")]
    Csr(String),
    /// The server's CA bundle (`ca_file`, or the system's) cannot be found or read.
    #[error("server CA bundle: {0}")]
    CaBundle(String),
    /// The server answered what the agent cannot use (a certificate for another key, ...).
    #[error("the server's answer: {0}")]
    BadAnswer(String),
    /// A call to the server failed (unreachable, refused, or a problem document).
    #[error(transparent)]
    Server(#[from] cmp_client::ClientError),
    /// A call to the server did not finish in time.
    #[error("the server did not answer within {0} s")]
    Timeout(u64),
}

impl AgentError {
    /// An I/O error on `path`.
    pub(crate) fn io(what: &'static str, path: &std::path::Path, cause: std::io::Error) -> Self {
        AgentError::Io { what, path: path.to_owned(), cause }
    }
}
