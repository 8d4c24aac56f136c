//! Propagation across instances, as a distribution (issue 23, item 3): three `AuthService`
//! instances share one Redis (then the 3-master Cluster) and one repository. For each
//! change, on an instance drawn by a seeded RNG, the time from the call returning until
//! every *other* instance answers the new state:
//!
//! - `logout(token)` → every other instance refuses the token with `AuthError::Revoked`;
//! - the user's role removed in the repository, then `invalidate_user(id)` → every other
//!   instance authenticates the user without the role's permission.
//!
//! Every token is warm on every instance before its change (authenticated once on each:
//! the token's validation and the user are in each L1), so what is timed is the bus
//! carrying the change, not a cold verify. Each change has a user of its own, so no change
//! waits for an earlier one. Figures: `propagation_<change>_<backend>/{p50,p99,p999,max}`,
//! and the histogram's buckets, `propagation_<change>_<backend>_histogram/<k>`: the count
//! of changes that took [2^k, 2^(k+1)) µs (bucket 0 also holds those under 1 µs).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use authcache::{
    AuthError, AuthService, BreakerConfig, CacheConfig, JwtVerifier, MemoryUserRepository,
    Revocation, TokenIssuer, User, UserRepository,
};
use authcache_benches::by_mode;
use authcache_benches::figures::Unit;
use authcache_tests::redis_server::{PATIENT_TIMEOUT, RedisClusterServer};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use crate::{Context, record};

const INSTANCES: usize = 3;
const PREFIX: &str = "fig_prop";
const SIGNING_KEY: &[u8] = b"bench-cache-signing-key-0123456789";
const ROLE: &str = "editor";
const PERMISSION: &str = "articles:write";
/// A change not seen everywhere within this is a failure of the bus, not a slow figure.
const BOUND: Duration = Duration::from_secs(10);
/// Replays a run's choice of instances; without it, the seed comes from the clock.
const SEED_ENV: &str = "AUTHCACHE_PROPAGATION_SEED";

/// What changes on one instance, and what every other instance must then answer.
#[derive(Clone, Copy)]
enum Change {
    Logout,
    RoleRemoved,
}

impl Change {
    fn name(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::RoleRemoved => "invalidate",
        }
    }
}

pub(crate) fn run(cx: &Context) {
    let changes = by_mode(10_000, 1_000);
    let seed = seed();
    println!(
        "propagation: seed {seed} ({SEED_ENV}={seed} replays the choice of instances), \
         {changes} changes of each kind per backend"
    );
    let cluster = RedisClusterServer::start();
    let backends = [
        ("redis", CacheConfig::redis(cx.redis.url())),
        ("cluster", CacheConfig::redis_cluster(cluster.urls())),
    ];
    for (backend, cache) in backends {
        for change in [Change::Logout, Change::RoleRemoved] {
            let mut rng = SmallRng::seed_from_u64(seed);
            let samples = cx
                .runtime
                .block_on(measure(cache.clone(), change, changes, &mut rng));
            let id = format!("propagation_{}_{backend}", change.name());
            describe(&id, &samples);
            let mut took: Vec<Duration> = samples.iter().map(|s| s.took).collect();
            took.sort_unstable();
            record_distribution(&id, &took);
        }
    }
}

fn seed() -> u64 {
    std::env::var(SEED_ENV)
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH);
            now.map_or(0, |now| now.as_nanos() as u64)
        })
}

/// One change, timed.
struct Sample {
    /// Its place in the run: a burst of slow ones in a row is the machine, not the bus.
    index: usize,
    origin: usize,
    /// From the call returning until every other instance was seen answering the change.
    took: Duration,
    /// Poll rounds until then: 1 when every other instance already answered it at the
    /// first ask, i.e. the bus had delivered before the call returned.
    rounds: u32,
    /// The duration of the round that saw the last instance: how much `took` may
    /// overstate the moment that instance had the change.
    last_round: Duration,
}

/// `changes` changes on instances drawn from `rng`, each timed.
async fn measure(
    cache: CacheConfig,
    change: Change,
    changes: usize,
    rng: &mut SmallRng,
) -> Vec<Sample> {
    let repository = Arc::new(
        MemoryUserRepository::new()
            .with_role(ROLE, [PERMISSION])
            .unwrap(),
    );
    let mut instances = Vec::with_capacity(INSTANCES);
    for _ in 0..INSTANCES {
        instances.push(service(cache.clone(), repository.clone()).await);
    }
    let issuer = TokenIssuer::test_hs256();
    let mut samples = Vec::with_capacity(changes);
    for index in 0..changes {
        let id = format!("{}-{index}", change.name());
        let user = User::new(&id, format!("{id}@example.com"), &id);
        repository
            .upsert(&user.clone().with_roles([ROLE]))
            .await
            .unwrap();
        let token = issuer.issue(&id, Duration::from_secs(3_600)).unwrap();
        for auth in &instances {
            let who = auth.authenticate(&token).await.unwrap();
            assert!(who.has_permission(PERMISSION), "{id} is warm with the role");
        }
        let origin = rng.random_range(0..INSTANCES);
        let others: Vec<&AuthService> = (0..INSTANCES)
            .filter(|&n| n != origin)
            .map(|n| &instances[n])
            .collect();
        let (took, rounds, last_round) = match change {
            Change::Logout => {
                let revocation = instances[origin].logout(&token).await.unwrap();
                assert_eq!(revocation, Revocation::Recorded, "{id}'s logout");
                let token = token.as_str();
                until_every(&others, |auth| async move {
                    auth.authenticate(token).await.err() == Some(AuthError::Revoked)
                })
                .await
            }
            Change::RoleRemoved => {
                repository.upsert(&user).await.unwrap();
                instances[origin].invalidate_user(&id).await.unwrap();
                let token = token.as_str();
                until_every(&others, |auth| async move {
                    let who = auth.authenticate(token).await.unwrap();
                    !who.has_permission(PERMISSION)
                })
                .await
            }
        };
        samples.push(Sample {
            index,
            origin,
            took,
            rounds,
            last_round,
        });
    }
    samples
}

/// Polls every instance of `others` until `seen` holds on each; the time from the call
/// until the last one was seen, the number of poll rounds, and the last round's duration.
///
/// Resolution: a round asks each instance not yet seen once, then yields the thread. An
/// ask that finds nothing changed is a warm `authenticate`, an L1 lookup well under a
/// microsecond; the ask that sees the change costs more — the bus dropped the instance's
/// memo, so it reads the revocation mark or the user from Redis (a round trip) — and that
/// cost is part of what is timed: the instance refuses when that call returns. The time is
/// taken at the end of the round that saw the last instance, so it overstates the moment
/// that instance had the change by at most that round, which `run` prints (median and
/// slowest) next to the share of changes already everywhere at the first ask. The clock is
/// `Instant` (nanoseconds, monotonic). The round yields the OS thread,
/// not only the task: this loop runs on the bench's own thread, outside the runtime's
/// workers, and on a 2-core machine a pure spin would take a core from the bus's
/// subscriber tasks and the Redis servers whose delivery it is timing.
async fn until_every<'a, F, Fut>(others: &[&'a AuthService], seen: F) -> (Duration, u32, Duration)
where
    F: Fn(&'a AuthService) -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    let mut pending = others.to_vec();
    let mut rounds = 0;
    loop {
        rounds += 1;
        let round = Instant::now();
        let mut still = Vec::with_capacity(pending.len());
        for auth in pending {
            if !seen(auth).await {
                still.push(auth);
            }
        }
        let elapsed = started.elapsed();
        if still.is_empty() {
            return (elapsed, rounds, round.elapsed());
        }
        assert!(
            elapsed < BOUND,
            "{} instance(s) did not see the change within {BOUND:?}",
            still.len()
        );
        pending = still;
        std::thread::yield_now();
        tokio::task::yield_now().await;
    }
}

/// A service on `cache`, returned once its bus is subscribed. An L2 call may take
/// [`PATIENT_TIMEOUT`], so a reply delayed by a loaded machine is slow, not a failure (a
/// logout that the breaker times out would be `Pending` and skew the figure).
async fn service(cache: CacheConfig, repository: Arc<MemoryUserRepository>) -> AuthService {
    let auth = AuthService::builder()
        .verifier(JwtVerifier::test_hs256())
        .shared_repository(repository)
        .cache(cache)
        .signing_key(SIGNING_KEY)
        .prefix(PREFIX)
        .breaker(BreakerConfig {
            timeout: PATIENT_TIMEOUT,
            ..BreakerConfig::default()
        })
        .build()
        .await
        .unwrap();
    let started = Instant::now();
    while auth.stats().bus_subscribed != Some(true) {
        assert!(started.elapsed() < BOUND, "the bus did not subscribe");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    auth
}

/// Prints how the changes reached the other instances, for the run's log: how many were
/// everywhere at the first ask, the resolution (the last round's duration), and the
/// slowest changes with their place in the run.
fn describe(id: &str, samples: &[Sample]) {
    let at_once = samples.iter().filter(|s| s.rounds == 1).count();
    let mut last_rounds: Vec<Duration> = samples.iter().map(|s| s.last_round).collect();
    last_rounds.sort_unstable();
    let median = last_rounds
        .get(last_rounds.len() / 2)
        .copied()
        .unwrap_or_default();
    let slowest_round = last_rounds.last().copied().unwrap_or_default();
    println!(
        "{id}: {at_once} of {} changes answered by every other instance at the first ask; \
         the round that saw the last one took {median:.1?} (median), {slowest_round:.1?} (max)",
        samples.len()
    );
    let mut slowest: Vec<&Sample> = samples.iter().collect();
    slowest.sort_unstable_by_key(|s| std::cmp::Reverse(s.took));
    for s in slowest.iter().take(5) {
        println!(
            "{id}: slow: change #{} from instance {}: {:.1?} ({} rounds)",
            s.index, s.origin, s.took, s.rounds
        );
    }
}

/// Percentiles (nearest rank) and the log₂ histogram of `sorted`.
fn record_distribution(id: &str, sorted: &[Duration]) {
    let nanos = |d: &Duration| d.as_nanos() as f64;
    let at = |q: f64| {
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        nanos(&sorted[rank - 1])
    };
    record(&format!("{id}/p50"), at(0.50), Unit::Nanos);
    record(&format!("{id}/p99"), at(0.99), Unit::Nanos);
    record(&format!("{id}/p999"), at(0.999), Unit::Nanos);
    record(&format!("{id}/max"), at(1.0), Unit::Nanos);
    let mut buckets = [0_u64; 64];
    for took in sorted {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        buckets[micros.ilog2() as usize] += 1;
    }
    for (k, count) in buckets.iter().enumerate().filter(|(_, n)| **n > 0) {
        record(&format!("{id}_histogram/{k}"), *count as f64, Unit::Count);
    }
}
