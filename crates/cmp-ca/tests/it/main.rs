//! The builtin CA against independent verifiers (openssl and rustls-webpki), the Vault
//! PKI adapter against a real OpenBao, and the ACME adapter against a real Pebble.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod acme;
mod issuance;
mod ledger;
mod ocsp;
mod refusals;
mod revocation;
mod support;
mod vault_pki;
