//! `[cache]` and `[repository]`: which backend, and where it is.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::ensure_feature;
use super::mongodb::{MongoFieldNames, MongoIdKind};
use crate::{AuthError, Result};

/// Where cached answers live (the L2 tier; the L1 is always in-process).
///
/// Its `Debug` shows the URLs with their credentials as `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "backend", rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub enum CacheConfig {
    /// In-process only: single-instance mode (feature `memory`, on by default).
    Memory {
        /// Most bytes kept in the in-process L2 (default 64 MiB).
        #[serde(default, alias = "maxBytes")]
        max_bytes: Option<u64>,
    },
    /// A standalone Redis server (feature `redis`).
    Redis {
        /// `redis://` or `rediss://` URL, credentials and db number included.
        url: String,
        /// Per-call timeout in milliseconds (default 100).
        #[serde(default, alias = "timeoutMs")]
        timeout_ms: Option<u64>,
    },
    /// A Redis Cluster (feature `redis-cluster`).
    RedisCluster {
        /// Seed node URLs.
        urls: Vec<String>,
        /// Per-call timeout in milliseconds (default 100).
        #[serde(default, alias = "timeoutMs")]
        timeout_ms: Option<u64>,
    },
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self::memory()
    }
}

impl CacheConfig {
    /// The in-process cache with the default capacity.
    pub fn memory() -> Self {
        Self::Memory { max_bytes: None }
    }

    /// A standalone Redis at `url`.
    pub fn redis(url: impl Into<String>) -> Self {
        Self::Redis {
            url: url.into(),
            timeout_ms: None,
        }
    }

    /// A Redis Cluster reached through the seed `urls`.
    pub fn redis_cluster<S: Into<String>>(urls: impl IntoIterator<Item = S>) -> Self {
        Self::RedisCluster {
            urls: urls.into_iter().map(Into::into).collect(),
            timeout_ms: None,
        }
    }

    /// The per-call timeout `timeout_ms` asks for, if any (Redis backends only).
    pub fn timeout(&self) -> Option<Duration> {
        match self {
            Self::Memory { .. } => None,
            Self::Redis { timeout_ms, .. } | Self::RedisCluster { timeout_ms, .. } => {
                timeout_ms.map(Duration::from_millis)
            }
        }
    }

    /// The cargo feature of `authcache` this backend needs.
    pub fn required_feature(&self) -> &'static str {
        match self {
            Self::Memory { .. } => "memory",
            Self::Redis { .. } => "redis",
            Self::RedisCluster { .. } => "redis-cluster",
        }
    }

    /// Checks that the backend is compiled in.
    ///
    /// # Errors
    /// [`AuthError::Config`] naming the feature to enable.
    pub fn ensure_compiled(&self) -> Result<()> {
        let compiled = match self {
            Self::Memory { .. } => cfg!(feature = "memory"),
            Self::Redis { .. } => cfg!(feature = "redis"),
            Self::RedisCluster { .. } => cfg!(feature = "redis-cluster"),
        };
        ensure_feature(compiled, "cache", self.required_feature())
    }
}

/// Where users, roles and permissions come from (the system of record).
///
/// Its `Debug` shows the URI with its credentials as `***`.
// Read once per service: the size of the MongoDB variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "backend", rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub enum RepositoryConfig {
    /// An in-memory repository, optionally seeded from a JSON file (always available).
    Memory {
        /// A JSON file of users and roles to start with.
        #[serde(default, alias = "seedFile")]
        seed_file: Option<String>,
    },
    /// MongoDB (feature `mongodb`), its documents laid out as the adopter has them.
    Mongodb {
        /// `mongodb://` connection string. Its `connectTimeoutMS` and
        /// `serverSelectionTimeoutMS` options replace the defaults (2 s each).
        uri: String,
        /// Database name.
        db: String,
        /// Bound on one repository call, in milliseconds (default 5,000): it is
        /// [`AuthServiceBuilder::repository_timeout`](crate::AuthServiceBuilder::repository_timeout)
        /// (replacing one given in code) and the driver's bound on each operation. 0: the
        /// load is not bounded (each driver operation still is, by 5 s).
        #[serde(default, alias = "timeoutMs")]
        timeout_ms: Option<u64>,
        /// How user ids are stored in `_id` (default `auto`).
        #[serde(default, alias = "idKind")]
        id_kind: MongoIdKind,
        /// The users collection (default `users`).
        #[serde(default, alias = "usersCollection")]
        users_collection: Option<String>,
        /// The roles collection (default `roles`).
        #[serde(default, alias = "rolesCollection")]
        roles_collection: Option<String>,
        /// Stored names of fields (`[repository.fields]`).
        #[serde(default)]
        fields: MongoFieldNames,
        /// Create the unique index on the email field at start (default `true`; an
        /// existing index on that key is never changed).
        #[serde(default, alias = "createIndexes")]
        create_indexes: Option<bool>,
    },
}

/// The in-memory repository, unseeded. A configuration without a `[repository]` section
/// does not fall back to it: [`AuthConfig::repository`](crate::AuthConfig::repository) is then `None`.
impl Default for RepositoryConfig {
    fn default() -> Self {
        Self::Memory { seed_file: None }
    }
}

impl RepositoryConfig {
    /// MongoDB at `uri`, database `db`.
    pub fn mongodb(uri: impl Into<String>, db: impl Into<String>) -> Self {
        Self::Mongodb {
            uri: uri.into(),
            db: db.into(),
            timeout_ms: None,
            id_kind: MongoIdKind::default(),
            users_collection: None,
            roles_collection: None,
            fields: MongoFieldNames::default(),
            create_indexes: None,
        }
    }

    /// The repository timeout `timeout_ms` asks for, if any (MongoDB only).
    pub fn timeout(&self) -> Option<Duration> {
        match self {
            Self::Memory { .. } => None,
            Self::Mongodb { timeout_ms, .. } => timeout_ms.map(Duration::from_millis),
        }
    }

    /// The name of the backend, as `backend = "…"` spells it.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Memory { .. } => "memory",
            Self::Mongodb { .. } => "mongodb",
        }
    }

    /// Checks what can be checked without connecting: a MongoDB URI has the `mongodb://` or
    /// `mongodb+srv://` scheme and names a host.
    ///
    /// # Errors
    /// [`AuthError::Config`] saying what is wrong (without the URI, which may hold a
    /// password).
    pub fn check_syntax(&self) -> Result<()> {
        let Self::Mongodb { uri, .. } = self else {
            return Ok(());
        };
        let rest = ["mongodb://", "mongodb+srv://"]
            .iter()
            .find_map(|scheme| uri.strip_prefix(scheme))
            .ok_or_else(|| {
                AuthError::Config(
                    "repository: the MongoDB URI must start with `mongodb://` or \
                     `mongodb+srv://` (as in mongodb://host:27017)"
                        .into(),
                )
            })?;
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let hosts = authority
            .rsplit_once('@')
            .map_or(authority, |(_, hosts)| hosts);
        if hosts.split(',').any(str::is_empty) {
            return Err(AuthError::Config(
                "repository: the MongoDB URI names no host (as in mongodb://host:27017)".into(),
            ));
        }
        Ok(())
    }

    /// The cargo feature of `authcache` this backend needs (`None`: always available).
    pub fn required_feature(&self) -> Option<&'static str> {
        match self {
            Self::Memory { .. } => None,
            Self::Mongodb { .. } => Some("mongodb"),
        }
    }

    /// Checks that the backend is compiled in.
    ///
    /// # Errors
    /// [`AuthError::Config`] naming the feature to enable.
    pub fn ensure_compiled(&self) -> Result<()> {
        match self {
            Self::Memory { .. } => Ok(()),
            Self::Mongodb { .. } => {
                ensure_feature(cfg!(feature = "mongodb"), "repository", "mongodb")
            }
        }
    }
}

impl fmt::Debug for CacheConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory { max_bytes } => f
                .debug_struct("Memory")
                .field("max_bytes", max_bytes)
                .finish(),
            Self::Redis { url, timeout_ms } => f
                .debug_struct("Redis")
                .field("url", &redact_credentials(url))
                .field("timeout_ms", timeout_ms)
                .finish(),
            Self::RedisCluster { urls, timeout_ms } => f
                .debug_struct("RedisCluster")
                .field(
                    "urls",
                    &urls
                        .iter()
                        .map(|url| redact_credentials(url))
                        .collect::<Vec<_>>(),
                )
                .field("timeout_ms", timeout_ms)
                .finish(),
        }
    }
}

impl fmt::Debug for RepositoryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory { seed_file } => f
                .debug_struct("Memory")
                .field("seed_file", seed_file)
                .finish(),
            Self::Mongodb {
                uri,
                db,
                timeout_ms,
                id_kind,
                users_collection,
                roles_collection,
                fields,
                create_indexes,
            } => f
                .debug_struct("Mongodb")
                .field("uri", &redact_credentials(uri))
                .field("db", db)
                .field("timeout_ms", timeout_ms)
                .field("id_kind", id_kind)
                .field("users_collection", users_collection)
                .field("roles_collection", roles_collection)
                .field("fields", fields)
                .field("create_indexes", create_indexes)
                .finish(),
        }
    }
}

/// `url` with the user information of its authority (`user:password@`) replaced by `***`,
/// for `Debug`: a Redis or MongoDB URL often carries a password. Everything up to the last
/// `@` before the query goes, so a password with an unescaped `/` does not survive either.
pub(super) fn redact_credentials(url: &str) -> String {
    let start = url.find("://").map_or(0, |at| at + 3);
    let query = url[start..]
        .find(['?', '#'])
        .map_or(url.len(), |at| start + at);
    match url[start..query].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]),
        None => url.to_owned(),
    }
}
