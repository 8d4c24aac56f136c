//! Versions, and the one rule every in-process cache of authcache serves by: **an entry is
//! served only while the version it was filled under is still current.**
//!
//! # The protocol
//!
//! - **Writers** (an invalidation, a write-through, a bus eviction, a reconnect's clear)
//!   *bump* the version of the id ([`Generations::bump`]), or of everything
//!   ([`Generations::bump_all`]), and only then drop the entry. The bump is what
//!   correctness rests on; the drop only frees the memory early.
//! - **Fillers** read the version *before* they read their source (the shared tier, the
//!   loader, another tier), and tag what they insert with it ([`VersionedL1::insert`]).
//! - **Readers** serve an entry only when its tag equals the version now
//!   ([`VersionedL1::get`]); anything else is a miss.
//!
//! So a value read before an invalidation returned carries a version the invalidation has
//! moved past, and no read after it returns is ever served that value — however late the
//! filler's insert lands (a preempted thread, a slow fill, a background refresh). There is
//! no check-then-insert window to re-check and no insert to undo: the check is on the read.
//!
//! Answers *derived* from a tier (the facade's roles-and-permissions memo, its warm answers)
//! follow the same rule with the tier's [`epoch`](Generations::epoch), which every bump
//! moves: read it before reading the tier, keep it with the answer, serve the answer only
//! while it reads the same.
//!
//! The protocol is model-checked with loom (`cargo xtask model`, which `cargo xtask ci`
//! runs: this crate's `model` module under `--cfg authcache_loom`), exploring every
//! interleaving of one fill against one invalidation.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use crate::l1::{L1Cache, L1Entry};
use crate::sync::AtomicU64;

/// Stripes of per-id versions: enough that an invalidation rarely touches another id's
/// entries, small enough to be one cache line per few ids.
const STRIPES: usize = 64;

/// A reading of a version: two equal readings of one id (or of the epoch) mean nothing
/// bumped it in between on this instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Version(u64);

/// Per-id versions, striped, and an epoch that every bump moves.
pub struct Generations {
    epoch: AtomicU64,
    stripes: [AtomicU64; STRIPES],
    /// foldhash, not `std`'s SipHash: every L1 hit hashes its id here, and SipHash took
    /// ~30 ns of a ~110 ns hit (`cargo xtask bench core_l1_hit`); foldhash takes ~8. A
    /// collision only makes an invalidation also drop a neighbour's entry, so the
    /// flooding resistance SipHash buys is not needed (the seed is random all the same).
    hasher: foldhash::fast::RandomState,
}

impl fmt::Debug for Generations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generations")
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}

impl Default for Generations {
    fn default() -> Self {
        Self {
            epoch: AtomicU64::new(0),
            stripes: std::array::from_fn(|_| AtomicU64::new(0)),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

impl Generations {
    fn stripe(&self, id: &str) -> &AtomicU64 {
        // Truncation is the point: any bits of the hash pick a stripe.
        let at = self.hasher.hash_one(id) as usize % STRIPES;
        &self.stripes[at]
    }

    /// The version of `id` now.
    pub fn version(&self, id: &str) -> Version {
        Version(self.stripe(id).load(Ordering::Acquire))
    }

    /// The version of everything now: moved by every bump of any id.
    pub fn epoch(&self) -> Version {
        Version(self.epoch.load(Ordering::Acquire))
    }

    /// Moves the version of `id` (and the epoch): what was filled under the old one is
    /// never served again.
    pub fn bump(&self, id: &str) {
        self.stripe(id).fetch_add(1, Ordering::AcqRel);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Moves every version: nothing filled before is served again.
    pub fn bump_all(&self) {
        for stripe in &self.stripes {
            stripe.fetch_add(1, Ordering::AcqRel);
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

/// An optional L1 with its [`Generations`]: the in-process half of a tier, serving by the
/// rule in the [module docs](self). Without an L1 it holds nothing, but the versions still
/// move (answers derived from the tier depend on them).
pub struct VersionedL1<T> {
    l1: Option<Arc<dyn L1Cache<T>>>,
    generations: Generations,
}

impl<T> fmt::Debug for VersionedL1<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VersionedL1")
            .field("l1", &self.l1)
            .field("generations", &self.generations)
            .finish()
    }
}

impl<T> VersionedL1<T> {
    /// Serves from `l1`, or holds nothing when it is `None`.
    pub fn new(l1: Option<Arc<dyn L1Cache<T>>>) -> Self {
        Self {
            l1,
            generations: Generations::default(),
        }
    }

    /// The version of `id` now: read it before reading what will be inserted.
    pub fn version(&self, id: &str) -> Version {
        self.generations.version(id)
    }

    /// The version of everything now (see [`Generations::epoch`]).
    pub fn epoch(&self) -> Version {
        self.generations.epoch()
    }

    /// The entry of `id`, if there is one and it was filled under the version of `id` now.
    pub fn get(&self, id: &str) -> Option<L1Entry<T>> {
        let entry = self.l1.as_ref()?.get(id)?;
        // Read after the entry: a bump that happened before this call is seen here.
        (entry.version() == self.version(id)).then_some(entry)
    }

    /// Keeps `value` for `id` for `ttl`, tagged with `since`, the version read before the
    /// value was, and with its deadline (now + `ttl`, see [`L1Entry::expires_at`]). A tag
    /// already behind is not stored at all (it could never be served).
    pub fn insert(&self, id: &str, value: Option<Arc<T>>, ttl: Duration, since: Version) {
        let Some(l1) = &self.l1 else { return };
        if ttl.is_zero() || self.version(id) != since {
            return;
        }
        let entry = L1Entry::from(value).at(since);
        let entry = match Instant::now().checked_add(ttl) {
            Some(deadline) => entry.expiring_at(deadline),
            None => entry,
        };
        l1.insert(id, entry, ttl);
    }

    /// Moves the version of `id`, then drops its entry.
    pub fn forget(&self, id: &str) {
        self.generations.bump(id);
        if let Some(l1) = &self.l1 {
            l1.remove(id);
        }
    }

    /// Moves every version, then drops every entry.
    pub fn forget_all(&self) {
        self.generations.bump_all();
        if let Some(l1) = &self.l1 {
            l1.clear();
        }
    }
}

#[cfg(test)]
mod tests;
