//! The Vault PKI adapter against a real OpenBao.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod support;
mod vault_pki;
