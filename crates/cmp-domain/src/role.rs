//! The four roles a caller can hold.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a caller may do. Every route declares the roles it admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// All certificates, approvals, revocation, audit.
    Security,
    /// Its own teams' certificates and requests.
    Developer,
    /// An enrolled host: its own jobs only.
    Agent,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Security, Role::Developer, Role::Agent];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Security => "security",
            Role::Developer => "developer",
            Role::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}
