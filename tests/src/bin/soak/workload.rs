//! The authenticating tasks: the current token of a Zipf-drawn user, a token of nobody, or
//! a token revoked earlier — each answer judged against the model and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use authcache::AuthService;
use rand::RngExt;
use rand::distr::Distribution;
use rand::rngs::SmallRng;
use rand_distr::Zipf;

use crate::judge::{Seen, describe, expectation, judge, judge_ghost, judge_revoked};
use crate::model::{Before, World};
use crate::tally::Tally;

/// Zipf exponent: a few users are very active, most are not.
pub(crate) const ZIPF_EXPONENT: f64 = 1.1;
/// Per mille of requests that present a ghost's token, and that re-check a revoked token.
const GHOST_PER_MILLE: u32 = 10;
const RECHECK_PER_MILLE: u32 = 30;

/// What every task of the run shares.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) auth: AuthService,
    pub(crate) world: World,
    pub(crate) tally: Tally,
    pub(crate) zipf: Zipf<f64>,
    pub(crate) stop: AtomicBool,
}

impl Ctx {
    pub(crate) fn pick_user(&self, rng: &mut SmallRng) -> usize {
        // Zipf samples are 1..=n as floats; truncation picks the rank.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rank = self.zipf.sample(rng) as usize;
        rank.clamp(1, self.world.users.len()) - 1
    }

    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    async fn authenticate_user(&self, rng: &mut SmallRng) {
        let user = self.pick_user(rng);
        let before = self.world.before(user);
        let result = self.auth.authenticate(&before.token.bearer).await;
        let after = self.world.after(user, &before);
        let seen = judge(&before, &after, &result, &self.world.timeline);
        let persists = match seen {
            Seen::Stale => self.stale_again(user, &before).await,
            _ => String::new(),
        };
        self.tally.see(seen, || {
            format!("{}{persists}", describe(&expectation(&before), &result))
        });
    }

    /// Asks again at once, for the report: whether a stale answer is a passing window or
    /// stuck in a cache.
    async fn stale_again(&self, user: usize, before: &Before) -> String {
        let again = self.auth.authenticate(&before.token.bearer).await;
        let after = self.world.after(user, before);
        let seen = judge(before, &after, &again, &self.world.timeline);
        format!("; asked again at once: {}", seen.label())
    }

    async fn recheck_revoked(&self, rng: &mut SmallRng) {
        let Some(revoked) = self.world.some_revoked(rng) else {
            return self.authenticate_user(rng).await;
        };
        let bearer = match self.world.bearer_of(&revoked) {
            Ok(bearer) => bearer,
            Err(error) => {
                return self
                    .tally
                    .see(Seen::Error, || format!("re-signing: {error}"));
            }
        };
        let result = self.auth.authenticate(&bearer).await;
        self.tally.see(judge_revoked(&result), || {
            describe(&format!("revoked token of user-{}", revoked.user), &result)
        });
    }

    async fn authenticate_ghost(&self, rng: &mut SmallRng) {
        let ghost = rng.random_range(0..self.world.ghosts.len());
        let result = self.auth.authenticate(&self.world.ghosts[ghost]).await;
        self.tally.see(judge_ghost(&result), || {
            describe(&format!("ghost-{ghost}"), &result)
        });
    }
}

/// One task: authenticate until told to stop, every choice drawn from `rng` (its own
/// stream of the run's seed).
pub(crate) async fn work(ctx: Arc<Ctx>, mut rng: SmallRng) {
    while !ctx.stopped() {
        let roll = rng.random_range(0..1000);
        if roll < GHOST_PER_MILLE {
            ctx.authenticate_ghost(&mut rng).await;
        } else if roll < GHOST_PER_MILLE + RECHECK_PER_MILLE {
            ctx.recheck_revoked(&mut rng).await;
        } else {
            ctx.authenticate_user(&mut rng).await;
        }
        // A server yields between requests (socket reads); without this, a task whose
        // answers all come from L1 never yields and starves the others.
        tokio::task::yield_now().await;
    }
}
