//! `AuthService::authenticate` against the hand-rolled pattern it replaces, warm, on a
//! throwaway local redis-server (spawned through the test kit).
//!
//! - `raw`: what many backends do on every request — `jsonwebtoken::decode` of the bearer
//!   token, a Redis `GET user_cache:{sub}` of the JSON-serialized user, `serde_json` decode.
//!   (It has no roles/permissions lookup, no revocation check and no poisoning protection:
//!   it does strictly less work than `authcache`.)
//! - `authcache`: `AuthService::authenticate` with Redis as L2, signed entries, warm: the
//!   answer (user, roles, permissions, revocation check) comes from L1.
//!
//! Groups `auth_authenticate_{hs256,rs256}_warm`. Two more groups measure the validation
//! cache by itself (in-process cache, warm): `auth_validation_cache_{hs256,rs256}` with
//! `raw` = validation cache off (verify the signature every time) and `authcache` = on.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use authcache::{AuthService, CacheConfig, JwtVerifier, MemoryUserRepository, TokenIssuer, User};
use authcache_jwt::serde_json::{self, Map, Value};
use authcache_jwt::test_keys;
use authcache_tests::redis_server::RedisServer;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use redis::aio::ConnectionManager;

const SUB: &str = "user-42";

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
        .signing_key(b"bench-cache-signing-key-0123456789")
        .validation_cache(validation_cache)
        .build()
        .await
        .unwrap()
}

fn bench_authenticate(
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
        let mut raw = ConnectionManager::new(redis::Client::open(redis.url()).unwrap())
            .await
            .unwrap();
        let json = serde_json::to_vec(&user()).unwrap();
        redis::cmd("SET")
            .arg(format!("user_cache:{SUB}"))
            .arg(json)
            .arg("EX")
            .arg(300)
            .query_async::<()>(&mut raw)
            .await
            .unwrap();
        (auth, raw)
    });
    let validation = Validation::new(alg.raw_alg);
    let mut group = c.benchmark_group(format!("auth_authenticate_{}_warm", alg.name));
    group.bench_function("raw", |b| {
        b.to_async(runtime).iter(|| {
            let mut conn = raw.clone();
            let token = token.as_str();
            let (key, validation) = (&alg.raw_key, &validation);
            async move {
                let claims = jsonwebtoken::decode::<Map<String, Value>>(token, key, validation)
                    .unwrap()
                    .claims;
                let sub = claims.get("sub").and_then(Value::as_str).unwrap();
                let cached: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(format!("user_cache:{sub}"))
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                let user: User = serde_json::from_slice(&cached.unwrap()).unwrap();
                assert_eq!(user.id, SUB);
            }
        });
    });
    group.bench_function("authcache", |b| {
        b.to_async(runtime).iter(|| async {
            let who = auth.authenticate(&bearer).await.unwrap();
            assert_eq!(who.id(), SUB);
        });
    });
    group.finish();
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

fn benches(c: &mut Criterion) {
    let redis = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for alg in algorithms() {
        bench_authenticate(c, &runtime, &redis, &alg);
        bench_validation_cache(c, &runtime, &alg);
    }
}

criterion_group! {
    name = auth_benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    targets = benches
}
criterion_main!(auth_benches);
