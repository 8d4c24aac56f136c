//! The soak: a mixed workload against a real Redis (L2) and the MongoDB-compatible
//! repository for a fixed time, with Redis killed and restarted empty halfway.
//!
//! ```text
//! cargo xtask soak --seconds 60               # provisions the servers, builds, runs this
//! cargo xtask soak --seconds 15 --seed 42     # the workload of the run that printed seed 42
//! ```
//!
//! The test kit starts a `redis-server` and a SecantusDB. Users live in SecantusDB
//! (`MongoUserRepository`), and one `AuthService` (instance A) serves them through Redis.
//! Tasks authenticate the current token of Zipf-drawn users (plus a few tokens of unknown
//! users and re-checks of revoked tokens), while one mutator logs tokens out, logs users
//! out everywhere, changes users' roles and roles' permissions (repository first, then
//! `invalidate_user` / `invalidate_role`). Halfway, redis-server is killed, stays down for a
//! moment, and comes back empty on the same port.
//!
//! Every answer is judged against a model of what must, may and must not be seen:
//!
//! - a token whose logout (or its user's `logout_all`) returned before the request began
//!   must be refused — by A, before, during and after the restart: A keeps the marks it
//!   wrote (the revocation protocol's sticky table), so an empty Redis loses none of them
//!   for A, and a logout Redis refused is still in force here;
//! - a token no logout touched must be accepted, unless one raced with the request;
//! - once a change's invalidation returned `Ok`, every later request sees the new record
//!   and permissions (the coherence bound on the calling instance is zero). An invalidation
//!   Redis refused (down, or a timeout under load) is not a confirmation: the mutator
//!   retries it, as an application would, and until then either answer is expected. One
//!   window is exempt by design: a confirmation whose tombstone was written to the Redis
//!   that was then killed may be undone by a fill that read before it and writes after the
//!   restart (the empty Redis no longer holds the tombstone). Such answers are counted
//!   apart as expected, never silently;
//! - `authenticate` never fails with 503: the repository is up, and cache trouble never
//!   fails a request. A refused mutation (503) is expected: the caller is told, and A
//!   enforces the mark anyway.
//!
//! After the run, a second instance (B, built at the start, idle, subscribed to the bus)
//! checks the revoked tokens: those revoked after the kill must be refused by B too (A
//! retried their marks into the new Redis); those revoked only before the kill are reported
//! — their marks were in the Redis that died, and only A remembers them.
//!
//! RSS (`VmRSS` of this process) is sampled every second; growth is the last sample over
//! the one at the end of the warm-up (the first third, at least 5 s), printed with its
//! parts before the kill, across the restart and after it. Exit status: non-zero
//! on any unexpected result, on a workload that did not exercise what it should, and on RSS
//! growth above 5 % — judged for runs of 60 s or more only: a shorter run on a shared
//! machine is too short for RSS to be a reliable signal, so it is printed, not judged.
//!
//! Every random choice derives from one seed (`--seed N`, else a fresh one), printed first
//! with the command that replays it, and again next to the verdict. The seed fixes the
//! workload — the sequence of choices each task and the mutator make — not the interleaving:
//! thread scheduling and timing still differ between runs (see `seed.rs`).

mod args;
mod chaos;
mod judge;
mod memory;
mod model;
mod mutator;
mod probe;
mod report;
mod seed;
mod tally;
mod workload;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use authcache::{
    AuthService, CacheConfig, JwtVerifier, MongoUserRepository, RevocationCheck, User,
    UserRepository,
};
use authcache_tests::mongo_server::MongoServer;
use authcache_tests::redis_server::RedisServer;
use authcache_users::MongoOptions;
use rand_distr::Zipf;

use crate::args::Args;
use crate::chaos::{RECOVERY_TIMEOUT, restart_redis_midway, wait_for};
use crate::memory::{Sample, sample_until_the_end};
use crate::model::{ROLES, TOKEN_SECRET, Timeline, World, lock, role_name, role_permissions};
use crate::mutator::Mutator;
use crate::probe::final_checks;
use crate::report::{Run, Verdict, report};
use crate::seed::Stream;
use crate::tally::Tally;
use crate::workload::{Ctx, ZIPF_EXPONENT, work};

/// HMAC key of the cache entries (a shared L2 must be signed).
const CACHE_SIGNING_KEY: &[u8] = b"soak-cache-signing-key-of-32-bytes!";
/// Key prefix in Redis.
const PREFIX: &str = "soak";
/// Bound on a repository call, in the driver and in the service (default 5 s each).
/// SecantusDB is a Python server: on a starved shared machine one query can stall for
/// seconds, which is the machine's slowness, not a defect the soak looks for. A hung
/// repository still shows, as 503s.
const REPOSITORY_TIMEOUT: Duration = Duration::from_secs(20);
/// Concurrent upserts while seeding.
const SEED_CONCURRENCY: usize = 64;

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("soak: {error:#}");
            return ExitCode::from(2);
        }
    };
    let seed = args.seed;
    println!("soak: seed {seed} (replay: {})", args.replay());
    match soak(args).await {
        Ok(verdict) if verdict.passed() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("soak: {error:#} (seed {seed})");
            ExitCode::FAILURE
        }
    }
}

/// Seeds the roles and users of `world` into the repository.
async fn seed(repository: &Arc<MongoUserRepository>, world: &World) -> Result<()> {
    for role in 0..ROLES {
        let permissions = Arc::new(role_permissions(role, 0));
        repository
            .upsert_role(&role_name(role), permissions.iter().cloned())
            .await?;
        lock(&world.roles[role]).permissions = permissions;
    }
    let records: Vec<Arc<User>> = world
        .users
        .iter()
        .map(|user| Arc::clone(&lock(user).record))
        .collect();
    for chunk in records.chunks(SEED_CONCURRENCY) {
        let writes: Vec<_> = chunk
            .iter()
            .map(|record| {
                let repository = Arc::clone(repository);
                let record = Arc::clone(record);
                tokio::spawn(async move { repository.upsert(&record).await })
            })
            .collect();
        for write in writes {
            write.await??;
        }
    }
    Ok(())
}

async fn service(
    redis_url: &str,
    repository: &Arc<MongoUserRepository>,
    check: RevocationCheck,
) -> Result<AuthService> {
    let auth = AuthService::builder()
        .verifier(JwtVerifier::hs256(TOKEN_SECRET))
        .shared_repository(Arc::clone(repository) as Arc<dyn UserRepository>)
        .cache(CacheConfig::redis(redis_url))
        .signing_key(CACHE_SIGNING_KEY)
        .prefix(PREFIX)
        .revocation_check(check)
        .repository_timeout(REPOSITORY_TIMEOUT)
        .build()
        .await?;
    if !wait_for(RECOVERY_TIMEOUT, || {
        auth.stats().bus_subscribed == Some(true)
    })
    .await
    {
        bail!("the invalidation bus did not subscribe within {RECOVERY_TIMEOUT:?}");
    }
    Ok(auth)
}

/// The servers, the seeded repository and the two instances, ready to run.
struct SetUp {
    redis: RedisServer,
    /// Kept alive until the end: dropping it kills SecantusDB.
    _mongo: MongoServer,
    repository: Arc<MongoUserRepository>,
    world: World,
    auth: AuthService,
    second: AuthService,
    took: Duration,
}

async fn set_up(args: &Args) -> Result<SetUp> {
    let started = Instant::now();
    let redis = tokio::task::spawn_blocking(RedisServer::start).await?;
    let mongo = MongoServer::start().await;
    let options = MongoOptions::default().operation_timeout(REPOSITORY_TIMEOUT);
    let database = mongo.fresh_database();
    let repository =
        Arc::new(MongoUserRepository::connect_with(&mongo.uri(), &database, options).await?);
    let world = World::new(args.users)?;
    seed(&repository, &world).await?;
    let auth = service(&redis.url(), &repository, RevocationCheck::FailOpen).await?;
    // B refuses what it cannot check: its answers in the final checks are never a guess.
    let second = service(&redis.url(), &repository, RevocationCheck::FailClosed).await?;
    Ok(SetUp {
        redis,
        _mongo: mongo,
        repository,
        world,
        auth,
        second,
        took: started.elapsed(),
    })
}

async fn soak(args: Args) -> Result<Verdict> {
    let SetUp {
        redis,
        _mongo,
        repository,
        mut world,
        auth,
        second,
        took,
    } = set_up(&args).await?;
    println!(
        "soak: {} s, {} users in SecantusDB, {} tasks, {} mutations/s; Redis killed at {:.1} s for {:.1} s (set up in {took:.1?})",
        args.seconds,
        args.users,
        args.tasks,
        args.mutations_per_second,
        args.kill_at().as_secs_f64(),
        args.outage().as_secs_f64(),
    );
    // The run's clock starts now, after the set-up.
    world.timeline = Timeline::new();
    let ctx = Arc::new(Ctx {
        auth,
        world,
        tally: Tally::new(),
        zipf: Zipf::new(args.users as f64, ZIPF_EXPONENT)?,
        stop: AtomicBool::new(false),
    });
    let (samples, ended, redis) = run_workload(&ctx, &args, redis, repository).await?;
    let stats = ctx.auth.stats();
    let probe = final_checks(&ctx, &second).await;
    let run = Run {
        args,
        setup: took,
        samples,
        ended,
        stats,
        probe,
        redis_back: ctx.world.timeline.recovered.get().is_some(),
    };
    let verdict = report(&ctx, &run);
    drop(redis);
    Ok(verdict)
}

/// Runs the workers, the mutator and the restart for the run's duration, sampling every
/// second; returns the samples, when the workload was stopped, and the Redis server.
async fn run_workload(
    ctx: &Arc<Ctx>,
    args: &Args,
    redis: RedisServer,
    repository: Arc<MongoUserRepository>,
) -> Result<(Vec<Sample>, Instant, RedisServer)> {
    let workers: Vec<_> = (0..args.tasks)
        .map(|task| tokio::spawn(work(Arc::clone(ctx), args.seed.rng(Stream::Worker(task)))))
        .collect();
    let mutator = Mutator::new(Arc::clone(ctx), repository, args.seed.rng(Stream::Mutator));
    let mutator = tokio::spawn(mutator.run(args.mutations_per_second));
    let chaos = tokio::spawn(restart_redis_midway(
        Arc::clone(ctx),
        redis,
        args.kill_at(),
        args.outage(),
    ));
    let samples = sample_until_the_end(ctx, args.duration()).await;
    ctx.stop.store(true, Ordering::Release);
    let ended = Instant::now();
    for worker in workers {
        worker.await?;
    }
    mutator.await?;
    let redis = chaos.await??;
    Ok((samples, ended, redis))
}
