//! Tests of the breaker state machine and of [`GuardedCache`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::*;
use crate::testkit::{FlakyCache, Mode};
use crate::{Cache, CacheError, Key};
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

/// The state machine alone, as the facade's repository guard uses it.
mod circuit {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new("test", BreakerConfig::default())
    }

    fn fail(breaker: &CircuitBreaker, times: u32) {
        for _ in 0..times {
            breaker.admit().expect("admitted").settle(false);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_at_the_threshold_and_refuses_until_the_cooldown_ends() {
        let breaker = breaker();
        fail(&breaker, DEFAULT_FAILURE_THRESHOLD - 1);
        assert_eq!(breaker.state(), BreakerState::Closed);
        fail(&breaker, 1);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(breaker.admit().is_none());
        tokio::time::advance(DEFAULT_BASE_COOLDOWN).await;
        let probe = breaker.admit().expect("the probe");
        assert!(probe.is_probe());
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(breaker.admit().is_none(), "one probe at a time");
        probe.settle(true);
        assert_eq!(breaker.state(), BreakerState::Closed);
        let admitted = breaker.admit().expect("closed again");
        assert!(!admitted.is_probe());
        admitted.settle(true);
        let stats = breaker.stats();
        assert_eq!(
            (
                stats.failures,
                stats.rejected,
                stats.opened,
                stats.consecutive_failures
            ),
            (5, 2, 1, 0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_doubles_the_cooldown() {
        let breaker = breaker();
        fail(&breaker, DEFAULT_FAILURE_THRESHOLD);
        tokio::time::advance(DEFAULT_BASE_COOLDOWN).await;
        breaker.admit().expect("the probe").settle(false);
        tokio::time::advance(DEFAULT_BASE_COOLDOWN).await;
        assert!(
            breaker.admit().is_none(),
            "the second cool-down is twice as long"
        );
        tokio::time::advance(DEFAULT_BASE_COOLDOWN).await;
        assert!(breaker.admit().expect("the second probe").is_probe());
    }

    #[tokio::test(start_paused = true)]
    async fn an_unsettled_permit_records_nothing_and_frees_its_probe() {
        let breaker = breaker();
        for _ in 0..20 {
            drop(breaker.admit().expect("admitted"));
        }
        assert_eq!(breaker.stats().failures, 0);
        fail(&breaker, DEFAULT_FAILURE_THRESHOLD);
        tokio::time::advance(DEFAULT_BASE_COOLDOWN).await;
        drop(breaker.admit().expect("the probe"));
        assert!(breaker.admit().expect("probe again at once").is_probe());
    }

    #[test]
    fn timeouts_are_counted_apart() {
        let breaker = breaker();
        breaker.count_timeout();
        breaker.admit().expect("admitted").settle(false);
        let stats = breaker.stats();
        assert_eq!((stats.timeouts, stats.failures), (1, 1));
        assert_eq!(breaker.config(), &BreakerConfig::default());
    }
}
