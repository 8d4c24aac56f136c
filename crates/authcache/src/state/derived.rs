//! A user's roles and permissions, remembered for the very user record they were derived
//! from (compared by pointer), so they can never outlive it.
//!
//! An entry is served only for that record, and only while the permissions tier's epoch
//! reads as it did before the permissions were read (see [`authcache_core::versioned`]):
//! a role change on this instance, or announced by another, is never outlived by it.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use authcache_core::{L1Cache, L1Entry, TierStatsSnapshot, Version, counter};
use authcache_memory::MemoryL1;
use authcache_users::UserRecord;
use tokio::time::Instant;

/// What a user's roles and permissions were derived from: the exact user record (compared
/// by pointer), so they can never outlive it.
#[derive(Debug)]
pub(crate) struct Derived<U> {
    pub(crate) user: Arc<U>,
    pub(crate) roles: Arc<Vec<String>>,
    pub(crate) permissions: Arc<Vec<String>>,
    /// Until when the permission entries they were computed from may be served.
    pub(crate) until: Instant,
}

/// The in-process memo of [`Derived`] parts, with its counters.
#[derive(Debug)]
pub(super) struct DerivedMemo<U> {
    l1: MemoryL1<Derived<U>>,
    ttl: Duration,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<U: UserRecord> DerivedMemo<U> {
    pub(super) fn new(max_entries: u64, ttl: Duration) -> Self {
        Self {
            l1: MemoryL1::new(max_entries),
            ttl,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The parts computed from exactly `user` under the permissions epoch `epoch`, if
    /// still remembered.
    pub(super) fn get(&self, user: &Arc<U>, epoch: Version) -> Option<Arc<Derived<U>>> {
        let found = self
            .l1
            .get(user.id())
            .filter(|entry| entry.version() == epoch)
            .and_then(L1Entry::into_value)
            .filter(|parts| Arc::ptr_eq(&parts.user, user));
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter::bump(counter);
        found
    }

    /// Remembers `parts`, computed from permissions read after the epoch read `epoch`.
    /// Never beyond the life of the permission entries they were computed from.
    pub(super) fn insert(&self, parts: &Arc<Derived<U>>, epoch: Version) {
        let remaining = parts.until.saturating_duration_since(Instant::now());
        let ttl = self.ttl.min(remaining);
        let entry = L1Entry::present(Arc::clone(parts)).at(epoch);
        self.l1.insert(parts.user.id(), entry, ttl);
    }

    /// Forgets what was derived for user `id` (frees memory: the epoch and the record
    /// pointer already keep a stale entry from being served).
    pub(super) fn forget(&self, id: &str) {
        self.l1.remove(id);
    }

    pub(super) fn stats(&self) -> TierStatsSnapshot {
        TierStatsSnapshot {
            l1_hits: counter::read(&self.hits),
            misses: counter::read(&self.misses),
            ..TierStatsSnapshot::default()
        }
    }
}
