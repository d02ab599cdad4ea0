//! The SQL store: one implementation over sqlx's `Any` driver for SQLite and PostgreSQL.
//!
//! The queries are written once in the SQL both databases accept (`$n` parameters,
//! `ON CONFLICT`, `RETURNING`, row-value comparison). What differs lives here: how pools are
//! opened, which migrations apply, and SQLite's single writer.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, Executor, Row, Transaction};
use tracing::instrument;

use crate::agent_lookups::{AgentLookups, LOOKUPS_PER_BATCH};
use crate::audit::{self, ChainBreak};
use crate::directory_cache::DirectoryCache;
use crate::group_commit::GroupCommit;
use crate::job_results::JobResults;
use crate::search::SampleCache;
use crate::{
    AuditContext, AuditEvent, AuditQuery, AuditStore, Cursor, NewAuditEvent, Page, Store,
    StoreError, StoreResult,
};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Picks the dialect from a database URL.
    pub fn from_url(url: &str) -> StoreResult<Dialect> {
        if url.starts_with("sqlite:") {
            Ok(Dialect::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Dialect::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }

    /// The versioned migrations of this database.
    pub fn migrator(self) -> &'static Migrator {
        match self {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        }
    }
}

/// The store. `read` serves queries; `write` serves changes (one connection on SQLite, whose
/// writers are serialized anyway, so transactions never fail on a lock upgrade).
#[derive(Clone)]
pub struct SqlStore {
    pub(crate) read: AnyPool,
    pub(crate) write: AnyPool,
    dialect: Dialect,
    /// Requests signed in this process, waiting to be stored together.
    pub(crate) group: Arc<GroupCommit>,
    /// Agents' job results, waiting to be recorded together.
    pub(crate) job_results: Arc<JobResults>,
    /// Agents' certificates, waiting to be looked up together.
    pub(crate) agent_lookups: Arc<AgentLookups>,
    /// Copies of token, owner, adapter and policy reads (none unless
    /// [`SqlStore::with_directory_cache`]).
    pub(crate) directory: Arc<DirectoryCache>,
    /// The sample of search texts that substring searches are planned by.
    pub(crate) search_sample: Arc<SampleCache>,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never print it.
        f.debug_struct("SqlStore").field("dialect", &self.dialect).finish_non_exhaustive()
    }
}

impl SqlStore {
    /// Opens the database at `url` and applies pending migrations.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<SqlStore> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::from_url(url)?;
        let store = match dialect {
            Dialect::Sqlite => {
                ensure_sqlite_file(url)?;
                // The writer checkpoints only if the background checkpoints fall behind.
                let write = sqlite_pool(1, 65_536, 10_000).connect(url).await?;
                sqlx::query("PRAGMA journal_mode = WAL").execute(&write).await?;
                let read =
                    sqlite_pool(max_connections.clamp(2, 8), 4_096, 1_000).connect(url).await?;
                spawn_checkpoints(read.clone());
                SqlStore {
                    read,
                    write,
                    dialect,
                    group: crate::group_commit::group_commit(),
                    job_results: job_results_batcher(),
                    agent_lookups: Arc::new(AgentLookups::new(LOOKUPS_PER_BATCH)),
                    directory: no_cache(),
                    search_sample: Arc::default(),
                }
            }
            Dialect::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(Duration::from_secs(10))
                    // Compiling a plan costs 30 ms and more (the dashboard's counts at 1M), far
                    // beyond what it saves on queries that read an index range.
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute("SET jit = off").await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?;
                crate::stats::spawn_count_folding(pool.clone());
                SqlStore {
                    read: pool.clone(),
                    write: pool,
                    dialect,
                    group: crate::group_commit::group_commit(),
                    job_results: job_results_batcher(),
                    agent_lookups: Arc::new(AgentLookups::new(LOOKUPS_PER_BATCH)),
                    directory: no_cache(),
                    search_sample: Arc::default(),
                }
            }
        };
        dialect.migrator().run(&store.write).await?;
        Ok(store)
    }

    /// Keeps what token, owner, adapter and policy reads answer for `ttl`: every change this
    /// store commits to any of them forgets the copies at once; changes by another process
    /// (a replica) are seen after `ttl` at most.
    pub fn with_directory_cache(mut self, ttl: Duration) -> SqlStore {
        self.directory = Arc::new(DirectoryCache::new(ttl));
        self
    }

    /// Forgets the cached directory reads: called after every commit that changes a token,
    /// owner, adapter or policy.
    pub(crate) fn directory_changed(&self) {
        self.directory.forget();
    }

    /// Runs raw SQL on the write pool. For tests that must reach under the API (e.g. to tamper
    /// with the audit trail and prove verification notices).
    #[cfg(feature = "testing")]
    pub async fn execute_raw(&self, sql: &str) -> StoreResult<u64> {
        Ok(self.write.execute(sql).await?.rows_affected())
    }

    /// The rows `table` holds. For tests.
    #[cfg(feature = "testing")]
    pub async fn count_rows(&self, table: &str) -> StoreResult<i64> {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        Ok(sqlx::query_scalar(&sql).fetch_one(&self.read).await?)
    }

    /// The rows PostgreSQL's planner believes `table` holds (`None` on SQLite, which keeps no
    /// such estimate; negative when the table was never analyzed). For tests.
    #[cfg(feature = "testing")]
    pub async fn planner_rows(&self, table: &str) -> StoreResult<Option<f64>> {
        if self.dialect != Dialect::Postgres {
            return Ok(None);
        }
        let sql = "SELECT reltuples::float8 FROM pg_class WHERE oid = to_regclass($1)";
        Ok(sqlx::query_scalar(sql).bind(table).fetch_optional(&self.read).await?)
    }

    /// Entries waiting in the pending list of PostgreSQL's GIN index `index` (`None` on
    /// SQLite). For tests; it installs `pgstattuple`, which needs a superuser.
    #[cfg(feature = "testing")]
    pub async fn gin_pending_entries(&self, index: &str) -> StoreResult<Option<i64>> {
        if self.dialect != Dialect::Postgres {
            return Ok(None);
        }
        self.write.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple").await?;
        let sql = "SELECT pending_tuples FROM pgstatginindex(to_regclass($1))";
        Ok(Some(sqlx::query_scalar(sql).bind(index).fetch_one(&self.read).await?))
    }

    pub(crate) async fn begin(&self) -> StoreResult<Transaction<'static, Any>> {
        Ok(self.write.begin().await?)
    }

    /// Brings PostgreSQL's statistics of `table` up to date once the rows changed since they
    /// were taken (`added` of them just now) reach a tenth of the table: autovacuum's own rule,
    /// for servers where it is off or has not come round yet. The planner chooses between
    /// walking an index in order and sorting every match by these estimates: to it a table
    /// never analyzed holds a few rows, and a 1M-row inventory's `status=expiring` page took
    /// 60-100 ms by sorting 41,000 rows instead of 0.3 ms by the index (measured). SQLite keeps
    /// no such estimates.
    ///
    /// Then merges the pending entries of the table's GIN indexes (the trigram search). New
    /// rows wait there, up to 4 MB, until vacuum or a later insert merges them, and every
    /// search reads through all of them: a one-match search took 2.1 ms after a 100,000-row
    /// import, 0.08 ms once merged (measured). The merge is work an insert would do later
    /// anyway; a smaller list for every insert (`gin_pending_list_limit`) cost imports 6% at
    /// 1 MB and 10% at 256 kB (measured), so the default stays.
    ///
    /// Called after the commit: a failure is logged, the rows stay written.
    pub(crate) async fn refresh_statistics(&self, table: &str, added: usize) {
        if self.dialect != Dialect::Postgres || added < 100 {
            return;
        }
        if self.statistics_stale(table, added).await
            && let Err(e) = sqlx::query(&format!("ANALYZE {table}")).execute(&self.write).await
        {
            tracing::warn!(table, error = %e, "could not bring the planner's statistics up to date");
        }
        let merge = "SELECT gin_clean_pending_list(i.indexrelid) FROM pg_index i \
             JOIN pg_class x ON x.oid = i.indexrelid JOIN pg_am a ON a.oid = x.relam \
             WHERE i.indrelid = to_regclass($1) AND a.amname = 'gin'";
        if let Err(e) = sqlx::query(merge).bind(table).execute(&self.write).await {
            tracing::warn!(table, error = %e, "could not merge the new entries of its search index");
        }
    }

    /// Whether the rows changed in `table` since its statistics, with `added`, reach a tenth.
    async fn statistics_stale(&self, table: &str, added: usize) -> bool {
        let described = sqlx::query_as::<_, (f64, i64)>(
            "SELECT c.reltuples::float8, s.n_mod_since_analyze FROM pg_class c \
             JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = to_regclass($1)",
        )
        .bind(table)
        .fetch_optional(&self.write)
        .await;
        match described {
            // -1: never analyzed. The counter of changes may lag this commit: `added` counts.
            Ok(Some((rows, changed))) => {
                let changed = changed as f64 + added as f64;
                rows < 0.0 || changed >= (rows / 10.0).max(1_000.0)
            }
            Ok(None) | Err(_) => added >= 1_000,
        }
    }
}

/// How often the WAL is copied into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Copies the WAL into the database file from a reader connection, so that the checkpoint's
/// writes and fsyncs happen beside the writer rather than inside its commits (which would
/// hold up every request waiting for that commit).
fn spawn_checkpoints(read: AnyPool) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        let mut failing = false;
        while !read.is_closed() {
            tick.tick().await;
            let done = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&read).await;
            // Said once, not ten times a second; the writer checkpoints meanwhile.
            match (&done, failing) {
                (Err(e), false) => tracing::warn!(error = %e, "WAL checkpoints fail"),
                (Ok(_), true) => tracing::info!("WAL checkpoints work again"),
                _ => {}
            }
            failing = done.is_err();
        }
    });
}

/// SQLite connections. `cache_kib` is each connection's page cache: large for the one writer,
/// whose index updates it keeps in memory; small for readers. No memory map: each connection
/// maps the file apart, and a process's resident memory counts every mapped page once per
/// connection (nine connections over a 1M-certificate file held 1.3 GiB resident). Reads go
/// through the kernel's page cache instead, which serves them as fast from memory and which
/// the kernel can drop. A commit that leaves the WAL longer than `autocheckpoint_pages`
/// checkpoints it.
fn sqlite_pool(max: u32, cache_kib: u32, autocheckpoint_pages: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        // A local file does not drop connections; the ping before each use would be a
        // round trip to the connection's thread on every transaction.
        .test_before_acquire(false)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                conn.execute("PRAGMA foreign_keys = ON").await?;
                conn.execute("PRAGMA busy_timeout = 10000").await?;
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                conn.execute(format!("PRAGMA cache_size = -{cache_kib}").as_str()).await?;
                conn.execute("PRAGMA mmap_size = 0").await?;
                conn.execute("PRAGMA temp_store = MEMORY").await?;
                let pages = format!("PRAGMA wal_autocheckpoint = {autocheckpoint_pages}");
                conn.execute(pages.as_str()).await?;
                Ok(())
            })
        })
}

/// sqlx opens SQLite files only if they exist unless `mode=rwc`; make sure the folder exists.
/// A new file is made readable by its owner only: SQLite gives its `-wal` and `-shm` files the
/// mode of the database file, so they are 0600 too.
fn ensure_sqlite_file(url: &str) -> StoreResult<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    let path = std::path::PathBuf::from_str(path).map_err(|_| StoreError::UnsupportedUrl)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
    }
    let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path);
    match created {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(StoreError::Database(sqlx::Error::Io(e))),
    }
    Ok(())
}

/// A JSON column's value, read as `T`; a value that is not is reported as corrupt, by column.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    column: &'static str,
) -> StoreResult<T> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::corrupt(column, e))
}

/// `value` as the text of a JSON column.
pub(crate) fn to_json(value: &impl serde::Serialize) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::corrupt("JSON", e))
}

/// A value bound to a `$n` parameter of a query built at run time.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(i64),
    OptInt(Option<i64>),
    Text(String),
    OptText(Option<String>),
    Bytes(Vec<u8>),
    OptBytes(Option<Vec<u8>>),
}

/// Builds SQL with numbered parameters (`$n`), valid on both databases.
#[derive(Debug, Default)]
pub(crate) struct SqlBuilder {
    pub sql: String,
    pub args: Vec<Arg>,
    /// Plain `?` placeholders, for statements with thousands of parameters on SQLite: there,
    /// binding looks up each numbered parameter's name by a linear scan, so a multi-row
    /// INSERT with `$n` costs time quadratic in its parameter count.
    positional: bool,
}

impl SqlBuilder {
    pub fn new(sql: &str) -> Self {
        SqlBuilder { sql: sql.to_string(), args: Vec::new(), positional: false }
    }

    /// A builder for a statement with many parameters, run on `conn`.
    pub fn bulk(conn: &sqlx::AnyConnection, sql: &str) -> Self {
        let positional = conn.backend_name().eq_ignore_ascii_case("sqlite");
        SqlBuilder { sql: sql.to_string(), args: Vec::new(), positional }
    }

    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends `(p1, p2, ...)` with one placeholder per value: a row of a multi-row INSERT.
    pub fn row(&mut self, values: impl IntoIterator<Item = Arg>) -> &mut Self {
        self.sql.push('(');
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.bind(v);
        }
        self.sql.push(')');
        self
    }

    /// Appends rows separated by commas: the values of a multi-row INSERT.
    pub fn rows<R: IntoIterator<Item = Arg>>(
        &mut self,
        rows: impl IntoIterator<Item = R>,
    ) -> &mut Self {
        for (i, row) in rows.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.row(row);
        }
        self
    }

    /// Appends a parameter placeholder and remembers its value.
    pub fn bind(&mut self, arg: Arg) -> &mut Self {
        let placeholder = self.param(arg);
        self.sql.push_str(&placeholder);
        self
    }

    /// Remembers a value and returns its placeholder, to be written where needed (once: on
    /// SQLite's positional form it stands for the next value only).
    pub fn param(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        if self.positional { "?".to_string() } else { format!("${}", self.args.len()) }
    }

    /// Ends a listing newest first by `(created_at, id)`: the rows after `cursor`, and one more
    /// than `limit` (which only says that more follow, for `Page::from_rows`).
    pub fn newest_first_page(&mut self, cursor: Option<&crate::Cursor>, limit: u32) -> &mut Self {
        if let Some(cursor) = cursor {
            self.push(" AND (created_at < ")
                .bind(Arg::Int(cursor.key))
                .push(" OR (created_at = ")
                .bind(Arg::Int(cursor.key))
                .push(" AND id < ")
                .bind(Arg::Text(cursor.id.clone()))
                .push("))");
        }
        self.push(" ORDER BY created_at DESC, id DESC LIMIT ").bind(Arg::Int(i64::from(limit) + 1))
    }

    pub fn query(&self) -> sqlx::query::Query<'_, Any, sqlx::any::AnyArguments<'_>> {
        let mut q = sqlx::query(&self.sql);
        for arg in &self.args {
            q = match arg {
                Arg::Int(v) => q.bind(*v),
                Arg::OptInt(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.as_str()),
                Arg::OptText(v) => q.bind(v.as_deref()),
                Arg::Bytes(v) => q.bind(v.as_slice()),
                Arg::OptBytes(v) => q.bind(v.as_deref()),
            };
        }
        q
    }
}

/// Runs statements in order: on SQLite, when all use `?` placeholders, as one call (SQLite
/// takes several statements in one string, and sqlx binds the values statement by
/// statement), since each call is a round trip to the connection's own thread.
pub(crate) async fn run_statements(
    tx: &mut Transaction<'_, Any>,
    statements: Vec<SqlBuilder>,
) -> StoreResult<()> {
    if statements.len() > 1 && statements.iter().all(|s| s.positional) {
        let mut joined = SqlBuilder { positional: true, ..SqlBuilder::default() };
        for statement in statements {
            // `$n` would name the n-th value of the whole call, not of this statement.
            debug_assert!(!statement.sql.contains('$'), "a joined statement uses $n");
            joined.sql.push_str(&statement.sql);
            joined.sql.push_str(";\n");
            joined.args.extend(statement.args);
        }
        joined.query().execute(&mut **tx).await?;
        return Ok(());
    }
    for statement in statements {
        statement.query().execute(&mut **tx).await?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqlStore {
    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    fn dialect(&self) -> Dialect {
        self.dialect
    }
}

#[async_trait]
impl AuditStore for SqlStore {
    #[instrument(level = "debug", skip_all, err(level = "debug"), fields(limit = query.limit))]
    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<Page<AuditEvent>> {
        let mut b = SqlBuilder::new("SELECT * FROM audit_logs WHERE 1 = 1");
        let text_filters = [
            ("actor", &query.actor),
            ("action", &query.action),
            ("entity_type", &query.entity_type),
            ("entity_id", &query.entity_id),
        ];
        for (column, value) in text_filters {
            if let Some(v) = value {
                b.push(&format!(" AND {column} = ")).bind(Arg::Text(v.clone()));
            }
        }
        if let Some(v) = query.since_us {
            b.push(" AND occurred_us >= ").bind(Arg::Int(v));
        }
        if let Some(v) = query.until_us {
            b.push(" AND occurred_us < ").bind(Arg::Int(v));
        }
        if let Some(v) = query.before_seq {
            b.push(" AND seq < ").bind(Arg::Int(v));
        }
        let limit = query.limit.clamp(1, 500);
        b.push(" ORDER BY seq DESC LIMIT ").bind(Arg::Int(i64::from(limit) + 1));
        let rows = b.query().fetch_all(&self.read).await?;
        let items = rows.iter().map(audit::from_row).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_rows(items, limit, |e| Cursor { key: e.seq, id: String::new() }))
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn verify_audit_chain(&self) -> StoreResult<(u64, Option<ChainBreak>)> {
        // Take the head first and check the trail up to it: appends that commit meanwhile are
        // beyond it and cannot look like tampering.
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.read)
            .await?;
        let head_seq: i64 = head.try_get("seq")?;
        let head_hash: String = head.try_get("hash")?;
        // Walk in bounded batches so a long trail never sits in memory at once.
        let mut prev_hash = audit::GENESIS_HASH.to_string();
        let mut expected_seq = 1_i64;
        let mut checked = 0_u64;
        while expected_seq <= head_seq {
            let rows: Vec<AnyRow> = sqlx::query(
                "SELECT * FROM audit_logs WHERE seq >= $1 AND seq <= $2 ORDER BY seq LIMIT 5000",
            )
            .bind(expected_seq)
            .bind(head_seq)
            .fetch_all(&self.read)
            .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let event = audit::from_row(row)?;
                if let Some(broken) = audit::check_link(&event, expected_seq, &prev_hash) {
                    return Ok((checked, Some(broken)));
                }
                prev_hash = event.hash;
                expected_seq += 1;
                checked += 1;
            }
        }
        // The trail must reach the head: deleting the newest events is tampering too.
        if expected_seq - 1 != head_seq || prev_hash != head_hash {
            let reason = format!(
                "the chain head is at event {head_seq} but the trail ends at {}",
                expected_seq - 1
            );
            return Ok((checked, Some(ChainBreak { seq: expected_seq, reason })));
        }
        Ok((checked, None))
    }

    #[instrument(
        level = "debug",
        skip_all,
        err(level = "debug"),
        fields(action = event.action.as_str(), entity_id = %event.entity_id)
    )]
    async fn append_audit(&self, ctx: &AuditContext, event: &NewAuditEvent) -> StoreResult<i64> {
        let mut tx = self.begin().await?;
        let seq = audit::append(&mut tx, ctx, event).await?;
        tx.commit().await?;
        Ok(seq)
    }

    async fn append_audits(&self, events: &[(AuditContext, NewAuditEvent)]) -> StoreResult<i64> {
        let attributed: Vec<_> = events.iter().map(|(ctx, event)| (ctx, event)).collect();
        let mut tx = self.begin().await?;
        let seq = audit::append_attributed(&mut tx, &attributed).await?;
        tx.commit().await?;
        Ok(seq)
    }
}

fn job_results_batcher() -> Arc<JobResults> {
    Arc::new(JobResults::new(crate::job_results::RESULTS_PER_BATCH))
}

/// A cache that keeps nothing (the default: tests and tools read every time).
fn no_cache() -> Arc<DirectoryCache> {
    Arc::new(DirectoryCache::new(Duration::ZERO))
}
