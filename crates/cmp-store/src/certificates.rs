//! Certificates: import with de-duplication, filtered keyset listing, updates, deletion.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use cmp_domain::{
    CertificateStatus, Finding, KeyInfo, KeyType, LocationKind, San, static_findings,
};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use tracing::instrument;

use crate::AuditAction;
use crate::audit;
use crate::search::{SAMPLE_ROWS, SampleState, SearchPlan, SearchSample};
use crate::sql::{Arg, SqlBuilder};
use crate::{
    AuditContext, CertificateQuery, CertificateRecord, CertificateSort, CertificateSource,
    CertificateStore, CertificateUpdate, Cursor, Dialect, ImportBatch, ImportOutcome, Location,
    NewAuditEvent, NewCertificate, NewLocation, OwnerRef, Page, Scope, SqlStore, Store, StoreError,
    StoreResult,
};

const SELECT_COLUMNS: &str = "SELECT c.id, c.fingerprint_sha256, c.serial_number, c.subject, \
    c.issuer, c.common_name, c.not_before, c.not_after, c.sans, c.key_type, c.key_bits, \
    c.key_curve, c.signature_algorithm, c.is_ca, c.self_signed, c.finding_flags, c.owner_id, \
    o.name AS owner_name, c.labels, c.source, c.created_at, c.updated_at, c.revoked_at, \
    c.revocation_reason, c.managed_certificate_id, \
    CASE WHEN c.key_secret IS NULL THEN 0 ELSE 1 END AS has_server_key";
const FROM_CERTIFICATES: &str = " FROM certificates c LEFT JOIN owners o ON o.id = c.owner_id";

/// Bit of a time-independent finding in `finding_flags`.
fn finding_bit(f: Finding) -> i64 {
    let index = Finding::ALL.iter().position(|x| *x == f).unwrap_or(0);
    1 << index
}

pub(crate) fn flags_of(findings: &[Finding]) -> i64 {
    findings.iter().fold(0, |acc, f| acc | finding_bit(*f))
}

fn findings_of(flags: i64) -> Vec<Finding> {
    Finding::ALL.into_iter().filter(|f| flags & finding_bit(*f) != 0).collect()
}

/// Lowercased subject and SAN values: what `q` searches.
fn search_text(subject: &str, sans: &[San]) -> String {
    let mut text = subject.to_lowercase();
    for san in sans {
        text.push('\n');
        text.push_str(&san.value.to_lowercase());
    }
    text
}

/// `LIKE` pattern for a substring, with the wildcards of the input escaped.
fn like_pattern(q: &str) -> String {
    let mut p = String::from("%");
    for ch in q.to_lowercase().chars() {
        if matches!(ch, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('%');
    p
}

/// Whether `id` is a fingerprint (64 hex digits, colons allowed) rather than a platform id.
fn as_fingerprint(id: &str) -> Option<String> {
    let hex: String = id.chars().filter(|c| *c != ':').collect();
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then(|| hex.to_lowercase())
}

fn push_identity(b: &mut SqlBuilder, id: &str) {
    match as_fingerprint(id) {
        Some(fp) => b.push(" c.fingerprint_sha256 = ").bind(Arg::Text(fp)),
        None => b.push(" c.id = ").bind(Arg::Text(id.to_string())),
    };
}

fn push_scope(b: &mut SqlBuilder, scope: &Scope) {
    push_owner_scope(b, "c.owner_id", scope);
}

/// ` AND <column> IN (owners)` for a scoped caller; nothing for `Scope::All`.
pub(crate) fn push_owner_scope(b: &mut SqlBuilder, column: &str, scope: &Scope) {
    if let Scope::Owners(ids) = scope {
        if ids.is_empty() {
            b.push(" AND 1 = 0");
            return;
        }
        b.push(&format!(" AND {column} IN ")).row(ids.iter().map(|id| Arg::Text(id.clone())));
    }
}

/// `q`: rows whose search text holds `term` (lowercased). On SQLite the FTS5 trigram table
/// is asked for `trigrams`, those the search plan chose, and each row it gives is checked for
/// the whole term. A term too short for a trigram is checked on every row walked, on either
/// database; PostgreSQL's searches with trigrams are [`postgres_index_search`].
fn push_substring_search(b: &mut SqlBuilder, dialect: Dialect, term: &str, trigrams: &[String]) {
    if dialect == Dialect::Sqlite && !trigrams.is_empty() {
        b.push(
            " AND c.pk IN (SELECT rowid FROM certificates_search WHERE certificates_search MATCH ",
        )
        .bind(Arg::Text(fts_query(trigrams)))
        .push(")");
    }
    push_contains(b, dialect, term);
}

/// A page of the rows holding `term`, on PostgreSQL, found by asking the trigram index for
/// each of `trigrams`.
///
/// Written so that one generic plan serves every term and every filter, which PostgreSQL then
/// keeps rather than planning each search anew (planning was 0.25-0.4 ms of a one-match
/// search's 0.6-0.9 ms in the database at 1M rows): the pattern reaches the planner only as a
/// subquery's result, so no plan depends on it; the matches are gathered first (a materialized
/// CTE), so no other index can be chosen to drive the query whatever the filters; and the LIMIT
/// is written into the statement, since a LIMIT parameter makes every execution planned anew.
fn postgres_index_search(
    query: &CertificateQuery,
    term: &str,
    trigrams: &[String],
    limit: u32,
) -> SqlBuilder {
    let mut b = SqlBuilder::new("WITH found AS MATERIALIZED (");
    b.push(SELECT_COLUMNS).push(FROM_CERTIFICATES).push(" WHERE 1 = 1");
    for trigram in trigrams {
        b.push(" AND c.search_text LIKE (SELECT ")
            .bind(Arg::Text(like_pattern(trigram)))
            .push("::text) ESCAPE '\\'");
    }
    push_contains(&mut b, Dialect::Postgres, term);
    b.push(") SELECT * FROM found c WHERE 1 = 1");
    push_filters(&mut b, query);
    b.push(&format!(" ORDER BY {}, c.id LIMIT {}", sort_column(query.sort), limit + 1));
    b
}

/// An FTS5 query for the rows holding every one of `trigrams`. The index keeps no
/// positions, so it is asked for each trigram rather than phrases.
fn fts_query(trigrams: &[String]) -> String {
    let quoted: Vec<String> =
        trigrams.iter().map(|t| format!("\"{}\"", t.replace('"', "\"\""))).collect();
    quoted.join(" AND ")
}

/// ` AND` the search text holds `term`: a function call rather than a LIKE, so that PostgreSQL
/// does not hand the whole term to the trigram index as well.
fn push_contains(b: &mut SqlBuilder, dialect: Dialect, term: &str) {
    let function = match dialect {
        Dialect::Sqlite => "instr",
        Dialect::Postgres => "strpos",
    };
    b.push(&format!(" AND {function}(c.search_text, "))
        .bind(Arg::Text(term.to_string()))
        .push(") > 0");
}

/// The SQL condition for a status, given the placeholders of `now` and `now + window`. The
/// one place these rules are written in SQL; they mirror `cmp_domain::status_at`.
pub(crate) fn status_condition(status: CertificateStatus, now: &str, horizon: &str) -> String {
    let by_time = match status {
        CertificateStatus::Revoked => return "c.revoked_at IS NOT NULL".into(),
        CertificateStatus::NotYetValid => format!("c.not_before > {now}"),
        CertificateStatus::Expired => format!("c.not_before <= {now} AND c.not_after < {now}"),
        CertificateStatus::Expiring => {
            format!("c.not_before <= {now} AND c.not_after >= {now} AND c.not_after <= {horizon}")
        }
        CertificateStatus::Valid => format!("c.not_before <= {now} AND c.not_after > {horizon}"),
    };
    format!("c.revoked_at IS NULL AND {by_time}")
}

fn push_status(b: &mut SqlBuilder, status: CertificateStatus, now: i64, window: i64) {
    let now_param = b.param(Arg::Int(now));
    let horizon_param = b.param(Arg::Int(now.saturating_add(window)));
    b.push(&format!(" AND {}", status_condition(status, &now_param, &horizon_param)));
}

/// Bounds of a range of fingerprints (lowercase hex) that holds about `share` of all
/// (0 to 1), placed by `position` (any u64); the upper bound sorts after every fingerprint.
fn fingerprint_range(share: f64, position: u64) -> (String, String) {
    let width = (share.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
    let start = position % (u64::MAX - width).max(1);
    let low = format!("{start:016x}");
    let high = match start.checked_add(width) {
        Some(end) if share < 1.0 => format!("{end:016x}"),
        _ => "g".to_string(),
    };
    (low, high)
}

/// Rows a substring search walks in sort order at most before it asks the trigram index.
const MAX_SEARCH_WALK: usize = 2_000;

impl SqlStore {
    /// After an import's commit: the planner's statistics and the search sample catch up.
    async fn imported(&self, outcomes: &[ImportOutcome]) {
        let created = outcomes.iter().filter(|o| o.created).count();
        self.refresh_statistics("certificates", created).await;
        if created >= 1_000 {
            self.search_sample.age();
        }
    }

    /// How to search for `term` (lowercased) for a page of `wanted` rows, by the current
    /// sample of search texts (taken now if there is none, in the background once it is old).
    async fn search_plan(&self, term: &str, wanted: usize) -> SearchPlan {
        let sample = match self.search_sample.get() {
            SampleState::Fresh(sample) => sample,
            SampleState::Stale(sample) => {
                let store = self.clone();
                tokio::spawn(async move { store.take_search_sample().await });
                sample
            }
            SampleState::Missing => self.take_search_sample().await,
        };
        sample.plan(term, MAX_SEARCH_WALK, wanted)
    }

    /// Takes and keeps a new sample. A failure is logged: searches then run unplanned (walk
    /// first, the whole term to the index), which is slower, never wrong.
    async fn take_search_sample(&self) -> Arc<SearchSample> {
        match self.sample_search_texts().await {
            Ok(texts) => {
                let sample = Arc::new(SearchSample::new(texts));
                self.search_sample.put(sample.clone());
                sample
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not sample the inventory to plan searches");
                self.search_sample.refresh_failed();
                Arc::default()
            }
        }
    }

    /// The search texts of about [`SAMPLE_ROWS`] rows spread over the table: on SQLite every
    /// n-th row id, on PostgreSQL pages at random.
    async fn sample_search_texts(&self) -> StoreResult<Vec<String>> {
        let wanted = SAMPLE_ROWS as i64;
        match self.dialect() {
            Dialect::Sqlite => {
                let (low, high): (Option<i64>, Option<i64>) =
                    sqlx::query_as("SELECT min(pk), max(pk) FROM certificates")
                        .fetch_one(&self.read)
                        .await?;
                let (Some(low), Some(high)) = (low, high) else { return Ok(Vec::new()) };
                let step = ((high - low) / wanted).max(1);
                let sql = "WITH RECURSIVE picks(pk) AS \
                     (SELECT $1 UNION ALL SELECT pk + $2 FROM picks WHERE pk + $2 <= $3) \
                     SELECT search_text FROM certificates WHERE pk IN (SELECT pk FROM picks)";
                Ok(sqlx::query_scalar(sql)
                    .bind(low)
                    .bind(step)
                    .bind(high)
                    .fetch_all(&self.read)
                    .await?)
            }
            Dialect::Postgres => {
                let estimate: Option<f64> = sqlx::query_scalar(
                    "SELECT reltuples::float8 FROM pg_class WHERE oid = to_regclass('certificates')",
                )
                .fetch_optional(&self.read)
                .await?;
                // A random range of fingerprints (SHA-256, so the rows in it are a uniform
                // sample) wide enough for the rows wanted and some; the whole table when the
                // statistics know of few rows or none (never analyzed: -1). Pages at random
                // (`TABLESAMPLE SYSTEM`) were measured and left: rows stored together came
                // together, and a trigram in 11% of the rows could look rare in one sample.
                let share = match estimate {
                    Some(rows) if rows > 2.0 * wanted as f64 => 1.25 * wanted as f64 / rows,
                    _ => 1.0,
                };
                let (low, high) = fingerprint_range(share, rand::random());
                Ok(sqlx::query_scalar(
                    "SELECT search_text FROM certificates \
                     WHERE fingerprint_sha256 >= $1 AND fingerprint_sha256 < $2 LIMIT $3",
                )
                .bind(low)
                .bind(high)
                .bind(wanted)
                .fetch_all(&self.read)
                .await?)
            }
        }
    }
}

fn sort_column(sort: CertificateSort) -> &'static str {
    match sort {
        CertificateSort::NotAfter => "c.not_after",
        CertificateSort::CreatedAt => "c.created_at",
    }
}

fn push_order(b: &mut SqlBuilder, sort: CertificateSort, limit: i64) {
    b.push(&format!(" ORDER BY {}, c.id LIMIT ", sort_column(sort))).bind(Arg::Int(limit));
}

/// The sort key and id of the row `walk` rows into the listing (filters and cursor applied),
/// or `None` when fewer rows match.
async fn walk_end(
    conn: &mut sqlx::AnyConnection,
    query: &CertificateQuery,
    walk: usize,
) -> StoreResult<Option<(i64, String)>> {
    let column = sort_column(query.sort);
    let mut b = SqlBuilder::new(&format!("SELECT {column} AS sort_key, c.id FROM certificates c"));
    b.push(" WHERE 1 = 1");
    push_filters(&mut b, query);
    push_order(&mut b, query.sort, 1);
    b.push(" OFFSET ").bind(Arg::Int(walk.saturating_sub(1) as i64));
    let row = b.query().fetch_optional(conn).await?;
    row.map(|row| Ok((row.try_get("sort_key")?, row.try_get("id")?))).transpose()
}

/// Every filter of a listing but `q`, and the cursor.
fn push_filters(b: &mut SqlBuilder, query: &CertificateQuery) {
    push_scope(b, &query.scope);
    if let Some(status) = query.status {
        push_status(b, status, query.now, query.window_secs);
    }
    if let Some(owner) = &query.owner_id {
        b.push(" AND c.owner_id = ").bind(Arg::Text(owner.clone()));
    }
    if let Some(issuer) = &query.issuer {
        b.push(" AND c.issuer = ").bind(Arg::Text(issuer.clone()));
    }
    if let Some(t) = query.expires_before {
        b.push(" AND c.not_after < ").bind(Arg::Int(t));
    }
    if let Some(t) = query.expires_after {
        b.push(" AND c.not_after > ").bind(Arg::Int(t));
    }
    if let Some(k) = query.key_type {
        b.push(" AND c.key_type = ").bind(Arg::Text(k.as_str().to_string()));
    }
    if let Some(finding) = query.finding {
        let time_status = match finding {
            Finding::Expired => Some(CertificateStatus::Expired),
            Finding::Expiring => Some(CertificateStatus::Expiring),
            Finding::NotYetValid => Some(CertificateStatus::NotYetValid),
            _ => None,
        };
        match time_status {
            Some(status) => push_status(b, status, query.now, query.window_secs),
            None => {
                b.push(" AND (c.finding_flags & ")
                    .bind(Arg::Int(finding_bit(finding)))
                    .push(") <> 0");
            }
        }
    }
    if let Some(cursor) = &query.cursor {
        push_sort_bound(b, query.sort, ">", cursor.key, cursor.id.clone());
    }
}

/// ` AND` the row's place in the sort order (sort key, then id) compares by `op` with
/// `(key, id)`: a page's start after a cursor, or the end of a walk.
fn push_sort_bound(b: &mut SqlBuilder, sort: CertificateSort, op: &str, key: i64, id: String) {
    b.push(&format!(" AND ({}, c.id) {op} (", sort_column(sort)))
        .bind(Arg::Int(key))
        .push(", ")
        .bind(Arg::Text(id))
        .push(")");
}

fn record_from_row(row: &AnyRow) -> StoreResult<CertificateRecord> {
    let sans: String = row.try_get("sans")?;
    let labels: String = row.try_get("labels")?;
    let key_type: String = row.try_get("key_type")?;
    let source: String = row.try_get("source")?;
    let owner_id: Option<String> = row.try_get("owner_id")?;
    let owner_name: Option<String> = row.try_get("owner_name")?;
    let key_bits: Option<i64> = row.try_get("key_bits")?;
    Ok(CertificateRecord {
        id: row.try_get("id")?,
        fingerprint_sha256: row.try_get("fingerprint_sha256")?,
        serial_number: row.try_get("serial_number")?,
        subject: row.try_get("subject")?,
        issuer: row.try_get("issuer")?,
        common_name: row.try_get("common_name")?,
        not_before: row.try_get("not_before")?,
        not_after: row.try_get("not_after")?,
        sans: serde_json::from_str(&sans).map_err(|e| StoreError::corrupt("sans", e))?,
        key: KeyInfo {
            kind: KeyType::parse(&key_type)
                .ok_or_else(|| StoreError::corrupt("key type", &key_type))?,
            bits: key_bits.and_then(|b| u32::try_from(b).ok()),
            curve: row.try_get("key_curve")?,
        },
        signature_algorithm: row.try_get("signature_algorithm")?,
        is_ca: row.try_get::<i64, _>("is_ca")? != 0,
        self_signed: row.try_get::<i64, _>("self_signed")? != 0,
        static_findings: findings_of(row.try_get("finding_flags")?),
        owner: owner_id.zip(owner_name).map(|(id, name)| OwnerRef { id, name }),
        labels: serde_json::from_str(&labels).map_err(|e| StoreError::corrupt("labels", e))?,
        source: CertificateSource::parse(&source)
            .ok_or_else(|| StoreError::corrupt("source", &source))?,
        locations: Vec::new(),
        revoked_at: row.try_get("revoked_at")?,
        revocation_reason: row.try_get("revocation_reason")?,
        managed_certificate_id: row.try_get("managed_certificate_id")?,
        has_server_key: row.try_get::<i64, _>("has_server_key")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Certificates per multi-row INSERT: 25 parameters each stays well under SQLite's 32,766.
const IMPORT_CHUNK: usize = 500;

fn insert_row(cert: &NewCertificate, id: String, now: i64) -> StoreResult<Vec<Arg>> {
    let f = &cert.facts;
    Ok(vec![
        Arg::Text(id),
        Arg::Text(f.fingerprint_sha256.clone()),
        Arg::Text(f.serial_number.clone()),
        Arg::Text(f.subject.clone()),
        Arg::Text(f.issuer.clone()),
        Arg::OptText(f.common_name.clone()),
        Arg::Int(f.not_before.unix_timestamp()),
        Arg::Int(f.not_after.unix_timestamp()),
        Arg::Text(serde_json::to_string(&f.sans).map_err(|e| StoreError::corrupt("sans", e))?),
        Arg::Text(search_text(&f.subject, &f.sans)),
        Arg::Text(f.key.kind.as_str().to_string()),
        Arg::OptInt(f.key.bits.map(i64::from)),
        Arg::OptText(f.key.curve.clone()),
        Arg::Text(f.signature_algorithm.clone()),
        Arg::Int(i64::from(f.is_ca)),
        Arg::Int(i64::from(f.self_signed)),
        Arg::Int(flags_of(&static_findings(f))),
        Arg::OptText(cert.owner_id.clone()),
        Arg::Text(cert.source.as_str().to_string()),
        Arg::Bytes(f.der.clone()),
        Arg::OptText(cert.issued.as_ref().map(|l| l.adapter_id.clone())),
        Arg::OptText(cert.issued.as_ref().and_then(|l| l.managed_certificate_id.clone())),
        Arg::OptText(cert.issued.as_ref().and_then(|l| l.key_secret.clone())),
        Arg::Int(now),
        Arg::Int(now),
    ])
}

/// Ids of the certificates among `fingerprints` that exist, and whether `scope` covers each.
async fn lookup_known<'f>(
    tx: &mut Transaction<'_, Any>,
    scope: &Scope,
    fingerprints: impl Iterator<Item = &'f str>,
) -> StoreResult<HashMap<String, (String, bool)>> {
    let mut lookup = SqlBuilder::bulk(
        tx,
        "SELECT id, fingerprint_sha256, owner_id FROM certificates WHERE fingerprint_sha256 IN ",
    );
    lookup.row(fingerprints.map(|fp| Arg::Text(fp.to_string())));
    let mut known = HashMap::new();
    for row in lookup.query().fetch_all(&mut **tx).await? {
        let owner: Option<String> = row.try_get("owner_id")?;
        let in_scope = match scope {
            Scope::All => true,
            Scope::Owners(ids) => owner.is_some_and(|o| ids.contains(&o)),
        };
        known.insert(row.try_get("fingerprint_sha256")?, (row.try_get("id")?, in_scope));
    }
    Ok(known)
}

/// Imports one chunk and appends its audit events.
pub(crate) async fn import_chunk(
    tx: &mut Transaction<'_, Any>,
    ctx: &AuditContext,
    scope: &Scope,
    chunk: &[NewCertificate],
) -> StoreResult<Vec<ImportOutcome>> {
    let mut events = Vec::new();
    let outcomes = import_chunk_with(tx, ctx, scope, chunk, &mut events).await?;
    if !events.is_empty() {
        audit::append_many(tx, ctx, &events).await?;
    }
    Ok(outcomes)
}

/// Imports one chunk with a few statements (look up known, insert new) rather than several per
/// certificate, statement round trips dominating bulk imports; its audit events are pushed to
/// `events`, for the caller to append with the rest of its transaction's.
pub(crate) async fn import_chunk_with(
    tx: &mut Transaction<'_, Any>,
    ctx: &AuditContext,
    scope: &Scope,
    chunk: &[NewCertificate],
    events: &mut Vec<NewAuditEvent>,
) -> StoreResult<Vec<ImportOutcome>> {
    if chunk.is_empty() {
        // Nothing to look up: an empty `IN ()` is no SQL on PostgreSQL.
        return Ok(Vec::new());
    }
    let now = ctx.now();
    // Known certificates: fingerprint -> (id, whether the caller's scope covers it).
    let fingerprints = chunk.iter().map(|c| c.facts.fingerprint_sha256.as_str());
    let mut known = lookup_known(tx, scope, fingerprints).await?;
    // The new ones, each once (a certificate twice in one chunk is created once), with ids
    // made here so that the INSERT needs to return nothing.
    let mut fresh: HashMap<String, String> = HashMap::new();
    let mut insert = SqlBuilder::bulk(
        tx,
        "INSERT INTO certificates (id, fingerprint_sha256, serial_number, subject, issuer, \
         common_name, not_before, not_after, sans, search_text, key_type, key_bits, key_curve, \
         signature_algorithm, is_ca, self_signed, finding_flags, owner_id, source, der, \
         adapter_id, managed_certificate_id, key_secret, created_at, updated_at) VALUES ",
    );
    for cert in chunk {
        let fp = &cert.facts.fingerprint_sha256;
        if known.contains_key(fp) || fresh.contains_key(fp) {
            continue;
        }
        let id = uuid::Uuid::now_v7().to_string();
        if !fresh.is_empty() {
            insert.push(", ");
        }
        insert.row(insert_row(cert, id.clone(), now)?);
        fresh.insert(fp.clone(), id);
    }
    let mut created = HashMap::new();
    if !fresh.is_empty() {
        insert.push(" ON CONFLICT (fingerprint_sha256) DO NOTHING");
        let inserted = insert.query().execute(&mut **tx).await?.rows_affected();
        if inserted < fresh.len() as u64 {
            // Another transaction stored some of them since the lookup (PostgreSQL; SQLite has
            // one writer): those whose stored id is not ours are known, not created.
            let stored = lookup_known(tx, scope, fresh.keys().map(String::as_str)).await?;
            for (fp, (id, in_scope)) in stored {
                if fresh.get(&fp) != Some(&id) {
                    fresh.remove(&fp);
                    known.insert(fp, (id, in_scope));
                }
            }
        }
        created = fresh;
    }
    let mut outcomes = Vec::with_capacity(chunk.len());
    // Sightings, each (certificate, kind, address) once, in the order first given.
    let mut sightings: Vec<(Sighting, &NewLocation)> = Vec::new();
    let mut sighted: HashMap<Sighting, usize> = HashMap::new();
    for cert in chunk {
        let f = &cert.facts;
        let outcome = match created.remove(&f.fingerprint_sha256) {
            Some(id) => {
                known.insert(f.fingerprint_sha256.clone(), (id.clone(), true));
                events.push(NewAuditEvent {
                    action: AuditAction::CertificateCreated,
                    entity_type: "certificate".into(),
                    entity_id: id.clone(),
                    details: json!({
                        "fingerprint_sha256": f.fingerprint_sha256,
                        "subject": f.subject,
                        "serial_number": f.serial_number,
                        "source": cert.source.as_str(),
                    }),
                });
                ImportOutcome {
                    id,
                    fingerprint_sha256: f.fingerprint_sha256.clone(),
                    created: true,
                    in_scope: true,
                }
            }
            None => {
                let (id, in_scope) =
                    known.get(&f.fingerprint_sha256).cloned().ok_or_else(|| {
                        StoreError::corrupt("import", "a conflicting certificate is not there")
                    })?;
                ImportOutcome {
                    id,
                    fingerprint_sha256: f.fingerprint_sha256.clone(),
                    created: false,
                    in_scope,
                }
            }
        };
        // A sighting changes the certificate's record: only for callers who may change it.
        if let Some(location) = cert.location.as_ref().filter(|_| outcome.in_scope) {
            // The same certificate seen twice at one place in a chunk is one sighting.
            let key = (outcome.id.clone(), location.kind, location.address.clone());
            match sighted.get(&key) {
                Some(at) => sightings[*at].1 = location,
                None => {
                    sighted.insert(key.clone(), sightings.len());
                    sightings.push((key, location));
                }
            }
        }
        outcomes.push(outcome);
    }
    for part in sightings.chunks(LOCATION_CHUNK) {
        record_sightings(tx, part, now, events).await?;
    }
    Ok(outcomes)
}

/// A certificate at a place: (certificate id, kind, address).
type Sighting = (String, LocationKind, String);

/// Sightings per statement (8 parameters each).
const LOCATION_CHUNK: usize = 250;

/// Upserts locations in one statement: a new one is audited, a known one gets its last
/// sighting; either is no longer gone. A scan's sighting also replaces the endpoint's findings
/// and facts, where another source's keeps them.
async fn record_sightings(
    tx: &mut Transaction<'_, Any>,
    sightings: &[(Sighting, &NewLocation)],
    now: i64,
    events: &mut Vec<NewAuditEvent>,
) -> StoreResult<()> {
    let mut b = SqlBuilder::bulk(
        tx,
        "INSERT INTO locations (id, certificate_id, kind, address, first_seen, last_seen, \
         finding_flags, details) VALUES ",
    );
    for (i, ((certificate_id, kind, address), location)) in sightings.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        let (flags, details) = match &location.endpoint {
            Some(seen) => (seen.finding_flags, Some(seen.details.clone())),
            None => (0, None),
        };
        b.row([
            Arg::Text(uuid::Uuid::now_v7().to_string()),
            Arg::Text(certificate_id.clone()),
            Arg::Text(kind.as_str().to_string()),
            Arg::Text(address.clone()),
            Arg::Int(now),
            Arg::Int(now),
            Arg::Int(flags),
            Arg::OptText(details),
        ]);
    }
    b.push(
        " ON CONFLICT (certificate_id, kind, address) DO UPDATE SET \
         last_seen = excluded.last_seen, gone_at = NULL, \
         finding_flags = CASE WHEN excluded.details IS NULL THEN locations.finding_flags \
         ELSE excluded.finding_flags END, \
         details = COALESCE(excluded.details, locations.details) \
         RETURNING certificate_id, kind, address, first_seen",
    );
    // Audited in the order given, whatever order the database returns the rows in.
    let order: HashMap<(&str, &str, &str), usize> = sightings
        .iter()
        .enumerate()
        .map(|(i, ((id, kind, address), _))| ((id.as_str(), kind.as_str(), address.as_str()), i))
        .collect();
    let mut added: Vec<(usize, String, String, String)> = Vec::new();
    for row in b.query().fetch_all(&mut **tx).await? {
        if row.try_get::<i64, _>("first_seen")? == now {
            let (id, kind, address): (String, String, String) =
                (row.try_get("certificate_id")?, row.try_get("kind")?, row.try_get("address")?);
            let at = order.get(&(id.as_str(), kind.as_str(), address.as_str()));
            added.push((at.copied().unwrap_or(usize::MAX), id, kind, address));
        }
    }
    added.sort();
    for (_, id, kind, address) in added {
        events.push(NewAuditEvent {
            action: AuditAction::CertificateLocationAdded,
            entity_type: "certificate".into(),
            entity_id: id,
            details: json!({"kind": kind, "address": address}),
        });
    }
    Ok(())
}

/// Fills in the locations of the given records with one query, on the connection that read
/// them: a second connection from the pool would cost PostgreSQL's check of it, a round trip.
async fn attach_locations(
    conn: &mut sqlx::AnyConnection,
    records: &mut [CertificateRecord],
) -> StoreResult<()> {
    if records.is_empty() {
        return Ok(());
    }
    let mut b = SqlBuilder::new(
        "SELECT certificate_id, kind, address, first_seen, last_seen, gone_at, finding_flags, \
         details FROM locations WHERE certificate_id IN ",
    );
    b.row(records.iter().map(|r| Arg::Text(r.id.clone())));
    b.push(" ORDER BY first_seen, address");
    let mut by_cert: HashMap<String, Vec<Location>> = HashMap::new();
    for row in b.query().fetch_all(&mut *conn).await? {
        let kind: String = row.try_get("kind")?;
        by_cert.entry(row.try_get("certificate_id")?).or_default().push(Location {
            kind: LocationKind::parse(&kind)
                .ok_or_else(|| StoreError::corrupt("location kind", &kind))?,
            address: row.try_get("address")?,
            first_seen: row.try_get("first_seen")?,
            last_seen: row.try_get("last_seen")?,
            gone_at: row.try_get("gone_at")?,
            findings: findings_of(row.try_get("finding_flags")?),
            details: row
                .try_get::<Option<String>, _>("details")?
                .map(|d| serde_json::from_str(&d))
                .transpose()
                .map_err(|e| StoreError::corrupt("location details", e))?,
        });
    }
    for r in records.iter_mut() {
        r.locations = by_cert.remove(&r.id).unwrap_or_default();
    }
    Ok(())
}

#[async_trait]
impl CertificateStore for SqlStore {
    #[instrument(
        level = "debug",
        skip_all,
        err(level = "debug"),
        fields(count = certificates.len())
    )]
    async fn import_certificates(
        &self,
        ctx: &AuditContext,
        scope: &Scope,
        certificates: &[NewCertificate],
    ) -> StoreResult<Vec<ImportOutcome>> {
        let mut tx = self.begin().await?;
        let mut outcomes = Vec::with_capacity(certificates.len());
        for chunk in certificates.chunks(IMPORT_CHUNK) {
            outcomes.extend(import_chunk(&mut tx, ctx, scope, chunk).await?);
        }
        tx.commit().await?;
        self.imported(&outcomes).await;
        Ok(outcomes)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn import_certificate_batches(
        &self,
        ctx: &AuditContext,
        scope: &Scope,
        mut batches: tokio::sync::mpsc::Receiver<ImportBatch>,
    ) -> StoreResult<Option<Vec<ImportOutcome>>> {
        // Begun with the first certificates: input that holds none never takes the writer.
        let mut tx = None;
        let mut outcomes = Vec::new();
        loop {
            match batches.recv().await {
                Some(ImportBatch::Certificates(certificates)) if !certificates.is_empty() => {
                    let tx = match &mut tx {
                        Some(tx) => tx,
                        None => tx.insert(self.begin().await?),
                    };
                    for chunk in certificates.chunks(IMPORT_CHUNK) {
                        outcomes.extend(import_chunk(tx, ctx, scope, chunk).await?);
                    }
                }
                Some(ImportBatch::Certificates(_)) => {}
                Some(ImportBatch::End) => break,
                // The sender gave up: dropping the transaction rolls it back.
                None => return Ok(None),
            }
        }
        if let Some(tx) = tx {
            tx.commit().await?;
        }
        self.imported(&outcomes).await;
        Ok(Some(outcomes))
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(limit = query.limit))]
    async fn list_certificates(
        &self,
        query: &CertificateQuery,
    ) -> StoreResult<Page<CertificateRecord>> {
        let limit = query.limit.clamp(1, 500);
        // The lowercased term and how to search for it.
        let search = match query.q.as_deref().filter(|q| !q.is_empty()) {
            Some(q) => {
                let term = q.to_lowercase();
                let plan = self.search_plan(&term, limit as usize + 1).await;
                Some((term, plan))
            }
            None => None,
        };
        let mut conn = self.read.acquire().await?;
        let mut rows = Vec::new();
        if let Some((term, SearchPlan { walk: Some(walk), .. })) = &search {
            // A common term: walk a bounded window of the sort order. If that fills the page,
            // the page is exact; if not, the index below answers. The window ends at the row
            // `walk` rows in, found from the index alone; the walk then reads rows in order
            // only until the page is full (a window written as a subquery with a LIMIT had
            // SQLite read and sort every row of it).
            let end = walk_end(&mut conn, query, *walk).await?;
            let mut b = SqlBuilder::new(SELECT_COLUMNS);
            b.push(FROM_CERTIFICATES).push(" WHERE 1 = 1");
            push_filters(&mut b, query);
            if let Some((key, id)) = end {
                push_sort_bound(&mut b, query.sort, "<=", key, id);
            }
            push_contains(&mut b, self.dialect(), term);
            push_order(&mut b, query.sort, i64::from(limit) + 1);
            rows = b.query().fetch_all(&mut *conn).await?;
        }
        if rows.len() <= limit as usize {
            let b = match &search {
                Some((term, plan))
                    if self.dialect() == Dialect::Postgres && !plan.index_trigrams.is_empty() =>
                {
                    postgres_index_search(query, term, &plan.index_trigrams, limit)
                }
                search => {
                    let mut b = SqlBuilder::new(SELECT_COLUMNS);
                    b.push(FROM_CERTIFICATES).push(" WHERE 1 = 1");
                    if let Some((term, plan)) = search {
                        push_substring_search(&mut b, self.dialect(), term, &plan.index_trigrams);
                    }
                    push_filters(&mut b, query);
                    push_order(&mut b, query.sort, i64::from(limit) + 1);
                    b
                }
            };
            rows = b.query().fetch_all(&mut *conn).await?;
        }
        let items = rows.iter().map(record_from_row).collect::<StoreResult<Vec<_>>>()?;
        let mut page = Page::from_rows(items, limit, |r| Cursor {
            key: match query.sort {
                CertificateSort::NotAfter => r.not_after,
                CertificateSort::CreatedAt => r.created_at,
            },
            id: r.id.clone(),
        });
        attach_locations(&mut conn, &mut page.items).await?;
        Ok(page)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(certificate = %id))]
    async fn get_certificate(&self, id: &str, scope: &Scope) -> StoreResult<CertificateRecord> {
        let mut b = SqlBuilder::new(SELECT_COLUMNS);
        b.push(FROM_CERTIFICATES).push(" WHERE");
        push_identity(&mut b, id);
        push_scope(&mut b, scope);
        let mut conn = self.read.acquire().await?;
        let row = b
            .query()
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| StoreError::not_found("certificate", id))?;
        let mut records = vec![record_from_row(&row)?];
        attach_locations(&mut conn, &mut records).await?;
        records.pop().ok_or_else(|| StoreError::not_found("certificate", id))
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(certificate = %id))]
    async fn get_certificate_der(&self, id: &str, scope: &Scope) -> StoreResult<Vec<u8>> {
        let mut b = SqlBuilder::new("SELECT c.der FROM certificates c WHERE");
        push_identity(&mut b, id);
        push_scope(&mut b, scope);
        let row = b
            .query()
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| StoreError::not_found("certificate", id))?;
        Ok(row.try_get("der")?)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(certificate = %id))]
    async fn certificate_chain(&self, id: &str, scope: &Scope) -> StoreResult<Vec<Vec<u8>>> {
        let mut b = SqlBuilder::new(
            "SELECT m.der FROM certificates c \
             JOIN certificate_chains ch ON ch.certificate_id = c.id \
             JOIN certificates m ON m.id = ch.chain_certificate_id WHERE",
        );
        push_identity(&mut b, id);
        push_scope(&mut b, scope);
        b.push(" ORDER BY ch.position");
        let rows = b.query().fetch_all(&self.read).await?;
        rows.iter().map(|row| Ok(row.try_get("der")?)).collect()
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(certificate = %id))]
    async fn update_certificate(
        &self,
        ctx: &AuditContext,
        id: &str,
        scope: &Scope,
        update: &CertificateUpdate,
    ) -> StoreResult<CertificateRecord> {
        let current = self.get_certificate(id, scope).await?;
        let mut tx = self.begin().await?;
        let mut b = SqlBuilder::new("UPDATE certificates AS c SET updated_at = ");
        b.bind(Arg::Int(ctx.now()));
        let mut details = serde_json::Map::new();
        if let Some(owner) = &update.owner_id {
            if let Some(owner_id) = owner {
                let exists = sqlx::query("SELECT 1 FROM owners WHERE id = $1")
                    .bind(owner_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if exists.is_none() {
                    return Err(StoreError::not_found("owner", owner_id));
                }
                b.push(", owner_id = ").bind(Arg::Text(owner_id.clone()));
            } else {
                b.push(", owner_id = NULL");
            }
            details.insert(
                "owner_id".into(),
                json!({
                    "from": current.owner.as_ref().map(|o| &o.id),
                    "to": owner,
                }),
            );
        }
        if let Some(labels) = &update.labels {
            let encoded =
                serde_json::to_string(labels).map_err(|e| StoreError::corrupt("labels", e))?;
            b.push(", labels = ").bind(Arg::Text(encoded));
            details.insert("labels".into(), json!({ "from": current.labels, "to": labels }));
        }
        // The scope again, inside the transaction: the owner may have changed since the read.
        b.push(" WHERE c.id = ").bind(Arg::Text(current.id.clone()));
        push_scope(&mut b, scope);
        if b.query().execute(&mut *tx).await?.rows_affected() == 0 {
            return Err(StoreError::not_found("certificate", id));
        }
        let event = NewAuditEvent {
            action: AuditAction::CertificateUpdated,
            entity_type: "certificate".into(),
            entity_id: current.id.clone(),
            details: serde_json::Value::Object(details),
        };
        audit::append(&mut tx, ctx, &event).await?;
        tx.commit().await?;
        self.get_certificate(&current.id, &Scope::All).await
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(certificate = %id))]
    async fn delete_certificate(
        &self,
        ctx: &AuditContext,
        id: &str,
        scope: &Scope,
    ) -> StoreResult<()> {
        let current = self.get_certificate(id, scope).await?;
        let mut tx = self.begin().await?;
        // A CA certificate that a recorded chain names: deleting it would break every download
        // of those certificates, so the caller deletes them (or lets them expire) first.
        let holders = crate::chains::chains_holding(&mut tx, &current.id, 4).await?;
        if !holders.is_empty() {
            let shown: Vec<&str> = holders.iter().take(3).map(String::as_str).collect();
            let more = if holders.len() > 3 { ", ..." } else { "" };
            return Err(StoreError::Conflict(format!(
                "certificate {} is in the chain of certificate {}{more}; delete those first",
                current.id,
                shown.join(", ")
            )));
        }
        let mut b = SqlBuilder::new("DELETE FROM certificates AS c WHERE c.id = ");
        b.bind(Arg::Text(current.id.clone()));
        push_scope(&mut b, scope);
        if b.query().execute(&mut *tx).await?.rows_affected() == 0 {
            return Err(StoreError::not_found("certificate", id));
        }
        let event = NewAuditEvent {
            action: AuditAction::CertificateDeleted,
            entity_type: "certificate".into(),
            entity_id: current.id.clone(),
            details: json!({
                "fingerprint_sha256": current.fingerprint_sha256,
                "subject": current.subject,
                "serial_number": current.serial_number,
            }),
        };
        audit::append(&mut tx, ctx, &event).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Labels must be small: at most this many, each key and value bounded.
pub const MAX_LABELS: usize = 64;

/// Checks labels before they are stored.
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    if labels.len() > MAX_LABELS {
        return Err(format!("at most {MAX_LABELS} labels"));
    }
    for (k, v) in labels {
        let key_ok = !k.is_empty()
            && k.len() <= 63
            && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
        if !key_ok {
            return Err(format!("label key {k:?} must be 1-63 characters of [A-Za-z0-9-_./]"));
        }
        if v.len() > 256 {
            return Err(format!("label {k:?} has a value over 256 bytes"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_trigram_is_asked_for_quoted() {
        let trigrams = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(fts_query(&trigrams(&["000", "a00"])), "\"000\" AND \"a00\"");
        assert_eq!(fts_query(&trigrams(&["x\"y", "\"yz"])), "\"x\"\"y\" AND \"\"\"yz\"");
    }

    #[test]
    fn a_fingerprint_range_holds_the_share_asked_for() {
        assert_eq!(fingerprint_range(1.0, 12345), ("0000000000000000".into(), "g".into()));
        assert_eq!(fingerprint_range(3.0, 0), ("0000000000000000".into(), "g".into()));
        let (low, high) = fingerprint_range(0.25, 0);
        assert_eq!((low.as_str(), high.as_str()), ("0000000000000000", "4000000000000000"));
        // Wherever it is placed, it ends within the hex range, a quarter wide.
        for position in [1, u64::MAX / 2, u64::MAX - 1, u64::MAX] {
            let (low, high) = fingerprint_range(0.25, position);
            let (low, high) =
                (u64::from_str_radix(&low, 16).unwrap(), u64::from_str_radix(&high, 16).unwrap());
            assert!(high > low && (high - low).abs_diff(u64::MAX / 4) < 1 << 12);
        }
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("A_b%"), "%a\\_b\\%%");
    }

    #[test]
    fn fingerprints_are_recognised_with_or_without_colons() {
        let hex = "AB".repeat(32);
        assert_eq!(as_fingerprint(&hex), Some("ab".repeat(32)));
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(as_fingerprint(&colons), Some("ab".repeat(32)));
        assert_eq!(as_fingerprint("0190c3c2-0000-7000-8000-000000000000"), None);
    }

    #[test]
    fn finding_flags_round_trip() {
        let f = vec![Finding::WeakRsaKey, Finding::NoSan];
        assert_eq!(findings_of(flags_of(&f)), f);
    }
}
