//! Who is behind this bearer token, and what may they do? — verified, cached and fast.
//!
//! [`AuthService`] verifies a JWT, then loads the user, their roles and their permissions
//! from the system of record ([`UserRepository`]: MongoDB or in-memory) through two cache
//! tiers: an in-process L1 of decoded values and a shared L2 (Redis, Redis Cluster, or
//! in-process for a single instance) of versioned, optionally HMAC-signed envelopes. Each
//! kind of answer has its own TTL, concurrent misses for one key load once, a dead or hung
//! Redis never fails a request, and invalidations reach every instance over Redis pub/sub.
//!
//! ```
//! use authcache::{AuthError, AuthService, CacheConfig, JwtVerifier, MemoryUserRepository, TokenIssuer, User};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = b"a-long-random-secret-of-32-bytes!";
//! let repository = MemoryUserRepository::new()
//!     .with_role("admin", ["users:read", "users:write"])?
//!     .with_user(User::new("u1", "ada@example.com", "Ada").with_roles(["admin"]))?;
//!
//! let auth = AuthService::builder()
//!     .verifier(JwtVerifier::hs256(secret))
//!     .repository(repository)
//!     .cache(CacheConfig::memory())            // or CacheConfig::redis("redis://127.0.0.1:6379")
//!     .signing_key(b"another-secret-for-cache-entries")
//!     .build()
//!     .await?;
//!
//! let token = TokenIssuer::hs256(secret).issue("u1", Duration::from_secs(600))?;
//! let bearer = format!("Bearer {token}");
//! let who = auth.authenticate(&bearer).await?;
//! assert_eq!(who.id(), "u1");
//! assert!(who.has_role("admin") && who.has_permission("users:write"));
//!
//! auth.logout(&bearer).await?;
//! let refused = auth.authenticate(&bearer).await.unwrap_err();
//! assert_eq!(refused, AuthError::Revoked);
//! assert_eq!(refused.status_code(), 401);
//! # Ok(())
//! # }
//! ```
//!
//! # The order of checks
//! Size → signature and claims (or this process's own cached verification of the very same
//! token) → revocation → user, roles, permissions. Nothing read from a cache is used before
//! the signature is known to be good: see [`AuthService::authenticate`].
//!
//! # Validation cache
//! A token this process verified is remembered by its SHA-256 fingerprint for
//! `min(exp − 5 s, 120 s)`, in this process only: an entry in the shared L2 would let
//! whoever can write to Redis vouch for a forged token. It pays for every algorithm, so it
//! is on by default ([`AuthServiceBuilder::validation_cache`] turns it off). A token answered
//! before is then answered by one in-process lookup of the whole principal (the warm path),
//! whatever the algorithm: `cargo xtask bench auth_warm` times it for HS256, RS256 and
//! ES256 against a bare `jsonwebtoken::decode` of the same token, in the same run, and
//! writes the ratios to `target/bench-report.md`.
//!
//! # Writes that bypass authcache
//! An admin tool, a migration or another service that writes users or roles directly would
//! leave every instance serving the old answer until its TTL ran out.
//! [`AuthServiceBuilder::watch`] runs a watcher that follows the repository's
//! [`ChangeFeed`] (MongoDB change streams) and invalidates what changed, on every instance,
//! through the bus; it resumes after a disconnect or a restart, and invalidates everything
//! when the feed's history is lost. One instance per deployment is enough; its state is in
//! [`Stats::watcher`].
//!
//! # Configuration
//! Everything the builder takes can come from configuration: [`AuthConfig`] reads TOML
//! ([`AuthConfig::from_toml`]) or `AUTHCACHE_*` environment variables
//! ([`AuthConfig::from_env`]), and [`AuthServiceBuilder::config`] applies it — the verifier
//! ([`VerifierConfig`]), the cache signing keys ([`SigningConfig`]), the cache
//! ([`CacheConfig`]), the repository ([`RepositoryConfig`], with MongoDB's [`MongoIdKind`]
//! and [`MongoFieldNames`]), the TTLs ([`TtlSettings`]), the breaker ([`BreakerSettings`])
//! and the service-wide settings. Secrets are named (an environment variable or a file),
//! never written in it. The complete example and the table of variables are on
//! [`AuthConfig`]. Asking for a backend whose feature is not compiled in fails with
//! [`AuthError::Config`] naming the feature.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), authcache::AuthError> {
//! use authcache::{AuthConfig, AuthService};
//!
//! let config = AuthConfig::from_toml(r#"
//!     [verifier]
//!     secret_env = "MYAPP_JWT_SECRET"
//!     [repository]
//!     backend = "memory"
//! "#)?;
//! // The variable is not set here: the error names it, never a value.
//! let error = AuthService::builder().config(config).build().await.unwrap_err();
//! assert!(error.to_string().contains("`MYAPP_JWT_SECRET`"));
//! # Ok(()) }
//! ```
//!
//! # Feature flags
//! - `memory` (default) — the in-process L2 for single-instance deployments
//!   ([`CacheConfig::Memory`]). The in-process L1 is always there.
//! - `redis` — Redis as the L2 and the invalidation bus ([`CacheConfig::Redis`]).
//! - `redis-cluster` — Redis Cluster as the L2 ([`CacheConfig::RedisCluster`]).
//! - `mongodb` — `MongoUserRepository` ([`RepositoryConfig::Mongodb`]).
//! - `mock` — `MockCache` and `MockUserRepository` (mockall) for your own tests.
//! - `tower` — module `tower`: `AuthLayer`, tower middleware that authenticates every
//!   request of any service over `http::Request` (axum routers included) and puts the
//!   [`Principal`] in its extensions, with `RequireRole` / `RequirePermission` layers and
//!   RFC 6750 refusals.
//! - `axum` (enables `tower`) — module `axum`: `Authenticated`, an axum 0.8 extractor that
//!   authenticates the request's bearer token, and `AuthRejection`, its RFC 6750 answer.
//! - `metrics` — module `metrics`: `AuthService::record_metrics` exports [`Stats`] through
//!   the [`metrics`](https://docs.rs/metrics) facade (`authcache_*` counters and gauges).
//! - `full` — all of the above.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
mod backend;
mod builder;
mod cache_id;
mod config;
mod cutoff;
mod epoch;
mod error;
mod guarded_repository;
pub mod health;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
mod principal;
#[cfg(feature = "redis")]
mod redis_backend;
mod refusal;
mod revocation;
mod service;
mod state;
mod stats;
mod sticky;
#[cfg(test)]
mod test_support;
mod tokens;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;
mod watcher;

pub use builder::{AuthServiceBuilder, DEFAULT_L1_CAPACITY, DEFAULT_MAX_TOKEN_LIFETIME};
pub use config::{
    AuthConfig, BreakerSettings, CacheConfig, ENV_PREFIX, MongoFieldNames, MongoIdKind,
    RepositoryConfig, RevocationCheck, SigningConfig, TtlSettings, VerifierConfig,
};
pub use error::{AuthError, Result};
pub use health::Health;
pub use principal::Principal;
pub use refusal::RefusalStats;
pub use revocation::Revocation;
pub use service::AuthService;
pub use stats::{
    BreakerState, BreakerStats, Stats, TierStatsSnapshot, ValidationStats, WatcherFault,
    WatcherState, WatcherStats,
};

#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub use authcache_core::MockCache;
pub use authcache_core::{BreakerConfig, Cache, CacheError, InvalidationPublisher, Ttls};
pub use authcache_jwt::{Algorithm, Claims, JwtVerifier, TokenError, TokenIssuer};
#[cfg(feature = "jwks")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwks")))]
pub use authcache_jwt::{JwksStats, RemoteJwks};
#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub use authcache_users::MockUserRepository;
#[cfg(feature = "mongodb")]
#[cfg_attr(docsrs, doc(cfg(feature = "mongodb")))]
pub use authcache_users::MongoUserRepository;
pub use authcache_users::{
    Change, ChangeFeed, ChangeStream, DocumentKind, FeedError, MemoryUserRepository,
    RepositoryError, ResumePoint, User, UserRecord, UserRepository,
};
