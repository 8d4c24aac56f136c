//! [`AuthServiceBuilder`]: assembles an [`AuthService`] from a verifier, a repository, a
//! cache and TTLs — given directly or read from configuration.

use std::sync::Arc;
use std::time::Duration;

use authcache_core::{
    BreakerConfig, Cache, EnvelopeCodec, GuardedCache, InvalidationPublisher, KeyKind, Keyspace,
    SigningKey, Tiered, Ttls,
};
use authcache_jwt::JwtVerifier;
use authcache_memory::MemoryL1;
use authcache_users::{MemoryUserRepository, User, UserRecord, UserRepository};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::Backend;
use crate::config::{AuthConfig, CacheConfig, RepositoryConfig, TtlSettings};
use crate::service::{Inner, Tiers};
use crate::stats::Counters;
use crate::tokens::{Revocations, Validations};
use crate::{AuthError, AuthService, Result};

/// 50,000 entries per in-process tier: enough for the active users of a large service;
/// moka evicts the least useful beyond it.
pub const DEFAULT_L1_CAPACITY: u64 = 50_000;

/// Builds an [`AuthService`]. Required: a [`verifier`](Self::verifier) and a repository
/// ([`repository`](Self::repository) or [`repository_config`](Self::repository_config)).
/// Everything else has a default: the in-process cache, [`Ttls::default`], the prefix
/// `authcache`, unsigned cache entries, the validation cache on.
pub struct AuthServiceBuilder<U: UserRecord = User> {
    verifier: Option<JwtVerifier>,
    repository: Option<Arc<dyn UserRepository<U>>>,
    repository_config: Option<RepositoryConfig>,
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

    /// HMAC-SHA256 key that signs every L2 entry; entries without a valid tag are misses.
    /// Use it whenever the L2 is reachable by anything but this service.
    pub fn signing_key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.signing_key = Some(key.as_ref().to_vec());
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
    /// logged-out token stays rejected for as long as the verifier would accept it.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = Some(leeway);
        self
    }

    /// Applies a whole configuration: cache, repository, TTLs and prefix.
    pub fn config(mut self, config: AuthConfig) -> Self {
        self.cache = config.cache;
        self.repository_config = Some(config.repository);
        self.ttls = config.ttls.apply(self.ttls);
        if config.prefix.is_some() {
            self.prefix = config.prefix;
        }
        self
    }

    /// Applies TTL settings from configuration over the current TTLs.
    pub fn ttl_settings(mut self, settings: &TtlSettings) -> Self {
        self.ttls = settings.apply(self.ttls);
        self
    }

    /// Connects the backends and builds the service. A Redis that is down at start-up does
    /// not fail the build (the service runs on L1 and the repository until it is back).
    ///
    /// # Errors
    /// [`AuthError::Config`] for a missing verifier or repository, a backend whose feature
    /// is not compiled in (naming the feature), a bad prefix, URL or signing key;
    /// [`AuthError::Unavailable`] when the repository (or a Redis Cluster) cannot be
    /// reached at start-up.
    pub async fn build(self) -> Result<AuthService<U>> {
        let verifier = self.verifier.clone().ok_or_else(|| {
            AuthError::Config("a verifier is required: call `.verifier(…)`".into())
        })?;
        let verifier = match self.max_token_size {
            Some(bytes) => verifier.max_token_size(bytes),
            None => verifier,
        };
        let verifier = match self.leeway {
            Some(leeway) => verifier.leeway(leeway),
            None => verifier,
        };
        let keyspace = self.keyspace()?;
        let codec = self.codec()?;
        let repository = self.connect_repository().await?;
        let backend = match self.l2.clone() {
            Some(l2) => Backend::explicit(l2, self.publisher.clone()),
            None => Backend::connect(&self.cache, &keyspace).await?,
        };
        let l2 = backend.guarded(&self.breaker);
        let tiers = Arc::new(self.tiers(&keyspace, &codec, &l2, backend.publisher.clone()));
        #[cfg(feature = "redis")]
        let subscriber = match &backend.bus {
            Some(bus) => {
                let tiers = Arc::clone(&tiers);
                let on_event = move |event| tiers.on_bus_event(event);
                Some(crate::redis_backend::subscribe(bus, &keyspace, on_event).await?)
            }
            None => None,
        };
        Ok(AuthService::from_inner(Inner {
            verifier,
            validation_cache: self.validation_cache,
            ttls: self.ttls,
            repository,
            tiers,
            l2,
            counters: Counters::default(),
            #[cfg(feature = "redis")]
            _subscriber: subscriber,
        }))
    }

    fn keyspace(&self) -> Result<Keyspace> {
        match &self.prefix {
            Some(prefix) => Keyspace::new(prefix).map_err(|e| AuthError::Config(e.to_string())),
            None => Ok(Keyspace::default()),
        }
    }

    fn codec(&self) -> Result<EnvelopeCodec> {
        let codec = EnvelopeCodec::new();
        match &self.signing_key {
            Some(key) => SigningKey::new(key)
                .map(|key| codec.with_signing_key(key))
                .map_err(|e| AuthError::Config(format!("signing key: {e}"))),
            None => Ok(codec),
        }
    }

    async fn connect_repository(&self) -> Result<Arc<dyn UserRepository<U>>> {
        if let Some(repository) = &self.repository {
            return Ok(Arc::clone(repository));
        }
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
            RepositoryConfig::Mongodb { uri, db } => {
                authcache_users::MongoUserRepository::<U>::connect(uri, db)
                    .await
                    .map(|repository| Arc::new(repository) as Arc<dyn UserRepository<U>>)
                    .map_err(AuthError::unavailable)
            }
            #[allow(unreachable_patterns)]
            other => Err(AuthError::Config(format!(
                "repository backend {other:?} is not compiled in"
            ))),
        }
    }

    fn tiers(
        &self,
        keyspace: &Keyspace,
        codec: &EnvelopeCodec,
        l2: &Arc<GuardedCache>,
        publisher: Option<Arc<dyn InvalidationPublisher>>,
    ) -> Tiers<U> {
        let tier = TierFactory {
            keyspace,
            ttls: &self.ttls,
            codec,
            l2,
            publisher,
            l1_capacity: self.l1_capacity,
        };
        Tiers {
            keyspace: keyspace.clone(),
            users: tier.build(KeyKind::User),
            roles: tier.build(KeyKind::Roles),
            perms: tier.build(KeyKind::Perms),
            validations: Validations::new(self.l1_capacity),
            revocations: Revocations::new(
                tier.build(KeyKind::Revoked),
                self.l1_capacity,
                self.ttls.l1_cap.min(self.ttls.token),
            ),
        }
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
}

impl TierFactory<'_> {
    fn build<T>(&self, kind: KeyKind) -> Tiered<T>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let builder = Tiered::builder(kind)
            .keyspace(self.keyspace.clone())
            .ttls(self.ttls)
            .codec(self.codec.clone())
            .l1(Arc::new(MemoryL1::<T>::new(self.l1_capacity)))
            .l2(Arc::clone(self.l2));
        match &self.publisher {
            Some(publisher) => builder.publisher(Arc::clone(publisher)).build(),
            None => builder.build(),
        }
    }
}
