//! The invalidation bus contract: how one instance tells the others to drop a key from
//! their in-process tier. `authcache-redis` implements it on Redis pub/sub.

use async_trait::async_trait;

use crate::{Key, Result};

/// Publishes invalidated keys to every instance sharing the L2.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait InvalidationPublisher: Send + Sync + std::fmt::Debug {
    /// Announces that `key` changed or was deleted; subscribers drop it from their L1.
    ///
    /// # Errors
    /// [`crate::CacheError::Unavailable`] or [`crate::CacheError::Timeout`] when the bus
    /// cannot be reached. Callers treat this as best effort: the L1 cap bounds staleness.
    async fn publish(&self, key: &Key) -> Result<()>;
}

/// What a subscriber hands to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BusEvent {
    /// Another instance invalidated this key (the raw key string, as published).
    Invalidated(String),
    /// The subscription dropped and was re-established: messages may have been missed,
    /// so the owner must clear its whole L1.
    Resubscribed,
}
