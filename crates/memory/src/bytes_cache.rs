//! [`MemoryCache`]: the byte-level in-process backend.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use authcache_core::{Cache, Key, Result};
use bytes::Bytes;
use moka::Expiry;
use moka::ops::compute::{CompResult, Op};

/// 64 MiB: room for about a hundred thousand users with their roles and permissions.
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;

/// Fixed cost charged per entry on top of its key and value: moka's own bookkeeping, so
/// that a flood of tiny entries is bounded too.
const ENTRY_OVERHEAD: usize = 64;

#[derive(Debug, Clone)]
struct Stored {
    bytes: Bytes,
    ttl: Duration,
}

/// Expires each entry after the TTL it was written with.
struct PerEntryTtl;

impl Expiry<Key, Stored> for PerEntryTtl {
    fn expire_after_create(&self, _: &Key, stored: &Stored, _: Instant) -> Option<Duration> {
        Some(stored.ttl)
    }

    fn expire_after_update(
        &self,
        _: &Key,
        stored: &Stored,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(stored.ttl)
    }
}

/// A bounded in-process [`Cache`] of bytes: at most `max_bytes` of keys and values
/// (least-recently/frequently used entries are evicted first), each expiring after the
/// TTL it was written with.
///
/// Every write (`set`, `delete`, `set_if_unchanged`) goes through moka's entry API, which
/// serialises operations on one key with a per-key lock: that is what makes
/// `set_if_unchanged` atomic. A plain `insert` or `invalidate` would not wait for that lock
/// and could land between a conditional fill's comparison and its write, so none is used.
#[derive(Debug, Clone)]
pub struct MemoryCache {
    entries: moka::sync::Cache<Key, Stored>,
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_BYTES)
    }
}

impl MemoryCache {
    /// A cache holding at most `max_bytes` (keys, values and a small per-entry overhead).
    pub fn new(max_bytes: u64) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &Key, stored: &Stored| weight(key, stored))
            .expire_after(PerEntryTtl)
            .build();
        Self { entries }
    }

    /// Entries currently held (approximate until pending maintenance has run).
    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    /// Bytes currently held, as weighed (approximate until pending maintenance has run).
    pub fn weighted_size(&self) -> u64 {
        self.entries.weighted_size()
    }

    /// Runs moka's pending maintenance (evictions, expirations) now.
    pub fn run_pending_tasks(&self) {
        self.entries.run_pending_tasks();
    }
}

fn weight(key: &Key, stored: &Stored) -> u32 {
    let bytes = key.as_str().len() + stored.bytes.len() + ENTRY_OVERHEAD;
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        Ok(self.entries.get(key).map(|stored| stored.bytes))
    }

    async fn set(&self, key: &Key, value: Bytes, ttl: Duration) -> Result<()> {
        self.entries
            .entry_by_ref(key)
            .and_compute_with(|_| write(value, ttl));
        Ok(())
    }

    /// A zero `ttl` makes it a conditional delete, as a zero `ttl` makes [`Cache::set`] a
    /// delete. An expired entry not yet evicted is absent here, exactly as for `get`.
    async fn set_if_unchanged(
        &self,
        key: &Key,
        expected: Option<Bytes>,
        value: Bytes,
        ttl: Duration,
    ) -> Result<bool> {
        let mut unchanged = false;
        self.entries.entry_by_ref(key).and_compute_with(|current| {
            unchanged = current.as_ref().map(|entry| &entry.value().bytes) == expected.as_ref();
            if unchanged {
                write(value, ttl)
            } else {
                Op::Nop
            }
        });
        Ok(unchanged)
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        // The closure sees a live entry or none (never an expired one awaiting eviction), so
        // only a live entry is removed and reported.
        let result = self.entries.entry_by_ref(key).and_compute_with(|current| {
            if current.is_some() {
                Op::Remove
            } else {
                Op::Nop
            }
        });
        Ok(matches!(result, CompResult::Removed(_)))
    }
}

/// The operation that stores `value` for `ttl`: a zero TTL removes the entry instead, since
/// an entry that expires at once is the same as none.
fn write(value: Bytes, ttl: Duration) -> Op<Stored> {
    if ttl.is_zero() {
        Op::Remove
    } else {
        Op::Put(Stored { bytes: value, ttl })
    }
}

#[cfg(test)]
mod tests;
