//! The state floor: what a request reads and what an invalidation changes — the user and
//! role-permission tiers, the memo of roles and permissions derived from a user record, the
//! warm answers, the validation cache and the revocation marks. Each piece is changed
//! through verbs (`forget_user`, `forget_role`, `stamp`, …), never through its fields.
//!
//! It sits below everything that uses it: [`AuthService`](crate::AuthService) orders a
//! request's steps over it, the builder builds it, the bus subscriber and the epoch
//! follower change it. It imports nothing from `service`, `builder` or `watcher`
//! (`state::tests::the_state_floor_imports_nothing_above_it`).
//!
//! - [`derived`]: a user's roles and permissions, remembered for the very record they came
//!   from;
//! - [`warm`]: whole answers by bearer string, with the [`Stamp`] of what they were built
//!   from;
//! - [`marks`]: revocations, user cutoffs and issuer cutoffs;
//! - [`bus`]: what a bus event (another instance's invalidation, a reconnect, an epoch
//!   raise) drops here.

mod bus;
mod derived;
mod marks;
mod warm;

#[cfg(test)]
mod tests;

use std::error::Error;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use authcache_core::{CacheError, Fetched, Keyspace, LoadError, Tiered, Version};
use authcache_users::UserRecord;

pub(crate) use derived::Derived;
use derived::DerivedMemo;
pub(crate) use marks::MarkTables;
pub(crate) use warm::Stamp;
use warm::Warm;

use crate::Principal;
use crate::stats::Stats;
use crate::tokens::{RETRY_INTERVAL, Validated, Validations};

/// Where an id came from, which decides where "no such user" may be remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trust {
    /// The `sub` of a verified token: its absence is shared through L2.
    Token,
    /// An API caller's input: its absence is remembered in this process only.
    Caller,
}

/// Everything one service reads on a request and changes on an invalidation; shared
/// with the bus subscriber and the epoch follower.
#[derive(Debug)]
pub(crate) struct State<U> {
    keyspace: Keyspace,
    users: Tiered<U>,
    /// Permissions per role (one entry per role; a user's are the union of theirs).
    role_perms: Tiered<Vec<String>>,
    /// Roles and permissions per user id, valid only for the user record they were
    /// computed from; in-process.
    derived: DerivedMemo<U>,
    validations: Validations,
    /// Whole answers by bearer string: the warm path.
    warm: Warm<U>,
    marks: MarkTables,
}

impl<U: UserRecord> State<U> {
    /// The state over built tiers and marks; the in-process memos hold at most
    /// `l1_capacity` entries each, a derived entry at most `derived_ttl`.
    pub(crate) fn new(
        keyspace: Keyspace,
        users: Tiered<U>,
        role_perms: Tiered<Vec<String>>,
        marks: MarkTables,
        l1_capacity: u64,
        derived_ttl: Duration,
    ) -> Self {
        Self {
            keyspace,
            users,
            role_perms,
            derived: DerivedMemo::new(l1_capacity, derived_ttl),
            validations: Validations::new(l1_capacity),
            warm: Warm::new(l1_capacity),
            marks,
        }
    }

    /// The keyspace every key of this state is built in.
    pub(crate) fn keyspace(&self) -> &Keyspace {
        &self.keyspace
    }

    /// Retries, every [`RETRY_INTERVAL`], the marks, invalidations and write-throughs the
    /// shared cache refused (in force on this instance meanwhile: see
    /// [`Tiered::retry_pending`]), until the state is dropped.
    pub(crate) fn spawn_retries(state: &Arc<Self>) {
        state.marks.spawn_retries();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let state = Arc::downgrade(state);
        runtime.spawn(async move {
            let mut interval = tokio::time::interval(RETRY_INTERVAL);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(state) = state.upgrade() else { break };
                state.users.retry_pending().await;
                state.role_perms.retry_pending().await;
            }
        });
    }

    /// The user record `id`, from the tiers or `load`, and until when it may be served.
    pub(crate) async fn user<F, Fut, E>(
        &self,
        id: &str,
        trust: Trust,
        load: F,
    ) -> Result<Fetched<U>, LoadError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<U>, E>>,
        E: Into<Box<dyn Error + Send + Sync>>,
    {
        match trust {
            Trust::Token => self.users.get_or_load_fetched(id, load).await,
            Trust::Caller => self.users.get_or_load_untrusted_fetched(id, load).await,
        }
    }

    /// One role's permissions (`role_id`: the role's cache id), from the tiers or `load`.
    pub(crate) async fn role_permissions<F, Fut, E>(
        &self,
        role_id: &str,
        load: F,
    ) -> Result<Fetched<Vec<String>>, LoadError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Vec<String>>, E>>,
        E: Into<Box<dyn Error + Send + Sync>>,
    {
        self.role_perms.get_or_load_fetched(role_id, load).await
    }

    /// Write-through of `user` (see [`Tiered::set`]); what was derived from the old
    /// record is forgotten.
    pub(crate) async fn write_user(&self, user: &U) -> Result<(), CacheError> {
        let written = self.users.set(user.id(), Arc::new(user.clone())).await;
        self.derived.forget(user.id());
        written
    }

    /// Drops the user's cached data here and in the shared tier, and announces it; when
    /// the shared tier refuses, the invalidation is pending (in force here, retried).
    pub(crate) async fn forget_user(&self, id: &str) -> Result<(), CacheError> {
        let invalidated = self.users.delete(id).await;
        self.derived.forget(id);
        invalidated
    }

    /// Drops one role's permissions (`role_id`: its cache id) as [`forget_user`](Self::forget_user)
    /// drops a user. The derived memo follows through the permissions epoch.
    pub(crate) async fn forget_role(&self, role_id: &str) -> Result<(), CacheError> {
        self.role_perms.delete(role_id).await
    }

    /// The permissions tier's epoch: read it before any permissions are, and the memo
    /// entry computed from them is a miss after a role change.
    pub(crate) fn permissions_epoch(&self) -> Version {
        self.role_perms.epoch()
    }

    /// The roles and permissions computed from exactly `user` under `epoch`, if remembered.
    pub(crate) fn derived(&self, user: &Arc<U>, epoch: Version) -> Option<Arc<Derived<U>>> {
        self.derived.get(user, epoch)
    }

    /// Remembers `parts`, computed from permissions read after the epoch read `epoch`.
    pub(crate) fn remember_derived(&self, parts: &Arc<Derived<U>>, epoch: Version) {
        self.derived.insert(parts, epoch);
    }

    /// The stamp of `user_id`'s answers now (`keys`: the verifier's key-set version). Read
    /// it before looking anything up: a change after the reading makes the entry built
    /// from those lookups a miss.
    pub(crate) fn stamp(&self, user_id: &str, keys: u64) -> Stamp {
        Stamp {
            user: self.users.version(user_id),
            permissions: self.role_perms.epoch(),
            marks: self.marks.epochs(),
            keys,
        }
    }

    /// The principal `bearer` authenticated as, if nothing it was built from changed since
    /// (`keys`: the verifier's key-set version now).
    pub(crate) fn warm_answer(&self, bearer: &str, keys: u64) -> Option<Principal<U>> {
        self.warm.get(bearer, |user_id| self.stamp(user_id, keys))
    }

    /// Remembers `principal` for `bearer`, built from the state `stamp` was read in.
    pub(crate) fn remember_answer(
        &self,
        bearer: &str,
        principal: Principal<U>,
        stamp: Stamp,
        ttl: Duration,
    ) {
        self.warm.insert(bearer, principal, stamp, ttl);
    }

    /// The validation this process remembers for the token of `fingerprint`.
    pub(crate) fn validation(&self, fingerprint: &str) -> Option<Arc<Validated>> {
        self.validations.get(fingerprint)
    }

    /// Remembers a token this process verified, for `ttl`.
    pub(crate) fn remember_validation(
        &self,
        fingerprint: &str,
        validated: Arc<Validated>,
        ttl: Duration,
    ) {
        self.validations.insert(fingerprint, validated, ttl);
    }

    /// Forgets everything remembered of one token: its validation and its warm answer.
    pub(crate) fn forget_token(&self, fingerprint: &str, bearer: &str) {
        self.validations.remove(fingerprint);
        self.warm.remove(bearer);
    }

    /// Revocations, user cutoffs and issuer cutoffs.
    pub(crate) fn marks(&self) -> &MarkTables {
        &self.marks
    }

    /// The tiers' part of [`Stats`]; the rest is left at its default.
    pub(crate) fn stats(&self) -> Stats {
        Stats {
            users: self.users.stats(),
            roles: self.derived.stats(),
            permissions: self.role_perms.stats(),
            principals: self.warm.stats(),
            ..self.marks.stats()
        }
    }

    /// Unit tests only: the user tier itself, to age or drop an entry.
    #[cfg(test)]
    pub(crate) fn users_tier(&self) -> &Tiered<U> {
        &self.users
    }
}
