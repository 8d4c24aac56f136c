//! The one writer: logouts, `logout_all`, users' role changes and roles' permission
//! changes (repository first, then the invalidation), one at a time, each recorded in the
//! model so that the workers know what must be seen once it is confirmed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use authcache::{AuthError, MongoUserRepository, Revocation, UserRepository};
use authcache_jwt::unix_now;
use rand::RngExt;
use rand::rngs::SmallRng;

use crate::model::{
    Cause, Confirmed, ROLES, Revoked, lock, random_roles, role_name, role_permissions, user_id,
    user_record,
};
use crate::tally::{Effect, Mutation};
use crate::workload::Ctx;

/// How often the mutator retries the invalidations Redis refused (as the service retries
/// its revocation marks).
const RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// The one writer: every change goes through it, one at a time, so the model is exact.
pub(crate) struct Mutator {
    ctx: Arc<Ctx>,
    repository: Arc<MongoUserRepository>,
    /// Its own stream of the run's seed.
    rng: SmallRng,
    /// Changes whose invalidation Redis refused: retried before anything else.
    unsettled_users: Vec<(usize, u64)>,
    unsettled_roles: Vec<(usize, u64)>,
    next_retry: Instant,
}

impl Mutator {
    pub(crate) fn new(ctx: Arc<Ctx>, repository: Arc<MongoUserRepository>, rng: SmallRng) -> Self {
        Self {
            ctx,
            repository,
            rng,
            unsettled_users: Vec::new(),
            unsettled_roles: Vec::new(),
            next_retry: Instant::now(),
        }
    }

    pub(crate) async fn run(mut self, per_second: u32) {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.ctx.stopped() {
            tick.tick().await;
            self.retry_unsettled().await;
            let outcome = match self.rng.random_range(0..100) {
                0..40 => self.logout().await,
                40..55 => self.logout_all().await,
                55..85 => self.change_user_roles().await,
                _ => self.change_role_permissions().await,
            };
            if let Err(error) = outcome {
                self.ctx.tally.final_failure(format!("mutator: {error:#}"));
            }
        }
    }

    fn effect<T: Pending>(&self, started: Instant, result: &Result<T, AuthError>) -> Effect {
        let refused = match result {
            Ok(done) => done.is_pending(),
            Err(error) if error.is_unavailable() => true,
            Err(_) => return Effect::Failed,
        };
        if !refused {
            Effect::Confirmed
        } else if self.ctx.world.timeline.in_outage(started) {
            Effect::RefusedInOutage
        } else {
            Effect::RefusedOutside
        }
    }

    async fn logout(&mut self) -> Result<()> {
        let world = &self.ctx.world;
        let user = self.ctx.pick_user(&mut self.rng);
        let token = world.current_token(user);
        token.logout_started.store(true, Ordering::Release);
        let started = Instant::now();
        let result = self.ctx.auth.logout(&token.bearer).await;
        let done = Instant::now();
        let effect = self.effect(started, &result);
        self.ctx.tally.mutation(Mutation::Logout, effect, || {
            format!("user-{user}: {result:?}")
        });
        if effect != Effect::Failed {
            // Refused by Redis or not, the mark is in force here (the sticky table).
            token.revoked.store(true, Ordering::Release);
            world.remember_revoked(Revoked::of(&token, Cause::Logout, started, done));
        }
        world.replace_token(user)
    }

    async fn logout_all(&mut self) -> Result<()> {
        let world = &self.ctx.world;
        let user = self.ctx.pick_user(&mut self.rng);
        let before = unix_now();
        lock(&world.users[user]).cutoff.in_flight = true;
        let started = Instant::now();
        let result = self.ctx.auth.logout_all(&user_id(user)).await;
        let (after, done) = (unix_now(), Instant::now());
        let effect = self.effect(started, &result);
        self.ctx.tally.mutation(Mutation::LogoutAll, effect, || {
            format!("user-{user}: {result:?}")
        });
        let cut_off = {
            let mut state = lock(&world.users[user]);
            let cutoff = &mut state.cutoff;
            cutoff.in_flight = false;
            cutoff.may = cutoff.may.max(after);
            if effect != Effect::Failed {
                cutoff.must = cutoff.must.max(before);
                if world.timeline.after_kill(started) {
                    cutoff.must_after_kill = cutoff.must_after_kill.max(before);
                }
            }
            let token = Arc::clone(&state.token);
            state.cutoff.refuses(token.iat).then_some(token)
        };
        if let Some(token) = cut_off {
            world.remember_revoked(Revoked::of(&token, Cause::LogoutAll, started, done));
        }
        world.replace_token(user)
    }

    async fn change_user_roles(&mut self) -> Result<()> {
        let user = self.ctx.pick_user(&mut self.rng);
        let roles = random_roles(&mut self.rng);
        let (record, seq) = {
            let mut state = lock(&self.ctx.world.users[user]);
            state.version += 1;
            state.seq += 1;
            state.confirmed = None;
            state.roles = roles;
            state.record = Arc::new(user_record(user, state.version, &roles));
            (Arc::clone(&state.record), state.seq)
        };
        if let Err(error) = self.repository.upsert(&record).await {
            self.ctx
                .tally
                .mutation(Mutation::UserRoles, Effect::Failed, || {
                    format!("user-{user}: repository: {error}")
                });
            return Ok(());
        }
        self.confirm_user(Mutation::UserRoles, user, seq).await;
        Ok(())
    }

    async fn confirm_user(&mut self, mutation: Mutation, user: usize, seq: u64) {
        let started = Instant::now();
        let result = self.ctx.auth.invalidate_user(&user_id(user)).await;
        let done = Instant::now();
        let effect = self.effect(started, &result);
        self.ctx.tally.mutation(mutation, effect, || {
            format!("invalidate_user(user-{user}): {result:?}")
        });
        if effect == Effect::Confirmed {
            let mut state = lock(&self.ctx.world.users[user]);
            if state.seq == seq {
                state.confirmed = Some(Confirmed::Invalidated { started, done });
            }
        } else if effect.is_refusal() {
            self.unsettled_users.push((user, seq));
        }
    }

    async fn change_role_permissions(&mut self) -> Result<()> {
        let role = self.rng.random_range(0..ROLES);
        let (permissions, seq) = {
            let mut state = lock(&self.ctx.world.roles[role]);
            state.version += 1;
            state.seq += 1;
            state.confirmed = None;
            state.permissions = Arc::new(role_permissions(role, state.version));
            (Arc::clone(&state.permissions), state.seq)
        };
        let name = role_name(role);
        let written = self
            .repository
            .upsert_role(&name, permissions.iter().cloned())
            .await;
        if let Err(error) = written {
            self.ctx
                .tally
                .mutation(Mutation::RolePermissions, Effect::Failed, || {
                    format!("{name}: repository: {error}")
                });
            return Ok(());
        }
        self.confirm_role(Mutation::RolePermissions, role, seq)
            .await;
        Ok(())
    }

    async fn confirm_role(&mut self, mutation: Mutation, role: usize, seq: u64) {
        let started = Instant::now();
        let result = self.ctx.auth.invalidate_role(&role_name(role)).await;
        let done = Instant::now();
        let effect = self.effect(started, &result);
        self.ctx.tally.mutation(mutation, effect, || {
            format!("invalidate_role(role-{role}): {result:?}")
        });
        if effect == Effect::Confirmed {
            let mut state = lock(&self.ctx.world.roles[role]);
            if state.seq == seq {
                state.confirmed = Some(Confirmed::Invalidated { started, done });
            }
        } else if effect.is_refusal() {
            self.unsettled_roles.push((role, seq));
        }
    }

    /// Retries every refused invalidation whose change is still the latest, every
    /// [`RETRY_INTERVAL`]: each try drops the key from L1 (and a role's from every user's
    /// derived permissions) whether or not Redis takes it, so retrying on every tick would
    /// turn an outage into an invalidation storm no application would make.
    async fn retry_unsettled(&mut self) {
        if Instant::now() < self.next_retry {
            return;
        }
        self.next_retry = Instant::now() + RETRY_INTERVAL;
        for (user, seq) in std::mem::take(&mut self.unsettled_users) {
            if lock(&self.ctx.world.users[user]).seq == seq {
                self.confirm_user(Mutation::RetriedInvalidation, user, seq)
                    .await;
            }
        }
        for (role, seq) in std::mem::take(&mut self.unsettled_roles) {
            if lock(&self.ctx.world.roles[role]).seq == seq {
                self.confirm_role(Mutation::RetriedInvalidation, role, seq)
                    .await;
            }
        }
    }
}

/// Whether a mutation that succeeded left its write to the shared cache pending: a
/// revocation does (in force here, retried); the other mutations fail instead.
trait Pending {
    fn is_pending(&self) -> bool;
}

impl Pending for () {
    fn is_pending(&self) -> bool {
        false
    }
}

impl Pending for Revocation {
    fn is_pending(&self) -> bool {
        *self == Revocation::Pending
    }
}
