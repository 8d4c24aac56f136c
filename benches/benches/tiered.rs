//! The hot path of authcache-core: an L1 hit through `Tiered<T>` against a bare
//! `moka::sync::Cache::get` of the same `Arc<T>` (group `core_l1_hit`), and the L2
//! envelope's encode/decode cost for a typical user, with and without the HMAC tag
//! (group `core_envelope`, not a comparison).
//!
//! Both sides of the comparison run in the same async harness on the same runtime, so
//! the difference is what `Tiered` adds to the lookup: the `dyn L1Cache` call, the
//! per-entry-TTL `Expiry` of `MemoryL1`, the hit counter and the `async fn` state machine.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use authcache_core::{
    BreakerConfig, EnvelopeCodec, GuardedCache, KeyKind, SigningKey, Tiered, Ttls,
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

fn core_l1_hit(c: &mut Criterion) {
    let runtime = runtime();
    // The hand-written pattern: a moka cache of decoded values with a TTL.
    let raw: moka::sync::Cache<Arc<str>, Arc<User>> = moka::sync::Cache::builder()
        .max_capacity(10_000)
        .time_to_live(Ttls::default().l1_cap)
        .build();
    raw.insert(Arc::from(ID), Arc::new(user()));

    let l2 = Arc::new(GuardedCache::new(
        Arc::new(MemoryCache::default()),
        BreakerConfig::default(),
    ));
    let tier: Tiered<User> = Tiered::builder(KeyKind::User)
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
    group.bench_function("authcache", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(tier.get_or_load(black_box(ID), never).await) });
    });
    group.finish();
    assert_eq!(tier.stats().loads, 0, "every measured call was an L1 hit");
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

criterion_group!(benches, core_l1_hit, core_envelope);
criterion_main!(benches);
