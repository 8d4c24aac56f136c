//! The hot path of authcache-core: an L1 hit through `Tiered<T>` against a bare
//! `quick_cache::sync::Cache::get` of the same `Arc<T>` — the map `MemoryL1` wraps — and
//! against a bare `moka::sync::Cache::get`, the hand-written pattern it replaced (group
//! `core_l1_hit`: functions `raw`, `moka`, `authcache`), the `MemoryL1` lookup alone
//! against that moka `get` on one reader and on four concurrent readers (groups
//! `core_l1_get`, `core_l1_get_4_readers`), and the L2 envelope's encode/decode cost for a
//! typical user, with and without the HMAC tag (group `core_envelope`, not a comparison).
//!
//! In `core_l1_hit` all sides run in the same async harness on the same runtime. Against
//! `raw` (the same map type, key type and value as `MemoryL1`'s, with quick_cache's default
//! sharding) the difference is our whole layer over the map: the `dyn L1Cache` call, the
//! deadline check (one clock read), the hit counter and the `async fn` state machine.
//! Against `moka` it is that layer minus what a moka `get` costs over a quick_cache one.
//! The `core_l1_get` groups call `MemoryL1` through `dyn L1Cache`, as `Tiered` does.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use authcache_core::{
    BreakerConfig, EnvelopeCodec, GuardedCache, KeyKind, L1Cache, SigningKey, Tiered, Ttls,
};
use authcache_memory::{MemoryCache, MemoryL1};
use criterion::{Criterion, criterion_group, criterion_main};

/// id, email, name, roles, disabled, updated_at: the shape of `authcache_users::User`
/// (a tuple, so that this bench needs no serde derive).
type User = (String, String, String, Vec<String>, bool, u64);

fn user() -> User {
    (
        "64f1c2a7e4b0c0ffee000001".into(),
        "ada.lovelace@example.com".into(),
        "Ada Lovelace".into(),
        vec!["admin".into(), "billing".into(), "support".into()],
        false,
        1_700_000_000_000,
    )
}

const ID: &str = "64f1c2a7e4b0c0ffee000001";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The TTL of every measured entry: far beyond a slow run (a group takes ~15 s on a quiet
/// machine, minutes on a loaded one), so each measured read is a hit. What a hit costs does
/// not depend on how far off its expiry is, neither in moka nor in `MemoryL1`.
const LONG_TTL: Duration = Duration::from_secs(3600);

/// The map `MemoryL1` is built on, bare: `Box<str>` keys looked up by `&str`, holding the
/// same `Arc<User>`, no expiry check.
fn raw_quick_cache() -> quick_cache::sync::Cache<Box<str>, Arc<User>> {
    let raw = quick_cache::sync::Cache::new(10_000);
    raw.insert(Box::from(ID), Arc::new(user()));
    raw
}

/// The hand-written pattern: a moka cache of decoded values with a TTL, holding the user.
fn raw_moka() -> moka::sync::Cache<Arc<str>, Arc<User>> {
    let raw = moka::sync::Cache::builder()
        .max_capacity(10_000)
        .time_to_live(LONG_TTL)
        .build();
    raw.insert(Arc::from(ID), Arc::new(user()));
    raw
}

fn core_l1_hit(c: &mut Criterion) {
    let runtime = runtime();
    let raw = raw_quick_cache();
    let moka = raw_moka();

    let l2 = Arc::new(GuardedCache::new(
        Arc::new(MemoryCache::default()),
        BreakerConfig::default(),
    ));
    let ttls = Ttls {
        user: LONG_TTL,
        l1_cap: LONG_TTL,
        ..Ttls::default()
    };
    let tier: Tiered<User> = Tiered::builder(KeyKind::User)
        .ttls(&ttls)
        .l1(Arc::new(MemoryL1::new(10_000)))
        .l2(l2)
        .build();
    runtime.block_on(tier.set(ID, user())).unwrap();
    let never = || async { Ok::<Option<User>, Infallible>(None) };

    let mut group = c.benchmark_group("core_l1_hit");
    group
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    group.bench_function("raw", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(raw.get(black_box(ID))) });
    });
    group.bench_function("moka", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(moka.get(black_box(ID))) });
    });
    group.bench_function("authcache", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(tier.get_or_load(black_box(ID), never).await) });
    });
    group.finish();
    assert_eq!(tier.stats().loads, 0, "every measured call was an L1 hit");
}

/// `MemoryL1::get` alone against moka's `get`, on one reader and on four at once.
fn core_l1_get(c: &mut Criterion) {
    let raw = raw_moka();
    let ours: Arc<dyn L1Cache<User>> = Arc::new(MemoryL1::new(10_000));
    ours.insert(ID, Some(Arc::new(user())).into(), LONG_TTL);
    let raw_get = || black_box(raw.get(black_box(ID))).is_some();
    let our_get = || black_box(ours.get(black_box(ID))).is_some();

    let mut group = c.benchmark_group("core_l1_get");
    group
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    group.bench_function("raw", |b| b.iter(raw_get));
    group.bench_function("authcache", |b| b.iter(our_get));
    group.finish();
    assert!(
        raw_get() && our_get(),
        "both entries outlived the measurement"
    );

    let mut group = c.benchmark_group("core_l1_get_4_readers");
    group
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    group.bench_function("raw", |b| b.iter_custom(|iters| readers(4, iters, raw_get)));
    group.bench_function("authcache", |b| {
        b.iter_custom(|iters| readers(4, iters, our_get));
    });
    group.finish();
}

/// Wall time for `threads` readers, started together, to each run `read` `iters` times
/// (so one iteration is one read on every reader at once); panics if a read missed.
fn readers(threads: usize, iters: u64, read: impl Fn() -> bool + Sync) -> Duration {
    let start = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    (0..iters).all(|_| read())
                })
            })
            .collect();
        start.wait();
        let began = Instant::now();
        let all_hit = handles.into_iter().all(|h| h.join().unwrap());
        assert!(all_hit, "every measured read was a hit");
        began.elapsed()
    })
}

fn core_envelope(c: &mut Criterion) {
    let plain = EnvelopeCodec::new();
    let signed = EnvelopeCodec::new().with_signing_key(SigningKey::new([7u8; 32]).unwrap());
    let value = (u64::MAX, Some(user()));
    let key = authcache_core::Keyspace::default()
        .key(KeyKind::User, "42")
        .unwrap();
    let mut group = c.benchmark_group("core_envelope");
    group
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    for (name, codec) in [("plain", &plain), ("hmac", &signed)] {
        let entry = codec.encode(&key, &value).unwrap();
        group.bench_function(format!("encode_{name}"), |b| {
            b.iter(|| codec.encode(&key, black_box(&value)).unwrap());
        });
        group.bench_function(format!("decode_{name}"), |b| {
            b.iter(|| {
                codec
                    .decode::<(u64, Option<User>)>(&key, black_box(&entry))
                    .unwrap()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, core_l1_hit, core_l1_get, core_envelope);
criterion_main!(benches);
