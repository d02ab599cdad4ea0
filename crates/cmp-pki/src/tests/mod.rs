//! Crate-level tests: parity with the `openssl` CLI, every import format and rejection
//! reason, CSR parsing, and robustness against random, mutated and deeply nested input.

mod csr;
mod fixtures;
mod import_formats;
mod keygen;
mod openssl_parity;
mod pkcs12_import;
mod robustness;
mod seal;
