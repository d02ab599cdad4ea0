//! End-to-end tests of cmpd: the real server on port 0, on SQLite and on PostgreSQL.

mod auth_walk;
mod bad_input;
mod certificates;
mod mozilla;
mod operations;
mod support;
