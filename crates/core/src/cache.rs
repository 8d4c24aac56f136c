//! The byte-level [`Cache`] trait every backend implements.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{Key, Result};

/// A byte-level cache backend: in-process (`authcache-memory`), Redis or Redis Cluster
/// (`authcache-redis`).
///
/// Object safe, so a backend chosen from configuration at run time is an `Arc<dyn Cache>`.
/// Values are opaque bytes (envelopes written by [`crate::codec`]); a backend never
/// interprets them. Batch forms have default implementations that loop; backends with a
/// native batch command (MGET, pipelines) override them.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Cache: Send + Sync + std::fmt::Debug {
    /// Reads one entry; `Ok(None)` when absent or expired.
    ///
    /// # Errors
    /// [`crate::CacheError::Unavailable`] or [`crate::CacheError::Timeout`] when the backend
    /// cannot answer.
    async fn get(&self, key: &Key) -> Result<Option<Bytes>>;

    /// Writes one entry that expires after `ttl`.
    ///
    /// # Errors
    /// As [`Cache::get`].
    async fn set(&self, key: &Key, value: Bytes, ttl: Duration) -> Result<()>;

    /// Deletes one entry; `Ok(true)` when it existed.
    ///
    /// # Errors
    /// As [`Cache::get`].
    async fn delete(&self, key: &Key) -> Result<bool>;

    /// Writes `value` (expiring after `ttl`) only if the entry still holds exactly
    /// `expected` — `None` meaning absent or expired — and returns whether it wrote. The
    /// comparison and the write are one atomic step on the backend, so any write or
    /// invalidation that lands between the caller's read and this call turns it into a
    /// no-op (`Ok(false)`).
    ///
    /// This is the conditional fill of the coherence protocol (ARCHITECTURE.md,
    /// *Coherence*): a value loaded from the repository is stored only if nobody changed
    /// the key since the load began.
    ///
    /// # Errors
    /// As [`Cache::get`]; the default implementation answers
    /// [`crate::CacheError::Unsupported`], because a backend that cannot compare and set
    /// atomically must not pretend to (callers then skip the fill).
    async fn set_if_unchanged(
        &self,
        key: &Key,
        expected: Option<Bytes>,
        value: Bytes,
        ttl: Duration,
    ) -> Result<bool> {
        let _ = (key, expected, value, ttl);
        Err(crate::CacheError::Unsupported("set_if_unchanged"))
    }

    /// Reads many entries at once; the result has one slot per key, in order.
    ///
    /// # Errors
    /// As [`Cache::get`].
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.get(key).await?);
        }
        Ok(values)
    }

    /// Deletes many entries at once; returns how many existed.
    ///
    /// # Errors
    /// As [`Cache::get`].
    async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        let mut deleted = 0;
        for key in keys {
            deleted += u64::from(self.delete(key).await?);
        }
        Ok(deleted)
    }
}
