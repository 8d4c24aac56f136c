//! Where Redis is and how long to wait for it: [`RedisConfig`], parsed from URLs.
//!
//! The parsed connection details (including credentials) stay private to this crate: the
//! `Debug` output shows endpoints with `<redacted>` in place of user and password, and
//! [`Redactor`] scrubs the password from every error message before it leaves the crate.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use authcache_core::CacheError;
use redis::io::tcp::TcpSettings;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

/// Why a Redis URL was rejected. Never contains the URL itself (it may hold a password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A URL did not parse as `redis://` / `rediss://` (with optional user, password, db).
    #[error("invalid Redis URL #{index}: {reason}")]
    InvalidUrl {
        /// Position of the offending URL in the list given (0 for a single URL).
        index: usize,
        /// What was wrong, without the URL.
        reason: String,
    },
    /// No URL was given.
    #[error("no Redis URL given")]
    NoNodes,
}

/// A bad configuration makes the backend unusable; callers that only speak [`CacheError`]
/// (the facade's `?`) get it as [`CacheError::Unavailable`].
impl From<ConfigError> for CacheError {
    fn from(err: ConfigError) -> Self {
        CacheError::unavailable(err)
    }
}

/// Connection settings of a Redis deployment: one node (standalone) or the seed nodes of a
/// Cluster, the per-call timeout and the connect timeout.
///
/// Built from URLs of the form `redis://[user][:password@]host[:port][/db]`; `rediss://`
/// selects TLS (rustls, verified against the webpki root certificates).
/// `Debug` never shows user or password.
///
/// ```
/// use std::time::Duration;
/// use authcache_redis::RedisConfig;
///
/// let config = RedisConfig::from_url("redis://app:s3cret@127.0.0.1:6379/2")?
///     .with_timeout(Duration::from_millis(50));
/// assert_eq!(config.timeout(), Duration::from_millis(50));
/// assert!(!format!("{config:?}").contains("s3cret"));
/// # Ok::<(), authcache_redis::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    /// Never empty (checked in [`RedisConfig::from_urls`]).
    nodes: Vec<ConnectionInfo>,
    timeout: Duration,
    connect_timeout: Duration,
}

impl RedisConfig {
    /// 100 ms per call: a cache answer slower than that is worth less than asking the
    /// system of record, and a hung server must cost a request no more than this.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);

    /// 1 s to establish a connection (TCP, TLS, AUTH, SELECT): handshakes take several
    /// round trips and happen rarely, so they get more room than a single command.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

    /// A standalone server (or one seed node of a Cluster).
    ///
    /// # Errors
    /// [`ConfigError::InvalidUrl`] when the URL does not parse.
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        Self::from_urls([url])
    }

    /// Several seed nodes of a Cluster; they must share scheme, credentials and db.
    /// A standalone [`crate::RedisCache`] uses the first.
    ///
    /// # Errors
    /// [`ConfigError::NoNodes`] for an empty list, [`ConfigError::InvalidUrl`] naming the
    /// first URL that does not parse.
    pub fn from_urls<I, S>(urls: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nodes = urls
            .into_iter()
            .enumerate()
            .map(|(index, url)| parse(index, url.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if nodes.is_empty() {
            return Err(ConfigError::NoNodes);
        }
        Ok(Self {
            nodes,
            timeout: Self::DEFAULT_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
        })
    }

    /// Sets the bound on every cache call (default [`Self::DEFAULT_TIMEOUT`]).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the bound on establishing a connection (default [`Self::DEFAULT_CONNECT_TIMEOUT`]).
    #[must_use]
    pub fn with_connect_timeout(mut self, connect_timeout: Duration) -> Self {
        self.connect_timeout = connect_timeout;
        self
    }

    /// The bound on every cache call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The bound on establishing a connection.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// `host:port` of every node, in the order given (no credentials).
    pub fn endpoints(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| node.addr().to_string())
            .collect()
    }

    /// `true` when the URLs asked for TLS (`rediss://`).
    pub fn uses_tls(&self) -> bool {
        self.nodes
            .iter()
            .any(|node| matches!(node.addr(), ConnectionAddr::TcpTls { .. }))
    }

    pub(crate) fn nodes(&self) -> &[ConnectionInfo] {
        &self.nodes
    }

    /// The node a standalone connection or a subscriber starts with.
    pub(crate) fn first_node(&self) -> &ConnectionInfo {
        &self.nodes[0]
    }

    /// Removes the password from error messages about this deployment.
    pub(crate) fn redactor(&self) -> Redactor {
        let password = self
            .nodes
            .iter()
            .find_map(|node| node.redis_settings().password())
            .filter(|password| !password.is_empty());
        Redactor {
            password: password.map(Arc::from),
        }
    }

    /// Installs rustls' ring provider as the process default when TLS is used and no
    /// provider was installed yet: rustls cannot pick one by itself when more than one
    /// provider is compiled into the binary. An application that installed its own keeps it.
    pub(crate) fn prepare_tls(&self) {
        if self.uses_tls() && rustls::crypto::CryptoProvider::get_default().is_none() {
            // Err means another thread installed one first; either way one is in place.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
    }
}

/// The socket options of every connection this crate opens: `TCP_NODELAY`. redis-rs 1.x
/// leaves Nagle's algorithm on (redis-rs issue #2195; 2.0 flips the default), and on a
/// multiplexed connection a small request written while an earlier one is unacknowledged
/// then waits for the peer's delayed ACK — up to 40 ms on Linux. Redis itself sets
/// `TCP_NODELAY` on its side of every client connection.
pub(crate) fn tcp_settings() -> TcpSettings {
    TcpSettings::default().set_nodelay(true)
}

fn parse(index: usize, url: &str) -> Result<ConnectionInfo, ConfigError> {
    url.into_connection_info()
        .map(|info| info.set_tcp_settings(tcp_settings()))
        .map_err(|err| ConfigError::InvalidUrl {
            index,
            // redis-rs' URL errors are fixed strings; scrub anyway in case that changes.
            reason: scrub_url_parts(&err.to_string(), url),
        })
}

fn scrub_url_parts(message: &str, url: &str) -> String {
    if url.is_empty() {
        message.to_owned()
    } else {
        message.replace(url, "<url>")
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes: Vec<RedactedNode<'_>> = self.nodes.iter().map(RedactedNode).collect();
        f.debug_struct("RedisConfig")
            .field("nodes", &nodes)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// One node rendered as a URL with `<redacted>` credentials.
pub(crate) struct RedactedNode<'a>(pub(crate) &'a ConnectionInfo);

impl fmt::Display for RedactedNode<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings = self.0.redis_settings();
        let scheme = match self.0.addr() {
            ConnectionAddr::TcpTls { .. } => "rediss",
            ConnectionAddr::Unix(_) => "redis+unix",
            _ => "redis",
        };
        let has_credentials = settings.username().is_some() || settings.password().is_some();
        let credentials = if has_credentials { "<redacted>@" } else { "" };
        write!(
            f,
            "{scheme}://{credentials}{}/{}",
            self.0.addr(),
            settings.db()
        )
    }
}

impl fmt::Debug for RedactedNode<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Scrubs a known password out of messages (defence in depth: redis-rs does not put
/// passwords into its errors today, and a future version must not make us leak one).
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    password: Option<Arc<str>>,
}

impl Redactor {
    pub(crate) fn scrub(&self, message: impl fmt::Display) -> String {
        let message = message.to_string();
        match &self.password {
            Some(password) => message.replace(&**password, "<redacted>"),
            None => message,
        }
    }
}

#[cfg(test)]
mod tests;
