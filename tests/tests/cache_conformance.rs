//! The one conformance suite (`authcache_tests::cache_conformance`) against every backend:
//! `MemoryCache`, `RedisCache` on a throwaway server, `RedisClusterCache` on a 3-master Cluster.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use authcache_core::{Cache, KeyKind};
use authcache_memory::MemoryCache;
use authcache_redis::{RedisCache, RedisClusterCache, RedisConfig};
use authcache_tests::cache_conformance::{
    conditional_fills_on, fresh_keyspace, run_all, write_spread_keys,
};
use authcache_tests::cluster_slots::{SlotLayout, key_slot, keys_on_every_master};
use authcache_tests::redis_server::{PATIENT_TIMEOUT, RedisClusterServer, RedisServer};
use bytes::Bytes;

/// Long enough that no entry of a check expires during it.
const LONG: Duration = Duration::from_secs(300);

/// The conformance suite checks what calls answer, not how fast: every call may take up to
/// [`PATIENT_TIMEOUT`], so a slow reply on a loaded machine is not a failed check.
fn patient<E: std::fmt::Debug>(config: Result<RedisConfig, E>) -> RedisConfig {
    config.unwrap().with_timeout(PATIENT_TIMEOUT)
}

// Two workers, so the concurrent conditional fills really run in parallel on moka.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_cache_conforms() {
    let cache = MemoryCache::new(64 << 20);
    run_all(&cache).await;
}

#[tokio::test]
async fn redis_cache_conforms() {
    let server = RedisServer::start();
    let cache = RedisCache::connect(&patient(RedisConfig::from_url(&server.url())))
        .await
        .unwrap();
    run_all(&cache).await;
}

/// The conditional fill goes out as `EVALSHA`; a server that lost its scripts (restart,
/// `SCRIPT FLUSH`) answers `NOSCRIPT`, and the fill must load the script and retry.
#[tokio::test]
async fn redis_conditional_fill_survives_a_script_flush() {
    let server = RedisServer::start();
    let cache = RedisCache::connect(&patient(RedisConfig::from_url(&server.url())))
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
    let cache = RedisCache::connect(&patient(RedisConfig::from_url(&url)))
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
    let config = patient(RedisConfig::from_urls(cluster.urls()));
    let cache = RedisClusterCache::connect(&config).await.unwrap();
    run_all(&cache).await;
}

/// Keys per master in the spread test: several slots on each, so the batch commands split
/// per slot as well as per master.
const KEYS_PER_MASTER: usize = 12;

/// Every fourth key of the spread test is never written: a gap on every master (4 and the
/// 3 masters are coprime), which `MGET` must answer `None` in its place and `DEL` not count.
fn is_gap(index: usize) -> bool {
    index % 4 == 3
}

/// Keys whose slots are computed (one slot each, on every master, neighbours on different
/// masters, a few never written): each master holds exactly the keys computed for it, one
/// `MGET` answers them in key order and one `DEL` counts the written ones, and the slots
/// computed are the ones the Cluster answers.
#[tokio::test]
async fn cluster_keys_spread_over_every_master_and_batch_commands_cross_slots() {
    let cluster = RedisClusterServer::start();
    let cache = RedisClusterCache::connect(&patient(RedisConfig::from_urls(cluster.urls())))
        .await
        .unwrap();
    let mut conn = cluster.nodes()[0].connection();
    let layout = SlotLayout::query(&mut conn);
    let mut ports: Vec<u16> = cluster.nodes().iter().map(RedisServer::port).collect();
    ports.sort_unstable();
    assert_eq!(layout.ports(), ports, "every node is a master with slots");

    let all = keys_on_every_master(&fresh_keyspace(), &layout, KEYS_PER_MASTER);
    let mut expected_sizes: BTreeMap<u16, u64> = ports.iter().map(|&port| (port, 0)).collect();
    let mut expected_values = Vec::new();
    for (i, key) in all.iter().enumerate() {
        let slot = key_slot(key.as_str().as_bytes());
        let answered: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key.as_str())
            .query(&mut conn)
            .unwrap();
        assert_eq!(answered, slot, "computed slot of {key}");
        if is_gap(i) {
            expected_values.push(None);
            continue;
        }
        let value = Bytes::from(format!("value-{i}"));
        cache.set(key, value.clone(), LONG).await.unwrap();
        expected_values.push(Some(value));
        *expected_sizes.get_mut(&layout.master_of(slot)).unwrap() += 1;
    }
    assert!(
        expected_sizes.values().all(|&size| size > 0),
        "{expected_sizes:?}"
    );
    assert_eq!(
        master_sizes(&cluster),
        expected_sizes,
        "keys per master (port)"
    );

    // One MGET and one DEL across all masters and slots: answers in key order, counts summed.
    assert_eq!(cache.get_many(&all).await.unwrap(), expected_values);
    let written = expected_sizes.values().sum::<u64>();
    assert_eq!(cache.delete_many(&all).await.unwrap(), written);
    assert!(
        master_sizes(&cluster).values().all(|&size| size == 0),
        "keys left after delete_many: {:?}",
        master_sizes(&cluster)
    );

    // Conditional fills on every master, after each master lost its scripts (`NOSCRIPT`
    // must load the script where the key lives and retry).
    for node in cluster.nodes() {
        redis::cmd("SCRIPT")
            .arg("FLUSH")
            .exec(&mut node.connection())
            .unwrap();
    }
    let fills = keys_on_every_master(&fresh_keyspace(), &layout, KEYS_PER_MASTER);
    conditional_fills_on(&cache, &fills).await;
}

/// `DBSIZE` of every master, by port.
fn master_sizes(cluster: &RedisClusterServer) -> BTreeMap<u16, u64> {
    cluster
        .nodes()
        .iter()
        .map(|node| {
            let size: u64 = redis::cmd("DBSIZE").query(&mut node.connection()).unwrap();
            (node.port(), size)
        })
        .collect()
}
