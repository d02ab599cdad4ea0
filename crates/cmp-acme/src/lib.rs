//! The client side of ACME (RFC 8555) for CMP, on instant-acme: accounts with External Account
//! Binding, orders carried through http-01 and dns-01 challenges (new, or resumed after a
//! restart), revocation, ARI renewal windows (RFC 9773), problem documents classified for
//! retrying, and holding back when the CA says so.
//!
//! The CA adapter around it (idempotency, the order journal) is in cmp-ca-acme, on the contract
//! in cmp-ca.

mod ari;
mod client;
mod dns;
mod error;
mod http;
mod jws;
mod solvers;
mod throttle;

pub use ari::{RenewalWindow, certificate_id, parse_renewal_info};
pub use client::{AcmeClient, AcmeSettings, DirectoryFacts, Eab};
pub use dns::{DnsProvider, DnsProviderConfig, Propagation, ProviderSecret, TsigAlgorithmName};
pub use error::{AcmeError, Problem, ProblemKind};
pub use instant_acme::{Order, OrderStatus};
pub use solvers::{Http01Responder, SolverConfig, Solvers};
use throttle::Throttle;

/// reqwest takes rustls's crypto provider from the process (the binary's main installs
/// aws-lc-rs) and panics without one: checked before each client is built, as an error.
pub(crate) fn require_crypto_provider() -> Result<(), AcmeError> {
    match rustls::crypto::CryptoProvider::get_default() {
        Some(_) => Ok(()),
        None => Err(AcmeError::Config(
            "no TLS crypto provider is installed (a bug in the program)".into(),
        )),
    }
}

/// A Unix time as RFC 3339, for messages.
pub(crate) fn format_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}
