//! cmp-agent: the host side of CMP's certificate deployment. It reads the agent's
//! configuration ([`config`]) and installs certificates on the targets named there
//! ([`deploy`]: nginx, Apache, HAProxy, plain files), proving with a handshake ([`verify`])
//! that the new certificate is served, and rolling back when it is not. The conversation with
//! the server ([`runtime`]: enrolment, heartbeats, jobs) drives that engine, with the identity
//! kept by [`identity`].
//!
//! Library code never installs the rustls crypto provider: `main` does, and tests call
//! `cmp_testkit::install_crypto_provider()`.

mod command;
pub mod config;
pub mod deploy;
pub mod discovery;
pub mod error;
pub mod health;
pub mod identity;
pub mod local_keys;
pub mod material;
pub mod runtime;
pub mod targets;
pub mod verify;

use std::path::Path;

pub use config::{AgentConfig, ConfigError, TargetConfig, TargetKind, VerifyConfig};
#[cfg(feature = "testing")]
pub use deploy::deploy_interrupted;
pub use deploy::{
    CrashPoint, DeployFailure, DeployReport, Phase, Recovered, Removed, Step, StepRecord, deploy,
    recover, remove,
};
pub use error::AgentError;
pub use health::{TargetStatus, target_status};
pub use identity::Identity;
pub use material::{Material, MaterialError};
pub use runtime::{
    Agent, Backoff, JobDone, SystemClock, enroll, execute_job, recover_all, server_ca_bundle,
};
pub use verify::{VerifyError, served_fingerprint};

/// A configured target, ready to deploy to: what [`AgentConfig::target`] returns.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Its name (the server's handle for it).
    pub name: &'a str,
    /// Its configuration.
    pub config: &'a TargetConfig,
    /// The agent's state directory (for the deploy journal).
    pub state_dir: &'a Path,
}
