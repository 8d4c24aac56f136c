//! A circuit breaker and per-call timeout around an L2 backend.
//!
//! [`GuardedCache`] is itself a [`Cache`], built once per L2 and shared by every tier
//! that uses it, so that one dead Redis opens one breaker for all of them. Every call
//! carries [`BreakerConfig::timeout`]; after [`BreakerConfig::failure_threshold`]
//! consecutive failures the breaker opens and calls fail at once with
//! [`CacheError::CircuitOpen`] for a cool-down, which doubles (up to
//! [`BreakerConfig::max_cooldown`]) each time the single half-open probe fails. A hung
//! backend therefore costs a request at most one timeout, and once the breaker is open, none.
//!
//! "One timeout" holds per request, not per call: a request runs inside
//! [`with_l2_budget`], and once one L2 call of it has failed or timed out, its later L2
//! calls (the next tier's read, the fill, the publish) are skipped at once with
//! [`CacheError::Skipped`] — before the breaker has seen enough failures to open.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::time::Instant;

use crate::{Cache, CacheError, Key, Result};

/// 5 failures in a row: one or two can be a blip, five are an outage.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;

/// 100 ms: a healthy Redis answers in well under a millisecond; past this, serving from
/// the repository is faster than waiting.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);

/// 250 ms: the first cool-down is short, so a blip costs little cache use.
pub const DEFAULT_BASE_COOLDOWN: Duration = Duration::from_millis(250);

/// 30 s: the cool-down stops doubling here, so a recovered backend is noticed within 30 s.
pub const DEFAULT_MAX_COOLDOWN: Duration = Duration::from_secs(30);

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

/// A cool-down far beyond any configuration that makes sense, and still representable.
const MAX_REPRESENTABLE: Duration = Duration::from_secs(365 * 24 * 3600);

/// Breaker and timeout settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures (errors or timeouts) that open the breaker; 0 is read as 1.
    pub failure_threshold: u32,
    /// Time limit for each backend call.
    pub timeout: Duration,
    /// First cool-down after opening.
    pub base_cooldown: Duration,
    /// Longest cool-down.
    pub max_cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            timeout: DEFAULT_TIMEOUT,
            base_cooldown: DEFAULT_BASE_COOLDOWN,
            max_cooldown: DEFAULT_MAX_COOLDOWN,
        }
    }
}

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls go to the backend.
    Closed,
    /// Calls are skipped until the cool-down ends.
    Open,
    /// One probe call is in flight; the others are skipped.
    HalfOpen,
}

/// Counters and state of a breaker, as a plain copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerStats {
    /// Current state.
    pub state: BreakerState,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Failed calls (errors and timeouts) since start.
    pub failures: u64,
    /// Of which timeouts.
    pub timeouts: u64,
    /// Calls skipped because the breaker was open.
    pub rejected: u64,
    /// Times the breaker opened.
    pub opened: u64,
}

#[derive(Debug)]
enum Mode {
    Closed,
    Open { until: Instant },
    HalfOpen,
}

#[derive(Debug)]
struct Breaker {
    mode: Mode,
    consecutive_failures: u32,
    cooldown: Duration,
}

impl Breaker {
    fn state(&self) -> BreakerState {
        match self.mode {
            Mode::Closed => BreakerState::Closed,
            Mode::Open { .. } => BreakerState::Open,
            Mode::HalfOpen => BreakerState::HalfOpen,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    failures: AtomicU64,
    timeouts: AtomicU64,
    rejected: AtomicU64,
    opened: AtomicU64,
}

/// A [`Cache`] that applies a timeout and a circuit breaker to another one.
#[derive(Debug)]
pub struct GuardedCache {
    inner: Arc<dyn Cache>,
    config: BreakerConfig,
    breaker: Mutex<Breaker>,
    /// `breaker` is closed with no failure since the last success (written under its
    /// lock): calls to a healthy backend neither lock to be admitted nor to record success.
    healthy: AtomicBool,
    counters: Counters,
}

impl GuardedCache {
    /// Guards `inner` with `config`.
    pub fn new(inner: Arc<dyn Cache>, config: BreakerConfig) -> Self {
        let cooldown = config.base_cooldown;
        Self {
            inner,
            config,
            breaker: Mutex::new(Breaker {
                mode: Mode::Closed,
                consecutive_failures: 0,
                cooldown,
            }),
            healthy: AtomicBool::new(true),
            counters: Counters::default(),
        }
    }

    /// The guarded backend.
    pub fn inner(&self) -> &Arc<dyn Cache> {
        &self.inner
    }

    /// The settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.lock().state()
    }

    /// State and counters.
    pub fn stats(&self) -> BreakerStats {
        let (state, consecutive_failures) = {
            let breaker = self.lock();
            (breaker.state(), breaker.consecutive_failures)
        };
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        BreakerStats {
            state,
            consecutive_failures,
            failures: load(&self.counters.failures),
            timeouts: load(&self.counters.timeouts),
            rejected: load(&self.counters.rejected),
            opened: load(&self.counters.opened),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Breaker> {
        // The state stays consistent under every panic point (plain assignments), so a
        // poisoned lock is still usable.
        self.breaker.lock().unwrap_or_else(PoisonError::into_inner)
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
        let mut permit = self.admit()?;
        let outcome = match tokio::time::timeout(self.config.timeout, call).await {
            Ok(outcome) => outcome,
            Err(_) => Err(CacheError::Timeout(self.config.timeout)),
        };
        // Counted whichever timer fired first: ours, or the client's own (usually set to
        // the same duration, and polled before ours).
        if matches!(outcome, Err(CacheError::Timeout(_))) {
            self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
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

    fn admit(&self) -> Result<Permit<'_>> {
        if self.healthy.load(Ordering::Acquire) {
            return Ok(Permit {
                guard: self,
                probe: false,
                settled: false,
            });
        }
        let mut breaker = self.lock();
        let probe = match breaker.mode {
            Mode::Closed => false,
            Mode::Open { until } if Instant::now() >= until => {
                breaker.mode = Mode::HalfOpen;
                true
            }
            Mode::Open { .. } | Mode::HalfOpen => {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(CacheError::CircuitOpen);
            }
        };
        Ok(Permit {
            guard: self,
            probe,
            settled: false,
        })
    }

    fn record(&self, success: bool, probe: bool) {
        if success && self.healthy.load(Ordering::Acquire) {
            return; // Already closed, no failures, base cool-down: nothing to reset.
        }
        let mut breaker = self.lock();
        self.healthy.store(success, Ordering::Release);
        if success {
            if !matches!(breaker.mode, Mode::Closed) {
                tracing::info!("L2 circuit breaker closed: the shared cache answers again");
            }
            breaker.mode = Mode::Closed;
            breaker.consecutive_failures = 0;
            breaker.cooldown = self.config.base_cooldown;
            return;
        }
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
        breaker.consecutive_failures = breaker.consecutive_failures.saturating_add(1);
        let threshold = self.config.failure_threshold.max(1);
        if probe {
            breaker.cooldown = breaker
                .cooldown
                .saturating_mul(2)
                .min(self.config.max_cooldown);
            self.open(&mut breaker);
        } else if matches!(breaker.mode, Mode::Closed) && breaker.consecutive_failures >= threshold
        {
            breaker.cooldown = self.config.base_cooldown;
            self.open(&mut breaker);
        }
    }

    fn open(&self, breaker: &mut Breaker) {
        let now = Instant::now();
        breaker.mode = Mode::Open {
            // A cool-down too long to represent is as good as forever.
            until: now
                .checked_add(breaker.cooldown)
                .unwrap_or(now + MAX_REPRESENTABLE),
        };
        self.counters.opened.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            cooldown_ms = breaker.cooldown.as_millis() as u64,
            failures = breaker.consecutive_failures,
            "L2 circuit breaker open"
        );
    }

    /// A probe abandoned mid-flight (its future dropped) lets the next call probe at once,
    /// instead of leaving the breaker half-open forever.
    fn abandon_probe(&self) {
        let mut breaker = self.lock();
        if matches!(breaker.mode, Mode::HalfOpen) {
            breaker.mode = Mode::Open {
                until: Instant::now(),
            };
        }
    }
}

/// Permission to make one call; records its outcome exactly once.
struct Permit<'g> {
    guard: &'g GuardedCache,
    probe: bool,
    settled: bool,
}

impl Permit<'_> {
    fn settle(&mut self, success: bool) {
        self.settled = true;
        self.guard.record(success, self.probe);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            self.guard.abandon_probe();
        }
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

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;
    use crate::testkit::{FlakyCache, Mode};
    use crate::{KeyKind, Keyspace, MockCache};

    fn key() -> Key {
        Keyspace::default().key(KeyKind::User, "42").unwrap()
    }

    fn guarded(inner: Arc<dyn Cache>) -> GuardedCache {
        GuardedCache::new(inner, BreakerConfig::default())
    }

    async fn elapsed<R>(call: impl Future<Output = R>) -> (R, Duration) {
        let start = Instant::now();
        let result = call.await;
        (result, start.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_n_failures_and_skips_the_backend_while_open() {
        let mut mock = MockCache::new();
        mock.expect_get()
            .times(DEFAULT_FAILURE_THRESHOLD as usize)
            .returning(|_| Err(CacheError::unavailable("down")));
        let cache = guarded(Arc::new(mock));
        for n in 1..=DEFAULT_FAILURE_THRESHOLD {
            assert_eq!(cache.state(), BreakerState::Closed, "before failure {n}");
            assert!(cache.get(&key()).await.unwrap_err().is_unavailable());
        }
        assert_eq!(cache.state(), BreakerState::Open);
        // The mock would panic on a sixth call: these never reach it.
        for _ in 0..100 {
            let (result, took) = elapsed(cache.get(&key())).await;
            assert!(matches!(result, Err(CacheError::CircuitOpen)));
            assert_eq!(took, Duration::ZERO);
        }
        let stats = cache.stats();
        assert_eq!(
            (
                stats.failures,
                stats.rejected,
                stats.opened,
                stats.consecutive_failures
            ),
            (5, 100, 1, 5)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count() {
        let flaky = Arc::new(FlakyCache::default());
        let cache = guarded(flaky.clone());
        for _ in 0..3 {
            flaky.set_mode(Mode::Failing);
            for _ in 0..DEFAULT_FAILURE_THRESHOLD - 1 {
                assert!(cache.get(&key()).await.is_err());
            }
            flaky.set_mode(Mode::Healthy);
            assert!(cache.get(&key()).await.is_ok());
        }
        assert_eq!(cache.state(), BreakerState::Closed);
        assert_eq!(cache.stats().consecutive_failures, 0);
    }

    async fn open(cache: &GuardedCache, flaky: &FlakyCache) {
        flaky.set_mode(Mode::Failing);
        for _ in 0..DEFAULT_FAILURE_THRESHOLD {
            let _ = cache.get(&key()).await;
        }
        assert_eq!(cache.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn probes_after_the_cooldown_and_closes_on_success() {
        let flaky = Arc::new(FlakyCache::default());
        let cache = guarded(flaky.clone());
        open(&cache, &flaky).await;
        flaky.set_mode(Mode::Healthy);
        tokio::time::advance(DEFAULT_BASE_COOLDOWN - Duration::from_millis(1)).await;
        assert!(matches!(
            cache.get(&key()).await,
            Err(CacheError::CircuitOpen)
        ));
        let calls = flaky.calls();
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(cache.get(&key()).await.unwrap(), None);
        assert_eq!(
            flaky.calls(),
            calls + 1,
            "exactly one probe reached the backend"
        );
        assert_eq!(cache.state(), BreakerState::Closed);
        assert!(cache.get(&key()).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_doubles_the_cooldown_up_to_the_cap() {
        let flaky = Arc::new(FlakyCache::default());
        let cache = guarded(flaky.clone());
        open(&cache, &flaky).await;
        let mut cooldown = DEFAULT_BASE_COOLDOWN;
        let mut schedule = Vec::new();
        for _ in 0..12 {
            // Skipped until the very end of the cool-down, probed exactly at it.
            tokio::time::advance(cooldown - Duration::from_millis(1)).await;
            assert!(matches!(
                cache.get(&key()).await,
                Err(CacheError::CircuitOpen)
            ));
            tokio::time::advance(Duration::from_millis(1)).await;
            let calls = flaky.calls();
            assert!(cache.get(&key()).await.unwrap_err().is_unavailable());
            assert_eq!(flaky.calls(), calls + 1);
            assert_eq!(cache.state(), BreakerState::Open);
            schedule.push(cooldown);
            cooldown = (cooldown * 2).min(DEFAULT_MAX_COOLDOWN);
        }
        assert_eq!(schedule[..3], [250, 500, 1000].map(Duration::from_millis));
        assert_eq!(schedule.last(), Some(&DEFAULT_MAX_COOLDOWN));
        assert_eq!(cache.stats().opened, 13);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_backend_costs_one_timeout_then_nothing() {
        let flaky = Arc::new(FlakyCache::default());
        flaky.set_mode(Mode::Hanging);
        let cache = guarded(flaky.clone());
        for _ in 0..DEFAULT_FAILURE_THRESHOLD {
            let (result, took) = elapsed(cache.get(&key())).await;
            assert!(result.unwrap_err().is_timeout());
            assert_eq!(took, DEFAULT_TIMEOUT);
        }
        let (result, took) = elapsed(cache.get(&key())).await;
        assert!(matches!(result, Err(CacheError::CircuitOpen)));
        assert_eq!(took, Duration::ZERO);
        assert_eq!(cache.stats().timeouts, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_lets_a_single_probe_through() {
        let flaky = Arc::new(FlakyCache::default());
        let cache = Arc::new(guarded(flaky.clone()));
        open(&cache, &flaky).await;
        flaky.set_mode(Mode::Hanging);
        tokio::time::advance(DEFAULT_BASE_COOLDOWN).await;
        let probe = tokio::spawn({
            let cache = Arc::clone(&cache);
            async move { cache.get(&key()).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(cache.state(), BreakerState::HalfOpen);
        for _ in 0..10 {
            assert!(matches!(
                cache.get(&key()).await,
                Err(CacheError::CircuitOpen)
            ));
        }
        assert!(probe.await.unwrap().unwrap_err().is_timeout());
        assert_eq!(cache.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_probe_does_not_wedge_the_breaker() {
        let flaky = Arc::new(FlakyCache::default());
        let cache = guarded(flaky.clone());
        open(&cache, &flaky).await;
        flaky.set_mode(Mode::Hanging);
        tokio::time::advance(DEFAULT_BASE_COOLDOWN).await;
        let abandoned = tokio::time::timeout(Duration::from_millis(10), cache.get(&key())).await;
        assert!(abandoned.is_err());
        flaky.set_mode(Mode::Healthy);
        assert!(cache.get(&key()).await.is_ok());
        assert_eq!(cache.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn codec_errors_say_nothing_about_health() {
        let mut mock = MockCache::new();
        mock.expect_set()
            .returning(|_, _, _| Err(CacheError::Codec("bad".into())));
        let cache = guarded(Arc::new(mock));
        for _ in 0..20 {
            assert!(
                cache
                    .set(&key(), Bytes::new(), Duration::from_secs(1))
                    .await
                    .is_err()
            );
        }
        assert_eq!(cache.state(), BreakerState::Closed);
        assert_eq!(cache.stats().failures, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn every_operation_is_guarded() {
        let flaky = Arc::new(FlakyCache::default());
        flaky.set_mode(Mode::Hanging);
        let cache = guarded(flaky.clone());
        let keys = [key()];
        assert!(
            cache
                .set(&key(), Bytes::new(), Duration::from_secs(1))
                .await
                .is_err()
        );
        assert!(cache.delete(&key()).await.is_err());
        assert!(cache.get_many(&keys).await.is_err());
        assert!(cache.delete_many(&keys).await.is_err());
        assert!(cache.get(&key()).await.is_err());
        assert_eq!(cache.stats().timeouts, 5);
        assert_eq!(cache.state(), BreakerState::Open);
        assert!(Arc::ptr_eq(cache.inner(), &(flaky as Arc<dyn Cache>)));
        assert_eq!(cache.config(), &BreakerConfig::default());
    }
}
