//! Agents looked up by the certificate they present, in batches. Every call of an agent is
//! authenticated by its client certificate, and a deployment to a fleet brings three calls per
//! agent within seconds (the poll that gets the job, its result, the next poll). One statement
//! per call is, on SQLite, two thread hand-offs each, which with the page re-reads after every
//! commit made the largest part of the server's CPU in a 10,000-agent dispatch (`perf`). The
//! lookups asked for while a batch is read wait for the next one, which is one statement.
//!
//! Nothing is kept between batches: each lookup reads the database after its call came in, so
//! a disabled, deleted or re-keyed agent is refused on its next call, on every replica.

use std::collections::HashMap;

use crate::agents::{AGENT_COLUMNS, agent_from_row};
use crate::sql::{Arg, SqlBuilder};
use crate::{AgentRecord, SqlStore, StoreError, StoreResult};

/// Lookups per batch: a statement takes one parameter for each.
pub(crate) const LOOKUPS_PER_BATCH: usize = 500;

type Answer = StoreResult<Option<AgentRecord>>;

/// The lookups waiting for the next batch.
pub(crate) type AgentLookups = crate::batch::Batcher<String, Answer>;

impl SqlStore {
    /// The enabled agent whose current or previous certificate has `fingerprint`, read with
    /// the other lookups asked for meanwhile.
    pub(crate) async fn look_up_agent(&self, fingerprint: &str) -> Answer {
        let store = self.clone();
        let serve = move |fingerprints: Vec<String>| {
            let store = store.clone();
            async move { store.look_up_batch(&fingerprints).await }
        };
        self.agent_lookups
            .submit(fingerprint.to_string(), serve)
            .await
            .map_err(|e| StoreError::corrupt("agent lookup", e))?
    }

    /// One answer per fingerprint, in order: from one statement, or, when that fails, from
    /// one each, so that each caller gets its own error.
    async fn look_up_batch(&self, fingerprints: &[String]) -> Vec<Answer> {
        if fingerprints.len() > 1 {
            match self.agents_presenting(fingerprints).await {
                Ok(found) => {
                    return fingerprints.iter().map(|f| Ok(found.get(f).cloned())).collect();
                }
                Err(e) => tracing::debug!(error = %e, "agent lookups fell back"),
            }
        }
        let mut answers = Vec::with_capacity(fingerprints.len());
        for fingerprint in fingerprints {
            answers.push(
                self.agents_presenting(std::slice::from_ref(fingerprint))
                    .await
                    .map(|mut found| found.remove(fingerprint)),
            );
        }
        answers
    }

    /// The enabled agents with any of `fingerprints` as their current or previous
    /// certificate's, under each of their fingerprints.
    async fn agents_presenting(
        &self,
        fingerprints: &[String],
    ) -> StoreResult<HashMap<String, AgentRecord>> {
        let mut distinct: Vec<&String> = fingerprints.iter().collect();
        distinct.sort_unstable();
        distinct.dedup();
        let list = || distinct.iter().map(|f| Arg::Text(f.to_string()));
        let mut b = SqlBuilder::new(AGENT_COLUMNS);
        b.push(" WHERE (cert_fingerprint IN ").row(list()).push(" OR previous_fingerprint IN ");
        b.row(list()).push(") AND disabled_at IS NULL");
        let mut by_fingerprint = HashMap::with_capacity(distinct.len());
        for row in b.query().fetch_all(&self.read).await? {
            let agent = agent_from_row(&row)?;
            if let Some(previous) = &agent.previous_fingerprint {
                by_fingerprint.insert(previous.clone(), agent.clone());
            }
            by_fingerprint.insert(agent.cert_fingerprint.clone(), agent);
        }
        Ok(by_fingerprint)
    }
}
