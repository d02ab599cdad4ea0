//! Network discovery runs: their states and what they report as they go.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a scan run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScanRunState {
    Running,
    /// Every endpoint was tried.
    Completed,
    Cancelled,
    /// The time budget ran out first; the endpoints left are counted in the detail.
    OutOfTime,
    /// Its process stopped (a crash, a restart) before it ended.
    Interrupted,
    /// It could not run at all.
    Failed,
}

impl ScanRunState {
    pub const ALL: [ScanRunState; 6] = [
        Self::Running,
        Self::Completed,
        Self::Cancelled,
        Self::OutOfTime,
        Self::Interrupted,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::OutOfTime => "out_of_time",
            Self::Interrupted => "interrupted",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What a run has done so far (and, once ended, its summary).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScanProgress {
    /// Endpoints (address and port) the run tries; absent until its targets are resolved.
    pub total: Option<u64>,
    /// Endpoints tried.
    pub scanned: u64,
    /// Endpoints that presented a certificate.
    pub served: u64,
    /// Endpoints where nothing listens.
    pub closed: u64,
    /// Endpoints that failed (timeouts, no TLS, resets), and targets left out.
    pub errors: u64,
    /// Distinct certificates read.
    pub certificates: u64,
    /// Certificates new to the inventory.
    pub created: u64,
    /// Locations marked gone (the endpoint serves another certificate, or nothing).
    pub gone: u64,
    /// The first errors, as `endpoint: error`.
    pub error_samples: Vec<String>,
}

/// How many errors a run keeps as samples.
pub const MAX_ERROR_SAMPLES: usize = 50;

impl ScanProgress {
    /// Counts an error, keeping its text while there is room.
    pub fn error(&mut self, text: String) {
        self.errors += 1;
        if self.error_samples.len() < MAX_ERROR_SAMPLES {
            self.error_samples.push(text);
        }
    }
}
