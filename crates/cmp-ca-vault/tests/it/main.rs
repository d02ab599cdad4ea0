//! The Vault PKI adapter against a real OpenBao.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly
#![allow(clippy::disallowed_methods)] // OpenBao keeps the real time: the tests start there

mod support;
mod vault_pki;
