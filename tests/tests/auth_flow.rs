//! The whole authentication flow through `AuthService`, once per backend combination the
//! features allow: cache memory | Redis | Redis Cluster × repository memory | MongoDB
//! (SecantusDB), all real servers from the test kit.
// Test helpers outside `#[test]` functions fail loudly too.
#![allow(clippy::unwrap_used)]

mod auth_support;

use std::sync::Arc;

use auth_support::{another_bearer, bearer, forged, memory_repository, mongo_repository, service};
use authcache::{
    AuthError, AuthService, CacheConfig, RepositoryConfig, TokenError, User, UserRepository,
};
use authcache_tests::mongo_server::MongoServer;
use authcache_tests::redis_server::{RedisClusterServer, RedisServer};

/// Everything a deployment relies on, in the order an application meets it.
async fn whole_flow(auth: &AuthService, repository: &Arc<dyn UserRepository>) {
    // Authenticate: user, roles, permissions, claims.
    let ada = bearer("ada");
    let who = auth.authenticate(&ada).await.unwrap();
    assert_eq!(who.id(), "ada");
    assert_eq!(*who.roles, ["admin"]);
    assert_eq!(*who.permissions, ["users:read", "users:write"]);
    assert_eq!(who.claims.sub, "ada");
    // Served from the tiers the second time.
    auth.authenticate(&ada).await.unwrap();
    assert_eq!(auth.stats().users.loads, 1);

    // A forged token with a real, cached user's sub: bad signature, not a cache hit.
    assert_eq!(
        auth.authenticate(&forged("ada")).await.unwrap_err(),
        AuthError::Token(TokenError::BadSignature)
    );

    // Unknown and disabled users.
    assert_eq!(
        auth.authenticate(&bearer("nobody")).await.unwrap_err(),
        AuthError::UnknownUser
    );
    assert_eq!(
        auth.authenticate(&bearer("eve")).await.unwrap_err(),
        AuthError::Disabled
    );

    // Accessors.
    assert_eq!(auth.user("bob").await.unwrap().name, "Bob");
    assert_eq!(*auth.roles("bob").await.unwrap(), ["viewer"]);
    assert_eq!(*auth.permissions("bob").await.unwrap(), ["users:read"]);

    // A role change, written through.
    let promoted = User::new("bob", "bob@example.com", "Bob").with_roles(["admin"]);
    repository.upsert(&promoted).await.unwrap();
    auth.cache_user(&promoted).await.unwrap();
    let bob = auth.authenticate(&bearer("bob")).await.unwrap();
    assert!(bob.has_role("admin") && bob.has_permission("users:write"));

    // A change in the repository, made visible by invalidation.
    repository
        .upsert(&User::new("bob", "bob@example.com", "Bob").with_disabled(true))
        .await
        .unwrap();
    auth.invalidate_user("bob").await.unwrap();
    assert_eq!(
        auth.authenticate(&bearer("bob")).await.unwrap_err(),
        AuthError::Disabled
    );

    // Logout revokes that token only.
    auth.logout(&ada).await.unwrap();
    assert_eq!(
        auth.authenticate(&ada).await.unwrap_err(),
        AuthError::Revoked
    );
    assert_eq!(
        auth.authenticate(&another_bearer("ada"))
            .await
            .unwrap()
            .id(),
        "ada"
    );

    let stats = auth.stats();
    assert_eq!(stats.l2_errors(), 0, "{stats:?}");
    assert!(
        stats.rejected_tokens >= 2 && stats.rejected_users >= 2,
        "{stats:?}"
    );
}

#[tokio::test]
async fn memory_cache_memory_repository() {
    let repository = memory_repository().await;
    let auth = service(CacheConfig::memory(), Arc::clone(&repository)).await;
    whole_flow(&auth, &repository).await;
}

#[tokio::test]
async fn redis_cache_memory_repository() {
    let redis = RedisServer::start();
    let repository = memory_repository().await;
    let auth = service(CacheConfig::redis(redis.url()), Arc::clone(&repository)).await;
    whole_flow(&auth, &repository).await;
    assert!(auth.stats().breaker.is_some());
}

#[tokio::test]
async fn redis_cluster_cache_memory_repository() {
    let cluster = RedisClusterServer::start();
    let repository = memory_repository().await;
    let auth = service(
        CacheConfig::redis_cluster(cluster.urls()),
        Arc::clone(&repository),
    )
    .await;
    whole_flow(&auth, &repository).await;
}

#[tokio::test]
async fn memory_cache_mongodb_repository() {
    let mongo = MongoServer::start().await;
    let repository = mongo_repository(&mongo).await;
    let auth = service(CacheConfig::memory(), Arc::clone(&repository)).await;
    whole_flow(&auth, &repository).await;
}

#[tokio::test]
async fn redis_cache_mongodb_repository() {
    let (redis, mongo) = (RedisServer::start(), MongoServer::start().await);
    let repository = mongo_repository(&mongo).await;
    let auth = service(CacheConfig::redis(redis.url()), Arc::clone(&repository)).await;
    whole_flow(&auth, &repository).await;
}

#[tokio::test]
async fn redis_cluster_cache_mongodb_repository() {
    let (cluster, mongo) = (RedisClusterServer::start(), MongoServer::start().await);
    let repository = mongo_repository(&mongo).await;
    let auth = service(
        CacheConfig::redis_cluster(cluster.urls()),
        Arc::clone(&repository),
    )
    .await;
    whole_flow(&auth, &repository).await;
}

/// The same deployment described by configuration (TOML) instead of code.
#[tokio::test]
async fn built_from_toml_configuration() {
    let (redis, mongo) = (RedisServer::start(), MongoServer::start().await);
    let db = mongo.fresh_database();
    let seeded = authcache::MongoUserRepository::connect(&mongo.uri(), &db)
        .await
        .unwrap();
    seeded
        .upsert(&User::new("ada", "ada@example.com", "Ada"))
        .await
        .unwrap();
    let toml = format!(
        "prefix = \"cfg\"\n[cache]\nbackend = \"redis\"\nurl = \"{}\"\n[repository]\nbackend = \"mongodb\"\nuri = \"{}\"\ndb = \"{db}\"\n[ttls]\nuserTTL = 60\n",
        redis.url(),
        mongo.uri()
    );
    let config = authcache::AuthConfig::from_toml(&toml).unwrap();
    assert_eq!(
        config.repository,
        Some(RepositoryConfig::mongodb(mongo.uri(), &db))
    );
    let auth = AuthService::builder()
        .verifier(authcache::JwtVerifier::hs256(auth_support::SECRET))
        .config(config)
        .signing_key(auth_support::SIGNING_KEY)
        .build()
        .await
        .unwrap();
    assert_eq!(auth.authenticate(&bearer("ada")).await.unwrap().id(), "ada");
}

/// A user as a Python backend stores it — ObjectId `_id`, a field authcache does not know,
/// no `name` — authenticates by the token's `sub` = `str(user.id)`, is cached under that
/// canonical hex, and keeps its unknown field through a write-through.
#[tokio::test]
async fn a_user_with_an_object_id_authenticates_by_its_hex() {
    use mongodb::bson::{doc, oid::ObjectId};

    let mongo = MongoServer::start().await;
    let redis = RedisServer::start();
    let db = mongo.fresh_database();
    let raw = mongo.client().await.database(&db);
    let id = ObjectId::new();
    raw.collection::<mongodb::bson::Document>("users")
        .insert_one(doc! {
            "_id": id,
            "email": "ada@example.com",
            "roles": ["admin"],
            "last_login": 1_700_000_000_000_i64,
        })
        .await
        .unwrap();
    raw.collection::<mongodb::bson::Document>("roles")
        .insert_one(doc! { "_id": "admin", "permissions": ["users:write"] })
        .await
        .unwrap();
    let repository: Arc<dyn UserRepository> = Arc::new(
        authcache::MongoUserRepository::<User>::connect(&mongo.uri(), &db)
            .await
            .unwrap(),
    );
    let auth = service(CacheConfig::redis(redis.url()), Arc::clone(&repository)).await;

    let hex = id.to_hex();
    let who = auth.authenticate(&bearer(&hex)).await.unwrap();
    assert_eq!(who.id(), hex);
    assert_eq!(*who.permissions, ["users:write"]);
    let mut user = (*auth.user(&hex).await.unwrap()).clone();
    user.name = "Ada".into();
    repository.upsert(&user).await.unwrap();
    auth.cache_user(&user).await.unwrap();
    let stored = raw
        .collection::<mongodb::bson::Document>("users")
        .find_one(doc! { "_id": id })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.get_str("name").unwrap(), "Ada");
    assert_eq!(stored.get_i64("last_login").unwrap(), 1_700_000_000_000);
    assert_eq!(auth.user(&hex).await.unwrap().name, "Ada");
}
