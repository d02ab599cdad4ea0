//! The builtin CA against independent verifiers (openssl and rustls-webpki): what it issues,
//! refuses and revokes, its CRL and OCSP answers, and its ledger.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly
#![allow(clippy::disallowed_methods)] // openssl and webpki check at the real time

mod issuance;
mod ledger;
mod ocsp;
mod refusals;
mod revocation;
mod support;
