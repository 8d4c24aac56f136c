//! [`AuthServiceBuilder`]: assembles an [`AuthService`] from a verifier, a repository, a
//! cache and TTLs — given directly or read from configuration.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use authcache_core::{
    BreakerConfig, Cache, EnvelopeCodec, GuardedCache, InvalidationPublisher, KeyKind, Keyspace,
    ReloadFuture, SigningKey, Tiered, TieredBuilder, Ttls,
};
use authcache_jwt::{JwtVerifier, MAX_LEEWAY};
use authcache_memory::MemoryL1;
use authcache_users::{ChangeFeed, MemoryUserRepository, User, UserRecord, UserRepository};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::Backend;
use crate::cache_id::name_of;
use crate::config::{
    AuthConfig, CacheConfig, RepositoryConfig, RevocationCheck, SigningConfig, SigningKeys,
    TtlSettings, VerifierConfig,
};
use crate::service::{AuthService, Inner};
use crate::state::{MarkTables, State};
use crate::stats::Counters;
use crate::tokens::Marks;
use crate::watcher::{Checkpoints, WatchSource};
use crate::{AuthError, Result};

/// 50,000 entries per in-process tier: enough for the active users of a large service;
/// the L1 evicts the least useful beyond it (S3-FIFO).
pub const DEFAULT_L1_CAPACITY: u64 = 50_000;

/// 24 h: how long a `logout_all` cutoff is kept — the longest token lifetime accepted by
/// most identity providers' defaults. Set it to your longest `exp − iat`.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The longest breaker timeout or cool-down accepted: beyond, it is a configuration
/// mistake, and a request would wait it out.
const MAX_BREAKER_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Builds an [`AuthService`]. Required: a [`verifier`](Self::verifier) and a repository
/// ([`repository`](Self::repository) or [`repository_config`](Self::repository_config)).
/// Everything else has a default: the in-process cache, [`Ttls::default`], the prefix
/// `authcache`, unsigned cache entries, the validation cache on.
pub struct AuthServiceBuilder<U: UserRecord = User> {
    verifier: Option<JwtVerifier>,
    repository: Option<Arc<dyn UserRepository<U>>>,
    repository_config: Option<RepositoryConfig>,
    /// Where `repository_config` came from, for the error that finds two repositories.
    repository_config_origin: &'static str,
    /// A configuration without a `[repository]` section was applied: unless a repository is
    /// given otherwise, `build` says to add one rather than fall back to an empty memory one.
    config_without_repository: bool,
    cache: CacheConfig,
    l2: Option<Arc<dyn Cache>>,
    publisher: Option<Arc<dyn InvalidationPublisher>>,
    ttls: Ttls,
    signing_key: Option<Vec<u8>>,
    prefix: Option<String>,
    breaker: BreakerConfig,
    l1_capacity: u64,
    validation_cache: bool,
    max_token_size: Option<usize>,
    leeway: Option<Duration>,
    unsigned_l2: bool,
    previous_signing_keys: Vec<Vec<u8>>,
    revocation_check: RevocationCheck,
    load_timeout: Duration,
    /// `None`: the default breaker with `load_timeout` as its timeout.
    repository_breaker: Option<BreakerConfig>,
    max_token_lifetime: Duration,
    watch: Option<WatchSource>,
    /// The `[verifier]` of an applied configuration, built at `build` (a remote key set is
    /// fetched then).
    verifier_config: Option<VerifierConfig>,
    /// The first error met applying a configuration (a signing key whose variable or file
    /// is missing): `config` cannot fail, so `build` returns it first.
    config_error: Option<AuthError>,
    /// Unit tests only: the permissions tier's L1, to hold a fill at an exact point.
    #[cfg(test)]
    pub(crate) perms_l1: Option<Arc<dyn authcache_core::L1Cache<Vec<String>>>>,
}

impl AuthService<User> {
    /// Starts building a service for the default [`User`] record; for your own record type
    /// use [`AuthServiceBuilder::new`] (`AuthServiceBuilder::<MyUser>::new()`).
    pub fn builder() -> AuthServiceBuilder<User> {
        AuthServiceBuilder::new()
    }
}

impl<U: UserRecord> Default for AuthServiceBuilder<U> {
    fn default() -> Self {
        Self::new()
    }
}

impl<U: UserRecord> std::fmt::Debug for AuthServiceBuilder<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServiceBuilder")
            .field("cache", &self.cache)
            .field("repository_config", &self.repository_config)
            .field("ttls", &self.ttls)
            .field("signed", &self.signing_key.is_some())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl<U: UserRecord> AuthServiceBuilder<U> {
    /// A builder with every default and no verifier or repository yet.
    pub fn new() -> Self {
        Self {
            verifier: None,
            repository: None,
            repository_config: None,
            repository_config_origin: REPOSITORY_CONFIG_IN_CODE,
            config_without_repository: false,
            cache: CacheConfig::default(),
            l2: None,
            publisher: None,
            ttls: Ttls::default(),
            signing_key: None,
            prefix: None,
            breaker: BreakerConfig::default(),
            l1_capacity: DEFAULT_L1_CAPACITY,
            validation_cache: true,
            max_token_size: None,
            leeway: None,
            unsigned_l2: false,
            previous_signing_keys: Vec::new(),
            revocation_check: RevocationCheck::default(),
            load_timeout: authcache_core::tiered::DEFAULT_LOAD_TIMEOUT,
            repository_breaker: None,
            max_token_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
            watch: None,
            verifier_config: None,
            config_error: None,
            #[cfg(test)]
            perms_l1: None,
        }
    }

    /// How tokens are verified (algorithms, keys, issuer, audience).
    pub fn verifier(mut self, verifier: JwtVerifier) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// The system of record.
    pub fn repository(mut self, repository: impl UserRepository<U> + 'static) -> Self {
        self.repository = Some(Arc::new(repository));
        self
    }

    /// The system of record, already shared (for instance with the code that writes users).
    pub fn shared_repository(mut self, repository: Arc<dyn UserRepository<U>>) -> Self {
        self.repository = Some(repository);
        self
    }

    /// The system of record, connected at [`build`](Self::build) from configuration.
    pub fn repository_config(mut self, config: RepositoryConfig) -> Self {
        self.repository_config = Some(config);
        self.repository_config_origin = REPOSITORY_CONFIG_IN_CODE;
        self
    }

    /// The shared cache (L2), connected at [`build`](Self::build).
    pub fn cache(mut self, config: CacheConfig) -> Self {
        self.cache = config;
        self
    }

    /// A ready L2 of your own instead of [`cache`](Self::cache) (any [`Cache`]). No bus is
    /// subscribed for it; pair it with [`publisher`](Self::publisher) to announce writes.
    pub fn l2(mut self, l2: Arc<dyn Cache>) -> Self {
        self.l2 = Some(l2);
        self
    }

    /// Where writes announce invalidated keys, with an explicit [`l2`](Self::l2).
    pub fn publisher(mut self, publisher: Arc<dyn InvalidationPublisher>) -> Self {
        self.publisher = Some(publisher);
        self
    }

    /// TTLs of every kind of entry.
    pub fn ttls(mut self, ttls: Ttls) -> Self {
        self.ttls = ttls;
        self
    }

    /// HMAC-SHA256 key that signs every L2 entry, bound to the key it is stored under;
    /// entries without a valid tag are misses. **Required** with a shared L2 (Redis,
    /// Redis Cluster, or your own [`l2`](Self::l2)), unless
    /// [`allow_unsigned_l2`](Self::allow_unsigned_l2) says otherwise. At least 16 bytes;
    /// share the same key between every instance.
    pub fn signing_key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.signing_key = Some(key.as_ref().to_vec());
        self
    }

    /// Signing keys being rotated out: they still verify entries, but never sign. Rotate
    /// by deploying the new key as [`signing_key`](Self::signing_key) with the old one
    /// here, then dropping the old one once the longest TTL has passed.
    pub fn previous_signing_keys<K: AsRef<[u8]>>(
        mut self,
        keys: impl IntoIterator<Item = K>,
    ) -> Self {
        self.previous_signing_keys = keys.into_iter().map(|k| k.as_ref().to_vec()).collect();
        self
    }

    /// Accepts a shared L2 without a signing key. Only for a Redis that nothing but this
    /// service can write to: without a key, whoever can write to it can make any user
    /// anything (see SECURITY.md).
    pub fn allow_unsigned_l2(mut self) -> Self {
        self.unsigned_l2 = true;
        self
    }

    /// What happens when the shared cache cannot say whether a token was revoked
    /// (default [`RevocationCheck::FailOpen`]).
    pub fn revocation_check(mut self, check: RevocationCheck) -> Self {
        self.revocation_check = check;
        self
    }

    /// Bound on one repository call made for a cache miss (default 5 s): past it, every
    /// request waiting on that load gets [`AuthError::Unavailable`]. Zero: no bound.
    pub fn repository_timeout(mut self, timeout: Duration) -> Self {
        self.load_timeout = timeout;
        self
    }

    /// The longest lifetime (`exp − iat`) of the tokens you accept (default
    /// [`DEFAULT_MAX_TOKEN_LIFETIME`]): how long a [`AuthService::logout_all`] or
    /// [`AuthService::revoke_issued_before`] cutoff is kept. The verifier enforces it:
    /// a token that lives longer, or has no `iat`, or an `iat` in the future beyond the
    /// leeway, is refused ([`TokenError::LifetimeTooLong`](authcache_jwt::TokenError::LifetimeTooLong),
    /// [`TokenError::MissingClaim`](authcache_jwt::TokenError::MissingClaim)) — otherwise it
    /// would be valid again once the cutoff that refused it is forgotten. At most one year.
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_token_lifetime = lifetime;
        self
    }

    /// Key prefix, so that several applications can share one Redis (default `authcache`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Timeout, failure threshold and cool-down of the L2 circuit breaker.
    pub fn breaker(mut self, breaker: BreakerConfig) -> Self {
        self.breaker = breaker;
        self
    }

    /// Failure threshold, cool-downs and timeout of the repository's circuit breaker
    /// (default: [`BreakerConfig::default`]'s threshold and cool-downs, with the
    /// [`repository_timeout`](Self::repository_timeout) as its timeout). After that many
    /// consecutive failures (unavailable, timing out), repository calls fail at once with
    /// [`AuthError::Unavailable`] for the cool-down, expired values are served within
    /// their grace meanwhile, and then one call probes. Its timeout is capped by the
    /// repository timeout, which bounds the same calls. Its state is
    /// [`Stats::repository_breaker`](crate::Stats::repository_breaker).
    pub fn repository_breaker(mut self, breaker: BreakerConfig) -> Self {
        self.repository_breaker = Some(breaker);
        self
    }

    /// Most entries per in-process tier (default [`DEFAULT_L1_CAPACITY`]).
    pub fn l1_capacity(mut self, entries: u64) -> Self {
        self.l1_capacity = entries;
        self
    }

    /// Whether this process remembers tokens it verified (by fingerprint, never beyond
    /// `exp`), so a repeat token skips signature verification (default on). See the crate
    /// docs, *Validation cache*, for the measurements behind the default.
    pub fn validation_cache(mut self, enabled: bool) -> Self {
        self.validation_cache = enabled;
        self
    }

    /// Largest token accepted, in bytes, overriding the verifier's own limit (8 KiB unless
    /// it was configured otherwise).
    pub fn max_token_size(mut self, bytes: usize) -> Self {
        self.max_token_size = Some(bytes);
        self
    }

    /// Clock leeway for `exp`/`nbf`, overriding the verifier's own (30 s unless configured
    /// otherwise). Whichever applies is added to the lifetime of revocations, so a
    /// logged-out token stays rejected for as long as the verifier would accept it. At
    /// most [`MAX_LEEWAY`] (1 h): more is a configuration error at build.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = Some(leeway);
        self
    }

    /// Runs a watcher on this instance that follows `feed` (for instance a clone of the
    /// [`MongoUserRepository`](authcache_users::MongoUserRepository) given to
    /// [`repository`](Self::repository)) and turns every change to a user or role — made
    /// through authcache or not: an admin tool, a migration, another service — into
    /// [`AuthService::invalidate_user`] or [`AuthService::invalidate_role`], which every
    /// instance follows over the bus. Bursts are coalesced (at most 4,096 distinct ids
    /// pending), the resume point is kept (signed) in the shared cache so a restarted watcher
    /// resumes, and when the feed's history is lost everything is invalidated. Its state is
    /// in [`Stats::watcher`](crate::Stats::watcher).
    ///
    /// One instance of a deployment is enough (give the role to one of them, or to a small
    /// worker built like the others); more are correct, just redundant.
    ///
    /// ```no_run
    /// # use authcache::{AuthService, ChangeFeed, JwtVerifier, UserRepository};
    /// # async fn run(
    /// #     users: impl UserRepository + ChangeFeed + Clone + 'static,
    /// # ) -> Result<(), authcache::AuthError> {
    /// // `users`: a MongoUserRepository on a replica set, say.
    /// let auth = AuthService::builder()
    ///     .verifier(JwtVerifier::hs256(b"a-long-random-secret-of-32-bytes!"))
    ///     .repository(users.clone())
    ///     .watch(users)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn watch(mut self, feed: impl ChangeFeed + 'static) -> Self {
        self.watch = Some(WatchSource::Feed(Arc::new(feed)));
        self
    }

    /// As [`watch`](Self::watch), following the repository given with
    /// [`repository_config`](Self::repository_config) (MongoDB, on a connection of the
    /// watcher's own). For a repository you built, pass it to [`watch`](Self::watch).
    pub fn watch_repository(mut self) -> Self {
        self.watch = Some(WatchSource::Repository);
        self
    }

    /// Applies a whole configuration ([`AuthConfig`]): verifier, signing keys, cache,
    /// repository, TTLs, breaker, prefix, revocation check, L1 capacity, validation cache,
    /// and whether to watch the repository ([`watch_repository`](Self::watch_repository)).
    /// Settings the configuration leaves out keep what the builder has; later calls
    /// override earlier ones.
    ///
    /// A `[verifier]` section is built at [`build`](Self::build) (a remote key set is
    /// fetched then), and is refused together with a verifier given in code
    /// ([`verifier`](Self::verifier)). The `[signing]` keys are read now, from their
    /// variables or files; one that is missing fails [`build`](Self::build), naming it.
    ///
    /// A `[repository]` section and a repository given in code
    /// ([`repository`](Self::repository), [`shared_repository`](Self::shared_repository))
    /// are refused together at [`build`](Self::build); a configuration without a
    /// `[repository]` section needs a repository given in code (write
    /// `backend = "memory"` for the in-memory one).
    pub fn config(mut self, config: AuthConfig) -> Self {
        self.cache = config.cache;
        match config.repository {
            Some(repository) => {
                self.repository_config = Some(repository);
                self.repository_config_origin = REPOSITORY_CONFIG_FROM_FILE;
            }
            None => self.config_without_repository = true,
        }
        if let Some(verifier) = config.verifier {
            self.leeway = verifier.leeway().or(self.leeway);
            self.max_token_size = verifier.max_token_size.or(self.max_token_size);
            if let Some(lifetime) = verifier.max_token_lifetime() {
                self.max_token_lifetime = lifetime;
            }
            self.verifier_config = Some(verifier);
        }
        if let Some(signing) = &config.signing {
            self.apply_signing(signing);
        }
        self.ttls = config.ttls.apply(self.ttls);
        self.breaker = config.breaker.apply(self.breaker);
        if config.prefix.is_some() {
            self.prefix = config.prefix;
        }
        if config.watch {
            self = self.watch_repository();
        }
        self.revocation_check = config.revocation_check.unwrap_or(self.revocation_check);
        self.l1_capacity = config.l1_capacity.unwrap_or(self.l1_capacity);
        self.validation_cache = config.validation_cache.unwrap_or(self.validation_cache);
        self
    }

    /// The keys `[signing]` names, read now; a failure is kept for `build`.
    fn apply_signing(&mut self, signing: &SigningConfig) {
        match signing.read() {
            Ok(SigningKeys { current, previous }) => {
                self.signing_key = current.or(self.signing_key.take());
                if !previous.is_empty() {
                    self.previous_signing_keys = previous;
                }
            }
            Err(error) => {
                self.config_error.get_or_insert(error);
            }
        }
        self.unsigned_l2 |= signing.allow_unsigned;
    }

    /// What an applied configuration leaves for `build`: its first error, the verifier of
    /// its `[verifier]` section, and the repository's `timeout_ms` (which, like the
    /// cache's, replaces the one given in code).
    async fn settle_config(&mut self) -> Result<()> {
        if let Some(error) = self.config_error.take() {
            return Err(error);
        }
        if let Some(config) = self.verifier_config.take() {
            if self.verifier.is_some() {
                return Err(AuthError::Config(
                    "two verifiers were given: one in code (`.verifier(…)`) and one in the \
                     `[verifier]` section given to `.config(…)`; keep one of the two"
                        .into(),
                ));
            }
            self.verifier = Some(config.build().await?);
        }
        if let Some(timeout) = self
            .repository_config
            .as_ref()
            .and_then(RepositoryConfig::timeout)
        {
            self.load_timeout = timeout;
        }
        Ok(())
    }

    /// Applies TTL settings from configuration over the current TTLs.
    pub fn ttl_settings(mut self, settings: &TtlSettings) -> Self {
        self.ttls = settings.apply(self.ttls);
        self
    }

    /// Connects the backends and builds the service. A Redis that is down at start-up does
    /// not fail the build (the service runs on L1 and the repository until it is back).
    ///
    /// A repository built from configuration is pinged once. If it does not answer, the
    /// build still succeeds when the cache is shared (Redis, Redis Cluster, your own
    /// [`l2`](Self::l2)): what other instances cached is served, everything else gets
    /// [`AuthError::Unavailable`] (promptly, once the repository's breaker opens) until
    /// the repository is back — logged at `warn`, and shown by
    /// [`AuthService::health`]. With the in-process cache alone nothing could be served,
    /// so the build fails with [`AuthError::Unavailable`]. A repository given in code is
    /// not pinged.
    ///
    /// # Errors
    /// [`AuthError::Config`] for a configuration whose secrets cannot be read (naming the
    /// variable or file) or whose `[verifier]` names no key or two, two verifiers (one in
    /// code, one in configuration), a missing verifier or repository, a verifier whose key
    /// cannot verify anything (an HMAC secret under 32 bytes), two repositories (one in
    /// code, one in configuration), a configuration without `[repository]` and no
    /// repository in code, a backend whose feature is not compiled in (naming the feature),
    /// a zero `timeout_ms`, a bad prefix, a malformed Redis URL or MongoDB URI, or a bad
    /// signing key; [`AuthError::Unavailable`] when a repository built from configuration
    /// cannot be reached at start-up and there is no shared cache, or when a Redis Cluster or
    /// a configured remote key set cannot be reached.
    pub async fn build(mut self) -> Result<AuthService<U>> {
        self.settle_config().await?;
        let verifier = self.verifier.clone().ok_or_else(|| {
            AuthError::Config("a verifier is required: call `.verifier(…)`".into())
        })?;
        verifier.check().map_err(|error| {
            AuthError::Config(format!(
                "verifier: {error}; use a random secret of at least 32 bytes, the one the \
                 token issuer signs with (for instance `openssl rand -base64 48`)"
            ))
        })?;
        let verifier = match self.max_token_size {
            Some(bytes) => verifier.max_token_size(bytes),
            None => verifier,
        };
        self.validate()?;
        let verifier = match self.leeway {
            Some(leeway) => verifier.leeway(leeway),
            None => verifier,
        };
        // A logout-all cutoff is kept for the longest token lifetime: a token that could
        // outlive it (or carries no `iat`) would be valid again once it is forgotten.
        let verifier = verifier.max_lifetime(self.max_token_lifetime);
        let keyspace = self.keyspace()?;
        let codec = self.codec()?;
        let backend = match self.l2.clone() {
            Some(l2) => Backend::explicit(l2, self.publisher.clone()),
            None => Backend::connect(&self.cache, &keyspace, self.breaker.timeout).await?,
        };
        if backend.shared && !codec.is_signed() && !self.unsigned_l2 {
            return Err(AuthError::Config(
                "a shared cache needs a signing key: call `.signing_key(…)` (or, only for a \
                 Redis nothing else can write to, `.allow_unsigned_l2()`)"
                    .into(),
            ));
        }
        let marks_evictable = self.check_eviction(&backend)?;
        let configured = self.repository.is_none();
        let repository = crate::guarded_repository::GuardedRepository::new(
            self.connect_repository().await?,
            crate::guarded_repository::breaker_config(
                self.repository_breaker.as_ref(),
                self.load_timeout,
            ),
        );
        let repository_breaker = Arc::clone(repository.breaker());
        let repository: Arc<dyn UserRepository<U>> = Arc::new(repository);
        let repository_probe = crate::health::RepositoryProbe::default();
        if configured {
            repository_probe
                .check_at_start(&*repository, backend.shared)
                .await?;
        }
        let breaker = BreakerConfig {
            timeout: backend.timeout.unwrap_or(self.breaker.timeout),
            ..self.breaker.clone()
        };
        let l2 = backend.guarded(&breaker);
        let state = Arc::new(self.state(
            &keyspace,
            &codec,
            &l2,
            backend.publisher.clone(),
            &repository,
        ));
        State::spawn_retries(&state);
        // Before anything is served: keys are built under the shared epoch from the start.
        let publisher = backend.publisher.clone();
        let clear = {
            let state = Arc::clone(&state);
            move || state.on_epoch_raised()
        };
        let epoch = crate::epoch::SharedEpoch::start(
            &keyspace,
            &codec,
            &l2,
            publisher,
            clear,
            backend.shared,
        )
        .await;
        #[cfg(feature = "redis")]
        let subscriber = match &backend.bus {
            Some(bus) => {
                let (state, epoch) = (Arc::clone(&state), Arc::clone(&epoch));
                let on_event = move |event: authcache_core::BusEvent| {
                    epoch.on_bus_event(&event);
                    state.on_bus_event(event);
                };
                Some(crate::redis_backend::subscribe(bus, &keyspace, on_event).await?)
            }
            None => None,
        };
        let watcher = match &self.watch {
            Some(source) => {
                let checkpoints = Checkpoints::new(&keyspace, &codec, &l2)?;
                let config = self.repository_config.as_ref();
                Some(crate::watcher::spawn(source, config, checkpoints, backend.shared).await?)
            }
            None => None,
        };
        let (watcher, watcher_start) = watcher.unzip();
        let service = AuthService::from_inner(Inner {
            verifier,
            validation_cache: self.validation_cache,
            ttls: self.ttls,
            repository,
            state,
            l2,
            revocation_check: self.revocation_check,
            max_token_lifetime: self.max_token_lifetime,
            marks_evictable,
            counters: Counters::default(),
            #[cfg(feature = "redis")]
            subscriber,
            watcher,
            epoch,
            repository_breaker,
            repository_probe,
            shared_l2: backend.shared,
        });
        if let Some(start) = watcher_start {
            start.start(&service);
        }
        Ok(service)
    }

    /// Whether the shared cache may evict revocation marks and tombstones (its
    /// `maxmemory-policy` is not `noeviction`): logged loudly and shown in
    /// [`Stats::marks_evictable`](crate::Stats::marks_evictable), and a configuration
    /// error under [`RevocationCheck::FailClosed`], which promises never to serve a token
    /// whose revocation could not be checked — an evicted mark is one.
    fn check_eviction(&self, backend: &Backend) -> Result<bool> {
        let Some(policy) = backend.evicting_policy() else {
            return Ok(false);
        };
        if self.revocation_check == RevocationCheck::FailClosed {
            return Err(AuthError::Config(format!(
                "redis maxmemory-policy is `{policy}`: it may evict revocation marks and \
                 tombstones, un-revoking tokens, which RevocationCheck::FailClosed forbids; \
                 set `maxmemory-policy noeviction` (and size maxmemory for the working set)"
            )));
        }
        tracing::error!(
            policy,
            "redis maxmemory-policy may evict revocation marks and tombstones: a logged-out \
             token may be accepted again, and an invalidation undone, when Redis runs out of \
             memory; set `maxmemory-policy noeviction`"
        );
        Ok(true)
    }

    /// Out-of-range settings are a configuration error here, never a panic later.
    fn validate(&self) -> Result<()> {
        self.ttls.validate().map_err(AuthError::Config)?;
        let b = &self.breaker;
        let durations = [
            ("breaker timeout", b.timeout),
            ("breaker base cool-down", b.base_cooldown),
            ("breaker max cool-down", b.max_cooldown),
            ("repository timeout", self.load_timeout),
        ];
        if let Some((name, value)) = durations.iter().find(|(_, d)| *d > MAX_BREAKER_DURATION) {
            return Err(AuthError::Config(format!(
                "{name} is {value:?}; the most accepted is {MAX_BREAKER_DURATION:?}"
            )));
        }
        if b.timeout.is_zero() {
            return Err(AuthError::Config(
                "breaker timeout must be above zero".into(),
            ));
        }
        self.validate_cache_timeout()?;
        self.validate_repository_sources()?;
        if let Some(leeway) = self.leeway.filter(|leeway| *leeway > MAX_LEEWAY) {
            return Err(AuthError::Config(format!(
                "leeway is {leeway:?}; the most accepted is {MAX_LEEWAY:?} (a leeway is \
                 clock skew, and every second of it keeps an expired token valid)"
            )));
        }
        if self.max_token_lifetime > authcache_core::ttl::MAX_TTL {
            return Err(AuthError::Config(format!(
                "max token lifetime is {:?}; the most accepted is {:?}",
                self.max_token_lifetime,
                authcache_core::ttl::MAX_TTL
            )));
        }
        Ok(())
    }

    /// The cache's `timeout_ms` replaces the breaker's timeout, so it has the same bounds.
    fn validate_cache_timeout(&self) -> Result<()> {
        match self.cache.timeout() {
            Some(timeout) if timeout.is_zero() => Err(AuthError::Config(
                "cache timeout_ms is 0: every Redis call would time out at once; set it above \
                 zero (the default is 100) or leave it out"
                    .into(),
            )),
            Some(timeout) if timeout > MAX_BREAKER_DURATION => Err(AuthError::Config(format!(
                "cache timeout_ms is {timeout:?}; the most accepted is {MAX_BREAKER_DURATION:?}"
            ))),
            _ => Ok(()),
        }
    }

    /// Exactly one repository: given in code or in configuration, never both, and never an
    /// in-memory one nobody asked for.
    fn validate_repository_sources(&self) -> Result<()> {
        match (&self.repository, &self.repository_config) {
            (Some(_), Some(config)) => Err(AuthError::Config(format!(
                "two repositories were given: one in code (`.repository(…)` or \
                 `.shared_repository(…)`) and one in {} (backend {:?}); keep one of the two",
                self.repository_config_origin,
                config.backend_name()
            ))),
            (None, None) if self.config_without_repository => Err(AuthError::Config(
                "the configuration has no `[repository]` section and no repository was given \
                 in code: add `[repository]` with `backend = \"mongodb\"`, `uri` and `db` \
                 (or `backend = \"memory\"` for an in-memory one), or call `.repository(…)`"
                    .into(),
            )),
            (None, None) => Err(AuthError::Config(
                "a repository is required: call `.repository(…)` or `.repository_config(…)`".into(),
            )),
            (None, Some(config)) => config.check_syntax(),
            (Some(_), None) => Ok(()),
        }
    }

    fn keyspace(&self) -> Result<Keyspace> {
        match &self.prefix {
            Some(prefix) => Keyspace::new(prefix).map_err(|e| AuthError::Config(e.to_string())),
            None => Ok(Keyspace::default()),
        }
    }

    fn codec(&self) -> Result<EnvelopeCodec> {
        let key = |bytes: &Vec<u8>| {
            SigningKey::new(bytes).map_err(|e| AuthError::Config(format!("signing key: {e}")))
        };
        let codec = EnvelopeCodec::new();
        let Some(current) = &self.signing_key else {
            return Ok(codec);
        };
        let previous = self
            .previous_signing_keys
            .iter()
            .map(key)
            .collect::<Result<Vec<_>>>()?;
        Ok(codec
            .with_signing_key(key(current)?)
            .with_previous_signing_keys(previous))
    }

    async fn connect_repository(&self) -> Result<Arc<dyn UserRepository<U>>> {
        if let Some(repository) = &self.repository {
            return Ok(Arc::clone(repository));
        }
        // `validate` made sure there is exactly one repository.
        let config = self.repository_config.as_ref().ok_or_else(|| {
            AuthError::Config(
                "a repository is required: call `.repository(…)` or `.repository_config(…)`".into(),
            )
        })?;
        config.ensure_compiled()?;
        match config {
            RepositoryConfig::Memory { seed_file: None } => {
                Ok(Arc::new(MemoryUserRepository::<U>::new()))
            }
            RepositoryConfig::Memory {
                seed_file: Some(path),
            } => MemoryUserRepository::<U>::from_json_file(path)
                .map(|repository| Arc::new(repository) as Arc<dyn UserRepository<U>>)
                .map_err(|e| AuthError::Config(format!("seed file {path}: {e}"))),
            #[cfg(feature = "mongodb")]
            RepositoryConfig::Mongodb { uri, db, .. } => {
                authcache_users::MongoUserRepository::<U>::connect_with(
                    uri,
                    db,
                    config.mongo_options(),
                )
                .await
                .map(|repository| Arc::new(repository) as Arc<dyn UserRepository<U>>)
                .map_err(mongodb_error)
            }
            #[allow(unreachable_patterns)]
            other => Err(AuthError::Config(format!(
                "repository backend {other:?} is not compiled in"
            ))),
        }
    }

    fn state(
        &self,
        keyspace: &Keyspace,
        codec: &EnvelopeCodec,
        l2: &Arc<GuardedCache>,
        publisher: Option<Arc<dyn InvalidationPublisher>>,
        repository: &Arc<dyn UserRepository<U>>,
    ) -> State<U> {
        let tier = TierFactory {
            keyspace,
            ttls: &self.ttls,
            codec,
            l2,
            publisher: publisher.clone(),
            l1_capacity: self.l1_capacity,
            load_timeout: self.load_timeout,
        };
        // Half the L1 cap: a warm answer (which lives as long) built on a memo entry near
        // its end still sees a mark whose publish failed within the L1 cap.
        let memo_ttl = (self.ttls.l1_cap / 2).min(self.ttls.token);
        let marks = MarkTables::new(|kind| {
            Marks::new(
                kind,
                keyspace,
                codec,
                l2,
                publisher.clone(),
                self.l1_capacity,
                memo_ttl,
            )
        });
        let users = tier
            .builder(KeyKind::User)
            .validate(|id, user: &U| user.id() == id)
            .reloader(reload_user(repository))
            .build();
        let role_perms = self
            .with_perms_l1(tier.builder(KeyKind::RolePerms))
            .reloader(reload_role(repository))
            .build();
        State::new(
            keyspace.clone(),
            users,
            role_perms,
            marks,
            self.l1_capacity,
            self.ttls.l1_cap,
        )
    }
}

impl<U: UserRecord> AuthServiceBuilder<U> {
    /// The permissions tier as built, or on the L1 a unit test put in its place.
    #[cfg_attr(not(test), allow(clippy::unused_self))]
    fn with_perms_l1(&self, builder: TieredBuilder<Vec<String>>) -> TieredBuilder<Vec<String>> {
        #[cfg(test)]
        if let Some(l1) = &self.perms_l1 {
            return builder.l1(Arc::clone(l1));
        }
        builder
    }
}

/// Where a [`RepositoryConfig`] given with `.repository_config(…)` came from.
const REPOSITORY_CONFIG_IN_CODE: &str = "`.repository_config(…)`";
/// Where a [`RepositoryConfig`] read from configuration came from.
const REPOSITORY_CONFIG_FROM_FILE: &str = "the `[repository]` section given to `.config(…)`";

/// A MongoDB that cannot be reached (or did not answer in time) is [`AuthError::Unavailable`]:
/// it may come back. Anything else at connection — a URI the driver refuses, credentials it
/// rejects — is a configuration to fix.
#[cfg(feature = "mongodb")]
fn mongodb_error(error: authcache_users::RepositoryError) -> AuthError {
    if error.is_transient() {
        AuthError::unavailable(error)
    } else {
        AuthError::Config(format!(
            "repository: {error}; check `uri` and `db` of `[repository]`"
        ))
    }
}

/// Background reloads of a user record (refresh-ahead, retries behind stale values).
fn reload_user<U: UserRecord>(
    repository: &Arc<dyn UserRepository<U>>,
) -> impl Fn(&str) -> ReloadFuture<U> + Send + Sync + 'static {
    let repository = Arc::clone(repository);
    move |id| {
        let (repository, id) = (Arc::clone(&repository), id.to_owned());
        Box::pin(async move { Ok(repository.find_by_id(&id).await?) })
    }
}

/// Background reloads of one role's permissions.
fn reload_role<U: UserRecord>(
    repository: &Arc<dyn UserRepository<U>>,
) -> impl Fn(&str) -> ReloadFuture<Vec<String>> + Send + Sync + 'static {
    let repository = Arc::clone(repository);
    move |id| {
        let repository = Arc::clone(&repository);
        let role = name_of(id).map(Cow::into_owned);
        Box::pin(async move {
            let Some(role) = role else {
                // The id of a name too long to encode: left to the next foreground load.
                return Err("a hashed role id names no role to reload".into());
            };
            Ok(Some(repository.permissions_for_roles(&[role]).await?))
        })
    }
}

/// What every tier of one service shares.
struct TierFactory<'a> {
    keyspace: &'a Keyspace,
    ttls: &'a Ttls,
    codec: &'a EnvelopeCodec,
    l2: &'a Arc<GuardedCache>,
    publisher: Option<Arc<dyn InvalidationPublisher>>,
    l1_capacity: u64,
    load_timeout: Duration,
}

impl TierFactory<'_> {
    fn builder<T>(&self, kind: KeyKind) -> TieredBuilder<T>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let builder = Tiered::builder(kind)
            .keyspace(self.keyspace.clone())
            .ttls(self.ttls)
            .codec(self.codec.clone())
            .load_timeout(self.load_timeout)
            .l1(Arc::new(MemoryL1::<T>::new(self.l1_capacity)))
            .l2(Arc::clone(self.l2));
        match &self.publisher {
            Some(publisher) => builder.publisher(Arc::clone(publisher)),
            None => builder,
        }
    }
}

#[cfg(test)]
mod tests;
