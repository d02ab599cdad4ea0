//! The audit hash chain: canonical JSON, event hashes, appends inside a transaction, verification.
//!
//! `hash = SHA-256(prev_hash || canonical_json(event without its hash))`, where `prev_hash` is
//! the previous event's hash as raw bytes (32 zero bytes before the first event) and canonical
//! JSON has sorted keys, no whitespace, and the time in RFC 3339 UTC with microseconds.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{Any, Row, Transaction};
use time::OffsetDateTime;

use crate::sql::{Arg, SqlBuilder};
use crate::{AuditContext, AuditEvent, NewAuditEvent, StoreError, StoreResult};

/// `prev_hash` of the first event: 32 zero bytes, hex.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The first event whose stored hash or link does not match what it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub seq: i64,
    pub reason: String,
}

/// JSON with object keys sorted at every level and no insignificant whitespace.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn rfc3339_micros(us: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// The hash an event must carry, given the hash before it.
pub fn event_hash(event: &AuditEvent, prev_hash: &str) -> String {
    let body = json!({
        "seq": event.seq,
        "occurred_at": rfc3339_micros(event.occurred_us),
        "actor": event.actor,
        "action": event.action,
        "entity_type": event.entity_type,
        "entity_id": event.entity_id,
        "request_id": event.request_id,
        "details": event.details,
        "prev_hash": prev_hash,
    });
    let mut hasher = Sha256::new();
    hasher.update(hex::decode(prev_hash).unwrap_or_else(|_| prev_hash.as_bytes().to_vec()));
    hasher.update(canonical_json(&body).as_bytes());
    hex::encode(hasher.finalize())
}

/// Events per multi-row INSERT (10 parameters each, well under both databases' limits).
const APPEND_CHUNK: usize = 500;

/// Appends one event inside `tx`; returns its sequence number.
pub(crate) async fn append(
    tx: &mut Transaction<'_, Any>,
    ctx: &AuditContext,
    event: &NewAuditEvent,
) -> StoreResult<i64> {
    append_many(tx, ctx, std::slice::from_ref(event)).await
}

/// Appends events inside `tx`, in order; returns the last sequence number. Moving the chain
/// head first serializes concurrent appends (a row lock on PostgreSQL, the single writer on
/// SQLite), so the chain never forks; the hashes are chained here and written in bulk.
pub(crate) async fn append_many(
    tx: &mut Transaction<'_, Any>,
    ctx: &AuditContext,
    events: &[NewAuditEvent],
) -> StoreResult<i64> {
    let count = i64::try_from(events.len()).map_err(|e| StoreError::corrupt("event count", e))?;
    let head = sqlx::query("UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash")
        .bind(count)
        .fetch_one(&mut **tx)
        .await?;
    let last_seq: i64 = head.try_get("seq")?;
    let mut prev_hash: String = head.try_get("hash")?;
    if events.is_empty() {
        return Ok(last_seq);
    }
    let mut chained = Vec::with_capacity(events.len());
    for (i, event) in (0_i64..).zip(events) {
        let mut stored = AuditEvent {
            seq: last_seq - count + 1 + i,
            occurred_us: ctx.now_us,
            actor: ctx.actor.clone(),
            action: event.action.clone(),
            entity_type: event.entity_type.clone(),
            entity_id: event.entity_id.clone(),
            request_id: ctx.request_id.clone(),
            details: event.details.clone(),
            prev_hash: prev_hash.clone(),
            hash: String::new(),
        };
        stored.hash = event_hash(&stored, &prev_hash);
        prev_hash = stored.hash.clone();
        chained.push(stored);
    }
    for chunk in chained.chunks(APPEND_CHUNK) {
        let mut b = SqlBuilder::bulk(
            tx,
            "INSERT INTO audit_logs (seq, occurred_us, actor, action, entity_type, entity_id, \
             request_id, details, prev_hash, hash) VALUES ",
        );
        for (i, e) in chunk.iter().enumerate() {
            if i > 0 {
                b.push(", ");
            }
            b.row([
                Arg::Int(e.seq),
                Arg::Int(e.occurred_us),
                Arg::Text(e.actor.clone()),
                Arg::Text(e.action.clone()),
                Arg::Text(e.entity_type.clone()),
                Arg::Text(e.entity_id.clone()),
                Arg::OptText(e.request_id.clone()),
                Arg::Text(canonical_json(&e.details)),
                Arg::Text(e.prev_hash.clone()),
                Arg::Text(e.hash.clone()),
            ]);
        }
        b.query().execute(&mut **tx).await?;
    }
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&prev_hash)
        .execute(&mut **tx)
        .await?;
    Ok(last_seq)
}

/// Reads an audit row.
pub(crate) fn from_row(row: &sqlx::any::AnyRow) -> StoreResult<AuditEvent> {
    let details: String = row.try_get("details")?;
    Ok(AuditEvent {
        seq: row.try_get("seq")?,
        occurred_us: row.try_get("occurred_us")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        entity_type: row.try_get("entity_type")?,
        entity_id: row.try_get("entity_id")?,
        request_id: row.try_get("request_id")?,
        details: serde_json::from_str(&details)
            .map_err(|e| StoreError::corrupt("audit details", e))?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Checks one event against the hash before it.
pub(crate) fn check_link(
    event: &AuditEvent,
    expected_seq: i64,
    prev_hash: &str,
) -> Option<ChainBreak> {
    if event.seq != expected_seq {
        return Some(ChainBreak {
            seq: expected_seq,
            reason: format!("sequence gap: expected {expected_seq}, found {}", event.seq),
        });
    }
    if event.prev_hash != prev_hash {
        return Some(ChainBreak {
            seq: event.seq,
            reason: "prev_hash does not match the previous event's hash".into(),
        });
    }
    if event_hash(event, prev_hash) != event.hash {
        return Some(ChainBreak {
            seq: event.seq,
            reason: "hash does not match the event's contents".into(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = json!({"b": 1, "a": {"d": [1, {"z": 0, "y": "x"}], "c": null}});
        assert_eq!(canonical_json(&v), r#"{"a":{"c":null,"d":[1,{"y":"x","z":0}]},"b":1}"#);
    }

    #[test]
    fn times_have_microseconds() {
        assert_eq!(rfc3339_micros(1_700_000_000_000_001), "2023-11-14T22:13:20.000001Z");
    }
}
