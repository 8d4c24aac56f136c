//! Warm `authenticate` (HS256, answers from L1, Redis as L2) against bare
//! `jsonwebtoken::decode` of the same tokens, as throughput at 1, 2, 4 and 8 tasks on the
//! multi-threaded runtime. Each task yields every few operations, as a server task does
//! between requests, so that every task gets its turn on the workers.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use authcache::{AuthService, CacheConfig, JwtVerifier, MemoryUserRepository, TokenIssuer, User};
use authcache_benches::by_mode;
use authcache_benches::figures::Unit;
use authcache_jwt::serde_json::{Map, Value};
use authcache_jwt::test_keys;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::{Context, record};

/// Task counts to report.
const TASKS: [usize; 4] = [1, 2, 4, 8];
/// Warm users the tasks cycle through.
const USERS: usize = 64;
/// Operations between yields.
const BATCH: u64 = 8;

pub(crate) fn run(cx: &Context) {
    let duration = by_mode(Duration::from_secs(2), Duration::from_millis(500));
    let (auth, tokens) = cx.runtime.block_on(warm_service(&cx.redis.url()));
    let tokens = Arc::new(tokens);
    for tasks in TASKS {
        let decode = cx.runtime.block_on(rate(tasks, duration, |task, stop| {
            decode_loop(task, Arc::clone(&tokens), stop)
        }));
        let ours = cx.runtime.block_on(rate(tasks, duration, |task, stop| {
            authenticate_loop(task, auth.clone(), Arc::clone(&tokens), stop)
        }));
        let id = format!("authenticate_hs256_tasks_{tasks}");
        record(&format!("{id}/decode"), decode, Unit::PerSecond);
        record(&format!("{id}/authcache"), ours, Unit::PerSecond);
    }
    assert_eq!(
        auth.stats().users.loads,
        USERS as u64,
        "every measured authentication was warm"
    );
}

async fn warm_service(redis_url: &str) -> (AuthService, Vec<String>) {
    let mut repository = MemoryUserRepository::new()
        .with_role("reader", ["articles:read"])
        .unwrap();
    let issuer = TokenIssuer::test_hs256();
    let mut tokens = Vec::with_capacity(USERS);
    for i in 0..USERS {
        let id = format!("tp-user-{i}");
        let user = User::new(&id, format!("tp{i}@example.com"), format!("User {i}"));
        repository = repository.with_user(user.with_roles(["reader"])).unwrap();
        tokens.push(issuer.issue(&id, Duration::from_secs(3_600)).unwrap());
    }
    let auth = AuthService::builder()
        .verifier(JwtVerifier::test_hs256())
        .repository(repository)
        .cache(CacheConfig::redis(redis_url))
        .signing_key(b"bench-cache-signing-key-0123456789")
        .prefix("fig_throughput")
        .build()
        .await
        .unwrap();
    for token in &tokens {
        auth.authenticate(token).await.unwrap();
    }
    (auth, tokens)
}

async fn decode_loop(task: usize, tokens: Arc<Vec<String>>, stop: Arc<AtomicBool>) -> u64 {
    let key = DecodingKey::from_secret(test_keys::HS256_SECRET);
    let validation = Validation::new(Algorithm::HS256);
    let mut ops = 0;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..BATCH {
            let token = &tokens[(task + ops as usize) % tokens.len()];
            jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).unwrap();
            ops += 1;
        }
        tokio::task::yield_now().await;
    }
    ops
}

async fn authenticate_loop(
    task: usize,
    auth: AuthService,
    tokens: Arc<Vec<String>>,
    stop: Arc<AtomicBool>,
) -> u64 {
    let mut ops = 0;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..BATCH {
            let token = &tokens[(task + ops as usize) % tokens.len()];
            auth.authenticate(token).await.unwrap();
            ops += 1;
        }
        tokio::task::yield_now().await;
    }
    ops
}

/// Runs `tasks` copies of `work` for about `duration`; returns operations per second,
/// counted from the spawn of the first task to the end of the last.
pub(crate) async fn rate<W, Fut>(tasks: usize, duration: Duration, work: W) -> f64
where
    W: Fn(usize, Arc<AtomicBool>) -> Fut,
    Fut: Future<Output = u64> + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|task| tokio::spawn(work(task, Arc::clone(&stop))))
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut ops = 0;
    for worker in workers {
        ops += worker.await.unwrap();
    }
    ops as f64 / started.elapsed().as_secs_f64()
}
