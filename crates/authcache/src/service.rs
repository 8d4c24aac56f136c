//! [`AuthService`]: verify the token, then answer from the tiers.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use authcache_core::{
    BusEvent, CacheError, GuardedCache, KeyKind, Keyspace, LoadError, Tiered, Ttls,
};
use authcache_jwt::{Claims, EXP_SKEW, JwtVerifier, unix_now, validation_ttl};
use authcache_users::{RepositoryError, User, UserRecord, UserRepository};

use crate::builder::AuthServiceBuilder;
use crate::stats::{Counters, Stats, ValidationStats};
use crate::tokens::{Revocations, Validations};
use crate::{AuthError, Principal, Result};

/// Who is behind a bearer token, and what may they do — verified, cached, shared.
///
/// Cheap to clone (one `Arc`): build one at start-up and hand clones to every task or
/// request handler. See the [crate docs](crate) for an example.
pub struct AuthService<U: UserRecord = User> {
    inner: Arc<Inner<U>>,
}

impl<U: UserRecord> Clone for AuthService<U> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<U: UserRecord> std::fmt::Debug for AuthService<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService")
            .field("keyspace", &self.inner.tiers.keyspace)
            .field("ttls", &self.inner.ttls)
            .field("validation_cache", &self.inner.validation_cache)
            .finish_non_exhaustive()
    }
}

impl AuthService<User> {
    /// Starts building a service for the default [`User`] record; for your own record type
    /// use [`AuthServiceBuilder::new`] (`AuthServiceBuilder::<MyUser>::new()`).
    pub fn builder() -> AuthServiceBuilder<User> {
        AuthServiceBuilder::new()
    }
}

/// The caches of one service, shared with the invalidation-bus callback.
#[derive(Debug)]
pub(crate) struct Tiers<U> {
    pub(crate) keyspace: Keyspace,
    pub(crate) users: Tiered<U>,
    pub(crate) roles: Tiered<Vec<String>>,
    pub(crate) perms: Tiered<Vec<String>>,
    pub(crate) validations: Validations,
    pub(crate) revocations: Revocations,
}

#[cfg_attr(not(feature = "redis"), allow(dead_code))]
impl<U: UserRecord> Tiers<U> {
    /// Another instance changed a key (drop it here), or the bus reconnected (drop all).
    pub(crate) fn on_bus_event(&self, event: BusEvent) {
        match event {
            BusEvent::Invalidated(key) => self.evict(&key),
            BusEvent::Resubscribed => {
                self.users.clear_local();
                self.roles.clear_local();
                self.perms.clear_local();
                self.revocations.clear_local();
            }
            _ => {}
        }
    }

    fn evict(&self, key: &str) {
        match self.keyspace.parse(key) {
            Some((KeyKind::User, id)) => self.users.evict_local(id),
            Some((KeyKind::Roles, id)) => self.roles.evict_local(id),
            Some((KeyKind::Perms, id)) => self.perms.evict_local(id),
            Some((KeyKind::Token, id)) => self.validations.remove(id),
            Some((KeyKind::Revoked, id)) => self.revocations.evict_local(id),
            // Another prefix, another schema version, or noise on the channel.
            _ => tracing::trace!(key, "ignoring invalidation outside this keyspace"),
        }
    }
}

/// Everything a service holds; [`AuthService`] is an `Arc` of it.
pub(crate) struct Inner<U: UserRecord> {
    pub(crate) verifier: JwtVerifier,
    pub(crate) validation_cache: bool,
    pub(crate) ttls: Ttls,
    pub(crate) repository: Arc<dyn UserRepository<U>>,
    pub(crate) tiers: Arc<Tiers<U>>,
    pub(crate) l2: Arc<GuardedCache>,
    pub(crate) counters: Counters,
    /// Kept alive for as long as the service: dropping it stops the subscriber task.
    #[cfg(feature = "redis")]
    pub(crate) _subscriber: Option<authcache_redis::InvalidationSubscriber>,
}

impl<U: UserRecord> AuthService<U> {
    pub(crate) fn from_inner(inner: Inner<U>) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Authenticates a bearer token (`"Bearer <jwt>"` or the bare JWT), in this order:
    ///
    /// 1. **size** — longer than the maximum (8 KiB by default): rejected before anything
    ///    is decoded or hashed;
    /// 2. **signature and claims** — verified by the [`JwtVerifier`], unless this exact
    ///    token (same SHA-256 fingerprint) was verified by this process before and its
    ///    validation is still cached (never beyond its `exp`). Nothing read from any cache
    ///    is used before this step has passed, so a forged token gets
    ///    [`TokenError::BadSignature`](authcache_jwt::TokenError::BadSignature) even when
    ///    its `sub` is cached;
    /// 3. **revocation** — a token logged out on any instance is [`AuthError::Revoked`];
    /// 4. **user, roles, permissions** — through the tiers (L1 → L2 → repository, one
    ///    repository load per key however many callers miss at once; unknown users are
    ///    remembered for the negative TTL).
    ///
    /// # Errors
    /// [`AuthError::Token`], [`AuthError::Revoked`], [`AuthError::UnknownUser`],
    /// [`AuthError::Disabled`] (403), or [`AuthError::Unavailable`] (503) when an answer
    /// is not cached and the repository cannot give it. Cache trouble is never an error.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal<U>> {
        let result = self.inner.authenticate(bearer).await;
        self.inner.count(&result);
        result
    }

    /// The user record, from the tiers or the repository.
    ///
    /// # Errors
    /// [`AuthError::UnknownUser`] when there is no such user (remembered for the negative
    /// TTL); [`AuthError::Unavailable`] when it is not cached and the repository fails.
    pub async fn user(&self, id: &str) -> Result<Arc<U>> {
        self.inner.user(id).await
    }

    /// The names of the user's roles.
    ///
    /// # Errors
    /// As [`AuthService::user`].
    pub async fn roles(&self, id: &str) -> Result<Arc<Vec<String>>> {
        let user = self.inner.user(id).await?;
        self.inner.roles_of(&user).await
    }

    /// The user's permissions: the union over their roles, sorted.
    ///
    /// # Errors
    /// As [`AuthService::user`].
    pub async fn permissions(&self, id: &str) -> Result<Arc<Vec<String>>> {
        let user = self.inner.user(id).await?;
        let roles = self.inner.roles_of(&user).await?;
        self.inner.permissions_of(user.id(), &roles).await
    }

    /// Write-through after a profile change: puts `user` (and its roles) into every tier of
    /// this instance and the shared L2, drops the cached permissions (they follow the
    /// roles), and tells the other instances to drop their copies. The repository itself is
    /// the application's to update, before calling this.
    ///
    /// # Errors
    /// [`AuthError::Unavailable`] when the shared cache refused a write (this instance's
    /// L1 then holds nothing for the user, and the others were still told to drop theirs).
    pub async fn cache_user(&self, user: &U) -> Result<()> {
        let tiers = &self.inner.tiers;
        let id = user.id();
        let results = [
            tiers.users.set(id, Arc::new(user.clone())).await,
            tiers.roles.set(id, Arc::new(user.roles().to_vec())).await,
            tiers.perms.delete(id).await,
        ];
        first_error(results)
    }

    /// Drops the user, their roles and permissions from every tier of every instance; the
    /// next request loads them from the repository.
    ///
    /// # Errors
    /// [`AuthError::Unavailable`] when the shared cache could not delete (the L1s were
    /// cleared and the invalidation published regardless).
    pub async fn invalidate_user(&self, id: &str) -> Result<()> {
        self.inner.invalidate_user(id).await
    }

    /// Logs a token out: every instance rejects it with [`AuthError::Revoked`] from now
    /// until it expires (the revocation is kept until `exp` plus the leeway), and the
    /// user's cached data is invalidated. An expired token is already unusable: `Ok`.
    ///
    /// The token must verify: a forged token cannot be used to flush someone's cache.
    ///
    /// # Errors
    /// [`AuthError::Token`] for a token that does not verify; [`AuthError::Unavailable`]
    /// when the shared cache could not record the revocation.
    pub async fn logout(&self, bearer: &str) -> Result<()> {
        self.inner.logout(bearer).await
    }

    /// Counters of every tier, the breaker and the requests so far.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }
}

impl<U: UserRecord> Inner<U> {
    async fn authenticate(&self, bearer: &str) -> Result<Principal<U>> {
        // Before hashing: an oversized token is never fingerprinted.
        self.verifier.check_size(bearer)?;
        let fingerprint = authcache_jwt::fingerprint(bearer);
        let claims = self.verified_claims(bearer, &fingerprint)?;
        if self.tiers.revocations.is_revoked(&fingerprint).await {
            return Err(AuthError::Revoked);
        }
        let user = self.user(&claims.sub).await?;
        if user.disabled() {
            return Err(AuthError::Disabled);
        }
        let roles = self.roles_of(&user).await?;
        let permissions = self.permissions_of(user.id(), &roles).await?;
        Ok(Principal::new(user, roles, permissions, claims))
    }

    /// Claims of a token whose signature this process has verified, now or earlier.
    fn verified_claims(&self, bearer: &str, fingerprint: &str) -> Result<Arc<Claims>> {
        if self.validation_cache
            && let Some(claims) = self.tiers.validations.get(fingerprint)
        {
            Counters::bump(&self.counters.validation_hits);
            return Ok(claims);
        }
        let now = unix_now();
        let claims = Arc::new(self.verifier.verify_at(bearer, now)?);
        Counters::bump(&self.counters.verified);
        if self.validation_cache
            && let Some(ttl) = validation_ttl(claims.exp, now, self.ttls.token)
        {
            self.tiers
                .validations
                .insert(fingerprint, Arc::clone(&claims), ttl);
        }
        Ok(claims)
    }

    async fn user(&self, id: &str) -> Result<Arc<U>> {
        self.tiers
            .users
            .get_or_load(id, || self.repository.find_by_id(id))
            .await
            .map_err(load_error)?
            .ok_or(AuthError::UnknownUser)
    }

    /// Roles come from the user record itself; the tier keeps them for their own (longer)
    /// TTL, as the replaced systems did, and `cache_user`/`invalidate_user` keep it fresh.
    async fn roles_of(&self, user: &Arc<U>) -> Result<Arc<Vec<String>>> {
        // Copied only on a miss: the hot path (an L1 hit) allocates nothing here.
        let load = || async move { Ok::<_, Infallible>(Some(user.roles().to_vec())) };
        self.tiers
            .roles
            .get_or_load(user.id(), load)
            .await
            .map_err(load_error)?
            .ok_or(AuthError::UnknownUser)
    }

    async fn permissions_of(&self, id: &str, roles: &[String]) -> Result<Arc<Vec<String>>> {
        let load = || async move {
            let mut permissions = self.repository.permissions_for_roles(roles).await?;
            // `Principal::has_permission` binary-searches: make the order a guarantee here
            // rather than a promise of every repository.
            permissions.sort_unstable();
            permissions.dedup();
            Ok::<_, RepositoryError>(Some(permissions))
        };
        self.tiers
            .perms
            .get_or_load(id, load)
            .await
            .map_err(load_error)?
            .ok_or(AuthError::UnknownUser)
    }

    async fn invalidate_user(&self, id: &str) -> Result<()> {
        let tiers = &self.tiers;
        let results = [
            tiers.users.delete(id).await,
            tiers.roles.delete(id).await,
            tiers.perms.delete(id).await,
        ];
        first_error(results)
    }

    async fn logout(&self, bearer: &str) -> Result<()> {
        // Before hashing: an oversized token is never fingerprinted.
        self.verifier.check_size(bearer)?;
        let fingerprint = authcache_jwt::fingerprint(bearer);
        let claims = match self.verified_claims(bearer, &fingerprint) {
            Err(AuthError::Token(error)) if error.is_expired() => return Ok(()),
            other => other?,
        };
        self.tiers.validations.remove(&fingerprint);
        let ttl = self.revocation_ttl(claims.exp);
        let revoked = self
            .tiers
            .revocations
            .revoke(&fingerprint, claims.exp, ttl)
            .await
            .map_err(cache_error);
        let invalidated = self.invalidate_user(&claims.sub).await;
        revoked.and(invalidated)
    }

    /// Until the verifier would reject the token anyway: `exp` + leeway, plus the clock
    /// skew allowed between instances.
    fn revocation_ttl(&self, exp: u64) -> Duration {
        Duration::from_secs(exp.saturating_sub(unix_now()))
            + self.verifier.clock_leeway()
            + EXP_SKEW
    }

    fn count(&self, result: &Result<Principal<U>>) {
        let counter = match result {
            Ok(_) => &self.counters.authenticated,
            Err(AuthError::Token(_) | AuthError::Revoked) => &self.counters.rejected_tokens,
            Err(AuthError::UnknownUser | AuthError::Disabled) => &self.counters.rejected_users,
            Err(_) => &self.counters.unavailable,
        };
        Counters::bump(counter);
    }

    fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            users: self.tiers.users.stats(),
            roles: self.tiers.roles.stats(),
            permissions: self.tiers.perms.stats(),
            revocations: self.tiers.revocations.stats(),
            validations: ValidationStats {
                hits: Counters::read(&c.validation_hits),
                verified: Counters::read(&c.verified),
            },
            authenticated: Counters::read(&c.authenticated),
            rejected_tokens: Counters::read(&c.rejected_tokens),
            rejected_users: Counters::read(&c.rejected_users),
            unavailable: Counters::read(&c.unavailable),
            breaker: Some(self.l2.stats()),
        }
    }
}

/// A failed load is the repository's failure (503); an id that cannot be a key cannot be
/// a user (the verifier already rejects such subjects, so this is belt and braces).
fn load_error(error: LoadError) -> AuthError {
    match error {
        LoadError::InvalidId(_) => AuthError::UnknownUser,
        other => AuthError::unavailable(other),
    }
}

fn cache_error(error: CacheError) -> AuthError {
    match error {
        CacheError::InvalidKey(_) => AuthError::UnknownUser,
        other => AuthError::unavailable(other),
    }
}

/// Every step was attempted; report the first failure.
fn first_error<const N: usize>(results: [Result<(), CacheError>; N]) -> Result<()> {
    results
        .into_iter()
        .find_map(Result::err)
        .map_or(Ok(()), |error| Err(cache_error(error)))
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
