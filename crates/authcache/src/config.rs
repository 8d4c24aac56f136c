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
//! Variables that name no setting are ignored (Kubernetes injects `AUTHCACHE_PORT=tcp://…`
//! for a Service named `authcache`), with a warning when one looks like a misspelt setting.
//!
//! The `[repository]` section is required when a configuration is applied with
//! [`AuthServiceBuilder::config`](crate::AuthServiceBuilder::config) and no repository is
//! given in code: `backend = "memory"` asks for the in-memory one explicitly.

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

/// The in-memory repository, unseeded. A configuration without a `[repository]` section
/// does not fall back to it: [`AuthConfig::repository`] is then `None`.
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
    /// The system of record; `None` when the configuration has no `[repository]` section
    /// (building from such a configuration, with no repository given in code, is an
    /// [`AuthError::Config`] — there is no silent in-memory fallback).
    pub repository: Option<RepositoryConfig>,
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
    /// A variable that names no setting is ignored — logged as a warning when it looks like
    /// a misspelt one (within two edits of a setting, or an unknown field of a known
    /// section). Each value is read as its setting's type: text settings take the value as
    /// it is (`AUTHCACHE_REPOSITORY__DB=2024` is the database `"2024"`), numbers and booleans
    /// must parse as such, and a list is `["a", "b"]` or `a,b`.
    ///
    /// # Errors
    /// [`AuthError::Config`] naming the variable that is wrong.
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

/// The type a setting's value is read as from the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Integer,
    Float,
    Boolean,
    TextList,
}

/// One setting an environment variable can name: its names after `AUTHCACHE_`, lowercased
/// (the field and its aliases), where it goes in the configuration, and its type.
struct EnvSetting {
    names: &'static [&'static str],
    path: &'static [&'static str],
    kind: Kind,
}

const fn setting(
    names: &'static [&'static str],
    path: &'static [&'static str],
    kind: Kind,
) -> EnvSetting {
    EnvSetting { names, path, kind }
}

/// Every setting of [`AuthConfig`], as environment variables name it. A field added to the
/// configuration types is added here too (`every_env_name_reaches_its_field` checks the
/// names that are here).
const ENV_SETTINGS: &[EnvSetting] = &[
    setting(&["prefix"], &["prefix"], Kind::Text),
    setting(&["watch"], &["watch"], Kind::Boolean),
    setting(&["cache__backend"], &["cache", "backend"], Kind::Text),
    setting(&["cache__url"], &["cache", "url"], Kind::Text),
    setting(&["cache__urls"], &["cache", "urls"], Kind::TextList),
    setting(
        &["cache__max_bytes", "cache__maxbytes"],
        &["cache", "max_bytes"],
        Kind::Integer,
    ),
    setting(
        &["cache__timeout_ms", "cache__timeoutms"],
        &["cache", "timeout_ms"],
        Kind::Integer,
    ),
    setting(
        &["repository__backend"],
        &["repository", "backend"],
        Kind::Text,
    ),
    setting(&["repository__uri"], &["repository", "uri"], Kind::Text),
    setting(&["repository__db"], &["repository", "db"], Kind::Text),
    setting(
        &["repository__seed_file", "repository__seedfile"],
        &["repository", "seed_file"],
        Kind::Text,
    ),
    setting(
        &["ttls__user_ttl", "ttls__userttl"],
        &["ttls", "user_ttl"],
        Kind::Integer,
    ),
    setting(
        &[
            "ttls__permissions_ttl",
            "ttls__permissionsttl",
            "ttls__perms_ttl",
            "ttls__permsttl",
        ],
        &["ttls", "permissions_ttl"],
        Kind::Integer,
    ),
    setting(
        &["ttls__token_ttl", "ttls__tokenttl", "ttls__validation_ttl"],
        &["ttls", "token_ttl"],
        Kind::Integer,
    ),
    setting(
        &["ttls__negative_ttl", "ttls__negativettl"],
        &["ttls", "negative_ttl"],
        Kind::Integer,
    ),
    setting(
        &["ttls__l1_cap", "ttls__l1cap"],
        &["ttls", "l1_cap"],
        Kind::Integer,
    ),
    setting(&["ttls__jitter"], &["ttls", "jitter"], Kind::Float),
    setting(
        &[
            "ttls__stale_grace",
            "ttls__stalegrace",
            "ttls__stale_if_error",
        ],
        &["ttls", "stale_grace"],
        Kind::Integer,
    ),
    setting(
        &["ttls__refresh_ahead", "ttls__refreshahead"],
        &["ttls", "refresh_ahead"],
        Kind::Float,
    ),
];

/// The sections of the configuration: a variable naming one without a field is a mistake.
const ENV_SECTIONS: [&str; 3] = ["cache", "repository", "ttls"];

/// Builds a TOML table from `AUTHCACHE_SECTION__FIELD=value` pairs, each value typed as its
/// setting is. Kept here rather than pulling in figment (which brings its own older `toml`
/// and a parser-combinator stack) or envy (flat structs only, unmaintained): the result goes
/// through exactly the same serde path as a TOML file.
fn env_table<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Result<toml::Table>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut found: BTreeMap<&'static [&'static str], (String, toml::Value)> = BTreeMap::new();
    for (name, value) in vars {
        let name = name.as_ref();
        let Some(rest) = strip_prefix_ignore_case(name, ENV_PREFIX) else {
            continue;
        };
        let key = rest.to_ascii_lowercase();
        if ENV_SECTIONS.contains(&key.as_str()) {
            return Err(AuthError::Config(format!(
                "environment variable {name}: `{key}` is a section; name a field of it, \
                 as in {ENV_PREFIX}{}__…",
                key.to_ascii_uppercase()
            )));
        }
        let Some(setting) = ENV_SETTINGS
            .iter()
            .find(|s| s.names.contains(&key.as_str()))
        else {
            warn_if_misspelt(name, &key);
            continue;
        };
        let typed = env_value(name, value.as_ref(), setting.kind)?;
        if let Some((earlier, _)) = found.insert(setting.path, (name.to_owned(), typed)) {
            return Err(AuthError::Config(format!(
                "environment variables {earlier} and {name} set the same setting `{}`; keep one",
                setting.path.join(".")
            )));
        }
    }
    let mut root = toml::Table::new();
    for (path, (_, value)) in found {
        insert_path(&mut root, path, value);
    }
    Ok(root)
}

fn strip_prefix_ignore_case<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let head = name.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &name[prefix.len()..])
}

/// Logs an ignored variable that was probably meant as a setting.
fn warn_if_misspelt(name: &str, key: &str) {
    if let Some(meant) = misspelt_setting(key) {
        tracing::warn!(
            variable = name,
            "environment variable {name} is not an authcache setting and is ignored; \
             did you mean {ENV_PREFIX}{}?",
            meant.to_ascii_uppercase()
        );
    } else if key
        .split_once("__")
        .is_some_and(|(section, _)| ENV_SECTIONS.contains(&section))
    {
        tracing::warn!(
            variable = name,
            "environment variable {name} names no field of its section and is ignored"
        );
    }
}

/// The setting `key` (lowercased, after the prefix) is probably a misspelling of: within two
/// single-character edits of one of its names.
fn misspelt_setting(key: &str) -> Option<&'static str> {
    ENV_SETTINGS
        .iter()
        .flat_map(|s| s.names.iter().copied())
        .map(|known| (edit_distance(key, known), known))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known)
}

/// Levenshtein distance over bytes (the names compared are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// `raw` as a value of `kind`; a number or boolean that does not parse names the variable.
fn env_value(name: &str, raw: &str, kind: Kind) -> Result<toml::Value> {
    let wrong = |what: &str| {
        AuthError::Config(format!(
            "environment variable {name}: `{}` is not {what}",
            raw.escape_default()
        ))
    };
    let trimmed = raw.trim();
    Ok(match kind {
        Kind::Text => toml::Value::String(raw.to_owned()),
        Kind::Integer => {
            toml::Value::Integer(trimmed.parse().map_err(|_| wrong("a whole number"))?)
        }
        Kind::Float => toml::Value::Float(trimmed.parse().map_err(|_| wrong("a number"))?),
        Kind::Boolean => match trimmed.to_ascii_lowercase().as_str() {
            "true" => toml::Value::Boolean(true),
            "false" => toml::Value::Boolean(false),
            _ => return Err(wrong("`true` or `false`")),
        },
        Kind::TextList if trimmed.starts_with('[') => format!("v = {trimmed}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut table| table.remove("v"))
            .filter(|list| {
                list.as_array()
                    .is_some_and(|items| items.iter().all(toml::Value::is_str))
            })
            .ok_or_else(|| wrong("a list of quoted strings"))?,
        Kind::TextList => toml::Value::Array(
            trimmed
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| toml::Value::String(item.to_owned()))
                .collect(),
        ),
    })
}

/// Every path comes from [`ENV_SETTINGS`], where a section is never also a value.
fn insert_path(table: &mut toml::Table, path: &[&str], value: toml::Value) {
    match path {
        [] => {}
        [field] => {
            table.insert((*field).to_owned(), value);
        }
        [section, rest @ ..] => {
            let entry = table
                .entry((*section).to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_memory_everywhere() {
        let config = AuthConfig::from_toml("").unwrap();
        assert_eq!(config.cache, CacheConfig::memory());
        assert_eq!(
            config.repository, None,
            "no [repository]: absent, not in-memory"
        );
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
            Some(RepositoryConfig::mongodb(
                "mongodb://127.0.0.1:27017",
                "app"
            ))
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
        // In the environment, a name that is no setting is ignored (and logged).
        let config = AuthConfig::from_env_vars([("AUTHCACHE_TTLS__ROLES_TTL", "42")]).unwrap();
        assert_eq!(config, AuthConfig::default());
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
            Some(RepositoryConfig::mongodb(
                "mongodb://127.0.0.1:27017",
                "app"
            ))
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
    fn unknown_env_variables_are_ignored() {
        // What Kubernetes injects for a Service named `authcache`.
        let config = AuthConfig::from_env_vars([
            ("AUTHCACHE_PORT", "tcp://10.0.0.1:80"),
            ("AUTHCACHE_PORT_80_TCP_ADDR", "10.0.0.1"),
            ("AUTHCACHE_SERVICE_HOST", "10.0.0.1"),
            ("AUTHCACHE_SERVICE_PORT", "80"),
            ("AUTHCACHE_TTLS__USER_TLL", "9"),
            ("AUTHCACHE_PREFIX", "k8s"),
        ])
        .unwrap();
        assert_eq!(config.prefix.as_deref(), Some("k8s"));
        assert_eq!(config.ttls, TtlSettings::default());
    }

    #[test]
    fn a_misspelt_env_setting_is_recognised_for_the_warning() {
        assert_eq!(misspelt_setting("ttls__user_tll"), Some("ttls__user_ttl"));
        assert_eq!(misspelt_setting("prefx"), Some("prefix"));
        assert_eq!(misspelt_setting("cache__ur"), Some("cache__url"));
        for injected in ["port", "port_80_tcp_addr", "service_host", "service_port"] {
            assert_eq!(misspelt_setting(injected), None, "{injected}");
        }
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn env_text_settings_keep_values_that_look_like_numbers() {
        let config = AuthConfig::from_env_vars([
            ("AUTHCACHE_REPOSITORY__BACKEND", "mongodb"),
            ("AUTHCACHE_REPOSITORY__URI", "mongodb://127.0.0.1:27017"),
            ("AUTHCACHE_REPOSITORY__DB", "2024"),
            ("AUTHCACHE_PREFIX", "true"),
        ])
        .unwrap();
        assert_eq!(
            config.repository,
            Some(RepositoryConfig::mongodb(
                "mongodb://127.0.0.1:27017",
                "2024"
            ))
        );
        assert_eq!(config.prefix.as_deref(), Some("true"));
    }

    #[test]
    fn env_numbers_and_booleans_must_parse_and_name_the_variable() {
        for (name, value) in [
            ("AUTHCACHE_TTLS__USER_TTL", "soon"),
            ("AUTHCACHE_TTLS__JITTER", "a bit"),
            ("AUTHCACHE_WATCH", "yes"),
            ("AUTHCACHE_CACHE__URLS", "[1, 2]"),
        ] {
            let error = AuthConfig::from_env_vars([(name, value)]).unwrap_err();
            assert!(
                matches!(&error, AuthError::Config(message) if message.contains(name)),
                "{name}: {error}"
            );
        }
        let config = AuthConfig::from_env_vars([("AUTHCACHE_WATCH", "TRUE")]).unwrap();
        assert!(config.watch);
    }

    #[test]
    fn env_lists_may_be_comma_separated() {
        let config = AuthConfig::from_env_vars([
            ("AUTHCACHE_CACHE__BACKEND", "redis-cluster"),
            ("AUTHCACHE_CACHE__URLS", "redis://a:1, redis://b:2"),
        ])
        .unwrap();
        assert_eq!(
            config.cache,
            CacheConfig::redis_cluster(["redis://a:1", "redis://b:2"])
        );
    }

    #[test]
    fn two_env_names_for_one_setting_are_an_error() {
        let error = AuthConfig::from_env_vars([
            ("AUTHCACHE_TTLS__USER_TTL", "1"),
            ("AUTHCACHE_TTLS__USERTTL", "2"),
        ])
        .unwrap_err();
        assert!(error.to_string().contains("user_ttl"), "{error}");
    }

    #[test]
    fn every_env_name_reaches_its_field() {
        for setting in ENV_SETTINGS {
            for name in setting.names {
                let value = match setting.kind {
                    Kind::Text if setting.path.ends_with(&["backend"]) => "memory",
                    Kind::Text => "text",
                    Kind::Integer => "7",
                    Kind::Float => "0.25",
                    Kind::Boolean => "true",
                    Kind::TextList => "a,b",
                };
                // The rest of a valid section around the setting under test.
                let section: &[(&str, &str)] = match setting.path {
                    ["cache", "max_bytes"] => &[("cache__backend", "memory")],
                    ["cache", "url" | "timeout_ms"] => {
                        &[("cache__backend", "redis"), ("cache__url", "redis://x")]
                    }
                    ["cache", "urls"] => &[("cache__backend", "redis-cluster")],
                    ["repository", "uri" | "db"] => &[
                        ("repository__backend", "mongodb"),
                        ("repository__uri", "mongodb://x"),
                        ("repository__db", "app"),
                    ],
                    ["repository", "seed_file"] => &[("repository__backend", "memory")],
                    _ => &[],
                };
                let mut vars = vec![(format!("AUTHCACHE_{name}"), value.to_owned())];
                vars.extend(
                    section
                        .iter()
                        .filter(|(other, _)| !setting.names.contains(other))
                        .map(|(other, value)| (format!("AUTHCACHE_{other}"), (*value).to_owned())),
                );
                let config = AuthConfig::from_env_vars(vars);
                assert!(config.is_ok(), "{name}: {config:?}");
            }
        }
    }

    #[test]
    fn a_repository_section_is_present_only_when_written() {
        let config = AuthConfig::from_toml("[repository]\nbackend = \"memory\"\n").unwrap();
        assert_eq!(config.repository, Some(RepositoryConfig::default()));
        let config =
            AuthConfig::from_env_vars([("AUTHCACHE_REPOSITORY__BACKEND", "memory")]).unwrap();
        assert_eq!(config.repository, Some(RepositoryConfig::default()));
        assert_eq!(
            AuthConfig::from_env_vars([("A", "b")]).unwrap().repository,
            None
        );
    }

    #[test]
    fn a_mongodb_uri_without_scheme_or_host_is_refused_before_connecting() {
        for uri in [
            "mongo://",
            "mongodb://",
            "127.0.0.1:27017",
            "mongodb://a,/db",
            "mongodb://u:p@/db",
        ] {
            let error = RepositoryConfig::mongodb(uri, "app")
                .check_syntax()
                .unwrap_err();
            assert!(matches!(error, AuthError::Config(_)), "{uri}: {error}");
        }
        for uri in [
            "mongodb://127.0.0.1:27017",
            "mongodb://u:p@a:1,b:2/app?replicaSet=rs",
            "mongodb+srv://cluster.example.com",
        ] {
            RepositoryConfig::mongodb(uri, "app")
                .check_syntax()
                .unwrap();
        }
        RepositoryConfig::default().check_syntax().unwrap();
    }

    #[test]
    fn the_cache_timeout_is_read_in_milliseconds() {
        let config = AuthConfig::from_toml(
            "[cache]\nbackend = \"redis\"\nurl = \"redis://x\"\ntimeout_ms = 0\n",
        )
        .unwrap();
        assert_eq!(config.cache.timeout(), Some(Duration::ZERO));
        assert_eq!(CacheConfig::memory().timeout(), None);
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
