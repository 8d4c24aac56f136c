//! Unit tests of `bytes_cache`.

use authcache_core::{KeyKind, Keyspace};

use super::*;

fn key(id: &str) -> Key {
    Keyspace::default().key(KeyKind::User, id).unwrap()
}

async fn put(cache: &MemoryCache, id: &str, value: &'static [u8], ttl: Duration) {
    cache
        .set(&key(id), Bytes::from_static(value), ttl)
        .await
        .unwrap();
}

#[tokio::test]
async fn set_get_delete() {
    let cache = MemoryCache::default();
    assert_eq!(cache.get(&key("1")).await.unwrap(), None);
    put(&cache, "1", b"one", Duration::from_secs(60)).await;
    assert_eq!(
        cache.get(&key("1")).await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    assert_eq!(cache.get(&key("2")).await.unwrap(), None);
    assert!(cache.delete(&key("1")).await.unwrap());
    assert!(!cache.delete(&key("1")).await.unwrap());
    assert_eq!(cache.get(&key("1")).await.unwrap(), None);
}

#[tokio::test]
async fn batch_forms_use_the_defaults() {
    let cache = MemoryCache::default();
    let keys = [key("a"), key("b"), key("c")];
    for k in &keys[..2] {
        cache
            .set(k, Bytes::from_static(b"v"), Duration::from_secs(60))
            .await
            .unwrap();
    }
    let got = cache.get_many(&keys).await.unwrap();
    assert_eq!(got.iter().filter(|v| v.is_some()).count(), 2);
    assert!(got[2].is_none());
    assert_eq!(cache.delete_many(&keys).await.unwrap(), 2);
}

#[test]
fn each_entry_expires_after_its_own_ttl() {
    let stored = |secs| Stored {
        bytes: Bytes::new(),
        ttl: Duration::from_secs(secs),
    };
    let now = Instant::now();
    assert_eq!(
        PerEntryTtl.expire_after_create(&key("1"), &stored(5), now),
        Some(Duration::from_secs(5))
    );
    // An overwrite restarts the clock with the new TTL.
    assert_eq!(
        PerEntryTtl.expire_after_update(&key("1"), &stored(9), now, Some(Duration::from_secs(1))),
        Some(Duration::from_secs(9))
    );
    // Reads leave it alone (moka's default for `expire_after_read`).
    assert_eq!(
        PerEntryTtl.expire_after_read(
            &key("1"),
            &stored(9),
            now,
            Some(Duration::from_secs(3)),
            now
        ),
        Some(Duration::from_secs(3))
    );
}

#[tokio::test]
async fn entries_really_expire() {
    let cache = MemoryCache::default();
    put(&cache, "short", b"x", Duration::from_millis(20)).await;
    put(&cache, "long", b"y", Duration::from_secs(600)).await;
    // Bounded poll: moka's clock is the real one.
    let mut expired = false;
    for _ in 0..200 {
        if cache.get(&key("short")).await.unwrap().is_none() {
            expired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(expired, "a 20 ms entry was still there after 2 s");
    assert!(cache.get(&key("long")).await.unwrap().is_some());
}

#[tokio::test]
async fn a_zero_ttl_removes() {
    let cache = MemoryCache::default();
    put(&cache, "1", b"x", Duration::from_secs(60)).await;
    put(&cache, "1", b"y", Duration::ZERO).await;
    assert_eq!(cache.get(&key("1")).await.unwrap(), None);
}

/// `set_if_unchanged(key, expected, value)` with `&'static` bytes, for brevity.
async fn fill(
    cache: &MemoryCache,
    id: &str,
    expected: Option<&'static [u8]>,
    value: &'static [u8],
) -> bool {
    cache
        .set_if_unchanged(
            &key(id),
            expected.map(Bytes::from_static),
            Bytes::from_static(value),
            Duration::from_secs(60),
        )
        .await
        .unwrap()
}

async fn value_of(cache: &MemoryCache, id: &str) -> Option<Bytes> {
    cache.get(&key(id)).await.unwrap()
}

#[tokio::test]
async fn set_if_unchanged_writes_only_over_the_expected_content() {
    let cache = MemoryCache::default();
    assert!(
        !fill(&cache, "1", Some(b"old"), b"new").await,
        "absent is not `old`"
    );
    assert!(
        !fill(&cache, "1", Some(b""), b"new").await,
        "absent is not empty"
    );
    assert_eq!(value_of(&cache, "1").await, None);
    assert!(fill(&cache, "1", None, b"first").await);
    assert!(
        !fill(&cache, "1", None, b"second").await,
        "present is not absent"
    );
    assert!(!fill(&cache, "1", Some(b"other"), b"second").await);
    assert_eq!(value_of(&cache, "1").await.as_deref(), Some(&b"first"[..]));
    assert!(fill(&cache, "1", Some(b"first"), b"second").await);
    assert_eq!(value_of(&cache, "1").await.as_deref(), Some(&b"second"[..]));
    put(&cache, "2", b"", Duration::from_secs(60)).await;
    assert!(
        !fill(&cache, "2", None, b"x").await,
        "an empty value is present"
    );
    assert!(fill(&cache, "2", Some(b""), b"x").await);
}

#[tokio::test]
async fn set_if_unchanged_sees_an_expired_entry_as_absent() {
    let cache = MemoryCache::default();
    put(&cache, "1", b"stale", Duration::from_millis(20)).await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    // No maintenance has run, so moka may still hold the entry; it must not count.
    assert!(!fill(&cache, "1", Some(b"stale"), b"new").await);
    assert!(fill(&cache, "1", None, b"fresh").await);
    assert_eq!(value_of(&cache, "1").await.as_deref(), Some(&b"fresh"[..]));
}

#[tokio::test]
async fn set_if_unchanged_with_a_zero_ttl_is_a_conditional_delete() {
    let cache = MemoryCache::default();
    put(&cache, "1", b"x", Duration::from_secs(60)).await;
    let k = key("1");
    let zero = |expected: &'static [u8]| {
        let expected = Some(Bytes::from_static(expected));
        cache.set_if_unchanged(&k, expected, Bytes::new(), Duration::ZERO)
    };
    assert!(!zero(b"y").await.unwrap());
    assert_eq!(value_of(&cache, "1").await.as_deref(), Some(&b"x"[..]));
    assert!(zero(b"x").await.unwrap());
    assert_eq!(value_of(&cache, "1").await, None);
}

/// Plain writes (an invalidation's tombstone) must not slip in between a conditional
/// fill's comparison and its write. One task keeps re-filling keys over `live`, the other
/// writes a tombstone to each once; a fill may only win before the tombstone, so every
/// key ends on its tombstone. A lost tombstone would show as a key left `live`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_writes_never_land_inside_a_conditional_fill() {
    const KEYS: usize = 500;
    let cache = MemoryCache::default();
    for n in 0..KEYS {
        put(&cache, &n.to_string(), b"live", Duration::from_secs(60)).await;
    }
    let filler = {
        let cache = cache.clone();
        tokio::spawn(async move {
            for _round in 0..20 {
                for n in 0..KEYS {
                    fill(&cache, &n.to_string(), Some(b"live"), b"live").await;
                }
            }
        })
    };
    for n in 0..KEYS {
        put(
            &cache,
            &n.to_string(),
            b"tombstone",
            Duration::from_secs(60),
        )
        .await;
        if n % 2 == 0 {
            tokio::task::yield_now().await;
        }
    }
    filler.await.unwrap();
    for n in 0..KEYS {
        assert_eq!(
            value_of(&cache, &n.to_string()).await.as_deref(),
            Some(&b"tombstone"[..]),
            "key {n}: a fill overwrote the tombstone"
        );
    }
}

#[tokio::test]
async fn delete_reports_only_live_entries() {
    let cache = MemoryCache::default();
    put(&cache, "1", b"x", Duration::from_millis(20)).await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(
        !cache.delete(&key("1")).await.unwrap(),
        "expired entry reported deleted"
    );
}

#[tokio::test]
async fn it_is_bounded_by_bytes() {
    let cache = MemoryCache::new(20_000);
    let value = Bytes::from(vec![0u8; 100]);
    for n in 0..1_000 {
        cache
            .set(&key(&n.to_string()), value.clone(), Duration::from_secs(60))
            .await
            .unwrap();
    }
    cache.run_pending_tasks();
    assert!(cache.weighted_size() <= 20_000, "{}", cache.weighted_size());
    assert!(cache.entry_count() < 1_000);
    assert!(cache.entry_count() > 0);
    assert_eq!(
        weight(
            &key("1"),
            &Stored {
                bytes: value,
                ttl: Duration::ZERO
            }
        ),
        19 + 100 + 64
    );
}
