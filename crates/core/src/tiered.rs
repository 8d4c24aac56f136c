//! [`Tiered`]: one kind of value read through an in-process L1, a shared L2 and a loader.
//!
//! Read path: L1 → L2 → loader, filling both tiers on the way back. Write path: L2 and L1,
//! then the key is published on the invalidation bus. The L2 can fail in any way (down,
//! hung, poisoned) without failing a read: only the loader's errors reach the caller.
//!
//! In L2 each value is stored with its absolute expiry (`(expires_at_unix_ms, Option<T>)`
//! inside the envelope), so that an L1 filled from an L2 hit never outlives the L2 entry,
//! even for values whose TTL was chosen per entry (a token's remaining lifetime).
//!
//! # Stale-if-error and refresh-ahead
//!
//! A value's envelope carries its soft expiry (the kind's TTL); L2 keeps it
//! [`Ttls::stale_grace`] longer. A read past the soft expiry loads as on a miss, but when
//! the loader fails or times out the last value is served instead (`stale_served`), and for
//! [`FAILURE_MEMORY`] after a failure *of that id* its expired value is served at once
//! while one background reload retries. Failures are remembered per id (at most
//! [`FAILURE_MEMORY_CAP`] of them), so one record that fails to load never makes another
//! id's expired value be served stale while the loader answers for it. Invalidations
//! tombstone the key, so a value anyone invalidated is never served stale; negative entries
//! and per-entry TTLs (tokens) get no grace.
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
//!   loaded value with [`Cache::set_if_unchanged`]: if anything wrote the key since the
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
//! [`STALE_RETRY`] for a stale value, none for a load that raced a change). Anything
//! remembered from the value (the facade's warm answers) must not outlive it.

use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::breaker::{BreakerStats, GuardedCache, with_l2_budget};
use crate::codec::{EnvelopeCodec, is_tombstone, tombstone};
use crate::l1::{L1Cache, L1Entry};
use crate::pending::{Debt, Pending, Ticket};
use crate::ttl::Ttls;
use crate::versioned::{Version, VersionedL1};
use crate::{Cache, CacheError, InvalidationPublisher, Key, KeyError, KeyKind, Keyspace};

/// 60 s: how long an invalidation's tombstone guards its key against older fills. Twice
/// [`FILL_WINDOW`], so a fill allowed to write always meets the tombstone of any
/// invalidation that happened after its read.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(60);

/// 30 s: a fill whose load took longer than this is served but not cached (its guarding
/// tombstones might have expired). Far above any sane repository timeout.
pub const FILL_WINDOW: Duration = Duration::from_secs(30);

/// 5 s: the default bound on one loader call. A hung repository then costs its waiters
/// 5 s and an `Unavailable`, not their whole request budget, and the flight is freed.
pub const DEFAULT_LOAD_TIMEOUT: Duration = Duration::from_secs(5);

/// 1 s: how long a value served stale (the loader failed) stays in L1 before the next
/// request looks again: the failing loader is asked about once a second per hot id.
pub const STALE_RETRY: Duration = Duration::from_secs(1);

/// 10 s: after the loader failed for an id, that id's expired value within its grace is
/// served at once (and reloaded in the background) for this long, instead of each request
/// waiting for the loader to fail again. Every failed reload renews it; a success ends it.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(10);

/// 10,000 ids: how many loader failures a tier remembers (see [`FAILURE_MEMORY`]). Past
/// it, failures older than [`FAILURE_MEMORY`] are forgotten first, then the oldest: that
/// id's next read waits for its loader once more, as its first one did. Ten thousand ids
/// failing at once is a repository that is down, not one bad record.
pub const FAILURE_MEMORY_CAP: usize = 10_000;

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
    stale_fills: AtomicU64,
    stale_served: AtomicU64,
    refreshes: AtomicU64,
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
    /// Loader calls that failed or timed out.
    pub load_errors: u64,
    /// Callers that joined another caller's load of the same id instead of starting one.
    pub coalesced: u64,
    /// L2 entries that failed to decode, verify, or match the key they were read under
    /// (each read as a miss and never served).
    pub decode_failures: u64,
    /// Values that could not be encoded for L2 (too large, unrepresentable).
    pub encode_failures: u64,
    /// L2 calls that failed, timed out or were skipped (breaker open, budget spent).
    pub l2_errors: u64,
    /// Invalidations that could not be published.
    pub publish_errors: u64,
    /// Loaded values not cached because the key changed (anywhere) since the load began.
    pub stale_fills: u64,
    /// Expired values served within their stale grace because the loader failed.
    pub stale_served: u64,
    /// Background reloads started (refresh-ahead, and retries behind stale values).
    pub refreshes: u64,
    /// Loads in flight right now (a gauge; zero when idle — nothing leaks).
    pub in_flight: u64,
    /// Ids whose invalidation or write-through has not fully landed (its tombstone or its
    /// announcement failed): in force on this instance, waiting for
    /// [`Tiered::retry_pending`] (a gauge; zero when everything landed).
    pub pending_invalidations: u64,
    /// The L2 breaker, when there is an L2.
    pub breaker: Option<BreakerStats>,
}

impl TierStats {
    /// The counters now (`breaker` is `None`, `in_flight` and `pending_invalidations`
    /// zero; [`Tiered::stats`] fills them in).
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
            stale_fills: get(&self.stale_fills),
            stale_served: get(&self.stale_served),
            refreshes: get(&self.refreshes),
            in_flight: 0,
            pending_invalidations: 0,
            breaker: None,
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
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

type Outcome<T> = Result<Fetched<T>, LoadError>;

/// One in-flight load of one id; every caller that finds it waits on the same cell.
type Flight<T> = OnceCell<Outcome<T>>;

/// Checks a decoded entry against the id it was read for (see [`TieredBuilder::validate`]).
pub type Validator<T> = fn(id: &str, value: &T) -> bool;

/// The future a [`Reloader`] returns.
pub type ReloadFuture<T> =
    Pin<Box<dyn Future<Output = Result<Option<T>, Box<dyn Error + Send + Sync>>> + Send>>;

/// Loads the value of an id on its own, without a caller: what background refreshes run
/// (see [`TieredBuilder::reloader`]).
pub type Reloader<T> = Arc<dyn Fn(&str) -> ReloadFuture<T> + Send + Sync>;

/// Builds a [`Tiered`]; see [`Tiered::builder`].
pub struct TieredBuilder<T> {
    kind: KeyKind,
    keyspace: Keyspace,
    ttls: Ttls,
    l1: Option<Arc<dyn L1Cache<T>>>,
    l2: Option<Arc<GuardedCache>>,
    codec: EnvelopeCodec,
    publisher: Option<Arc<dyn InvalidationPublisher>>,
    load_timeout: Duration,
    validate: Option<Validator<T>>,
    reloader: Option<Reloader<T>>,
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

    /// Bound on one loader call (default [`DEFAULT_LOAD_TIMEOUT`]); past it every waiter
    /// gets [`LoadError::Timeout`] and the flight is freed. Zero means no bound.
    pub fn load_timeout(mut self, timeout: Duration) -> Self {
        self.load_timeout = timeout;
        self
    }

    /// A check of every value read from L2 against the id it was read for: a value that
    /// fails it (a user record whose own id is another) is a miss, counted in
    /// `decode_failures`, and never served.
    pub fn validate(mut self, validate: Validator<T>) -> Self {
        self.validate = Some(validate);
        self
    }

    /// How to load a value without a caller, which turns on refresh-ahead (a value read
    /// in the last [`Ttls::refresh_ahead`] part of its TTL is reloaded in the background,
    /// once) and background retries behind stale values. Without one, values are only
    /// loaded by callers.
    pub fn reloader(
        mut self,
        reload: impl Fn(&str) -> ReloadFuture<T> + Send + Sync + 'static,
    ) -> Self {
        self.reloader = Some(Arc::new(reload));
        self
    }

    /// The tier.
    pub fn build(self) -> Tiered<T> {
        let core = Core {
            kind: self.kind,
            keyspace: self.keyspace,
            ttls: self.ttls,
            l1: VersionedL1::new(self.l1),
            l2: self.l2,
            codec: self.codec,
            publisher: self.publisher,
            load_timeout: self.load_timeout,
            validate: self.validate,
            reloader: self.reloader,
            flights: Mutex::default(),
            refreshing: Mutex::default(),
            failures: Failures::default(),
            pending: Pending::default(),
            stats: TierStats::default(),
        };
        Tiered {
            core: Arc::new(core),
        }
    }
}

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
    /// Single-flight: a per-id `tokio::sync::OnceCell` rather than moka's
    /// `try_get_with`, because the flight must cover the L2 read as well as the loader,
    /// because moka's sync cache would block the thread while an async loader runs, and
    /// because the L1 is any [`L1Cache`] (or none). A cell whose initialising caller is
    /// cancelled is initialised by the next waiter, so cancellation never strands anyone.
    flights: Mutex<HashMap<Arc<str>, Arc<Flight<T>>>>,
    /// Ids being reloaded in the background: one reload per id at a time.
    refreshing: Mutex<HashSet<Arc<str>>>,
    /// When the loader last failed, per id (see [`FAILURE_MEMORY`]).
    failures: Failures,
    /// Ids whose invalidation did not land in L2 or on the bus (see [`crate::pending`]).
    pending: Pending,
    stats: TierStats,
}

/// When the loader last failed, per id: for [`FAILURE_MEMORY`] after it, that id's expired
/// value within its grace is served at once and reloaded behind. Per id, so that a record
/// that fails to load (a document that no longer decodes) never makes another id's expired
/// value be served stale while the loader answers for it. At most [`FAILURE_MEMORY_CAP`]
/// ids.
#[derive(Debug, Default)]
struct Failures {
    log: Mutex<FailureLog>,
    /// `log.at.len()`, readable without the lock: a load skips an empty log.
    count: AtomicUsize,
}

#[derive(Debug, Default)]
struct FailureLog {
    at: HashMap<Arc<str>, Instant>,
    /// When a failing loader was last logged at `warn`: once per [`FAILURE_MEMORY`].
    warned: Option<Instant>,
}

impl Failures {
    fn lock(&self) -> MutexGuard<'_, FailureLog> {
        // Plain inserts, removes and assignments: a panic cannot leave it half-updated.
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the loader failed for `id` within the last [`FAILURE_MEMORY`].
    fn recent(&self, id: &str) -> bool {
        self.count.load(Ordering::Acquire) > 0
            && self
                .lock()
                .at
                .get(id)
                .is_some_and(|at| at.elapsed() < FAILURE_MEMORY)
    }

    /// Remembers that the loader failed for `id` now; `true` when no failure was logged
    /// within the last [`FAILURE_MEMORY`] (log this one).
    fn record(&self, id: &str) -> bool {
        let now = Instant::now();
        let mut log = self.lock();
        if let Some(at) = log.at.get_mut(id) {
            *at = now;
        } else {
            if log.at.len() >= FAILURE_MEMORY_CAP {
                log.at
                    .retain(|_, at| now.duration_since(*at) < FAILURE_MEMORY);
            }
            if log.at.len() >= FAILURE_MEMORY_CAP {
                let oldest = log.at.iter().min_by_key(|(_, at)| **at);
                if let Some(oldest) = oldest.map(|(id, _)| Arc::clone(id)) {
                    log.at.remove(&oldest);
                }
            }
            log.at.insert(Arc::from(id), now);
        }
        self.count.store(log.at.len(), Ordering::Release);
        let warn = log
            .warned
            .is_none_or(|warned| now.duration_since(warned) >= FAILURE_MEMORY);
        if warn {
            log.warned = Some(now);
        }
        warn
    }

    /// The loader answered for `id`: its failure is over. `true` when one was remembered.
    fn forget(&self, id: &str) -> bool {
        if self.count.load(Ordering::Acquire) == 0 {
            return false;
        }
        let mut log = self.lock();
        let remembered = log.at.remove(id).is_some();
        self.count.store(log.at.len(), Ordering::Release);
        remembered
    }
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

impl<T> Core<T> {
    fn lock_flights(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<Flight<T>>>> {
        // The map is only ever inserted into or removed from; a panic cannot leave it
        // half-updated.
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_refreshing(&self) -> MutexGuard<'_, HashSet<Arc<str>>> {
        // Only ever inserted into or removed from, as the flights.
        self.refreshing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// What an L2 lookup found.
enum L2Read<T> {
    Hit(L2Hit<T>),
    /// A value past its expiry but within its stale grace: not served unless the loader
    /// fails. Holds the exact bytes, the expectation of the conditional fill.
    Expired(Bytes, Arc<T>),
    /// Nothing usable; holds exactly what was there (`None`: absent), the expectation of
    /// the conditional fill. Absent, expired, tombstoned, undecodable and foreign entries
    /// all land here: a fill overwrites them only if they are still there, unchanged.
    Miss(Option<Bytes>),
    /// The backend failed, timed out or was skipped.
    Failed,
    /// Not read: the entry may predate a change made here that L2 refused
    /// ([`crate::pending`]). Nothing is filled either.
    Barred,
}

/// A decoded L2 entry, with the bytes it was decoded from.
struct L2Hit<T> {
    value: Option<Arc<T>>,
    remaining: Duration,
    bytes: Bytes,
}

/// What a load produced and for how long to keep it.
struct Loaded<T> {
    value: Option<Arc<T>>,
    ttl: Duration,
    /// The TTL is the kind's own (not a per-entry bound such as a token's `exp`): the
    /// value may be kept for the stale grace past it.
    graced: bool,
}

/// How a load's answer may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// The id came from a verified source: cache absence everywhere.
    Verified,
    /// The id is caller input: absence is remembered in L1 only, so made-up ids cannot
    /// grow the shared tier.
    Untrusted,
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
            load_timeout: DEFAULT_LOAD_TIMEOUT,
            validate: None,
            reloader: None,
        }
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
    /// Concurrent calls for one id run `load` once and all get its result.
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
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
        E: Into<Box<dyn Error + Send + Sync>>,
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
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
        E: Into<Box<dyn Error + Send + Sync>>,
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
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
        E: Into<Box<dyn Error + Send + Sync>>,
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
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
        E: Into<Box<dyn Error + Send + Sync>>,
    {
        self.core.load_plain(id, Trust::Untrusted, load).await
    }

    /// As [`Tiered::get_or_load`], but the loader also says how long to keep the value:
    /// exactly that long in L2 (no jitter, no stale grace), capped by the L1 cap in L1.
    /// For values whose lifetime is bounded by something else, such as a token's `exp`.
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
        let fetched = self
            .core
            .load_through(id, Trust::Verified, move || async move {
                load()
                    .await
                    .map(|found| found.map(|(value, ttl)| (value, Some(ttl))))
            })
            .await?;
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
        self.core.l1.forget_all();
        self.core.lock_flights().clear();
    }
}

impl<T> Core<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    fn key(&self, id: &str) -> Result<Key, KeyError> {
        self.keyspace.key(self.kind, id)
    }

    /// A load whose values take the kind's TTL.
    async fn load_plain<F, Fut, E>(self: &Arc<Self>, id: &str, trust: Trust, load: F) -> Outcome<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
        E: Into<Box<dyn Error + Send + Sync>>,
    {
        self.load_through(id, trust, move || async move {
            load().await.map(|found| found.map(|value| (value, None)))
        })
        .await
    }

    async fn get(self: &Arc<Self>, id: &str) -> Result<Option<Arc<T>>, KeyError> {
        if let Some(entry) = self.l1_get(id) {
            return Ok(entry.into_value());
        }
        // The version before the key: a keyspace epoch adopted in between moves the
        // version, so an entry read under the old epoch's key is never served.
        let since = self.l1.version(id);
        let key = self.key(id)?;
        match self.l2_read_unless_pending(&key, id).await {
            L2Read::Hit(hit) => {
                self.l1_insert(id, hit.value.clone(), hit.remaining, since);
                self.refresh_if_due(id, &key, &hit, since);
                Ok(hit.value)
            }
            L2Read::Expired(..) | L2Read::Miss(_) | L2Read::Failed | L2Read::Barred => {
                bump(&self.stats.misses);
                Ok(None)
            }
        }
    }

    async fn delete(&self, id: &str) -> Result<(), CacheError> {
        let key = self.key(id)?;
        let owed = self.pending.ticket(id);
        self.invalidate_local(id);
        let result = match &self.l2 {
            Some(l2) => l2
                .set(&key, tombstone(), TOMBSTONE_TTL)
                .await
                .inspect_err(|error| self.note_l2_error(&key, error)),
            None => Ok(()),
        };
        self.owe_if_refused(id, &key, &result);
        // Again: a read on this instance that ran while the tombstone was on its way may
        // have filled L1 from the old L2 entry.
        self.invalidate_local(id);
        self.announce(id, &key, owed, result.is_ok()).await;
        result
    }

    /// After a refused L2 write of `id`: the tombstone is owed. Recorded before the
    /// writer's second version bump, so that every read that begins after the bump
    /// passes L2 by (see [`crate::pending`]).
    fn owe_if_refused(&self, id: &str, key: &Key, result: &Result<(), CacheError>) {
        if let Err(error) = result {
            self.pending.owe(id, Debt::Tombstone, None);
            tracing::warn!(key = %key, %error, "change not stored in L2: in force on this instance, L2 bypassed for it until a retry lands");
        }
    }

    /// Publishes the change of `id` made by a writer that began when `owed` was owed, and
    /// settles what its write replaced, or records what is still owed.
    async fn announce(&self, id: &str, key: &Key, owed: Option<Ticket>, stored: bool) {
        let announced = self.publish(key).await.is_ok();
        match (stored, announced) {
            (true, true) => {
                self.pending.settle(id, owed);
            }
            (true, false) => self.pending.owe(id, Debt::Announcement, owed),
            // The tombstone is owed; its retry announces after it.
            (false, _) => {}
        }
    }

    async fn retry_pending(&self) -> usize {
        for (id, debt, ticket) in self.pending.owed() {
            let Ok(key) = self.key(&id) else {
                // Only ids that made keys are ever owed.
                self.pending.settle(&id, Some(ticket));
                continue;
            };
            if with_l2_budget(self.repay(&id, &key, debt, ticket))
                .await
                .is_err()
            {
                break;
            }
        }
        self.pending.len()
    }

    /// Writes the tombstone `id` owes (unconditionally: over anything filled meanwhile),
    /// then announces it; settles the debt under `ticket` when both landed.
    async fn repay(
        &self,
        id: &str,
        key: &Key,
        debt: Debt,
        ticket: Ticket,
    ) -> Result<(), CacheError> {
        if let (Debt::Tombstone, Some(l2)) = (debt, &self.l2) {
            l2.set(key, tombstone(), TOMBSTONE_TTL)
                .await
                .inspect_err(|error| self.note_l2_error(key, error))?;
        }
        match self.publish(key).await {
            Ok(()) => {
                self.pending.settle(id, Some(ticket));
                tracing::info!(key = %key, "pending invalidation landed");
                Ok(())
            }
            Err(error) => {
                self.pending.owe(id, Debt::Announcement, Some(ticket));
                Err(error)
            }
        }
    }

    fn invalidate_local(&self, id: &str) {
        self.l1.forget(id);
        // Later callers must not join a load that started before the change.
        self.lock_flights().remove(id);
    }

    fn l1_get(&self, id: &str) -> Option<L1Entry<T>> {
        let entry = self.l1.get(id)?;
        bump(&self.stats.l1_hits);
        self.answered_by("l1");
        Some(entry)
    }

    async fn load_through<F, Fut, E>(
        self: &Arc<Self>,
        id: &str,
        trust: Trust,
        load: F,
    ) -> Outcome<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<(T, Option<Duration>)>, E>>,
        E: Into<Box<dyn Error + Send + Sync>>,
    {
        if let Some(entry) = self.l1_get(id) {
            return Ok(Fetched::from_entry(entry));
        }
        // The version before the key (see `get`).
        let since = self.l1.version(id);
        let key = self.key(id)?;
        let (membership, cell) = self.join_flight(id);
        let outcome = cell
            .get_or_init(|| self.fetch(id, &key, since, trust, load))
            .await
            .clone();
        // Our working reference goes first, so the membership sees an exact count.
        drop(cell);
        drop(membership);
        outcome
    }

    /// The L2 read, the load and the conditional fill, run once per flight.
    async fn fetch<F, Fut, E>(
        self: &Arc<Self>,
        id: &str,
        key: &Key,
        since: Version,
        trust: Trust,
        load: F,
    ) -> Outcome<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<(T, Option<Duration>)>, E>>,
        E: Into<Box<dyn Error + Send + Sync>>,
    {
        let (expected, stale) = match self.l2_read_unless_pending(key, id).await {
            L2Read::Hit(hit) => {
                let until = self.l1_insert(id, hit.value.clone(), hit.remaining, since);
                self.refresh_if_due(id, key, &hit, since);
                return Ok(Fetched::new(hit.value, until));
            }
            // The loader failed for this id moments ago: serve its last value at once
            // rather than make every caller wait for it to fail again, and retry behind it.
            L2Read::Expired(bytes, stale)
                if self.failures.recent(id) && self.reloader.is_some() =>
            {
                self.spawn_refresh(id, key, bytes, since);
                return Ok(self.serve_stale(id, stale, since));
            }
            L2Read::Expired(bytes, stale) => (Some(Some(bytes)), Some(stale)),
            L2Read::Miss(seen) => (Some(seen), None),
            // A backend that just failed (or hung) is not written to in the same call:
            // a request pays for at most one L2 timeout. An entry that may predate a
            // change made here is not written to either: L1 only.
            L2Read::Failed | L2Read::Barred => (None, None),
        };
        bump(&self.stats.misses);
        self.answered_by("repository");
        let started = Instant::now();
        let loaded = match (self.run_loader(id, load).await, stale) {
            (Ok(loaded), _) => loaded,
            (Err(_), Some(stale)) => return Ok(self.serve_stale(id, stale, since)),
            (Err(error), None) => return Err(error),
        };
        if self.l1.version(id) != since {
            // Changed here (or announced by another instance) while loading: the answer
            // is good for this caller, but may predate the change.
            bump(&self.stats.stale_fills);
            return Ok(Fetched::new(loaded.value, Instant::now()));
        }
        let shared = trust == Trust::Verified || loaded.value.is_some();
        let until = match expected {
            Some(seen) if shared && self.l2.is_some() => {
                if started.elapsed() < FILL_WINDOW {
                    self.fill(key, id, seen, &loaded, since).await
                } else {
                    None
                }
            }
            _ => Some(self.l1_insert(id, loaded.value.clone(), loaded.ttl, since)),
        };
        Ok(Fetched::new(
            loaded.value,
            until.unwrap_or_else(Instant::now),
        ))
    }

    /// Serves a value past its expiry, within its grace, because the loader failed; keeps
    /// it in L1 for [`STALE_RETRY`] so the failing loader is not asked on every request.
    fn serve_stale(&self, id: &str, stale: Arc<T>, since: Version) -> Fetched<T> {
        bump(&self.stats.stale_served);
        self.answered_by("stale");
        tracing::debug!(kind = %self.kind, "loader failing: serving the last value within its grace");
        let until = self.l1_insert(id, Some(Arc::clone(&stale)), STALE_RETRY, since);
        Fetched::new(Some(stale), until)
    }

    /// The part at the end of a value's TTL in which a read reloads it in the background;
    /// zero without a reloader.
    fn refresh_window(&self) -> Duration {
        if self.reloader.is_none() {
            return Duration::ZERO;
        }
        self.ttls.refresh_window(self.ttls.for_kind(self.kind))
    }

    fn refresh_if_due(self: &Arc<Self>, id: &str, key: &Key, hit: &L2Hit<T>, since: Version) {
        if hit.value.is_some() && hit.remaining <= self.refresh_window() {
            self.spawn_refresh(id, key, hit.bytes.clone(), since);
        }
    }

    /// Reloads `id` in a background task, unless one is already doing so. The reload fills
    /// the tiers only if the L2 entry is still exactly `seen` and nothing invalidated the
    /// id since `since`, like any fill.
    fn spawn_refresh(self: &Arc<Self>, id: &str, key: &Key, seen: Bytes, since: Version) {
        let Some(reloader) = self.reloader.clone() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let id: Arc<str> = Arc::from(id);
        if !self.lock_refreshing().insert(Arc::clone(&id)) {
            return;
        }
        bump(&self.stats.refreshes);
        let core = Arc::clone(self);
        let key = key.clone();
        runtime.spawn(async move {
            let _done = RefreshGuard {
                core: &core,
                id: &id,
            };
            core.refresh(&id, &key, seen, since, &reloader).await;
        });
    }

    async fn refresh(
        &self,
        id: &str,
        key: &Key,
        seen: Bytes,
        since: Version,
        reload: &Reloader<T>,
    ) {
        let started = Instant::now();
        let load = || async move {
            reload(id)
                .await
                .map(|found| found.map(|value| (value, None)))
        };
        let Ok(loaded) = self.run_loader(id, load).await else {
            tracing::debug!(kind = %self.kind, "background refresh failed; the current value stays");
            return;
        };
        if self.l1.version(id) != since || started.elapsed() >= FILL_WINDOW {
            bump(&self.stats.stale_fills);
            return;
        }
        self.fill(key, id, Some(seen), &loaded, since).await;
    }

    /// Calls the loader of `id` under the load timeout; counts loads and their failures,
    /// and remembers the failures per id (see [`FAILURE_MEMORY`]).
    async fn run_loader<F, Fut, E>(&self, id: &str, load: F) -> Result<Loaded<T>, LoadError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<(T, Option<Duration>)>, E>>,
        E: Into<Box<dyn Error + Send + Sync>>,
    {
        bump(&self.stats.loads);
        let result = if self.load_timeout.is_zero() {
            Ok(load().await)
        } else {
            tokio::time::timeout(self.load_timeout, load()).await
        };
        let failure = match result {
            Ok(Ok(found)) => {
                if self.failures.forget(id) {
                    tracing::debug!(kind = %self.kind, "loader answers again for an id that failed");
                }
                return Ok(self.loaded(found));
            }
            Ok(Err(error)) => LoadError::Loader(Arc::from(error.into())),
            Err(_) => LoadError::Timeout(self.load_timeout),
        };
        bump(&self.stats.load_errors);
        // At most once per FAILURE_MEMORY, not on every failure of every id.
        if self.failures.record(id) {
            tracing::warn!(kind = %self.kind, error = %failure, "loader failing");
        }
        Err(failure)
    }

    fn loaded(&self, found: Option<(T, Option<Duration>)>) -> Loaded<T> {
        match found {
            Some((value, ttl)) => Loaded {
                value: Some(Arc::new(value)),
                graced: ttl.is_none(),
                ttl: ttl.unwrap_or_else(|| self.ttls.jittered_for(self.kind)),
            },
            None => Loaded {
                value: None,
                ttl: self.ttls.jittered(self.ttls.negative),
                graced: false,
            },
        }
    }

    /// How long L2 keeps an entry that expires in `ttl`: past it by the stale grace when
    /// the value may be served stale.
    fn l2_ttl(&self, ttl: Duration, graced: bool) -> Duration {
        if graced {
            ttl.saturating_add(self.ttls.stale_grace)
        } else {
            ttl
        }
    }

    /// Stores a loaded value in L2 only if the key still holds what the load's read saw,
    /// then in L1 if nothing changed locally either. Best effort: the answer is good
    /// whether or not it was cached. Returns the L1 deadline it was kept with, `None` when
    /// the key changed since the load began (the answer may predate that change).
    async fn fill(
        &self,
        key: &Key,
        id: &str,
        seen: Option<Bytes>,
        loaded: &Loaded<T>,
        since: Version,
    ) -> Option<Instant> {
        let keep = || self.l1_insert(id, loaded.value.clone(), loaded.ttl, since);
        let Some(l2) = &self.l2 else {
            return Some(keep());
        };
        let Ok(entry) = self.encode(key, loaded.value.as_ref(), loaded.ttl) else {
            return Some(keep());
        };
        let l2_ttl = self.l2_ttl(loaded.ttl, loaded.graced && loaded.value.is_some());
        match l2.set_if_unchanged(key, seen, entry, l2_ttl).await {
            Ok(true) => Some(keep()),
            Ok(false) => {
                bump(&self.stats.stale_fills);
                tracing::debug!(key = %key, "fill dropped: the key changed since the load began");
                None
            }
            // L2 refused or died after the read: the answer is still good, and without it
            // in L1 every request would reach the loader until L2 is back. The L1 cap
            // bounds its staleness, as it does for missed bus messages.
            Err(error) => {
                if !matches!(error, CacheError::Unsupported(_)) {
                    self.note_l2_error(key, &error);
                }
                Some(keep())
            }
        }
    }

    /// [`Core::l2_read`], unless the id's L2 entry may predate a change made here that L2
    /// refused ([`crate::pending`]): then [`L2Read::Barred`]. Read the version first.
    async fn l2_read_unless_pending(&self, key: &Key, id: &str) -> L2Read<T> {
        if self.pending.bars_l2(id) {
            return L2Read::Barred;
        }
        self.l2_read(key, id).await
    }

    /// Reads and decodes the L2 entry; every failure is a miss. Nothing is deleted: a
    /// reader that deleted what it could not read would erase other instances'
    /// tombstones and, with a rotated key, their revocations. A later fill overwrites a
    /// bad entry conditionally instead.
    async fn l2_read(&self, key: &Key, id: &str) -> L2Read<T> {
        let Some(l2) = &self.l2 else {
            return L2Read::Miss(None);
        };
        let bytes = match l2.get(key).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return L2Read::Miss(None),
            Err(error) => {
                self.note_l2_error(key, &error);
                return L2Read::Failed;
            }
        };
        if is_tombstone(&bytes) {
            return L2Read::Miss(Some(bytes));
        }
        let Some((expires_at, value)) = self.decode(key, id, &bytes) else {
            return L2Read::Miss(Some(bytes));
        };
        let now = unix_ms();
        if expires_at <= now {
            return match value {
                Some(value) if now - expires_at < millis(self.ttls.stale_grace) => {
                    L2Read::Expired(bytes, Arc::new(value))
                }
                _ => L2Read::Miss(Some(bytes)),
            };
        }
        bump(&self.stats.l2_hits);
        self.answered_by("l2");
        L2Read::Hit(L2Hit {
            value: value.map(Arc::new),
            remaining: Duration::from_millis(expires_at - now),
            bytes,
        })
    }

    /// The entry's expiry and value, if it decodes, verifies under `key` and passes the
    /// validator for `id`.
    fn decode(&self, key: &Key, id: &str, bytes: &[u8]) -> Option<(u64, Option<T>)> {
        let rejected = match self.codec.decode::<(u64, Option<T>)>(key, bytes) {
            Ok((expires_at, value)) => {
                let foreign =
                    matches!((&value, self.validate), (Some(v), Some(valid)) if !valid(id, v));
                if !foreign {
                    return Some((expires_at, value));
                }
                String::from("value does not belong to the key it was read under")
            }
            Err(error) => error.to_string(),
        };
        bump(&self.stats.decode_failures);
        tracing::warn!(key = %key, error = %rejected, "unusable cache entry, read as a miss");
        None
    }

    /// The L2 entry of `value`, expiring `ttl` from now; failures are counted and logged.
    fn encode(
        &self,
        key: &Key,
        value: Option<&Arc<T>>,
        ttl: Duration,
    ) -> Result<Bytes, crate::CodecError> {
        let expires_at = unix_ms().saturating_add(millis(ttl));
        self.codec
            .encode(key, &(expires_at, value.map(|value| &**value)))
            .inspect_err(|error| {
                bump(&self.stats.encode_failures);
                tracing::warn!(key = %key, %error, "value not cached: cannot encode it");
            })
    }

    /// Puts an entry whose L2 copy expires in `remaining` into L1, tagged with `since`, the
    /// version read before the value was: if anything changed the id since, the entry is
    /// never served (see [`crate::versioned`]). A value leaves L1 when its refresh-ahead
    /// window begins, so the reads in that window reach L2 and one of them starts the
    /// reload. Returns the entry's deadline (what it would be, when it is not kept): until
    /// then the value may be served.
    fn l1_insert(
        &self,
        id: &str,
        value: Option<Arc<T>>,
        remaining: Duration,
        since: Version,
    ) -> Instant {
        let window = if value.is_some() {
            self.refresh_window()
        } else {
            Duration::ZERO
        };
        let until_refresh = remaining.checked_sub(window).filter(|left| !left.is_zero());
        let ttl = self.ttls.l1_ttl(until_refresh.unwrap_or(remaining));
        self.l1.insert(id, value, ttl, since);
        let now = Instant::now();
        now.checked_add(ttl).unwrap_or(now)
    }

    async fn write(
        &self,
        id: &str,
        value: Option<Arc<T>>,
        ttl: Duration,
        graced: bool,
    ) -> Result<(), CacheError> {
        if ttl.is_zero() {
            return self.delete(id).await;
        }
        let key = self.key(id)?;
        let owed = self.pending.ticket(id);
        self.invalidate_local(id);
        let result = self.store(&key, value.as_ref(), ttl, graced).await;
        self.owe_if_refused(id, &key, &result);
        // Again after the L2 write: a read on this instance that ran while it was on its way
        // may have filled L1 from the old entry; only then may the new value go in. It goes
        // in even when L2 refused it: it is this instance's answer, and the id is pending.
        self.invalidate_local(id);
        let since = self.l1.version(id);
        self.l1_insert(id, value, ttl, since);
        self.announce(id, &key, owed, result.is_ok()).await;
        result
    }

    /// Writes the entry to L2 unconditionally.
    async fn store(
        &self,
        key: &Key,
        value: Option<&Arc<T>>,
        ttl: Duration,
        graced: bool,
    ) -> Result<(), CacheError> {
        let Some(l2) = &self.l2 else { return Ok(()) };
        let entry = self.encode(key, value, ttl)?;
        let l2_ttl = self.l2_ttl(ttl, graced && value.is_some());
        l2.set(key, entry, l2_ttl)
            .await
            .inspect_err(|error| self.note_l2_error(key, error))
    }

    /// Announces `key` on the bus, through the L2's breaker and the request's budget: a
    /// dead Redis costs a logout no timeout beyond the one its write already paid.
    async fn publish(&self, key: &Key) -> Result<(), CacheError> {
        let Some(publisher) = &self.publisher else {
            return Ok(());
        };
        let result = match &self.l2 {
            Some(l2) => l2.run(publisher.publish(key)).await,
            None => publisher.publish(key).await,
        };
        result.inspect_err(|error| {
            bump(&self.stats.publish_errors);
            tracing::warn!(key = %key, %error, "invalidation not published; retried");
        })
    }

    /// Counted, and logged at `debug` only: the breaker logs its transitions at `warn`, so
    /// a dead L2 is one log line, not one per request.
    fn note_l2_error(&self, key: &Key, error: &CacheError) {
        bump(&self.stats.l2_errors);
        tracing::debug!(key = %key, %error, "L2 call failed or skipped; serving without it");
    }

    /// Records which tier answered on the caller's span, when it has a `tier` field (the
    /// facade's `authenticate` span has one, for user records).
    fn answered_by(&self, tier: &'static str) {
        if self.kind == KeyKind::User {
            tracing::Span::current().record("tier", tier);
        }
    }

    fn join_flight<'t>(&'t self, id: &'t str) -> (FlightGuard<'t, T>, Arc<Flight<T>>) {
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
        let membership = FlightGuard {
            tier: self,
            id,
            cell: Some(Arc::clone(&cell)),
        };
        (membership, cell)
    }
}

/// Frees an id for the next background refresh when the current one ends, however it ends.
struct RefreshGuard<'t, T> {
    core: &'t Core<T>,
    id: &'t Arc<str>,
}

impl<T> Drop for RefreshGuard<'_, T> {
    fn drop(&mut self) {
        self.core.lock_refreshing().remove(self.id);
    }
}

/// A caller's membership in a flight; the last one out (or the first after the answer
/// is known) removes the flight, unless it was already replaced.
struct FlightGuard<'t, T> {
    tier: &'t Core<T>,
    id: &'t str,
    /// `Some` until dropped: the reference is released under the map's lock, so the
    /// last of several members leaving at once always sees itself as the last.
    cell: Option<Arc<Flight<T>>>,
}

impl<T> Drop for FlightGuard<'_, T> {
    fn drop(&mut self) {
        let Some(cell) = self.cell.take() else { return };
        let mut flights = self.tier.lock_flights();
        let ours = flights
            .get(self.id)
            .is_some_and(|entry| Arc::ptr_eq(entry, &cell));
        let answered = cell.initialized();
        // Released while the lock is held: every member drops its reference under the
        // same lock, so the count below is exact — no two members can both see the other.
        drop(cell);
        if ours {
            let nobody_else = flights
                .get(self.id)
                .is_some_and(|entry| Arc::strong_count(entry) == 1);
            if answered || nobody_else {
                flights.remove(self.id);
            }
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
    use crate::test_support::{HeldL1, RecordingL1};
    use crate::testkit::{FlakyCache, Mode};
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
            rig.tier.core.lock_flights().is_empty(),
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
    async fn a_poisoned_entry_is_a_miss_and_is_overwritten_by_the_next_fill() {
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
        assert!(
            rig.l2.raw_get(&key("42")).is_some(),
            "readers never delete: only a fill that saw the entry replaces it"
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
    async fn entries_of_another_signing_key_are_misses_and_left_alone() {
        let shared = Arc::new(FlakyCache::default());
        let writer = rig_with(shared.clone(), &Ttls::default());
        writer.tier.set("42", String::from("ada")).await.unwrap();
        let reader: Tiered<String> = Tiered::builder(KeyKind::User)
            .l2(guarded(shared.clone()))
            .codec(EnvelopeCodec::new().with_signing_key(SigningKey::new([1; 32]).unwrap()))
            .build();
        assert_eq!(reader.get("42").await.unwrap(), None);
        assert_eq!(reader.stats().decode_failures, 1);
        // Left for the instances that can read it (a rotation in progress).
        assert!(shared.raw_get(&key("42")).is_some());
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
        mock.expect_set_if_unchanged()
            .times(1)
            .returning(|_, _, _, _| Err(CacheError::unavailable("connection reset")));
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
                key.as_str() == "authcache:revoked:fp" && *ttl == Duration::from_secs(7)
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
        let tombstoned = |l2: &FlakyCache| l2.raw_get(&key("42")).is_some_and(|e| is_tombstone(&e));
        assert!(l1.get("42").is_none() && tombstoned(&l2));
        assert_eq!(
            tier.get("42").await.unwrap(),
            None,
            "a tombstone reads as a miss"
        );
        // A zero TTL means "do not cache": it invalidates.
        tier.set_with_ttl("42", String::from("ada"), Duration::ZERO)
            .await
            .unwrap();
        assert!(tombstoned(&l2));
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
        assert_eq!(tier.stats().pending_invalidations, 1, "the announcement");
        rig.l2.set_mode(Mode::Failing);
        assert!(tier.set("42", String::from("new")).await.is_err());
        assert_eq!(
            value(&tier.get("42").await.unwrap()),
            Some("new"),
            "a write-through L2 refused is in force here"
        );
        assert!(tier.delete("42").await.unwrap_err().is_unavailable());
        assert_eq!(tier.get("42").await.unwrap(), None);
        let stats = tier.stats();
        assert_eq!((stats.publish_errors, stats.pending_invalidations), (3, 1));
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
        assert!(rig.tier.core.lock_flights().is_empty());
        // A lone cancelled caller leaves no flight behind either.
        let lone = tokio::time::timeout(
            Duration::from_millis(1),
            rig.tier
                .get_or_load("7", loader(&calls, Duration::from_secs(1), None)),
        );
        assert!(lone.await.is_err());
        assert!(rig.tier.core.lock_flights().is_empty());
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
        assert_send(tier.retry_pending());
        assert_send(tier.get_or_load_fetched("1", || async { Ok::<_, io::Error>(None) }));
        assert_send(tier.get_or_load_untrusted_fetched("1", || async { Ok::<_, io::Error>(None) }));
    }

    /// Instance A's load reads the old value; instance B (same L2, no bus) invalidates
    /// while A's loader is held; A's fill must not land in L2 or in A's L1.
    #[tokio::test(start_paused = true)]
    async fn a_fill_that_read_before_another_instances_invalidation_never_lands() {
        let shared = Arc::new(FlakyCache::default());
        let a = rig_with(shared.clone(), &Ttls::default());
        let b = rig_with(shared.clone(), &Ttls::default());
        let release = Arc::new(tokio::sync::Notify::new());
        let slow = tokio::spawn({
            let (tier, release) = (Arc::clone(&a.tier), Arc::clone(&release));
            async move {
                let load = || async move {
                    release.notified().await;
                    Ok::<_, io::Error>(Some(String::from("admin")))
                };
                tier.get_or_load("42", load).await
            }
        });
        while a.tier.stats().loads == 0 {
            tokio::task::yield_now().await;
        }
        b.tier.delete("42").await.unwrap();
        release.notify_one();
        assert_eq!(
            value(&slow.await.unwrap().unwrap()),
            Some("admin"),
            "served once"
        );
        assert_eq!(a.tier.stats().stale_fills, 1);
        assert!(shared.raw_get(&key("42")).is_some_and(|e| is_tombstone(&e)));
        let calls = Arc::new(AtomicUsize::new(0));
        assert_eq!(
            value(&a.load("42", &calls, Some("viewer")).await),
            Some("viewer")
        );
        assert_eq!(
            value(&b.load("42", &calls, Some("viewer")).await),
            Some("viewer")
        );
    }

    /// A fill that passed every check before an invalidation began, and whose L1 insert
    /// lands only after the invalidation returned (the thread was preempted in between):
    /// the very next read on this instance must not be served the value it read. The
    /// insert is held on the filling thread, so the interleaving is exact, not hoped for.
    #[tokio::test]
    async fn a_fill_inserting_after_an_invalidation_returned_is_never_served() {
        let l1 = Arc::new(HeldL1::new("role-1"));
        let l2 = Arc::new(FlakyCache::default());
        let tier = Arc::new(
            Tiered::builder(KeyKind::Perms)
                .l1(l1.clone())
                .l2(guarded(l2.clone()))
                .build(),
        );
        let filler = std::thread::spawn({
            let tier = Arc::clone(&tier);
            move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(tier.get_or_load("role-1", || async {
                    Ok::<_, io::Error>(Some(String::from("v4")))
                }))
            }
        });
        l1.wait_for_insert();
        tier.delete("role-1").await.unwrap();
        l1.let_insert();
        let calls = Arc::new(AtomicUsize::new(0));
        let next = tier
            .get_or_load("role-1", loader(&calls, Duration::ZERO, Some("v5")))
            .await
            .unwrap();
        l1.let_go();
        assert_eq!(
            value(&filler.join().unwrap().unwrap()),
            Some("v4"),
            "the filler's own caller began before the invalidation: v4 is its answer"
        );
        assert_eq!(
            value(&next),
            Some("v5"),
            "a read after the invalidation returned was served what a fill read before it"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    /// The same with a write-through (`set`) from the other instance.
    #[tokio::test(start_paused = true)]
    async fn a_fill_never_overwrites_a_newer_write_through() {
        let shared = Arc::new(FlakyCache::default());
        let a = rig_with(shared.clone(), &Ttls::default());
        let b = rig_with(shared, &Ttls::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let slow = tokio::spawn({
            let tier = Arc::clone(&a.tier);
            let load = loader(&calls, Duration::from_secs(1), Some("old"));
            async move { tier.get_or_load("42", load).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        b.tier.set("42", String::from("new")).await.unwrap();
        assert_eq!(value(&slow.await.unwrap().unwrap()), Some("old"));
        assert_eq!(value(&a.load("42", &calls, Some("x")).await), Some("new"));
        assert_eq!(a.tier.stats().stale_fills, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_loader_times_out_every_waiter_and_frees_the_flight() {
        let rig = rig();
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let tier = Arc::clone(&rig.tier);
                tokio::spawn(async move {
                    let hung = || std::future::pending::<io::Result<Option<String>>>();
                    tier.get_or_load("42", hung).await
                })
            })
            .collect();
        for task in tasks {
            let error = task.await.unwrap().unwrap_err();
            assert!(matches!(error, LoadError::Timeout(t) if t == DEFAULT_LOAD_TIMEOUT));
        }
        assert_eq!(rig.tier.stats().in_flight, 0);
        let calls = Arc::new(AtomicUsize::new(0));
        assert_eq!(
            value(&rig.load("42", &calls, Some("ada")).await),
            Some("ada")
        );
    }

    /// Many waiters aborted at once, on several threads: the last one out removes the
    /// flight, whatever the interleaving of their drops.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn aborted_waiters_never_leak_a_flight() {
        let rig = rig();
        for round in 0..50 {
            let id = format!("id-{round}");
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let (tier, id) = (Arc::clone(&rig.tier), id.clone());
                    tokio::spawn(async move {
                        let hung = || std::future::pending::<io::Result<Option<String>>>();
                        tier.get_or_load(&id, hung).await
                    })
                })
                .collect();
            while rig.tier.stats().coalesced < (round + 1) * 7 {
                tokio::task::yield_now().await;
            }
            for task in &tasks {
                task.abort();
            }
            for task in tasks {
                assert!(task.await.unwrap_err().is_cancelled());
            }
        }
        assert_eq!(rig.tier.stats().in_flight, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_value_that_fails_validation_is_never_served() {
        let shared = Arc::new(FlakyCache::default());
        let writer = rig_with(shared.clone(), &Ttls::default());
        writer
            .tier
            .set("42", String::from("someone-else"))
            .await
            .unwrap();
        let reader: Tiered<String> = Tiered::builder(KeyKind::User)
            .l2(guarded(shared))
            .validate(|id, value: &String| value.as_str() == id)
            .build();
        assert_eq!(reader.get("42").await.unwrap(), None);
        assert_eq!(reader.stats().decode_failures, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn untrusted_ids_keep_their_absence_out_of_l2() {
        let rig = rig();
        let calls = Arc::new(AtomicUsize::new(0));
        for n in 0..100 {
            let load = loader(&calls, Duration::ZERO, None);
            let found = rig
                .tier
                .get_or_load_untrusted(&format!("made-up-{n}"), load)
                .await;
            assert_eq!(found.unwrap(), None);
        }
        assert_eq!(rig.l2.calls(), 100, "one read each, no write");
        let load = loader(&calls, Duration::ZERO, None);
        assert_eq!(
            rig.tier
                .get_or_load_untrusted("made-up-1", load)
                .await
                .unwrap(),
            None
        );
        assert_eq!(calls.load(Ordering::SeqCst), 100, "remembered in L1");
    }

    /// One request through two tiers on a hung L2 pays one timeout: the second tier's
    /// read is skipped, before the breaker has opened.
    #[tokio::test(start_paused = true)]
    async fn one_request_pays_one_l2_timeout_across_tiers() {
        let l2 = Arc::new(FlakyCache::default());
        let guard = guarded(l2.clone());
        let tier =
            |kind| -> Tiered<String> { Tiered::builder(kind).l2(Arc::clone(&guard)).build() };
        let (users, roles) = (tier(KeyKind::User), tier(KeyKind::Roles));
        l2.set_mode(Mode::Hanging);
        let start = Instant::now();
        crate::breaker::with_l2_budget(async {
            let ada = || async { Ok::<_, io::Error>(Some(String::from("ada"))) };
            users.get_or_load("42", ada).await.unwrap();
            roles.get_or_load("42", ada).await.unwrap();
            users.delete("43").await.unwrap_err();
        })
        .await;
        assert_eq!(start.elapsed(), crate::breaker::DEFAULT_TIMEOUT);
        assert_eq!(guard.stats().timeouts, 1);
        assert_eq!(guard.stats().state, crate::BreakerState::Closed);
    }

    /// An L2 entry for `id` holding `value`, expiring `offset_ms` from now (negative: ago).
    fn entry_expiring(id: &str, value: &str, offset_ms: i64) -> Bytes {
        let expires_at = unix_ms().saturating_add_signed(offset_ms);
        EnvelopeCodec::default()
            .encode(&key(id), &(expires_at, Some(value)))
            .unwrap()
    }

    fn failing() -> impl FnOnce() -> Pin<Box<dyn Future<Output = io::Result<Option<String>>> + Send>>
    {
        || Box::pin(async { Err(io::Error::other("repository down")) })
    }

    /// What the reloader of [`reloading_tier`] answers (`None`: it fails) and how often
    /// it was called; each call waits for a permit of `gate`.
    struct Reloads {
        answer: std::sync::Mutex<Option<&'static str>>,
        calls: AtomicUsize,
        gate: tokio::sync::Semaphore,
    }

    impl Default for Reloads {
        fn default() -> Self {
            Self {
                answer: std::sync::Mutex::default(),
                calls: AtomicUsize::new(0),
                gate: tokio::sync::Semaphore::new(0),
            }
        }
    }

    fn reloading_tier(
        l2: &Arc<FlakyCache>,
        l1: Option<Arc<RecordingL1<String>>>,
        reloads: &Arc<Reloads>,
        ttls: &Ttls,
    ) -> Tiered<String> {
        let reloads = Arc::clone(reloads);
        let builder = Tiered::builder(KeyKind::User)
            .ttls(ttls)
            .l2(guarded(l2.clone()))
            .reloader(move |_id| {
                let reloads = Arc::clone(&reloads);
                Box::pin(async move {
                    reloads.calls.fetch_add(1, Ordering::SeqCst);
                    reloads.gate.acquire().await?.forget();
                    let answer = *reloads.answer.lock().unwrap();
                    answer
                        .map(|value| Some(value.to_owned()))
                        .ok_or_else(|| io::Error::other("repository down").into())
                })
            });
        match l1 {
            Some(l1) => builder.l1(l1).build(),
            None => builder.build(),
        }
    }

    /// Lets spawned tasks run until `done` holds (bounded: the clock is paused).
    async fn settle(mut done: impl FnMut() -> bool) {
        for _ in 0..1_000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("background work did not settle");
    }

    fn raw_value(l2: &FlakyCache, id: &str) -> Option<String> {
        let bytes = l2.raw_get(&key(id))?;
        let (_, value): (u64, Option<String>) =
            EnvelopeCodec::default().decode(&key(id), &bytes).ok()?;
        value
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_loader_serves_the_expired_value_within_its_grace() {
        let rig = rig();
        let entry = entry_expiring("42", "old", -1_000);
        rig.l2.raw_set(&key("42"), entry, Duration::from_secs(60));
        let found = rig.tier.get_or_load("42", failing()).await.unwrap();
        assert_eq!(value(&found), Some("old"));
        let stats = rig.tier.stats();
        assert_eq!((stats.stale_served, stats.load_errors), (1, 1));
        assert_eq!(rig.l1.ttls().last().map(|(_, ttl)| *ttl), Some(STALE_RETRY));
        // Kept in L1 briefly: the failing loader is not asked on every request.
        let calls = Arc::new(AtomicUsize::new(0));
        assert_eq!(
            value(&rig.load("42", &calls, Some("new")).await),
            Some("old")
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        // Once the loader answers again, its answer replaces the stale value.
        tokio::time::advance(STALE_RETRY).await;
        assert_eq!(
            value(&rig.load("42", &calls, Some("new")).await),
            Some("new")
        );
        assert_eq!(raw_value(&rig.l2, "42").as_deref(), Some("new"));
    }

    #[tokio::test(start_paused = true)]
    async fn past_its_grace_invalidated_or_without_grace_a_failure_is_an_error() {
        let rig = rig();
        let long_ago = entry_expiring("1", "old", -301_000);
        rig.l2.raw_set(&key("1"), long_ago, Duration::from_secs(60));
        assert!(rig.tier.get_or_load("1", failing()).await.is_err());
        rig.l2.raw_set(
            &key("2"),
            entry_expiring("2", "old", -1_000),
            Duration::from_secs(60),
        );
        rig.tier.delete("2").await.unwrap();
        assert!(
            rig.tier.get_or_load("2", failing()).await.is_err(),
            "invalidated"
        );
        let no_grace = Ttls {
            stale_grace: Duration::ZERO,
            ..Ttls::default()
        };
        let off = rig_with(Arc::default(), &no_grace);
        off.l2.raw_set(
            &key("3"),
            entry_expiring("3", "old", -1_000),
            Duration::from_secs(60),
        );
        assert!(off.tier.get_or_load("3", failing()).await.is_err());
        assert_eq!(
            rig.tier.stats().stale_served + off.tier.stats().stale_served,
            0
        );
    }

    #[tokio::test(start_paused = true)]
    async fn l2_keeps_values_for_their_grace_but_not_negative_entries() {
        for (grace, kept) in [(Duration::from_secs(300), true), (Duration::ZERO, false)] {
            let ttls = Ttls {
                stale_grace: grace,
                jitter: 0.0,
                ..Ttls::default()
            };
            let rig = rig_with(Arc::default(), &ttls);
            let calls = Arc::new(AtomicUsize::new(0));
            rig.load("ada", &calls, Some("ada")).await;
            rig.load("nobody", &calls, None).await;
            tokio::time::advance(ttls.user + Duration::from_secs(1)).await;
            assert_eq!(
                rig.l2.raw_get(&key("ada")).is_some(),
                kept,
                "grace {grace:?}"
            );
            assert!(rig.l2.raw_get(&key("nobody")).is_none());
            tokio::time::advance(grace).await;
            assert!(rig.l2.raw_get(&key("ada")).is_none());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_value_in_its_refresh_window_is_reloaded_once_in_the_background() {
        let l2 = Arc::new(FlakyCache::default());
        let reloads = Arc::new(Reloads::default());
        *reloads.answer.lock().unwrap() = Some("new");
        // No L1: every read reaches L2 and sees the value due for a refresh.
        let tier = reloading_tier(&l2, None, &reloads, &Ttls::default());
        let due = entry_expiring("42", "old", 10_000);
        l2.raw_set(&key("42"), due, Duration::from_secs(60));
        let callers = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            let load = loader(&callers, Duration::ZERO, Some("caller"));
            assert_eq!(
                value(&tier.get_or_load("42", load).await.unwrap()),
                Some("old")
            );
        }
        settle(|| reloads.calls.load(Ordering::SeqCst) == 1).await;
        assert_eq!(
            callers.load(Ordering::SeqCst),
            0,
            "no caller waited for a load"
        );
        assert_eq!(tier.stats().refreshes, 1, "one reload however many reads");
        reloads.gate.add_permits(1);
        settle(|| raw_value(&l2, "42").as_deref() == Some("new")).await;
        assert_eq!(value(&tier.get("42").await.unwrap()), Some("new"));
        assert_eq!(reloads.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn l1_entries_end_where_the_refresh_window_begins() {
        let ttls = Ttls {
            user: Duration::from_secs(20),
            jitter: 0.0,
            ..Ttls::default()
        };
        let l2 = Arc::new(FlakyCache::default());
        let l1 = Arc::new(RecordingL1::default());
        let reloads = Arc::new(Reloads::default());
        let tier = Tiered::builder(KeyKind::User)
            .ttls(&ttls)
            .l1(l1.clone())
            .l2(guarded(l2.clone()))
            .build();
        let calls = Arc::new(AtomicUsize::new(0));
        tier.get_or_load("plain", loader(&calls, Duration::ZERO, Some("a")))
            .await
            .unwrap();
        let refreshing = reloading_tier(&l2, Some(l1.clone()), &reloads, &ttls);
        refreshing
            .get_or_load("due", loader(&calls, Duration::ZERO, Some("b")))
            .await
            .unwrap();
        let recorded = l1.ttls();
        assert_eq!(
            recorded[0],
            (String::from("plain"), Duration::from_secs(20))
        );
        assert_eq!(recorded[1], (String::from("due"), Duration::from_secs(18)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresh_that_races_an_invalidation_never_lands() {
        let l2 = Arc::new(FlakyCache::default());
        let reloads = Arc::new(Reloads::default());
        *reloads.answer.lock().unwrap() = Some("new");
        let tier = reloading_tier(&l2, None, &reloads, &Ttls::default());
        l2.raw_set(
            &key("42"),
            entry_expiring("42", "old", 10_000),
            Duration::from_secs(60),
        );
        assert_eq!(value(&tier.get("42").await.unwrap()), Some("old"));
        settle(|| reloads.calls.load(Ordering::SeqCst) == 1).await;
        tier.delete("42").await.unwrap();
        reloads.gate.add_permits(1);
        settle(|| tier.stats().stale_fills == 1).await;
        let left = l2.raw_get(&key("42")).unwrap();
        assert!(
            is_tombstone(&left),
            "the reload read before the invalidation"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_failure_expired_values_are_served_at_once_and_retried_behind() {
        let l2 = Arc::new(FlakyCache::default());
        let l1 = Arc::new(RecordingL1::default());
        let reloads = Arc::new(Reloads::default());
        let tier = reloading_tier(&l2, Some(l1), &reloads, &Ttls::default());
        l2.raw_set(
            &key("42"),
            entry_expiring("42", "old", -1_000),
            Duration::from_secs(60),
        );
        let first = tier.get_or_load("42", failing()).await.unwrap();
        assert_eq!(value(&first), Some("old"), "served stale after the failure");
        tokio::time::advance(STALE_RETRY).await;
        // The loader failed moments ago: nobody waits for it again, one reload retries.
        let callers = Arc::new(AtomicUsize::new(0));
        let load = loader(&callers, Duration::ZERO, Some("caller"));
        assert_eq!(
            value(&tier.get_or_load("42", load).await.unwrap()),
            Some("old")
        );
        assert_eq!(callers.load(Ordering::SeqCst), 0);
        settle(|| reloads.calls.load(Ordering::SeqCst) == 1).await;
        *reloads.answer.lock().unwrap() = Some("new");
        reloads.gate.add_permits(1);
        settle(|| raw_value(&l2, "42").as_deref() == Some("new")).await;
        let stats = tier.stats();
        assert_eq!((stats.stale_served, stats.refreshes), (2, 1));
        assert!(
            !tier.core.failures.recent("42"),
            "a successful reload ends the failure"
        );
    }

    /// A shared tier that serves reads but refuses writes on command, as Redis does under
    /// `noeviction` at its memory limit, on `MISCONF`, as a `READONLY` replica or for an
    /// ACL without `@write`; and that can hold the next conditional fill before it lands.
    #[derive(Debug, Default)]
    struct WriteRefusing {
        inner: FlakyCache,
        refusing: std::sync::atomic::AtomicBool,
        hold_fill: std::sync::atomic::AtomicBool,
        fill_reached: tokio::sync::Notify,
        fill_released: tokio::sync::Notify,
    }

    impl WriteRefusing {
        fn refuse_writes(&self, refusing: bool) {
            self.refusing.store(refusing, Ordering::SeqCst);
        }

        fn gate(&self) -> crate::Result<()> {
            if self.refusing.load(Ordering::SeqCst) {
                return Err(CacheError::unavailable(
                    "OOM command not allowed when used memory > 'maxmemory'",
                ));
            }
            Ok(())
        }
    }

    #[async_trait::async_trait]
    impl Cache for WriteRefusing {
        async fn get(&self, key: &Key) -> crate::Result<Option<Bytes>> {
            self.inner.get(key).await
        }

        async fn set(&self, key: &Key, value: Bytes, ttl: Duration) -> crate::Result<()> {
            self.gate()?;
            self.inner.set(key, value, ttl).await
        }

        async fn delete(&self, key: &Key) -> crate::Result<bool> {
            self.gate()?;
            self.inner.delete(key).await
        }

        async fn set_if_unchanged(
            &self,
            key: &Key,
            expected: Option<Bytes>,
            value: Bytes,
            ttl: Duration,
        ) -> crate::Result<bool> {
            if self.hold_fill.swap(false, Ordering::SeqCst) {
                self.fill_reached.notify_one();
                self.fill_released.notified().await;
            }
            self.gate()?;
            self.inner.set_if_unchanged(key, expected, value, ttl).await
        }
    }

    /// A bus that records what it carried, and refuses on command.
    #[derive(Debug, Default)]
    struct RecordingBus {
        carried: std::sync::Mutex<Vec<String>>,
        down: std::sync::atomic::AtomicBool,
    }

    impl RecordingBus {
        fn carried(&self) -> Vec<String> {
            self.carried.lock().unwrap().clone()
        }
    }

    #[async_trait::async_trait]
    impl InvalidationPublisher for RecordingBus {
        async fn publish(&self, key: &Key) -> crate::Result<()> {
            if self.down.load(Ordering::SeqCst) {
                return Err(CacheError::unavailable("bus down"));
            }
            self.carried.lock().unwrap().push(key.as_str().to_owned());
            Ok(())
        }
    }

    /// One instance on a shared tier that may refuse writes, with a recording bus.
    struct RefusingRig {
        tier: Arc<Tiered<String>>,
        l2: Arc<WriteRefusing>,
        bus: Arc<RecordingBus>,
    }

    fn refusing_rig() -> RefusingRig {
        let (l2, bus) = (Arc::new(WriteRefusing::default()), Arc::default());
        let tier = Tiered::builder(KeyKind::User)
            .l1(Arc::new(RecordingL1::default()))
            .l2(guarded(l2.clone()))
            .publisher(Arc::clone(&bus) as Arc<dyn InvalidationPublisher>)
            .build();
        RefusingRig {
            tier: Arc::new(tier),
            l2,
            bus,
        }
    }

    const KEY_42: &str = "authcache:v1:user:42";

    #[tokio::test(start_paused = true)]
    async fn a_failed_invalidation_is_in_force_here_at_once_and_retried() {
        let rig = refusing_rig();
        let calls = Arc::new(AtomicUsize::new(0));
        let load = |answer| loader(&calls, Duration::ZERO, Some(answer));
        rig.tier.get_or_load("42", load("old")).await.unwrap();
        rig.l2.refuse_writes(true);
        // As the facade calls it: one L2 budget for the request, spent by the refusal.
        let refused = with_l2_budget(rig.tier.delete("42")).await.unwrap_err();
        assert!(refused.is_unavailable());
        assert!(rig.bus.carried().is_empty(), "the publish was skipped");
        assert_eq!(rig.tier.stats().pending_invalidations, 1);
        assert_eq!(raw_value(&rig.l2.inner, "42").as_deref(), Some("old"));
        // The next read here must not read the old entry back from L2.
        let next = rig.tier.get_or_load("42", load("new")).await.unwrap();
        assert_eq!(value(&next), Some("new"));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        rig.tier.evict_local("42");
        assert_eq!(
            rig.tier.get("42").await.unwrap(),
            None,
            "L2 is not read while the invalidation is pending"
        );
        assert_eq!(rig.tier.retry_pending().await, 1, "still refused");
        rig.l2.refuse_writes(false);
        assert_eq!(rig.tier.retry_pending().await, 0);
        assert!(
            rig.l2
                .inner
                .raw_get(&key("42"))
                .is_some_and(|e| is_tombstone(&e))
        );
        assert_eq!(rig.bus.carried(), [KEY_42]);
        assert_eq!(rig.tier.stats().pending_invalidations, 0);
        // Landed: L2 is read and filled again.
        let after = rig.tier.get_or_load("42", load("newer")).await.unwrap();
        assert_eq!(value(&after), Some("newer"));
        assert_eq!(raw_value(&rig.l2.inner, "42").as_deref(), Some("newer"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_write_through_is_served_here_and_its_l2_entry_is_never_read_back() {
        let rig = refusing_rig();
        let calls = Arc::new(AtomicUsize::new(0));
        let load = |answer| loader(&calls, Duration::ZERO, Some(answer));
        rig.tier.get_or_load("42", load("old")).await.unwrap();
        rig.l2.refuse_writes(true);
        let write = rig.tier.set("42", String::from("new"));
        assert!(with_l2_budget(write).await.is_err());
        let next = rig
            .tier
            .get_or_load("42", load("repository"))
            .await
            .unwrap();
        assert_eq!(value(&next), Some("new"), "the write-through, from L1");
        tokio::time::advance(Ttls::default().l1_cap).await;
        let later = rig
            .tier
            .get_or_load("42", load("repository"))
            .await
            .unwrap();
        assert_eq!(value(&later), Some("repository"), "not the old L2 entry");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        rig.l2.refuse_writes(false);
        assert_eq!(rig.tier.retry_pending().await, 0);
        assert!(
            rig.l2
                .inner
                .raw_get(&key("42"))
                .is_some_and(|e| is_tombstone(&e))
        );
        assert_eq!(rig.bus.carried(), [KEY_42]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_announcement_alone_is_retried_without_barring_l2() {
        let rig = refusing_rig();
        rig.bus.down.store(true, Ordering::SeqCst);
        rig.tier.delete("42").await.unwrap();
        assert_eq!(rig.tier.stats().pending_invalidations, 1);
        // The tombstone landed, so L2 is still read here (another instance's fill).
        rig.l2.inner.raw_set(
            &key("42"),
            entry_expiring("42", "v2", 60_000),
            TOMBSTONE_TTL,
        );
        assert_eq!(value(&rig.tier.get("42").await.unwrap()), Some("v2"));
        assert_eq!(rig.tier.retry_pending().await, 1, "the bus is still down");
        rig.bus.down.store(false, Ordering::SeqCst);
        assert_eq!(rig.tier.retry_pending().await, 0);
        assert_eq!(rig.bus.carried(), [KEY_42]);
        assert_eq!(
            raw_value(&rig.l2.inner, "42").as_deref(),
            Some("v2"),
            "only the announcement was owed"
        );
    }

    /// A fill that passed its version check, then an invalidation whose tombstone L2
    /// refused, then the fill's conditional write landing (L2 took writes again): L2 now
    /// holds a value read before the invalidation, and no read here may serve it.
    #[tokio::test(start_paused = true)]
    async fn a_fill_racing_a_failed_invalidation_never_lands() {
        let rig = refusing_rig();
        rig.l2.hold_fill.store(true, Ordering::SeqCst);
        let calls = Arc::new(AtomicUsize::new(0));
        let slow = tokio::spawn({
            let tier = Arc::clone(&rig.tier);
            let load = loader(&calls, Duration::ZERO, Some("old"));
            async move { tier.get_or_load("42", load).await }
        });
        rig.l2.fill_reached.notified().await;
        rig.l2.refuse_writes(true);
        assert!(rig.tier.delete("42").await.is_err());
        rig.l2.refuse_writes(false);
        rig.l2.fill_released.notify_one();
        assert_eq!(value(&slow.await.unwrap().unwrap()), Some("old"));
        assert_eq!(raw_value(&rig.l2.inner, "42").as_deref(), Some("old"));
        let next = rig
            .tier
            .get_or_load("42", loader(&calls, Duration::ZERO, Some("new")))
            .await
            .unwrap();
        assert_eq!(value(&next), Some("new"));
        assert_eq!(rig.tier.retry_pending().await, 0);
        assert!(
            rig.l2
                .inner
                .raw_get(&key("42"))
                .is_some_and(|e| is_tombstone(&e)),
            "the retry's tombstone replaces the fill"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_failing_id_never_makes_another_id_be_served_stale() {
        let l2 = Arc::new(FlakyCache::default());
        let reloads = Arc::new(Reloads::default());
        let l1 = Some(Arc::new(RecordingL1::default()));
        let tier = reloading_tier(&l2, l1, &reloads, &Ttls::default());
        for id in ["a", "b"] {
            let expired = entry_expiring(id, &format!("old-{id}"), -1_000);
            l2.raw_set(&key(id), expired, Duration::from_secs(60));
        }
        let a = tier.get_or_load("a", failing()).await.unwrap();
        assert_eq!(value(&a), Some("old-a"), "a's loader failed: stale");
        let calls = Arc::new(AtomicUsize::new(0));
        let load = loader(&calls, Duration::ZERO, Some("new-b"));
        let b = tier.get_or_load("b", load).await.unwrap();
        assert_eq!(value(&b), Some("new-b"), "b's loader answers: fresh");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(tier.stats().stale_served, 1);
        assert!(tier.core.failures.recent("a") && !tier.core.failures.recent("b"));
    }

    #[tokio::test(start_paused = true)]
    async fn failure_memory_is_bounded_and_forgets_the_oldest_first() {
        let failures = Failures::default();
        failures.record("first");
        tokio::time::advance(Duration::from_millis(1)).await;
        for n in 1..FAILURE_MEMORY_CAP {
            failures.record(&n.to_string());
        }
        tokio::time::advance(Duration::from_millis(1)).await;
        failures.record("extra");
        assert_eq!(failures.lock().at.len(), FAILURE_MEMORY_CAP);
        assert!(!failures.recent("first") && failures.recent("extra"));
        tokio::time::advance(FAILURE_MEMORY).await;
        failures.record("later");
        assert_eq!(failures.lock().at.len(), 1, "expired failures go first");
        assert!(failures.forget("later") && !failures.forget("later"));
        assert_eq!(failures.count.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn fetched_values_say_until_when_they_may_be_served() {
        let ttls = Ttls {
            jitter: 0.0,
            ..Ttls::default()
        };
        let rig = rig_with(Arc::default(), &ttls);
        let calls = Arc::new(AtomicUsize::new(0));
        let load = |answer| loader(&calls, Duration::ZERO, Some(answer));
        // A load: the L1 TTL it was kept with.
        let loaded_at = Instant::now();
        let fresh = rig
            .tier
            .get_or_load_fetched("a", load("ada"))
            .await
            .unwrap();
        assert_eq!(fresh.until, loaded_at + ttls.l1_cap);
        // An L1 hit: the deadline its entry was inserted with.
        rig.tier
            .get_or_load_with_ttl("t", || async {
                Ok::<_, io::Error>(Some((String::from("x"), Duration::from_secs(5))))
            })
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        let hit = rig.tier.get_or_load_fetched("t", load("-")).await.unwrap();
        assert_eq!(hit.until, loaded_at + Duration::from_secs(5));
        assert_eq!(hit.remaining(), Duration::from_secs(3));
        let hit = rig.tier.get_or_load_fetched("a", load("-")).await.unwrap();
        assert_eq!(hit.until, fresh.until);
        assert_eq!(rig.tier.stats().l1_hits, 2);
        // An L2 hit: at most its soft expiry.
        rig.l2.raw_set(
            &key("l2"),
            entry_expiring("l2", "y", 8_000),
            Duration::from_secs(60),
        );
        let from_l2 = rig.tier.get_or_load_fetched("l2", load("-")).await.unwrap();
        assert_eq!(value(&from_l2.value), Some("y"));
        assert!(from_l2.until <= Instant::now() + Duration::from_secs(8));
        // A stale value: STALE_RETRY at most.
        rig.l2.raw_set(
            &key("s"),
            entry_expiring("s", "old", -1_000),
            Duration::from_secs(60),
        );
        let stale = rig.tier.get_or_load_fetched("s", failing()).await.unwrap();
        assert_eq!(value(&stale.value), Some("old"));
        assert!(stale.until <= Instant::now() + STALE_RETRY);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_load_that_raced_a_change_is_served_once_and_never_kept() {
        let rig = rig();
        let calls = Arc::new(AtomicUsize::new(0));
        let slow = tokio::spawn({
            let tier = Arc::clone(&rig.tier);
            let load = loader(&calls, Duration::from_secs(1), Some("old"));
            async move { tier.get_or_load_fetched("42", load).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        rig.tier.delete("42").await.unwrap();
        let raced = slow.await.unwrap().unwrap();
        assert_eq!(value(&raced.value), Some("old"));
        assert_eq!(raced.remaining(), Duration::ZERO);
    }
}
