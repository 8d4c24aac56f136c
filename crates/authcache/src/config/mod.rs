//! Configuration read from TOML or environment variables: [`AuthConfig`] and its sections.
//! The documentation users read (the full example, the environment mapping) is on
//! [`AuthConfig`], since this module is private.
//!
//! - `backends.rs` — `[cache]` and `[repository]`: which backend, where, and the URL
//!   redaction of their `Debug`;
//! - `mongodb.rs` — the MongoDB settings of `[repository]`: `_id` kind, collection and
//!   field names (`[repository.fields]`);
//! - `verifier.rs` — `[verifier]`: the key source, claims and limits, built into a
//!   `JwtVerifier`;
//! - `signing.rs` — `[signing]`: the L2 entry signing keys;
//! - `secrets.rs` — how a secret is named (an environment variable or a file, never
//!   inline) and read;
//! - `tuning.rs` — `[ttls]`, `[breaker]` and the top-level `revocation_check`;
//! - `env.rs` — `AUTHCACHE_SECTION__FIELD` variables onto the same fields.

mod backends;
mod env;
mod mongodb;
mod secrets;
mod signing;
#[cfg(test)]
mod tests;
mod tuning;
mod verifier;

use serde::Deserialize;

pub use backends::{CacheConfig, RepositoryConfig};
pub use mongodb::{MongoFieldNames, MongoIdKind};
pub use signing::SigningConfig;
pub use tuning::{BreakerSettings, RevocationCheck, TtlSettings};
pub use verifier::VerifierConfig;

pub(crate) use signing::SigningKeys;

use crate::{AuthError, Result};

/// Everything the service needs from configuration, read from TOML
/// ([`AuthConfig::from_toml`]) or `AUTHCACHE_*` environment variables
/// ([`AuthConfig::from_env`]) and applied by
/// [`AuthServiceBuilder::config`](crate::AuthServiceBuilder::config).
///
/// Every setting is optional and falls back to the library default, except that a service
/// needs a verifier and a repository: give them here (`[verifier]`, `[repository]`) or in
/// code. Every section refuses fields it does not know, so a misspelt setting is an error
/// naming it rather than a silent default. Names are `snake_case`; the `camelCase`
/// spellings (`userTTL`, `timeoutMs`, `secretEnv`, …) are accepted too.
///
/// Every backend is a variant whatever features are compiled in, so a configuration file
/// always parses; a backend whose feature is off (`redis`, `redis-cluster`, `mongodb`,
/// `jwks` for `jwks_url` and `oidc_issuer`) fails when the service is built, with an
/// [`AuthError::Config`] naming the feature to enable.
///
/// # Secrets are references
/// The token secret, public key and cache signing keys are never written in the
/// configuration: it names the environment variable (`secret_env`, `key_env`) or the file
/// (`secret_file`, `key_file`, a mounted Kubernetes or Docker secret) that holds them.
/// Configuration files are committed, copied into images, printed in logs and attached to
/// tickets; a reference leaks nothing there. An inline `secret = "…"` or `key = "…"` is
/// refused with a message naming the references (and never echoing the value). A file's
/// trailing line break is not part of the secret. A variable or file that is missing or
/// empty is an [`AuthError::Config`] at build naming it — never its content. The
/// configuration types hold only the references, so their `Debug` shows no secret; the
/// credentials of a Redis URL or MongoDB URI are shown as `***`.
///
/// # Example
/// Every setting, each at its default unless it has none (in a doctest that parses it, so
/// it cannot go stale):
///
/// ```
/// use authcache::{AuthConfig, RevocationCheck};
///
/// let config = AuthConfig::from_toml(r#"
/// prefix = "myapp"                     # key prefix in the shared cache (default "authcache")
/// watch = false                        # follow MongoDB change streams on this instance
/// revocation_check = "fail-open"       # or "fail-closed": refuse (503) when Redis cannot tell
/// l1_capacity = 50000                  # entries per in-process tier
/// validation_cache = true              # remember verified tokens, in this process only
///
/// [verifier]                           # exactly one key source:
/// secret_env = "MYAPP_JWT_SECRET"      # secret_env | secret_file (HMAC, at least 32 bytes),
///                                      ## public_key_env | public_key_file (PEM),
///                                      ## jwks_url | oidc_issuer (feature `jwks`)
/// algorithm = "HS256"                  # HS256/384/512; RS256/384/512, PS256, ES256/384, EdDSA
/// issuer = "https://id.example.com"    # accepted `iss`: one or a list
/// audience = ["api"]                   # accepted `aud`: one or a list
/// leeway_secs = 30                     # clock skew allowed on exp/nbf/iat, at most 3600
/// max_token_size = 8192                # bytes, without `Bearer `
/// max_token_lifetime_secs = 86400      # longest exp − iat accepted; iat then required
///
/// [signing]                            # HMAC key of shared-cache entries
/// key_file = "/run/secrets/authcache-signing-key"  # or key_env
/// previous_key_envs = []               # keys being rotated out: verify, never sign
/// previous_key_files = []
/// allow_unsigned = false               # only for a Redis nothing else can write to
///
/// [cache]
/// backend = "redis"                    # memory | redis | redis-cluster
/// url = "redis://127.0.0.1:6379"       # redis-cluster: urls = ["redis://a:7000", …]
/// timeout_ms = 100                     # per call; replaces [breaker] timeout_ms
///
/// [repository]
/// backend = "mongodb"                  # memory (seed_file = "users.json") | mongodb
/// uri = "mongodb://127.0.0.1:27017"
/// db = "app"
/// timeout_ms = 5000                    # bound on one repository call (0: none)
/// id_kind = "auto"                     # auto | object-id | string
/// users_collection = "users"
/// roles_collection = "roles"
/// create_indexes = true                # the unique index on the email field
///
/// [repository.fields]                  # stored names of the record's fields
/// email = "email"
/// name = "name"
/// roles = "roles"
/// disabled = "disabled"
/// updated_at = "updated_at"
/// permissions = "permissions"          # of a role document
///
/// [ttls]                               # seconds
/// user_ttl = 300
/// permissions_ttl = 900
/// token_ttl = 120
/// negative_ttl = 30
/// l1_cap = 30
/// jitter = 0.1
/// stale_grace = 300
/// refresh_ahead = 0.1
///
/// [breaker]                            # around the shared cache
/// timeout_ms = 100
/// failure_threshold = 5
/// base_cooldown_ms = 250
/// max_cooldown_ms = 30000
/// "#)?;
/// assert_eq!(config.revocation_check, Some(RevocationCheck::FailOpen));
/// assert_eq!(config.verifier.unwrap().secret_env.as_deref(), Some("MYAPP_JWT_SECRET"));
/// # Ok::<(), authcache::AuthError>(())
/// ```
///
/// # Environment variables
/// `AUTHCACHE_` + the path of the setting in upper case, `__` between levels:
/// `AUTHCACHE_PREFIX=myapp`, `AUTHCACHE_CACHE__URL=redis://…`,
/// `AUTHCACHE_REPOSITORY__FIELDS__EMAIL=mail`. Names are case-insensitive, and the
/// `camelCase` spellings work too (`AUTHCACHE_TTLS__USERTTL`). Text settings take the value
/// as it is, numbers and booleans (`true`/`false`) must parse, and a list is `a,b` or
/// `["a", "b"]`. Variables that name no setting are ignored (Kubernetes injects
/// `AUTHCACHE_PORT=tcp://…` for a Service named `authcache`), with a warning when one looks
/// like a misspelt setting.
///
/// | variable | setting | value |
/// |---|---|---|
/// | `AUTHCACHE_PREFIX` | `prefix` | text |
/// | `AUTHCACHE_WATCH` | `watch` | boolean |
/// | `AUTHCACHE_REVOCATION_CHECK` | `revocation_check` | `fail-open` or `fail-closed` |
/// | `AUTHCACHE_L1_CAPACITY` | `l1_capacity` | integer |
/// | `AUTHCACHE_VALIDATION_CACHE` | `validation_cache` | boolean |
/// | `AUTHCACHE_VERIFIER__ALGORITHM` | `verifier.algorithm` | `HS256`, `RS256`, … |
/// | `AUTHCACHE_VERIFIER__SECRET_ENV` | `verifier.secret_env` | variable name |
/// | `AUTHCACHE_VERIFIER__SECRET_FILE` | `verifier.secret_file` | path |
/// | `AUTHCACHE_VERIFIER__PUBLIC_KEY_ENV` | `verifier.public_key_env` | variable name |
/// | `AUTHCACHE_VERIFIER__PUBLIC_KEY_FILE` | `verifier.public_key_file` | path |
/// | `AUTHCACHE_VERIFIER__JWKS_URL` | `verifier.jwks_url` | URL |
/// | `AUTHCACHE_VERIFIER__OIDC_ISSUER` | `verifier.oidc_issuer` | URL |
/// | `AUTHCACHE_VERIFIER__ISSUER` | `verifier.issuer` | list |
/// | `AUTHCACHE_VERIFIER__AUDIENCE` | `verifier.audience` | list |
/// | `AUTHCACHE_VERIFIER__LEEWAY_SECS` | `verifier.leeway_secs` | integer |
/// | `AUTHCACHE_VERIFIER__MAX_TOKEN_SIZE` | `verifier.max_token_size` | integer |
/// | `AUTHCACHE_VERIFIER__MAX_TOKEN_LIFETIME_SECS` | `verifier.max_token_lifetime_secs` | integer |
/// | `AUTHCACHE_SIGNING__KEY_ENV` | `signing.key_env` | variable name |
/// | `AUTHCACHE_SIGNING__KEY_FILE` | `signing.key_file` | path |
/// | `AUTHCACHE_SIGNING__PREVIOUS_KEY_ENVS` | `signing.previous_key_envs` | list |
/// | `AUTHCACHE_SIGNING__PREVIOUS_KEY_FILES` | `signing.previous_key_files` | list |
/// | `AUTHCACHE_SIGNING__ALLOW_UNSIGNED` | `signing.allow_unsigned` | boolean |
/// | `AUTHCACHE_CACHE__BACKEND` | `cache.backend` | `memory`, `redis`, `redis-cluster` |
/// | `AUTHCACHE_CACHE__URL` | `cache.url` | URL |
/// | `AUTHCACHE_CACHE__URLS` | `cache.urls` | list |
/// | `AUTHCACHE_CACHE__MAX_BYTES` | `cache.max_bytes` | integer |
/// | `AUTHCACHE_CACHE__TIMEOUT_MS` | `cache.timeout_ms` | integer |
/// | `AUTHCACHE_REPOSITORY__BACKEND` | `repository.backend` | `memory`, `mongodb` |
/// | `AUTHCACHE_REPOSITORY__SEED_FILE` | `repository.seed_file` | path |
/// | `AUTHCACHE_REPOSITORY__URI` | `repository.uri` | URI |
/// | `AUTHCACHE_REPOSITORY__DB` | `repository.db` | text |
/// | `AUTHCACHE_REPOSITORY__TIMEOUT_MS` | `repository.timeout_ms` | integer |
/// | `AUTHCACHE_REPOSITORY__ID_KIND` | `repository.id_kind` | `auto`, `object-id`, `string` |
/// | `AUTHCACHE_REPOSITORY__USERS_COLLECTION` | `repository.users_collection` | text |
/// | `AUTHCACHE_REPOSITORY__ROLES_COLLECTION` | `repository.roles_collection` | text |
/// | `AUTHCACHE_REPOSITORY__CREATE_INDEXES` | `repository.create_indexes` | boolean |
/// | `AUTHCACHE_REPOSITORY__FIELDS__EMAIL` | `repository.fields.email` | text |
/// | `AUTHCACHE_REPOSITORY__FIELDS__NAME` | `repository.fields.name` | text |
/// | `AUTHCACHE_REPOSITORY__FIELDS__ROLES` | `repository.fields.roles` | text |
/// | `AUTHCACHE_REPOSITORY__FIELDS__DISABLED` | `repository.fields.disabled` | text |
/// | `AUTHCACHE_REPOSITORY__FIELDS__UPDATED_AT` | `repository.fields.updated_at` | text |
/// | `AUTHCACHE_REPOSITORY__FIELDS__PERMISSIONS` | `repository.fields.permissions` | text |
/// | `AUTHCACHE_TTLS__USER_TTL` | `ttls.user_ttl` | integer |
/// | `AUTHCACHE_TTLS__PERMISSIONS_TTL` | `ttls.permissions_ttl` | integer |
/// | `AUTHCACHE_TTLS__TOKEN_TTL` | `ttls.token_ttl` | integer |
/// | `AUTHCACHE_TTLS__NEGATIVE_TTL` | `ttls.negative_ttl` | integer |
/// | `AUTHCACHE_TTLS__L1_CAP` | `ttls.l1_cap` | integer |
/// | `AUTHCACHE_TTLS__JITTER` | `ttls.jitter` | number |
/// | `AUTHCACHE_TTLS__STALE_GRACE` | `ttls.stale_grace` | integer |
/// | `AUTHCACHE_TTLS__REFRESH_AHEAD` | `ttls.refresh_ahead` | number |
/// | `AUTHCACHE_BREAKER__TIMEOUT_MS` | `breaker.timeout_ms` | integer |
/// | `AUTHCACHE_BREAKER__FAILURE_THRESHOLD` | `breaker.failure_threshold` | integer |
/// | `AUTHCACHE_BREAKER__BASE_COOLDOWN_MS` | `breaker.base_cooldown_ms` | integer |
/// | `AUTHCACHE_BREAKER__MAX_COOLDOWN_MS` | `breaker.max_cooldown_ms` | integer |
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
    /// How tokens are verified; `None` without a `[verifier]` section (the verifier is then
    /// given in code with [`AuthServiceBuilder::verifier`](crate::AuthServiceBuilder::verifier)).
    pub verifier: Option<VerifierConfig>,
    /// The signing keys of shared-cache entries; `None` without a `[signing]` section.
    pub signing: Option<SigningConfig>,
    /// TTLs.
    pub ttls: TtlSettings,
    /// The circuit breaker around the shared cache.
    pub breaker: BreakerSettings,
    /// Run the repository watcher on this instance (MongoDB change streams): every write to
    /// the users and roles collections, whoever made it, invalidates the caches of every
    /// instance. One instance per deployment is enough (default `false`).
    pub watch: bool,
    /// What a request gets when the shared cache cannot say whether its token was revoked
    /// (`"fail-open"`, the default, or `"fail-closed"`; see [`RevocationCheck`]).
    #[serde(
        alias = "revocationCheck",
        deserialize_with = "tuning::revocation_check"
    )]
    pub revocation_check: Option<RevocationCheck>,
    /// Most entries per in-process tier (default
    /// [`DEFAULT_L1_CAPACITY`](crate::DEFAULT_L1_CAPACITY)).
    #[serde(alias = "l1Capacity")]
    pub l1_capacity: Option<u64>,
    /// Whether this process remembers the tokens it verified (default `true`; see
    /// [`AuthServiceBuilder::validation_cache`](crate::AuthServiceBuilder::validation_cache)).
    #[serde(alias = "validationCache")]
    pub validation_cache: Option<bool>,
}

/// The prefix of environment variables read by [`AuthConfig::from_env`].
pub const ENV_PREFIX: &str = "AUTHCACHE_";

impl AuthConfig {
    /// Parses a TOML document.
    ///
    /// # Errors
    /// [`AuthError::Config`] with the parser's message and where it is (it names the
    /// offending key). The offending line is not quoted: it may hold a secret written where
    /// a reference belongs.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|error: toml::de::Error| {
            let place = error.span().map(|span| {
                let before = text.get(..span.start).unwrap_or_default();
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |at| at + 1) + 1;
                format!("line {line}, column {column}: ")
            });
            AuthError::Config(format!(
                "{}{}",
                place.unwrap_or_default(),
                error.message().trim_end()
            ))
        })
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
        let table = env::env_table(vars)?;
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| AuthError::Config(format!("environment: {e}")))
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
