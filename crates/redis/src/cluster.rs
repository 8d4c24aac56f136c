//! [`RedisClusterCache`]: the [`Cache`](authcache_core::Cache) backend on a Redis Cluster (feature `cluster`).
//!
//! Multi-key commands: keys of different hash slots cannot share one command on a Cluster.
//! redis-rs' cluster client (1.x) already handles this for `MGET` and `DEL`: it splits the
//! command per slot, sends the parts to their masters concurrently, and reassembles the
//! answer (`MGET` values back in key order, `DEL` counts summed). We rely on that rather
//! than grouping by slot ourselves, so `get_many`/`delete_many` are still one call each;
//! across slots they are not atomic, which a cache does not need.

use std::fmt;

use authcache_core::Result;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;

use crate::commands::{Commands, bounded, map_error};
use crate::config::{RedactedNode, RedisConfig};

/// Retries of a redirected or failed request inside redis-rs: enough to follow `MOVED`/`ASK`
/// during a resharding, few enough that a dead master does not keep requests busy long
/// after the caller's timeout gave up on them.
const CLUSTER_RETRIES: u32 = 3;

/// A [`Cache`](authcache_core::Cache) on a Redis Cluster, over redis-rs' async cluster connection (one multiplexed
/// connection per master, slot map refreshed on `MOVED`).
///
/// Every call is bounded by [`RedisConfig::timeout`], as for [`crate::RedisCache`].
/// Cloning is cheap and shares the connections.
#[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
#[derive(Clone)]
pub struct RedisClusterCache {
    commands: Commands<ClusterConnection>,
    config: RedisConfig,
}

impl RedisClusterCache {
    /// Connects to the Cluster through its seed nodes (all URLs of `config`), loading the
    /// slot map within [`RedisConfig::connect_timeout`].
    ///
    /// # Errors
    /// [`authcache_core::CacheError::Unavailable`] when no seed node answers or the
    /// configuration is inconsistent (different credentials per node);
    /// [`authcache_core::CacheError::Timeout`] when the handshake takes too long.
    pub async fn connect(config: &RedisConfig) -> Result<Self> {
        config.prepare_tls();
        let redactor = config.redactor();
        let client =
            cluster_client(config).map_err(|err| map_error(&err, config.timeout(), &redactor))?;
        let conn = bounded(
            config.connect_timeout(),
            &redactor,
            client.get_async_connection(),
        )
        .await?;
        Ok(Self {
            commands: Commands::new(conn, config.timeout(), redactor),
            config: config.clone(),
        })
    }

    /// The configuration this cache was built from.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// The `maxmemory-policy` of the node the Cluster client routes `CONFIG GET` to (the
    /// nodes of one Cluster are configured alike). See
    /// [`RedisCache::eviction_policy`](crate::RedisCache::eviction_policy).
    ///
    /// # Errors
    /// The [`CacheError`](authcache_core::CacheError) of the `CONFIG GET` call.
    pub async fn eviction_policy(&self) -> Result<Option<String>> {
        self.commands.config_get("maxmemory-policy").await
    }

    pub(crate) fn commands(&self) -> &Commands<ClusterConnection> {
        &self.commands
    }
}

fn cluster_client(config: &RedisConfig) -> redis::RedisResult<ClusterClient> {
    ClusterClientBuilder::new(config.nodes().to_vec())
        .connection_timeout(config.connect_timeout())
        .response_timeout(config.timeout())
        .retries(CLUSTER_RETRIES)
        // The cluster client opens its node connections with its own settings, not the
        // seeds'.
        .tcp_settings(crate::config::tcp_settings())
        .build()
}

crate::commands::forward_cache!(RedisClusterCache);

impl fmt::Debug for RedisClusterCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seeds: Vec<RedactedNode<'_>> = self.config.nodes().iter().map(RedactedNode).collect();
        f.debug_struct("RedisClusterCache")
            .field("seeds", &seeds)
            .field("timeout", &self.commands.timeout())
            .finish_non_exhaustive()
    }
}
