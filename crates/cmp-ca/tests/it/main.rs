//! The builtin CA against independent verifiers (openssl and rustls-webpki), and the Vault
//! PKI adapter against a real OpenBao.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod issuance;
mod ledger;
mod ocsp;
mod refusals;
mod revocation;
mod support;
mod vault_pki;
