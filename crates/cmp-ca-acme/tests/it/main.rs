//! The ACME adapter against a real Pebble.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly
#![allow(clippy::disallowed_methods)] // Pebble keeps the real time: so do the tests

mod acme;
