//! Shared pieces of the facade's integration tests (`auth_*.rs`): seeded repositories on
//! each backend, services on each cache, tokens.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use authcache::{
    AuthService, BreakerConfig, CacheConfig, JwtVerifier, MemoryUserRepository,
    MongoUserRepository, TokenIssuer, User, UserRepository,
};
use authcache_tests::mongo_server::MongoServer;
use authcache_tests::redis_server::PATIENT_TIMEOUT;

pub const SECRET: &[u8] = b"integration-test-secret-32-bytes-long";
pub const SIGNING_KEY: &[u8] = b"integration-cache-signing-key-0123";

/// Bound on every wait for a cross-instance effect: the bus delivers in milliseconds.
pub const PROPAGATION: Duration = Duration::from_secs(5);

pub const ROLES: [(&str, &[&str]); 2] = [
    ("admin", &["users:read", "users:write"]),
    ("viewer", &["users:read"]),
];

pub fn users() -> Vec<User> {
    vec![
        User::new("ada", "ada@example.com", "Ada").with_roles(["admin"]),
        User::new("bob", "bob@example.com", "Bob").with_roles(["viewer"]),
        User::new("eve", "eve@example.com", "Eve").with_disabled(true),
    ]
    .into_iter()
    .chain((0..50).map(|i| {
        User::new(
            format!("user-{i}"),
            format!("u{i}@example.com"),
            format!("U{i}"),
        )
        .with_roles(["viewer"])
    }))
    .collect()
}

pub fn bearer(sub: &str) -> String {
    let token = TokenIssuer::hs256(SECRET)
        .issue(sub, Duration::from_secs(600))
        .unwrap();
    format!("Bearer {token}")
}

/// A second, distinct token for the same user (another `exp`).
pub fn another_bearer(sub: &str) -> String {
    let token = TokenIssuer::hs256(SECRET)
        .issue(sub, Duration::from_secs(700))
        .unwrap();
    format!("Bearer {token}")
}

pub fn forged(sub: &str) -> String {
    let token = TokenIssuer::hs256(b"the-attacker-does-not-know-the-secret")
        .issue(sub, Duration::from_secs(600))
        .unwrap();
    format!("Bearer {token}")
}

pub async fn memory_repository() -> Arc<dyn UserRepository> {
    let mut repository = MemoryUserRepository::new();
    for (role, permissions) in ROLES {
        repository = repository
            .with_role(role, permissions.iter().copied())
            .unwrap();
    }
    for user in users() {
        repository.upsert(&user).await.unwrap();
    }
    Arc::new(repository)
}

pub async fn mongo_repository(server: &MongoServer) -> Arc<dyn UserRepository> {
    let repository = MongoUserRepository::connect(&server.uri(), &server.fresh_database())
        .await
        .unwrap();
    seed_mongo(&repository, None).await;
    Arc::new(repository)
}

/// Writes the fixture's roles, and its users (those named in `only`, or all), through
/// `repository`.
pub async fn seed_mongo(repository: &MongoUserRepository, only: Option<&[&str]>) {
    for (role, permissions) in ROLES {
        repository
            .upsert_role(role, permissions.iter().copied())
            .await
            .unwrap();
    }
    for user in users() {
        if only.is_none_or(|only| only.contains(&user.id.as_str())) {
            repository.upsert(&user).await.unwrap();
        }
    }
}

/// The default breaker, except that an L2 call may take [`PATIENT_TIMEOUT`] (the Redis
/// client's own timeout follows the breaker's). With the default 100 ms, a reply that a
/// starved machine delays would count as a failed call — a revocation check served
/// unchecked, a logout refused, `l2_errors` above zero — in tests about something else. A
/// dead server still fails each call at once (connection refused).
pub fn patient_breaker() -> BreakerConfig {
    BreakerConfig {
        timeout: PATIENT_TIMEOUT,
        ..BreakerConfig::default()
    }
}

/// A service on `cache` with the [`patient_breaker`]; with a bus, returned once it is
/// subscribed (`build` waits only boundedly, and a starved machine may need longer), so
/// that no test's first invalidation can be published before every instance listens.
pub async fn service(cache: CacheConfig, repository: Arc<dyn UserRepository>) -> AuthService {
    let auth = AuthService::builder()
        .verifier(JwtVerifier::hs256(SECRET))
        .shared_repository(repository)
        .cache(cache)
        .signing_key(SIGNING_KEY)
        .prefix("itest")
        .breaker(patient_breaker())
        .build()
        .await
        .unwrap();
    wait_subscribed(&auth).await;
    auth
}

/// Waits (bounded) until the service's bus, if it has one, is subscribed.
pub async fn wait_subscribed(auth: &AuthService) {
    authcache_tests::process::eventually(
        SUBSCRIBE,
        "the invalidation bus to subscribe",
        || async { auth.stats().bus_subscribed != Some(false) },
    )
    .await;
}

/// Bound on a bus subscription on a loaded machine.
pub const SUBSCRIBE: Duration = Duration::from_secs(30);
