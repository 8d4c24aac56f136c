//! The two token-scoped caches, both keyed by the token's SHA-256 fingerprint:
//! [`Validations`] (this process only: "this exact token was verified, here are its
//! claims") and [`Revocations`] (shared: "this token was logged out").

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use authcache_core::{CacheError, L1Cache, L1Entry, TierStatsSnapshot, Tiered};
use authcache_jwt::Claims;
use authcache_memory::MemoryL1;

/// Verified claims by fingerprint, in this process only.
///
/// Deliberately never written to the shared L2: an entry there would let anyone able to
/// write to Redis mark a forged token as verified. In-process, an entry can only have been
/// written by this process after it checked the signature, so a hit is as good as a
/// verification. Entries live at most `validation_ttl(exp, now, cap)`: never beyond `exp`.
#[derive(Debug)]
pub(crate) struct Validations {
    l1: MemoryL1<Claims>,
}

impl Validations {
    pub(crate) fn new(max_entries: u64) -> Self {
        Self {
            l1: MemoryL1::new(max_entries),
        }
    }

    pub(crate) fn get(&self, fingerprint: &str) -> Option<Arc<Claims>> {
        match self.l1.get(fingerprint)? {
            L1Entry::Present(claims) => Some(claims),
            _ => None,
        }
    }

    pub(crate) fn insert(&self, fingerprint: &str, claims: Arc<Claims>, ttl: Duration) {
        self.l1.insert(fingerprint, L1Entry::Present(claims), ttl);
    }

    pub(crate) fn remove(&self, fingerprint: &str) {
        self.l1.remove(fingerprint);
    }
}

/// Revoked tokens: a shared mark per fingerprint (L1 + L2, published on the bus), plus an
/// in-process memory of fingerprints recently found *not* revoked, so that the check on
/// every request costs one in-process lookup rather than one Redis round trip.
///
/// "Not revoked" is never written to L2: a negative entry written there could overwrite a
/// revocation made at the same moment by another instance. Locally it is safe: it lives at
/// most the L1 cap, is dropped when the bus announces a revocation of that fingerprint (or
/// when the bus reconnects), and a check that started before such an announcement does
/// not record its (possibly stale) answer — the generation counter tells.
///
/// The same local memory also holds revocations the L2 refused (Redis down during a
/// logout), so this instance at least rejects the token; the caller is told the logout
/// could not be shared.
#[derive(Debug)]
pub(crate) struct Revocations {
    marks: Tiered<u64>,
    /// `Present`: checked, not revoked. `Absent`: revoked here while the L2 was unusable.
    local: MemoryL1<()>,
    cleared_ttl: Duration,
    generation: AtomicU64,
}

impl Revocations {
    pub(crate) fn new(marks: Tiered<u64>, max_entries: u64, cleared_ttl: Duration) -> Self {
        Self {
            marks,
            local: MemoryL1::new(max_entries),
            cleared_ttl,
            generation: AtomicU64::new(0),
        }
    }

    /// Whether the token was revoked. Cache trouble reads as "not revoked" (the request is
    /// served), and is not remembered, so the next request asks L2 again.
    pub(crate) async fn is_revoked(&self, fingerprint: &str) -> bool {
        match self.local.get(fingerprint) {
            Some(L1Entry::Present(_)) => return false,
            Some(L1Entry::Absent) => return true,
            None => {}
        }
        let generation = self.generation.load(Ordering::Acquire);
        let errors_before = self.marks.stats().l2_errors;
        let revoked = matches!(self.marks.get(fingerprint).await, Ok(Some(_)));
        let answered = self.marks.stats().l2_errors == errors_before;
        let unchanged = self.generation.load(Ordering::Acquire) == generation;
        if !revoked && answered && unchanged && !self.cleared_ttl.is_zero() {
            self.local.insert(
                fingerprint,
                L1Entry::Present(Arc::new(())),
                self.cleared_ttl,
            );
        }
        revoked
    }

    /// Records the revocation until `ttl` from now, in every tier, and announces it.
    pub(crate) async fn revoke(
        &self,
        fingerprint: &str,
        exp: u64,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        self.evict_local(fingerprint);
        let shared = self.marks.set_with_ttl(fingerprint, exp, ttl).await;
        if shared.is_err() {
            self.local.insert(fingerprint, L1Entry::Absent, ttl);
        }
        shared
    }

    /// Another instance revoked this fingerprint.
    pub(crate) fn evict_local(&self, fingerprint: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.local.remove(fingerprint);
        self.marks.evict_local(fingerprint);
    }

    /// The bus reconnected: anything remembered may be stale.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn clear_local(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.local.clear();
        self.marks.clear_local();
    }

    pub(crate) fn stats(&self) -> TierStatsSnapshot {
        self.marks.stats()
    }
}
