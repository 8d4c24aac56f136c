//! Configuration that can be read from TOML or environment variables: which cache and which
//! repository to use, and the TTLs.
//!
//! Every backend is a variant here whatever features are compiled in, so a configuration file
//! always parses; asking for a backend whose feature is off fails when the service is built,
//! with an [`AuthError::Config`] naming the feature to enable.
//!
//! ```toml
//! prefix = "myapp"
//!
//! [cache]
//! backend = "redis"               # memory | redis | redis-cluster
//! url = "redis://127.0.0.1:6379"
//!
//! [repository]
//! backend = "mongodb"             # memory | mongodb
//! uri = "mongodb://127.0.0.1:27017"
//! db = "app"
//!
//! [ttls]
//! userTTL = 300                   # or user_ttl; seconds
//! permissions_ttl = 900
//! ```
//!
//! The same settings as environment variables: `AUTHCACHE_PREFIX=myapp`,
//! `AUTHCACHE_CACHE__BACKEND=redis`, `AUTHCACHE_CACHE__URL=redis://…`,
//! `AUTHCACHE_TTLS__USER_TTL=300` — `__` separates sections, names are case-insensitive.

use std::collections::BTreeMap;
use std::time::Duration;

use authcache_core::Ttls;
use serde::Deserialize;

use crate::{AuthError, Result};

/// Where cached answers live (the L2 tier; the L1 is always in-process).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "backend", rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub enum RepositoryConfig {
    /// An in-memory repository, optionally seeded from a JSON file (always available).
    Memory {
        /// A JSON file of users and roles to start with.
        #[serde(default, alias = "seedFile")]
        seed_file: Option<String>,
    },
    /// MongoDB (feature `mongodb`).
    Mongodb {
        /// `mongodb://` connection string.
        uri: String,
        /// Database name.
        db: String,
    },
}

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
        }
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

fn ensure_feature(compiled: bool, what: &str, feature: &str) -> Result<()> {
    if compiled {
        Ok(())
    } else {
        Err(AuthError::Config(format!(
            "the {what} backend `{feature}` is not compiled in: enable the `{feature}` feature of \
             authcache (authcache = {{ version = \"…\", features = [\"{feature}\"] }})"
        )))
    }
}

/// TTL settings in seconds, as they appear in configuration; every field is optional and
/// falls back to the library default. Both `snake_case` and the `camelCase`/`TTL` spellings
/// of the systems this replaces are accepted (`user_ttl` = `userTTL`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TtlSettings {
    /// User records (default 300 s).
    #[serde(alias = "userTTL", alias = "userTtl", alias = "userttl")]
    pub user_ttl: Option<u64>,
    /// Permissions of a user (default 900 s).
    #[serde(
        alias = "permissionsTTL",
        alias = "permissionsTtl",
        alias = "permissionsttl",
        alias = "perms_ttl",
        alias = "permsTTL"
    )]
    pub permissions_ttl: Option<u64>,
    /// Cap on cached token validations (default 120 s; never beyond the token's `exp`).
    #[serde(
        alias = "tokenTTL",
        alias = "tokenTtl",
        alias = "tokenttl",
        alias = "validation_ttl"
    )]
    pub token_ttl: Option<u64>,
    /// Unknown users (default 30 s).
    #[serde(alias = "negativeTTL", alias = "negativeTtl", alias = "negativettl")]
    pub negative_ttl: Option<u64>,
    /// Cap on the in-process tier (default 30 s).
    #[serde(alias = "l1Cap", alias = "l1cap")]
    pub l1_cap: Option<u64>,
    /// Relative jitter applied to every TTL, 0.0–0.5 (default 0.1 = ±10 %).
    pub jitter: Option<f64>,
    /// Stale-if-error grace in seconds: how long past its expiry a user's last value may
    /// be served while the repository fails (default 300; 0 turns it off).
    #[serde(alias = "staleGrace", alias = "stale_if_error")]
    pub stale_grace: Option<u64>,
    /// Refresh-ahead window, a fraction 0.0–0.5 of the TTL (default 0.1; 0 turns it off).
    #[serde(alias = "refreshAhead")]
    pub refresh_ahead: Option<f64>,
}

impl TtlSettings {
    /// `ttls` with every setting that is present replacing the corresponding value.
    pub fn apply(&self, ttls: Ttls) -> Ttls {
        let secs =
            |value: Option<u64>, default: Duration| value.map_or(default, Duration::from_secs);
        Ttls {
            user: secs(self.user_ttl, ttls.user),
            perms: secs(self.permissions_ttl, ttls.perms),
            token: secs(self.token_ttl, ttls.token),
            negative: secs(self.negative_ttl, ttls.negative),
            l1_cap: secs(self.l1_cap, ttls.l1_cap),
            jitter: self.jitter.unwrap_or(ttls.jitter),
            stale_grace: secs(self.stale_grace, ttls.stale_grace),
            refresh_ahead: self.refresh_ahead.unwrap_or(ttls.refresh_ahead),
        }
    }
}

/// Everything the service needs from configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Key prefix, so several applications can share one Redis (default `authcache`).
    pub prefix: Option<String>,
    /// The L2 cache.
    pub cache: CacheConfig,
    /// The system of record.
    pub repository: RepositoryConfig,
    /// TTLs.
    pub ttls: TtlSettings,
    /// Run the repository watcher on this instance (MongoDB change streams): every write to
    /// the users and roles collections, whoever made it, invalidates the caches of every
    /// instance. One instance per deployment is enough (default `false`).
    pub watch: bool,
}

/// The prefix of environment variables read by [`AuthConfig::from_env`].
pub const ENV_PREFIX: &str = "AUTHCACHE_";

impl AuthConfig {
    /// Parses a TOML document.
    ///
    /// # Errors
    /// [`AuthError::Config`] with the parser's message (it names the offending key).
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| AuthError::Config(e.to_string()))
    }

    /// Reads `AUTHCACHE_*` variables from the process environment.
    ///
    /// # Errors
    /// As [`AuthConfig::from_env_vars`].
    pub fn from_env() -> Result<Self> {
        Self::from_env_vars(std::env::vars())
    }

    /// Reads configuration from `(name, value)` pairs: names start with `AUTHCACHE_` (others
    /// are ignored), `__` separates a section from a field, names are case-insensitive.
    /// Values that read as TOML integers, floats or booleans are taken as such; anything else
    /// is a string, and `[a, b]` a list.
    ///
    /// # Errors
    /// [`AuthError::Config`] naming the variable or field that is wrong.
    pub fn from_env_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let table = env_table(vars)?;
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| AuthError::Config(format!("environment: {e}")))
    }
}

/// Builds a TOML table from `AUTHCACHE_SECTION__FIELD=value` pairs. Kept here rather than
/// pulling in figment (which brings its own older `toml` and a parser-combinator stack) or
/// envy (flat structs only, unmaintained): the mapping is a dozen lines and the result goes
/// through exactly the same serde path, aliases included, as a TOML file.
fn env_table<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Result<toml::Table>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut sections: BTreeMap<Vec<String>, toml::Value> = BTreeMap::new();
    for (name, value) in vars {
        let name = name.as_ref();
        let Some(rest) = strip_prefix_ignore_case(name, ENV_PREFIX) else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(field_name).collect();
        if path.iter().any(String::is_empty) {
            return Err(AuthError::Config(format!(
                "environment variable {name}: empty section"
            )));
        }
        sections.insert(path, env_value(value.as_ref()));
    }
    let mut root = toml::Table::new();
    for (path, value) in sections {
        insert_path(&mut root, &path, value)?;
    }
    Ok(root)
}

fn strip_prefix_ignore_case<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let head = name.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &name[prefix.len()..])
}

/// Env names are upper case by convention; fields are snake case, and the backends' tags
/// (`redis-cluster`) are values, not names, so lowercasing is the whole mapping.
fn field_name(part: &str) -> String {
    part.to_ascii_lowercase()
}

fn env_value(raw: &str) -> toml::Value {
    let parsed = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"));
    match parsed {
        Some(
            value @ (toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_)),
        ) => value,
        Some(value @ toml::Value::Array(_)) => value,
        _ => toml::Value::String(raw.to_owned()),
    }
}

fn insert_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<()> {
    let Some((last, sections)) = path.split_last() else {
        return Ok(());
    };
    let mut current = table;
    for section in sections {
        let entry = current
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(inner) => inner,
            _ => {
                return Err(AuthError::Config(format!(
                    "environment: `{section}` is both a value and a section"
                )));
            }
        };
    }
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_memory_everywhere() {
        let config = AuthConfig::from_toml("").unwrap();
        assert_eq!(config.cache, CacheConfig::memory());
        assert_eq!(config.repository, RepositoryConfig::default());
        assert_eq!(config.ttls, TtlSettings::default());
    }

    #[test]
    fn full_toml_document() {
        let config = AuthConfig::from_toml(
            r#"
            prefix = "myapp"
            [cache]
            backend = "redis"
            url = "redis://127.0.0.1:6379/2"
            timeout_ms = 50
            [repository]
            backend = "mongodb"
            uri = "mongodb://127.0.0.1:27017"
            db = "app"
            [ttls]
            user_ttl = 60
            perms_ttl = 180
            jitter = 0.0
            "#,
        )
        .unwrap();
        assert_eq!(config.prefix.as_deref(), Some("myapp"));
        assert_eq!(
            config.cache,
            CacheConfig::Redis {
                url: "redis://127.0.0.1:6379/2".into(),
                timeout_ms: Some(50)
            }
        );
        assert_eq!(
            config.repository,
            RepositoryConfig::mongodb("mongodb://127.0.0.1:27017", "app")
        );
        assert_eq!(config.ttls.user_ttl, Some(60));
        assert_eq!(config.ttls.permissions_ttl, Some(180));
        assert_eq!(config.ttls.jitter, Some(0.0));
    }

    #[test]
    fn a_removed_or_misspelt_setting_is_refused_by_name() {
        // `roles_ttl` was read by nothing (a user's roles are those of the user record):
        // accepting it silently would let an operator believe it does something.
        for field in ["roles_ttl", "rolesTTL", "user_tll"] {
            let error = AuthConfig::from_toml(&format!("[ttls]\n{field} = 42\n")).unwrap_err();
            assert!(
                matches!(&error, AuthError::Config(message) if message.contains(field)),
                "{field}: {error}"
            );
        }
        let error = AuthConfig::from_env_vars([("AUTHCACHE_TTLS__ROLES_TTL", "42")]).unwrap_err();
        assert!(error.to_string().contains("roles_ttl"), "{error}");
    }

    #[test]
    fn both_ttl_spellings_are_accepted() {
        for field in ["user_ttl", "userTTL", "userTtl"] {
            let config = AuthConfig::from_toml(&format!("[ttls]\n{field} = 42\n")).unwrap();
            assert_eq!(config.ttls.user_ttl, Some(42), "{field}");
        }
    }

    #[test]
    fn settings_override_only_what_they_name() {
        let settings = AuthConfig::from_toml("[ttls]\nuserTTL = 60\njitter = 0.0\n")
            .unwrap()
            .ttls;
        let ttls = settings.apply(Ttls::default());
        assert_eq!(ttls.user, Duration::from_secs(60));
        assert_eq!(ttls.jitter, 0.0);
        assert_eq!(ttls.perms, Ttls::default().perms);
        assert_eq!(ttls.negative, Ttls::default().negative);
    }

    #[test]
    fn the_watcher_is_off_unless_asked_for() {
        assert!(!AuthConfig::default().watch);
        let config = AuthConfig::from_toml("watch = true\n[repository]\nbackend = \"mongodb\"\nuri = \"mongodb://127.0.0.1:27017\"\ndb = \"app\"\n").unwrap();
        assert!(config.watch);
    }

    #[test]
    fn stale_grace_and_refresh_ahead_are_configurable_and_off_with_zero() {
        let ttls = AuthConfig::from_toml("[ttls]\nstaleGrace = 0\nrefresh_ahead = 0.0\n")
            .unwrap()
            .ttls
            .apply(Ttls::default());
        assert!(ttls.stale_grace.is_zero());
        assert!(ttls.refresh_window(ttls.user).is_zero());
        let defaults = TtlSettings::default().apply(Ttls::default());
        assert_eq!(defaults.stale_grace, Duration::from_secs(300));
        assert_eq!(
            defaults.refresh_window(defaults.user),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn cluster_takes_a_list_of_urls() {
        let config = AuthConfig::from_toml(
            "[cache]\nbackend = \"redis-cluster\"\nurls = [\"redis://a:1\", \"redis://b:2\"]\n",
        )
        .unwrap();
        assert_eq!(
            config.cache,
            CacheConfig::redis_cluster(["redis://a:1", "redis://b:2"])
        );
    }

    #[test]
    fn unknown_backends_and_fields_are_rejected_by_name() {
        let error = AuthConfig::from_toml("[cache]\nbackend = \"memcached\"\n").unwrap_err();
        assert!(error.to_string().contains("memcached"), "{error}");
        let error = AuthConfig::from_toml("[ttls]\nuser_tll = 5\n").unwrap_err();
        assert!(error.to_string().contains("user_tll"), "{error}");
        let error = AuthConfig::from_toml("[cache]\nbackend = \"redis\"\n").unwrap_err();
        assert!(error.to_string().contains("url"), "{error}");
    }

    #[test]
    fn environment_variables_map_onto_the_same_fields() {
        let config = AuthConfig::from_env_vars([
            ("AUTHCACHE_PREFIX", "envapp"),
            ("AUTHCACHE_CACHE__BACKEND", "redis"),
            ("AUTHCACHE_CACHE__URL", "redis://127.0.0.1:7000"),
            ("AUTHCACHE_REPOSITORY__BACKEND", "mongodb"),
            ("AUTHCACHE_REPOSITORY__URI", "mongodb://127.0.0.1:27017"),
            ("AUTHCACHE_REPOSITORY__DB", "app"),
            ("authcache_ttls__user_ttl", "77"),
            ("AUTHCACHE_TTLS__JITTER", "0.05"),
            ("PATH", "/usr/bin"),
        ])
        .unwrap();
        assert_eq!(config.prefix.as_deref(), Some("envapp"));
        assert_eq!(config.cache, CacheConfig::redis("redis://127.0.0.1:7000"));
        assert_eq!(
            config.repository,
            RepositoryConfig::mongodb("mongodb://127.0.0.1:27017", "app")
        );
        assert_eq!(config.ttls.user_ttl, Some(77));
        assert_eq!(config.ttls.jitter, Some(0.05));
    }

    #[test]
    fn env_lists_and_the_ttl_spelling() {
        let config = AuthConfig::from_env_vars([
            ("AUTHCACHE_CACHE__BACKEND", "redis-cluster"),
            (
                "AUTHCACHE_CACHE__URLS",
                "[\"redis://a:1\", \"redis://b:2\"]",
            ),
            ("AUTHCACHE_TTLS__USERTTL", "9"),
        ])
        .unwrap();
        assert_eq!(
            config.cache,
            CacheConfig::redis_cluster(["redis://a:1", "redis://b:2"])
        );
        assert_eq!(config.ttls.user_ttl, Some(9));
    }

    #[test]
    fn unknown_env_fields_are_rejected_by_name() {
        let error = AuthConfig::from_env_vars([("AUTHCACHE_TTLS__USER_TLL", "9")]).unwrap_err();
        assert!(error.to_string().contains("user_tll"), "{error}");
    }

    #[test]
    fn a_value_that_is_also_a_section_is_an_error() {
        let error =
            AuthConfig::from_env_vars([("AUTHCACHE_CACHE", "x"), ("AUTHCACHE_CACHE__URL", "y")])
                .unwrap_err();
        assert!(matches!(error, AuthError::Config(_)));
    }

    #[cfg(feature = "memory")]
    #[test]
    fn memory_backend_is_compiled_in() {
        CacheConfig::memory().ensure_compiled().unwrap();
    }

    #[cfg(not(feature = "redis"))]
    #[test]
    fn redis_without_its_feature_names_the_feature() {
        let error = CacheConfig::redis("redis://127.0.0.1")
            .ensure_compiled()
            .unwrap_err();
        assert!(error.to_string().contains("`redis` feature"), "{error}");
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_with_its_feature_is_accepted() {
        CacheConfig::redis("redis://127.0.0.1")
            .ensure_compiled()
            .unwrap();
    }

    #[cfg(not(feature = "redis-cluster"))]
    #[test]
    fn cluster_without_its_feature_names_the_feature() {
        let error = CacheConfig::redis_cluster(["redis://a:1"])
            .ensure_compiled()
            .unwrap_err();
        assert!(
            error.to_string().contains("`redis-cluster` feature"),
            "{error}"
        );
    }

    #[cfg(feature = "redis-cluster")]
    #[test]
    fn cluster_with_its_feature_is_accepted() {
        CacheConfig::redis_cluster(["redis://a:1"])
            .ensure_compiled()
            .unwrap();
    }

    #[cfg(not(feature = "mongodb"))]
    #[test]
    fn mongodb_without_its_feature_names_the_feature() {
        let error = RepositoryConfig::mongodb("mongodb://x", "db")
            .ensure_compiled()
            .unwrap_err();
        assert!(error.to_string().contains("`mongodb` feature"), "{error}");
    }

    #[cfg(feature = "mongodb")]
    #[test]
    fn mongodb_with_its_feature_is_accepted() {
        RepositoryConfig::mongodb("mongodb://x", "db")
            .ensure_compiled()
            .unwrap();
    }
}
