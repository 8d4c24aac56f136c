//! The health rule over every combination that decides it, the JSON it serializes to, and
//! the ping that probes in quick succession share.

use std::sync::Arc;

use authcache_core::BreakerStats;
use authcache_users::{MockUserRepository, RepositoryError, User};

use super::*;
use crate::{AuthService, JwtVerifier, WatcherStats};

fn stats(l2: BreakerState) -> Stats {
    Stats {
        breaker: Some(BreakerStats {
            state: l2,
            ..BreakerStats::default()
        }),
        ..Stats::default()
    }
}

const DOWN: fn() -> Result<(), String> = || Err("no server".into());

#[test]
fn the_rule() {
    let closed = stats(BreakerState::Closed);
    let open = stats(BreakerState::Open);
    let cases = [
        (&closed, true, Ok(()), Status::Ok),
        (&closed, false, Ok(()), Status::Ok),
        (&open, true, Ok(()), Status::Degraded),
        (&closed, true, DOWN(), Status::Degraded),
        (&closed, false, DOWN(), Status::Down),
        (&open, true, DOWN(), Status::Down),
    ];
    for (stats, shared, ping, expected) in cases {
        let health = Health::new(stats, shared, ping.clone());
        assert_eq!(
            health.status(),
            expected,
            "{stats:?} shared {shared} {ping:?}"
        );
        assert_eq!(health.is_ready(), expected != Status::Down);
    }
    let troubles = [
        Stats {
            bus_subscribed: Some(false),
            ..closed
        },
        Stats {
            pending_revocations: 1,
            ..closed
        },
        Stats {
            marks_evictable: true,
            ..closed
        },
        Stats {
            watcher: Some(WatcherStats {
                state: WatcherState::Down,
                ..WatcherStats::default()
            }),
            ..closed
        },
    ];
    for stats in &troubles {
        let health = Health::new(stats, true, Ok(()));
        assert_eq!(health.status(), Status::Degraded, "{stats:?}");
    }
}

fn repository(ping: Result<(), RepositoryError>, pings: usize) -> MockUserRepository<User> {
    let mut repository = MockUserRepository::<User>::new();
    repository
        .expect_ping()
        .times(pings)
        .returning(move || ping.clone());
    repository
}

async fn service(repository: MockUserRepository<User>, shared: bool) -> AuthService {
    let builder = AuthService::builder()
        .verifier(JwtVerifier::test_hs256())
        .repository(repository);
    let builder = if shared {
        let l2 = Arc::new(authcache_memory::MemoryCache::new(1 << 20));
        builder
            .l2(l2)
            .signing_key(b"a-signing-key-for-the-tests-of-health")
    } else {
        builder
    };
    builder.build().await.unwrap()
}

#[tokio::test]
async fn a_healthy_service_is_ok_and_says_so_in_json() {
    let auth = service(repository(Ok(()), 1), false).await;
    let health = auth.health().await;
    assert_eq!(health.status(), Status::Ok);
    assert!(health.is_ready() && health.repository.reachable);
    let json = serde_json::to_value(&health).unwrap();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["repository"]["breaker"], "closed");
    assert_eq!(auth.stats().repository_reachable, Some(true));
}

#[tokio::test]
async fn a_repository_down_is_degraded_with_a_shared_cache_and_down_without() {
    let down = || Err(RepositoryError::Unavailable("no server".into()));
    let alone = service(repository(down(), 1), false).await;
    let health = alone.health().await;
    assert_eq!((health.status(), health.is_ready()), (Status::Down, false));
    assert!(health.repository.error.unwrap().contains("no server"));

    let shared = service(repository(down(), 1), true).await;
    let health = shared.health().await;
    assert_eq!(
        (health.status(), health.is_ready()),
        (Status::Degraded, true)
    );
    assert!(health.shared_cache.is_serving());
    assert_eq!(shared.stats().repository_reachable, Some(false));
}

#[tokio::test]
async fn probes_in_quick_succession_ping_the_repository_once() {
    // The mock fails the test on a second ping.
    let auth = service(repository(Ok(()), 1), false).await;
    for _ in 0..10 {
        assert_eq!(auth.health().await.status(), Status::Ok);
    }
}
