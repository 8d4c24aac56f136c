//! The repository breaker over a mocked repository: what opens it, what does not, the
//! probe that closes it, and the two timers (its own and the tiers' load timeout).

use std::sync::atomic::{AtomicU64, Ordering};

use authcache_core::BreakerState;
use authcache_users::{MockUserRepository, User};

use super::*;

const THRESHOLD: u32 = authcache_core::breaker::DEFAULT_FAILURE_THRESHOLD;

/// The default breaker, without a cool-down when `probe_at_once` (so the next call after
/// opening is the probe, with no clock involved), else with an hour's.
fn config(probe_at_once: bool) -> BreakerConfig {
    let cooldown = if probe_at_once {
        Duration::ZERO
    } else {
        Duration::from_secs(3600)
    };
    BreakerConfig {
        timeout: Duration::from_secs(3600),
        base_cooldown: cooldown,
        max_cooldown: cooldown,
        ..BreakerConfig::default()
    }
}

fn guarded(mock: MockUserRepository<User>, config: BreakerConfig) -> GuardedRepository<User> {
    GuardedRepository::new(Arc::new(mock), config)
}

fn unavailable() -> RepositoryError {
    RepositoryError::Unavailable("no server".into())
}

#[tokio::test]
async fn opens_after_the_threshold_and_fails_at_once_without_calling_the_repository() {
    let mut mock = MockUserRepository::<User>::new();
    // A sixth call would panic the mock.
    mock.expect_find_by_id()
        .times(THRESHOLD as usize)
        .returning(|_| Err(unavailable()));
    let repository = guarded(mock, config(false));
    for _ in 0..THRESHOLD {
        assert!(
            repository
                .find_by_id("ada")
                .await
                .unwrap_err()
                .is_unavailable()
        );
    }
    assert_eq!(repository.breaker().state(), BreakerState::Open);
    for _ in 0..10 {
        let error = repository.find_by_id("ada").await.unwrap_err();
        assert!(error.is_unavailable(), "{error}");
        assert!(
            error.to_string().contains("repository circuit open"),
            "{error}"
        );
    }
    let stats = repository.breaker().stats();
    assert_eq!((stats.failures, stats.rejected, stats.opened), (5, 10, 1));
}

#[tokio::test]
async fn errors_that_say_nothing_about_health_never_open_it() {
    let mut mock = MockUserRepository::<User>::new();
    mock.expect_find_by_id().returning(|id| {
        Err(RepositoryError::Corrupt {
            id: id.to_owned(),
            reason: "bad".into(),
        })
    });
    mock.expect_permissions_for_roles()
        .returning(|_| Err(authcache_core::KeyError::Empty.into()));
    mock.expect_upsert()
        .returning(|_| Err(RepositoryError::Duplicate("email".into())));
    let repository = guarded(mock, config(false));
    for _ in 0..20 {
        assert!(repository.find_by_id("ada").await.is_err());
        assert!(repository.permissions_for_roles(&[]).await.is_err());
        assert!(
            repository
                .upsert(&User::new("a", "a@x", "A"))
                .await
                .is_err()
        );
    }
    assert_eq!(repository.breaker().state(), BreakerState::Closed);
    assert_eq!(repository.breaker().stats().failures, 0);
}

#[tokio::test]
async fn a_probe_that_answers_closes_it() {
    let calls = Arc::new(AtomicU64::new(0));
    let mut mock = MockUserRepository::<User>::new();
    let counted = Arc::clone(&calls);
    mock.expect_find_by_id().returning(move |_| {
        // Down for the first THRESHOLD calls, then back.
        if counted.fetch_add(1, Ordering::SeqCst) < u64::from(THRESHOLD) {
            Err(unavailable())
        } else {
            Ok(None)
        }
    });
    mock.expect_ping().returning(|| Ok(()));
    let repository = guarded(mock, config(true));
    for _ in 0..THRESHOLD {
        assert!(repository.find_by_id("ada").await.is_err());
    }
    assert_eq!(repository.breaker().state(), BreakerState::Open);
    assert_eq!(repository.find_by_id("ada").await, Ok(None), "the probe");
    assert_eq!(repository.breaker().state(), BreakerState::Closed);
    assert_eq!(repository.ping().await, Ok(()));
    assert_eq!(calls.load(Ordering::SeqCst), u64::from(THRESHOLD) + 1);
}

/// Never answers.
struct Hung;

#[async_trait]
impl UserRepository<User> for Hung {
    async fn find_by_id(&self, _: &str) -> RepositoryResult<Option<User>> {
        std::future::pending().await
    }
    async fn find_many(&self, _: &[String]) -> RepositoryResult<Vec<User>> {
        std::future::pending().await
    }
    async fn permissions_for_roles(&self, _: &[String]) -> RepositoryResult<Vec<String>> {
        std::future::pending().await
    }
    async fn upsert(&self, _: &User) -> RepositoryResult<()> {
        std::future::pending().await
    }
    async fn delete(&self, _: &str) -> RepositoryResult<bool> {
        std::future::pending().await
    }
    async fn ping(&self) -> RepositoryResult<()> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_hung_repository_times_out_and_opens_it() {
    let repository = GuardedRepository::new(
        Arc::new(Hung),
        BreakerConfig {
            timeout: Duration::from_millis(1),
            ..config(false)
        },
    );
    for _ in 0..THRESHOLD {
        assert!(repository.ping().await.unwrap_err().is_timeout());
    }
    let error = repository.find_many(&[]).await.unwrap_err();
    assert!(error.is_unavailable(), "open: {error}");
    let stats = repository.breaker().stats();
    assert_eq!((stats.state, stats.timeouts), (BreakerState::Open, 5));
}

#[tokio::test]
async fn a_call_dropped_at_the_tiers_own_timeout_counts_one_dropped_early_does_not() {
    let timeout = Duration::from_secs(1);
    let repository = GuardedRepository::new(
        Arc::new(Hung),
        BreakerConfig {
            timeout,
            ..config(false)
        },
    );
    // The tier's load timeout: the same duration, started first, may fire first.
    let tiers_own = tokio::time::timeout(timeout, repository.find_by_id("ada")).await;
    assert!(matches!(
        tiers_own,
        Err(_) | Ok(Err(RepositoryError::Timeout(_)))
    ));
    assert_eq!(repository.breaker().stats().failures, 1);
    // A caller that went away early says nothing about the repository.
    let gone = tokio::time::timeout(Duration::from_millis(1), repository.delete("ada")).await;
    assert!(gone.is_err());
    assert_eq!(repository.breaker().stats().failures, 1);
}
