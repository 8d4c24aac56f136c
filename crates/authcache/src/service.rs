//! [`AuthService`]: verify the token, then answer from the tiers.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authcache_core::{CacheError, GuardedCache, LoadError, Ttls, counter, with_l2_budget};
use authcache_jwt::{EXP_SKEW, JwtVerifier, unix_now, validation_ttl};
use authcache_users::{RepositoryError, User, UserRecord, UserRepository};
use tokio::time::Instant;
use tracing::Instrument;

use crate::cache_id::cache_id;
use crate::config::RevocationCheck;
use crate::epoch::SharedEpoch;
use crate::health::{Health, RepositoryProbe};
use crate::refusal::{Refusal, RefusalStats, Seen};
use crate::state::{Derived, Stamp, State, Trust};
use crate::stats::{Counters, Stats, ValidationStats};
use crate::tokens::{Lookup, Validated};
use crate::watcher::WatcherLink;
use crate::{AuthError, Principal, Result, Revocation};

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
            .field("keyspace", self.inner.state.keyspace())
            .field("ttls", &self.inner.ttls)
            .field("validation_cache", &self.inner.validation_cache)
            .finish_non_exhaustive()
    }
}

/// Everything a service holds; [`AuthService`] is an `Arc` of it.
pub(crate) struct Inner<U: UserRecord> {
    pub(crate) verifier: JwtVerifier,
    pub(crate) validation_cache: bool,
    pub(crate) ttls: Ttls,
    pub(crate) repository: Arc<dyn UserRepository<U>>,
    pub(crate) state: Arc<State<U>>,
    pub(crate) l2: Arc<GuardedCache>,
    pub(crate) revocation_check: RevocationCheck,
    pub(crate) max_token_lifetime: Duration,
    /// The shared cache may evict marks and tombstones (see `Stats::marks_evictable`).
    pub(crate) marks_evictable: bool,
    pub(crate) counters: Counters,
    /// Kept alive for as long as the service: dropping it stops the subscriber task.
    #[cfg(feature = "redis")]
    pub(crate) subscriber: Option<authcache_redis::InvalidationSubscriber>,
    /// The repository watcher, when this instance runs one: dropping it stops the task.
    pub(crate) watcher: Option<WatcherLink>,
    /// The shared keyspace epoch, followed and raised (`crate::epoch`).
    pub(crate) epoch: Arc<SharedEpoch>,
    /// The breaker `repository` goes through (`crate::guarded_repository`).
    pub(crate) repository_breaker: Arc<authcache_core::CircuitBreaker>,
    /// The repository's last ping, for `health` (`crate::health`).
    pub(crate) repository_probe: RepositoryProbe,
    /// The L2 is shared with other instances (not the in-process cache).
    pub(crate) shared_l2: bool,
}

impl<U: UserRecord> AuthService<U> {
    pub(crate) fn from_inner(inner: Inner<U>) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// A handle that does not keep the service alive, for its own background tasks.
    pub(crate) fn downgrade(&self) -> WeakAuthService<U> {
        WeakAuthService(Arc::downgrade(&self.inner))
    }

    /// Hands the service a bus event, as its subscriber does.
    #[cfg(test)]
    pub(crate) fn hear(&self, event: &authcache_core::BusEvent) {
        self.inner.epoch.on_bus_event(event);
        self.inner.state.on_bus_event(event.clone());
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
    ///
    /// Each call runs in a `debug` span `authenticate` with the fields `user` (the user id,
    /// once known), `outcome` (`authenticated`, `rejected_token`, `rejected_user`,
    /// `unavailable`), `tier` (what answered the user record: `warm`, `l1`, `l2`,
    /// `repository`, `stale`) and `token` (`verified` now or `remembered`). Never the token,
    /// a claim payload or a key.
    ///
    /// Each refusal is also one `debug` event in that span (target `authcache::refusal`)
    /// with its `reason` (`expired`, `bad_signature`, `revoked`, `cut_off`,
    /// `issuer_cut_off`, `unknown_user`, `disabled`, `unavailable`, …), the `user` once the
    /// token verified, and `token`: the first 8 hex characters of its
    /// [fingerprint](authcache_jwt::fingerprint). It is counted by reason in
    /// [`Stats::refusals`].
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal<U>> {
        let span = tracing::debug_span!(
            "authenticate",
            user = tracing::field::Empty,
            outcome = tracing::field::Empty,
            tier = tracing::field::Empty,
            token = tracing::field::Empty,
        );
        let mut seen = Seen::default();
        let result = with_l2_budget(self.inner.authenticate(bearer, &mut seen))
            .instrument(span.clone())
            .await;
        let outcome = span.in_scope(|| self.inner.count(&result, &seen, bearer));
        span.record("outcome", outcome);
        result
    }

    /// The user record, from the tiers or the repository. The id is taken as caller input:
    /// an unknown id is remembered in this process only (never in the shared tier), so a
    /// flood of made-up ids cannot grow Redis.
    ///
    /// # Errors
    /// [`AuthError::UnknownUser`] when there is no such user (remembered for the negative
    /// TTL); [`AuthError::Unavailable`] when it is not cached and the repository fails.
    pub async fn user(&self, id: &str) -> Result<Arc<U>> {
        with_l2_budget(self.inner.user(id, Trust::Caller)).await
    }

    /// The names of the user's roles: those of the current user record.
    ///
    /// # Errors
    /// As [`AuthService::user`].
    pub async fn roles(&self, id: &str) -> Result<Arc<Vec<String>>> {
        let derived = with_l2_budget(self.inner.derived_of_id(id)).await?;
        Ok(Arc::clone(&derived.roles))
    }

    /// The user's permissions: the union over their roles, sorted.
    ///
    /// # Errors
    /// As [`AuthService::user`].
    pub async fn permissions(&self, id: &str) -> Result<Arc<Vec<String>>> {
        let derived = with_l2_budget(self.inner.derived_of_id(id)).await?;
        Ok(Arc::clone(&derived.permissions))
    }

    /// Write-through after a profile change: puts `user` into every tier of this instance
    /// and the shared L2, and tells the other instances to drop their copies. Roles and
    /// permissions are derived from the record, so they follow. The repository itself is
    /// the application's to update, before calling this.
    ///
    /// # Errors
    /// [`AuthError::Unavailable`] when the shared cache refused the write (this instance's
    /// L1 then holds nothing for the user, and the others were still told to drop theirs).
    pub async fn cache_user(&self, user: &U) -> Result<()> {
        let written = with_l2_budget(self.inner.state.write_user(user)).await;
        written.map_err(|error| invalidation_error("user", user.id(), error))
    }

    /// Drops the user (and so their roles and permissions) from every tier of every
    /// instance; the next request loads them from the repository. A load that began
    /// before this call, on any instance, never fills the caches afterwards.
    ///
    /// # Errors
    /// [`AuthError::Unavailable`] when the shared cache could not record the
    /// invalidation (the L1s were cleared and the invalidation published regardless).
    pub async fn invalidate_user(&self, id: &str) -> Result<()> {
        with_l2_budget(self.inner.invalidate_user(id)).await
    }

    /// Drops a role's permissions from every tier of every instance, after its
    /// permission list changed in the repository.
    ///
    /// # Errors
    /// As [`AuthService::invalidate_user`].
    pub async fn invalidate_role(&self, role: &str) -> Result<()> {
        let result = with_l2_budget(self.inner.state.forget_role(&cache_id(role))).await;
        result.map_err(|error| invalidation_error("role", role, error))
    }

    /// Logs a token out: every instance rejects it with [`AuthError::Revoked`] from now
    /// until it expires (the revocation is kept until `exp` plus the leeway), and the
    /// user's cached data is invalidated. Every encoding of the same assertion is revoked
    /// with it (see [`authcache_jwt::revocation_id`]). An expired token is already
    /// unusable, and a revoked one already revoked: both answer
    /// [`Revocation::AlreadyInForce`], and nothing else happens.
    ///
    /// The token must verify: a forged token cannot be used to flush someone's cache.
    /// The revocation is in force on this instance before the call returns, whatever the
    /// shared cache does. When the shared cache refuses it (Redis down, hung, out of
    /// memory), the answer is [`Revocation::Pending`]: it is retried in the background
    /// until it is accepted, then announced to the other instances, and counted in
    /// [`Stats::pending_revocations`](crate::Stats::pending_revocations) meanwhile.
    ///
    /// # Errors
    /// [`AuthError::Token`] for a token that does not verify.
    pub async fn logout(&self, bearer: &str) -> Result<Revocation> {
        with_l2_budget(self.inner.logout(bearer)).await
    }

    /// Logs a user out everywhere (after a password change, or for a compromised account):
    /// every token of `user_id` issued before now is refused with [`AuthError::Revoked`]
    /// on every instance within the bus delay, for as long as the longest token lifetime
    /// accepted ([`AuthServiceBuilder::max_token_lifetime`]). The user's cached data is
    /// invalidated. Costs no Redis round trip on the warm path.
    ///
    /// "Before now" is judged at the precision of the token's `iat`: a token issued in the
    /// second of the call by an issuer that gives whole seconds is accepted, so the login
    /// that follows a password change is never locked out — and a token issued earlier in
    /// that same second survives. An `iat` with a fraction (RFC 7519 allows it;
    /// [`TokenIssuer`](authcache_jwt::TokenIssuer) gives microseconds) is cut at its own
    /// precision: milliseconds, microseconds. Keycloak's not-before and Firebase's
    /// `tokensValidAfterTime` draw the same line.
    ///
    /// As with [`logout`](Self::logout), the cutoff is in force here before the call
    /// returns; [`Revocation::Pending`] says the shared cache has not accepted it yet.
    ///
    /// # Errors
    /// [`AuthError::UnknownUser`] for an id that cannot be a user id.
    ///
    /// [`AuthServiceBuilder::max_token_lifetime`]: crate::AuthServiceBuilder::max_token_lifetime
    pub async fn logout_all(&self, user_id: &str) -> Result<Revocation> {
        self.logout_all_before(user_id, SystemTime::now()).await
    }

    /// [`logout_all`](Self::logout_all) as of `before` rather than now: every token of
    /// `user_id` issued before `before` is refused with [`AuthError::Revoked`] on every
    /// instance, and the tokens issued since are not touched — the answer to "the user was
    /// logged out at `before`", such as an OpenID Connect back-channel logout, whose logout
    /// token says when (`iat`). A logout token replayed to another instance an hour later
    /// then refuses the tokens issued before the logout, as the first delivery did, and
    /// never the login that followed it.
    ///
    /// Cutoffs only rise: an earlier `before` than a cutoff already in force changes
    /// nothing, and never gives back a token refused by the later one. A `before` in the
    /// future is taken as now (a cutoff after now would refuse logins still to come). The
    /// cutoff is kept for as long as a token issued before `before` can live (`before` plus
    /// [`AuthServiceBuilder::max_token_lifetime`], plus the leeway); a `before` so old that
    /// every such token has expired writes nothing and answers
    /// [`Revocation::AlreadyInForce`]. `iat` precision, [`Revocation::Pending`] and the
    /// rest: as for `logout_all`.
    ///
    /// # Errors
    /// [`AuthError::UnknownUser`] for an id that cannot be a user id.
    ///
    /// [`AuthServiceBuilder::max_token_lifetime`]: crate::AuthServiceBuilder::max_token_lifetime
    pub async fn logout_all_before(&self, user_id: &str, before: SystemTime) -> Result<Revocation> {
        with_l2_budget(self.inner.logout_all_before(user_id, before)).await
    }

    /// Revokes every token of `issuer` (its `iss`; `""` for tokens without one) issued
    /// before `before` — the answer to a leaked signing key. Pass the time the key may
    /// have leaked, or [`SystemTime::now`]. `before` is rounded up to the next whole
    /// second, and a token is compared by the whole second of its `iat`: a token issued in
    /// the same second is refused too (the safe side, for a key that leaked). A token
    /// without `iat` counts as issued at the beginning of time.
    /// Refused with [`AuthError::Revoked`] on every instance within the bus delay, for as
    /// long as a token issued before `before` can live (`before` plus
    /// [`AuthServiceBuilder::max_token_lifetime`], which the verifier enforces, plus the
    /// leeway). A later call for the same issuer can only move the cutoff later. Costs no
    /// Redis round trip on the warm path. [`Revocation::Pending`] as for
    /// [`logout`](Self::logout).
    ///
    /// # Errors
    /// None today; the `Result` leaves room for an issuer that cannot be keyed.
    ///
    /// [`AuthServiceBuilder::max_token_lifetime`]: crate::AuthServiceBuilder::max_token_lifetime
    pub async fn revoke_issued_before(
        &self,
        issuer: &str,
        before: SystemTime,
    ) -> Result<Revocation> {
        with_l2_budget(self.inner.revoke_issued_before(issuer, before)).await
    }

    /// Counters of every tier, the breaker and the requests so far.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// Drops every user, role, permission and token entry cached anywhere — the
    /// in-process tiers of every instance and the shared tier — by raising the keyspace
    /// epoch that every key is built under ([`Keyspace`](authcache_core::Keyspace)),
    /// which every instance follows: the operator's big red button, for when the repository changed in ways nobody announced (a restore
    /// from backup, a bulk import). No scan and no delete: the old entries are never read
    /// again and expire with their TTLs. Revocations and logout cutoffs are kept. The
    /// repository watcher does the same when the feed's history is lost or a collection
    /// is dropped or renamed.
    ///
    /// Once it returns, this instance serves nothing cached before the call; the others
    /// stop within the bus delay (within 5 s should they miss the announcement). Returns
    /// the new epoch ([`Stats::keyspace_epoch`](crate::Stats::keyspace_epoch)).
    ///
    /// # Errors
    /// [`AuthError::Unavailable`] when the shared cache could not record the new epoch:
    /// the other instances and the shared tier are unchanged (call again); this
    /// instance's own tiers are cleared regardless.
    pub async fn clear_everywhere(&self) -> Result<u64> {
        let raised = with_l2_budget(self.inner.epoch.raise()).await;
        raised.map_err(AuthError::unavailable)
    }

    /// Whether this instance can answer, and what is wrong when it cannot: the shared
    /// cache, the repository (one ping at most every
    /// [`PING_INTERVAL`](crate::health::PING_INTERVAL), through its breaker), the
    /// watcher, pending revocations and invalidations, with an overall
    /// [`Status`](crate::health::Status) (the rule is in [`crate::health`]). For `/healthz` and
    /// `/ready`.
    pub async fn health(&self) -> Health {
        let inner = &self.inner;
        let ping = inner.repository_probe.check(&*inner.repository).await;
        Health::new(&inner.stats(), inner.shared_l2, ping)
    }
}

/// An [`AuthService`] that does not keep it alive (its own background tasks hold one).
pub(crate) struct WeakAuthService<U: UserRecord>(Weak<Inner<U>>);

impl<U: UserRecord> Default for WeakAuthService<U> {
    fn default() -> Self {
        Self(Weak::new())
    }
}

impl<U: UserRecord> WeakAuthService<U> {
    /// The service, while it lives.
    pub(crate) fn upgrade(&self) -> Option<AuthService<U>> {
        self.0.upgrade().map(|inner| AuthService { inner })
    }

    /// Whether the service still lives.
    pub(crate) fn is_alive(&self) -> bool {
        self.0.strong_count() > 0
    }
}

impl<U: UserRecord> Inner<U> {
    async fn authenticate(&self, bearer: &str, seen: &mut Seen) -> Result<Principal<U>> {
        // Before anything else: an oversized token is never looked up or hashed.
        self.verifier.check_size(bearer)?;
        let span = tracing::Span::current();
        if self.validation_cache
            && let Some(principal) = self
                .state
                .warm_answer(bearer, self.verifier.key_set_version())
        {
            counter::bump(&self.counters.validation_hits);
            span.record("tier", "warm");
            span.record("token", "remembered");
            span.record("user", principal.id());
            return Ok(principal);
        }
        let fingerprint = authcache_jwt::fingerprint(bearer);
        let token = self.verified(bearer, &fingerprint).await?;
        span.record("user", token.claims.sub.as_str());
        seen.claims = Some(Arc::clone(&token.claims));
        // Read before any lookup: a change during them makes this answer a warm miss.
        let stamp = self.state.stamp(&token.claims.sub, token.key_set);
        let definitive = self.ensure_not_revoked(&token, seen).await?;
        let (user, user_until) = self.fetch_user(&token.claims.sub, Trust::Token).await?;
        if user.disabled() {
            return Err(AuthError::Disabled);
        }
        let derived = self.derived(&user).await?;
        let until = user_until.min(derived.until);
        let principal = Principal::new(
            user,
            Arc::clone(&derived.roles),
            Arc::clone(&derived.permissions),
            Arc::clone(&token.claims),
        );
        if definitive {
            self.remember(bearer, &principal, stamp, until);
        }
        Ok(principal)
    }

    /// Keeps a definitive answer for the warm path: never beyond the token's validation
    /// TTL, half the L1 cap, the user TTL, or `until` — the remaining life of the user
    /// entry and permission entries it was built from (a value served stale lives
    /// `STALE_RETRY`; see [`crate::warm`]).
    fn remember(&self, bearer: &str, principal: &Principal<U>, stamp: Stamp, until: Instant) {
        if !self.validation_cache {
            return;
        }
        let cap = (self.ttls.l1_cap / 2)
            .min(self.ttls.user)
            .min(remaining(until));
        if let Some(ttl) =
            validation_ttl(principal.claims.exp, unix_now(), self.ttls.token.min(cap))
        {
            self.state
                .remember_answer(bearer, principal.clone(), stamp, ttl);
        }
    }

    /// A token whose signature this process has verified, now or earlier.
    /// With a remote key set, a token signed by a key not fetched yet waits for one
    /// rate-limited refresh of the set (see `authcache_jwt::RemoteJwks`); with fixed keys it
    /// never waits.
    async fn verified(&self, bearer: &str, fingerprint: &str) -> Result<Arc<Validated>> {
        // Read before verifying: a key dropped from the set after it makes this
        // validation (and the answers built on it) verify again.
        let key_set = self.verifier.key_set_version();
        if self.validation_cache
            && let Some(validated) = self.state.validation(fingerprint)
            && validated.key_set == key_set
        {
            counter::bump(&self.counters.validation_hits);
            tracing::Span::current().record("token", "remembered");
            return Ok(validated);
        }
        let now = unix_now();
        let claims = self.verifier.verify_at_async(bearer, now).await?;
        counter::bump(&self.counters.verified);
        tracing::Span::current().record("token", "verified");
        let validated = Arc::new(Validated {
            revocation_id: authcache_jwt::revocation_id(bearer, &claims),
            claims: Arc::new(claims),
            key_set,
        });
        if self.validation_cache
            && let Some(ttl) = validation_ttl(validated.claims.exp, now, self.ttls.token)
        {
            self.state
                .remember_validation(fingerprint, Arc::clone(&validated), ttl);
        }
        Ok(validated)
    }

    /// Refuses a logged-out token, or one issued up to its user's logout-all cutoff, or
    /// before its issuer's cutoff (which of them is told in `seen`). `Ok(false)`: let
    /// through although the shared cache could not answer (fail-open).
    async fn ensure_not_revoked(&self, token: &Validated, seen: &mut Seen) -> Result<bool> {
        let claims = &token.claims;
        let issuer = cache_id(claims.iss.as_deref().unwrap_or_default());
        let marks = self.state.marks();
        let revoked = marks.revoked(&token.revocation_id).await;
        let cutoff = marks.cutoff(&claims.sub).await;
        let issuer_cutoff = marks.issuer_cutoff(&issuer).await;
        // No `iat`: issued at the beginning of time, so before every cutoff.
        let issued = claims.iat.unwrap_or(0);
        let lookups = [revoked, cutoff, issuer_cutoff];
        seen.revocation = if matches!(revoked, Lookup::Mark(_)) {
            Some(Refusal::Revoked)
        } else if matches!(cutoff, Lookup::Mark(mark) if crate::cutoff::refuses(mark, claims)) {
            Some(Refusal::CutOff)
        } else if matches!(issuer_cutoff, Lookup::Mark(before) if issued < before) {
            Some(Refusal::IssuerCutOff)
        } else {
            None
        };
        if seen.revocation.is_some() {
            return Err(AuthError::Revoked);
        }
        if lookups.contains(&Lookup::Unknown) {
            return self.unchecked().map(|()| false);
        }
        Ok(true)
    }

    /// The L2 could not say whether the token is revoked.
    fn unchecked(&self) -> Result<()> {
        counter::bump(&self.counters.unchecked);
        match self.revocation_check {
            RevocationCheck::FailOpen => Ok(()),
            RevocationCheck::FailClosed => Err(AuthError::unavailable(
                "revocation could not be checked: the shared cache is unavailable",
            )),
        }
    }

    async fn user(&self, id: &str, trust: Trust) -> Result<Arc<U>> {
        self.fetch_user(id, trust).await.map(|(user, _)| user)
    }

    /// The user record, and until when it may be served.
    async fn fetch_user(&self, id: &str, trust: Trust) -> Result<(Arc<U>, Instant)> {
        let load = || self.repository.find_by_id(id);
        let fetched = self.state.user(id, trust, load).await.map_err(load_error)?;
        let user = fetched.value.ok_or(AuthError::UnknownUser)?;
        Ok((user, fetched.until))
    }

    async fn derived_of_id(&self, id: &str) -> Result<Arc<Derived<U>>> {
        let user = self.user(id, Trust::Caller).await?;
        self.derived(&user).await
    }

    /// The roles and permissions of exactly this user record: remembered per record (the
    /// hot path allocates nothing), computed from its roles and the per-role permission
    /// entries otherwise.
    async fn derived(&self, user: &Arc<U>) -> Result<Arc<Derived<U>>> {
        // Read before any permissions are: a role change after it makes the memo entry
        // computed below a miss.
        let epoch = self.state.permissions_epoch();
        if let Some(derived) = self.state.derived(user, epoch) {
            return Ok(derived);
        }
        let roles = Arc::new(user.roles().to_vec());
        let (permissions, until) = self.permissions_of_roles(&roles).await?;
        let derived = Arc::new(Derived {
            user: Arc::clone(user),
            roles,
            permissions: Arc::new(permissions),
            until,
        });
        self.state.remember_derived(&derived, epoch);
        Ok(derived)
    }

    /// The union of the roles' permissions, sorted (`Principal::has_permission`
    /// binary-searches) and without duplicates; and until when every entry it was built
    /// from may be served.
    async fn permissions_of_roles(&self, roles: &[String]) -> Result<(Vec<String>, Instant)> {
        let mut permissions = Vec::new();
        // With no role, nothing to expire: the user entry bounds the answer.
        let mut until = Instant::now() + self.ttls.l1_cap;
        for role in roles {
            let (found, role_until) = self.permissions_of_role(role).await?;
            permissions.extend(found.iter().cloned());
            until = until.min(role_until);
        }
        permissions.sort_unstable();
        permissions.dedup();
        Ok((permissions, until))
    }

    /// One role's permissions: one cache entry per role (under its [`cache_id`], so every
    /// name the repository may hold has one), one repository load per role however many
    /// users share it.
    async fn permissions_of_role(&self, role: &str) -> Result<(Arc<Vec<String>>, Instant)> {
        let roles = [role.to_owned()];
        let load = || async {
            let permissions = self.repository.permissions_for_roles(&roles).await?;
            Ok::<_, RepositoryError>(Some(permissions))
        };
        let found = self.state.role_permissions(&cache_id(role), load).await;
        let fetched = found.map_err(load_error)?;
        Ok((fetched.value.unwrap_or_default(), fetched.until))
    }

    async fn invalidate_user(&self, id: &str) -> Result<()> {
        let invalidated = self.state.forget_user(id).await;
        invalidated.map_err(|error| invalidation_error("user", id, error))
    }

    async fn logout(&self, bearer: &str) -> Result<Revocation> {
        // Before hashing: an oversized token is never fingerprinted.
        self.verifier.check_size(bearer)?;
        let fingerprint = authcache_jwt::fingerprint(bearer);
        let token = match self.verified(bearer, &fingerprint).await {
            Err(AuthError::Token(error)) if error.is_expired() => {
                return Ok(Revocation::AlreadyInForce);
            }
            other => other?,
        };
        let marks = self.state.marks();
        // Already revoked for at least as long as this token lives: a replayed logout
        // changes nothing anywhere. A mark for a shorter-lived token of the same
        // revocation id (a reissued `iss`+`jti`) is raised to this one's `exp` below:
        // a mark only ever rises, in value and in lifetime.
        if let Lookup::Mark(until) = marks.revoked(&token.revocation_id).await
            && until >= token.claims.exp
        {
            return Ok(Revocation::AlreadyInForce);
        }
        self.state.forget_token(&fingerprint, bearer);
        let ttl = self.revocation_ttl(token.claims.exp);
        let revoked = marks
            .revoke(&token.revocation_id, token.claims.exp, ttl)
            .await;
        let invalidated = self.state.forget_user(&token.claims.sub).await;
        Revocation::of_writes("logout", [revoked, invalidated])
    }

    async fn revoke_issued_before(&self, issuer: &str, before: SystemTime) -> Result<Revocation> {
        let since_epoch = before.duration_since(UNIX_EPOCH).unwrap_or_default();
        let before = since_epoch.as_secs() + u64::from(since_epoch.subsec_nanos() > 0);
        // Tokens issued before `before` live until `before + max_token_lifetime` at most.
        let ttl = Duration::from_secs(before.saturating_sub(unix_now()))
            .saturating_add(self.cutoff_ttl());
        let marks = self.state.marks();
        let result = marks.cut_off_issuer(&cache_id(issuer), before, ttl).await;
        // Validations and warm answers of that issuer's tokens are stamped with the
        // cutoffs' epoch, which the put moved: the next request checks again.
        Revocation::of_writes("issuer cutoff", [result])
    }

    /// How long a cutoff made now must be kept: as long as a token issued before it lives.
    fn cutoff_ttl(&self) -> Duration {
        self.max_token_lifetime
            .saturating_add(self.verifier.clock_leeway())
            .saturating_add(EXP_SKEW)
    }

    async fn logout_all_before(&self, user_id: &str, before: SystemTime) -> Result<Revocation> {
        let now = SystemTime::now();
        let before = before.min(now);
        // A token issued before `before` lives until `before` + the longest lifetime at most.
        let since = now.duration_since(before).unwrap_or_default();
        let ttl = self.cutoff_ttl().saturating_sub(since);
        if ttl.is_zero() {
            return Ok(Revocation::AlreadyInForce);
        }
        let marks = self.state.marks();
        let cutoff = marks.cut_off(user_id, crate::cutoff::at(before), ttl).await;
        let invalidated = self.state.forget_user(user_id).await;
        Revocation::of_writes("logout_all", [cutoff, invalidated])
    }

    /// Until the verifier would reject the token anyway: `exp` + leeway, plus the clock
    /// skew allowed between instances.
    fn revocation_ttl(&self, exp: u64) -> Duration {
        Duration::from_secs(exp.saturating_sub(unix_now()))
            .saturating_add(self.verifier.clock_leeway())
            .saturating_add(EXP_SKEW)
    }

    /// Whether the invalidation bus is subscribed right now; `None` without a bus.
    fn bus_subscribed(&self) -> Option<bool> {
        #[cfg(feature = "redis")]
        if let Some(subscriber) = &self.subscriber {
            return Some(subscriber.is_subscribed());
        }
        None
    }

    /// Counts the outcome, and a refusal by reason, telling the operator why (see
    /// [`crate::refusal`]); returns the outcome's name for the span.
    fn count(&self, result: &Result<Principal<U>>, seen: &Seen, bearer: &str) -> &'static str {
        let c = &self.counters;
        if let Err(error) = result {
            let reason = seen.reason(error);
            counter::bump(&c.refusals[reason.index()]);
            seen.report(reason, bearer);
        }
        let (counter, outcome) = match result {
            Ok(_) => (&c.authenticated, "authenticated"),
            Err(AuthError::Token(_) | AuthError::Revoked) => (&c.rejected_tokens, "rejected_token"),
            Err(AuthError::UnknownUser | AuthError::Disabled) => {
                (&c.rejected_users, "rejected_user")
            }
            Err(_) => (&c.unavailable, "unavailable"),
        };
        counter::bump(counter);
        outcome
    }

    fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            validations: ValidationStats {
                hits: counter::read(&c.validation_hits),
                verified: counter::read(&c.verified),
            },
            authenticated: counter::read(&c.authenticated),
            rejected_tokens: counter::read(&c.rejected_tokens),
            rejected_users: counter::read(&c.rejected_users),
            unavailable: counter::read(&c.unavailable),
            refusals: RefusalStats::from_counts(c.refusals.each_ref().map(counter::read)),
            unchecked: counter::read(&c.unchecked),
            bus_subscribed: self.bus_subscribed(),
            marks_evictable: self.marks_evictable,
            breaker: Some(self.l2.stats()),
            repository_breaker: self.repository_breaker.stats(),
            repository_reachable: self.repository_probe.reachable(),
            watcher: self.watcher.as_ref().map(WatcherLink::stats),
            keyspace_epoch: self.epoch.current(),
            ..self.state.stats()
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

/// A change the shared cache did not record: what did and did not happen.
fn invalidation_error(kind: &str, id: &str, error: CacheError) -> AuthError {
    match error {
        CacheError::InvalidKey(_) => AuthError::UnknownUser,
        error => AuthError::unavailable(format!(
            "the shared cache did not record the change of {kind} {id:?} ({error}): it is in \
             force on this instance, which serves nothing from before it, and is retried \
             (tombstone and announcement) until the shared cache accepts it; other instances \
             follow then"
        )),
    }
}

/// What is left of the time until `until` (zero once it passed).
fn remaining(until: Instant) -> Duration {
    until.saturating_duration_since(Instant::now())
}

#[cfg(test)]
mod tests;
