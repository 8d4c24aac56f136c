//! The warm path: one in-process lookup answers a token this instance has answered before.
//!
//! A warm entry holds the whole [`Principal`] a bearer string authenticated as, keyed by the
//! bearer string itself (so no hash of it is computed: the map compares the full string),
//! with a [`Stamp`] of everything the answer was built from: the user tier's version of the
//! user id, the permissions tier's epoch (role changes), and the epochs of the revocation
//! and cutoff memos (per user and per issuer), and the verifier's key-set version (a key
//! dropped from a remote set ends what was verified with it). A hit whose stamp differs from the current one is a miss,
//! so every invalidation that reaches this instance — a local write, a bus message, a bus
//! reconnect, a logout, a `logout_all`, a role change — takes effect on the very next
//! request, as it does without this cache.
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

use authcache_core::{L1Cache, L1Entry, Version};
use authcache_memory::MemoryL1;
use authcache_users::UserRecord;

use crate::Principal;
use crate::service::Tiers;
use crate::stats::Counters;

/// What a warm answer was built from; equal stamps mean nothing it depends on changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    user: Version,
    permissions: Version,
    revocations: Version,
    cutoffs: Version,
    issuer_cutoffs: Version,
    /// The verifier's key-set version the token was verified under.
    keys: u64,
}

impl Stamp {
    /// The stamp of `user_id`'s answers now. Read it before looking anything up: a change
    /// after the reading makes the entry built from those lookups a miss.
    pub(crate) fn now<U: UserRecord>(tiers: &Tiers<U>, user_id: &str, keys: u64) -> Self {
        Self {
            user: tiers.users.version(user_id),
            permissions: tiers.perms.epoch(),
            revocations: tiers.revocations.epoch(),
            cutoffs: tiers.cutoffs.epoch(),
            issuer_cutoffs: tiers.issuer_cutoffs.epoch(),
            keys,
        }
    }
}

/// A remembered answer.
#[derive(Debug)]
pub(crate) struct Answer<U> {
    principal: Principal<U>,
    stamp: Stamp,
}

/// Principals by bearer string, in this process only.
#[derive(Debug)]
pub(crate) struct Warm<U> {
    l1: MemoryL1<Answer<U>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<U: UserRecord> Warm<U> {
    pub(crate) fn new(max_entries: u64) -> Self {
        Self {
            l1: MemoryL1::new(max_entries),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The principal `bearer` authenticated as, if nothing it was built from changed since
    /// (`keys`: the verifier's key-set version now).
    pub(crate) fn get(&self, tiers: &Tiers<U>, bearer: &str, keys: u64) -> Option<Principal<U>> {
        let found = self
            .l1
            .get(bearer)
            .and_then(L1Entry::into_value)
            .filter(|answer| answer.stamp == Stamp::now(tiers, answer.principal.id(), keys))
            .map(|answer| answer.principal.clone());
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        Counters::bump(counter);
        found
    }

    /// Remembers `principal` for `bearer`, built from the state `stamp` was read in.
    pub(crate) fn insert(
        &self,
        bearer: &str,
        principal: Principal<U>,
        stamp: Stamp,
        ttl: Duration,
    ) {
        let answer = Arc::new(Answer { principal, stamp });
        self.l1.insert(bearer, L1Entry::present(answer), ttl);
    }

    pub(crate) fn remove(&self, bearer: &str) {
        self.l1.remove(bearer);
    }

    pub(crate) fn stats(&self) -> authcache_core::TierStatsSnapshot {
        authcache_core::TierStatsSnapshot {
            l1_hits: Counters::read(&self.hits),
            misses: Counters::read(&self.misses),
            ..authcache_core::TierStatsSnapshot::default()
        }
    }
}
