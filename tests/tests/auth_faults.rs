//! `AuthService` under load and under failure, against real servers: one repository load
//! for a thousand concurrent cold requests; Redis killed mid-run and restarted; the
//! repository's server killed.
// Test helpers outside `#[test]` functions fail loudly too.
#![allow(clippy::unwrap_used)]

mod auth_support;

use std::sync::Arc;
use std::time::Duration;

use auth_support::{bearer, memory_repository, mongo_repository, service};
use authcache::{AuthError, AuthService, BreakerState, CacheConfig, RevocationCheck};
use authcache_tests::mongo_server::MongoServer;
use authcache_tests::process::eventually;
use authcache_tests::redis_server::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_cold_requests_load_the_user_once() {
    let (redis, mongo) = (RedisServer::start(), MongoServer::start().await);
    let repository = mongo_repository(&mongo).await;
    let auth = service(CacheConfig::redis(redis.url()), repository).await;
    let token = Arc::new(bearer("ada"));
    let tasks: Vec<_> = (0..1_000)
        .map(|_| {
            let (auth, token) = (auth.clone(), Arc::clone(&token));
            tokio::spawn(async move {
                auth.authenticate(&token)
                    .await
                    .map(|who| who.id().to_owned())
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), "ada");
    }
    let stats = auth.stats();
    assert_eq!(stats.users.loads, 1, "{stats:?}");
    assert_eq!(stats.permissions.loads, 1, "{stats:?}");
    assert_eq!(stats.authenticated, 1_000);
}

/// Authenticates every user of `ids` once; returns how many failed.
async fn round(auth: &AuthService, ids: &[String]) -> usize {
    let mut failed = 0;
    for id in ids {
        if let Err(error) = auth.authenticate(&bearer(id)).await {
            eprintln!("{id}: {error}");
            failed += 1;
        }
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_run_fails_no_request_and_is_used_again_once_back() {
    let mut redis = RedisServer::start();
    let repository = memory_repository().await;
    let auth = service(CacheConfig::redis(redis.url()), Arc::clone(&repository)).await;
    let ids: Vec<String> = (0..50).map(|i| format!("user-{i}")).collect();
    let (cached, cold) = ids.split_at(25);
    assert_eq!(round(&auth, cached).await, 0);

    // Traffic keeps flowing in the background while Redis dies.
    let background = {
        let (auth, ids) = (auth.clone(), ids.clone());
        tokio::spawn(async move {
            let mut failed = 0;
            for _ in 0..5 {
                failed += round(&auth, &ids).await;
            }
            failed
        })
    };
    redis.kill();
    assert_eq!(
        round(&auth, cached).await,
        0,
        "cached users while Redis is down"
    );
    assert_eq!(
        round(&auth, cold).await,
        0,
        "uncached users while Redis is down"
    );
    assert_eq!(background.await.unwrap(), 0, "requests during the kill");
    let stats = auth.stats();
    assert!(stats.l2_errors() > 0, "Redis was down: {stats:?}");

    // Back on the same port: the breaker closes, new answers are written to and read from L2.
    redis.restart();
    let fresh = service(CacheConfig::redis(redis.url()), Arc::clone(&repository)).await;
    let mut next = 0;
    eventually(
        Duration::from_secs(15),
        "L2 to serve a user the first instance wrote after the restart",
        || {
            next += 1;
            let user = format!("user-{}", 25 + next % 25);
            let (auth, fresh) = (auth.clone(), fresh.clone());
            async move {
                auth.invalidate_user(&user).await.ok();
                let before = fresh.stats().users.l2_hits;
                auth.authenticate(&bearer(&user)).await.is_ok()
                    && fresh.authenticate(&bearer(&user)).await.is_ok()
                    && fresh.stats().users.l2_hits > before
            }
        },
    )
    .await;
    eventually(Duration::from_secs(15), "the breaker to close", || async {
        round(&auth, &ids[..1]).await == 0
            && auth
                .stats()
                .breaker
                .is_some_and(|b| b.state == BreakerState::Closed)
    })
    .await;
}

#[tokio::test]
async fn repository_down_fails_only_uncached_answers_with_503() {
    let mut mongo = MongoServer::start().await;
    let repository = mongo_repository(&mongo).await;
    let auth = service(CacheConfig::memory(), repository).await;
    let cached = bearer("ada");
    auth.authenticate(&cached).await.unwrap();

    mongo.kill();
    assert_eq!(
        auth.authenticate(&cached).await.unwrap().id(),
        "ada",
        "cached user"
    );
    let error = auth.authenticate(&bearer("bob")).await.unwrap_err();
    assert!(matches!(error, AuthError::Unavailable { .. }), "{error}");
    assert_eq!(error.status_code(), 503);
    // The failure is not cached: nothing remembers "bob" as unknown.
    assert_eq!(auth.stats().unavailable, 1);
}

#[tokio::test]
async fn repository_down_with_redis_serves_what_redis_holds() {
    let (redis, mut mongo) = (RedisServer::start(), MongoServer::start().await);
    let repository = mongo_repository(&mongo).await;
    let writer = service(CacheConfig::redis(redis.url()), Arc::clone(&repository)).await;
    writer.authenticate(&bearer("bob")).await.unwrap();

    mongo.kill();
    // A fresh instance has nothing in L1 but finds bob in Redis.
    let reader = service(CacheConfig::redis(redis.url()), repository).await;
    assert_eq!(
        reader.authenticate(&bearer("bob")).await.unwrap().id(),
        "bob"
    );
    assert!(reader.stats().users.l2_hits >= 1);
    assert_eq!(
        reader
            .authenticate(&bearer("user-3"))
            .await
            .unwrap_err()
            .status_code(),
        503
    );
}

/// A Redis that may evict keys with a TTL (every key authcache writes has one) may evict a
/// revocation mark or a tombstone: loud at build, shown in `Stats`, and refused outright
/// under `RevocationCheck::FailClosed`, which promises never to serve an unchecked token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_may_evict_marks_is_flagged_and_refused_under_fail_closed() {
    let builder = |url: String, check: RevocationCheck| {
        AuthService::builder()
            .verifier(authcache::JwtVerifier::hs256(auth_support::SECRET))
            .repository(authcache::MemoryUserRepository::new())
            .cache(CacheConfig::redis(url))
            .signing_key(auth_support::SIGNING_KEY)
            .breaker(auth_support::patient_breaker())
            .revocation_check(check)
    };
    for policy in ["allkeys-lru", "volatile-ttl"] {
        let redis = RedisServer::start_with(None, &["--maxmemory-policy".into(), policy.into()]);
        let refused = builder(redis.url(), RevocationCheck::FailClosed)
            .build()
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, AuthError::Config(message) if message.contains(policy)),
            "{policy}: {refused}"
        );
        let flagged = builder(redis.url(), RevocationCheck::FailOpen)
            .build()
            .await
            .unwrap();
        assert!(flagged.stats().marks_evictable, "{policy}");
    }
    let safe = RedisServer::start();
    let fine = builder(safe.url(), RevocationCheck::FailClosed)
        .build()
        .await
        .unwrap();
    assert!(!fine.stats().marks_evictable);
}

/// Redis out of memory under `noeviction` refuses writes and still serves reads: an
/// invalidation it refused is in force on the calling instance at once (its old L2 entry is
/// never read back), the caller is told what did and did not happen, and every instance
/// converges once Redis takes writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_redis_refuses_is_in_force_here_at_once_and_lands_everywhere_later() {
    let redis = RedisServer::start_with(None, &["--maxmemory-policy".into(), "noeviction".into()]);
    let repository = memory_repository().await;
    let cache = || CacheConfig::redis(redis.url());
    let (one, other) = (
        service(cache(), Arc::clone(&repository)).await,
        service(cache(), Arc::clone(&repository)).await,
    );
    let token = bearer("ada");
    for auth in [&one, &other] {
        assert!(auth.authenticate(&token).await.unwrap().has_role("admin"));
    }
    // Out of memory: any limit below what Redis already uses refuses every write.
    let mut conn = redis.connection();
    let set_maxmemory = |conn: &mut redis::Connection, bytes: &str| {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg(bytes)
            .query::<()>(conn)
            .unwrap();
    };
    set_maxmemory(&mut conn, "1");
    let write = redis::cmd("SET")
        .arg("probe")
        .arg("x")
        .query::<()>(&mut conn);
    assert!(format!("{write:?}").contains("OOM"), "{write:?}");
    let demoted = authcache::User::new("ada", "ada@example.com", "Ada").with_roles(["viewer"]);
    repository.upsert(&demoted).await.unwrap();

    let refused = one.invalidate_user("ada").await.unwrap_err();
    assert!(refused.is_unavailable(), "{refused}");
    assert!(
        refused.to_string().contains("in force on this instance"),
        "{refused}"
    );
    assert!(one.authenticate(&token).await.unwrap().has_role("viewer"));
    assert_eq!(one.stats().users.pending_invalidations, 1);

    set_maxmemory(&mut conn, "0");
    for (name, auth) in [("one", &one), ("other", &other)] {
        eventually(
            auth_support::PROPAGATION,
            &format!("instance {name} to serve the demoted user"),
            || async { auth.authenticate(&token).await.unwrap().has_role("viewer") },
        )
        .await;
    }
    eventually(auth_support::PROPAGATION, "the retry to land", || async {
        one.stats().users.pending_invalidations == 0
    })
    .await;
}
