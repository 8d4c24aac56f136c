//! `AuthService` against what it replaces, each pair timed in the same run on throwaway
//! local servers (a redis-server, and SecantusDB for the miss path, through the test kit).
//!
//! - `auth_warm_{hs256,rs256,es256}` — a warm `authenticate` (the answer — user, roles,
//!   permissions, revocation check — from L1; Redis as L2; signed entries) as
//!   `authcache`, against `decode` (bare `jsonwebtoken::decode` of the same token) and
//!   `hand_rolled`: what many backends do on every request — `decode`, a Redis
//!   `GET user_cache:{sub}` of the JSON-serialized user, `serde_json` decode (no roles or
//!   permissions, no revocation check, no poisoning protection: strictly less work).
//! - `auth_validation_cache_{hs256,rs256,es256}` — the validation cache by itself (warm,
//!   in-process cache): `raw` = off (verify the signature every time), `authcache` = on.
//! - `auth_l2_hit` — `user(id)` answered by L2 alone (L1 off: GET, envelope check, HMAC,
//!   decode) against `raw`: a redis-rs `GET` of the same entry's bytes.
//! - `auth_miss_path` — `user(id)` missing both tiers (L2 `GET`, MongoDB `find_one`, the
//!   conditional fill of L2 and L1) against `raw`: what the replaced system does on a miss
//!   — a Redis `GET user_cache:{id}` that misses, the driver's `find_one`, and a `SET … EX`
//!   of its JSON: three round trips against our three.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use authcache::{
    AuthService, CacheConfig, JwtVerifier, MemoryUserRepository, MongoUserRepository, TokenIssuer,
    Ttls, User, UserRepository,
};
use authcache_core::{KeyKind, Keyspace};
use authcache_jwt::serde_json::{self, Map, Value};
use authcache_jwt::test_keys;
use authcache_tests::mongo_server::MongoServer;
use authcache_tests::redis_server::RedisServer;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mongodb::bson::doc;
use redis::aio::ConnectionManager;

const SUB: &str = "user-42";
const SIGNING_KEY: &[u8] = b"bench-cache-signing-key-0123456789";
/// Users seeded for the miss path; each pass over them uses a fresh key prefix, so every
/// read misses both tiers.
const MISS_USERS: usize = 200;

struct Alg {
    name: &'static str,
    issuer: TokenIssuer,
    verifier: fn() -> JwtVerifier,
    raw_key: DecodingKey,
    raw_alg: Algorithm,
}

fn algorithms() -> Vec<Alg> {
    vec![
        Alg {
            name: "hs256",
            issuer: TokenIssuer::test_hs256(),
            verifier: JwtVerifier::test_hs256,
            raw_key: DecodingKey::from_secret(test_keys::HS256_SECRET),
            raw_alg: Algorithm::HS256,
        },
        Alg {
            name: "rs256",
            issuer: TokenIssuer::test_rs256(),
            verifier: JwtVerifier::test_rs256,
            raw_key: DecodingKey::from_rsa_pem(test_keys::RSA_A_PUBLIC_PEM.as_bytes()).unwrap(),
            raw_alg: Algorithm::RS256,
        },
        Alg {
            name: "es256",
            issuer: TokenIssuer::test_es256(),
            verifier: JwtVerifier::test_es256,
            raw_key: DecodingKey::from_ec_pem(test_keys::EC_P256_PUBLIC_PEM.as_bytes()).unwrap(),
            raw_alg: Algorithm::ES256,
        },
    ]
}

fn user() -> User {
    User::new(SUB, "user42@example.com", "User Forty-Two")
        .with_roles(["reader", "writer"])
        .with_updated_at(1_700_000_000_000)
}

fn repository() -> MemoryUserRepository {
    MemoryUserRepository::new()
        .with_role("reader", ["articles:read", "comments:read"])
        .unwrap()
        .with_role("writer", ["articles:write"])
        .unwrap()
        .with_user(user())
        .unwrap()
}

async fn service(alg: &Alg, cache: CacheConfig, validation_cache: bool) -> AuthService {
    AuthService::builder()
        .verifier((alg.verifier)())
        .repository(repository())
        .cache(cache)
        .signing_key(SIGNING_KEY)
        .validation_cache(validation_cache)
        .build()
        .await
        .unwrap()
}

async fn connection(redis: &RedisServer) -> ConnectionManager {
    ConnectionManager::new(authcache_benches::raw_redis_client(&redis.url()).unwrap())
        .await
        .unwrap()
}

/// The hand-rolled pattern's read: decode, `GET user_cache:{sub}`, JSON.
async fn hand_rolled(
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
    mut conn: ConnectionManager,
) -> User {
    let claims = jsonwebtoken::decode::<Map<String, Value>>(token, key, validation)
        .unwrap()
        .claims;
    let sub = claims.get("sub").and_then(Value::as_str).unwrap();
    let cached: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!("user_cache:{sub}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    serde_json::from_slice(&cached.unwrap()).unwrap()
}

async fn set_json(conn: &mut ConnectionManager, user: &User) {
    redis::cmd("SET")
        .arg(format!("user_cache:{}", user.id))
        .arg(serde_json::to_vec(user).unwrap())
        .arg("EX")
        .arg(300)
        .query_async::<()>(conn)
        .await
        .unwrap();
}

fn bench_warm(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    redis: &RedisServer,
    alg: &Alg,
) {
    let token = alg.issuer.issue(SUB, Duration::from_secs(3_600)).unwrap();
    let bearer = format!("Bearer {token}");
    let (auth, raw) = runtime.block_on(async {
        let auth = service(alg, CacheConfig::redis(redis.url()), true).await;
        auth.authenticate(&bearer).await.unwrap();
        let mut raw = connection(redis).await;
        set_json(&mut raw, &user()).await;
        (auth, raw)
    });
    let warm_loads = auth.stats().loads();
    let validation = Validation::new(alg.raw_alg);
    let mut group = c.benchmark_group(format!("auth_warm_{}", alg.name));
    group.bench_function("decode", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<Map<String, Value>>(&token, &alg.raw_key, &validation).unwrap()
        });
    });
    group.bench_function("hand_rolled", |b| {
        b.to_async(runtime).iter(|| async {
            let user = hand_rolled(&token, &alg.raw_key, &validation, raw.clone()).await;
            assert_eq!(user.id, SUB);
        });
    });
    group.bench_function("authcache", |b| {
        b.to_async(runtime).iter(|| async {
            let who = auth.authenticate(&bearer).await.unwrap();
            assert_eq!(who.id(), SUB);
        });
    });
    group.finish();
    assert_eq!(
        auth.stats().loads(),
        warm_loads,
        "every measured call was warm"
    );
}

fn bench_validation_cache(c: &mut Criterion, runtime: &tokio::runtime::Runtime, alg: &Alg) {
    let bearer = Arc::new(format!(
        "Bearer {}",
        alg.issuer.issue(SUB, Duration::from_secs(3_600)).unwrap()
    ));
    let (off, on) = runtime.block_on(async {
        let off = service(alg, CacheConfig::memory(), false).await;
        let on = service(alg, CacheConfig::memory(), true).await;
        off.authenticate(&bearer).await.unwrap();
        on.authenticate(&bearer).await.unwrap();
        (off, on)
    });
    let mut group = c.benchmark_group(format!("auth_validation_cache_{}", alg.name));
    for (name, auth) in [("raw", &off), ("authcache", &on)] {
        group.bench_function(name, |b| {
            b.to_async(runtime).iter(|| async {
                assert_eq!(auth.authenticate(&bearer).await.unwrap().id(), SUB);
            });
        });
    }
    group.finish();
}

/// A service on Redis with the L1 off: every read is answered by L2 (or the repository).
async fn l2_only_service(
    redis: &RedisServer,
    repository: Arc<dyn UserRepository>,
    prefix: &str,
) -> AuthService {
    AuthService::builder()
        .verifier(JwtVerifier::test_hs256())
        .shared_repository(repository)
        .cache(CacheConfig::redis(redis.url()))
        .signing_key(SIGNING_KEY)
        .prefix(prefix)
        .ttls(Ttls {
            l1_cap: Duration::ZERO,
            ..Ttls::default()
        })
        .build()
        .await
        .unwrap()
}

fn bench_l2_hit(c: &mut Criterion, runtime: &tokio::runtime::Runtime, redis: &RedisServer) {
    const PREFIX: &str = "bench_l2";
    let key = Keyspace::new(PREFIX)
        .unwrap()
        .key(KeyKind::User, SUB)
        .unwrap();
    let (auth, raw) = runtime.block_on(async {
        let auth = l2_only_service(redis, Arc::new(repository()), PREFIX).await;
        auth.user(SUB).await.unwrap();
        (auth, connection(redis).await)
    });
    let mut group = c.benchmark_group("auth_l2_hit");
    group.bench_function("raw", |b| {
        b.to_async(runtime).iter(|| {
            let mut conn = raw.clone();
            let key = key.as_str();
            async move {
                let entry: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                assert!(entry.is_some_and(|bytes| !bytes.is_empty()));
            }
        });
    });
    group.bench_function("authcache", |b| {
        b.to_async(runtime).iter(|| async {
            assert_eq!(auth.user(SUB).await.unwrap().id, SUB);
        });
    });
    group.finish();
    let users = auth.stats().users;
    assert_eq!(
        (users.l1_hits, users.loads),
        (0, 1),
        "every measured read was an L2 hit"
    );
}

fn miss_user(i: usize) -> User {
    User::new(
        format!("miss-{i:04}"),
        format!("miss{i}@example.com"),
        format!("Missing Person {i}"),
    )
    .with_roles(["reader"])
    .with_updated_at(1_700_000_000_000)
}

/// The miss path's state across criterion's calls: the service of the current pass and how
/// many of its users it has read. A pass ends when every seeded user was read once; the
/// next pass gets a fresh service under a fresh prefix, so its reads miss both tiers again.
struct MissPasses<'a> {
    redis: &'a RedisServer,
    repository: Arc<dyn UserRepository>,
    passes: u32,
    auth: Option<AuthService>,
    next: usize,
}

impl MissPasses<'_> {
    /// The service to read `ids[index]` with, starting a new pass when the current one is
    /// used up (untimed: the caller times only the read).
    async fn next(&mut self, users: usize) -> (AuthService, usize) {
        if self.auth.is_none() || self.next == users {
            self.passes += 1;
            let prefix = format!("bench_miss_{}", self.passes);
            let repository = Arc::clone(&self.repository);
            // The last pass's service goes first, and the new one is subscribed before a
            // read is timed: their start-up and teardown would otherwise run inside the
            // timed reads (one thread runs everything here).
            self.auth = None;
            let auth = l2_only_service(self.redis, repository, &prefix).await;
            while auth.stats().bus_subscribed == Some(false) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            self.auth = Some(auth);
            self.next = 0;
        }
        self.next += 1;
        (self.auth.clone().unwrap(), self.next - 1)
    }
}

fn bench_miss_path(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    redis: &RedisServer,
    mongo: &MongoServer,
) {
    let ids: Vec<String> = (0..MISS_USERS).map(|i| miss_user(i).id).collect();
    let (repository, users, raw) = runtime.block_on(async {
        let database = mongo.fresh_database();
        let repository = MongoUserRepository::<User>::connect(&mongo.uri(), &database)
            .await
            .unwrap();
        for i in 0..MISS_USERS {
            repository.upsert(&miss_user(i)).await.unwrap();
        }
        let users = mongo
            .client()
            .await
            .database(&database)
            .collection::<User>("users");
        let repository: Arc<dyn UserRepository> = Arc::new(repository);
        (repository, users, connection(redis).await)
    });
    // Each raw read gets a key never written before (a fresh `user_cache{n}:` prefix per
    // read), so its `GET` misses as ours does.
    let raw_reads = std::sync::atomic::AtomicU64::new(0);
    let mut group = c.benchmark_group("auth_miss_path");
    group.bench_function("raw", |b| {
        b.to_async(runtime).iter_custom(|iters| {
            let (users, ids, mut conn, reads) = (users.clone(), &ids, raw.clone(), &raw_reads);
            async move {
                let started = Instant::now();
                for _ in 0..iters {
                    let n = reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let id = ids[usize::try_from(n).unwrap() % ids.len()].as_str();
                    let key = format!("user_cache{n}:{id}");
                    let cached: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    assert!(cached.is_none(), "every raw read missed Redis");
                    let user = users.find_one(doc! { "_id": id }).await.unwrap().unwrap();
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(serde_json::to_vec(&user).unwrap())
                        .arg("EX")
                        .arg(300)
                        .query_async::<()>(&mut conn)
                        .await
                        .unwrap();
                }
                started.elapsed()
            }
        });
    });
    let passes = tokio::sync::Mutex::new(MissPasses {
        redis,
        repository,
        passes: 0,
        auth: None,
        next: 0,
    });
    group.bench_function("authcache", |b| {
        b.to_async(runtime).iter_custom(|iters| {
            let (passes, ids) = (&passes, &ids);
            async move {
                let mut measured = Duration::ZERO;
                for _ in 0..iters {
                    let (auth, index) = passes.lock().await.next(ids.len()).await;
                    let started = Instant::now();
                    let user = auth.user(&ids[index]).await.unwrap();
                    measured += started.elapsed();
                    assert_eq!(user.id, ids[index]);
                }
                measured
            }
        });
    });
    group.finish();
    // No service when a filter skipped the function.
    if let Some(auth) = passes.into_inner().auth {
        let users = auth.stats().users;
        assert_eq!(users.l2_hits, 0, "every measured read missed L2");
        assert_eq!(users.loads, users.misses, "every miss was loaded");
    }
}

fn benches(c: &mut Criterion) {
    let redis = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for alg in algorithms() {
        bench_warm(c, &runtime, &redis, &alg);
        bench_validation_cache(c, &runtime, &alg);
    }
    bench_l2_hit(c, &runtime, &redis);
    let mongo = runtime.block_on(MongoServer::start());
    bench_miss_path(c, &runtime, &redis, &mongo);
}

criterion_group! {
    name = auth_benches;
    config = authcache_benches::criterion();
    targets = benches
}
criterion_main!(auth_benches);
