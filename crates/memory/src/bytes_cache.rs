//! [`MemoryCache`]: the byte-level in-process backend.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use authcache_core::{Cache, Key, Result};
use bytes::Bytes;
use moka::Expiry;

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
        if ttl.is_zero() {
            self.entries.invalidate(key);
        } else {
            self.entries
                .insert(key.clone(), Stored { bytes: value, ttl });
        }
        Ok(())
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        // `remove` may hand back an expired entry not yet evicted; `contains_key` does not.
        let existed = self.entries.contains_key(key);
        self.entries.invalidate(key);
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use authcache_core::{KeyKind, Keyspace};

    use super::*;

    fn key(id: &str) -> Key {
        Keyspace::default().key(KeyKind::User, id).unwrap()
    }

    async fn put(cache: &MemoryCache, id: &str, value: &'static [u8], ttl: Duration) {
        cache
            .set(&key(id), Bytes::from_static(value), ttl)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn set_get_delete() {
        let cache = MemoryCache::default();
        assert_eq!(cache.get(&key("1")).await.unwrap(), None);
        put(&cache, "1", b"one", Duration::from_secs(60)).await;
        assert_eq!(
            cache.get(&key("1")).await.unwrap().as_deref(),
            Some(&b"one"[..])
        );
        assert_eq!(cache.get(&key("2")).await.unwrap(), None);
        assert!(cache.delete(&key("1")).await.unwrap());
        assert!(!cache.delete(&key("1")).await.unwrap());
        assert_eq!(cache.get(&key("1")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn batch_forms_use_the_defaults() {
        let cache = MemoryCache::default();
        let keys = [key("a"), key("b"), key("c")];
        for k in &keys[..2] {
            cache
                .set(k, Bytes::from_static(b"v"), Duration::from_secs(60))
                .await
                .unwrap();
        }
        let got = cache.get_many(&keys).await.unwrap();
        assert_eq!(got.iter().filter(|v| v.is_some()).count(), 2);
        assert!(got[2].is_none());
        assert_eq!(cache.delete_many(&keys).await.unwrap(), 2);
    }

    #[test]
    fn each_entry_expires_after_its_own_ttl() {
        let stored = |secs| Stored {
            bytes: Bytes::new(),
            ttl: Duration::from_secs(secs),
        };
        let now = Instant::now();
        assert_eq!(
            PerEntryTtl.expire_after_create(&key("1"), &stored(5), now),
            Some(Duration::from_secs(5))
        );
        // An overwrite restarts the clock with the new TTL.
        assert_eq!(
            PerEntryTtl.expire_after_update(
                &key("1"),
                &stored(9),
                now,
                Some(Duration::from_secs(1))
            ),
            Some(Duration::from_secs(9))
        );
        // Reads leave it alone (moka's default for `expire_after_read`).
        assert_eq!(
            PerEntryTtl.expire_after_read(
                &key("1"),
                &stored(9),
                now,
                Some(Duration::from_secs(3)),
                now
            ),
            Some(Duration::from_secs(3))
        );
    }

    #[tokio::test]
    async fn entries_really_expire() {
        let cache = MemoryCache::default();
        put(&cache, "short", b"x", Duration::from_millis(20)).await;
        put(&cache, "long", b"y", Duration::from_secs(600)).await;
        // Bounded poll: moka's clock is the real one.
        let mut expired = false;
        for _ in 0..200 {
            if cache.get(&key("short")).await.unwrap().is_none() {
                expired = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(expired, "a 20 ms entry was still there after 2 s");
        assert!(cache.get(&key("long")).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_zero_ttl_removes() {
        let cache = MemoryCache::default();
        put(&cache, "1", b"x", Duration::from_secs(60)).await;
        put(&cache, "1", b"y", Duration::ZERO).await;
        assert_eq!(cache.get(&key("1")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn it_is_bounded_by_bytes() {
        let cache = MemoryCache::new(20_000);
        let value = Bytes::from(vec![0u8; 100]);
        for n in 0..1_000 {
            cache
                .set(&key(&n.to_string()), value.clone(), Duration::from_secs(60))
                .await
                .unwrap();
        }
        cache.run_pending_tasks();
        assert!(cache.weighted_size() <= 20_000, "{}", cache.weighted_size());
        assert!(cache.entry_count() < 1_000);
        assert!(cache.entry_count() > 0);
        assert_eq!(
            weight(
                &key("1"),
                &Stored {
                    bytes: value,
                    ttl: Duration::ZERO
                }
            ),
            19 + 100 + 64
        );
    }
}
