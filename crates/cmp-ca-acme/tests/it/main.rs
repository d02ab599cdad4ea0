//! The ACME adapter against a real Pebble.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod acme;
