//! `RedisCache` against bare redis-rs on a throwaway local redis-server (spawned through the
//! test kit): a `GET` hit of the same 512-byte value, and an `MGET` of 16 keys. Both sides use
//! a redis-rs `ConnectionManager` (multiplexed) to the same server on the same runtime; the
//! difference is what authcache adds (key handling, the timeout, error mapping, the boxed
//! `async_trait` future, `Bytes`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use authcache_core::{Cache, Key, KeyKind, Keyspace};
use authcache_redis::{RedisCache, RedisConfig};
use authcache_tests::redis_server::RedisServer;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use redis::aio::ConnectionManager;

const VALUE_LEN: usize = 512;
const MGET_KEYS: usize = 16;

struct Setup {
    _server: RedisServer,
    runtime: tokio::runtime::Runtime,
    raw: ConnectionManager,
    cache: RedisCache,
    keys: Vec<Key>,
}

fn setup() -> Setup {
    let server = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keyspace = Keyspace::default();
    let keys: Vec<Key> = (0..MGET_KEYS)
        .map(|i| keyspace.key(KeyKind::User, &format!("bench-{i}")).unwrap())
        .collect();
    let (raw, cache) = runtime.block_on(async {
        let raw =
            ConnectionManager::new(authcache_benches::raw_redis_client(&server.url()).unwrap())
                .await
                .unwrap();
        let cache = RedisCache::connect(&RedisConfig::from_url(&server.url()).unwrap())
            .await
            .unwrap();
        let value = Bytes::from(vec![0xA5; VALUE_LEN]);
        for key in &keys {
            cache
                .set(key, value.clone(), Duration::from_secs(3600))
                .await
                .unwrap();
        }
        (raw, cache)
    });
    Setup {
        _server: server,
        runtime,
        raw,
        cache,
        keys,
    }
}

fn redis_get_hit(c: &mut Criterion, s: &Setup) {
    let key = &s.keys[0];
    let mut group = c.benchmark_group("redis_get_hit");
    group.bench_function("raw", |b| {
        b.to_async(&s.runtime).iter(|| {
            let mut conn = s.raw.clone();
            async move {
                let value: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(key.as_str())
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                assert_eq!(value.map(|v| v.len()), Some(VALUE_LEN));
            }
        });
    });
    group.bench_function("authcache", |b| {
        b.to_async(&s.runtime).iter(|| async {
            let value = s.cache.get(key).await.unwrap();
            assert_eq!(value.map(|v| v.len()), Some(VALUE_LEN));
        });
    });
    group.finish();
}

fn redis_mget_16(c: &mut Criterion, s: &Setup) {
    let mut group = c.benchmark_group("redis_mget_16");
    group.bench_function("raw", |b| {
        b.to_async(&s.runtime).iter(|| {
            let mut conn = s.raw.clone();
            let mut cmd = redis::cmd("MGET");
            for key in &s.keys {
                cmd.arg(key.as_str());
            }
            async move {
                let values: Vec<Option<Vec<u8>>> = cmd.query_async(&mut conn).await.unwrap();
                assert_eq!(values.len(), MGET_KEYS);
            }
        });
    });
    group.bench_function("authcache", |b| {
        b.to_async(&s.runtime).iter(|| async {
            let values = s.cache.get_many(&s.keys).await.unwrap();
            assert_eq!(values.len(), MGET_KEYS);
        });
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let setup = setup();
    redis_get_hit(c, &setup);
    redis_mget_16(c, &setup);
}

criterion_group! {
    name = redis_benches;
    config = authcache_benches::criterion();
    targets = benches
}
criterion_main!(redis_benches);
