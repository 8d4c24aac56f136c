//! [`GuardedRepository`]: the user repository behind a circuit breaker, as the shared cache
//! is behind its own (`authcache_core::breaker`).
//!
//! Without it, a repository that is down costs every uncached request its whole failure:
//! the driver's server selection (2 s for MongoDB) or the load timeout. With it, after
//! [`BreakerConfig::failure_threshold`] consecutive failures — [`RepositoryError::Unavailable`],
//! [`RepositoryError::Timeout`], or the call outliving the breaker's timeout — calls fail at
//! once with [`RepositoryError::Unavailable`] ("repository circuit open") for a cool-down
//! that doubles while the single probe after it fails. Meanwhile the tiers serve what they
//! hold, expired values within their grace included (stale-if-error), and uncached requests
//! get a prompt 503.
//!
//! Errors that say nothing about the backend's health — an invalid id, a corrupt or
//! unwritable record, a duplicate email, any error the server itself answered with — count
//! as answers: they close a half-open breaker and reset the failure count.
//!
//! **One timer.** The facade's tiers bound each load by `repository_timeout` too, and the
//! breaker's timeout is at most that (the builder caps it). When both fire together the
//! tier's may win and drop the call here before ours reports it, so a call abandoned after
//! at least 99 % of the breaker's timeout counts as a timeout; one abandoned earlier (its
//! caller went away) counts as nothing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use authcache_core::{BreakerConfig, BreakerPermit, CircuitBreaker};
use authcache_users::{RepositoryError, UserRecord, UserRepository};
use tokio::time::Instant;

type RepositoryResult<T> = std::result::Result<T, RepositoryError>;

/// The repository breaker's settings: `explicit`, or the default threshold and cool-downs;
/// either way its timeout is at most `load_timeout` (the tiers' bound on the same calls,
/// zero for none), so that the breaker sees a hung call fail (see *One timer*).
pub(crate) fn breaker_config(
    explicit: Option<&BreakerConfig>,
    load_timeout: Duration,
) -> BreakerConfig {
    let config = explicit.cloned().unwrap_or(BreakerConfig {
        timeout: load_timeout,
        ..BreakerConfig::default()
    });
    let timeout = match (config.timeout.is_zero(), load_timeout.is_zero()) {
        (true, _) => load_timeout,
        (false, true) => config.timeout,
        (false, false) => config.timeout.min(load_timeout),
    };
    BreakerConfig { timeout, ..config }
}

/// A [`UserRepository`] whose calls go through a [`CircuitBreaker`] and its timeout.
pub(crate) struct GuardedRepository<U: UserRecord> {
    inner: Arc<dyn UserRepository<U>>,
    breaker: Arc<CircuitBreaker>,
}

impl<U: UserRecord> GuardedRepository<U> {
    /// Guards `inner` with `config` (a zero timeout: calls are not bounded here).
    pub(crate) fn new(inner: Arc<dyn UserRepository<U>>, config: BreakerConfig) -> Self {
        Self {
            inner,
            breaker: Arc::new(CircuitBreaker::new("repository", config)),
        }
    }

    /// The breaker, for its state and counters.
    pub(crate) fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }

    async fn run<T>(
        &self,
        what: &str,
        call: impl Future<Output = RepositoryResult<T>>,
    ) -> RepositoryResult<T> {
        let Some(permit) = self.breaker.admit() else {
            return Err(self.open_error());
        };
        let timeout = self.breaker.config().timeout;
        let mut guard = Guard {
            breaker: &self.breaker,
            permit: Some(permit),
            started: Instant::now(),
            timeout,
        };
        let outcome = if timeout.is_zero() {
            call.await
        } else {
            match tokio::time::timeout(timeout, call).await {
                Ok(outcome) => outcome,
                Err(_) => Err(RepositoryError::Timeout(format!(
                    "{what} took longer than {timeout:?}"
                ))),
            }
        };
        if matches!(outcome, Err(RepositoryError::Timeout(_))) {
            self.breaker.count_timeout();
        }
        let healthy = !matches!(&outcome, Err(error) if error.is_transient());
        guard.settle(healthy);
        outcome
    }

    fn open_error(&self) -> RepositoryError {
        let stats = self.breaker.stats();
        RepositoryError::Unavailable(format!(
            "repository circuit open after {} consecutive failures: calls fail at once until \
             the cool-down ends, then one probes",
            stats.consecutive_failures
        ))
    }
}

/// The permit of one call in flight; settles it when the call was abandoned (dropped) at
/// its timeout (see the module docs, *One timer*).
struct Guard<'b> {
    breaker: &'b CircuitBreaker,
    permit: Option<BreakerPermit<'b>>,
    started: Instant,
    timeout: Duration,
}

impl Guard<'_> {
    fn settle(&mut self, healthy: bool) {
        if let Some(permit) = self.permit.take() {
            permit.settle(healthy);
        }
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let at_timeout = self.timeout - self.timeout / 100;
        if !self.timeout.is_zero() && self.started.elapsed() >= at_timeout {
            self.breaker.count_timeout();
            permit.settle(false);
        }
    }
}

#[async_trait]
impl<U: UserRecord> UserRepository<U> for GuardedRepository<U> {
    async fn find_by_id(&self, id: &str) -> RepositoryResult<Option<U>> {
        self.run("find_by_id", self.inner.find_by_id(id)).await
    }

    async fn find_many(&self, ids: &[String]) -> RepositoryResult<Vec<U>> {
        self.run("find_many", self.inner.find_many(ids)).await
    }

    async fn permissions_for_roles(&self, roles: &[String]) -> RepositoryResult<Vec<String>> {
        self.run(
            "permissions_for_roles",
            self.inner.permissions_for_roles(roles),
        )
        .await
    }

    async fn upsert(&self, user: &U) -> RepositoryResult<()> {
        self.run("upsert", self.inner.upsert(user)).await
    }

    async fn delete(&self, id: &str) -> RepositoryResult<bool> {
        self.run("delete", self.inner.delete(id)).await
    }

    async fn ping(&self) -> RepositoryResult<()> {
        self.run("ping", self.inner.ping()).await
    }
}

#[cfg(test)]
mod tests;
