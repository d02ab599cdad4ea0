//! RFC 9457 problem details.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An error answer: `application/problem+json`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A stable URI naming the kind of error.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What went wrong, safe to show a person; never holds a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request id (also in the `x-request-id` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Field- or item-level causes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemItem>,
}

/// One cause inside a problem.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ProblemItem {
    /// The field, parameter or input item at fault.
    pub pointer: String,
    /// Machine-readable reason, e.g. `private_key_not_certificate`.
    pub reason: String,
    pub detail: String,
}
