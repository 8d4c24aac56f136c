//! [`Tiered`]: one kind of value read through an in-process L1, a shared L2 and a loader.
//!
//! Read path: L1 → L2 → loader, filling both tiers on the way back. Write path: L2 and L1,
//! then the key is published on the invalidation bus. The L2 can fail in any way (down,
//! hung, poisoned) without failing a read: only the loader's errors reach the caller.
//!
//! In L2 each value is stored with its absolute expiry (`(expires_at_unix_ms, Option<T>)`
//! inside the envelope), so that an L1 filled from an L2 hit never outlives the L2 entry,
//! even for values whose TTL was chosen per entry (a token's remaining lifetime).

use std::collections::HashMap;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use crate::breaker::{BreakerStats, DEFAULT_TIMEOUT, GuardedCache};
use crate::codec::EnvelopeCodec;
use crate::l1::{L1Cache, L1Entry};
use crate::ttl::Ttls;
use crate::{Cache, CacheError, InvalidationPublisher, Key, KeyError, KeyKind, Keyspace};

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
}

impl LoadError {
    /// The loader's error as its concrete type, when it is an `E`.
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        match self {
            Self::Loader(error) => error.downcast_ref::<E>(),
            Self::InvalidId(_) => None,
        }
    }
}

/// Live counters of one tier (plain atomics, relaxed: they are statistics, not
/// synchronisation).
#[derive(Debug, Default)]
pub struct TierStats {
    l1_hits: AtomicU64,
    l2_hits: AtomicU64,
    misses: AtomicU64,
    loads: AtomicU64,
    load_errors: AtomicU64,
    coalesced: AtomicU64,
    decode_failures: AtomicU64,
    encode_failures: AtomicU64,
    l2_errors: AtomicU64,
    publish_errors: AtomicU64,
}

/// A copy of [`TierStats`] at one moment, with the L2 breaker's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierStatsSnapshot {
    /// Answers served from L1 (values and negative entries).
    pub l1_hits: u64,
    /// Answers served from L2.
    pub l2_hits: u64,
    /// Lookups neither tier could answer.
    pub misses: u64,
    /// Loader calls.
    pub loads: u64,
    /// Loader calls that failed.
    pub load_errors: u64,
    /// Callers that joined another caller's load of the same id instead of starting one.
    pub coalesced: u64,
    /// L2 entries that failed to decode or verify (each was deleted and read as a miss).
    pub decode_failures: u64,
    /// Values that could not be encoded for L2 (too large, unrepresentable).
    pub encode_failures: u64,
    /// L2 calls that failed, timed out or were skipped by the open breaker.
    pub l2_errors: u64,
    /// Invalidations that could not be published.
    pub publish_errors: u64,
    /// The L2 breaker, when there is an L2.
    pub breaker: Option<BreakerStats>,
}

impl TierStats {
    /// The counters now (`breaker` is `None`; [`Tiered::stats`] fills it in).
    pub fn snapshot(&self) -> TierStatsSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        TierStatsSnapshot {
            l1_hits: get(&self.l1_hits),
            l2_hits: get(&self.l2_hits),
            misses: get(&self.misses),
            loads: get(&self.loads),
            load_errors: get(&self.load_errors),
            coalesced: get(&self.coalesced),
            decode_failures: get(&self.decode_failures),
            encode_failures: get(&self.encode_failures),
            l2_errors: get(&self.l2_errors),
            publish_errors: get(&self.publish_errors),
            breaker: None,
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

type Outcome<T> = Result<Option<Arc<T>>, LoadError>;

/// One in-flight load of one id; every caller that finds it waits on the same cell.
type Flight<T> = OnceCell<Outcome<T>>;

/// Builds a [`Tiered`]; see [`Tiered::builder`].
pub struct TieredBuilder<T> {
    kind: KeyKind,
    keyspace: Keyspace,
    ttls: Ttls,
    l1: Option<Arc<dyn L1Cache<T>>>,
    l2: Option<Arc<GuardedCache>>,
    codec: EnvelopeCodec,
    publisher: Option<Arc<dyn InvalidationPublisher>>,
}

impl<T> fmt::Debug for TieredBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TieredBuilder")
            .field("kind", &self.kind)
            .field("keyspace", &self.keyspace)
            .finish_non_exhaustive()
    }
}

impl<T> TieredBuilder<T> {
    /// The keyspace of L2 keys (default: [`Keyspace::default`]).
    pub fn keyspace(mut self, keyspace: Keyspace) -> Self {
        self.keyspace = keyspace;
        self
    }

    /// The TTL policy (default: [`Ttls::default`]).
    pub fn ttls(mut self, ttls: &Ttls) -> Self {
        self.ttls = ttls.clone();
        self
    }

    /// The in-process tier (default: none).
    pub fn l1(mut self, l1: Arc<dyn L1Cache<T>>) -> Self {
        self.l1 = Some(l1);
        self
    }

    /// The shared tier, behind its breaker (default: none). Share one [`GuardedCache`]
    /// between all tiers on the same backend.
    pub fn l2(mut self, l2: Arc<GuardedCache>) -> Self {
        self.l2 = Some(l2);
        self
    }

    /// The envelope codec for L2 entries (default: bincode, unsigned).
    pub fn codec(mut self, codec: EnvelopeCodec) -> Self {
        self.codec = codec;
        self
    }

    /// Where writes and deletes announce their key (default: nowhere).
    pub fn publisher(mut self, publisher: Arc<dyn InvalidationPublisher>) -> Self {
        self.publisher = Some(publisher);
        self
    }

    /// The tier.
    pub fn build(self) -> Tiered<T> {
        Tiered {
            kind: self.kind,
            keyspace: self.keyspace,
            ttls: self.ttls,
            l1: self.l1,
            l2: self.l2,
            codec: self.codec,
            publisher: self.publisher,
            flights: Mutex::default(),
            generation: AtomicU64::new(0),
            stats: TierStats::default(),
        }
    }
}

/// One kind of value (user, roles, permissions, token validation, revocation) cached in
/// an L1 of decoded values and an L2 of envelopes, loaded on a miss with single-flight.
pub struct Tiered<T> {
    kind: KeyKind,
    keyspace: Keyspace,
    ttls: Ttls,
    l1: Option<Arc<dyn L1Cache<T>>>,
    l2: Option<Arc<GuardedCache>>,
    codec: EnvelopeCodec,
    publisher: Option<Arc<dyn InvalidationPublisher>>,
    /// Single-flight: a per-id `tokio::sync::OnceCell` rather than moka's
    /// `try_get_with`, because the flight must cover the L2 read as well as the loader,
    /// because moka's sync cache would block the thread while an async loader runs, and
    /// because the L1 is any [`L1Cache`] (or none). A cell whose initialising caller is
    /// cancelled is initialised by the next waiter, so cancellation never strands anyone.
    flights: Mutex<HashMap<Arc<str>, Arc<Flight<T>>>>,
    /// Bumped by every write, delete and eviction: a load that started before one does not
    /// fill the tiers with what it read, which may be older than the write.
    generation: AtomicU64,
    stats: TierStats,
}

impl<T> fmt::Debug for Tiered<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tiered")
            .field("kind", &self.kind)
            .field("keyspace", &self.keyspace)
            .field("ttls", &self.ttls)
            .field("l1", &self.l1)
            .field("l2", &self.l2.is_some())
            .field("publisher", &self.publisher.is_some())
            .field("stats", &self.stats.snapshot())
            .finish_non_exhaustive()
    }
}

impl<T> Tiered<T> {
    fn lock_flights(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<Flight<T>>>> {
        // The map is only ever inserted into or removed from; a panic cannot leave it
        // half-updated.
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What an L2 lookup found.
enum L2Read<T> {
    Hit(L2Hit<T>),
    /// Absent, expired or undecodable.
    Miss,
    /// The backend failed, timed out or was skipped.
    Failed,
}

/// A decoded L2 entry.
struct L2Hit<T> {
    value: Option<Arc<T>>,
    remaining: Duration,
}

impl<T> Tiered<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Starts building the tier of `kind`.
    pub fn builder(kind: KeyKind) -> TieredBuilder<T> {
        TieredBuilder {
            kind,
            keyspace: Keyspace::default(),
            ttls: Ttls::default(),
            l1: None,
            l2: None,
            codec: EnvelopeCodec::default(),
            publisher: None,
        }
    }

    /// The kind of value this tier holds.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The L2 key of `id`.
    ///
    /// # Errors
    /// The [`KeyError`] when `id` is not a valid id.
    pub fn key(&self, id: &str) -> Result<Key, KeyError> {
        self.keyspace.key(self.kind, id)
    }

    /// Counters and the L2 breaker's state.
    pub fn stats(&self) -> TierStatsSnapshot {
        TierStatsSnapshot {
            breaker: self.l2.as_ref().map(|l2| l2.stats()),
            ..self.stats.snapshot()
        }
    }

    /// The value of `id`: from L1, else L2, else `load` (whose answer fills both, with the
    /// kind's TTL; `Ok(None)` is cached as "known absent" with the negative TTL).
    /// Concurrent calls for one id run `load` once and all get its result.
    ///
    /// # Errors
    /// [`LoadError::InvalidId`] for an id that cannot be keyed, [`LoadError::Loader`] when
    /// the load fails. Cache trouble is never an error: it is a miss.
    pub async fn get_or_load<F, Fut, E>(
        &self,
        id: &str,
        load: F,
    ) -> Result<Option<Arc<T>>, LoadError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
        E: Into<Box<dyn Error + Send + Sync>>,
    {
        self.load_through(id, move || async move {
            load().await.map(|found| found.map(|value| (value, None)))
        })
        .await
    }

    /// As [`Tiered::get_or_load`], but the loader also says how long to keep the value:
    /// exactly that long in L2 (no jitter), capped by the L1 cap in L1. For values whose
    /// lifetime is bounded by something else, such as a token's `exp`.
    ///
    /// # Errors
    /// As [`Tiered::get_or_load`].
    pub async fn get_or_load_with_ttl<F, Fut, E>(
        &self,
        id: &str,
        load: F,
    ) -> Result<Option<Arc<T>>, LoadError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<(T, Duration)>, E>>,
        E: Into<Box<dyn Error + Send + Sync>>,
    {
        self.load_through(id, move || async move {
            load()
                .await
                .map(|found| found.map(|(value, ttl)| (value, Some(ttl))))
        })
        .await
    }

    /// The value of `id` if either tier has it, without loading; `None` for absent,
    /// negative and unreadable entries alike.
    ///
    /// # Errors
    /// The [`KeyError`] when `id` is not a valid id.
    pub async fn get(&self, id: &str) -> Result<Option<Arc<T>>, KeyError> {
        if let Some(entry) = self.l1_get(id) {
            return Ok(entry.into_value());
        }
        let key = self.key(id)?;
        let generation = self.generation.load(Ordering::Acquire);
        match self.l2_read(&key).await {
            L2Read::Hit(hit) => {
                self.l1_fill_from_l2(id, &hit, generation);
                Ok(hit.value)
            }
            L2Read::Miss | L2Read::Failed => {
                bump(&self.stats.misses);
                Ok(None)
            }
        }
    }

    /// Writes `value` for `id` to both tiers with the kind's TTL ([`Ttls::jittered_for`]) and publishes
    /// the key.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`] for a bad id, [`CacheError::Codec`] when the value cannot
    /// be encoded, or the L2's error; the L1 never keeps a value the L2 refused.
    pub async fn set(&self, id: &str, value: impl Into<Arc<T>>) -> Result<(), CacheError> {
        let ttl = self.ttls.jittered_for(self.kind);
        self.write(id, Some(value.into()), ttl).await
    }

    /// Writes `value` for `id` for exactly `ttl` in L2 (and at most the L1 cap in L1), and
    /// publishes the key. A zero `ttl` deletes instead.
    ///
    /// # Errors
    /// As [`Tiered::set`].
    pub async fn set_with_ttl(
        &self,
        id: &str,
        value: impl Into<Arc<T>>,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        self.write(id, Some(value.into()), ttl).await
    }

    /// Removes `id` from both tiers and publishes the key, so that every instance drops it.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`] for a bad id, or the L2's error (the L1 entry is gone
    /// regardless and the key is published regardless).
    pub async fn delete(&self, id: &str) -> Result<(), CacheError> {
        let key = self.key(id)?;
        self.invalidate_local(id);
        let result = match &self.l2 {
            Some(l2) => l2.delete(&key).await.map(drop),
            None => Ok(()),
        };
        if result.is_err() {
            bump(&self.stats.l2_errors);
        }
        self.publish(&key).await;
        result
    }

    /// Drops `id` from this instance's L1 only (another instance changed it).
    pub fn evict_local(&self, id: &str) {
        self.invalidate_local(id);
    }

    /// Drops this instance's whole L1 (invalidations may have been missed).
    pub fn clear_local(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.lock_flights().clear();
        if let Some(l1) = &self.l1 {
            l1.clear();
        }
    }

    fn invalidate_local(&self, id: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        // Later callers must not join a load that started before the change.
        self.lock_flights().remove(id);
        if let Some(l1) = &self.l1 {
            l1.remove(id);
        }
    }

    fn l1_get(&self, id: &str) -> Option<L1Entry<T>> {
        let entry = self.l1.as_ref()?.get(id)?;
        bump(&self.stats.l1_hits);
        Some(entry)
    }

    async fn load_through<F, Fut, E>(&self, id: &str, load: F) -> Outcome<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<(T, Option<Duration>)>, E>>,
        E: Into<Box<dyn Error + Send + Sync>>,
    {
        if let Some(entry) = self.l1_get(id) {
            return Ok(entry.into_value());
        }
        let key = self.key(id)?;
        let flight = self.join_flight(id);
        flight
            .cell
            .get_or_init(|| self.fetch(id, &key, load))
            .await
            .clone()
    }

    /// The L2 read and the load, run once per flight.
    async fn fetch<F, Fut, E>(&self, id: &str, key: &Key, load: F) -> Outcome<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<(T, Option<Duration>)>, E>>,
        E: Into<Box<dyn Error + Send + Sync>>,
    {
        let generation = self.generation.load(Ordering::Acquire);
        let l2_usable = match self.l2_read(key).await {
            L2Read::Hit(hit) => {
                self.l1_fill_from_l2(id, &hit, generation);
                return Ok(hit.value);
            }
            L2Read::Miss => true,
            // A backend that just failed (or hung) is not written to in the same call:
            // a request pays for at most one L2 timeout.
            L2Read::Failed => false,
        };
        bump(&self.stats.misses);
        bump(&self.stats.loads);
        let loaded = load().await.map_err(|error| {
            bump(&self.stats.load_errors);
            LoadError::Loader(Arc::from(error.into()))
        })?;
        let (value, ttl) = match loaded {
            Some((value, ttl)) => {
                let ttl = ttl.unwrap_or_else(|| self.ttls.jittered_for(self.kind));
                (Some(Arc::new(value)), ttl)
            }
            None => (None, self.ttls.jittered(self.ttls.negative)),
        };
        // Filling is best effort: the answer is good whether or not it was cached.
        let current = self.generation.load(Ordering::Acquire) == generation;
        match (current, l2_usable) {
            (true, true) => {
                let refused = self.store(key, id, value.as_ref(), ttl).await.is_err();
                // L2 refused the fill (it died after the read): the answer is still good, and
                // without it in L1 every request would reach the loader until L2 is back. The
                // L1 cap bounds its staleness, as it does for missed bus messages.
                if refused && self.generation.load(Ordering::Acquire) == generation {
                    self.l1_insert(id, value.clone(), ttl);
                }
            }
            (true, false) => self.l1_insert(id, value.clone(), ttl),
            (false, _) => {}
        }
        Ok(value)
    }

    /// Reads and decodes the L2 entry; every failure is a miss. Undecodable entries are
    /// deleted so the next reader does not trip over them again.
    async fn l2_read(&self, key: &Key) -> L2Read<T> {
        let Some(l2) = &self.l2 else {
            return L2Read::Miss;
        };
        let bytes = match l2.get(key).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return L2Read::Miss,
            Err(error) => {
                self.note_l2_error(key, &error);
                return L2Read::Failed;
            }
        };
        match self.codec.decode::<(u64, Option<T>)>(&bytes) {
            Ok((expires_at, value)) => {
                let remaining = Duration::from_millis(expires_at.saturating_sub(unix_ms()));
                if remaining.is_zero() {
                    return L2Read::Miss;
                }
                bump(&self.stats.l2_hits);
                L2Read::Hit(L2Hit {
                    value: value.map(Arc::new),
                    remaining,
                })
            }
            Err(error) => {
                bump(&self.stats.decode_failures);
                tracing::warn!(key = %key, %error, "undecodable cache entry, deleting it");
                if let Err(error) = l2.delete(key).await {
                    self.note_l2_error(key, &error);
                }
                L2Read::Miss
            }
        }
    }

    fn l1_fill_from_l2(&self, id: &str, hit: &L2Hit<T>, generation: u64) {
        if self.generation.load(Ordering::Acquire) == generation {
            self.l1_insert(id, hit.value.clone(), hit.remaining);
        }
    }

    fn l1_insert(&self, id: &str, value: Option<Arc<T>>, l2_ttl: Duration) {
        let ttl = self.ttls.l1_ttl(l2_ttl);
        if let Some(l1) = self.l1.as_ref().filter(|_| !ttl.is_zero()) {
            l1.insert(id, L1Entry::from(value), ttl);
        }
    }

    /// Writes to L2 (with the absolute expiry) and then L1. On an L2 failure the L1 is
    /// left without the entry, so the tiers never disagree for long.
    async fn store(
        &self,
        key: &Key,
        id: &str,
        value: Option<&Arc<T>>,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        if let Some(l2) = &self.l2 {
            let expires_at = unix_ms().saturating_add(millis(ttl));
            let entry = self
                .codec
                .encode(&(expires_at, value.map(|value| &**value)))
                .inspect_err(|error| {
                    bump(&self.stats.encode_failures);
                    tracing::warn!(key = %key, %error, "value not cached: cannot encode it");
                })?;
            if let Err(error) = l2.set(key, entry, ttl).await {
                self.note_l2_error(key, &error);
                return Err(error);
            }
        }
        self.l1_insert(id, value.cloned(), ttl);
        Ok(())
    }

    async fn write(
        &self,
        id: &str,
        value: Option<Arc<T>>,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        if ttl.is_zero() {
            return self.delete(id).await;
        }
        let key = self.key(id)?;
        self.invalidate_local(id);
        let result = self.store(&key, id, value.as_ref(), ttl).await;
        self.publish(&key).await;
        result
    }

    async fn publish(&self, key: &Key) {
        let Some(publisher) = &self.publisher else {
            return;
        };
        let limit = self
            .l2
            .as_ref()
            .map_or(DEFAULT_TIMEOUT, |l2| l2.config().timeout);
        let result = match tokio::time::timeout(limit, publisher.publish(key)).await {
            Ok(result) => result,
            Err(_) => Err(CacheError::Timeout(limit)),
        };
        if let Err(error) = result {
            bump(&self.stats.publish_errors);
            tracing::warn!(key = %key, %error, "invalidation not published");
        }
    }

    fn note_l2_error(&self, key: &Key, error: &CacheError) {
        bump(&self.stats.l2_errors);
        if matches!(error, CacheError::CircuitOpen) {
            tracing::debug!(key = %key, "L2 skipped: breaker open");
        } else {
            tracing::warn!(key = %key, %error, "L2 call failed; serving without it");
        }
    }

    fn join_flight<'t>(&'t self, id: &'t str) -> FlightGuard<'t, T> {
        let mut flights = self.lock_flights();
        let cell = match flights.get(id) {
            Some(cell) => {
                bump(&self.stats.coalesced);
                Arc::clone(cell)
            }
            None => {
                let cell = Arc::new(OnceCell::new());
                flights.insert(Arc::from(id), Arc::clone(&cell));
                cell
            }
        };
        drop(flights);
        FlightGuard {
            tier: self,
            id,
            cell,
        }
    }
}

/// A caller's membership in a flight; the last one out (or the first after the answer
/// is known) removes the flight, unless it was already replaced.
struct FlightGuard<'t, T> {
    tier: &'t Tiered<T>,
    id: &'t str,
    cell: Arc<Flight<T>>,
}

impl<T> Drop for FlightGuard<'_, T> {
    fn drop(&mut self) {
        let mut flights = self.tier.lock_flights();
        let ours = flights
            .get(self.id)
            .is_some_and(|cell| Arc::ptr_eq(cell, &self.cell));
        // Two references: the map's and ours, so nobody else is waiting.
        if ours && (self.cell.initialized() || Arc::strong_count(&self.cell) == 2) {
            flights.remove(self.id);
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::atomic::AtomicUsize;

    use bytes::Bytes;
    use tokio::time::Instant;

    use super::*;
    use crate::breaker::{BreakerConfig, BreakerState, DEFAULT_FAILURE_THRESHOLD};
    use crate::codec::SigningKey;
    use crate::testkit::{FlakyCache, Mode, RecordingL1};
    use crate::{MockCache, MockInvalidationPublisher};

    /// One instance's view: its own L1, a shared L2.
    struct Rig {
        tier: Arc<Tiered<String>>,
        l1: Arc<RecordingL1<String>>,
        l2: Arc<FlakyCache>,
    }

    fn rig_with(l2: Arc<FlakyCache>, ttls: &Ttls) -> Rig {
        let l1 = Arc::new(RecordingL1::default());
        let tier = Tiered::builder(KeyKind::User)
            .ttls(ttls)
            .l1(l1.clone())
            .l2(guarded(l2.clone()))
            .build();
        Rig {
            tier: Arc::new(tier),
            l1,
            l2,
        }
    }

    fn rig() -> Rig {
        rig_with(Arc::default(), &Ttls::default())
    }

    impl Rig {
        /// `get_or_load` with a counting loader that answers `answer` at once.
        async fn load(
            &self,
            id: &str,
            calls: &Arc<AtomicUsize>,
            answer: Option<&str>,
        ) -> Option<Arc<String>> {
            let load = loader(calls, Duration::ZERO, answer);
            self.tier.get_or_load(id, load).await.unwrap()
        }
    }

    fn guarded(l2: Arc<dyn Cache>) -> Arc<GuardedCache> {
        Arc::new(GuardedCache::new(l2, BreakerConfig::default()))
    }

    fn key(id: &str) -> Key {
        Keyspace::default().key(KeyKind::User, id).unwrap()
    }

    /// A loader that counts its calls and answers `value` after `delay`.
    fn loader(
        calls: &Arc<AtomicUsize>,
        delay: Duration,
        value: Option<&str>,
    ) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = io::Result<Option<String>>> + Send>>
    + use<> {
        let calls = Arc::clone(calls);
        let value = value.map(str::to_owned);
        move || {
            Box::pin(async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                Ok(value)
            })
        }
    }

    fn value(found: &Option<Arc<String>>) -> Option<&str> {
        found.as_deref().map(String::as_str)
    }

    #[tokio::test(start_paused = true)]
    async fn a_thousand_concurrent_cold_loads_run_the_loader_once() {
        let rig = rig();
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let tier = Arc::clone(&rig.tier);
                let load = loader(&calls, Duration::from_millis(10), Some("ada"));
                tokio::spawn(async move { tier.get_or_load("42", load).await })
            })
            .collect();
        for task in tasks {
            let found = task.await.unwrap().unwrap();
            assert_eq!(value(&found), Some("ada"));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let stats = rig.tier.stats();
        assert_eq!((stats.loads, stats.coalesced, stats.misses), (1, 999, 1));
        assert!(
            rig.tier.lock_flights().is_empty(),
            "finished flights are removed"
        );
        assert!(rig.l2.raw_get(&key("42")).is_some(), "the load filled L2");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_thousand_concurrent_loads_on_many_threads_run_the_loader_once() {
        let rig = rig();
        let calls = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Notify::new());
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let tier = Arc::clone(&rig.tier);
                let (calls, release) = (Arc::clone(&calls), Arc::clone(&release));
                tokio::spawn(async move {
                    let load = || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        release.notified().await;
                        Ok::<_, io::Error>(Some(String::from("ada")))
                    };
                    tier.get_or_load("42", load).await
                })
            })
            .collect();
        // Hold the loader until every other caller is waiting on it (bounded poll).
        for _ in 0..10_000 {
            if rig.tier.stats().coalesced == 999 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(rig.tier.stats().coalesced, 999);
        release.notify_one();
        for task in tasks {
            assert_eq!(value(&task.await.unwrap().unwrap()), Some("ada"));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_loader_error_reaches_every_waiter_and_is_not_cached() {
        let rig = rig();
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let tier = Arc::clone(&rig.tier);
                let calls = Arc::clone(&calls);
                tokio::spawn(async move {
                    tier.get_or_load("42", || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        Err::<Option<String>, _>(io::Error::other("mongo down"))
                    })
                    .await
                })
            })
            .collect();
        for task in tasks {
            let error = task.await.unwrap().unwrap_err();
            assert_eq!(
                error.downcast_ref::<io::Error>().unwrap().to_string(),
                "mongo down"
            );
            assert!(error.to_string().contains("mongo down"));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(rig.tier.stats().load_errors, 1);
        let found = rig.load("42", &calls, Some("ada")).await;
        assert_eq!(value(&found), Some("ada"));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn reads_go_l1_then_l2_then_loader() {
        let shared = Arc::new(FlakyCache::default());
        let a = rig_with(shared.clone(), &Ttls::default());
        let b = rig_with(shared, &Ttls::default());
        let calls = Arc::new(AtomicUsize::new(0));
        a.load("42", &calls, Some("ada")).await;
        // Another instance finds it in L2, then in its own L1.
        for _ in 0..3 {
            let found = b.load("42", &calls, Some("other")).await;
            assert_eq!(value(&found), Some("ada"));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let stats = b.tier.stats();
        assert_eq!((stats.l2_hits, stats.l1_hits, stats.loads), (1, 2, 0));
        assert_eq!(value(&b.tier.get("42").await.unwrap()), Some("ada"));
        assert_eq!(b.tier.get("nobody").await.unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn l2_failures_never_fail_a_read_and_the_breaker_stops_trying() {
        let rig = rig();
        rig.l2.set_mode(Mode::Failing);
        let calls = Arc::new(AtomicUsize::new(0));
        for n in 0..20 {
            let id = format!("user-{n}");
            let found = rig.load(&id, &calls, Some("ada")).await;
            assert_eq!(value(&found), Some("ada"));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 20);
        // One read per request, no write after a failed read: the breaker opened after
        // the threshold and the backend saw nothing more.
        assert_eq!(rig.l2.calls(), u64::from(DEFAULT_FAILURE_THRESHOLD));
        let stats = rig.tier.stats();
        assert_eq!(stats.l2_errors, 20);
        let breaker = stats.breaker.unwrap();
        assert_eq!(breaker.state, BreakerState::Open);
        assert_eq!(breaker.rejected, 15);
        // Values loaded meanwhile are still served from L1.
        let found = rig.load("user-3", &calls, None).await;
        assert_eq!(value(&found), Some("ada"));
        assert_eq!(calls.load(Ordering::SeqCst), 20);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_l2_costs_a_read_one_timeout_then_none() {
        let rig = rig();
        rig.l2.set_mode(Mode::Hanging);
        let calls = Arc::new(AtomicUsize::new(0));
        for n in 0..10 {
            let start = Instant::now();
            let found = rig.load(&format!("u{n}"), &calls, Some("ada")).await;
            assert_eq!(value(&found), Some("ada"));
            let expected = if n < DEFAULT_FAILURE_THRESHOLD {
                crate::breaker::DEFAULT_TIMEOUT
            } else {
                Duration::ZERO
            };
            assert_eq!(start.elapsed(), expected, "read {n}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_poisoned_entry_is_a_miss_and_is_deleted() {
        let rig = rig();
        rig.l2.raw_set(
            &key("42"),
            Bytes::from_static(b"AuCa\x01\x01\x00garbage"),
            Duration::from_secs(60),
        );
        let calls = Arc::new(AtomicUsize::new(0));
        let failing = || async { Err::<Option<String>, _>(io::Error::other("down")) };
        assert!(rig.tier.get_or_load("42", failing).await.is_err());
        assert_eq!(rig.tier.stats().decode_failures, 1);
        assert_eq!(
            rig.l2.raw_get(&key("42")),
            None,
            "the poisoned entry was deleted"
        );
        let found = rig.load("42", &calls, Some("ada")).await;
        assert_eq!(value(&found), Some("ada"));
        assert_eq!(
            rig.tier
                .get("42")
                .await
                .unwrap()
                .as_deref()
                .map(String::as_str),
            Some("ada")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn entries_of_another_signing_key_are_misses_and_deleted() {
        let shared = Arc::new(FlakyCache::default());
        let writer = rig_with(shared.clone(), &Ttls::default());
        writer.tier.set("42", String::from("ada")).await.unwrap();
        let reader: Tiered<String> = Tiered::builder(KeyKind::User)
            .l2(guarded(shared.clone()))
            .codec(EnvelopeCodec::new().with_signing_key(SigningKey::new([1; 32]).unwrap()))
            .build();
        assert_eq!(reader.get("42").await.unwrap(), None);
        assert_eq!(reader.stats().decode_failures, 1);
        assert_eq!(shared.raw_get(&key("42")), None);
    }

    #[tokio::test(start_paused = true)]
    async fn absent_results_are_cached_as_negative_entries() {
        let rig = rig();
        let calls = Arc::new(AtomicUsize::new(0));
        for _ in 0..5 {
            let found = rig.load("ghost", &calls, None).await;
            assert_eq!(found, None);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let (_, l1_ttl) = rig.l1.ttls()[0].clone();
        let negative = Ttls::default().negative;
        assert!(l1_ttl >= negative.mul_f64(0.9) && l1_ttl <= negative.mul_f64(1.1).min(negative));
        assert!(
            rig.l2.raw_get(&key("ghost")).is_some(),
            "negative entries are shared via L2"
        );
        // Another instance reads the negative entry from L2 without loading.
        let other = rig_with(rig.l2.clone(), &Ttls::default());
        assert_eq!(other.load("ghost", &calls, Some("x")).await, None);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Once it expires, the loader is asked again.
        tokio::time::advance(negative.mul_f64(1.2)).await;
        let found = rig.load("ghost", &calls, Some("late")).await;
        assert_eq!(value(&found), Some("late"));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn l1_never_outlives_the_l2_ttl_or_the_cap() {
        let short = Ttls {
            user: Duration::from_secs(10),
            ..Ttls::default()
        };
        let rig = rig_with(Arc::default(), &short);
        let calls = Arc::new(AtomicUsize::new(0));
        rig.load("a", &calls, Some("x")).await;
        rig.tier.set("b", String::from("y")).await.unwrap();
        rig.tier
            .get_or_load_with_ttl("c", || async {
                Ok::<_, io::Error>(Some((String::from("z"), Duration::from_secs(5))))
            })
            .await
            .unwrap();
        rig.tier
            .set_with_ttl("d", String::from("w"), Duration::from_secs(3600))
            .await
            .unwrap();
        let long = rig_with(rig.l2.clone(), &Ttls::default());
        long.load("a", &calls, None).await;
        long.load("c", &calls, None).await;
        let ttls: HashMap<_, _> = rig.l1.ttls().into_iter().collect();
        assert!(ttls["a"] <= Duration::from_secs(11) && ttls["a"] >= Duration::from_secs(9));
        assert!(ttls["b"] <= Duration::from_secs(11));
        assert_eq!(ttls["c"], Duration::from_secs(5));
        assert_eq!(ttls["d"], Duration::from_secs(30));
        // Filled from L2, L1 gets at most what the L2 entry has left.
        let from_l2: HashMap<_, _> = long.l1.ttls().into_iter().collect();
        assert!(from_l2["a"] <= ttls["a"]);
        assert!(from_l2["c"] <= Duration::from_secs(5));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_load_l2_refuses_to_store_is_still_served_from_l1() {
        let mut mock = MockCache::new();
        mock.expect_get().times(1).returning(|_| Ok(None));
        mock.expect_set()
            .times(1)
            .returning(|_, _, _| Err(CacheError::unavailable("connection reset")));
        let l1 = Arc::new(RecordingL1::<String>::default());
        let tier: Tiered<String> = Tiered::builder(KeyKind::User)
            .l1(l1.clone())
            .l2(guarded(Arc::new(mock)))
            .build();
        let calls = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let found = tier
                .get_or_load("42", loader(&calls, Duration::ZERO, Some("ada")))
                .await
                .unwrap();
            assert_eq!(value(&found), Some("ada"));
        }
        // One load; the two later reads were L1 hits (the mock allows a single get and set).
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(tier.stats().l1_hits, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn set_with_ttl_writes_exactly_that_ttl() {
        let mut mock = MockCache::new();
        mock.expect_set()
            .withf(|key, _, ttl| {
                key.as_str() == "authcache:v1:revoked:fp" && *ttl == Duration::from_secs(7)
            })
            .times(1)
            .returning(|_, _, _| Ok(()));
        let tier: Tiered<bool> = Tiered::builder(KeyKind::Revoked)
            .l2(guarded(Arc::new(mock)))
            .build();
        tier.set_with_ttl("fp", true, Duration::from_secs(7))
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn writes_and_deletes_reach_both_tiers_and_the_bus() {
        let mut publisher = MockInvalidationPublisher::new();
        publisher
            .expect_publish()
            .withf(|key| key.as_str() == "authcache:v1:user:42")
            .times(3)
            .returning(|_| Ok(()));
        let l2 = Arc::new(FlakyCache::default());
        let l1 = Arc::new(RecordingL1::<String>::default());
        let tier: Tiered<String> = Tiered::builder(KeyKind::User)
            .l1(l1.clone())
            .l2(guarded(l2.clone()))
            .publisher(Arc::new(publisher))
            .build();
        tier.set("42", String::from("ada")).await.unwrap();
        assert!(l1.get("42").is_some() && l2.raw_get(&key("42")).is_some());
        tier.delete("42").await.unwrap();
        assert!(l1.get("42").is_none() && l2.raw_get(&key("42")).is_none());
        // A zero TTL means "do not cache": it deletes.
        tier.set_with_ttl("42", String::from("ada"), Duration::ZERO)
            .await
            .unwrap();
        assert!(l2.raw_get(&key("42")).is_none());
        assert!(matches!(
            tier.set("bad id", String::new()).await,
            Err(CacheError::InvalidKey(_))
        ));
        assert!(tier.delete("").await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn bus_and_l2_trouble_on_writes_is_reported_not_hidden() {
        let mut publisher = MockInvalidationPublisher::new();
        publisher
            .expect_publish()
            .returning(|_| Err(CacheError::unavailable("bus down")));
        let rig = rig();
        let tier: Tiered<String> = Tiered::builder(KeyKind::User)
            .l1(rig.l1.clone())
            .l2(guarded(rig.l2.clone()))
            .publisher(Arc::new(publisher))
            .build();
        tier.set("42", String::from("ada")).await.unwrap();
        assert_eq!(tier.stats().publish_errors, 1);
        rig.l2.set_mode(Mode::Failing);
        assert!(tier.set("42", String::from("new")).await.is_err());
        assert!(
            rig.l1.get("42").is_none(),
            "L1 does not keep what L2 refused"
        );
        assert!(tier.delete("42").await.unwrap_err().is_unavailable());
        assert_eq!(tier.stats().publish_errors, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn evict_and_clear_local_leave_l2_alone() {
        let rig = rig();
        let calls = Arc::new(AtomicUsize::new(0));
        for id in ["a", "b"] {
            rig.load(id, &calls, Some(id)).await;
        }
        rig.tier.evict_local("a");
        assert!(rig.l1.get("a").is_none() && rig.l1.get("b").is_some());
        rig.tier.clear_local();
        assert!(rig.l1.get("b").is_none());
        for id in ["a", "b"] {
            let found = rig.load(id, &calls, None).await;
            assert_eq!(value(&found), Some(id));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(rig.tier.stats().l2_hits, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_during_a_load_is_not_overwritten_by_the_load() {
        let rig = rig();
        let calls = Arc::new(AtomicUsize::new(0));
        let slow = tokio::spawn({
            let tier = Arc::clone(&rig.tier);
            let load = loader(&calls, Duration::from_secs(1), Some("old"));
            async move { tier.get_or_load("42", load).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        rig.tier.set("42", String::from("new")).await.unwrap();
        assert_eq!(value(&slow.await.unwrap().unwrap()), Some("old"));
        let found = rig.load("42", &calls, None).await;
        assert_eq!(value(&found), Some("new"));
        let l2: Option<Arc<String>> = Tiered::<String>::builder(KeyKind::User)
            .l2(guarded(rig.l2.clone()))
            .build()
            .get("42")
            .await
            .unwrap();
        assert_eq!(value(&l2), Some("new"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_leader_hands_the_load_to_a_waiter() {
        let rig = rig();
        let calls = Arc::new(AtomicUsize::new(0));
        let leader = tokio::spawn({
            let tier = Arc::clone(&rig.tier);
            let load = loader(&calls, Duration::from_secs(3600), Some("never"));
            async move { tier.get_or_load("42", load).await }
        });
        tokio::task::yield_now().await;
        let waiter = tokio::spawn({
            let tier = Arc::clone(&rig.tier);
            let load = loader(&calls, Duration::from_millis(5), Some("ada"));
            async move { tier.get_or_load("42", load).await }
        });
        tokio::task::yield_now().await;
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        assert_eq!(value(&waiter.await.unwrap().unwrap()), Some("ada"));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(rig.tier.lock_flights().is_empty());
        // A lone cancelled caller leaves no flight behind either.
        let lone = tokio::time::timeout(
            Duration::from_millis(1),
            rig.tier
                .get_or_load("7", loader(&calls, Duration::from_secs(1), None)),
        );
        assert!(lone.await.is_err());
        assert!(rig.tier.lock_flights().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn invalid_ids_never_reach_the_loader_or_the_tiers() {
        let rig = rig();
        let calls = Arc::new(AtomicUsize::new(0));
        for id in ["", "a b", "x\n"] {
            let error = rig
                .tier
                .get_or_load(id, loader(&calls, Duration::ZERO, Some("x")))
                .await
                .unwrap_err();
            assert!(matches!(error, LoadError::InvalidId(_)));
            assert!(error.downcast_ref::<io::Error>().is_none());
            assert!(rig.tier.get(id).await.is_err());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert_eq!(rig.l2.calls(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn works_without_any_tier() {
        let tier: Tiered<u32> = Tiered::builder(KeyKind::Perms).build();
        let found = tier
            .get_or_load("1", || async { Ok::<_, io::Error>(Some(7)) })
            .await;
        assert_eq!(found.unwrap().as_deref(), Some(&7));
        tier.set("1", 8).await.unwrap();
        tier.delete("1").await.unwrap();
        assert_eq!(tier.stats().breaker, None);
        assert_eq!(tier.kind(), KeyKind::Perms);
        assert!(format!("{tier:?}").contains("Perms"));
        assert!(format!("{:?}", Tiered::<u32>::builder(KeyKind::User)).contains("User"));
    }

    #[test]
    fn futures_are_send() {
        fn assert_send<F: Future + Send>(_: F) {}
        let tier: Tiered<String> = Tiered::builder(KeyKind::User).build();
        assert_send(tier.get_or_load("1", || async { Ok::<_, io::Error>(None) }));
        assert_send(tier.get("1"));
        assert_send(tier.set("1", String::new()));
        assert_send(tier.delete("1"));
    }
}
