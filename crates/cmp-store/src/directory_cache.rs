//! Short-lived copies of the reads nearly every API call makes: the caller's token and, to
//! issue, the owner, the adapter and the owner's policy ("the directory"). Each is a database
//! statement (on SQLite two thread hand-offs) that answers the same thing thousands of times a
//! second.
//!
//! The store forgets every copy when it commits a change to any of them, so a change made
//! through this process is seen at once, whichever route or task made it; another replica's
//! change is seen after at most the cache's lifetime (a revoked token works there that long).
//! Only found rows are kept, so unknown tokens cannot fill the cache.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::{AdapterRecord, ApiToken, Owner, PolicyRecord, StoreResult};

/// Entries per kind before the cache starts over (a bound, never reached by real use).
const MAX_ENTRIES: usize = 10_000;

/// The cached reads (not `Debug`: token hashes are its keys).
pub(crate) struct DirectoryCache {
    ttl: Duration,
    /// Moves on every change, so that a read that began before it is not kept.
    generation: AtomicU64,
    pub(crate) tokens: Entries<Option<ApiToken>>,
    pub(crate) owners: Entries<Owner>,
    pub(crate) adapters: Entries<AdapterRecord>,
    pub(crate) policies: Entries<Option<PolicyRecord>>,
}

pub(crate) struct Entries<V>(Mutex<HashMap<String, (Instant, V)>>);

impl<V: Clone> Entries<V> {
    fn new() -> Self {
        Entries(Mutex::new(HashMap::new()))
    }

    fn get(&self, key: &str, ttl: Duration) -> Option<V> {
        let entries = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(key).filter(|(at, _)| at.elapsed() < ttl).map(|(_, v)| v.clone())
    }

    /// Keeps `value` unless `generation` has moved since `read_at` (checked under the lock
    /// that [`DirectoryCache::forget`] clears under, after moving it).
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

impl DirectoryCache {
    /// Copies kept for `ttl`; zero keeps none.
    pub(crate) fn new(ttl: Duration) -> DirectoryCache {
        DirectoryCache {
            ttl,
            generation: AtomicU64::new(0),
            tokens: Entries::new(),
            owners: Entries::new(),
            adapters: Entries::new(),
            policies: Entries::new(),
        }
    }

    /// Forgets every copy: every committed change of a token, owner, adapter or policy calls
    /// it (through [`crate::SqlStore::directory_changed`]).
    pub(crate) fn forget(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.tokens.clear();
        self.owners.clear();
        self.adapters.clear();
        self.policies.clear();
    }

    /// The copy of `key`, or `read`'s answer, kept if `keep` says so and no change came
    /// meanwhile.
    pub(crate) async fn cached<V: Clone>(
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
