//! [`Stats`]: a snapshot of what the service did, per tier.

use std::sync::atomic::AtomicU64;

pub use authcache_core::{BreakerState, BreakerStats, TierStatsSnapshot};

/// Counters of one [`crate::AuthService`] (shared by its clones), at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// User records.
    pub users: TierStatsSnapshot,
    /// Roles and permissions per user record, remembered in-process for the very record
    /// they were derived from (`l1_hits` / `misses` only: they come from the user record
    /// and the per-role permission entries, never from a cache of their own).
    pub roles: TierStatsSnapshot,
    /// Permissions per role (one entry per role).
    pub permissions: TierStatsSnapshot,
    /// Revocation marks (logouts), checked on every authentication.
    pub revocations: TierStatsSnapshot,
    /// Per-user "log out everywhere" cutoffs, checked on every authentication.
    pub cutoffs: TierStatsSnapshot,
    /// Per-issuer "revoke everything issued before" cutoffs, checked on every
    /// authentication ([`AuthService::revoke_issued_before`](crate::AuthService::revoke_issued_before)).
    pub issuer_cutoffs: TierStatsSnapshot,
    /// Token validations (in-process only, keyed by fingerprint).
    pub validations: ValidationStats,
    /// Whole answers remembered per bearer string (the warm path: one lookup per request;
    /// `l1_hits` / `misses` only). A hit here skips every other tier, so their counters
    /// only see the requests it could not answer.
    pub principals: TierStatsSnapshot,
    /// Successful authentications.
    pub authenticated: u64,
    /// Authentications refused for the token itself (bad, expired, revoked).
    pub rejected_tokens: u64,
    /// Authentications refused for the user (unknown, disabled).
    pub rejected_users: u64,
    /// Authentications that failed because the repository was unavailable (503).
    pub unavailable: u64,
    /// Every refusal counted above (`rejected_tokens`, `rejected_users`, `unavailable`),
    /// by reason: `expired`, `bad_signature`, `revoked`, `cut_off`, `unknown_user`, …
    /// (`stats.refusals.get("revoked")`). Each is also a `debug` event for the operator.
    pub refusals: crate::refusal::RefusalStats,
    /// Revocation checks the shared cache could not answer (served under
    /// `RevocationCheck::FailOpen`, refused with 503 under `FailClosed`).
    pub unchecked: u64,
    /// Logouts and cutoffs this instance holds that the shared cache has not accepted yet
    /// (in force here; retried in the background).
    pub pending_revocations: u64,
    /// Marks (logouts and cutoffs) this instance holds in force until they expire: its
    /// memory grows with the marks it wrote within the longest token lifetime.
    pub held_marks: u64,
    /// Whether the invalidation bus is subscribed now (`None`: no bus, single instance).
    /// While it is not, other instances' invalidations may be missed; the L1 is cleared
    /// when it comes back.
    pub bus_subscribed: Option<bool>,
    /// The shared cache may evict revocation marks and tombstones: its `maxmemory-policy`
    /// read at start-up was not `noeviction`, so under memory pressure a logged-out token
    /// may be accepted again and an invalidation undone. Alert on it (a health check
    /// should); the build refuses it under `RevocationCheck::FailClosed`.
    pub marks_evictable: bool,
    /// The shared L2's circuit breaker, when there is an L2.
    pub breaker: Option<BreakerStats>,
    /// The repository's circuit breaker: open after consecutive failures (unavailable or
    /// timing out), when uncached requests fail at once with 503 and expired values are
    /// served within their grace (see
    /// [`AuthServiceBuilder::repository_breaker`](crate::AuthServiceBuilder::repository_breaker)).
    pub repository_breaker: BreakerStats,
    /// Whether the repository answered its last ping ([`AuthService::health`](crate::AuthService::health),
    /// or the start-up check of a repository built from configuration); `None` before any.
    pub repository_reachable: Option<bool>,
    /// The repository watcher, when this instance runs one
    /// ([`AuthServiceBuilder::watch`](crate::AuthServiceBuilder::watch)).
    pub watcher: Option<WatcherStats>,
    /// The keyspace epoch this instance builds its keys under: 0 until the first
    /// [`AuthService::clear_everywhere`](crate::AuthService::clear_everywhere) or
    /// watcher clear anywhere, then raised by each. Every instance that has heard of the
    /// last raise shows the same number.
    pub keyspace_epoch: u64,
}

impl Stats {
    /// The user, roles and permissions tiers: the answers that cost a repository call.
    pub fn data_tiers(&self) -> [&TierStatsSnapshot; 3] {
        [&self.users, &self.roles, &self.permissions]
    }

    /// L1 hits over the data tiers.
    pub fn l1_hits(&self) -> u64 {
        self.data_tiers().iter().map(|t| t.l1_hits).sum()
    }

    /// L2 hits over the data tiers.
    pub fn l2_hits(&self) -> u64 {
        self.data_tiers().iter().map(|t| t.l2_hits).sum()
    }

    /// Repository calls: user loads plus permission loads (roles come with the user record).
    pub fn loads(&self) -> u64 {
        self.users.loads + self.permissions.loads
    }

    /// Callers that waited on another caller's load instead of loading, over the data tiers.
    pub fn coalesced(&self) -> u64 {
        self.data_tiers().iter().map(|t| t.coalesced).sum()
    }

    /// L2 calls that failed, timed out or were skipped by the open breaker, over all tiers.
    pub fn l2_errors(&self) -> u64 {
        self.data_tiers().iter().map(|t| t.l2_errors).sum::<u64>()
            + self.revocations.l2_errors
            + self.cutoffs.l2_errors
            + self.issuer_cutoffs.l2_errors
    }

    /// Share of data-tier lookups answered by L1, in `0.0..=1.0` (0 before any lookup).
    pub fn l1_hit_ratio(&self) -> f64 {
        ratio(self.l1_hits(), self.lookups())
    }

    /// Share of data-tier lookups answered by L2 (L1 missed, L2 had it).
    pub fn l2_hit_ratio(&self) -> f64 {
        ratio(self.l2_hits(), self.lookups())
    }

    fn lookups(&self) -> u64 {
        self.data_tiers()
            .iter()
            .map(|t| t.l1_hits + t.l2_hits + t.misses)
            .sum()
    }
}

/// The repository watcher at one moment: it turns every change the system of record
/// reports into an invalidation on every instance.
///
/// Every change read is either invalidated or absorbed by the same id already pending:
/// `events == invalidations + coalesced + everything`, where `everything` counts the
/// changes of whole collections (each answered by a full clear, counted in `full_clears`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatcherStats {
    /// Whether changes are being followed right now.
    pub state: WatcherState,
    /// Changes read from the feed.
    pub events: u64,
    /// Users and roles invalidated for those changes, after coalescing.
    pub invalidations: u64,
    /// Changes absorbed by the same id already waiting to be invalidated.
    pub coalesced: u64,
    /// Changes of whole collections (dropped, renamed, the database dropped).
    pub everything: u64,
    /// Distinct ids waiting to be invalidated now.
    pub pending: u64,
    /// The most ids ever waiting at once; never above the watcher's bound (4,096).
    pub max_pending: u64,
    /// Streams reopened from a saved resume point (after a disconnect or a restart).
    pub resumes: u64,
    /// Times the history was lost (or unknown), or whole collections changed, and the
    /// keyspace epoch was raised: every instance's tiers and the shared tier cleared.
    pub full_clears: u64,
    /// Resume points saved to the shared cache (at most one a second).
    pub checkpoints: u64,
    /// Failures so far: the feed unreachable or broken, a lost history, the shared cache
    /// refusing an invalidation or a checkpoint. All are retried.
    pub errors: u64,
    /// What the last failure was (its message is in the logs, at `warn`).
    pub last_error: Option<WatcherFault>,
}

impl WatcherStats {
    /// Not following changes: until it is back, writes that bypass authcache are seen
    /// only when the TTLs expire. Worth a health check.
    pub fn is_down(&self) -> bool {
        self.state == WatcherState::Down
    }
}

/// Whether the repository watcher follows changes (serialized as `starting`, `running`,
/// `down`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WatcherState {
    /// Opening its first stream.
    #[default]
    Starting,
    /// Following changes.
    Running,
    /// Not following changes (the repository or the shared cache unreachable); retrying
    /// with backoff. Changes made meanwhile are picked up when it resumes — or, if their
    /// history is gone by then, everything is invalidated.
    Down,
}

/// The kind of a repository watcher failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatcherFault {
    /// The change feed could not be opened or read (the repository unreachable, timing
    /// out, or without change streams).
    Feed,
    /// The feed's history was lost (pruned, the server restarted, an unreadable resume
    /// point): everything was invalidated.
    HistoryLost,
    /// The shared cache refused an invalidation or a checkpoint.
    Cache,
}

/// Counters of the in-process validation cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidationStats {
    /// Tokens found already verified (signature not checked again).
    pub hits: u64,
    /// Tokens whose signature and claims were verified.
    pub verified: u64,
}

impl ValidationStats {
    /// Share of tokens that skipped verification, in `0.0..=1.0`.
    pub fn hit_ratio(&self) -> f64 {
        ratio(self.hits, self.hits + self.verified)
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        // Precision loss above 2^52 lookups is irrelevant for a ratio.
        #[allow(clippy::cast_precision_loss)]
        let r = part as f64 / whole as f64;
        r
    }
}

/// Live request counters (bumped and read through [`authcache_core::counter`]).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) authenticated: AtomicU64,
    pub(crate) rejected_tokens: AtomicU64,
    pub(crate) rejected_users: AtomicU64,
    pub(crate) unavailable: AtomicU64,
    pub(crate) refusals: crate::refusal::RefusalCounters,
    pub(crate) validation_hits: AtomicU64,
    pub(crate) verified: AtomicU64,
    pub(crate) unchecked: AtomicU64,
}

#[cfg(test)]
mod tests;
