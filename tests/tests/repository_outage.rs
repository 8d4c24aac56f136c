//! A service whose repository (MongoDB, a real SecantusDB) is down: started without it,
//! served from the shared cache meanwhile, failing uncached requests promptly once the
//! repository's breaker opens, and recovering when the server is back. No assertion is
//! about elapsed time: the breaker's state and counters, and call counts, say what
//! happened.
// Test helpers outside `#[test]` functions fail loudly too.
#![allow(clippy::unwrap_used)]

mod auth_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use auth_support::{SECRET, SIGNING_KEY, bearer, patient_breaker, seed_mongo};
use authcache::health::Status;
use authcache::{
    AuthService, BreakerConfig, BreakerState, CacheConfig, JwtVerifier, MongoUserRepository,
    RepositoryConfig, Ttls, User,
};
use authcache_tests::hooked_repository::{AfterRead, HookedRepository};
use authcache_tests::mongo_server::MongoServer;
use authcache_tests::process::eventually;
use authcache_tests::redis_server::RedisServer;
use authcache_users::MongoOptions;
use futures::TryStreamExt;

/// Bound on every recovery: server restart, a breaker cool-down, a health ping interval.
const RECOVERY: Duration = Duration::from_secs(60);

/// A quick "no server" (connection refused is immediate; server selection gives up
/// after this), so that reaching the breaker's threshold does not take 5 × 2 s.
const SELECTION: Duration = Duration::from_millis(300);

/// Roles and users of `auth_support`, seeded without creating any index.
async fn seed(mongo: &MongoServer, database: &str, only: Option<&[&str]>) {
    let options = MongoOptions::default().create_indexes(false);
    let repository = MongoUserRepository::<User>::connect_with(&mongo.uri(), database, options)
        .await
        .unwrap();
    seed_mongo(&repository, only).await;
}

async fn service_on_config(
    redis: &RedisServer,
    mongo: &MongoServer,
    database: &str,
) -> AuthService {
    AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET))
        .repository_config(RepositoryConfig::mongodb(
            format!(
                "{}&serverSelectionTimeoutMS={}",
                mongo.uri(),
                SELECTION.as_millis()
            ),
            database,
        ))
        .cache(CacheConfig::redis(redis.url()))
        .signing_key(SIGNING_KEY)
        .prefix("outage")
        .breaker(patient_breaker())
        // Back within a second of the server, whatever failed meanwhile.
        .repository_breaker(BreakerConfig {
            max_cooldown: Duration::from_secs(1),
            ..BreakerConfig::default()
        })
        .build()
        .await
        .unwrap()
}

async fn email_index_exists(mongo: &MongoServer, database: &str) -> bool {
    let users = mongo
        .client()
        .await
        .database(database)
        .collection::<mongodb::bson::Document>("users");
    let Ok(indexes) = users.list_indexes().await else {
        return false;
    };
    let indexes: Vec<_> = indexes.try_collect().await.unwrap_or_default();
    indexes.iter().any(|index| {
        index.keys.contains_key("email")
            && index.options.as_ref().and_then(|o| o.unique) == Some(true)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_without_mongodb_it_serves_from_redis_and_recovers() {
    let redis = RedisServer::start();
    let mut mongo = MongoServer::start().await;
    let database = mongo.fresh_database();
    seed(&mongo, &database, None).await;
    // An earlier instance put ada in the shared cache.
    let earlier = service_on_config(&redis, &mongo, &database).await;
    assert_eq!(
        earlier.authenticate(&bearer("ada")).await.unwrap().id(),
        "ada"
    );
    drop(earlier);

    mongo.kill();
    let auth = service_on_config(&redis, &mongo, &database).await;
    let health = auth.health().await;
    assert!(!health.repository.reachable, "{health:?}");
    assert!(health.repository.error.is_some(), "{health:?}");
    assert_eq!(health.status(), Status::Degraded, "{health:?}");
    assert!(health.is_ready());
    assert_eq!(auth.stats().repository_reachable, Some(false));

    let ada = auth.authenticate(&bearer("ada")).await.unwrap();
    assert_eq!(ada.id(), "ada", "served from the shared cache");
    assert!(ada.has_permission("users:write"));
    let refused = auth.authenticate(&bearer("bob")).await.unwrap_err();
    assert_eq!(refused.status_code(), 503, "{refused}");

    // Back, empty (SecantusDB keeps nothing across a restart): bob is written again
    // without the index, which the service's repository must create on its own.
    mongo.restart().await;
    seed(&mongo, &database, Some(&["bob"])).await;
    eventually(RECOVERY, "health to see the repository again", || async {
        auth.health().await.status() == Status::Ok
    })
    .await;
    assert_eq!(auth.stats().repository_reachable, Some(true));
    assert_eq!(auth.stats().repository_breaker.state, BreakerState::Closed);
    let bob = auth.authenticate(&bearer("bob")).await.unwrap();
    assert_eq!(bob.id(), "bob");
    eventually(RECOVERY, "the email index to be created", || {
        email_index_exists(&mongo, &database)
    })
    .await;
}

#[tokio::test]
async fn with_only_the_in_process_cache_a_start_without_mongodb_fails_and_says_why() {
    let mut mongo = MongoServer::start().await;
    let database = mongo.fresh_database();
    mongo.kill();
    let error = AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET))
        .repository_config(RepositoryConfig::mongodb(
            format!(
                "{}&serverSelectionTimeoutMS={}",
                mongo.uri(),
                SELECTION.as_millis()
            ),
            database,
        ))
        .build()
        .await
        .unwrap_err();
    assert!(error.is_unavailable(), "{error}");
    assert!(error.to_string().contains("shared cache"), "{error}");
}

#[tokio::test]
async fn an_open_repository_breaker_fails_uncached_requests_without_calling_it_and_serves_stale() {
    let mut mongo = MongoServer::start().await;
    let database = mongo.fresh_database();
    seed(&mongo, &database, None).await;
    let options = MongoOptions::default().server_selection_timeout(SELECTION);
    let mongo_repository =
        MongoUserRepository::<User>::connect_with(&mongo.uri(), &database, options)
            .await
            .unwrap();
    // Counts `find_by_id` calls on their way to the real repository.
    let finds = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&finds);
    let after_read: AfterRead = Arc::new(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {})
    });
    let repository = Arc::new(HookedRepository::new(
        Arc::new(mongo_repository),
        after_read,
    ));
    // A one-second user TTL, so that ada's entry expires while the repository is down
    // (the grace keeps it); an hour's cool-down, so that the breaker stays open.
    let ttls = Ttls {
        user: Duration::from_secs(1),
        l1_cap: Duration::from_secs(1),
        jitter: 0.0,
        refresh_ahead: 0.0,
        ..Ttls::default()
    };
    let threshold = 3;
    let auth = AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET))
        .shared_repository(repository.clone())
        .cache(CacheConfig::memory())
        .ttls(ttls)
        .repository_breaker(BreakerConfig {
            failure_threshold: threshold,
            base_cooldown: Duration::from_secs(3600),
            max_cooldown: Duration::from_secs(3600),
            ..BreakerConfig::default()
        })
        .build()
        .await
        .unwrap();
    let ada = bearer("ada");
    auth.authenticate(&ada).await.unwrap();

    mongo.kill();
    for i in 0..threshold {
        let error = auth
            .authenticate(&bearer(&format!("user-{i}")))
            .await
            .unwrap_err();
        assert_eq!(error.status_code(), 503, "{error}");
    }
    let breaker = auth.stats().repository_breaker;
    assert_eq!(breaker.state, BreakerState::Open, "{breaker:?}");
    assert_eq!(
        (breaker.failures, breaker.opened),
        (u64::from(threshold), 1)
    );

    let calls = finds.load(Ordering::SeqCst);
    for i in 10..20 {
        let error = auth
            .authenticate(&bearer(&format!("user-{i}")))
            .await
            .unwrap_err();
        assert_eq!(error.status_code(), 503, "{error}");
        assert!(
            error.to_string().contains("repository circuit open"),
            "{error}"
        );
    }
    assert_eq!(
        finds.load(Ordering::SeqCst),
        calls,
        "the repository was not called"
    );
    assert_eq!(auth.stats().repository_breaker.rejected, 10);

    // Past its TTL, ada is served stale rather than refused.
    eventually(RECOVERY, "ada's entry to be served stale", || async {
        assert_eq!(auth.authenticate(&ada).await.unwrap().id(), "ada");
        auth.stats().users.stale_served > 0
    })
    .await;
    assert_eq!(finds.load(Ordering::SeqCst), calls, "still not called");
    let health = auth.health().await;
    assert_eq!(health.repository.breaker, BreakerState::Open);
    assert_eq!(
        health.status(),
        Status::Down,
        "in-process cache only: {health:?}"
    );
}
