//! Several `AuthService` instances sharing one Redis (standalone and Cluster): what one does
//! with `invalidate_user`, `cache_user` and `logout`, the others see at once — through the
//! invalidation bus, not by waiting out the L1 cap (30 s; every wait here is bounded to 5 s).
// Test helpers outside `#[test]` functions fail loudly too.
#![allow(clippy::unwrap_used)]

mod auth_support;

use std::sync::Arc;

use auth_support::{PROPAGATION, bearer, memory_repository, service};
use authcache::{AuthError, AuthService, CacheConfig, MemoryUserRepository, User, UserRepository};
use authcache_tests::process::eventually;
use authcache_tests::redis_server::{RedisClusterServer, RedisServer};

async fn instances(
    cache: &CacheConfig,
    repository: &Arc<dyn UserRepository>,
    count: usize,
) -> Vec<AuthService> {
    let mut instances = Vec::with_capacity(count);
    for _ in 0..count {
        instances.push(service(cache.clone(), Arc::clone(repository)).await);
    }
    instances
}

/// Every instance has the user and the token in its L1 before anything changes.
async fn warm(instances: &[AuthService], token: &str) {
    for auth in instances {
        assert!(auth.authenticate(token).await.is_ok());
        assert!(auth.authenticate(token).await.is_ok());
    }
}

async fn invalidation_reaches_every_instance(cache: CacheConfig, count: usize) {
    let repository = memory_repository().await;
    let instances = instances(&cache, &repository, count).await;
    let token = bearer("bob");
    warm(&instances, &token).await;

    repository
        .upsert(&User::new("bob", "bob@example.com", "Bob").with_disabled(true))
        .await
        .unwrap();
    instances[0].invalidate_user("bob").await.unwrap();
    for (i, other) in instances.iter().enumerate().skip(1) {
        eventually(
            PROPAGATION,
            &format!("instance {i} to see bob disabled"),
            || async { other.authenticate(&token).await.err() == Some(AuthError::Disabled) },
        )
        .await;
    }
}

async fn logout_reaches_every_instance(cache: CacheConfig, count: usize) {
    let repository = memory_repository().await;
    let instances = instances(&cache, &repository, count).await;
    let token = bearer("ada");
    warm(&instances, &token).await;

    instances[count - 1].logout(&token).await.unwrap();
    for (i, other) in instances.iter().enumerate() {
        eventually(
            PROPAGATION,
            &format!("instance {i} to reject the logged-out token"),
            || async { other.authenticate(&token).await.err() == Some(AuthError::Revoked) },
        )
        .await;
    }
    // Another token of the same user still works everywhere.
    for other in &instances {
        assert_eq!(
            other
                .authenticate(&auth_support::another_bearer("ada"))
                .await
                .unwrap()
                .id(),
            "ada"
        );
    }
}

async fn write_through_reaches_every_instance(cache: CacheConfig, count: usize) {
    let repository = memory_repository().await;
    let instances = instances(&cache, &repository, count).await;
    let token = bearer("user-7");
    warm(&instances, &token).await;

    let promoted = User::new("user-7", "u7@example.com", "U7").with_roles(["admin"]);
    repository.upsert(&promoted).await.unwrap();
    instances[1].cache_user(&promoted).await.unwrap();
    for (i, other) in instances.iter().enumerate() {
        eventually(
            PROPAGATION,
            &format!("instance {i} to see user-7 promoted"),
            || async {
                other
                    .authenticate(&token)
                    .await
                    .is_ok_and(|who| who.has_permission("users:write"))
            },
        )
        .await;
    }
}

#[tokio::test]
async fn two_instances_see_each_others_invalidations() {
    let redis = RedisServer::start();
    invalidation_reaches_every_instance(CacheConfig::redis(redis.url()), 2).await;
}

#[tokio::test]
async fn three_instances_see_each_others_invalidations() {
    let redis = RedisServer::start();
    invalidation_reaches_every_instance(CacheConfig::redis(redis.url()), 3).await;
}

#[tokio::test]
async fn two_instances_see_each_others_logouts() {
    let redis = RedisServer::start();
    logout_reaches_every_instance(CacheConfig::redis(redis.url()), 2).await;
}

#[tokio::test]
async fn three_instances_see_each_others_logouts() {
    let redis = RedisServer::start();
    logout_reaches_every_instance(CacheConfig::redis(redis.url()), 3).await;
}

#[tokio::test]
async fn three_instances_see_each_others_write_through() {
    let redis = RedisServer::start();
    write_through_reaches_every_instance(CacheConfig::redis(redis.url()), 3).await;
}

#[tokio::test]
async fn three_instances_on_a_cluster_see_invalidations_and_logouts() {
    let cluster = RedisClusterServer::start();
    let cache = CacheConfig::redis_cluster(cluster.urls());
    invalidation_reaches_every_instance(cache.clone(), 3).await;
    logout_reaches_every_instance(cache, 3).await;
}

/// Instances with different prefixes share a Redis without seeing each other's entries.
#[tokio::test]
async fn prefixes_keep_applications_apart() {
    let redis = RedisServer::start();
    let repository = memory_repository().await;
    let one = service(CacheConfig::redis(redis.url()), Arc::clone(&repository)).await;
    let other = AuthService::builder()
        .verifier(authcache::JwtVerifier::hs256(auth_support::SECRET))
        .shared_repository(Arc::clone(&repository))
        .cache(CacheConfig::redis(redis.url()))
        .breaker(auth_support::patient_breaker())
        .signing_key(auth_support::SIGNING_KEY)
        .prefix("otherapp")
        .build()
        .await
        .unwrap();
    let token = bearer("ada");
    one.authenticate(&token).await.unwrap();
    other.authenticate(&token).await.unwrap();
    one.logout(&token).await.unwrap();
    assert_eq!(
        one.authenticate(&token).await.unwrap_err(),
        AuthError::Revoked
    );
    assert_eq!(other.authenticate(&token).await.unwrap().id(), "ada");
}

/// A role's permissions changed in the repository: `invalidate_role` on one instance, and
/// every instance answers the new permissions for every user of that role, with one load
/// of the role (not one per user).
#[tokio::test]
async fn a_role_change_reaches_every_instance_with_one_load() {
    let redis = RedisServer::start();
    let repository = MemoryUserRepository::new()
        .with_role("viewer", ["users:read"])
        .unwrap();
    for id in ["v1", "v2", "v3"] {
        repository
            .upsert(&User::new(id, format!("{id}@example.com"), id).with_roles(["viewer"]))
            .await
            .unwrap();
    }
    let shared: Arc<dyn UserRepository> = Arc::new(repository.clone());
    let instances = instances(&CacheConfig::redis(redis.url()), &shared, 2).await;
    let tokens = ["v1", "v2", "v3"].map(bearer);
    for token in &tokens {
        warm(&instances, token).await;
    }
    repository
        .upsert_role("viewer", ["users:read", "reports:read"])
        .unwrap();
    instances[0].invalidate_role("viewer").await.unwrap();
    for token in &tokens {
        let who = instances[0].authenticate(token).await.unwrap();
        assert!(who.has_permission("reports:read"), "at once on the caller");
    }
    let loads_before = instances[1].stats().permissions.loads;
    for (i, token) in tokens.iter().enumerate() {
        eventually(
            PROPAGATION,
            &format!("v{} sees the new permission", i + 1),
            || async {
                instances[1]
                    .authenticate(token)
                    .await
                    .is_ok_and(|who| who.has_permission("reports:read"))
            },
        )
        .await;
    }
    assert!(
        instances[1].stats().permissions.loads - loads_before <= 1,
        "one load of the role, whatever the number of users: {:?}",
        instances[1].stats().permissions
    );
}

/// `clear_everywhere` on one instance: a user deleted from the repository is served by no
/// instance once it has adopted the raised keyspace epoch (over the bus, within
/// milliseconds), nor by an instance built afterwards — which reads the epoch at build and
/// so never the entries Redis still holds under the old one. Logouts survive the clear.
#[tokio::test]
async fn clear_everywhere_reaches_every_instance_and_those_built_after() {
    let redis = RedisServer::start();
    let cache = CacheConfig::redis(redis.url());
    let repository = memory_repository().await;
    let instances = instances(&cache, &repository, 2).await;
    let (ada, bob) = (bearer("ada"), bearer("bob"));
    warm(&instances, &ada).await;
    warm(&instances, &bob).await;
    instances[1].logout(&ada).await.unwrap();
    assert!(repository.delete("bob").await.unwrap());
    for auth in &instances {
        assert_eq!(auth.authenticate(&bob).await.unwrap().id(), "bob", "cached");
    }

    let epoch = instances[0].clear_everywhere().await.unwrap();
    assert_eq!(instances[0].stats().keyspace_epoch, epoch);
    assert_eq!(
        instances[0].authenticate(&bob).await.unwrap_err(),
        AuthError::UnknownUser,
        "at once on the caller"
    );
    eventually(PROPAGATION, "instance 1 to adopt the epoch", || async {
        instances[1].stats().keyspace_epoch == epoch
    })
    .await;
    let late = service(cache, Arc::clone(&repository)).await;
    assert_eq!(late.stats().keyspace_epoch, epoch, "read at build");
    for auth in instances.iter().chain([&late]) {
        assert_eq!(
            auth.authenticate(&bob).await.unwrap_err(),
            AuthError::UnknownUser
        );
        assert_eq!(
            auth.authenticate(&ada).await.unwrap_err(),
            AuthError::Revoked
        );
    }
}
