//! Cost as the work grows (issue 23, item 2): the quickstart's workload — warm
//! `authenticate` of HS256 tokens from 64 tasks, memory repository, Redis as L2, default L1
//! capacity — with 10,000, 100,000 and 1,000,000 users, the user of each request drawn from a
//! seeded Zipf distribution (s = 1.1). Per size: throughput and p99 with one instance, the
//! process's RSS and its growth per cached principal, and the total throughput of 1, 2 and 4
//! instances on the one Redis with the share of a core Redis used meanwhile (`INFO cpu`).
//!
//! Each size runs in a process of its own (this bench, re-executed with [`PROBE_ENV`] set),
//! on a Redis of its own, so that no size inherits another's heap or entries. Every user is
//! authenticated once on each instance before anything is measured on it (the L2 then holds
//! them all, each L1 its last [`DEFAULT_L1_CAPACITY`]); a Zipf warm-up then gives each L1
//! its steady state.
//! `--quick` stops at 100,000 users.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use authcache::{
    AuthService, CacheConfig, DEFAULT_L1_CAPACITY, JwtVerifier, MemoryUserRepository, TokenIssuer,
    User, UserRepository,
};
use authcache_benches::figures::Unit;
use authcache_benches::{by_mode, quick};
use authcache_tests::redis_server::RedisServer;
use hdrhistogram::Histogram;
use rand::SeedableRng;
use rand::distr::Distribution;
use rand::rngs::SmallRng;
use rand_distr::Zipf;

use crate::rss::resident_bytes;
use crate::{Context, record, record_missing};

/// User counts, with the name their figures carry.
const SIZES: [(usize, &str); 3] = [
    (10_000, "users_10k"),
    (100_000, "users_100k"),
    (1_000_000, "users_1m"),
];
/// The largest size a quick run measures.
const QUICK_MAX_USERS: usize = 100_000;
/// Instances (`AuthService`s sharing the one Redis) the tasks are spread over.
const INSTANCES: [usize; 3] = [1, 2, 4];
/// Concurrent tasks, as in the quickstart.
const TASKS: usize = 64;
/// Zipf exponent, as in the quickstart: a few users are very active, most are not.
const ZIPF_EXPONENT: f64 = 1.1;
/// Task `t` of a measured run draws from `SmallRng::seed_from_u64(SEED + t)`; of a warm-up,
/// from `SEED + WARM_UP_SEED_OFFSET + t`.
const SEED: u64 = 23;
const WARM_UP_SEED_OFFSET: u64 = 1_000;
/// Set in a probe process: the user count it measures.
const PROBE_ENV: &str = "AUTHCACHE_BENCH_GROWTH_USERS";

pub(crate) fn run(cx: &Context) {
    if let Some(users) = requested_size() {
        return measure(cx, users);
    }
    println!(
        "zipf s = {ZIPF_EXPONENT}, seed {SEED} (task t: SmallRng::seed_from_u64({SEED} + t)), \
         {TASKS} tasks, L1 capacity {DEFAULT_L1_CAPACITY}"
    );
    for (users, name) in SIZES {
        if quick() && users > QUICK_MAX_USERS {
            missing_size(name, "`--quick` stops at 100,000 users");
            continue;
        }
        if let Err(reason) = run_probe(users) {
            missing_size(name, &reason);
        }
    }
}

/// The figure ids of one size.
fn ids(name: &str) -> Vec<String> {
    let mut ids = vec![
        format!("growth_p99/{name}"),
        format!("growth_rss/{name}"),
        format!("growth_rss_per_principal/{name}"),
    ];
    for instances in INSTANCES {
        let run = run_name(name, instances);
        ids.push(format!("growth_throughput/{run}"));
        ids.push(format!("growth_redis_cpu/{run}"));
    }
    ids
}

/// `users_100k` for one instance, `users_100k_4_instances` for more.
fn run_name(name: &str, instances: usize) -> String {
    if instances == 1 {
        name.to_owned()
    } else {
        format!("{name}_{instances}_instances")
    }
}

fn missing_size(name: &str, reason: &str) {
    for id in ids(name) {
        record_missing(&id, reason);
    }
}

fn requested_size() -> Option<usize> {
    std::env::var(PROBE_ENV).ok()?.parse().ok()
}

/// Re-executes this bench for one size; the probe records its own figures.
fn run_probe(users: usize) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let status = Command::new(exe)
        .args(["--bench", "growth"])
        .env(PROBE_ENV, users.to_string())
        .status()
        .map_err(|e| format!("cannot start the probe: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the probe for {users} users failed ({status})"))
    }
}

/// Runs in the probe process: measures one size and records its figures.
fn measure(cx: &Context, users: usize) {
    let name = SIZES
        .iter()
        .find_map(|(count, name)| (*count == users).then_some(*name))
        .unwrap_or_else(|| panic!("no size of {users} users"));
    let started = Instant::now();
    let (repository, tokens) = population(users);
    println!(
        "{users} users and their tokens in {:.2?}",
        started.elapsed()
    );
    let before = resident_bytes();
    let duration = by_mode(Duration::from_secs(3), Duration::from_secs(1));
    let warm_up = by_mode(Duration::from_secs(1), Duration::from_millis(500));
    let zipf = Zipf::new(users as f64, ZIPF_EXPONENT).unwrap();
    cx.runtime.block_on(async {
        let mut fleet = vec![instance(&cx.redis, Arc::clone(&repository)).await];
        let started = Instant::now();
        fill(&fleet[0], &tokens).await;
        println!("every user authenticated once in {:.2?}", started.elapsed());
        let after = resident_bytes();
        let cached = users.min(usize::try_from(DEFAULT_L1_CAPACITY).unwrap());
        let growth = after.saturating_sub(before);
        record(&format!("growth_rss/{name}"), after as f64, Unit::Bytes);
        record(
            &format!("growth_rss_per_principal/{name}"),
            growth as f64 / cached as f64,
            Unit::Bytes,
        );
        for instances in INSTANCES {
            while fleet.len() < instances {
                // Each instance has its own L1 and validation cache: it authenticates every
                // user once before it is measured, as the first did, so that what is timed
                // is each instance's steady state and not its cold start.
                let joining = instance(&cx.redis, Arc::clone(&repository)).await;
                fill(&joining, &tokens).await;
                fleet.push(joining);
            }
            let fleet = Arc::new(fleet.clone());
            drive(&fleet, &tokens, zipf, SEED + WARM_UP_SEED_OFFSET, warm_up).await;
            let cpu_before = redis_cpu_seconds(&cx.redis);
            let run = drive(&fleet, &tokens, zipf, SEED, duration).await;
            let cpu = redis_cpu_seconds(&cx.redis) - cpu_before;
            let id = run_name(name, instances);
            record(
                &format!("growth_throughput/{id}"),
                run.ops as f64 / run.wall.as_secs_f64(),
                Unit::PerSecond,
            );
            record(
                &format!("growth_redis_cpu/{id}"),
                100.0 * cpu / run.wall.as_secs_f64(),
                Unit::Count,
            );
            if instances == 1 {
                record(
                    &format!("growth_p99/{name}"),
                    run.latency.value_at_quantile(0.99) as f64,
                    Unit::Nanos,
                );
            }
            print_tiers(&fleet);
        }
    });
}

/// The memory repository with `users` users (quickstart-style: every tenth a writer) and
/// one HS256 token per user.
fn population(users: usize) -> (Arc<dyn UserRepository>, Arc<Vec<String>>) {
    let mut repository = MemoryUserRepository::new()
        .with_role("reader", ["articles:read", "comments:read"])
        .unwrap()
        .with_role("writer", ["articles:write", "comments:write"])
        .unwrap();
    let issuer = TokenIssuer::test_hs256();
    let mut tokens = Vec::with_capacity(users);
    for i in 0..users {
        let id = format!("user-{i}");
        let roles: &[&str] = if i % 10 == 0 {
            &["reader", "writer"]
        } else {
            &["reader"]
        };
        let user = User::new(&id, format!("user{i}@example.com"), format!("User {i}"));
        repository = repository
            .with_user(user.with_roles(roles.iter().copied()))
            .unwrap();
        tokens.push(issuer.issue(&id, Duration::from_secs(3_600)).unwrap());
    }
    (Arc::new(repository), Arc::new(tokens))
}

/// One instance as the quickstart builds it (default L1 capacity and TTLs); every instance
/// shares the prefix and signing key, so each reads the entries the others wrote.
async fn instance(redis: &RedisServer, repository: Arc<dyn UserRepository>) -> AuthService {
    AuthService::builder()
        .verifier(JwtVerifier::test_hs256())
        .shared_repository(repository)
        .cache(CacheConfig::redis(redis.url()))
        .signing_key(b"bench-cache-signing-key-0123456789")
        .prefix("fig_growth")
        .build()
        .await
        .unwrap()
}

/// Authenticates every user once, from [`TASKS`] tasks.
async fn fill(auth: &AuthService, tokens: &Arc<Vec<String>>) {
    let workers: Vec<_> = (0..TASKS)
        .map(|task| {
            let (auth, tokens) = (auth.clone(), Arc::clone(tokens));
            tokio::spawn(async move {
                for token in tokens.iter().skip(task).step_by(TASKS) {
                    auth.authenticate(token).await.unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
}

/// What a run measured.
struct Run {
    ops: u64,
    wall: Duration,
    /// Latency of each `authenticate`, in nanoseconds.
    latency: Histogram<u64>,
}

/// [`TASKS`] tasks, task `t` on instance `t % fleet.len()`, authenticate Zipf-drawn users
/// for about `duration`, yielding between requests as a server task does.
async fn drive(
    fleet: &Arc<Vec<AuthService>>,
    tokens: &Arc<Vec<String>>,
    zipf: Zipf<f64>,
    seed: u64,
    duration: Duration,
) -> Run {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..TASKS)
        .map(|task| {
            let auth = fleet[task % fleet.len()].clone();
            let (tokens, stop) = (Arc::clone(tokens), Arc::clone(&stop));
            let mut rng = SmallRng::seed_from_u64(seed + task as u64);
            tokio::spawn(async move {
                let mut latency = Histogram::<u64>::new(3).unwrap();
                let mut ops = 0;
                while !stop.load(Ordering::Relaxed) {
                    // Zipf samples are 1..=n as floats; truncation picks the rank.
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let rank = zipf.sample(&mut rng) as usize;
                    let took = Instant::now();
                    auth.authenticate(&tokens[rank - 1]).await.unwrap();
                    let took = u64::try_from(took.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    latency.record(took).unwrap();
                    ops += 1;
                    tokio::task::yield_now().await;
                }
                (ops, latency)
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut run = Run {
        ops: 0,
        wall: Duration::ZERO,
        latency: Histogram::new(3).unwrap(),
    };
    for worker in workers {
        let (ops, latency) = worker.await.unwrap();
        run.ops += ops;
        run.latency.add(latency).unwrap();
    }
    run.wall = started.elapsed();
    run
}

/// Where the answers came from, summed over the fleet (printed, for the bend's cause).
fn print_tiers(fleet: &[AuthService]) {
    let (mut warm, mut l1, mut l2, mut loads) = (0, 0, 0, 0);
    for auth in fleet {
        let stats = auth.stats();
        warm += stats.validations.hits;
        l1 += stats.users.l1_hits;
        l2 += stats.users.l2_hits;
        loads += stats.users.loads;
    }
    println!(
        "{} instance(s), totals so far: warm answers {warm}, user L1 hits {l1}, \
         user L2 hits {l2}, repository loads {loads}",
        fleet.len()
    );
}

/// Redis's `used_cpu_sys` + `used_cpu_user`, in seconds.
fn redis_cpu_seconds(redis: &RedisServer) -> f64 {
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query(&mut redis.connection())
        .unwrap();
    info.lines()
        .filter_map(|line| {
            line.strip_prefix("used_cpu_sys:")
                .or_else(|| line.strip_prefix("used_cpu_user:"))
        })
        .map(|value| value.trim().parse::<f64>().unwrap())
        .sum()
}
