//! The payload codec side by side (issue 23, item 4): bincode 2 (the default) against
//! postcard (`authcache-core`'s `postcard` feature, `CodecId::Postcard`), each through the
//! whole signed envelope a service writes to L2 — header, `(expires_at_unix_ms,
//! Some(user))`, HMAC-SHA256 tag — for the replaced system's 20-field document.
//!
//! Groups `codec_encode` and `codec_decode` (functions `bincode`, `postcard`): the time to
//! write an entry, and to verify and read one back. Figures `codec_entry_bytes/<codec>` and
//! `codec_small_entry_bytes/<codec>`: the bytes of the entry for the 20-field document and
//! for a small user (`authcache::User`, one role), recorded by this bench for the report.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use authcache::User;
use authcache_benches::figures::{Unit, record};
use authcache_benches::profile::Profile;
use authcache_core::{CodecId, EnvelopeCodec, Key, KeyKind, Keyspace, SigningKey};
use criterion::{Criterion, criterion_group, criterion_main};

/// A 24-character ObjectId, as in the replaced system.
const ID: &str = "64f1c2a7e4b0c0ffee000001";

/// An expiry as a service writes it now: Unix milliseconds, some minutes ahead.
const EXPIRES_AT_MS: u64 = 1_796_000_000_000;

const CODECS: [(&str, CodecId); 2] = [
    ("bincode", CodecId::Bincode),
    ("postcard", CodecId::Postcard),
];

fn envelope(codec: CodecId) -> EnvelopeCodec {
    EnvelopeCodec::new()
        .with_codec(codec)
        .with_signing_key(SigningKey::new([7u8; 32]).unwrap())
}

fn key() -> Key {
    Keyspace::default().key(KeyKind::User, ID).unwrap()
}

fn small_user() -> User {
    let mut user = User::new(ID, "ada@example.com", "Ada");
    user.roles = vec!["user".into()];
    user.updated_at = 1_700_000_000_000;
    user
}

/// Records each codec's entry size, after checking that each reads back what it wrote.
fn entry_bytes() {
    let key = key();
    let profile = (EXPIRES_AT_MS, Some(Profile::sample(ID)));
    let small = (EXPIRES_AT_MS, Some(small_user()));
    for (name, codec) in CODECS {
        let codec = envelope(codec);
        let entry = codec.encode(&key, &profile).unwrap();
        assert_eq!(
            codec
                .decode::<(u64, Option<Profile>)>(&key, &entry)
                .unwrap(),
            profile
        );
        record(
            &format!("codec_entry_bytes/{name}"),
            entry.len() as f64,
            Unit::Bytes,
        )
        .unwrap();
        let entry = codec.encode(&key, &small).unwrap();
        assert_eq!(
            codec.decode::<(u64, Option<User>)>(&key, &entry).unwrap(),
            small
        );
        let id = format!("codec_small_entry_bytes/{name}");
        record(&id, entry.len() as f64, Unit::Bytes).unwrap();
    }
}

fn codec_encode(c: &mut Criterion) {
    let key = key();
    let value = (EXPIRES_AT_MS, Some(Profile::sample(ID)));
    let mut group = c.benchmark_group("codec_encode");
    for (name, codec) in CODECS {
        let codec = envelope(codec);
        group.bench_function(name, |b| {
            b.iter(|| codec.encode(&key, black_box(&value)).unwrap());
        });
    }
    group.finish();
}

fn codec_decode(c: &mut Criterion) {
    let key = key();
    let value = (EXPIRES_AT_MS, Some(Profile::sample(ID)));
    let mut group = c.benchmark_group("codec_decode");
    for (name, codec) in CODECS {
        let codec = envelope(codec);
        let entry = codec.encode(&key, &value).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| {
                codec
                    .decode::<(u64, Option<Profile>)>(&key, black_box(&entry))
                    .unwrap()
            });
        });
    }
    group.finish();
}

fn codec(c: &mut Criterion) {
    entry_bytes();
    codec_encode(c);
    codec_decode(c);
}

criterion_group! {
    name = benches;
    config = authcache_benches::criterion();
    targets = codec
}
criterion_main!(benches);
