//! The cache commands, written once over any redis-rs async connection (a standalone
//! `ConnectionManager` or a Cluster connection), each bounded by the configured timeout.

use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use authcache_core::{CacheError, Key, Result};
use bytes::Bytes;
use redis::aio::ConnectionLike;
use redis::{Cmd, FromRedisValue, RedisError, Script};

use crate::config::Redactor;

/// Largest `PX` sent, ~2 230 years: Redis rejects expiry times that overflow its clock.
const MAX_PX_MILLIS: u64 = 1 << 46;

/// The conditional fill, atomic because Redis runs a script without interleaving other
/// commands. One key only, so a Cluster routes it to the key's slot.
///
/// `KEYS[1]`: the entry. `ARGV[1]`: the new value. `ARGV[2]`: `PX` milliseconds, `0` meaning
/// "delete instead" (Redis rejects `PX 0`). `ARGV[3]`: the expected value, left out when the
/// entry is expected to be absent. `GET` answers `false` for a missing or expired key, so
/// `ARGV[3] or false` compares both cases at once; Lua strings are binary-safe.
const SET_IF_UNCHANGED_LUA: &str = r"
if redis.call('GET', KEYS[1]) ~= (ARGV[3] or false) then
  return 0
end
if ARGV[2] == '0' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
";

/// Hashed once: redis-rs sends `EVALSHA`, and on `NOSCRIPT` (a fresh or restarted server,
/// a Cluster master that never saw it) loads the script with `SCRIPT LOAD` and retries.
static SET_IF_UNCHANGED: LazyLock<Script> = LazyLock::new(|| Script::new(SET_IF_UNCHANGED_LUA));

/// A connection plus the rules every call obeys: bounded in time, errors typed and scrubbed.
#[derive(Clone)]
pub(crate) struct Commands<C> {
    conn: C,
    timeout: Duration,
    redactor: Redactor,
}

impl<C> Commands<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    pub(crate) fn new(conn: C, timeout: Duration, redactor: Redactor) -> Self {
        Self {
            conn,
            timeout,
            redactor,
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs one command under the timeout. Cloning the connection is a reference-count
    /// bump; it lets calls run concurrently on the one multiplexed connection.
    async fn run<T: FromRedisValue>(&self, cmd: Cmd) -> Result<T> {
        let mut conn = self.conn.clone();
        bounded(self.timeout, &self.redactor, async move {
            cmd.query_async::<T>(&mut conn).await
        })
        .await
    }

    /// `CONFIG GET name`: the server's setting, `None` when it has no such setting.
    pub(crate) async fn config_get(&self, name: &str) -> Result<Option<String>> {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("GET").arg(name);
        // A map under RESP3, name/value pairs under RESP2: the HashMap reads both.
        let mut found = self
            .run::<std::collections::HashMap<String, String>>(cmd)
            .await?;
        Ok(found.remove(name))
    }

    pub(crate) async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key.as_str());
        Ok(self.run::<Option<Vec<u8>>>(cmd).await?.map(Bytes::from))
    }

    pub(crate) async fn set(&self, key: &Key, value: &[u8], ttl: Duration) -> Result<()> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key.as_str())
            .arg(value)
            .arg("PX")
            .arg(px_millis(ttl));
        self.run::<()>(cmd).await
    }

    /// Writes `value` only if the entry holds exactly `expected` (`None`: absent or expired),
    /// in one script, so no other client's write can land between the comparison and the
    /// write. A zero `ttl` makes it a conditional delete (the entry then ends absent, as an
    /// entry written with no time to live would); a sub-millisecond one is rounded up as in
    /// [`Commands::set`]. Returns whether the expectation held.
    pub(crate) async fn set_if_unchanged(
        &self,
        key: &Key,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool> {
        let px = if ttl.is_zero() { 0 } else { px_millis(ttl) };
        let mut invocation = SET_IF_UNCHANGED.key(key.as_str());
        invocation.arg(value).arg(px);
        if let Some(expected) = expected {
            invocation.arg(expected);
        }
        let mut conn = self.conn.clone();
        // The bound covers the whole exchange, including a `SCRIPT LOAD` and the retry.
        bounded(self.timeout, &self.redactor, async move {
            invocation.invoke_async::<bool>(&mut conn).await
        })
        .await
    }

    pub(crate) async fn delete(&self, key: &Key) -> Result<bool> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(key.as_str());
        Ok(self.run::<u64>(cmd).await? > 0)
    }

    /// One `MGET`. On a Cluster, redis-rs splits it per hash slot, sends the parts
    /// concurrently and puts the answers back in key order.
    pub(crate) async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(key.as_str());
        }
        let values = self.run::<Vec<Option<Vec<u8>>>>(cmd).await?;
        if values.len() != keys.len() {
            return Err(CacheError::unavailable(format!(
                "MGET of {} keys answered {} values",
                keys.len(),
                values.len()
            )));
        }
        Ok(values
            .into_iter()
            .map(|value| value.map(Bytes::from))
            .collect())
    }

    /// One multi-key `DEL`. On a Cluster, redis-rs splits it per hash slot and sums the counts.
    pub(crate) async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut cmd = redis::cmd("DEL");
        for key in keys {
            cmd.arg(key.as_str());
        }
        self.run::<u64>(cmd).await
    }

    /// `PUBLISH channel message`; returns how many subscribers (of the node) received it.
    pub(crate) async fn publish(&self, channel: &str, message: &str) -> Result<u64> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(channel).arg(message);
        self.run::<u64>(cmd).await
    }
}

/// `impl Cache for $backend`, forwarding every method to its `commands` field: written once
/// for both backends. (A blanket `impl<T> Cache for T` over them is not allowed: `Cache` is
/// another crate's trait.)
macro_rules! forward_cache {
    ($backend:ty) => {
        #[::async_trait::async_trait]
        impl ::authcache_core::Cache for $backend {
            async fn get(
                &self,
                key: &::authcache_core::Key,
            ) -> ::authcache_core::Result<Option<::bytes::Bytes>> {
                self.commands.get(key).await
            }

            async fn set(
                &self,
                key: &::authcache_core::Key,
                value: ::bytes::Bytes,
                ttl: ::std::time::Duration,
            ) -> ::authcache_core::Result<()> {
                self.commands.set(key, &value, ttl).await
            }

            async fn set_if_unchanged(
                &self,
                key: &::authcache_core::Key,
                expected: Option<::bytes::Bytes>,
                value: ::bytes::Bytes,
                ttl: ::std::time::Duration,
            ) -> ::authcache_core::Result<bool> {
                self.commands
                    .set_if_unchanged(key, expected.as_deref(), &value, ttl)
                    .await
            }

            async fn delete(&self, key: &::authcache_core::Key) -> ::authcache_core::Result<bool> {
                self.commands.delete(key).await
            }

            async fn get_many(
                &self,
                keys: &[::authcache_core::Key],
            ) -> ::authcache_core::Result<Vec<Option<::bytes::Bytes>>> {
                self.commands.get_many(keys).await
            }

            async fn delete_many(
                &self,
                keys: &[::authcache_core::Key],
            ) -> ::authcache_core::Result<u64> {
                self.commands.delete_many(keys).await
            }
        }
    };
}
pub(crate) use forward_cache;

/// Bounds `fut` by `timeout` and turns its error into a scrubbed [`CacheError`].
pub(crate) async fn bounded<T>(
    timeout: Duration,
    redactor: &Redactor,
    fut: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(map_error(&err, timeout, redactor)),
        Err(_elapsed) => Err(CacheError::Timeout(timeout)),
    }
}

/// redis-rs' own response/connect timeouts are I/O errors of kind `TimedOut`; they mean
/// the same as ours. Everything else is "unavailable", with the password scrubbed.
pub(crate) fn map_error(err: &RedisError, timeout: Duration, redactor: &Redactor) -> CacheError {
    if err.is_timeout() {
        CacheError::Timeout(timeout)
    } else {
        CacheError::unavailable(redactor.scrub(err))
    }
}

/// Milliseconds for `PX`: rounded up, so a sub-millisecond TTL becomes 1 ms (`PX 0` is an
/// error in Redis) and no entry lives shorter than asked; capped at [`MAX_PX_MILLIS`].
pub(crate) fn px_millis(ttl: Duration) -> u64 {
    let millis = ttl.as_nanos().div_ceil(1_000_000);
    u64::try_from(millis)
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_PX_MILLIS)
}

#[cfg(test)]
mod tests;
