//! Crate-level tests: parity with the `openssl` CLI, every import format and rejection
//! reason, and robustness against random, mutated and deeply nested input.

mod fixtures;
mod import_formats;
mod openssl_parity;
mod pkcs12_import;
mod robustness;
