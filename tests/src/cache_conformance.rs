//! The cache backend conformance suite, written once and run against every backend
//! (`MemoryCache`, `RedisCache`, `RedisClusterCache`) through `&dyn Cache`.
//!
//! [`run_all`] runs every check; each check is also public so a failing one can be run
//! alone. Every check uses its own fresh keyspace, so checks never see each other's keys
//! and can share a server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use authcache_core::{Cache, Key, KeyKind, Keyspace};
use bytes::Bytes;

use crate::process::eventually;

/// How long an expired entry may take to disappear (generous: debug builds on a busy CI box).
const EXPIRY_DEADLINE: Duration = Duration::from_secs(5);

/// Size of the large value: 1 MiB, the envelope codec's default payload limit.
pub const LARGE_VALUE_LEN: usize = 1 << 20;

/// Runs every check against `cache`, in order; panics naming the first that fails.
pub async fn run_all(cache: &dyn Cache) {
    round_trip(cache).await;
    px_expiry(cache).await;
    sub_millisecond_ttl(cache).await;
    get_many_with_gaps(cache).await;
    delete_absent_and_present(cache).await;
    empty_and_large_values(cache).await;
    binary_values(cache).await;
    many_keys(cache, 600).await;
}

/// A keyspace no other check (or concurrent run) uses.
pub fn fresh_keyspace() -> Keyspace {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Keyspace::new(&format!("conf{}x{n}", std::process::id())).expect("valid prefix")
}

fn key(keys: &Keyspace, id: &str) -> Key {
    keys.key(KeyKind::User, id).expect("valid id")
}

const LONG: Duration = Duration::from_secs(300);

/// set → get returns the bytes; overwrite → get returns the new bytes.
pub async fn round_trip(cache: &dyn Cache) {
    let keys = fresh_keyspace();
    let k = key(&keys, "round-trip");
    assert_eq!(
        cache.get(&k).await.expect("get absent"),
        None,
        "fresh key must be absent"
    );
    cache
        .set(&k, Bytes::from_static(b"first"), LONG)
        .await
        .expect("set");
    assert_eq!(
        cache.get(&k).await.expect("get").as_deref(),
        Some(&b"first"[..])
    );
    cache
        .set(&k, Bytes::from_static(b"second"), LONG)
        .await
        .expect("overwrite");
    assert_eq!(
        cache.get(&k).await.expect("get").as_deref(),
        Some(&b"second"[..])
    );
}

/// A short TTL replaces the entry's TTL and value, and the entry is gone after it (bounded
/// poll). No wall-clock check: the key first holds a long-lived value, so an expiry that
/// only "passes" because the short-TTL write was lost cannot go unnoticed.
pub async fn px_expiry(cache: &dyn Cache) {
    let keys = fresh_keyspace();
    let k = key(&keys, "expiring");
    cache
        .set(&k, Bytes::from_static(b"old"), LONG)
        .await
        .expect("set long before the short TTL");
    cache
        .set(
            &k,
            Bytes::from_static(b"soon gone"),
            Duration::from_millis(300),
        )
        .await
        .expect("set with ttl");
    let long_lived = key(&keys, "long-lived");
    cache
        .set(&long_lived, Bytes::from_static(b"stays"), LONG)
        .await
        .expect("set long");
    eventually(
        EXPIRY_DEADLINE,
        "entry with a 300 ms TTL expires",
        || async {
            match cache.get(&k).await.expect("get after expiry") {
                None => true,
                Some(value) => {
                    assert_eq!(
                        &value[..],
                        b"soon gone",
                        "the short-TTL write must replace the old value"
                    );
                    false
                }
            }
        },
    )
    .await;
    assert!(
        cache.get(&long_lived).await.expect("get long").is_some(),
        "only the short-TTL entry expires"
    );
}

/// A zero or sub-millisecond TTL is accepted (Redis rejects `PX 0`) and expires.
pub async fn sub_millisecond_ttl(cache: &dyn Cache) {
    let keys = fresh_keyspace();
    for (id, ttl) in [
        ("nanos", Duration::from_nanos(1)),
        ("micros", Duration::from_micros(500)),
    ] {
        let k = key(&keys, id);
        cache
            .set(&k, Bytes::from_static(b"x"), ttl)
            .await
            .expect("a sub-ms TTL is accepted");
        eventually(
            EXPIRY_DEADLINE,
            "entry with a sub-ms TTL expires",
            || async { cache.get(&k).await.expect("get").is_none() },
        )
        .await;
    }
}

/// `get_many` answers one slot per key, in order, `None` for the gaps, duplicates included.
pub async fn get_many_with_gaps(cache: &dyn Cache) {
    let keys = fresh_keyspace();
    let ks: Vec<Key> = (0..6).map(|i| key(&keys, &format!("mget-{i}"))).collect();
    for i in [0, 2, 5] {
        cache
            .set(&ks[i], Bytes::from(format!("v{i}")), LONG)
            .await
            .expect("set");
    }
    let got = cache.get_many(&ks).await.expect("get_many");
    let expect: Vec<Option<Bytes>> = (0..6)
        .map(|i| [0, 2, 5].contains(&i).then(|| Bytes::from(format!("v{i}"))))
        .collect();
    assert_eq!(got, expect);
    assert_eq!(
        cache.get_many(&[]).await.expect("empty get_many"),
        Vec::<Option<Bytes>>::new()
    );
    let dup = [ks[2].clone(), ks[1].clone(), ks[2].clone()];
    assert_eq!(
        cache
            .get_many(&dup)
            .await
            .expect("get_many with duplicates"),
        vec![Some(Bytes::from("v2")), None, Some(Bytes::from("v2"))]
    );
}

/// Deleting an absent key is `false`, a present one `true`; `delete_many` counts only hits.
pub async fn delete_absent_and_present(cache: &dyn Cache) {
    let keys = fresh_keyspace();
    let (a, b, c) = (
        key(&keys, "del-a"),
        key(&keys, "del-b"),
        key(&keys, "del-c"),
    );
    assert!(
        !cache.delete(&a).await.expect("delete absent"),
        "absent key reported deleted"
    );
    cache
        .set(&a, Bytes::from_static(b"1"), LONG)
        .await
        .expect("set");
    assert!(cache.delete(&a).await.expect("delete present"));
    assert_eq!(cache.get(&a).await.expect("get deleted"), None);
    assert!(!cache.delete(&a).await.expect("delete twice"));
    cache
        .set(&a, Bytes::from_static(b"1"), LONG)
        .await
        .expect("set");
    cache
        .set(&c, Bytes::from_static(b"3"), LONG)
        .await
        .expect("set");
    assert_eq!(
        cache
            .delete_many(&[a.clone(), b.clone(), c.clone()])
            .await
            .expect("delete_many"),
        2
    );
    assert_eq!(
        cache.get_many(&[a, b, c]).await.expect("get_many"),
        vec![None, None, None]
    );
    assert_eq!(cache.delete_many(&[]).await.expect("empty delete_many"), 0);
}

/// The empty value is a hit (not a miss); a 1 MiB value comes back byte for byte.
pub async fn empty_and_large_values(cache: &dyn Cache) {
    let keys = fresh_keyspace();
    let empty = key(&keys, "empty");
    cache
        .set(&empty, Bytes::new(), LONG)
        .await
        .expect("set empty");
    assert_eq!(
        cache.get(&empty).await.expect("get empty"),
        Some(Bytes::new()),
        "empty value must be a hit"
    );
    let large = key(&keys, "large");
    let value: Bytes = (0..LARGE_VALUE_LEN)
        .map(|i| (i * 31 % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    cache
        .set(&large, value.clone(), LONG)
        .await
        .expect("set 1 MiB");
    let got = cache
        .get(&large)
        .await
        .expect("get 1 MiB")
        .expect("1 MiB value present");
    assert!(
        got == value,
        "1 MiB value changed in transit (len {} vs {})",
        got.len(),
        value.len()
    );
}

/// Every byte value survives, including NUL, CR/LF and invalid UTF-8.
pub async fn binary_values(cache: &dyn Cache) {
    let keys = fresh_keyspace();
    let all_bytes: Bytes = (0..=255u8)
        .chain((0..=255u8).rev())
        .collect::<Vec<u8>>()
        .into();
    let samples = [
        all_bytes,
        Bytes::from_static(b"\0"),
        Bytes::from_static(b"\r\n$-1\r\n*0\r\n"),
        Bytes::from_static(&[0xff, 0xfe, 0xc3, 0x28]),
    ];
    for (i, value) in samples.iter().enumerate() {
        let k = key(&keys, &format!("bin-{i}"));
        cache
            .set(&k, value.clone(), LONG)
            .await
            .expect("set binary");
        assert_eq!(
            cache.get(&k).await.expect("get binary").as_ref(),
            Some(value),
            "binary sample {i}"
        );
    }
}

/// Writes `count` keys (spread over many hash slots), reads them back with one `get_many`,
/// removes them with one `delete_many`.
pub async fn many_keys(cache: &dyn Cache, count: usize) {
    let keys = fresh_keyspace();
    let written = write_spread_keys(cache, &keys, count).await;
    let got = cache
        .get_many(&written)
        .await
        .expect("get_many of many keys");
    for (i, value) in got.iter().enumerate() {
        assert_eq!(
            value.as_deref(),
            Some(format!("value-{i}").as_bytes()),
            "key {i} of {count}"
        );
    }
    assert_eq!(
        cache
            .delete_many(&written)
            .await
            .expect("delete_many of many keys"),
        count as u64
    );
    assert!(
        cache
            .get_many(&written)
            .await
            .expect("get_many after delete")
            .iter()
            .all(Option::is_none)
    );
}

/// Writes `count` keys `user:spread-{i}` with values `value-{i}` and returns them in order.
/// Distinct ids hash to slots all over the 16384, so every Cluster master gets some.
pub async fn write_spread_keys(cache: &dyn Cache, keys: &Keyspace, count: usize) -> Vec<Key> {
    let written: Vec<Key> = (0..count)
        .map(|i| key(keys, &format!("spread-{i}")))
        .collect();
    for (i, k) in written.iter().enumerate() {
        cache
            .set(k, Bytes::from(format!("value-{i}")), LONG)
            .await
            .expect("set spread key");
    }
    written
}
