//! The one conformance suite (`authcache_tests::cache_conformance`) against every backend:
//! `MemoryCache`, `RedisCache` on a throwaway server, `RedisClusterCache` on a 3-master Cluster.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use authcache_core::{Cache, KeyKind};
use authcache_memory::MemoryCache;
use authcache_redis::{RedisCache, RedisClusterCache, RedisConfig};
use authcache_tests::cache_conformance::{
    conditional_fills_across_slots, fresh_keyspace, run_all, write_spread_keys,
};
use authcache_tests::redis_server::{RedisClusterServer, RedisServer};
use bytes::Bytes;

// Two workers, so the concurrent conditional fills really run in parallel on moka.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_cache_conforms() {
    let cache = MemoryCache::new(64 << 20);
    run_all(&cache).await;
}

#[tokio::test]
async fn redis_cache_conforms() {
    let server = RedisServer::start();
    let cache = RedisCache::connect(&RedisConfig::from_url(&server.url()).unwrap())
        .await
        .unwrap();
    run_all(&cache).await;
}

/// The conditional fill goes out as `EVALSHA`; a server that lost its scripts (restart,
/// `SCRIPT FLUSH`) answers `NOSCRIPT`, and the fill must load the script and retry.
#[tokio::test]
async fn redis_conditional_fill_survives_a_script_flush() {
    let server = RedisServer::start();
    let cache = RedisCache::connect(&RedisConfig::from_url(&server.url()).unwrap())
        .await
        .unwrap();
    let k = fresh_keyspace().key(KeyKind::User, "flushed").unwrap();
    let ttl = Duration::from_secs(60);
    let first = Bytes::from_static(b"first");
    assert!(
        cache
            .set_if_unchanged(&k, None, first.clone(), ttl)
            .await
            .unwrap()
    );
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .exec(&mut server.connection())
        .unwrap();
    let second = Bytes::from_static(b"second");
    assert!(
        cache
            .set_if_unchanged(&k, Some(first), second.clone(), ttl)
            .await
            .unwrap()
    );
    assert_eq!(cache.get(&k).await.unwrap(), Some(second));
}

#[tokio::test]
async fn redis_cache_conforms_on_a_password_protected_db() {
    let server = RedisServer::start_with_password("conformance-pass");
    let url = format!("{}/3", server.url());
    let cache = RedisCache::connect(&RedisConfig::from_url(&url).unwrap())
        .await
        .unwrap();
    run_all(&cache).await;
    // The entries went to db 3, not db 0.
    let mut conn = server.connection();
    redis::cmd("SELECT").arg(3).exec(&mut conn).unwrap();
    let before: u64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    write_spread_keys(&cache, &fresh_keyspace(), 5).await;
    let after: u64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    redis::cmd("SELECT").arg(0).exec(&mut conn).unwrap();
    let db0: u64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    assert_eq!((db0, after - before), (0, 5));
}

#[tokio::test]
async fn redis_cluster_cache_conforms() {
    let cluster = RedisClusterServer::start();
    let config = RedisConfig::from_urls(cluster.urls()).unwrap();
    let cache = RedisClusterCache::connect(&config).await.unwrap();
    run_all(&cache).await;
}

#[tokio::test]
async fn cluster_keys_spread_over_every_master_and_batch_commands_cross_slots() {
    let cluster = RedisClusterServer::start();
    let cache = RedisClusterCache::connect(&RedisConfig::from_urls(cluster.urls()).unwrap())
        .await
        .unwrap();
    let keys = fresh_keyspace();
    let written = write_spread_keys(&cache, &keys, 300).await;

    let mut slots = std::collections::BTreeSet::new();
    let mut conn = cluster.nodes()[0].connection();
    for key in &written {
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key.as_str())
            .query(&mut conn)
            .unwrap();
        slots.insert(slot);
    }
    assert!(
        slots.len() > 250,
        "300 ids should hash to many slots, got {}",
        slots.len()
    );
    for node in cluster.nodes() {
        let size: u64 = redis::cmd("DBSIZE").query(&mut node.connection()).unwrap();
        assert!(
            size > 0,
            "master on port {} holds none of the 300 keys",
            node.port()
        );
    }

    // One MGET and one DEL across all masters: answers in key order, counts summed.
    let values = cache.get_many(&written).await.unwrap();
    assert!(
        values
            .iter()
            .enumerate()
            .all(|(i, v)| v.as_deref() == Some(format!("value-{i}").as_bytes()))
    );
    assert_eq!(cache.delete_many(&written).await.unwrap(), 300);
    for node in cluster.nodes() {
        let size: u64 = redis::cmd("DBSIZE").query(&mut node.connection()).unwrap();
        assert_eq!(
            size,
            0,
            "master on port {} kept keys after delete_many",
            node.port()
        );
    }

    // Conditional fills on every master, after each master lost its scripts (`NOSCRIPT`
    // must load the script where the key lives and retry).
    for node in cluster.nodes() {
        redis::cmd("SCRIPT")
            .arg("FLUSH")
            .exec(&mut node.connection())
            .unwrap();
    }
    conditional_fills_across_slots(&cache, 300).await;
}
