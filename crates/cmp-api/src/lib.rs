//! CMP's wire types: the JSON that the server speaks and the client and CLI read.
//! Times are RFC 3339 UTC strings.

mod adapters;
mod agents;
mod audit;
mod certificates;
mod managed;
mod notifications;
mod owners;
mod people;
mod problem;
mod requests;
mod scans;
mod stats;
mod tokens;

pub use adapters::*;
pub use agents::*;
pub use audit::*;
pub use certificates::*;
pub use managed::*;
pub use notifications::*;
pub use owners::*;
pub use people::*;
pub use problem::*;
pub use requests::*;
pub use scans::*;
pub use stats::*;
pub use tokens::*;

/// A page of a listing, with the cursor of the next page when there is one.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Reads an optional field that may be present as `null` (clear it) or absent (leave it).
pub fn double_option<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(de).map(Some)
}
