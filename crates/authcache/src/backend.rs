//! Turns a [`CacheConfig`] into the shared L2 (behind its circuit breaker) and, for Redis,
//! the invalidation publisher and the bus to subscribe to.

use std::sync::Arc;
use std::time::Duration;

use authcache_core::{BreakerConfig, Cache, GuardedCache, InvalidationPublisher, Keyspace};

use crate::{AuthError, CacheConfig, Result};

/// The L2 and what comes with it.
pub(crate) struct Backend {
    pub(crate) l2: Arc<dyn Cache>,
    pub(crate) publisher: Option<Arc<dyn InvalidationPublisher>>,
    /// Reachable by other processes (Redis, or a caller's own L2): entries must be signed.
    pub(crate) shared: bool,
    /// The per-call timeout the configuration asked for; the breaker enforces it.
    pub(crate) timeout: Option<Duration>,
    /// Redis's `maxmemory-policy`, when it could be read at start-up.
    pub(crate) eviction_policy: Option<String>,
    /// Where to subscribe for other instances' invalidations.
    #[cfg(feature = "redis")]
    pub(crate) bus: Option<authcache_redis::RedisConfig>,
}

impl Backend {
    /// A caller-supplied L2 (and publisher), with no bus to subscribe to.
    pub(crate) fn explicit(
        l2: Arc<dyn Cache>,
        publisher: Option<Arc<dyn InvalidationPublisher>>,
    ) -> Self {
        Self {
            l2,
            publisher,
            shared: true,
            timeout: None,
            eviction_policy: None,
            #[cfg(feature = "redis")]
            bus: None,
        }
    }

    /// Connects the backend `config` names. A Redis client's own timeout is the
    /// configuration's `timeout_ms`, else `default_timeout` (the breaker's), so that the
    /// client never gives up before the breaker would.
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    pub(crate) async fn connect(
        config: &CacheConfig,
        keyspace: &Keyspace,
        default_timeout: Duration,
    ) -> Result<Self> {
        config.ensure_compiled()?;
        match config {
            #[cfg(feature = "memory")]
            CacheConfig::Memory { max_bytes } => Ok(Self {
                shared: false,
                ..Self::explicit(
                    Arc::new(authcache_memory::MemoryCache::new(
                        max_bytes.unwrap_or(authcache_memory::DEFAULT_MAX_BYTES),
                    )),
                    None,
                )
            }),
            #[cfg(feature = "redis")]
            CacheConfig::Redis { url, timeout_ms } => {
                let timeout = timeout(*timeout_ms).unwrap_or(default_timeout);
                crate::redis_backend::standalone(url, Some(timeout), keyspace).await
            }
            #[cfg(feature = "redis-cluster")]
            CacheConfig::RedisCluster { urls, timeout_ms } => {
                let timeout = timeout(*timeout_ms).unwrap_or(default_timeout);
                crate::redis_backend::cluster(urls, Some(timeout), keyspace).await
            }
            // Unreachable after `ensure_compiled`, kept total for every feature combination.
            #[allow(unreachable_patterns)]
            other => Err(AuthError::Config(format!(
                "cache backend `{}` is not compiled in",
                other.required_feature()
            ))),
        }
    }

    /// Whether the shared cache may evict keys that still have time to live — marks and
    /// tombstones included: any `maxmemory-policy` but `noeviction` (every key authcache
    /// writes has a TTL, so the `volatile-*` policies may evict them as readily as the
    /// `allkeys-*` ones). The policy, when it may.
    pub(crate) fn evicting_policy(&self) -> Option<&str> {
        self.eviction_policy
            .as_deref()
            .filter(|policy| !policy.eq_ignore_ascii_case("noeviction"))
    }

    /// The L2 behind its circuit breaker, shared by every tier.
    pub(crate) fn guarded(&self, breaker: &BreakerConfig) -> Arc<GuardedCache> {
        Arc::new(GuardedCache::new(Arc::clone(&self.l2), breaker.clone()))
    }
}

#[cfg_attr(not(feature = "redis"), allow(dead_code))]
fn timeout(millis: Option<u64>) -> Option<Duration> {
    millis.map(Duration::from_millis)
}
