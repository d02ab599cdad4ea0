//! What the wire format of every route shares: times as RFC 3339, opaque list cursors and
//! page sizes.

use base64::Engine;
use cmp_store::Cursor;
use time::{Duration, OffsetDateTime};

use crate::error::ApiError;

/// A stored Unix time as the API shows it.
pub fn time_of(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Opaque cursor of the listing `tag` (a sort order, or a resource's listing): URL-safe base64
/// of `tag:key:id`, so that a cursor is never read against another listing.
pub fn encode_tagged(tag: &str, c: &Cursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{tag}:{}:{}", c.key, c.id))
}

pub fn decode_tagged(tag: &str, s: &str) -> Result<Cursor, ApiError> {
    let bad = || ApiError::bad_field("cursor", "not a cursor this server issued");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let mut parts = text.splitn(3, ':');
    let (Some(found), Some(key), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if found != tag {
        return Err(ApiError::bad_field("cursor", "belongs to another listing or order"));
    }
    Ok(Cursor { key: key.parse().map_err(|_| bad())?, id: id.to_string() })
}

/// A page size: 1 to 500, 100 when not given.
pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(100),
        Some(n @ 1..=500) => Ok(n),
        Some(n) => Err(ApiError::bad_field("limit", format!("{n} is not between 1 and 500"))),
    }
}

/// `t` without its fraction of a second: one instant for a whole request, as the database
/// compares whole seconds.
pub fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    t - Duration::nanoseconds(i64::from(t.nanosecond()))
}

/// Parses an RFC 3339 query value.
pub fn parse_time(field: &str, value: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map_err(|_| ApiError::bad_field(field, format!("{value:?} is not an RFC 3339 time")))
}
