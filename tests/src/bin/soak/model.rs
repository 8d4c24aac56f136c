//! The model of what was done, and so of what must, may and must not be seen: users and
//! roles with the version the repository holds and whether an invalidation confirmed it,
//! the tokens issued and revoked, `logout_all` cutoffs, and when Redis went away.
//!
//! Only the mutator writes it, one change at a time; the workers read it before and after
//! each request.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Result;
use authcache::{Claims, TokenIssuer, User};
use authcache_jwt::unix_now;
use rand::RngExt;
use rand::rngs::SmallRng;

/// HS256 secret of the soak's token issuer.
pub(crate) const TOKEN_SECRET: &[u8] = b"soak-token-secret-of-at-least-32-bytes";
/// Roles in the repository; a user holds one or two of them.
pub(crate) const ROLES: usize = 8;
pub(crate) const MAX_ROLES_PER_USER: usize = 2;
/// Ids that are no user's: their tokens verify, their subject is unknown.
const GHOSTS: usize = 16;
/// Far beyond any run: no token expires during the soak.
const TOKEN_LIFETIME: Duration = Duration::from_secs(2 * 3600);
/// Revoked tokens kept for re-checks and the final probes (the oldest go first).
const REVOKED_KEPT: usize = 4096;
/// A fill that read before a tombstone may write at most this long after its read
/// ([`authcache_core::tiered::FILL_WINDOW`], plus the round trip of the write itself).
const FILL_REACH: Duration =
    authcache_core::tiered::FILL_WINDOW.saturating_add(Duration::from_secs(1));

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain field updates: a panic cannot leave a model half-updated.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn user_id(user: usize) -> String {
    format!("user-{user}")
}

pub(crate) fn role_name(role: usize) -> String {
    format!("role-{role}")
}

/// A role's permissions: one it always has, one that names its version (so a stale list
/// is told apart from a fresh one).
pub(crate) fn role_permissions(role: usize, version: u64) -> Vec<String> {
    vec![
        format!("role-{role}:read"),
        format!("role-{role}:v{version}"),
    ]
}

/// The user record of a version: the version is the name, so a stale record shows.
pub(crate) fn user_record(user: usize, version: u64, roles: &RoleIds) -> User {
    User::new(
        user_id(user),
        format!("user{user}@soak.example"),
        format!("v{version}"),
    )
    .with_roles(roles.iter().flatten().map(|&role| role_name(role)))
}

/// The roles of a user: one or two distinct role indexes.
pub(crate) type RoleIds = [Option<usize>; MAX_ROLES_PER_USER];

fn initial_roles(user: usize) -> RoleIds {
    let second = (user * 3 + 1) % ROLES;
    let first = user % ROLES;
    [
        Some(first),
        (user.is_multiple_of(2) && second != first).then_some(second),
    ]
}

pub(crate) fn random_roles(rng: &mut SmallRng) -> RoleIds {
    let first = rng.random_range(0..ROLES);
    let second = rng.random_range(0..ROLES);
    [Some(first), (second != first).then_some(second)]
}

/// One issued token.
#[derive(Debug)]
pub(crate) struct Token {
    pub(crate) bearer: String,
    pub(crate) user: usize,
    pub(crate) iat: u64,
    pub(crate) jti: u64,
    /// The mutator began logging it out.
    pub(crate) logout_started: AtomicBool,
    /// Its logout returned (`Ok`, or 503 with the mark in force here).
    pub(crate) revoked: AtomicBool,
}

/// How a change to the data came to be confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Confirmed {
    /// Seeded before anything was cached.
    Seeded,
    /// By an invalidation that returned `Ok`.
    Invalidated { started: Instant, done: Instant },
}

/// A user's `logout_all` cutoffs, in unix seconds (0: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Cutoff {
    /// The latest clock read before a call that returned: tokens issued before it are
    /// refused (a whole-second `iat` is cut at the cutoff's second: one issued in that
    /// second is accepted).
    pub(crate) must: u64,
    /// The latest clock read after a call returned: tokens issued up to it may be.
    pub(crate) may: u64,
    /// A call has begun and not returned: any token of the user may be refused.
    pub(crate) in_flight: bool,
    /// `must` over the calls begun after the kill: those marks are in the new Redis.
    pub(crate) must_after_kill: u64,
}

impl Cutoff {
    pub(crate) fn refuses(&self, iat: u64) -> bool {
        self.must > 0 && iat < self.must
    }

    fn may_refuse(&self, iat: u64) -> bool {
        self.in_flight || (self.may > 0 && iat <= self.may)
    }
}

/// What is known of one user.
#[derive(Debug)]
pub(crate) struct UserState {
    pub(crate) record: Arc<User>,
    pub(crate) roles: RoleIds,
    pub(crate) version: u64,
    /// The token the workers present for this user.
    pub(crate) token: Arc<Token>,
    /// Bumped when a change of the record begins.
    pub(crate) seq: u64,
    /// `None` while the latest record is not confirmed by an invalidation.
    pub(crate) confirmed: Option<Confirmed>,
    pub(crate) cutoff: Cutoff,
}

/// What is known of one role.
#[derive(Debug)]
pub(crate) struct RoleState {
    pub(crate) permissions: Arc<Vec<String>>,
    pub(crate) version: u64,
    pub(crate) seq: u64,
    pub(crate) confirmed: Option<Confirmed>,
}

/// Why a token is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    Logout,
    LogoutAll,
}

/// A revoked token and when the call that revoked it ran. Kept small — its bearer is
/// signed again when needed (HS256 is deterministic) — so that the soak's own record of
/// revocations weighs little in the RSS it measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Revoked {
    pub(crate) user: usize,
    pub(crate) iat: u64,
    pub(crate) jti: u64,
    pub(crate) cause: Cause,
    pub(crate) started: Instant,
    pub(crate) done: Instant,
}

/// When Redis went away and came back.
#[derive(Debug)]
pub(crate) struct Timeline {
    pub(crate) start: Instant,
    pub(crate) kill_started: OnceLock<Instant>,
    pub(crate) kill_done: OnceLock<Instant>,
    pub(crate) restart_done: OnceLock<Instant>,
    /// A's breaker closed and its bus subscribed again after the restart.
    pub(crate) recovered: OnceLock<Instant>,
    /// Authentications answered by the kill, and by the recovery.
    pub(crate) answered_at_kill: OnceLock<u64>,
    pub(crate) answered_at_recovery: OnceLock<u64>,
}

impl Timeline {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            kill_started: OnceLock::new(),
            kill_done: OnceLock::new(),
            restart_done: OnceLock::new(),
            recovered: OnceLock::new(),
            answered_at_kill: OnceLock::new(),
            answered_at_recovery: OnceLock::new(),
        }
    }

    /// Between the kill and A using Redis again.
    pub(crate) fn in_outage(&self, at: Instant) -> bool {
        self.kill_started.get().is_some_and(|&kill| at >= kill)
            && self.recovered.get().is_none_or(|&back| at < back)
    }

    pub(crate) fn before_kill(&self, at: Instant) -> bool {
        self.kill_started.get().is_none_or(|&kill| at < kill)
    }

    pub(crate) fn after_kill(&self, at: Instant) -> bool {
        self.kill_done.get().is_some_and(|&kill| at > kill)
    }

    /// Whether a confirmation's tombstone may have been lost with the killed Redis while a
    /// fill that read before it was still allowed to write: its invalidation began before
    /// the kill, and ended less than [`FILL_REACH`] before the restart.
    pub(crate) fn exposed(&self, confirmed: Confirmed) -> bool {
        let Confirmed::Invalidated { started, done } = confirmed else {
            return false;
        };
        match (self.kill_done.get(), self.restart_done.get()) {
            (Some(&kill), Some(&restart)) => started < kill && done + FILL_REACH > restart,
            _ => false,
        }
    }

    pub(crate) fn seconds(&self, at: Option<&Instant>) -> String {
        at.map_or("never".to_owned(), |at| {
            format!("{:.1} s", at.duration_since(self.start).as_secs_f64())
        })
    }
}

/// Everything the workers and the mutator share about the data.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) users: Vec<Mutex<UserState>>,
    pub(crate) roles: Vec<Mutex<RoleState>>,
    pub(crate) revoked: Mutex<VecDeque<Revoked>>,
    pub(crate) ghosts: Vec<String>,
    pub(crate) issuer: TokenIssuer,
    pub(crate) next_jti: AtomicU64,
    pub(crate) timeline: Timeline,
}

impl World {
    pub(crate) fn new(users: usize) -> Result<Self> {
        let issuer = TokenIssuer::hs256(TOKEN_SECRET);
        let ghosts = (0..GHOSTS)
            .map(|ghost| issuer.issue(&format!("ghost-{ghost}"), TOKEN_LIFETIME))
            .map(|token| token.map(|token| format!("Bearer {token}")))
            .collect::<Result<_, _>>()?;
        let mut world = Self {
            users: Vec::with_capacity(users),
            roles: (0..ROLES)
                .map(|_| Mutex::new(RoleState::seeded()))
                .collect(),
            revoked: Mutex::new(VecDeque::with_capacity(REVOKED_KEPT)),
            ghosts,
            issuer,
            next_jti: AtomicU64::new(0),
            timeline: Timeline::new(),
        };
        for user in 0..users {
            let roles = initial_roles(user);
            let token = world.issue(user, unix_now())?;
            world.users.push(Mutex::new(UserState {
                record: Arc::new(user_record(user, 0, &roles)),
                roles,
                version: 0,
                token,
                seq: 0,
                confirmed: Some(Confirmed::Seeded),
                cutoff: Cutoff::default(),
            }));
        }
        Ok(world)
    }

    /// A new token for `user` issued at `iat`, with a unique `jti`: two tokens issued in
    /// the same second are distinct assertions, revoked separately.
    pub(crate) fn issue(&self, user: usize, iat: u64) -> Result<Arc<Token>> {
        let jti = self.next_jti.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(Token {
            bearer: self.sign(user, iat, jti)?,
            user,
            iat,
            jti,
            logout_started: AtomicBool::new(false),
            revoked: AtomicBool::new(false),
        }))
    }

    /// The bearer of the token `(user, iat, jti)`: the same bytes every time.
    fn sign(&self, user: usize, iat: u64, jti: u64) -> Result<String> {
        let mut claims = Claims::new(user_id(user), iat + TOKEN_LIFETIME.as_secs());
        claims.iat = Some(iat);
        claims.jti = Some(format!("soak-{jti}"));
        Ok(format!("Bearer {}", self.issuer.sign(&claims)?))
    }

    /// The bearer of a revoked token, signed again.
    pub(crate) fn bearer_of(&self, revoked: &Revoked) -> Result<String> {
        self.sign(revoked.user, revoked.iat, revoked.jti)
    }

    /// A token for `user` that no cutoff so far can refuse.
    pub(crate) fn fresh_token(&self, user: usize) -> Result<Arc<Token>> {
        let may = lock(&self.users[user]).cutoff.may;
        self.issue(user, unix_now().max(may + 1))
    }

    pub(crate) fn replace_token(&self, user: usize) -> Result<()> {
        let token = self.fresh_token(user)?;
        lock(&self.users[user]).token = token;
        Ok(())
    }

    pub(crate) fn current_token(&self, user: usize) -> Arc<Token> {
        Arc::clone(&lock(&self.users[user]).token)
    }

    pub(crate) fn remember_revoked(&self, revoked: Revoked) {
        let mut kept = lock(&self.revoked);
        if kept.len() == REVOKED_KEPT {
            kept.pop_front();
        }
        kept.push_back(revoked);
    }

    pub(crate) fn some_revoked(&self, rng: &mut SmallRng) -> Option<Revoked> {
        let kept = lock(&self.revoked);
        if kept.is_empty() {
            return None;
        }
        kept.get(rng.random_range(0..kept.len())).copied()
    }

    pub(crate) fn all_revoked(&self) -> Vec<Revoked> {
        lock(&self.revoked).iter().copied().collect()
    }

    /// What must, may and must not be seen for `user`, read before the request.
    pub(crate) fn before(&self, user: usize) -> Before {
        let (token, must_refuse, seq, record, confirmed, role_ids) = {
            let state = lock(&self.users[user]);
            let token = Arc::clone(&state.token);
            let must_refuse =
                token.revoked.load(Ordering::Acquire) || state.cutoff.refuses(token.iat);
            (
                token,
                must_refuse,
                state.seq,
                Arc::clone(&state.record),
                state.confirmed,
                state.roles,
            )
        };
        let roles = role_ids.map(|role| role.map(|role| self.role_before(role)));
        Before {
            at: Instant::now(),
            token,
            must_refuse,
            seq,
            record,
            confirmed,
            roles,
        }
    }

    fn role_before(&self, role: usize) -> RoleBefore {
        let state = lock(&self.roles[role]);
        RoleBefore {
            role,
            seq: state.seq,
            permissions: Arc::clone(&state.permissions),
            confirmed: state.confirmed,
        }
    }

    /// What changed for `user` while the request ran.
    pub(crate) fn after(&self, user: usize, before: &Before) -> After {
        let (seq, may_refuse_cutoff) = {
            let state = lock(&self.users[user]);
            (state.seq, state.cutoff.may_refuse(before.token.iat))
        };
        After {
            logout_started: before.token.logout_started.load(Ordering::Acquire),
            may_refuse_cutoff,
            seq,
            role_seqs: before
                .roles
                .each_ref()
                .map(|role| role.as_ref().map(|role| lock(&self.roles[role.role]).seq)),
        }
    }
}

impl Revoked {
    pub(crate) fn of(token: &Token, cause: Cause, started: Instant, done: Instant) -> Self {
        Self {
            user: token.user,
            iat: token.iat,
            jti: token.jti,
            cause,
            started,
            done,
        }
    }
}

impl RoleState {
    pub(crate) fn seeded() -> Self {
        Self {
            permissions: Arc::new(Vec::new()),
            version: 0,
            seq: 0,
            confirmed: Some(Confirmed::Seeded),
        }
    }
}

/// A user's state read before a request.
#[derive(Debug)]
pub(crate) struct Before {
    /// When it was read: just before the request.
    pub(crate) at: Instant,
    pub(crate) token: Arc<Token>,
    pub(crate) must_refuse: bool,
    pub(crate) seq: u64,
    pub(crate) record: Arc<User>,
    pub(crate) confirmed: Option<Confirmed>,
    pub(crate) roles: [Option<RoleBefore>; MAX_ROLES_PER_USER],
}

#[derive(Debug)]
pub(crate) struct RoleBefore {
    pub(crate) role: usize,
    pub(crate) seq: u64,
    pub(crate) permissions: Arc<Vec<String>>,
    pub(crate) confirmed: Option<Confirmed>,
}

/// A user's state read after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct After {
    pub(crate) logout_started: bool,
    pub(crate) may_refuse_cutoff: bool,
    pub(crate) seq: u64,
    pub(crate) role_seqs: [Option<u64>; MAX_ROLES_PER_USER],
}

#[cfg(test)]
mod tests;
