//! End-to-end tests of cmpd: the real server on port 0, on SQLite and on PostgreSQL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]
#![allow(clippy::disallowed_methods)] // the server keeps the real time: test data starts there

mod acme;
mod agents;
mod auth_walk;
mod bad_input;
mod binary;
mod certificates;
mod crash;
mod dashboard;
mod discovery;
mod issuance;
mod login;
mod mozilla;
mod notifications;
mod openapi;
mod operations;
mod scope;
mod support;
mod traces;
mod transport;
mod vault;
