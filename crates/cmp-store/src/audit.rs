//! The audit hash chain: canonical JSON, event hashes, appends inside a transaction, verification.
//!
//! `hash = SHA-256(prev_hash || canonical_json(event without its hash))`, where `prev_hash` is
//! the previous event's hash as raw bytes (32 zero bytes before the first event) and canonical
//! JSON has sorted keys, no whitespace, and the time in RFC 3339 UTC with microseconds.

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{Any, Row, Transaction};
use time::OffsetDateTime;

use crate::sql::{Arg, SqlBuilder, run_statements};
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
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    // serde_json writes UTF-8 only.
    String::from_utf8(out).unwrap_or_default()
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(out, key);
                out.push(b':');
                write_canonical(&map[key], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_json(out, scalar),
    }
}

/// Appends `value` as JSON (written into memory, which cannot fail).
fn write_json(out: &mut Vec<u8>, value: &(impl serde::Serialize + ?Sized)) {
    let _ = serde_json::to_writer(out, value);
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
    let fields = Hashed {
        seq: event.seq,
        occurred_us: event.occurred_us,
        actor: &event.actor,
        action: &event.action,
        entity_type: &event.entity_type,
        entity_id: &event.entity_id,
        request_id: event.request_id.as_deref(),
        details: &canonical_json(&event.details),
    };
    fields.hash(prev_hash)
}

/// What an event's hash covers, with its details as canonical JSON already.
struct Hashed<'a> {
    seq: i64,
    occurred_us: i64,
    actor: &'a str,
    action: &'a str,
    entity_type: &'a str,
    entity_id: &'a str,
    request_id: Option<&'a str>,
    details: &'a str,
}

impl Hashed<'_> {
    /// SHA-256 of the previous hash and the canonical JSON of the event with `prev_hash`,
    /// written straight out with its keys in sorted order.
    fn hash(&self, prev_hash: &str) -> String {
        let mut body = Vec::with_capacity(320 + self.details.len());
        body.extend_from_slice(b"{\"action\":");
        write_json(&mut body, self.action);
        body.extend_from_slice(b",\"actor\":");
        write_json(&mut body, self.actor);
        body.extend_from_slice(b",\"details\":");
        body.extend_from_slice(self.details.as_bytes());
        body.extend_from_slice(b",\"entity_id\":");
        write_json(&mut body, self.entity_id);
        body.extend_from_slice(b",\"entity_type\":");
        write_json(&mut body, self.entity_type);
        body.extend_from_slice(b",\"occurred_at\":");
        write_json(&mut body, &rfc3339_micros(self.occurred_us));
        body.extend_from_slice(b",\"prev_hash\":");
        write_json(&mut body, prev_hash);
        body.extend_from_slice(b",\"request_id\":");
        write_json(&mut body, &self.request_id);
        body.extend_from_slice(b",\"seq\":");
        write_json(&mut body, &self.seq);
        body.push(b'}');
        let mut hasher = Sha256::new();
        hasher.update(hex::decode(prev_hash).unwrap_or_else(|_| prev_hash.as_bytes().to_vec()));
        hasher.update(&body);
        hex::encode(hasher.finalize())
    }
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
    let attributed: Vec<_> = events.iter().map(|event| (ctx, event)).collect();
    append_attributed(tx, &attributed).await
}

/// [`append_many`] for events of several callers (a group commit), each with its context.
pub(crate) async fn append_attributed(
    tx: &mut Transaction<'_, Any>,
    events: &[(&AuditContext, &NewAuditEvent)],
) -> StoreResult<i64> {
    let (last_seq, statements) = append_statements(tx, events).await?;
    run_statements(tx, statements).await?;
    Ok(last_seq)
}

/// Moves the chain head past `events`; returns the last sequence number and the statements
/// that write the events and the new head hash, for the caller to run with its own.
pub(crate) async fn append_statements(
    tx: &mut Transaction<'_, Any>,
    events: &[(&AuditContext, &NewAuditEvent)],
) -> StoreResult<(i64, Vec<SqlBuilder>)> {
    let count = i64::try_from(events.len()).map_err(|e| StoreError::corrupt("event count", e))?;
    let head = sqlx::query("UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash")
        .bind(count)
        .fetch_one(&mut **tx)
        .await?;
    let last_seq: i64 = head.try_get("seq")?;
    let mut prev_hash: String = head.try_get("hash")?;
    if events.is_empty() {
        return Ok((last_seq, Vec::new()));
    }
    let first_seq = last_seq - count + 1;
    let mut statements = Vec::new();
    for (chunk_start, chunk) in (0_i64..).step_by(APPEND_CHUNK).zip(events.chunks(APPEND_CHUNK)) {
        let mut b = SqlBuilder::bulk(
            tx,
            "INSERT INTO audit_logs (seq, occurred_us, actor, action, entity_type, entity_id, \
             request_id, details, prev_hash, hash) VALUES ",
        );
        for (i, (ctx, event)) in (0_i64..).zip(chunk) {
            let details = canonical_json(&event.details);
            let fields = Hashed {
                seq: first_seq + chunk_start + i,
                occurred_us: ctx.now_us,
                actor: &ctx.actor,
                action: event.action.as_str(),
                entity_type: &event.entity_type,
                entity_id: &event.entity_id,
                request_id: ctx.request_id.as_deref(),
                details: &details,
            };
            let hash = fields.hash(&prev_hash);
            if i > 0 {
                b.push(", ");
            }
            b.row([
                Arg::Int(fields.seq),
                Arg::Int(fields.occurred_us),
                Arg::Text(ctx.actor.clone()),
                Arg::Text(event.action.as_str().to_string()),
                Arg::Text(event.entity_type.clone()),
                Arg::Text(event.entity_id.clone()),
                Arg::OptText(ctx.request_id.clone()),
                Arg::Text(details),
                Arg::Text(std::mem::replace(&mut prev_hash, hash.clone())),
                Arg::Text(hash),
            ]);
        }
        statements.push(b);
    }
    let mut head = SqlBuilder::bulk(tx, "UPDATE audit_head SET hash = ");
    head.bind(Arg::Text(prev_hash)).push(" WHERE id = 1");
    statements.push(head);
    Ok((last_seq, statements))
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
    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = json!({"b": 1, "a": {"d": [1, {"z": 0, "y": "x"}], "c": null}});
        assert_eq!(canonical_json(&v), r#"{"a":{"c":null,"d":[1,{"y":"x","z":0}]},"b":1}"#);
    }

    /// The hash as first defined: the canonical JSON of a `json!` object of the fields.
    fn hash_by_definition(e: &AuditEvent, prev_hash: &str) -> String {
        let body = json!({
            "seq": e.seq,
            "occurred_at": rfc3339_micros(e.occurred_us),
            "actor": e.actor,
            "action": e.action,
            "entity_type": e.entity_type,
            "entity_id": e.entity_id,
            "request_id": e.request_id,
            "details": e.details,
            "prev_hash": prev_hash,
        });
        let mut hasher = Sha256::new();
        hasher.update(hex::decode(prev_hash).unwrap_or_default());
        hasher.update(canonical_json(&body).as_bytes());
        hex::encode(hasher.finalize())
    }

    #[test]
    fn event_hashes_match_their_definition() {
        for (request_id, details) in [
            (None, json!({})),
            (Some("r-1".to_string()), json!({"z": "\"quoted\" \u{e9}\n", "a": [1.5, null, true]})),
        ] {
            let event = AuditEvent {
                seq: 42,
                occurred_us: 1_700_000_000_000_001,
                actor: "token:ünïcode \\ slash".into(),
                action: "request.created".into(),
                entity_type: "issuance_request".into(),
                entity_id: "id-\u{1}".into(),
                request_id,
                details,
                prev_hash: GENESIS_HASH.into(),
                hash: String::new(),
            };
            assert_eq!(event_hash(&event, GENESIS_HASH), hash_by_definition(&event, GENESIS_HASH));
        }
    }

    #[test]
    fn times_have_microseconds() {
        assert_eq!(rfc3339_micros(1_700_000_000_000_001), "2023-11-14T22:13:20.000001Z");
    }
}
