//! Locks that keep two workers off the same thing: in-process now; the distributed mode puts
//! Redis behind the same trait.

use std::collections::HashSet;
use std::sync::Mutex;

use async_trait::async_trait;

/// Ensures only one scheduler acts on a managed certificate at a time. In-process now; the
/// distributed mode puts a Redis implementation behind the same trait.
#[async_trait]
pub trait RenewalLock: Send + Sync {
    /// Takes the lock on `key` for at most `ttl_secs`; false if someone holds it.
    async fn acquire(&self, key: &str, ttl_secs: u64) -> bool;
    async fn release(&self, key: &str);
}

/// A lock for one process.
#[derive(Debug, Default)]
pub struct InProcessLock {
    held: Mutex<HashSet<String>>,
}

#[async_trait]
impl RenewalLock for InProcessLock {
    async fn acquire(&self, key: &str, _ttl_secs: u64) -> bool {
        self.held.lock().map(|mut held| held.insert(key.to_string())).unwrap_or(false)
    }

    async fn release(&self, key: &str) {
        if let Ok(mut held) = self.held.lock() {
            held.remove(key);
        }
    }
}
