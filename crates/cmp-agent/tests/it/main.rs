//! cmp-agent's integration tests: the configuration, and deployments to real nginx, Apache and
//! HAProxy, each checked with a handshake of its own (`openssl s_client`); and the runtime
//! (identity, jobs, backoff) without a server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod config;
mod crash;
mod deploy;
mod host_keys;
mod runtime;
mod safety;
mod support;
