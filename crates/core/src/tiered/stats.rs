//! What a tier counts ([`TierStats`]), the copy callers read ([`TierStatsSnapshot`]), and
//! which tier answered a request, on its tracing span.

use std::sync::atomic::AtomicU64;

use super::Core;
use crate::KeyKind;
use crate::breaker::BreakerStats;
use crate::counter::read;

/// Live counters of one tier (plain atomics, relaxed: they are statistics, not
/// synchronisation; see [`crate::counter`]).
#[derive(Debug, Default)]
pub struct TierStats {
    pub(super) l1_hits: AtomicU64,
    pub(super) l2_hits: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) loads: AtomicU64,
    pub(super) load_errors: AtomicU64,
    pub(super) coalesced: AtomicU64,
    pub(super) decode_failures: AtomicU64,
    pub(super) encode_failures: AtomicU64,
    pub(super) l2_errors: AtomicU64,
    pub(super) publish_errors: AtomicU64,
    pub(super) stale_fills: AtomicU64,
    pub(super) stale_served: AtomicU64,
    pub(super) refreshes: AtomicU64,
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
    /// [`Tiered::retry_pending`](super::Tiered::retry_pending) (a gauge; zero when
    /// everything landed).
    pub pending_invalidations: u64,
    /// The L2 breaker, when there is an L2.
    pub breaker: Option<BreakerStats>,
}

impl TierStats {
    /// The counters now (`breaker` is `None`, `in_flight` and `pending_invalidations`
    /// zero; [`Tiered::stats`](super::Tiered::stats) fills them in).
    pub fn snapshot(&self) -> TierStatsSnapshot {
        TierStatsSnapshot {
            l1_hits: read(&self.l1_hits),
            l2_hits: read(&self.l2_hits),
            misses: read(&self.misses),
            loads: read(&self.loads),
            load_errors: read(&self.load_errors),
            coalesced: read(&self.coalesced),
            decode_failures: read(&self.decode_failures),
            encode_failures: read(&self.encode_failures),
            l2_errors: read(&self.l2_errors),
            publish_errors: read(&self.publish_errors),
            stale_fills: read(&self.stale_fills),
            stale_served: read(&self.stale_served),
            refreshes: read(&self.refreshes),
            in_flight: 0,
            pending_invalidations: 0,
            breaker: None,
        }
    }
}

impl<T> Core<T> {
    /// Records which tier answered on the caller's span, when it has a `tier` field (the
    /// facade's `authenticate` span has one, for user records).
    pub(super) fn answered_by(&self, tier: &'static str) {
        if self.kind == KeyKind::User {
            tracing::Span::current().record("tier", tier);
        }
    }
}
