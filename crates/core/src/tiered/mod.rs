//! [`Tiered`]: one kind of value read through an in-process L1, a shared L2 and a loader.
//!
//! Read path: L1 → L2 → loader, filling both tiers on the way back. Write path: L2 and L1,
//! then the key is published on the invalidation bus. The L2 can fail in any way (down,
//! hung, poisoned) without failing a read: only the loader's errors reach the caller.
//!
//! In L2 each value is stored with its absolute expiry (`(expires_at_unix_ms, Option<T>)`
//! inside the envelope), so that an L1 filled from an L2 hit never outlives the L2 entry,
//! even for values whose TTL was chosen per entry ([`Tiered::set_with_ttl`]).
//!
//! # Loaders
//!
//! Every `get_or_load…` method takes the loader of the id as a closure (`F: Load<V, Fut, E>`
//! in their signatures): any `FnOnce() -> Fut` whose `Fut` answers `Result<Option<V>, E>`,
//! with `E` convertible into `Box<dyn Error + Send + Sync>` (any
//! `std::error::Error + Send + Sync + 'static`, or such a box). `Ok(None)` means the id is
//! known absent. `V` is the tier's `T`, or `(T, Duration)` for
//! [`Tiered::get_or_load_with_ttl`]. The loader runs at most once per id however many
//! callers wait for it (single-flight), under the load timeout
//! ([`TieredBuilder::load_timeout`]).
//!
//! # Stale-if-error and refresh-ahead
//!
//! A value's envelope carries its soft expiry (the kind's TTL); L2 keeps it
//! [`Ttls::stale_grace`] longer. A read past the soft expiry loads as on a miss, but when
//! the loader fails or times out the last value is served instead (`stale_served`) and kept
//! in L1 for [`STALE_RETRY`]. For [`FAILURE_MEMORY`] after a failure *of that id* its
//! expired value is served at once while one background reload retries. Failures are
//! remembered per id (at most [`FAILURE_MEMORY_CAP`] of them), so one record that fails to
//! load never makes another id's expired value be served stale while the loader answers
//! for it. Invalidations tombstone the key, so a value anyone invalidated is never served
//! stale; negative entries and per-entry TTLs ([`Tiered::get_or_load_with_ttl`],
//! [`Tiered::set_with_ttl`]) get no grace.
//!
//! With a [`TieredBuilder::reloader`], a value read in the last [`Ttls::refresh_ahead`]
//! part of its TTL is reloaded in the background by one task while readers keep getting
//! the current value (Caffeine's `refreshAfterWrite`): L1 entries end where that window
//! begins, so the first read in it reaches L2 and starts the reload, whose fill is
//! conditional like any other.
//!
//! # Coherence: no stale fills
//!
//! A value read from the loader before an invalidation completed never lands in either tier
//! after it (ARCHITECTURE.md, *Coherence*, states the protocol and its bound):
//!
//! - an invalidation ([`Tiered::delete`]) does not delete the L2 key: it overwrites it
//!   with a unique [`tombstone`](crate::codec::tombstone()) that lives [`TOMBSTONE_TTL`];
//!   a write ([`Tiered::set`]) overwrites it with the new value;
//! - a fill remembers the exact bytes its L2 read saw (or their absence) and stores its
//!   loaded value with [`Cache::set_if_unchanged`](crate::Cache::set_if_unchanged): if anything wrote the key since the
//!   read — a tombstone or a value, from any instance — the fill is dropped
//!   (`stale_fills`). A load slower than [`FILL_WINDOW`] is not filled at all, so the
//!   tombstones that guard it cannot have expired meanwhile;
//! - in L1, entries are served by the rule of [`crate::versioned`]: every id has a
//!   version that a local write or invalidation (before and after its L2 write) and the bus
//!   eviction of another instance's change move; a fill tags its entry with the version it
//!   read before its L2 read, and a reader serves the entry only while that version is
//!   current. On the calling instance the bound is zero; elsewhere it is the bus delay.
//!
//! # Invalidations the shared tier refused
//!
//! When the L2 refuses an invalidation's tombstone or a write-through's value (a Redis
//! that serves reads but refuses writes: `OOM` under `noeviction`, `MISCONF`, `READONLY`,
//! an ACL without `@write`), [`Tiered::delete`] and [`Tiered::set`] still return the L2's
//! error, but the change is **in force on this instance at once**: the id is *pending*
//! (`core/src/pending.rs` states the protocol), and while it is, its L2 entry is neither read
//! nor filled here — reads go to the loader and keep its answer in L1 only — so nothing
//! from before the change is served here from either tier (a failed write-through's own
//! value is served from L1 meanwhile). An invalidation whose announcement alone failed is
//! pending too. [`Tiered::retry_pending`] writes the owed tombstones and then publishes;
//! each id leaves the set when its retry lands (`pending_invalidations` counts them). Other
//! instances see the change once the retry lands (within the L1 cap for what is in their
//! L1s, since the bus is how they drop it).
//!
//! # How long a value may be served
//!
//! [`Tiered::get_or_load_fetched`] answers a [`Fetched`]: the value and until when it may
//! be served — the deadline of the L1 entry it came from, or what a fresh L1 entry of it
//! would get (an L2 hit's soft expiry capped by the L1 cap, a load's L1 TTL,
//! [`STALE_RETRY`] for a stale value, now for a load that raced a change). Anything
//! remembered from the value (the facade's warm answers) must not outlive it.
//!
//! # Where each mechanism lives
//!
//! This file holds the API ([`Tiered`] and the state it shares with its background
//! tasks); each mechanism has its own file:
//!
//! - `load.rs`: the read path (L1, then L2, then the loader) and the loader contract;
//! - `flight.rs`: single-flight, one load per id in the air;
//! - `l2.rs`: the shared-tier protocol (read, decode, encode, conditional fill, tombstones,
//!   publish) and the retries of what L2 refused;
//! - `generations.rs`: the versions L1 entries are tagged with and served by;
//! - `refresh.rs`: stale-if-error, per-id failure memory and refresh-ahead;
//! - `stats.rs`: the counters and their snapshot;
//! - `builder.rs`: [`TieredBuilder`].

use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::breaker::GuardedCache;
use crate::codec::EnvelopeCodec;
use crate::l1::L1Entry;
use crate::pending::Pending;
use crate::ttl::Ttls;
use crate::versioned::{Version, VersionedL1};
use crate::{CacheError, InvalidationPublisher, Key, KeyError, KeyKind, Keyspace};

mod builder;
mod flight;
mod generations;
mod l2;
mod load;
mod refresh;
mod stats;
#[cfg(test)]
mod tests;

pub use builder::{DEFAULT_LOAD_TIMEOUT, TieredBuilder, Validator};
pub use l2::{FILL_WINDOW, TOMBSTONE_TTL};
pub use refresh::{FAILURE_MEMORY, FAILURE_MEMORY_CAP, ReloadFuture, Reloader, STALE_RETRY};
pub use stats::{TierStats, TierStatsSnapshot};

use flight::Flight;
use load::{Load, Trust};
use refresh::Failures;

/// Why [`Tiered::get_or_load`] could not produce an answer. Cheap to clone: every waiter of
/// a coalesced load receives the same error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The id cannot be a cache key; nothing was looked up.
    #[error("invalid id: {0}")]
    InvalidId(#[from] KeyError),
    /// The loader failed.
    #[error("loader failed: {0}")]
    Loader(Arc<dyn Error + Send + Sync>),
    /// The loader did not answer within the load timeout.
    #[error("loader timed out after {0:?}")]
    Timeout(Duration),
}

impl LoadError {
    /// The loader's error as its concrete type, when it is an `E`.
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        match self {
            Self::Loader(error) => error.downcast_ref::<E>(),
            Self::InvalidId(_) | Self::Timeout(_) => None,
        }
    }
}

/// A value served by [`Tiered::get_or_load_fetched`], and until when it may be served.
#[derive(Debug)]
#[non_exhaustive]
pub struct Fetched<T> {
    /// The value; `None` when it is known absent.
    pub value: Option<Arc<T>>,
    /// Until when (tokio's clock) the value may be served without asking the tier again:
    /// for an L1 hit, the deadline of the entry; for an L2 hit, its soft expiry capped by
    /// the L1 cap (and by the start of its refresh-ahead window); for a load, the L1 TTL
    /// it was kept with; for a value served stale, [`STALE_RETRY`] from now; for a load
    /// that raced a change of the id (or was not cached), now: served once, never kept.
    pub until: Instant,
}

impl<T> Fetched<T> {
    fn new(value: Option<Arc<T>>, until: Instant) -> Self {
        Self { value, until }
    }

    /// From an L1 hit: until the entry's deadline (now, for an entry without one).
    fn from_entry(entry: L1Entry<T>) -> Self {
        let until = entry.expires_at().unwrap_or_else(Instant::now);
        Self::new(entry.into_value(), until)
    }

    /// How long the value may still be served: zero once [`Fetched::until`] has passed.
    pub fn remaining(&self) -> Duration {
        self.until.saturating_duration_since(Instant::now())
    }
}

// Manual: deriving would require `T: Clone`, but only the `Arc` is cloned.
impl<T> Clone for Fetched<T> {
    fn clone(&self) -> Self {
        Self::new(self.value.clone(), self.until)
    }
}

/// What every caller of one flight receives.
type Outcome<T> = Result<Fetched<T>, LoadError>;

/// One kind of value (user records, per-role permissions) cached in an L1 of decoded
/// values and an L2 of envelopes, loaded on a miss with single-flight.
///
/// Cheap to share: the state lives behind one `Arc`, which background refreshes hold too.
pub struct Tiered<T> {
    core: Arc<Core<T>>,
}

/// Everything a [`Tiered`] holds; background refreshes keep it alive while they run.
struct Core<T> {
    kind: KeyKind,
    keyspace: Keyspace,
    ttls: Ttls,
    /// The L1 and the versions it serves by: bumped by every write, delete and eviction,
    /// so that nothing read before one of them is served after it (see
    /// [`crate::versioned`]).
    l1: VersionedL1<T>,
    l2: Option<Arc<GuardedCache>>,
    codec: EnvelopeCodec,
    publisher: Option<Arc<dyn InvalidationPublisher>>,
    load_timeout: Duration,
    validate: Option<Validator<T>>,
    reloader: Option<Reloader<T>>,
    /// The loads in the air, one per id (`flight.rs` says why a cell per id).
    flights: Mutex<HashMap<Arc<str>, Arc<Flight<T>>>>,
    /// Ids being reloaded in the background: one reload per id at a time.
    refreshing: Mutex<HashSet<Arc<str>>>,
    /// When the loader last failed, per id (see [`FAILURE_MEMORY`]).
    failures: Failures,
    /// Ids whose invalidation did not land in L2 or on the bus (see [`crate::pending`]).
    pending: Pending,
    stats: TierStats,
}

impl<T> fmt::Debug for Tiered<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let core = &self.core;
        f.debug_struct("Tiered")
            .field("kind", &core.kind)
            .field("keyspace", &core.keyspace)
            .field("ttls", &core.ttls)
            .field("l1", &core.l1)
            .field("l2", &core.l2.is_some())
            .field("publisher", &core.publisher.is_some())
            .field("reloader", &core.reloader.is_some())
            .field("stats", &core.stats.snapshot())
            .finish_non_exhaustive()
    }
}

impl<T> Tiered<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Starts building the tier of `kind`.
    pub fn builder(kind: KeyKind) -> TieredBuilder<T> {
        TieredBuilder::new(kind)
    }

    /// The kind of value this tier holds.
    pub fn kind(&self) -> KeyKind {
        self.core.kind
    }

    /// The L2 key of `id`.
    ///
    /// # Errors
    /// The [`KeyError`] when `id` is not a valid id.
    pub fn key(&self, id: &str) -> Result<Key, KeyError> {
        self.core.key(id)
    }

    /// What has changed about `id` here so far: answers derived from this tier can be
    /// remembered elsewhere with it, and trusted while it reads the same.
    pub fn version(&self, id: &str) -> Version {
        self.core.l1.version(id)
    }

    /// What has changed about any id here so far: moved by every write, invalidation and
    /// eviction of the tier. Answers derived from several of its values (a user's
    /// permissions, from their roles') are remembered with it.
    pub fn epoch(&self) -> Version {
        self.core.l1.epoch()
    }

    /// Counters, the loads in flight and the L2 breaker's state.
    pub fn stats(&self) -> TierStatsSnapshot {
        TierStatsSnapshot {
            breaker: self.core.l2.as_ref().map(|l2| l2.stats()),
            in_flight: self.core.lock_flights().len() as u64,
            pending_invalidations: self.core.pending.len() as u64,
            ..self.core.stats.snapshot()
        }
    }

    /// The value of `id`: from L1, else L2, else `load` (whose answer fills both, with the
    /// kind's TTL; `Ok(None)` is cached as "known absent" with the negative TTL).
    /// Concurrent calls for one id run `load` once and all get its result. `load` is a
    /// closure returning a future (see [Loaders](self#loaders)).
    ///
    /// When `load` fails and the value expired less than [`Ttls::stale_grace`] ago, the
    /// last value is served instead (counted in `stale_served`). A value read in the last
    /// [`Ttls::refresh_ahead`] part of its TTL is reloaded in the background by the
    /// [`TieredBuilder::reloader`], when one is set.
    ///
    /// # Errors
    /// [`LoadError::InvalidId`] for an id that cannot be keyed, [`LoadError::Loader`] when
    /// the load fails, [`LoadError::Timeout`] when it outlives the load timeout. Cache
    /// trouble is never an error: it is a miss.
    pub async fn get_or_load<F, Fut, E>(
        &self,
        id: &str,
        load: F,
    ) -> Result<Option<Arc<T>>, LoadError>
    where
        F: Load<T, Fut, E>,
    {
        let fetched = self.get_or_load_fetched(id, load).await?;
        Ok(fetched.value)
    }

    /// As [`Tiered::get_or_load`], and says until when the value may be served
    /// ([`Fetched::until`]): what is remembered from it must not outlive it.
    ///
    /// # Errors
    /// As [`Tiered::get_or_load`].
    pub async fn get_or_load_fetched<F, Fut, E>(
        &self,
        id: &str,
        load: F,
    ) -> Result<Fetched<T>, LoadError>
    where
        F: Load<T, Fut, E>,
    {
        self.core.load_plain(id, Trust::Verified, load).await
    }

    /// As [`Tiered::get_or_load`] for an id that did not come from a verified source (an
    /// API caller's input): an absent answer is remembered in L1 only, so a flood of
    /// made-up ids is bounded by the L1's capacity and never grows the shared tier.
    ///
    /// # Errors
    /// As [`Tiered::get_or_load`].
    pub async fn get_or_load_untrusted<F, Fut, E>(
        &self,
        id: &str,
        load: F,
    ) -> Result<Option<Arc<T>>, LoadError>
    where
        F: Load<T, Fut, E>,
    {
        let fetched = self.get_or_load_untrusted_fetched(id, load).await?;
        Ok(fetched.value)
    }

    /// As [`Tiered::get_or_load_untrusted`], and says until when the value may be served
    /// ([`Fetched::until`]).
    ///
    /// # Errors
    /// As [`Tiered::get_or_load`].
    pub async fn get_or_load_untrusted_fetched<F, Fut, E>(
        &self,
        id: &str,
        load: F,
    ) -> Result<Fetched<T>, LoadError>
    where
        F: Load<T, Fut, E>,
    {
        self.core.load_plain(id, Trust::Untrusted, load).await
    }

    /// As [`Tiered::get_or_load`], but the loader also says how long to keep the value
    /// (it answers `Option<(T, Duration)>`): exactly that long in L2 (no jitter, no stale
    /// grace), capped by the L1 cap in L1. For values whose lifetime is bounded by
    /// something else than the kind's TTL.
    ///
    /// # Errors
    /// As [`Tiered::get_or_load`].
    pub async fn get_or_load_with_ttl<F, Fut, E>(
        &self,
        id: &str,
        load: F,
    ) -> Result<Option<Arc<T>>, LoadError>
    where
        F: Load<(T, Duration), Fut, E>,
    {
        let fetched = self.core.load_with_ttl(id, Trust::Verified, load).await?;
        Ok(fetched.value)
    }

    /// The value of `id` if either tier has it, without loading; `None` for absent,
    /// negative, expired and unreadable entries alike.
    ///
    /// # Errors
    /// The [`KeyError`] when `id` is not a valid id.
    pub async fn get(&self, id: &str) -> Result<Option<Arc<T>>, KeyError> {
        self.core.get(id).await
    }

    /// Writes `value` for `id` to both tiers with the kind's TTL ([`Ttls::jittered_for`])
    /// and publishes the key. Unconditional: a write-through is newer than any fill.
    ///
    /// When the L2 refuses the value (or it cannot be encoded), the write is still in force
    /// on this instance: L1 serves `value`, and the id is pending (its L2 entry is neither
    /// read nor filled here) until [`Tiered::retry_pending`] has tombstoned the key and
    /// published it. When only the publish fails, the announcement is pending.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`] for a bad id (nothing happened), [`CacheError::Codec`]
    /// when the value cannot be encoded, or the L2's error: then, as above, the write is in
    /// force here and retried by [`Tiered::retry_pending`].
    pub async fn set(&self, id: &str, value: impl Into<Arc<T>>) -> Result<(), CacheError> {
        let ttl = self.core.ttls.jittered_for(self.core.kind);
        self.core.write(id, Some(value.into()), ttl, true).await
    }

    /// Writes `value` for `id` for exactly `ttl` in L2 (and at most the L1 cap in L1), and
    /// publishes the key. A zero `ttl` invalidates instead. A refused write is in force
    /// here and retried, as for [`Tiered::set`].
    ///
    /// # Errors
    /// As [`Tiered::set`].
    pub async fn set_with_ttl(
        &self,
        id: &str,
        value: impl Into<Arc<T>>,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        self.core.write(id, Some(value.into()), ttl, false).await
    }

    /// Invalidates `id` in both tiers and publishes the key, so that every instance drops
    /// it. In L2 the key gets a [`tombstone`](crate::codec::tombstone()) for
    /// [`TOMBSTONE_TTL`]: loads that began before this call cannot fill it afterwards, and
    /// no stale value of it is served any more.
    ///
    /// When the L2 refuses the tombstone, the invalidation is still in force on this
    /// instance at once: the id is pending, and until [`Tiered::retry_pending`] has written
    /// the tombstone and published the key, its L2 entry is neither read nor filled here
    /// (reads go to the loader and keep its answer in L1 only). When only the publish
    /// fails, the announcement is pending and retried the same way.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`] for a bad id (nothing happened), or the L2's error: the
    /// invalidation is then in force on this instance, published if the bus took it, and
    /// retried by [`Tiered::retry_pending`] until it lands.
    pub async fn delete(&self, id: &str) -> Result<(), CacheError> {
        self.core.delete(id).await
    }

    /// Retries every invalidation and write-through of this tier that did not fully land
    /// (see [`Tiered::delete`]): writes the owed tombstone, then publishes the key. An id
    /// leaves the pending set when both land, unless a newer failure of the same id was
    /// recorded meanwhile. Stops at the first failure (the L2 or the bus is still
    /// refusing; each id's calls get one L2 budget), leaving the rest for the next call.
    /// Call it periodically while [`TierStatsSnapshot::pending_invalidations`] is not zero.
    ///
    /// Returns how many ids are still pending afterwards: zero once everything landed.
    pub async fn retry_pending(&self) -> usize {
        self.core.retry_pending().await
    }

    /// Drops `id` from this instance's L1 only (another instance changed it).
    pub fn evict_local(&self, id: &str) {
        self.core.invalidate_local(id);
    }

    /// Drops this instance's whole L1 (invalidations may have been missed).
    pub fn clear_local(&self) {
        self.core.invalidate_all_local();
    }
}

impl<T> Core<T> {
    fn key(&self, id: &str) -> Result<Key, KeyError> {
        self.keyspace.key(self.kind, id)
    }
}
