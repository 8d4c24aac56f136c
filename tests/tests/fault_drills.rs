//! Fault drills under load. Each drill runs a bounded concurrent `authenticate` load —
//! 16 tasks, a fresh token per request, warm and cold users — before, during and after one
//! fault, and asserts that no user the surviving parts can serve was refused, and that the
//! part is used again once it is back (L2 round trips, breaker closed, bus subscribed):
//!
//! - Redis hung (SIGSTOP) for 3 s, then resumed;
//! - Redis killed, then restarted empty on the same port;
//! - the repository's server (SecantusDB) killed, then restarted;
//! - one master of a 3-master Redis Cluster killed (its slots fail), then restarted;
//! - the bus connections cut (`CLIENT KILL TYPE pubsub`) while invalidations are published.
//!
//! Every drill stops by itself (phases end on request counts and bounded polls, never on a
//! wall-clock assertion) and prints its figures: `cargo test --workspace --all-features
//! --test fault_drills -- --nocapture --test-threads=1`. `docs/reliability.md` records a run.
// Test helpers outside `#[test]` functions fail loudly too.
#![allow(clippy::unwrap_used, clippy::panic)]

mod auth_support;
#[path = "fault_drills/mod.rs"]
mod drills;

use std::sync::Arc;
use std::time::Duration;

use authcache::{
    AuthError, AuthService, AuthServiceBuilder, CacheConfig, Ttls, User, UserRepository,
};
use authcache_tests::process::eventually;
use authcache_tests::redis_server::{RedisClusterServer, RedisServer};
use drills::churn::Churn;
use drills::drill_service;
use drills::durable_mongo::DurableMongo;
use drills::load::{Load, Phase, Tolerance};
use drills::population::{Population, fresh_bearer};
use drills::probe::{
    L2Probe, RECOVERY, breaker, kill_pubsub_clients, pubsub_client_ids, reconnected,
    time_to_recover,
};
use drills::report::DrillReport;
use tokio::time::Instant;

/// Users cached before the fault.
const WARM: usize = 64;
/// Users never asked for before the load reaches them (more than any drill reaches).
const COLD: usize = 10_000;
/// Users only the recovery probes ask for (one per probe round).
const PROBES: usize = 3_000;

/// Requests before the fault, during it (at least), and after recovery.
const BEFORE: u64 = 2_000;
const DURING: u64 = 1_000;
const AFTER: u64 = 2_000;

/// How long Redis stays frozen in the hang drill.
const HANG: Duration = Duration::from_secs(3);

/// Bound on a repository call: a dead repository answers 503 after this, not after the
/// driver's own timeouts; far above a healthy lookup on a loaded machine.
const REPOSITORY_TIMEOUT: Duration = Duration::from_secs(2);

/// The repository drill's users are written to SecantusDB, a round trip each: fewer cold
/// ones (still more than the drill reaches), and shorter phases (a cold request waits out
/// [`REPOSITORY_TIMEOUT`] while the repository is down).
const MONGO_COLD: usize = 1_000;
const MONGO_BEFORE: u64 = 800;
const MONGO_DURING: u64 = 100;
const MONGO_AFTER: u64 = 1_000;

/// The Cluster master the Cluster drill kills (not the first: the bus subscribes there,
/// and this drill is about slots).
const KILLED_MASTER: usize = 1;

/// The bus drill's L1 cap: far above the wait for an invalidation, so only the bus can
/// have taken a stale entry out of the other instance's L1 in time.
const LONG_L1_CAP: Duration = Duration::from_secs(300);

/// The L2 timeout of the drills whose fault is not Redis (repository, bus). The default
/// 100 ms is a wall-clock bound: on a starved CI machine a healthy Redis's reply can take
/// longer, the breaker opens, and then a warm user whose L1 entry expired meets a dead
/// repository (503), or an `invalidate_user` is refused — what the Redis drills measure,
/// not what these drills are about.
const PATIENT_L2_TIMEOUT_MS: u64 = 5_000;

/// `redis` with [`PATIENT_L2_TIMEOUT_MS`] as the client's and the breaker's timeout
/// (`timeout_ms` sets both).
fn patient_redis(redis: &RedisServer) -> CacheConfig {
    CacheConfig::Redis {
        url: redis.url(),
        timeout_ms: Some(PATIENT_L2_TIMEOUT_MS),
    }
}

/// Bound on an invalidation reaching the other instance (milliseconds when the bus works;
/// a small fraction of [`LONG_L1_CAP`]).
const COHERENCE: Duration = Duration::from_secs(20);

/// Users the bus drill's churn invalidates, round robin.
const CHURNED: usize = 8;

/// Invalidations published before the cut and after the resubscription (at least).
const CHURN_PHASE: u64 = 100;

/// The instance under load and a reader for the L2 probe, on one shared L2, with the
/// warm users cached.
async fn redis_drill(cache: CacheConfig) -> (Arc<Population>, AuthService, AuthService) {
    let population = Population::new(WARM, COLD, PROBES);
    let repository = population.memory_repository().await;
    let auth = drill_service(cache.clone(), &repository, |b| b).await;
    let reader = drill_service(cache, &repository, |b| b).await;
    population.warm_up(&auth).await;
    (population, auth, reader)
}

/// What "recovered" means, per drill (printed with the time to recover).
const L2_BACK: &str =
    "from the part back to an L2 round trip between instances, breaker closed, bus subscribed";
const REPOSITORY_BACK: &str = "from the repository answering again to a never-cached user \
    served, breaker closed, bus subscribed";
const SLOTS_BACK: &str = "from the master back to an L2 round trip through its slots, \
    breaker closed, bus subscribed";
const BUS_BACK: &str = "from the cut to both instances subscribed again on new connections, \
    breakers closed";

/// A standalone-Redis drill once Redis is back: recovery (an L2 round trip between instances,
/// breaker closed, bus subscribed), the after phase, the report, and that the revocation
/// checks Redis could not answer were served (fail open).
struct RedisBack<'a> {
    population: &'a Population,
    auth: &'a AuthService,
    reader: &'a AuthService,
    before: &'a authcache::Stats,
}

impl RedisBack<'_> {
    async fn finish(
        &self,
        load: Load,
        outage: Duration,
        what: &str,
        drill: &'static str,
        injected: &'static str,
    ) {
        let probe = L2Probe::new(self.auth, self.reader, &self.population.probes);
        let (probe, under_load) = (&probe, self.auth);
        let recovery = time_to_recover(what, || async move {
            probe.round_trip(None).await && reconnected(under_load)
        })
        .await;
        load.run_for(Phase::After, AFTER).await;
        let outcome = load.stop().await;
        let stats = self.auth.stats();
        DrillReport {
            drill,
            injected,
            outage,
            recovery,
            recovered_when: L2_BACK,
            outcome: &outcome,
            stats: &stats,
            notes: &[],
        }
        .print_and_check();
        assert!(
            stats.unchecked > self.before.unchecked,
            "revocation checks Redis could not answer were served (fail open): {stats:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_hung_for_3_s_refuses_no_one_and_is_used_again_once_resumed() {
    let redis = RedisServer::start();
    let (population, auth, reader) = redis_drill(CacheConfig::redis(redis.url())).await;
    let load = Load::start(vec![auth.clone()], &population, Tolerance::EveryUserServed);
    load.run_until(Phase::Before, BEFORE).await;

    let before = auth.stats();
    load.enter(Phase::During);
    let down = Instant::now();
    redis.hang();
    // The fault itself: Redis stays frozen this long whatever the load does.
    tokio::time::sleep(HANG).await;
    load.run_until(Phase::During, DURING).await;
    let opened = before.breaker.unwrap().opened;
    eventually(
        RECOVERY,
        "the breaker to open on the hung Redis",
        || async { breaker(&auth).opened > opened },
    )
    .await;
    redis.resume();
    let outage = down.elapsed();
    load.enter(Phase::After);

    let back = RedisBack {
        population: &population,
        auth: &auth,
        reader: &reader,
        before: &before,
    };
    back.finish(
        load,
        outage,
        "Redis used again after the hang",
        "redis hung",
        "SIGSTOP of redis-server for 3 s, then SIGCONT",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_and_restarted_empty_refuses_no_one_and_is_used_again() {
    let mut redis = RedisServer::start();
    let (population, auth, reader) = redis_drill(CacheConfig::redis(redis.url())).await;
    let load = Load::start(vec![auth.clone()], &population, Tolerance::EveryUserServed);
    load.run_until(Phase::Before, BEFORE).await;

    let before = auth.stats();
    load.enter(Phase::During);
    let down = Instant::now();
    redis.kill();
    load.run_until(Phase::During, DURING).await;
    let opened = before.breaker.unwrap().opened;
    eventually(
        RECOVERY,
        "the breaker to open and the bus to drop while Redis is dead",
        || async { breaker(&auth).opened > opened && auth.stats().bus_subscribed == Some(false) },
    )
    .await;
    redis.restart();
    let outage = down.elapsed();
    load.enter(Phase::After);

    let back = RedisBack {
        population: &population,
        auth: &auth,
        reader: &reader,
        before: &before,
    };
    back.finish(
        load,
        outage,
        "Redis used again after the restart",
        "redis killed",
        "SIGKILL of redis-server, restarted empty on the same port",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repository_killed_serves_every_cached_user_and_every_user_once_back() {
    let redis = RedisServer::start();
    let mut mongo = DurableMongo::start().await;
    let population = Population::new(WARM, MONGO_COLD, 1);
    let repository = population.mongo_repository(&mongo.uri()).await;
    let auth = drill_service(patient_redis(&redis), &repository, |b| {
        b.repository_timeout(REPOSITORY_TIMEOUT)
    })
    .await;
    population.warm_up(&auth).await;
    let load = Load::start(
        vec![auth.clone()],
        &population,
        Tolerance::ColdMayBeUnavailable,
    );
    load.run_until(Phase::Before, MONGO_BEFORE).await;

    load.enter(Phase::During);
    let down = Instant::now();
    mongo.kill();
    eventually(
        RECOVERY,
        "a cold user refused with 503 while the repository is dead",
        || async { load.figures(Phase::During).unavailable > 0 },
    )
    .await;
    load.run_until(Phase::During, MONGO_DURING).await;
    mongo.restart().await;
    let outage = down.elapsed();
    load.enter(Phase::After);

    let never_cached = population.probes[0].as_str();
    let under_load = &auth;
    let recovery = time_to_recover(
        "the repository to serve a never-cached user",
        || async move {
            let served = under_load.authenticate(&fresh_bearer(never_cached)).await;
            served.is_ok() && reconnected(under_load)
        },
    )
    .await;
    load.run_for(Phase::After, MONGO_AFTER).await;
    let outcome = load.stop().await;
    let stats = auth.stats();
    let notes = [format!(
        "cold users refused with 503 while the repository was down: {}",
        outcome.unavailable_users.len()
    )];
    DrillReport {
        drill: "repository killed",
        injected: "SIGKILL of SecantusDB (durable storage), restarted on the same port",
        outage,
        recovery,
        recovered_when: REPOSITORY_BACK,
        outcome: &outcome,
        stats: &stats,
        notes: &notes,
    }
    .print_and_check();
    assert!(
        !outcome.unavailable_users.is_empty(),
        "the fault never showed"
    );
    for id in &outcome.unavailable_users {
        let served = auth.authenticate(&fresh_bearer(id)).await;
        assert!(
            served.is_ok(),
            "{id}, refused while the repository was down: {served:?}"
        );
    }
    eventually(RECOVERY, "no repository load left in flight", || async {
        auth.stats()
            .data_tiers()
            .iter()
            .all(|tier| tier.in_flight == 0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_cluster_master_refuses_no_one_and_its_slots_serve_again_once_back() {
    let mut cluster = RedisClusterServer::start();
    let (population, auth, reader) = redis_drill(CacheConfig::redis_cluster(cluster.urls())).await;
    let load = Load::start(vec![auth.clone()], &population, Tolerance::EveryUserServed);
    load.run_until(Phase::Before, BEFORE).await;

    let before = auth.stats();
    let live_keys = keys_on_live_masters(&cluster);
    load.enter(Phase::During);
    let down = Instant::now();
    cluster.node_mut(KILLED_MASTER).kill();
    load.run_until(Phase::During, DURING).await;
    eventually(
        RECOVERY,
        "L2 calls to the dead master's slots to fail",
        || async { auth.stats().l2_errors() > before.l2_errors() },
    )
    .await;
    let during = auth.stats();
    let new_live_keys = keys_on_live_masters(&cluster) - live_keys;
    cluster.node_mut(KILLED_MASTER).restart();
    let outage = down.elapsed();
    load.enter(Phase::After);

    let probe = L2Probe::new(&auth, &reader, &population.probes);
    let restarted = &cluster.nodes()[KILLED_MASTER];
    let (probe, under_load) = (&probe, &auth);
    let recovery = time_to_recover("the restarted master's slots used again", || async move {
        probe.round_trip(Some(restarted)).await && reconnected(under_load)
    })
    .await;
    load.run_for(Phase::After, AFTER).await;
    let outcome = load.stop().await;
    let stats = auth.stats();
    let notes = [format!(
        "while the master was dead: {} L2 errors, breaker opened {}x, \
         {new_live_keys} new keys on the live masters",
        during.l2_errors() - before.l2_errors(),
        during.breaker.unwrap().opened - before.breaker.unwrap().opened,
    )];
    DrillReport {
        drill: "cluster master killed",
        injected: "SIGKILL of one of 3 Cluster masters (no replicas), restarted on the same port",
        outage,
        recovery,
        recovered_when: SLOTS_BACK,
        outcome: &outcome,
        stats: &stats,
        notes: &notes,
    }
    .print_and_check();
}

/// Keys stored on the Cluster masters other than [`KILLED_MASTER`].
fn keys_on_live_masters(cluster: &RedisClusterServer) -> u64 {
    let live = cluster.nodes().iter().enumerate();
    live.filter(|(i, _)| *i != KILLED_MASTER)
        .map(|(_, node)| {
            redis::cmd("DBSIZE")
                .query::<u64>(&mut node.connection())
                .unwrap()
        })
        .sum()
}

/// `to` has `id` in its L1; the repository changes and `from` invalidates: `to` must
/// answer the change well before its own L1 entry could have expired.
async fn an_invalidation_reaches(
    from: &AuthService,
    to: &AuthService,
    repository: &Arc<dyn UserRepository>,
    id: &str,
) {
    for _ in 0..2 {
        let served = to.authenticate(&fresh_bearer(id)).await;
        assert!(served.is_ok(), "{id} before the change: {served:?}");
    }
    let disabled = User::new(id, format!("{id}@example.com"), id)
        .with_roles(["viewer"])
        .with_disabled(true);
    repository.upsert(&disabled).await.unwrap();
    from.invalidate_user(id).await.unwrap();
    eventually(
        COHERENCE,
        &format!("the other instance to see {id} disabled (through the bus)"),
        || async { to.authenticate(&fresh_bearer(id)).await.err() == Some(AuthError::Disabled) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bus_cut_while_invalidations_flow_resubscribes_and_stays_coherent() {
    let redis = RedisServer::start();
    let population = Population::new(WARM, COLD, 1);
    let repository = population.memory_repository().await;
    let cache = patient_redis(&redis);
    let tune = |b: AuthServiceBuilder| {
        b.ttls(Ttls {
            l1_cap: LONG_L1_CAP,
            ..Ttls::default()
        })
    };
    let one = drill_service(cache.clone(), &repository, tune).await;
    let other = drill_service(cache, &repository, tune).await;
    population.warm_up(&one).await;
    population.warm_up(&other).await;
    let load = Load::start(
        vec![one.clone(), other.clone()],
        &population,
        Tolerance::EveryUserServed,
    );
    let churn = Churn::start(one.clone(), population.warm[..CHURNED].to_vec());
    load.run_until(Phase::Before, BEFORE).await;
    churn.run_for(CHURN_PHASE).await;

    let cut = pubsub_client_ids(&redis);
    assert_eq!(cut.len(), 2, "one subscriber per instance: {cut:?}");
    let newest_cut = cut.iter().copied().max().unwrap();
    load.enter(Phase::During);
    let down = Instant::now();
    assert_eq!(kill_pubsub_clients(&redis), 2, "both subscribers cut");
    // Redis itself never left: the part is "back" as soon as the cut is made.
    let outage = down.elapsed();
    let (redis_ref, instances) = (&redis, [&one, &other]);
    let recovery = time_to_recover(
        "both instances subscribed on new connections",
        || async move {
            let subscribers = pubsub_client_ids(redis_ref);
            subscribers.len() == 2
                && subscribers.iter().all(|&id| id > newest_cut)
                && instances.iter().all(|auth| reconnected(auth))
        },
    )
    .await;
    load.enter(Phase::After);

    churn.run_for(CHURN_PHASE).await;
    an_invalidation_reaches(&one, &other, &repository, &population.probes[0]).await;
    load.run_for(Phase::After, AFTER).await;
    let (published, churn_errors) = churn.stop().await;
    let outcome = load.stop().await;
    let stats = one.stats();
    let notes = [format!(
        "invalidations published throughout: {published}, refused: {}",
        churn_errors.len()
    )];
    DrillReport {
        drill: "bus cut",
        injected: "CLIENT KILL TYPE pubsub (both instances' subscribers) during a stream of \
                   invalidations",
        outage,
        recovery,
        recovered_when: BUS_BACK,
        outcome: &outcome,
        stats: &stats,
        notes: &notes,
    }
    .print_and_check();
    assert!(
        churn_errors.is_empty(),
        "invalidations refused: {churn_errors:?}"
    );
    for auth in instances {
        let stats = auth.stats();
        let unpublished: u64 = stats.data_tiers().iter().map(|t| t.publish_errors).sum();
        assert_eq!(unpublished, 0, "invalidations not published: {stats:?}");
    }
}
