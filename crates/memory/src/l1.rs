//! [`MemoryL1`]: the typed in-process tier, on quick_cache.
//!
//! Why not moka, which backs [`crate::MemoryCache`]: every moka `get` reads the clock,
//! records the entry's access time and pushes a read op onto a channel for its
//! maintenance (moka issue #498), and `authenticate` reads the L1 several times per
//! request, so that bookkeeping was most of a hit. A quick_cache `get` is a shard read
//! lock, a hash probe and a clone (one reference-count increment).
//!
//! quick_cache has no expiry of its own, so each entry carries its absolute deadline and a
//! read compares it with one clock read (a coarse clock, see [`clock`]): an expired entry is
//! a miss and is removed there (lazily); one never read again is evicted by S3-FIFO like any
//! other cold entry, so the bound holds either way.

use std::fmt;
use std::num::NonZero;
use std::time::Duration;

use authcache_core::{L1Cache, L1Entry};
use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{DefaultHashBuilder, OptionsBuilder, UnitWeighter};

use self::clock::{Clock, Moment};

mod clock;

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
    /// `None` when the TTL reaches beyond what the clock can represent: never expires.
    expires_at: Option<Moment>,
}

impl<T> Slot<T> {
    fn is_live(&self, now: Moment) -> bool {
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
        Self::with_clock(max_entries, Clock::system())
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
    fn remove_expired(&self, id: &str, now: Moment) {
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
        // Too short to keep (zero, or within the clock's resolution): the id holds nothing.
        let Some(expires_at) = self.clock.deadline(ttl) else {
            self.entries.remove(id);
            return;
        };
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
mod tests;
