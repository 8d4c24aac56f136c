//! [`MemoryL1`]: the typed in-process tier.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authcache_core::{L1Cache, L1Entry};
use moka::Expiry;

/// 10,000 entries per kind: the active users of a busy instance over the L1 cap (30 s).
pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;

struct Slot<T> {
    entry: L1Entry<T>,
    ttl: Duration,
}

// Manual: deriving would require `T: Clone`, but only the `Arc` inside is cloned.
impl<T> Clone for Slot<T> {
    fn clone(&self) -> Self {
        Self {
            entry: self.entry.clone(),
            ttl: self.ttl,
        }
    }
}

/// Expires each entry after the TTL it was inserted with.
struct PerEntryTtl;

impl<T> Expiry<Arc<str>, Slot<T>> for PerEntryTtl {
    fn expire_after_create(&self, _: &Arc<str>, slot: &Slot<T>, _: Instant) -> Option<Duration> {
        Some(slot.ttl)
    }

    fn expire_after_update(
        &self,
        _: &Arc<str>,
        slot: &Slot<T>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(slot.ttl)
    }
}

/// An [`L1Cache`] on `moka::sync::Cache`: bounded by entry count, TTL per entry, lookups
/// by `&str` without allocating.
pub struct MemoryL1<T> {
    entries: moka::sync::Cache<Arc<str>, Slot<T>>,
}

impl<T: Send + Sync + 'static> Default for MemoryL1<T> {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ENTRIES)
    }
}

impl<T: Send + Sync + 'static> MemoryL1<T> {
    /// An L1 holding at most `max_entries` values and negative entries.
    pub fn new(max_entries: u64) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_entries)
            .expire_after(PerEntryTtl)
            .build();
        Self { entries }
    }

    /// Entries currently held (approximate until pending maintenance has run).
    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    /// Runs moka's pending maintenance (evictions, expirations) now.
    pub fn run_pending_tasks(&self) {
        self.entries.run_pending_tasks();
    }
}

impl<T> fmt::Debug for MemoryL1<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryL1")
            .field("entries", &self.entries.entry_count())
            .field("max_entries", &self.entries.policy().max_capacity())
            .finish()
    }
}

impl<T: Send + Sync + 'static> L1Cache<T> for MemoryL1<T> {
    fn get(&self, id: &str) -> Option<L1Entry<T>> {
        self.entries.get(id).map(|slot| slot.entry)
    }

    fn insert(&self, id: &str, entry: L1Entry<T>, ttl: Duration) {
        if ttl.is_zero() {
            self.entries.invalidate(id);
        } else {
            self.entries.insert(Arc::from(id), Slot { entry, ttl });
        }
    }

    fn remove(&self, id: &str) {
        self.entries.invalidate(id);
    }

    fn clear(&self) {
        self.entries.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn present(value: &str) -> L1Entry<String> {
        L1Entry::Present(Arc::new(value.to_owned()))
    }

    #[test]
    fn insert_get_remove_clear() {
        let l1 = MemoryL1::<String>::default();
        assert!(l1.get("1").is_none());
        let value = Arc::new(String::from("ada"));
        l1.insert(
            "1",
            L1Entry::Present(Arc::clone(&value)),
            Duration::from_secs(60),
        );
        l1.insert("2", L1Entry::Absent, Duration::from_secs(60));
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
        l1.insert("3", present("x"), Duration::from_secs(60));
        l1.clear();
        assert!(l1.get("2").is_none() && l1.get("3").is_none());
        assert!(format!("{l1:?}").starts_with("MemoryL1"));
    }

    #[test]
    fn a_zero_ttl_removes() {
        let l1 = MemoryL1::<String>::new(10);
        l1.insert("1", present("x"), Duration::from_secs(60));
        l1.insert("1", present("y"), Duration::ZERO);
        assert!(l1.get("1").is_none());
    }

    #[test]
    fn each_entry_expires_after_its_own_ttl() {
        let slot = |secs| Slot {
            entry: present("x"),
            ttl: Duration::from_secs(secs),
        };
        let id: Arc<str> = Arc::from("1");
        let now = Instant::now();
        assert_eq!(
            PerEntryTtl.expire_after_create(&id, &slot(30), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            PerEntryTtl.expire_after_update(&id, &slot(5), now, Some(Duration::from_secs(29))),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn entries_really_expire() {
        let l1 = MemoryL1::<String>::new(10);
        l1.insert("short", present("x"), Duration::from_millis(20));
        l1.insert("long", present("y"), Duration::from_secs(600));
        // Bounded poll: moka's clock is the real one.
        let expired = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            l1.get("short").is_none()
        });
        assert!(expired, "a 20 ms entry was still there after 2 s");
        assert!(l1.get("long").is_some());
    }

    #[test]
    fn it_is_bounded_by_entries() {
        let l1 = MemoryL1::<String>::new(100);
        for n in 0..1_000 {
            l1.insert(&n.to_string(), present("x"), Duration::from_secs(60));
        }
        l1.run_pending_tasks();
        assert!(l1.entry_count() <= 100, "{}", l1.entry_count());
    }
}
