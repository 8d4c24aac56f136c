//! [`GuardedCache`]: an L2 behind a [`CircuitBreaker`], a per-call timeout and the
//! request's budget of one L2 failure ([`with_l2_budget`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{BreakerConfig, BreakerState, BreakerStats, CircuitBreaker};
use crate::{Cache, CacheError, Key, Result};

tokio::task_local! {
    /// Set once an L2 call of the current request failed: the request's budget of one
    /// timeout is spent.
    static L2_BUDGET_SPENT: std::cell::Cell<bool>;
}

/// Runs `request` with a budget of one L2 failure: after the first L2 call in it fails
/// or times out, every further call through a [`GuardedCache`] fails at once with
/// [`CacheError::Skipped`], so a hung backend costs the request one timeout, not one per
/// tier. Calls outside any budget are unaffected.
pub async fn with_l2_budget<F: Future>(request: F) -> F::Output {
    L2_BUDGET_SPENT
        .scope(std::cell::Cell::new(false), request)
        .await
}

fn budget_spent() -> bool {
    L2_BUDGET_SPENT
        .try_with(std::cell::Cell::get)
        .unwrap_or(false)
}

fn spend_budget() {
    let _outside_any_request = L2_BUDGET_SPENT.try_with(|spent| spent.set(true));
}

/// A [`Cache`] that applies a timeout and a circuit breaker to another one.
#[derive(Debug)]
pub struct GuardedCache {
    inner: Arc<dyn Cache>,
    breaker: CircuitBreaker,
}

impl GuardedCache {
    /// Guards `inner` with `config`.
    pub fn new(inner: Arc<dyn Cache>, config: BreakerConfig) -> Self {
        Self {
            inner,
            breaker: CircuitBreaker::new("L2", config),
        }
    }

    /// The guarded backend.
    pub fn inner(&self) -> &Arc<dyn Cache> {
        &self.inner
    }

    /// The settings.
    pub fn config(&self) -> &BreakerConfig {
        self.breaker.config()
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// State and counters.
    pub fn stats(&self) -> BreakerStats {
        self.breaker.stats()
    }

    /// Runs any other call on the same backend (an invalidation publish on its
    /// connection, say) through this breaker, its timeout and the request's budget.
    ///
    /// # Errors
    /// The call's error, [`CacheError::Timeout`], [`CacheError::CircuitOpen`] or
    /// [`CacheError::Skipped`].
    pub async fn run<R>(&self, call: impl Future<Output = Result<R>>) -> Result<R> {
        if budget_spent() {
            return Err(CacheError::Skipped);
        }
        let permit = self.breaker.admit().ok_or(CacheError::CircuitOpen)?;
        let timeout = self.breaker.config().timeout;
        let outcome = match tokio::time::timeout(timeout, call).await {
            Ok(outcome) => outcome,
            Err(_) => Err(CacheError::Timeout(timeout)),
        };
        // Counted whichever timer fired first: ours, or the client's own (usually set to
        // the same duration, and polled before ours).
        if matches!(outcome, Err(CacheError::Timeout(_))) {
            self.breaker.count_timeout();
        }
        match &outcome {
            Err(error) if error.is_timeout() || error.is_unavailable() => {
                spend_budget();
                permit.settle(false);
            }
            // Codec, key or unsupported-operation errors say nothing about health.
            _ => permit.settle(true),
        }
        outcome
    }
}

#[async_trait]
impl Cache for GuardedCache {
    async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        self.run(self.inner.get(key)).await
    }

    async fn set(&self, key: &Key, value: Bytes, ttl: Duration) -> Result<()> {
        self.run(self.inner.set(key, value, ttl)).await
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        self.run(self.inner.delete(key)).await
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        self.run(self.inner.get_many(keys)).await
    }

    async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        self.run(self.inner.delete_many(keys)).await
    }

    async fn set_if_unchanged(
        &self,
        key: &Key,
        expected: Option<Bytes>,
        value: Bytes,
        ttl: Duration,
    ) -> Result<bool> {
        self.run(self.inner.set_if_unchanged(key, expected, value, ttl))
            .await
    }
}
