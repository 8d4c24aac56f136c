//! [`Health`]: whether this instance can answer, and what is wrong when it cannot — for a
//! liveness or readiness probe, a status page, an alert.
//!
//! # What is checked
//! - **The shared cache**: its circuit breaker and, with Redis, the invalidation bus. Read
//!   from memory: no call is made.
//! - **The repository**: one ping ([`UserRepository::ping`], MongoDB's `ping` command
//!   under its operation timeout) through the repository's circuit breaker, **at most once
//!   every [`PING_INTERVAL`]**; health checks in between reuse its answer. So however often
//!   probes come, the repository sees at most one ping per interval from each instance, and
//!   while the breaker is open none at all (the ping is refused at once, and reported as
//!   unreachable) — until its cool-down ends, when the ping is the breaker's probe: health
//!   checks notice a recovered repository even when no request needs it.
//! - **The rest**, from [`Stats`]: the watcher's state, revocations and invalidations the
//!   shared cache has not accepted yet, whether it may evict revocation marks.
//!
//! # The rule
//! - [`Status::Down`]: the repository is unreachable and no shared cache serves (there is
//!   none — the in-process cache of a single instance — or its breaker is not closed):
//!   only what this instance holds in memory can be answered.
//! - [`Status::Degraded`]: every request that can be answered is, but something needs an
//!   operator: the repository unreachable while the shared cache serves (uncached users
//!   get 503), the shared cache's breaker not closed (the repository answers for it), the
//!   bus not subscribed (other instances' invalidations may be missed), the watcher down,
//!   revocations or invalidations pending, or a shared cache that may evict revocation
//!   marks.
//! - [`Status::Ok`]: none of the above.
//!
//! [`Health::is_ready`] is "not down": a load balancer keeps sending requests to a degraded
//! instance, which answers all it can.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use authcache_users::{UserRecord, UserRepository};
use serde::Serialize;
use tokio::time::Instant;

use crate::{AuthError, BreakerState, Result, Stats, WatcherState};

/// 5 s: often enough for a readiness probe to follow an outage closely, rare enough that
/// any number of probers costs the repository one ping per instance per 5 s.
pub const PING_INTERVAL: Duration = Duration::from_secs(5);

/// Overall health: see the module docs for the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Status {
    /// Everything answers.
    Ok,
    /// Answers all it can; something needs an operator.
    Degraded,
    /// Only what this instance holds in memory can be answered.
    Down,
}

/// What [`AuthService::health`](crate::AuthService::health) found (serializes to JSON
/// with `status` first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Health {
    status: Status,
    /// The shared cache (L2).
    pub shared_cache: SharedCacheHealth,
    /// The system of record.
    pub repository: RepositoryHealth,
    /// The repository watcher's state, when this instance runs one.
    pub watcher: Option<WatcherState>,
    /// Logouts and cutoffs in force here that the shared cache has not accepted yet.
    pub pending_revocations: u64,
    /// Invalidations and write-throughs in force here that the shared cache has not
    /// accepted yet (users and role permissions).
    pub pending_invalidations: u64,
    /// The shared cache may evict revocation marks ([`Stats::marks_evictable`]).
    pub marks_evictable: bool,
}

/// The shared cache's part of [`Health`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SharedCacheHealth {
    /// Shared with other instances (Redis, Redis Cluster, your own L2); `false` for the
    /// in-process cache of a single instance.
    pub shared: bool,
    /// Its circuit breaker: anything but `closed` means it is being skipped.
    pub breaker: BreakerState,
    /// Whether the invalidation bus is subscribed (`None`: no bus).
    pub bus_subscribed: Option<bool>,
}

impl SharedCacheHealth {
    /// Shared, and its breaker closed: it answers what it holds for every instance.
    pub fn is_serving(&self) -> bool {
        self.shared && self.breaker == BreakerState::Closed
    }
}

/// The repository's part of [`Health`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RepositoryHealth {
    /// It answered the last ping (at most [`PING_INTERVAL`] ago).
    pub reachable: bool,
    /// Its circuit breaker.
    pub breaker: BreakerState,
    /// Why the last ping failed.
    pub error: Option<String>,
}

impl Health {
    pub(crate) fn new(stats: &Stats, shared: bool, ping: Result<(), String>) -> Self {
        let mut health = Self {
            status: Status::Ok,
            shared_cache: SharedCacheHealth {
                shared,
                breaker: stats.breaker.map(|b| b.state).unwrap_or_default(),
                bus_subscribed: stats.bus_subscribed,
            },
            repository: RepositoryHealth {
                reachable: ping.is_ok(),
                breaker: stats.repository_breaker.state,
                error: ping.err(),
            },
            watcher: stats.watcher.map(|w| w.state),
            pending_revocations: stats.pending_revocations,
            pending_invalidations: stats.users.pending_invalidations
                + stats.permissions.pending_invalidations,
            marks_evictable: stats.marks_evictable,
        };
        health.status = health.judge();
        health
    }

    fn judge(&self) -> Status {
        let cache = &self.shared_cache;
        if !self.repository.reachable && !cache.is_serving() {
            return Status::Down;
        }
        let troubled = !self.repository.reachable
            || cache.breaker != BreakerState::Closed
            || cache.bus_subscribed == Some(false)
            || self.watcher == Some(WatcherState::Down)
            || self.pending_revocations > 0
            || self.pending_invalidations > 0
            || self.marks_evictable;
        if troubled {
            Status::Degraded
        } else {
            Status::Ok
        }
    }

    /// Overall: [`Status::Ok`], [`Status::Degraded`] or [`Status::Down`] (the rule is in
    /// the [module docs](self)).
    pub fn status(&self) -> Status {
        self.status
    }

    /// Not [`Status::Down`]: worth sending requests to.
    pub fn is_ready(&self) -> bool {
        self.status != Status::Down
    }
}

/// The last ping of the repository, reused for [`PING_INTERVAL`].
#[derive(Debug, Default)]
pub(crate) struct RepositoryProbe {
    last: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
    /// 0 never pinged, 1 reachable, 2 not: for [`Stats`], which cannot wait on the lock.
    reachable: AtomicU8,
}

impl RepositoryProbe {
    /// The repository's answer to a ping, made now unless one was made within
    /// [`PING_INTERVAL`]. Concurrent callers share one ping.
    pub(crate) async fn check<U: UserRecord>(
        &self,
        repository: &dyn UserRepository<U>,
    ) -> Result<(), String> {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = &*last
            && at.elapsed() < PING_INTERVAL
        {
            return answer.clone();
        }
        let answer = repository.ping().await.map_err(|error| error.to_string());
        self.reachable
            .store(if answer.is_ok() { 1 } else { 2 }, Ordering::Relaxed);
        *last = Some((Instant::now(), answer.clone()));
        answer
    }

    /// The last ping's answer, without waiting (`None` before any).
    pub(crate) fn reachable(&self) -> Option<bool> {
        match self.reachable.load(Ordering::Relaxed) {
            0 => None,
            state => Some(state == 1),
        }
    }

    /// Start-up with a repository built from configuration: one that does not answer is
    /// served around when a shared cache may hold what is asked (logged at `warn`), and
    /// fails the build when there is none — nothing could be answered.
    ///
    /// # Errors
    /// [`AuthError::Unavailable`] when the repository does not answer and `shared` is
    /// false.
    pub(crate) async fn check_at_start<U: UserRecord>(
        &self,
        repository: &dyn UserRepository<U>,
        shared: bool,
    ) -> Result<()> {
        let Err(error) = self.check(repository).await else {
            return Ok(());
        };
        if !shared {
            return Err(AuthError::unavailable(format!(
                "the repository does not answer at start-up ({error}) and the in-process \
                 cache is empty, so nothing could be served: start the repository, or \
                 configure a shared cache (Redis) that other instances fill"
            )));
        }
        tracing::warn!(
            %error,
            "the repository does not answer at start-up: serving what the shared cache \
             holds; requests for anything else get 503 until it is back (see \
             AuthService::health); check that MongoDB runs and `[repository] uri`"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests;
