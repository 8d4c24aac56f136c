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
    /// The owner's [`Keyspace`](crate::Keyspace) moved to a higher epoch (raised here, or
    /// adopted from the shared cache): every entry held in process was read under keys
    /// nobody reads any more, so the owner must clear its whole L1. Marks, which live
    /// outside epochs, stay. Never sent by a subscriber: the owner's epoch follower hands
    /// it over once the new epoch is in the keyspace.
    EpochRaised,
}
