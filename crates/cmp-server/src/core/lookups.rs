//! Short-lived copies of the reads nearly every API call makes: the caller's token and, to
//! issue, the owner, the adapter and the owner's policy. Each is a database statement (on
//! SQLite two thread hand-offs) that answers the same thing thousands of times a second.
//!
//! A change made through this process forgets every copy at once; another replica's change
//! is seen after at most `http.lookup_cache_ms` (a revoked token works there that long).
//! Only found rows are kept, so unknown tokens cannot fill the cache.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use cmp_store::{AdapterRecord, ApiToken, Owner, PolicyRecord, Store, StoreResult};

/// Entries per kind before the cache starts over (a bound, never reached by real use).
const MAX_ENTRIES: usize = 10_000;

/// The cached reads (not `Debug`: token hashes are its keys).
pub struct Lookups {
    ttl: Duration,
    /// Moves on every change, so that a read that began before it is not kept.
    generation: AtomicU64,
    tokens: Entries<Option<ApiToken>>,
    owners: Entries<Owner>,
    adapters: Entries<AdapterRecord>,
    policies: Entries<Option<PolicyRecord>>,
}

struct Entries<V>(Mutex<HashMap<String, (Instant, V)>>);

impl<V: Clone> Entries<V> {
    fn new() -> Self {
        Entries(Mutex::new(HashMap::new()))
    }

    fn get(&self, key: &str, ttl: Duration) -> Option<V> {
        let entries = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(key).filter(|(at, _)| at.elapsed() < ttl).map(|(_, v)| v.clone())
    }

    /// Keeps `value` unless `generation` has moved since `read_at` (checked under the lock
    /// that [`Lookups::forget`] clears under, after moving it).
    fn put(&self, key: &str, value: V, generation: &AtomicU64, read_at: u64) {
        let mut entries = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if generation.load(Ordering::SeqCst) != read_at {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key.to_string(), (Instant::now(), value));
    }

    fn clear(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

impl Lookups {
    /// Copies kept for `ttl`; zero keeps none.
    pub fn new(ttl: Duration) -> Lookups {
        Lookups {
            ttl,
            generation: AtomicU64::new(0),
            tokens: Entries::new(),
            owners: Entries::new(),
            adapters: Entries::new(),
            policies: Entries::new(),
        }
    }

    /// Forgets every copy: call after changing a token, owner, adapter or policy.
    pub fn forget(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.tokens.clear();
        self.owners.clear();
        self.adapters.clear();
        self.policies.clear();
    }

    /// The copy of `key`, or `read`'s answer, kept if `keep` says so and no change came
    /// meanwhile.
    async fn cached<V: Clone>(
        &self,
        entries: &Entries<V>,
        key: &str,
        read: impl Future<Output = StoreResult<V>>,
        keep: impl Fn(&V) -> bool,
    ) -> StoreResult<V> {
        if self.ttl.is_zero() {
            return read.await;
        }
        if let Some(value) = entries.get(key, self.ttl) {
            return Ok(value);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let value = read.await?;
        if keep(&value) {
            entries.put(key, value.clone(), &self.generation, generation);
        }
        Ok(value)
    }

    /// The live token with this hash at `now` (Unix seconds).
    pub async fn token(
        &self,
        store: &dyn Store,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<ApiToken>> {
        let read = store.find_token_by_hash(token_hash, now);
        let token = self.cached(&self.tokens, token_hash, read, Option::is_some).await?;
        // A kept copy may have expired since it was read.
        Ok(token.filter(|t| t.expires_at.is_none_or(|at| at > now)))
    }

    /// An owner by id or name.
    pub async fn owner(&self, store: &dyn Store, id_or_name: &str) -> StoreResult<Owner> {
        self.cached(&self.owners, id_or_name, store.get_owner(id_or_name), |_| true).await
    }

    /// An adapter by id or name.
    pub async fn adapter(&self, store: &dyn Store, id_or_name: &str) -> StoreResult<AdapterRecord> {
        self.cached(&self.adapters, id_or_name, store.get_adapter(id_or_name), |_| true).await
    }

    /// An owner's policy, if it has one (its absence is kept too: owners are few).
    pub async fn policy(
        &self,
        store: &dyn Store,
        owner_id: &str,
    ) -> StoreResult<Option<PolicyRecord>> {
        self.cached(&self.policies, owner_id, store.get_policy(owner_id), |_| true).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn entries_expire_and_are_bounded() {
        let entries = Entries::new();
        let generation = AtomicU64::new(0);
        entries.put("a", 1, &generation, 0);
        assert_eq!(entries.get("a", Duration::from_secs(60)), Some(1));
        assert_eq!(entries.get("a", Duration::ZERO), None);
        for i in 0..MAX_ENTRIES {
            entries.put(&i.to_string(), 2, &generation, 0);
        }
        assert!(entries.0.lock().unwrap().len() <= MAX_ENTRIES);
        // A read that began before a change is not kept.
        generation.fetch_add(1, Ordering::SeqCst);
        entries.put("late", 3, &generation, 0);
        assert_eq!(entries.get("late", Duration::from_secs(60)), None);
    }
}
