//! The cache backend conformance suite, written once and run against every backend
//! (`MemoryCache`, `RedisCache`, `RedisClusterCache`) through `&dyn Cache` (`Arc<dyn Cache>`
//! for the check that spawns tasks).
//!
//! [`run_all`] runs every check; each check is also public so a failing one can be run
//! alone. Every check uses its own fresh keyspace, so checks never see each other's keys
//! and can share a server.
//!
//! The `conditional_fill_*` checks pin down `Cache::set_if_unchanged`, the conditional fill
//! of the coherence protocol: a loader reads the key (its expectation), loads from the
//! repository, then writes only if the key still holds what it read. Any write in between
//! (a newer fill, an invalidation's unique tombstone, a delete) must make the fill a no-op;
//! interleavings are played in a fixed order, and one check races real concurrent fills.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use authcache_core::{Cache, Key, KeyKind, Keyspace};
use bytes::Bytes;

use crate::process::eventually;

/// How long an expired entry may take to disappear (generous: debug builds on a busy CI box).
const EXPIRY_DEADLINE: Duration = Duration::from_secs(5);

/// Size of the large value: 1 MiB, the envelope codec's default payload limit.
pub const LARGE_VALUE_LEN: usize = 1 << 20;

/// Runs every check against `cache`, in order; panics naming the first that fails. `Clone`
/// and `'static` let the concurrency check hand a shared copy to spawned tasks.
pub async fn run_all<C: Cache + Clone + 'static>(cache: &C) {
    round_trip(cache).await;
    px_expiry(cache).await;
    sub_millisecond_ttl(cache).await;
    get_many_with_gaps(cache).await;
    delete_absent_and_present(cache).await;
    empty_and_large_values(cache).await;
    binary_values(cache).await;
    many_keys(cache, 600).await;
    conditional_fill_of_an_absent_key(cache).await;
    conditional_fill_over_present_content(cache).await;
    conditional_fill_loses_to_a_write_after_its_read(cache).await;
    conditional_fill_sees_an_expired_entry_as_absent(cache).await;
    conditional_fill_with_zero_and_tiny_ttls(cache).await;
    conditional_fills_across_slots(cache, 100).await;
    concurrent_conditional_fills_have_one_winner(Arc::new(cache.clone())).await;
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
/// They fall in many hash slots, but which ones depends on the keyspace's prefix: a check
/// that needs every Cluster master to hold keys chooses them with
/// [`keys_on_every_master`](crate::cluster_slots::keys_on_every_master).
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

/// `set_if_unchanged` with a long TTL, for the checks where the TTL does not matter.
async fn fill(
    cache: &dyn Cache,
    k: &Key,
    expected: Option<&'static [u8]>,
    value: &'static [u8],
) -> bool {
    cache
        .set_if_unchanged(
            k,
            expected.map(Bytes::from_static),
            Bytes::from_static(value),
            LONG,
        )
        .await
        .expect("set_if_unchanged")
}

async fn value_of(cache: &dyn Cache, k: &Key) -> Option<Bytes> {
    cache.get(k).await.expect("get")
}

/// Absent + expecting absence writes; absent + expecting any content (even empty) does not.
pub async fn conditional_fill_of_an_absent_key(cache: &dyn Cache) {
    let keys = fresh_keyspace();
    let k = key(&keys, "cas-absent");
    assert!(
        !fill(cache, &k, Some(b"old"), b"new").await,
        "absent is not `old`"
    );
    assert!(
        !fill(cache, &k, Some(b""), b"new").await,
        "absent is not the empty value"
    );
    assert_eq!(
        value_of(cache, &k).await,
        None,
        "a failed fill must not write"
    );
    assert!(
        fill(cache, &k, None, b"loaded").await,
        "absent + None must write"
    );
    assert_eq!(value_of(cache, &k).await.as_deref(), Some(&b"loaded"[..]));
}

/// Present + the same bytes writes, and the new value and TTL take effect; present + other
/// bytes (or absence, or the empty value) fails and leaves value and TTL as they were.
pub async fn conditional_fill_over_present_content(cache: &dyn Cache) {
    let keys = fresh_keyspace();
    let k = key(&keys, "cas-present");
    cache
        .set(&k, Bytes::from_static(b"current"), LONG)
        .await
        .expect("set");
    for expected in [
        None,
        Some(&b"other"[..]),
        Some(&b""[..]),
        Some(&b"curren"[..]),
    ] {
        assert!(
            !fill(cache, &k, expected, b"lost").await,
            "expected {expected:?}"
        );
    }
    assert_eq!(value_of(cache, &k).await.as_deref(), Some(&b"current"[..]));
    let short = Duration::from_millis(300);
    let replaced = cache
        .set_if_unchanged(
            &k,
            Some(Bytes::from_static(b"current")),
            Bytes::from_static(b"next"),
            short,
        )
        .await
        .expect("set_if_unchanged");
    assert!(replaced, "present + the same bytes must write");
    // The key held a long-lived value, so expiring now proves the new TTL replaced it.
    expires_holding(
        cache,
        &k,
        b"next",
        "a conditional fill's short TTL takes effect",
    )
    .await;

    let untouched = key(&keys, "cas-untouched");
    cache
        .set(&untouched, Bytes::from_static(b"short-lived"), short)
        .await
        .expect("set");
    assert!(!fill(cache, &untouched, Some(b"other"), b"long-lived").await);
    // A failed fill with a long TTL must not have extended the entry's life either.
    expires_holding(
        cache,
        &untouched,
        b"short-lived",
        "a failed fill leaves the TTL alone",
    )
    .await;
}

/// Polls until `k` is gone, asserting it holds `value` until then.
async fn expires_holding(cache: &dyn Cache, k: &Key, value: &[u8], what: &str) {
    eventually(EXPIRY_DEADLINE, what, || async {
        match value_of(cache, k).await {
            None => true,
            Some(held) => {
                assert_eq!(&held[..], value, "{what}: wrong value before expiry");
                false
            }
        }
    })
    .await;
}

/// The coherence protocol's race, played in order: the loader reads, someone else writes
/// (a newer value, an invalidation's tombstone, a delete), the loader's fill must then fail
/// and leave the other write in place.
pub async fn conditional_fill_loses_to_a_write_after_its_read(cache: &dyn Cache) {
    let keys = fresh_keyspace();
    let overwritten = key(&keys, "cas-overwritten");
    cache
        .set(&overwritten, Bytes::from_static(b"v1"), LONG)
        .await
        .expect("set");
    let read = value_of(cache, &overwritten).await;
    cache
        .set(&overwritten, Bytes::from_static(b"v2"), LONG)
        .await
        .expect("set");
    assert!(
        !set_loaded(cache, &overwritten, read).await,
        "fill over a newer write"
    );
    assert_eq!(
        value_of(cache, &overwritten).await.as_deref(),
        Some(&b"v2"[..])
    );

    let tombstoned = key(&keys, "cas-tombstoned");
    let read = value_of(cache, &tombstoned).await;
    assert_eq!(read, None);
    cache
        .set(&tombstoned, Bytes::from_static(b"tombstone-1"), LONG)
        .await
        .expect("set");
    assert!(
        !set_loaded(cache, &tombstoned, read).await,
        "fill over a tombstone"
    );
    assert_eq!(
        value_of(cache, &tombstoned).await.as_deref(),
        Some(&b"tombstone-1"[..])
    );

    let deleted = key(&keys, "cas-deleted");
    cache
        .set(&deleted, Bytes::from_static(b"v1"), LONG)
        .await
        .expect("set");
    let read = value_of(cache, &deleted).await;
    assert!(cache.delete(&deleted).await.expect("delete"));
    assert!(
        !set_loaded(cache, &deleted, read).await,
        "fill over a delete"
    );
    assert_eq!(value_of(cache, &deleted).await, None);
}

/// The loader's fill: `loaded` over what it read before loading.
async fn set_loaded(cache: &dyn Cache, k: &Key, read: Option<Bytes>) -> bool {
    cache
        .set_if_unchanged(k, read, Bytes::from_static(b"loaded"), LONG)
        .await
        .expect("set_if_unchanged")
}

/// An expired entry (possibly not yet evicted) is absent: expecting its old content fails,
/// expecting absence writes.
pub async fn conditional_fill_sees_an_expired_entry_as_absent(cache: &dyn Cache) {
    let keys = fresh_keyspace();
    let k = key(&keys, "cas-expired");
    cache
        .set(&k, Bytes::from_static(b"stale"), Duration::from_millis(100))
        .await
        .expect("set");
    expires_holding(cache, &k, b"stale", "a 100 ms entry expires").await;
    assert!(
        !fill(cache, &k, Some(b"stale"), b"new").await,
        "expired content must not match"
    );
    assert!(
        fill(cache, &k, None, b"fresh").await,
        "expired must count as absent"
    );
    assert_eq!(value_of(cache, &k).await.as_deref(), Some(&b"fresh"[..]));
}

/// A zero TTL makes the fill a conditional delete (a zero-TTL `set` leaves no entry either);
/// a sub-millisecond TTL is accepted (Redis has no `PX 0`) and expires.
pub async fn conditional_fill_with_zero_and_tiny_ttls(cache: &dyn Cache) {
    let keys = fresh_keyspace();
    let k = key(&keys, "cas-zero");
    cache
        .set(&k, Bytes::from_static(b"x"), LONG)
        .await
        .expect("set");
    let zero = |expected: Option<&'static [u8]>| {
        let expected = expected.map(Bytes::from_static);
        cache.set_if_unchanged(&k, expected, Bytes::from_static(b"z"), Duration::ZERO)
    };
    assert!(
        !zero(Some(b"y")).await.expect("zero-TTL fill"),
        "mismatch must not delete"
    );
    assert_eq!(value_of(cache, &k).await.as_deref(), Some(&b"x"[..]));
    assert!(
        zero(Some(b"x")).await.expect("zero-TTL fill"),
        "match must delete"
    );
    assert_eq!(
        value_of(cache, &k).await,
        None,
        "a zero-TTL fill leaves no entry"
    );
    assert!(
        zero(None).await.expect("zero-TTL fill"),
        "absent matches absent"
    );
    assert_eq!(value_of(cache, &k).await, None);

    let tiny = key(&keys, "cas-nanos");
    let wrote = cache
        .set_if_unchanged(
            &tiny,
            None,
            Bytes::from_static(b"n"),
            Duration::from_nanos(1),
        )
        .await
        .expect("a sub-ms TTL is accepted");
    assert!(wrote);
    eventually(
        EXPIRY_DEADLINE,
        "a fill with a sub-ms TTL expires",
        || async { value_of(cache, &tiny).await.is_none() },
    )
    .await;
}

/// Conditional fills on `count` keys spread over hash slots (see [`conditional_fills_on`]).
pub async fn conditional_fills_across_slots(cache: &dyn Cache, count: usize) {
    let keys = fresh_keyspace();
    let ks: Vec<Key> = (0..count)
        .map(|i| key(&keys, &format!("cas-spread-{i}")))
        .collect();
    conditional_fills_on(cache, &ks).await;
}

/// Conditional fills on `ks`, absent keys of distinct ids: each fills from absent, then
/// replaces its own content, and the results read back in order.
pub async fn conditional_fills_on(cache: &dyn Cache, ks: &[Key]) {
    for (i, k) in ks.iter().enumerate() {
        let first = Bytes::from(format!("first-{i}"));
        assert!(
            cache
                .set_if_unchanged(k, None, first.clone(), LONG)
                .await
                .expect("fill"),
            "key {i}"
        );
        let second = Bytes::from(format!("second-{i}"));
        assert!(
            cache
                .set_if_unchanged(k, Some(first), second, LONG)
                .await
                .expect("refill"),
            "key {i}"
        );
        assert!(!fill(cache, k, None, b"lost").await, "key {i} is present");
    }
    let got = cache.get_many(ks).await.expect("get_many");
    for (i, value) in got.iter().enumerate() {
        assert_eq!(
            value.as_deref(),
            Some(format!("second-{i}").as_bytes()),
            "key {i}"
        );
    }
}

/// Fillers racing on one absent key, each with its own value.
pub const CONCURRENT_FILLERS: usize = 16;

/// [`CONCURRENT_FILLERS`] spawned tasks, released together, each fill one absent key
/// expecting absence: exactly one wins and the key holds the winner's value. Repeated over
/// a few keys, since a race that a broken backend loses only sometimes needs several tries.
pub async fn concurrent_conditional_fills_have_one_winner(cache: Arc<dyn Cache>) {
    let keys = fresh_keyspace();
    for round in 0..8 {
        let k = key(&keys, &format!("cas-race-{round}"));
        let winners = race_fills(&cache, &k).await;
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let stored = value_of(&*cache, &k).await;
        assert_eq!(
            stored,
            Some(filler_value(winners[0])),
            "round {round}: the winner's value"
        );
    }
}

fn filler_value(filler: usize) -> Bytes {
    Bytes::from(format!("filler-{filler}"))
}

/// Runs the race on `k`; returns the fillers whose `set_if_unchanged` answered `true`.
async fn race_fills(cache: &Arc<dyn Cache>, k: &Key) -> Vec<usize> {
    let start = Arc::new(tokio::sync::Barrier::new(CONCURRENT_FILLERS));
    let tasks: Vec<_> = (0..CONCURRENT_FILLERS)
        .map(|filler| {
            let (cache, k, start) = (Arc::clone(cache), k.clone(), Arc::clone(&start));
            tokio::spawn(async move {
                start.wait().await;
                let won = cache
                    .set_if_unchanged(&k, None, filler_value(filler), LONG)
                    .await;
                (filler, won.expect("concurrent set_if_unchanged"))
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (filler, won) = task.await.expect("filler task");
        if won {
            winners.push(filler);
        }
    }
    winners
}
