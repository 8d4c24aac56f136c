//! [`RedisCache`]: the [`Cache`](authcache_core::Cache) backend on a standalone Redis server.

use std::fmt;
use std::time::Duration;

use authcache_core::Result;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::commands::{Commands, bounded, map_error};
use crate::config::{RedactedNode, RedisConfig};

/// A [`Cache`](authcache_core::Cache) on one Redis server, over a single multiplexed connection that reconnects by
/// itself (redis-rs `ConnectionManager`).
///
/// Every call is bounded by [`RedisConfig::timeout`]: a hung server costs each call one
/// timeout ([`CacheError::Timeout`](authcache_core::CacheError::Timeout)), a dead one fails fast ([`CacheError::Unavailable`](authcache_core::CacheError::Unavailable)), and
/// the same `RedisCache` works again once the server is back, without being rebuilt.
/// Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct RedisCache {
    commands: Commands<ConnectionManager>,
    config: RedisConfig,
}

impl RedisCache {
    /// Connects to the first node of `config` and checks the connection (handshake, AUTH,
    /// SELECT) within [`RedisConfig::connect_timeout`].
    ///
    /// # Errors
    /// [`CacheError::Unavailable`](authcache_core::CacheError::Unavailable) when the server refuses, the credentials are wrong or the
    /// TLS handshake fails; [`CacheError::Timeout`](authcache_core::CacheError::Timeout) when it does not answer in time.
    pub async fn connect(config: &RedisConfig) -> Result<Self> {
        let manager = Self::manager(config)?;
        let redactor = config.redactor();
        let connect_timeout = config.connect_timeout();
        // Forces the lazy connection now, so a bad URL or password is reported at start-up.
        let mut probe = manager.clone();
        bounded(connect_timeout, &redactor, async move {
            redis::cmd("PING").query_async::<()>(&mut probe).await
        })
        .await?;
        Ok(Self::from_manager(manager, config))
    }

    /// Like [`RedisCache::connect`] but without I/O: the connection is made on first use,
    /// so a service can start while Redis is down (calls fail until it is up).
    ///
    /// # Errors
    /// [`CacheError::Unavailable`](authcache_core::CacheError::Unavailable) when the client cannot be configured (never for an
    /// unreachable server).
    pub fn connect_lazy(config: &RedisConfig) -> Result<Self> {
        Ok(Self::from_manager(Self::manager(config)?, config))
    }

    /// The configuration this cache was built from.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// The server's `maxmemory-policy` (`noeviction`, `allkeys-lru`, `volatile-ttl`, …).
    /// Under an `allkeys-*` policy Redis may evict any key when memory runs out —
    /// revocation marks and tombstones included.
    ///
    /// # Errors
    /// The [`CacheError`](authcache_core::CacheError) of the `CONFIG GET` call (a managed
    /// Redis may refuse `CONFIG`: the policy is then unknown).
    pub async fn eviction_policy(&self) -> Result<Option<String>> {
        self.commands.config_get("maxmemory-policy").await
    }

    pub(crate) fn commands(&self) -> &Commands<ConnectionManager> {
        &self.commands
    }

    fn from_manager(manager: ConnectionManager, config: &RedisConfig) -> Self {
        Self {
            commands: Commands::new(manager, config.timeout(), config.redactor()),
            config: config.clone(),
        }
    }

    fn manager(config: &RedisConfig) -> Result<ConnectionManager> {
        config.prepare_tls();
        let redactor = config.redactor();
        let to_error = |err: redis::RedisError| map_error(&err, config.timeout(), &redactor);
        let client = redis::Client::open(config.first_node().clone()).map_err(to_error)?;
        ConnectionManager::new_lazy_with_config(client, manager_config(config)).map_err(to_error)
    }
}

/// No reconnect retries inside a call: while the server is down each call fails at once
/// (connection refused) and the next call tries again, instead of every caller waiting out
/// a backoff schedule. The circuit breaker in `authcache-core` spaces out the attempts.
fn manager_config(config: &RedisConfig) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_number_of_retries(0)
        .set_min_delay(Duration::from_millis(10))
        .set_response_timeout(Some(config.timeout()))
        .set_connection_timeout(Some(config.connect_timeout()))
}

crate::commands::forward_cache!(RedisCache);

impl fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCache")
            .field("node", &RedactedNode(self.config.first_node()))
            .field("timeout", &self.commands.timeout())
            .finish_non_exhaustive()
    }
}
