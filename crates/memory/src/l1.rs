//! [`MemoryL1`]: the typed in-process tier, on quick_cache.
//!
//! Why not moka, which backs [`crate::MemoryCache`]: every moka `get` reads the clock,
//! records the entry's access time and pushes a read op onto a channel for its
//! maintenance (moka issue #498), and `authenticate` reads the L1 several times per
//! request, so that bookkeeping was most of a hit. A quick_cache `get` is a shard read
//! lock, a hash probe and a clone (one reference-count increment).
//!
//! quick_cache has no expiry of its own, so each entry carries its absolute deadline and a
//! read compares it with one clock read: an expired entry is a miss and is removed there
//! (lazily); one never read again is evicted by S3-FIFO like any other cold entry, so the
//! bound holds either way.

use std::fmt;
use std::num::NonZero;
use std::time::{Duration, Instant};

use authcache_core::{L1Cache, L1Entry};
use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{DefaultHashBuilder, OptionsBuilder, UnitWeighter};

/// 10,000 entries per kind: the active users of a busy instance over the L1 cap (30 s).
pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;

/// 32 entries: below this a shard is too small for S3-FIFO to tell hot from cold
/// (quick_cache's own sizing rule).
const MIN_SHARD_ENTRIES: u64 = 32;

/// Shards per core: quick_cache's default, so readers on different keys rarely share a lock.
const SHARDS_PER_CORE: usize = 4;

/// What the map holds for an id.
struct Slot<T> {
    entry: L1Entry<T>,
    /// `None` when the TTL reaches beyond what an `Instant` can represent: never expires.
    expires_at: Option<Instant>,
}

impl<T> Slot<T> {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|deadline| now < deadline)
    }
}

// Manual: deriving would require `T: Clone`, but only the `Arc` inside is cloned.
impl<T> Clone for Slot<T> {
    fn clone(&self) -> Self {
        Self {
            entry: self.entry.clone(),
            expires_at: self.expires_at,
        }
    }
}

/// Where a [`MemoryL1`] reads the time. Outside unit tests there is one variant, so the
/// match costs nothing; unit tests move a manual clock instead of sleeping.
enum Clock {
    System,
    #[cfg(test)]
    Manual(std::sync::Arc<tests::ManualClock>),
}

impl Clock {
    fn now(&self) -> Instant {
        match self {
            Self::System => Instant::now(),
            #[cfg(test)]
            Self::Manual(clock) => clock.now(),
        }
    }
}

/// An [`L1Cache`] on `quick_cache::sync::Cache`: at most `max_entries` entries (S3-FIFO
/// eviction), a TTL per entry, lookups by `&str` without allocating.
pub struct MemoryL1<T> {
    entries: Cache<Box<str>, Slot<T>>,
    clock: Clock,
}

impl<T: Send + Sync + 'static> Default for MemoryL1<T> {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ENTRIES)
    }
}

impl<T: Send + Sync + 'static> MemoryL1<T> {
    /// An L1 holding at most `max_entries` values and negative entries (`0` holds none).
    pub fn new(max_entries: u64) -> Self {
        Self::with_clock(max_entries, Clock::System)
    }

    fn with_clock(max_entries: u64, clock: Clock) -> Self {
        Self {
            entries: bounded_map(max_entries),
            clock,
        }
    }

    /// Entries currently held, including expired ones not yet read or evicted.
    pub fn entry_count(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Drops the entry for `id` if it is still expired at `now`; an entry inserted since it
    /// was read (with a later deadline) stays.
    fn remove_expired(&self, id: &str, now: Instant) {
        self.entries.remove_if(id, |slot| !slot.is_live(now));
    }
}

/// The map, holding at most `max_entries` in all. quick_cache bounds each shard, so the
/// bound is split evenly, rounded down by less than one entry per shard.
fn bounded_map<V: Clone>(max_entries: u64) -> Cache<Box<str>, V> {
    let shards = shard_count(max_entries);
    let capacity = max_entries / shards as u64 * shards as u64;
    let estimated_items = usize::try_from(capacity).unwrap_or(usize::MAX);
    let options = OptionsBuilder::new()
        .shards(shards)
        .estimated_items_capacity(estimated_items)
        .weight_capacity(capacity)
        .build();
    match options {
        Ok(options) => Cache::with_options(
            options,
            UnitWeighter,
            DefaultHashBuilder::default(),
            DefaultLifecycle::default(),
        ),
        // Not reached: `build` fails only when a required option is unset, and both are.
        Err(_) => Cache::new(estimated_items),
    }
}

/// A power of two (quick_cache's requirement): as many as the cores can use, but no
/// shard smaller than [`MIN_SHARD_ENTRIES`].
fn shard_count(max_entries: u64) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, NonZero::get);
    let mut shards = cores.saturating_mul(SHARDS_PER_CORE).next_power_of_two();
    while shards > 1 && max_entries / (shards as u64) < MIN_SHARD_ENTRIES {
        shards /= 2;
    }
    shards
}

impl<T> fmt::Debug for MemoryL1<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryL1")
            .field("entries", &self.entries.len())
            .field("max_entries", &self.entries.capacity())
            .finish()
    }
}

impl<T: Send + Sync + 'static> L1Cache<T> for MemoryL1<T> {
    fn get(&self, id: &str) -> Option<L1Entry<T>> {
        let slot = self.entries.get(id)?;
        let now = self.clock.now();
        if slot.is_live(now) {
            return Some(slot.entry);
        }
        self.remove_expired(id, now);
        None
    }

    fn insert(&self, id: &str, entry: L1Entry<T>, ttl: Duration) {
        if ttl.is_zero() {
            self.entries.remove(id);
            return;
        }
        let expires_at = self.clock.now().checked_add(ttl);
        self.entries
            .insert(Box::from(id), Slot { entry, expires_at });
    }

    fn remove(&self, id: &str) {
        self.entries.remove(id);
    }

    fn clear(&self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A clock that moves only when told to.
    pub(super) struct ManualClock(Mutex<Instant>);

    impl ManualClock {
        pub(super) fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }

        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    fn manual(max_entries: u64) -> (MemoryL1<String>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock(Mutex::new(Instant::now())));
        let l1 = MemoryL1::with_clock(max_entries, Clock::Manual(clock.clone()));
        (l1, clock)
    }

    fn present(value: &str) -> L1Entry<String> {
        L1Entry::present(Arc::new(value.to_owned()))
    }

    fn value_of(l1: &MemoryL1<String>, id: &str) -> Option<String> {
        l1.get(id)?.into_value().map(|value| (*value).clone())
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn insert_get_remove_clear() {
        let l1 = MemoryL1::<String>::default();
        assert!(l1.get("1").is_none());
        let value = Arc::new(String::from("ada"));
        l1.insert("1", L1Entry::present(Arc::clone(&value)), MINUTE);
        l1.insert("2", L1Entry::absent(), MINUTE);
        let hit = l1.get("1").unwrap().into_value().unwrap();
        assert!(
            Arc::ptr_eq(&hit, &value),
            "a hit hands out the same Arc, not a copy"
        );
        assert!(
            !l1.get("2").unwrap().is_present(),
            "negative entries are held"
        );
        l1.remove("1");
        assert!(l1.get("1").is_none());
        l1.insert("3", present("x"), MINUTE);
        l1.clear();
        assert!(l1.get("2").is_none() && l1.get("3").is_none());
        assert_eq!(l1.entry_count(), 0, "clear drops every entry");
        assert!(format!("{l1:?}").starts_with("MemoryL1"));
    }

    #[test]
    fn an_insert_replaces_the_value_and_its_ttl() {
        let (l1, clock) = manual(10);
        l1.insert("1", present("old"), MINUTE);
        l1.insert("1", present("new"), Duration::from_secs(5));
        assert_eq!(value_of(&l1, "1").as_deref(), Some("new"));
        clock.advance(Duration::from_secs(5));
        assert!(
            l1.get("1").is_none(),
            "the shorter TTL of the replacement holds"
        );
        assert_eq!(l1.entry_count(), 0);
    }

    #[test]
    fn clear_drops_the_values_themselves() {
        let l1 = MemoryL1::<String>::new(100);
        let value = Arc::new(String::from("ada"));
        for id in ["1", "2", "3"] {
            l1.insert(id, L1Entry::present(Arc::clone(&value)), MINUTE);
        }
        l1.clear();
        assert_eq!(Arc::strong_count(&value), 1, "no clone is left behind");
    }

    #[test]
    fn a_zero_ttl_removes() {
        let l1 = MemoryL1::<String>::new(10);
        l1.insert("1", present("x"), MINUTE);
        l1.insert("1", present("y"), Duration::ZERO);
        assert!(l1.get("1").is_none());
        assert_eq!(l1.entry_count(), 0);
    }

    #[test]
    fn each_entry_expires_at_its_own_deadline() {
        let (l1, clock) = manual(10);
        l1.insert("short", present("s"), Duration::from_secs(5));
        l1.insert("long", present("l"), Duration::from_secs(30));
        clock.advance(Duration::from_secs(5) - Duration::from_nanos(1));
        assert_eq!(value_of(&l1, "short").as_deref(), Some("s"));
        clock.advance(Duration::from_nanos(1));
        assert!(l1.get("short").is_none(), "expired at insert + ttl");
        assert_eq!(value_of(&l1, "long").as_deref(), Some("l"));
        clock.advance(Duration::from_secs(25));
        assert!(l1.get("long").is_none());
    }

    #[test]
    fn negative_entries_expire_too() {
        let (l1, clock) = manual(10);
        l1.insert("ghost", L1Entry::absent(), Duration::from_secs(30));
        clock.advance(Duration::from_secs(30));
        assert!(l1.get("ghost").is_none());
    }

    #[test]
    fn an_expired_entry_is_removed_when_read() {
        let (l1, clock) = manual(10);
        l1.insert("1", present("x"), Duration::from_secs(1));
        l1.insert("2", present("y"), MINUTE);
        clock.advance(Duration::from_secs(1));
        assert_eq!(l1.entry_count(), 2, "nothing sweeps in the background");
        assert!(l1.get("1").is_none());
        assert_eq!(l1.entry_count(), 1, "the read removed the expired entry");
    }

    #[test]
    fn the_lazy_removal_spares_an_entry_inserted_since_the_read() {
        let (l1, clock) = manual(10);
        l1.insert("1", present("stale"), Duration::from_secs(1));
        clock.advance(Duration::from_secs(1));
        let read_at = clock.now();
        // A writer refills the id between the reader's lookup and its removal.
        l1.insert("1", present("fresh"), MINUTE);
        l1.remove_expired("1", read_at);
        assert_eq!(value_of(&l1, "1").as_deref(), Some("fresh"));
    }

    #[test]
    fn a_ttl_beyond_the_clock_never_expires() {
        let (l1, clock) = manual(10);
        l1.insert("1", present("x"), Duration::MAX);
        clock.advance(Duration::from_secs(100 * 365 * 24 * 3600));
        assert_eq!(value_of(&l1, "1").as_deref(), Some("x"));
    }

    #[test]
    fn entries_expire_on_the_system_clock() {
        let l1 = MemoryL1::<String>::new(10);
        l1.insert("short", present("x"), Duration::from_nanos(1));
        l1.insert("long", present("y"), Duration::from_secs(600));
        // Bounded by count, not time: the monotonic clock passes 1 ns within a few reads.
        let expired = (0..1_000_000).any(|_| l1.get("short").is_none());
        assert!(expired, "a 1 ns entry was still served");
        assert!(l1.get("long").is_some());
    }

    #[test]
    fn it_is_bounded_by_entries() {
        for max in [0, 1, 7, 31, 100, 1_000, 1_001, 10_000] {
            let l1 = MemoryL1::<String>::new(max);
            let shards = l1.entries.num_shards() as u64;
            let capacity = l1.entries.capacity();
            assert!(
                capacity <= max && max - capacity < shards,
                "max {max}: capacity {capacity} over {shards} shards"
            );
            for n in 0..3 * max + 10 {
                l1.insert(&n.to_string(), present("x"), MINUTE);
                assert!(l1.entry_count() <= max, "max {max}: {}", l1.entry_count());
            }
            let last = (3 * max + 9).to_string();
            assert_eq!(
                l1.get(&last).is_some(),
                max > 0,
                "max {max}: the newest entry is held (unless nothing may be)"
            );
        }
    }

    #[test]
    fn concurrent_readers_and_writers_see_only_their_own_values() {
        const THREADS: usize = 4;
        const IDS: u64 = 200;
        let l1 = Arc::new(MemoryL1::<String>::new(100));
        std::thread::scope(|scope| {
            for thread in 0..THREADS {
                let l1 = &l1;
                scope.spawn(move || {
                    for round in 0..2_000_u64 {
                        let id = ((round * 7 + thread as u64) % IDS).to_string();
                        match round % 4 {
                            0 => l1.insert(&id, present(&id), MINUTE),
                            1 => l1.remove(&id),
                            _ => {
                                if let Some(value) = value_of(l1, &id) {
                                    assert_eq!(value, id, "a hit is the value stored for its id");
                                }
                            }
                        }
                    }
                });
            }
        });
        assert!(l1.entry_count() <= 100, "{}", l1.entry_count());
        let held = (0..IDS)
            .filter(|n| l1.get(&n.to_string()).is_some())
            .count();
        assert_eq!(
            held as u64,
            l1.entry_count(),
            "every entry held is readable"
        );
    }
}
