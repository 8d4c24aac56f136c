//! `RedisCache` against a server that dies, comes back, hangs and resumes; credentials that
//! must never show; TLS set-up that must not panic. Every call under test is wrapped in a
//! generous tokio timeout, so a hang fails the test instead of stalling it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::time::Duration;

use authcache_core::{Cache, CacheError, Key, KeyKind, Keyspace};
use authcache_redis::{RedisCache, RedisConfig};
use authcache_tests::process::{eventually, free_port};
use authcache_tests::redis_server::RedisServer;
use bytes::Bytes;

/// Far above the 100 ms call timeout: reaching it means the call hung.
const HANG_GUARD: Duration = Duration::from_secs(5);
const RECOVERY: Duration = Duration::from_secs(10);
const TTL: Duration = Duration::from_secs(60);

async fn guarded<T>(what: &str, call: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG_GUARD, call)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for {HANG_GUARD:?}"))
}

fn key(id: &str) -> Key {
    Keyspace::default().key(KeyKind::User, id).unwrap()
}

async fn connect(server: &RedisServer) -> RedisCache {
    RedisCache::connect(&RedisConfig::from_url(&server.url()).unwrap())
        .await
        .unwrap()
}

/// Each cache operation once, returning the errors (none expected to succeed).
async fn every_call_fails(cache: &RedisCache) -> Vec<CacheError> {
    let k = key("fault");
    vec![
        guarded("get", cache.get(&k)).await.unwrap_err(),
        guarded("set", cache.set(&k, Bytes::from_static(b"v"), TTL))
            .await
            .unwrap_err(),
        guarded("delete", cache.delete(&k)).await.unwrap_err(),
        guarded("get_many", cache.get_many(&[k.clone(), key("other")]))
            .await
            .unwrap_err(),
        guarded("delete_many", cache.delete_many(&[k.clone(), key("other")]))
            .await
            .unwrap_err(),
    ]
}

/// Waits (bounded) until `cache` works on a healthy server: a call that a loaded machine
/// answers slower than the 100 ms call timeout is retried, not read as a broken cache.
async fn eventually_works(cache: &RedisCache) {
    eventually(RECOVERY, "the cache works on a healthy server", || {
        works(cache)
    })
    .await;
}

async fn works(cache: &RedisCache) -> bool {
    let k = key("probe");
    matches!(
        guarded("set", cache.set(&k, Bytes::from_static(b"ok"), TTL)).await,
        Ok(())
    ) && matches!(guarded("get", cache.get(&k)).await, Ok(Some(v)) if v == "ok")
}

#[tokio::test]
async fn killed_server_fails_fast_and_the_same_cache_recovers_after_restart() {
    let mut server = RedisServer::start();
    let cache = connect(&server).await;
    eventually_works(&cache).await;

    server.kill();
    for err in every_call_fails(&cache).await {
        assert!(
            err.is_unavailable() || err.is_timeout(),
            "untyped error: {err:?}"
        );
    }

    server.restart();
    eventually(
        RECOVERY,
        "the same RedisCache works after the restart",
        || works(&cache),
    )
    .await;
}

#[tokio::test]
async fn hung_server_times_out_each_call_and_recovers_on_resume() {
    let server = RedisServer::start();
    let config = RedisConfig::from_url(&server.url())
        .unwrap()
        .with_timeout(Duration::from_millis(100));
    let cache = RedisCache::connect(&config).await.unwrap();
    eventually_works(&cache).await;

    server.hang();
    for err in every_call_fails(&cache).await {
        assert!(
            matches!(err, CacheError::Timeout(t) if t == Duration::from_millis(100)),
            "{err:?}"
        );
    }
    server.resume();
    eventually(RECOVERY, "calls succeed after SIGCONT", || works(&cache)).await;
}

#[tokio::test]
async fn connecting_to_a_hung_server_is_bounded_by_the_connect_timeout() {
    let server = RedisServer::start();
    server.hang();
    let config = RedisConfig::from_url(&server.url())
        .unwrap()
        .with_connect_timeout(Duration::from_millis(300));
    let err = guarded("connect", RedisCache::connect(&config))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    server.resume();
}

#[tokio::test]
async fn connect_fails_typed_when_nothing_listens() {
    let config = RedisConfig::from_url(&format!("redis://127.0.0.1:{}", free_port())).unwrap();
    let err = guarded("connect", RedisCache::connect(&config))
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
}

#[tokio::test]
async fn lazy_cache_starts_without_redis_and_works_once_it_is_up() {
    let mut server = RedisServer::start();
    let config = RedisConfig::from_url(&server.url()).unwrap();
    server.kill();
    let cache = RedisCache::connect_lazy(&config).unwrap();
    let err = guarded("get", cache.get(&key("lazy"))).await.unwrap_err();
    assert!(err.is_unavailable() || err.is_timeout(), "{err:?}");
    server.restart();
    eventually(RECOVERY, "the lazy cache connects once Redis is up", || {
        works(&cache)
    })
    .await;
}

#[tokio::test]
async fn credentials_never_show_in_debug_or_errors() {
    const RIGHT: &str = "right-Pa55word-7f3a";
    const WRONG: &str = "wrong-Pa55word-9c1e";
    let server = RedisServer::start_with_password(RIGHT);
    let good = RedisConfig::from_url(&format!(
        "redis://default:{RIGHT}@127.0.0.1:{}/1",
        server.port()
    ))
    .unwrap();
    let cache = RedisCache::connect(&good).await.unwrap();
    eventually_works(&cache).await;
    for shown in [format!("{good:?}"), format!("{cache:?}")] {
        assert!(
            !shown.contains(RIGHT) && !shown.contains("default:"),
            "{shown}"
        );
        assert!(shown.contains(&server.port().to_string()), "{shown}");
    }

    let bad = RedisConfig::from_url(&format!(
        "redis://default:{WRONG}@127.0.0.1:{}",
        server.port()
    ))
    .unwrap();
    let err = guarded("connect", RedisCache::connect(&bad))
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    for shown in [err.to_string(), format!("{err:?}"), format!("{bad:?}")] {
        assert!(!shown.contains(WRONG), "{shown}");
    }
    let lazy = RedisCache::connect_lazy(&bad).unwrap();
    let err = guarded("get", lazy.get(&key("x"))).await.unwrap_err();
    assert!(
        !err.to_string().contains(WRONG) && !format!("{err:?}").contains(WRONG),
        "{err:?}"
    );
    assert!(!format!("{lazy:?}").contains(WRONG));
}

#[tokio::test]
async fn tls_to_a_plain_server_is_a_typed_error_not_a_panic() {
    let server = RedisServer::start();
    let config = RedisConfig::from_url(&format!("rediss://127.0.0.1:{}", server.port())).unwrap();
    assert!(config.uses_tls());
    let err = guarded("connect", RedisCache::connect(&config))
        .await
        .unwrap_err();
    assert!(err.is_unavailable() || err.is_timeout(), "{err:?}");
}
