//! Exports [`Stats`] through the [`metrics`] facade, for whichever exporter the application
//! installed (Prometheus, StatsD, OpenTelemetry, …).
//!
//! The service counts with plain relaxed atomics on the request path and knows nothing of
//! any recorder: exporting is a separate step, [`AuthService::record_metrics`] (or
//! [`record`] for a [`Stats`] you already hold), that the application calls **periodically
//! — every few seconds from a task — or from its scrape handler** just before rendering.
//! That keeps label lookups and recorder locks off the hot path, and costs nothing when no
//! one looks. Counters are set to their absolute value ([`metrics::Counter::absolute`]), so
//! calling it often or twice in a row is harmless.
//!
//! ```
//! use std::time::Duration;
//! use authcache::AuthService;
//!
//! fn spawn_metrics_exporter(auth: AuthService) -> tokio::task::JoinHandle<()> {
//!     authcache::metrics::describe();
//!     tokio::spawn(async move {
//!         let mut tick = tokio::time::interval(Duration::from_secs(5));
//!         loop {
//!             tick.tick().await;
//!             auth.record_metrics();
//!         }
//!     })
//! }
//! ```
//!
//! # Metrics
//! `kind` is `users`, `roles`, `permissions`, `revocations`, `cutoffs`, `issuer_cutoffs` or `principals`
//! (whole answers per bearer string, the warm path); `tier` is `l1` or `l2`.
//!
//! | name | type | labels |
//! |---|---|---|
//! | `authcache_cache_hits_total` | counter | `kind`, `tier` |
//! | `authcache_cache_misses_total` | counter | `kind` |
//! | `authcache_loads_total` (repository calls) | counter | `kind` |
//! | `authcache_load_errors_total` | counter | `kind` |
//! | `authcache_coalesced_waits_total` | counter | `kind` |
//! | `authcache_l2_errors_total` | counter | `kind` |
//! | `authcache_decode_failures_total` | counter | `kind` |
//! | `authcache_publish_errors_total` | counter | `kind` |
//! | `authcache_stale_served_total` (stale-if-error) | counter | `kind` |
//! | `authcache_refreshes_total` (background reloads) | counter | `kind` |
//! | `authcache_token_validations_total` | counter | `result` = `cached` / `verified` |
//! | `authcache_authentications_total` | counter | `outcome` = `authenticated` / `rejected_token` / `rejected_user` / `unavailable` |
//! | `authcache_refusals_total` | counter | `reason` = `expired` / `bad_signature` / `revoked` / `cut_off` / `issuer_cut_off` / `unknown_user` / `disabled` / `unavailable` / … ([`Stats::refusals`]) |
//! | `authcache_breaker_state` | gauge | — (0 closed, 1 half-open, 2 open) |
//! | `authcache_watcher_up` | gauge | — (1 following changes, 0 down; absent without a watcher) |
//! | `authcache_marks_evictable` | gauge | — (1 when Redis may evict revocation marks: alert on it) |
//! | `authcache_pending_invalidations` | gauge | `kind` (changes Redis refused, in force here, retried) |
//! | `authcache_keyspace_epoch` | gauge | — (raised by `clear_everywhere` and the watcher's full clears) |
//! | `authcache_watcher_events_total`, `…_invalidations_total`, `…_coalesced_total`, `…_full_clears_total` | counter | — |
//! | `authcache_breaker_opened_total` | counter | — |
//! | `authcache_breaker_failures_total` | counter | — |
//! | `authcache_breaker_timeouts_total` | counter | — |
//! | `authcache_breaker_rejected_total` (calls skipped while open) | counter | — |
//! | `authcache_unchecked_total` (revocation checks the shared cache could not answer) | counter | — |
//! | `authcache_pending_revocations` (logouts and cutoffs Redis has not accepted yet) | gauge | — |
//! | `authcache_bus_subscribed` | gauge | — (1 subscribed, 0 not: alert on it; absent without a bus) |
//! | `authcache_watcher_state` | gauge | `state` = `starting` / `running` / `down` (1 for the current state, 0 for the others; absent without a watcher) |
//! | `authcache_repository_breaker_state` | gauge | — (0 closed, 1 half-open, 2 open) |
//! | `authcache_repository_breaker_opened_total`, `…_failures_total`, `…_timeouts_total`, `…_rejected_total` | counter | — |
//! | `authcache_repository_up` | gauge | — (1 when the last ping answered, 0 when not; absent before the first [`AuthService::health`] or start-up check) |
//!
//! Every service in a process writes the same names: with several, tell them apart with a
//! `metrics-util` layer or a global label of the exporter.

use authcache_users::UserRecord;
use metrics::{counter, describe_counter, describe_gauge, gauge};

use crate::{AuthService, BreakerState, BreakerStats, Stats, TierStatsSnapshot, WatcherState};

impl<U: UserRecord> AuthService<U> {
    /// Sets the `authcache_*` metrics to this service's counters now (see the
    /// [module docs](crate::metrics) for the names and when to call it).
    pub fn record_metrics(&self) {
        record(&self.stats());
    }
}

/// Sets the `authcache_*` metrics from `stats` through the installed `metrics` recorder
/// (a no-op when none is installed).
pub fn record(stats: &Stats) {
    let tiers = [
        ("users", &stats.users),
        ("roles", &stats.roles),
        ("permissions", &stats.permissions),
        ("revocations", &stats.revocations),
        ("cutoffs", &stats.cutoffs),
        ("issuer_cutoffs", &stats.issuer_cutoffs),
        ("principals", &stats.principals),
    ];
    for (kind, tier) in tiers {
        record_tier(kind, tier);
    }
    let validations = [
        ("cached", stats.validations.hits),
        ("verified", stats.validations.verified),
    ];
    for (result, value) in validations {
        counter!("authcache_token_validations_total", "result" => result).absolute(value);
    }
    let outcomes = [
        ("authenticated", stats.authenticated),
        ("rejected_token", stats.rejected_tokens),
        ("rejected_user", stats.rejected_users),
        ("unavailable", stats.unavailable),
    ];
    for (outcome, value) in outcomes {
        counter!("authcache_authentications_total", "outcome" => outcome).absolute(value);
    }
    for (reason, value) in stats.refusals.iter() {
        counter!("authcache_refusals_total", "reason" => reason).absolute(value);
    }
    gauge!("authcache_marks_evictable").set(if stats.marks_evictable { 1.0 } else { 0.0 });
    #[allow(clippy::cast_precision_loss)] // An epoch counts raises: far below 2^53.
    gauge!("authcache_keyspace_epoch").set(stats.keyspace_epoch as f64);
    counter!("authcache_unchecked_total").absolute(stats.unchecked);
    #[allow(clippy::cast_precision_loss)] // Marks pending at once: far below 2^53.
    gauge!("authcache_pending_revocations").set(stats.pending_revocations as f64);
    if let Some(subscribed) = stats.bus_subscribed {
        gauge!("authcache_bus_subscribed").set(flag(subscribed));
    }
    if let Some(breaker) = &stats.breaker {
        record_breaker(breaker);
    }
    record_repository(&stats.repository_breaker, stats.repository_reachable);
    if let Some(watcher) = &stats.watcher {
        record_watcher(watcher);
    }
}

fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

fn record_repository(breaker: &BreakerStats, reachable: Option<bool>) {
    gauge!("authcache_repository_breaker_state").set(breaker_state_value(breaker.state));
    let counters = [
        ("authcache_repository_breaker_opened_total", breaker.opened),
        (
            "authcache_repository_breaker_failures_total",
            breaker.failures,
        ),
        (
            "authcache_repository_breaker_timeouts_total",
            breaker.timeouts,
        ),
        (
            "authcache_repository_breaker_rejected_total",
            breaker.rejected,
        ),
    ];
    for (name, value) in counters {
        counter!(name).absolute(value);
    }
    if let Some(reachable) = reachable {
        gauge!("authcache_repository_up").set(flag(reachable));
    }
}

fn record_watcher(watcher: &crate::WatcherStats) {
    gauge!("authcache_watcher_up").set(flag(!watcher.is_down()));
    let states = [
        ("starting", WatcherState::Starting),
        ("running", WatcherState::Running),
        ("down", WatcherState::Down),
    ];
    for (name, state) in states {
        gauge!("authcache_watcher_state", "state" => name).set(flag(watcher.state == state));
    }
    let counters = [
        ("authcache_watcher_events_total", watcher.events),
        (
            "authcache_watcher_invalidations_total",
            watcher.invalidations,
        ),
        ("authcache_watcher_coalesced_total", watcher.coalesced),
        ("authcache_watcher_full_clears_total", watcher.full_clears),
    ];
    for (name, value) in counters {
        counter!(name).absolute(value);
    }
}

fn record_tier(kind: &'static str, tier: &TierStatsSnapshot) {
    counter!("authcache_cache_hits_total", "kind" => kind, "tier" => "l1").absolute(tier.l1_hits);
    counter!("authcache_cache_hits_total", "kind" => kind, "tier" => "l2").absolute(tier.l2_hits);
    let per_kind = [
        ("authcache_cache_misses_total", tier.misses),
        ("authcache_loads_total", tier.loads),
        ("authcache_load_errors_total", tier.load_errors),
        ("authcache_coalesced_waits_total", tier.coalesced),
        ("authcache_l2_errors_total", tier.l2_errors),
        ("authcache_decode_failures_total", tier.decode_failures),
        ("authcache_publish_errors_total", tier.publish_errors),
        ("authcache_stale_served_total", tier.stale_served),
        ("authcache_refreshes_total", tier.refreshes),
    ];
    for (name, value) in per_kind {
        counter!(name, "kind" => kind).absolute(value);
    }
    #[allow(clippy::cast_precision_loss)] // Ids pending at once: far below 2^53.
    gauge!("authcache_pending_invalidations", "kind" => kind)
        .set(tier.pending_invalidations as f64);
}

fn record_breaker(breaker: &BreakerStats) {
    gauge!("authcache_breaker_state").set(breaker_state_value(breaker.state));
    counter!("authcache_breaker_opened_total").absolute(breaker.opened);
    counter!("authcache_breaker_failures_total").absolute(breaker.failures);
    counter!("authcache_breaker_timeouts_total").absolute(breaker.timeouts);
    counter!("authcache_breaker_rejected_total").absolute(breaker.rejected);
}

/// Ordered by how much of L2 is in use, so "> 0" alerts on any trouble.
fn breaker_state_value(state: BreakerState) -> f64 {
    match state {
        BreakerState::Closed => 0.0,
        BreakerState::HalfOpen => 1.0,
        BreakerState::Open => 2.0,
    }
}

/// Registers a description of every `authcache_*` metric with the installed recorder;
/// call once after installing it (exporters show them as help text).
pub fn describe() {
    let counters = [
        (
            "authcache_cache_hits_total",
            "Answers served by a cache tier.",
        ),
        (
            "authcache_cache_misses_total",
            "Lookups no cache tier could answer.",
        ),
        (
            "authcache_loads_total",
            "Repository calls made to fill a cache miss.",
        ),
        (
            "authcache_load_errors_total",
            "Repository calls that failed.",
        ),
        (
            "authcache_coalesced_waits_total",
            "Callers that waited for another caller's load of the same id.",
        ),
        (
            "authcache_l2_errors_total",
            "L2 calls that failed, timed out or were skipped by the open breaker.",
        ),
        (
            "authcache_decode_failures_total",
            "L2 entries that failed to decode or verify (read as misses, never served).",
        ),
        (
            "authcache_publish_errors_total",
            "Invalidations that could not be published to other instances.",
        ),
        (
            "authcache_stale_served_total",
            "Expired values served within their grace because the repository failed.",
        ),
        (
            "authcache_refreshes_total",
            "Background reloads started (refresh-ahead, retries behind stale values).",
        ),
        (
            "authcache_token_validations_total",
            "Tokens verified, or found already verified by this process.",
        ),
        (
            "authcache_authentications_total",
            "Authentications by outcome.",
        ),
        (
            "authcache_refusals_total",
            "Authentications refused, by reason (the reason is never told to the client).",
        ),
        (
            "authcache_breaker_opened_total",
            "Times the L2 circuit breaker opened.",
        ),
        (
            "authcache_breaker_failures_total",
            "Failed L2 calls seen by the breaker.",
        ),
        (
            "authcache_breaker_timeouts_total",
            "L2 calls that timed out.",
        ),
        (
            "authcache_breaker_rejected_total",
            "L2 calls skipped because the breaker was open.",
        ),
        (
            "authcache_watcher_events_total",
            "Changes read from the repository's change feed.",
        ),
        (
            "authcache_unchecked_total",
            "Revocation checks the shared cache could not answer (served under FailOpen, 503 under FailClosed).",
        ),
        (
            "authcache_repository_breaker_opened_total",
            "Times the repository circuit breaker opened.",
        ),
        (
            "authcache_repository_breaker_failures_total",
            "Repository calls that failed for want of a healthy repository (unavailable, timing out).",
        ),
        (
            "authcache_repository_breaker_timeouts_total",
            "Repository calls that timed out.",
        ),
        (
            "authcache_repository_breaker_rejected_total",
            "Repository calls failed at once because the breaker was open.",
        ),
        (
            "authcache_watcher_invalidations_total",
            "Users and roles invalidated for those changes, after coalescing.",
        ),
        (
            "authcache_watcher_coalesced_total",
            "Changes absorbed by the same id already waiting to be invalidated.",
        ),
        (
            "authcache_watcher_full_clears_total",
            "Times the watcher lost the feed's history and invalidated everything.",
        ),
    ];
    for (name, help) in counters {
        describe_counter!(name, help);
    }
    describe_gauge!(
        "authcache_breaker_state",
        "L2 circuit breaker: 0 closed, 1 half-open, 2 open."
    );
    describe_gauge!(
        "authcache_pending_invalidations",
        "Invalidations the shared cache refused: in force here, retried until accepted."
    );
    describe_gauge!(
        "authcache_keyspace_epoch",
        "The keyspace epoch: raised to clear every instance's caches at once."
    );
    describe_gauge!(
        "authcache_marks_evictable",
        "1 when the shared cache's maxmemory-policy may evict revocation marks."
    );
    describe_gauge!(
        "authcache_watcher_up",
        "Repository watcher: 1 following changes, 0 down."
    );
    let gauges = [
        (
            "authcache_pending_revocations",
            "Logouts and cutoffs in force here that the shared cache has not accepted yet (retried).",
        ),
        (
            "authcache_bus_subscribed",
            "Invalidation bus: 1 subscribed, 0 not (other instances' invalidations may be missed).",
        ),
        (
            "authcache_watcher_state",
            "Repository watcher: 1 for its current state (label state), 0 for the others.",
        ),
        (
            "authcache_repository_breaker_state",
            "Repository circuit breaker: 0 closed, 1 half-open, 2 open.",
        ),
        (
            "authcache_repository_up",
            "Repository: 1 when its last ping answered, 0 when not.",
        ),
    ];
    for (name, help) in gauges {
        describe_gauge!(name, help);
    }
}

#[cfg(test)]
mod tests;
