//! The Redis restart: killed halfway, down for a moment, back empty on the same port; and
//! the bounded wait until instance A uses it again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use authcache::{BreakerState, Stats};
use authcache_tests::redis_server::RedisServer;

use crate::workload::Ctx;

/// Bound on Redis being used again after the restart (breaker cool-down and bus backoff
/// are both capped far below it), and on revocation marks reaching it.
pub(crate) const RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// A role no user holds: invalidating it is a harmless call to Redis.
const IDLE_PROBE_ROLE: &str = "soak-idle-probe";

/// Kills Redis at `kill_at`, keeps it down for `outage`, restarts it empty on its port,
/// then waits (bounded) until instance A uses it again. Returns the server, to keep it
/// alive until the end.
pub(crate) async fn restart_redis_midway(
    ctx: Arc<Ctx>,
    redis: RedisServer,
    kill_at: Duration,
    outage: Duration,
) -> Result<RedisServer> {
    let timeline = &ctx.world.timeline;
    tokio::time::sleep_until((timeline.start + kill_at).into()).await;
    let _ = timeline.kill_started.set(Instant::now());
    let _ = timeline.answered_at_kill.set(ctx.tally.authentications());
    let redis = blocking(redis, RedisServer::kill).await?;
    let _ = timeline.kill_done.set(Instant::now());
    tokio::time::sleep(outage).await;
    let redis = blocking(redis, RedisServer::restart)
        .await
        .context("redis-server did not come back")?;
    let _ = timeline.restart_done.set(Instant::now());
    if redis_used_again(&ctx).await {
        let _ = timeline.recovered.set(Instant::now());
        let _ = timeline
            .answered_at_recovery
            .set(ctx.tally.authentications());
    }
    Ok(redis)
}

/// Polls (bounded) until A uses Redis again. An open breaker closes only on a call, and
/// once the workload has stopped nothing calls: then an invalidation of a role no user
/// holds is that call.
async fn redis_used_again(ctx: &Ctx) -> bool {
    let deadline = Instant::now() + RECOVERY_TIMEOUT;
    while Instant::now() < deadline {
        if l2_in_use(&ctx.auth.stats()) {
            return true;
        }
        if ctx.stopped() {
            let _ = ctx.auth.invalidate_role(IDLE_PROBE_ROLE).await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    l2_in_use(&ctx.auth.stats())
}

/// Runs a blocking test-kit call on `redis` off the runtime's workers.
async fn blocking(mut redis: RedisServer, call: fn(&mut RedisServer)) -> Result<RedisServer> {
    Ok(tokio::task::spawn_blocking(move || {
        call(&mut redis);
        redis
    })
    .await?)
}

/// The breaker lets calls through and the bus listens.
fn l2_in_use(stats: &Stats) -> bool {
    stats
        .breaker
        .is_some_and(|breaker| breaker.state == BreakerState::Closed)
        && stats.bus_subscribed == Some(true)
}

/// Polls `done` every 10 ms for at most `timeout`; whether it came true.
pub(crate) async fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}
