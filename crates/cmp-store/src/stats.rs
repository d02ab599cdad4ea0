//! Aggregates for the dashboard and the metrics: counts by status, the expiry timeline, and
//! the requests and managed certificates that need a person. Each is one SQL statement over
//! columns an index holds, so that it stays fast at a million certificates.

use std::time::Duration;

use async_trait::async_trait;
use cmp_domain::CertificateStatus;
use sqlx::{AnyPool, Row};
use tracing::instrument;

use crate::certificates::{push_owner_scope, status_condition};
use crate::sql::{Arg, SqlBuilder};
use crate::{Dialect, Scope, SqlStore, Store, StoreResult};

/// Seconds in a week: the expiry timeline's bucket.
pub const WEEK_SECS: i64 = 7 * 24 * 3600;

/// Certificates not revoked that expire in one week, for one owner (`None`: no owner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryBucket {
    pub owner_id: Option<String>,
    /// Weeks from the start of the timeline (0 is the first).
    pub week: i64,
    pub count: i64,
}

/// Requests that need attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestCounts {
    pub awaiting_approval: i64,
    /// Failed at or after the time asked for.
    pub failed_since: i64,
}

/// Managed certificates, and those whose last renewal attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManagedCounts {
    pub total: i64,
    pub renewal_failing: i64,
}

/// Certificates of one owner (`None`: no owner) in one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerStatusCount {
    pub owner: Option<String>,
    pub status: CertificateStatus,
    pub count: i64,
}

/// A certificate's expiry, for its metric series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpirySeries {
    pub id: String,
    pub common_name: Option<String>,
    pub owner: Option<String>,
    pub not_after: i64,
}

/// Requests by state and agents by state, for the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkflowCounts {
    pub requests_by_state: Vec<(String, i64)>,
    pub agents_online: i64,
    pub agents_offline: i64,
    pub agents_disabled: i64,
}

/// Connections of one database pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// `read` or `write`.
    pub pool: &'static str,
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}

/// Aggregates over the inventory and the issuance workflow, within a scope.
#[async_trait]
pub trait StatsStore: Send + Sync {
    /// Certificates by status at `now` (every status present, zero included).
    async fn certificate_counts(
        &self,
        now: i64,
        window_secs: i64,
        scope: &Scope,
    ) -> StoreResult<Vec<(CertificateStatus, i64)>>;

    /// Certificates not revoked expiring in each of `weeks` weeks from `from`, per owner.
    async fn expiry_buckets(
        &self,
        from: i64,
        weeks: u32,
        scope: &Scope,
    ) -> StoreResult<Vec<ExpiryBucket>>;

    async fn request_counts(&self, failed_since: i64, scope: &Scope) -> StoreResult<RequestCounts>;

    async fn managed_counts(&self, scope: &Scope) -> StoreResult<ManagedCounts>;

    /// Certificates by owner name and status at `now`, in one pass (for the metrics; only
    /// the pairs that have certificates).
    async fn certificate_counts_by_owner(
        &self,
        now: i64,
        window_secs: i64,
    ) -> StoreResult<Vec<OwnerStatusCount>>;

    /// The `limit` certificates not revoked that expire first (expired ones included).
    async fn expiry_series(&self, limit: u32) -> StoreResult<Vec<ExpirySeries>>;

    /// Requests by state; agents online (heard from since `online_since`), offline, disabled.
    async fn workflow_counts(&self, online_since: i64) -> StoreResult<WorkflowCounts>;

    /// The database pools' connections now.
    fn pool_usage(&self) -> Vec<PoolUsage>;
}

/// One `SUM(...) AS <status>` column per status, over certificates `c`, at `now`.
fn push_status_sums(b: &mut SqlBuilder, now: i64, window_secs: i64) {
    let now_param = b.param(Arg::Int(now));
    let horizon_param = b.param(Arg::Int(now.saturating_add(window_secs)));
    let sums: Vec<String> = CertificateStatus::ALL
        .into_iter()
        .map(|status| {
            let condition = status_condition(status, &now_param, &horizon_param);
            format!("SUM(CASE WHEN {condition} THEN 1 ELSE 0 END) AS {}", status.as_str())
        })
        .collect();
    b.push(&sums.join(", "));
}

/// Rows of `certificate_count_changes` past which they are folded into one per owner.
const FOLD_CHANGES_OVER: i64 = 1_000;

/// How often each server folds them, so that they stay few when no dashboard counts.
const FOLD_EVERY: Duration = Duration::from_secs(60);

/// Folds PostgreSQL's certificate count changes into one row per owner (migration 0013).
/// Rows added meanwhile by other transactions are not seen by the DELETE, so they stay; two
/// servers folding at once fold each row once.
async fn fold_certificate_count_changes(pool: &AnyPool) -> StoreResult<()> {
    sqlx::query(
        "WITH folded AS (DELETE FROM certificate_count_changes RETURNING owner_id, change) \
         INSERT INTO certificate_count_changes (owner_id, change) \
         SELECT owner_id, SUM(change) FROM folded GROUP BY owner_id HAVING SUM(change) <> 0",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Every `FOLD_EVERY`, folds the count changes once there are more than `FOLD_CHANGES_OVER`
/// (each issuance adds one: a busy platform adds thousands an hour).
pub(crate) fn spawn_count_folding(pool: AnyPool) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FOLD_EVERY);
        tick.tick().await; // the first tick is now: the migrations may not have run yet
        let mut failing = false;
        while !pool.is_closed() {
            tick.tick().await;
            let rows =
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM certificate_count_changes")
                    .fetch_one(&pool)
                    .await;
            let done = match rows {
                Ok(n) if n > FOLD_CHANGES_OVER => fold_certificate_count_changes(&pool).await,
                Ok(_) => Ok(()),
                Err(e) => Err(e.into()),
            };
            // Said once, not every minute.
            match (&done, failing) {
                (Err(e), false) => {
                    tracing::warn!(error = %e, "could not fold the certificate count changes")
                }
                (Ok(()), true) => tracing::info!("the certificate count changes fold again"),
                _ => {}
            }
            failing = done.is_err();
        }
    });
}

#[async_trait]
impl StatsStore for SqlStore {
    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn certificate_counts(
        &self,
        now: i64,
        window_secs: i64,
        scope: &Scope,
    ) -> StoreResult<Vec<(CertificateStatus, i64)>> {
        // One count per status but `valid`, each over a range or a partial index (see
        // migration 0009), and the total; `valid` is what is left. The conditions are the
        // statuses' own (`status_condition`), plus, for not-yet-valid, the partial index's
        // predicate. The total is a count of the rows on SQLite (an index's entries); on
        // PostgreSQL, whose counts visit the rows, it is the sum of the changes its triggers
        // keep (migration 0013). At 1M certificates: docs/PERFORMANCE.md, "Dashboard".
        let postgres = self.dialect() == Dialect::Postgres;
        let mut b = SqlBuilder::new(if postgres {
            "SELECT (SELECT CAST(COALESCE(SUM(c.change), 0) AS BIGINT) \
             FROM certificate_count_changes c WHERE 1 = 1"
        } else {
            "SELECT (SELECT COUNT(*) FROM certificates c WHERE 1 = 1"
        });
        push_owner_scope(&mut b, "c.owner_id", scope);
        b.push(") AS total");
        if postgres {
            b.push(", (SELECT COUNT(*) FROM certificate_count_changes) AS change_rows");
        }
        let counted = [
            (CertificateStatus::Revoked, ""),
            (CertificateStatus::NotYetValid, "c.not_before > c.created_at AND "),
            (CertificateStatus::Expired, ""),
            (CertificateStatus::Expiring, ""),
        ];
        // Numbered, so each may be written in several places.
        let now_param = b.param(Arg::Int(now));
        let horizon_param = b.param(Arg::Int(now.saturating_add(window_secs)));
        for (status, index_predicate) in counted {
            let condition = status_condition(status, &now_param, &horizon_param);
            b.push(&format!(
                ", (SELECT COUNT(*) FROM certificates c WHERE {index_predicate}{condition}"
            ));
            push_owner_scope(&mut b, "c.owner_id", scope);
            b.push(&format!(") AS {}", status.as_str()));
        }
        let row = b.query().fetch_one(&self.read).await?;
        if postgres
            && row.try_get::<i64, _>("change_rows")? > FOLD_CHANGES_OVER
            && let Err(e) = fold_certificate_count_changes(&self.write).await
        {
            tracing::warn!(error = %e, "could not fold the certificate count changes");
        }
        let mut counts = Vec::with_capacity(CertificateStatus::ALL.len());
        let mut rest: i64 = row.try_get("total")?;
        for (status, _) in counted {
            let n: i64 = row.try_get(status.as_str())?;
            rest -= n;
            counts.push((status, n));
        }
        counts.push((CertificateStatus::Valid, rest));
        Ok(counts)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn expiry_buckets(
        &self,
        from: i64,
        weeks: u32,
        scope: &Scope,
    ) -> StoreResult<Vec<ExpiryBucket>> {
        let mut b = SqlBuilder::new("SELECT c.owner_id, (c.not_after - ");
        b.bind(Arg::Int(from));
        b.push(&format!(") / {WEEK_SECS} AS week, COUNT(*) AS n FROM certificates c"));
        b.push(" WHERE c.revoked_at IS NULL AND c.not_after >= ").bind(Arg::Int(from));
        b.push(" AND c.not_after < ")
            .bind(Arg::Int(from.saturating_add(i64::from(weeks) * WEEK_SECS)));
        push_owner_scope(&mut b, "c.owner_id", scope);
        b.push(" GROUP BY c.owner_id, week");
        let rows = b.query().fetch_all(&self.read).await?;
        rows.iter()
            .map(|row| {
                Ok(ExpiryBucket {
                    owner_id: row.try_get("owner_id")?,
                    week: row.try_get("week")?,
                    count: row.try_get("n")?,
                })
            })
            .collect()
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn request_counts(&self, failed_since: i64, scope: &Scope) -> StoreResult<RequestCounts> {
        let mut b = SqlBuilder::new(
            "SELECT SUM(CASE WHEN r.state = 'awaiting_approval' THEN 1 ELSE 0 END) AS awaiting, \
             SUM(CASE WHEN r.state = 'failed' THEN 1 ELSE 0 END) AS failed \
             FROM issuance_requests r WHERE (r.state = 'awaiting_approval' \
             OR (r.state = 'failed' AND r.updated_at >= ",
        );
        b.bind(Arg::Int(failed_since)).push("))");
        push_owner_scope(&mut b, "r.owner_id", scope);
        let row = b.query().fetch_one(&self.read).await?;
        Ok(RequestCounts {
            awaiting_approval: row.try_get::<Option<i64>, _>("awaiting")?.unwrap_or(0),
            failed_since: row.try_get::<Option<i64>, _>("failed")?.unwrap_or(0),
        })
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn managed_counts(&self, scope: &Scope) -> StoreResult<ManagedCounts> {
        let mut b = SqlBuilder::new(
            "SELECT COUNT(*) AS total, \
             SUM(CASE WHEN m.renewal_failures > 0 THEN 1 ELSE 0 END) AS failing \
             FROM managed_certificates m WHERE 1 = 1",
        );
        push_owner_scope(&mut b, "m.owner_id", scope);
        let row = b.query().fetch_one(&self.read).await?;
        Ok(ManagedCounts {
            total: row.try_get("total")?,
            renewal_failing: row.try_get::<Option<i64>, _>("failing")?.unwrap_or(0),
        })
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn certificate_counts_by_owner(
        &self,
        now: i64,
        window_secs: i64,
    ) -> StoreResult<Vec<OwnerStatusCount>> {
        let mut b = SqlBuilder::new("SELECT o.name AS owner, ");
        push_status_sums(&mut b, now, window_secs);
        b.push(" FROM certificates c LEFT JOIN owners o ON o.id = c.owner_id GROUP BY o.name");
        let mut counts = Vec::new();
        for row in b.query().fetch_all(&self.read).await? {
            let owner: Option<String> = row.try_get("owner")?;
            for status in CertificateStatus::ALL {
                let count = row.try_get::<Option<i64>, _>(status.as_str())?.unwrap_or(0);
                if count > 0 {
                    counts.push(OwnerStatusCount { owner: owner.clone(), status, count });
                }
            }
        }
        Ok(counts)
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn expiry_series(&self, limit: u32) -> StoreResult<Vec<ExpirySeries>> {
        sqlx::query(
            "SELECT c.id, c.common_name, o.name AS owner, c.not_after FROM certificates c \
             LEFT JOIN owners o ON o.id = c.owner_id WHERE c.revoked_at IS NULL \
             ORDER BY c.not_after, c.id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|row| {
            Ok(ExpirySeries {
                id: row.try_get("id")?,
                common_name: row.try_get("common_name")?,
                owner: row.try_get("owner")?,
                not_after: row.try_get("not_after")?,
            })
        })
        .collect()
    }

    #[instrument(level = "debug", skip_all, err(level = "debug"))]
    async fn workflow_counts(&self, online_since: i64) -> StoreResult<WorkflowCounts> {
        let mut counts = WorkflowCounts::default();
        for row in sqlx::query("SELECT state, COUNT(*) AS n FROM issuance_requests GROUP BY state")
            .fetch_all(&self.read)
            .await?
        {
            counts.requests_by_state.push((row.try_get("state")?, row.try_get("n")?));
        }
        let row = sqlx::query(
            "SELECT SUM(CASE WHEN disabled_at IS NULL AND last_seen_at >= $1 THEN 1 ELSE 0 END) \
             AS online, SUM(CASE WHEN disabled_at IS NULL AND (last_seen_at IS NULL \
             OR last_seen_at < $1) THEN 1 ELSE 0 END) AS offline, \
             SUM(CASE WHEN disabled_at IS NOT NULL THEN 1 ELSE 0 END) AS disabled FROM agents",
        )
        .bind(online_since)
        .fetch_one(&self.read)
        .await?;
        counts.agents_online = row.try_get::<Option<i64>, _>("online")?.unwrap_or(0);
        counts.agents_offline = row.try_get::<Option<i64>, _>("offline")?.unwrap_or(0);
        counts.agents_disabled = row.try_get::<Option<i64>, _>("disabled")?.unwrap_or(0);
        Ok(counts)
    }

    fn pool_usage(&self) -> Vec<PoolUsage> {
        [("read", &self.read), ("write", &self.write)]
            .into_iter()
            .map(|(pool, p)| PoolUsage {
                pool,
                open: p.size(),
                idle: u32::try_from(p.num_idle()).unwrap_or(u32::MAX),
                max: p.options().get_max_connections(),
            })
            .collect()
    }
}
