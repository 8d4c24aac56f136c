//! After the run: every revoked token kept is checked again on instance A (it must refuse
//! all of them) and on a second instance B, which reaches the marks through the new Redis
//! only.

use std::time::{Duration, Instant};

use authcache::{AuthError, AuthService, Principal};

use crate::chaos::{RECOVERY_TIMEOUT, wait_for};
use crate::judge::{Seen, describe, judge_revoked};
use crate::model::{Cause, Revoked, lock};
use crate::workload::Ctx;

/// Bound on one token's check by the second instance while its L2 answers 503.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the second instance made of the revoked tokens.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Probe {
    pub(crate) checked: u64,
    pub(crate) refused_by_a: u64,
    /// Revoked after the kill (marks retried into the new Redis): B must refuse them.
    pub(crate) must_refuse: u64,
    pub(crate) must_refuse_refused: u64,
    /// Revoked only before the kill: their marks were in the Redis that died, and A wrote
    /// them back after the restart.
    pub(crate) lost: u64,
    pub(crate) lost_accepted: u64,
    /// Overlapping the kill: either answer.
    pub(crate) either: u64,
}

pub(crate) async fn final_checks(ctx: &Ctx, second: &AuthService) -> Probe {
    let tally = &ctx.tally;
    let settled = wait_for(RECOVERY_TIMEOUT, || {
        ctx.auth.stats().pending_revocations == 0
    })
    .await;
    if !settled {
        tally.final_failure(format!(
            "{} marks still not accepted by Redis {RECOVERY_TIMEOUT:?} after the run",
            ctx.auth.stats().pending_revocations
        ));
    }
    if let Err(reason) = second_is_ready(ctx, second).await {
        tally.final_failure(reason);
        return Probe::default();
    }
    let mut probe = Probe::default();
    for revoked in ctx.world.all_revoked() {
        probe.checked += 1;
        let bearer = match ctx.world.bearer_of(&revoked) {
            Ok(bearer) => bearer,
            Err(error) => {
                tally.final_failure(format!("re-signing a revoked token: {error}"));
                continue;
            }
        };
        let result = ctx.auth.authenticate(&bearer).await;
        match judge_revoked(&result) {
            Seen::RefusedRevoked => probe.refused_by_a += 1,
            _ => tally.final_failure(describe(
                &format!("after the run, A: revoked token of user-{}", revoked.user),
                &result,
            )),
        }
        probe_second(ctx, second, &revoked, &bearer, &mut probe).await;
    }
    probe
}

/// Waits until B answers a valid token (so its revocation checks reach the new Redis).
async fn second_is_ready(ctx: &Ctx, second: &AuthService) -> std::result::Result<(), String> {
    let token = ctx
        .world
        .fresh_token(0)
        .map_err(|error| format!("cannot issue a token: {error}"))?;
    match answer_of(second, &token.bearer).await {
        Ok(_) => Ok(()),
        Err(error) => Err(format!(
            "second instance never accepted a valid token after the run: {error}"
        )),
    }
}

/// B's answer, retried while its L2 answers 503 (B refuses what it cannot check).
async fn answer_of(second: &AuthService, bearer: &str) -> Result<Principal, AuthError> {
    let deadline = Instant::now() + PROBE_TIMEOUT;
    loop {
        let result = second.authenticate(bearer).await;
        match result {
            Err(error) if error.is_unavailable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

/// B's answer to one revoked token: it must refuse one revoked after the kill, and one
/// revoked only before it too (its mark died with the old Redis; A wrote it back); one
/// overlapping the kill may go either way.
async fn probe_second(
    ctx: &Ctx,
    second: &AuthService,
    revoked: &Revoked,
    bearer: &str,
    probe: &mut Probe,
) {
    let timeline = &ctx.world.timeline;
    let must_after_kill = lock(&ctx.world.users[revoked.user]).cutoff.must_after_kill;
    let must_refuse = (revoked.cause == Cause::Logout && timeline.after_kill(revoked.started))
        || (must_after_kill > 0 && revoked.iat <= must_after_kill);
    let lost = !must_refuse && timeline.before_kill(revoked.done);
    let result = answer_of(second, bearer).await;
    let refused = matches!(result, Err(AuthError::Revoked));
    let what = || format!("second instance: revoked token of user-{}", revoked.user);
    if !refused && result.is_err() {
        ctx.tally.final_failure(describe(&what(), &result));
    }
    if must_refuse {
        probe.must_refuse += 1;
        if refused {
            probe.must_refuse_refused += 1;
        } else if result.is_ok() {
            ctx.tally
                .final_failure(describe(&format!("{} after the kill", what()), &result));
        }
    } else if lost {
        // Their marks died with Redis' data; A writes its own back when its bus
        // resubscribes, so B must refuse these too.
        probe.lost += 1;
        probe.lost_accepted += u64::from(result.is_ok());
        if result.is_ok() {
            ctx.tally.final_failure(describe(
                &format!("{} before the kill (A writes its marks back)", what()),
                &result,
            ));
        }
    } else {
        probe.either += 1;
    }
}
