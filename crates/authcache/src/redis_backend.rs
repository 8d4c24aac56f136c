//! Redis and Redis Cluster as the L2, with the invalidation bus (features `redis`,
//! `redis-cluster`). The only module that names `authcache_redis` types; none of them
//! appears in the public API.

use std::sync::Arc;
use std::time::Duration;

use authcache_core::{BusEvent, Keyspace};
use authcache_redis::{InvalidationSubscriber, RedisCache, RedisConfig, RedisPublisher};

use crate::backend::Backend;
use crate::{AuthError, Result};

/// How long `build()` waits for the bus subscription before going on without it (it keeps
/// trying in the background; the L1 cap bounds staleness meanwhile).
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

fn config_error(error: impl std::fmt::Display) -> AuthError {
    AuthError::Config(format!("redis: {error}"))
}

fn with_timeout(config: RedisConfig, timeout: Option<Duration>) -> RedisConfig {
    match timeout {
        Some(timeout) => config.with_timeout(timeout),
        None => config,
    }
}

/// A standalone Redis. A server that is down at start-up does not fail the build: the
/// connection is made lazily and the breaker keeps requests flowing meanwhile.
pub(crate) async fn standalone(
    url: &str,
    timeout: Option<Duration>,
    keyspace: &Keyspace,
) -> Result<Backend> {
    let config = with_timeout(RedisConfig::from_url(url).map_err(config_error)?, timeout);
    let (cache, eviction_policy) = match RedisCache::connect(&config).await {
        Ok(cache) => {
            let policy = known_policy(cache.eviction_policy().await);
            (cache, policy)
        }
        Err(error) => {
            tracing::warn!(%error, "redis not reachable at start-up; continuing without it until it is");
            (
                RedisCache::connect_lazy(&config).map_err(config_error)?,
                None,
            )
        }
    };
    let publisher = RedisPublisher::new(&cache, keyspace);
    Ok(Backend {
        l2: Arc::new(cache),
        publisher: Some(Arc::new(publisher)),
        shared: true,
        timeout,
        eviction_policy,
        bus: Some(config),
    })
}

/// A Redis Cluster reached through its seed nodes.
///
/// # Errors
/// [`AuthError::Config`] for bad URLs; [`AuthError::Unavailable`] when no node answers
/// (a cluster client needs the slot map to start).
#[cfg(feature = "redis-cluster")]
pub(crate) async fn cluster(
    urls: &[String],
    timeout: Option<Duration>,
    keyspace: &Keyspace,
) -> Result<Backend> {
    let config = with_timeout(RedisConfig::from_urls(urls).map_err(config_error)?, timeout);
    let cache = authcache_redis::RedisClusterCache::connect(&config)
        .await
        .map_err(AuthError::unavailable)?;
    let eviction_policy = known_policy(cache.eviction_policy().await);
    let publisher = RedisPublisher::for_cluster(&cache, keyspace);
    Ok(Backend {
        l2: Arc::new(cache),
        publisher: Some(Arc::new(publisher)),
        shared: true,
        timeout,
        eviction_policy,
        bus: Some(config),
    })
}

/// The policy read, or `None` (logged) when the server would not say: a managed Redis
/// may rename or refuse `CONFIG`.
fn known_policy(read: authcache_core::Result<Option<String>>) -> Option<String> {
    match read {
        Ok(policy) => policy,
        Err(error) => {
            tracing::warn!(%error, "redis maxmemory-policy could not be read; make sure it is noeviction");
            None
        }
    }
}

/// Subscribes to other instances' invalidations; waits (boundedly) for the subscription.
pub(crate) async fn subscribe<F>(
    config: &RedisConfig,
    keyspace: &Keyspace,
    on_event: F,
) -> Result<InvalidationSubscriber>
where
    F: Fn(BusEvent) + Send + Sync + 'static,
{
    let subscriber =
        InvalidationSubscriber::spawn(config, keyspace, on_event).map_err(config_error)?;
    if let Err(error) = subscriber.wait_subscribed(SUBSCRIBE_WAIT).await {
        tracing::warn!(%error, "invalidation bus not subscribed yet; retrying in the background");
    }
    Ok(subscriber)
}
