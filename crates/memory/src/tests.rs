//! Unit tests of the crate root.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use authcache_core::{BreakerConfig, Cache, GuardedCache, KeyKind, Keyspace, Tiered};

use super::*;

fn tier(l2: &Arc<MemoryCache>) -> (Arc<Tiered<String>>, Arc<MemoryL1<String>>) {
    let l1 = Arc::new(MemoryL1::new(1_000));
    let guarded = Arc::new(GuardedCache::new(l2.clone(), BreakerConfig::default()));
    let tier = Tiered::builder(KeyKind::User)
        .l1(l1.clone())
        .l2(guarded)
        .build();
    (Arc::new(tier), l1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_loads_through_moka_run_the_loader_once() {
    let l2 = Arc::new(MemoryCache::default());
    let (tier, _) = tier(&l2);
    let calls = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let tasks: Vec<_> = (0..1_000)
        .map(|_| {
            let (tier, calls, release) = (tier.clone(), calls.clone(), release.clone());
            tokio::spawn(async move {
                let load = || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    release.notified().await;
                    Ok::<_, std::io::Error>(Some(String::from("ada")))
                };
                tier.get_or_load("42", load).await
            })
        })
        .collect();
    for _ in 0..10_000 {
        if tier.stats().coalesced == 999 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    release.notify_one();
    for task in tasks {
        let found = task.await.unwrap().unwrap();
        assert_eq!(found.as_deref().map(String::as_str), Some("ada"));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let key = Keyspace::default().key(KeyKind::User, "42").unwrap();
    assert!(l2.get(&key).await.unwrap().is_some(), "L2 was filled");
}

#[tokio::test]
async fn two_instances_share_l2_and_negative_entries() {
    let l2 = Arc::new(MemoryCache::default());
    let (a, _) = tier(&l2);
    let (b, b_l1) = tier(&l2);
    let calls = Arc::new(AtomicUsize::new(0));
    let load = |value: Option<&'static str>| {
        let calls = calls.clone();
        move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(value.map(String::from))
        }
    };
    a.get_or_load("ghost", load(None)).await.unwrap();
    assert_eq!(b.get_or_load("ghost", load(Some("x"))).await.unwrap(), None);
    assert!(!b_l1.get("ghost").unwrap().is_present());
    a.set("42", String::from("ada")).await.unwrap();
    let found = b.get_or_load("42", load(Some("stale"))).await.unwrap();
    assert_eq!(found.as_deref().map(String::as_str), Some("ada"));
    a.delete("42").await.unwrap();
    b.evict_local("42"); // what the invalidation bus does on instance b
    let found = b.get_or_load("42", load(Some("fresh"))).await.unwrap();
    assert_eq!(found.as_deref().map(String::as_str), Some("fresh"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
