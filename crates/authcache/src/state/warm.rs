//! The warm path: one in-process lookup answers a token this instance has answered before.
//!
//! A warm entry holds the whole [`Principal`] a bearer string authenticated as, keyed by the
//! bearer string itself (so no hash of it is computed: the map compares the full string),
//! with a [`Stamp`] of everything the answer was built from: the user tier's version of the
//! user id, the permissions tier's epoch (role changes), and the epochs of the revocation
//! and cutoff memos (per user and per issuer), and the verifier's key-set version (a key
//! dropped from a remote set ends what was verified with it). A hit whose stamp differs
//! from the current one is a miss, so every invalidation that reaches this instance — a
//! local write, a bus message, a bus reconnect, a logout, a `logout_all`, a role change —
//! takes effect on the very next request, as it does without this cache.
//!
//! Entries live at most half the L1 cap (and never beyond the token's validation TTL).
//! The marks' memo lives as long, so a revocation written by an instance whose bus
//! publish failed is still seen within the L1 cap.
//!
//! Only complete, definitive answers are remembered: never an error, and never an answer
//! whose revocation check the shared cache could not make.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use authcache_core::{L1Cache, L1Entry, TierStatsSnapshot, Version, counter};
use authcache_memory::MemoryL1;
use authcache_users::UserRecord;

use crate::Principal;

/// What a warm answer was built from; equal stamps mean nothing it depends on changed.
/// Read by [`State::stamp`](super::State::stamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(super) user: Version,
    pub(super) permissions: Version,
    /// Revocations, user cutoffs, issuer cutoffs.
    pub(super) marks: [Version; 3],
    /// The verifier's key-set version the token was verified under.
    pub(super) keys: u64,
}

/// A remembered answer.
#[derive(Debug)]
struct Answer<U> {
    principal: Principal<U>,
    stamp: Stamp,
}

/// Principals by bearer string, in this process only.
#[derive(Debug)]
pub(super) struct Warm<U> {
    l1: MemoryL1<Answer<U>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<U: UserRecord> Warm<U> {
    pub(super) fn new(max_entries: u64) -> Self {
        Self {
            l1: MemoryL1::new(max_entries),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The principal `bearer` authenticated as, if its stamp is still `stamp_now` of its
    /// user id.
    pub(super) fn get(
        &self,
        bearer: &str,
        stamp_now: impl Fn(&str) -> Stamp,
    ) -> Option<Principal<U>> {
        let found = self
            .l1
            .get(bearer)
            .and_then(L1Entry::into_value)
            .filter(|answer| answer.stamp == stamp_now(answer.principal.id()))
            .map(|answer| answer.principal.clone());
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter::bump(counter);
        found
    }

    /// Remembers `principal` for `bearer`, built from the state `stamp` was read in.
    pub(super) fn insert(
        &self,
        bearer: &str,
        principal: Principal<U>,
        stamp: Stamp,
        ttl: Duration,
    ) {
        let answer = Arc::new(Answer { principal, stamp });
        self.l1.insert(bearer, L1Entry::present(answer), ttl);
    }

    pub(super) fn remove(&self, bearer: &str) {
        self.l1.remove(bearer);
    }

    pub(super) fn stats(&self) -> TierStatsSnapshot {
        TierStatsSnapshot {
            l1_hits: counter::read(&self.hits),
            misses: counter::read(&self.misses),
            ..TierStatsSnapshot::default()
        }
    }
}
