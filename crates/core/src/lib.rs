//! The cache abstraction of authcache.
//!
//! This crate does no I/O. It defines what every other crate builds on:
//!
//! - [`Cache`]: the byte-level backend contract (`authcache-memory`, `authcache-redis`),
//!   and [`GuardedCache`], the timeout + circuit breaker every L2 is used through (its
//!   state machine, [`CircuitBreaker`], guards other backends too);
//! - [`Keyspace`] / [`Key`]: how keys are built and validated (no raw token ever reaches a key);
//! - [`EnvelopeCodec`]: the versioned, optionally HMAC-signed envelope L2 values are stored in,
//!   bound to their key, where anything that does not decode or verify is a miss;
//! - [`Ttls`]: the TTL policy with jitter;
//! - [`L1Cache`]: the synchronous in-process tier of decoded values;
//! - [`Tiered`]: L1 → L2 → loader with single-flight, negative entries, write-through and
//!   invalidation publishing, conditional fills that never land after an invalidation
//!   (the coherence protocol), with [`TierStatsSnapshot`] counters;
//! - [`with_l2_budget`]: one L2 timeout per request, however many tiers it reads;
//! - [`counter`]: the relaxed bump, add and read of every statistics counter.
//!
//! ```
//! use std::sync::Arc;
//! use authcache_core::{EnvelopeCodec, Fingerprint, KeyKind, Keyspace, SigningKey, Tiered};
//!
//! let keys = Keyspace::default();
//! let key = keys.key(KeyKind::User, "42").unwrap();
//! assert_eq!(key.as_str(), "authcache:v1:user:42");
//! assert!(keys.key(KeyKind::User, "has space").is_err());
//! // A token's fingerprint, as `authcache_jwt::fingerprint` computes it.
//! let fingerprint = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
//! let token = keys.token_key(KeyKind::Revoked, &Fingerprint::from_hex(fingerprint).unwrap());
//! // Revocations live outside the schema version: a schema bump never un-revokes.
//! assert!(token.as_str().starts_with("authcache:revoked:"));
//!
//! // Envelopes are bound to their key: a tampered entry, or a genuine one copied to
//! // another key, is a decode error, which callers treat as a miss.
//! let codec = EnvelopeCodec::new().with_signing_key(SigningKey::new([7; 32]).unwrap());
//! let mut entry = codec.encode(&key, &("ada", 36_u32)).unwrap().to_vec();
//! assert_eq!(codec.decode::<(String, u32)>(&key, &entry).unwrap(), ("ada".into(), 36));
//! let elsewhere = keys.key(KeyKind::User, "43").unwrap();
//! assert!(codec.decode::<(String, u32)>(&elsewhere, &entry).is_err());
//! entry[9] ^= 1;
//! assert!(codec.decode::<(String, u32)>(&key, &entry).is_err());
//!
//! // A tier (here without L1 or L2; see `authcache-memory` for both): loads once per key.
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let names: Tiered<String> = Tiered::builder(KeyKind::User).build();
//! let load = || async { Ok::<_, std::io::Error>(Some(String::from("Ada"))) };
//! let name = names.get_or_load("42", load).await.unwrap();
//! assert_eq!(name.as_deref().map(String::as_str), Some("Ada"));
//! assert_eq!(names.stats().loads, 1);
//! # });
//! ```
//!
//! # Feature flags
//!
//! - `mock`: generates `MockCache` and `MockInvalidationPublisher` (mockall) for unit
//!   tests of fault paths in other crates.
//! - `postcard`: adds `CodecId::Postcard` as an alternative payload codec; bincode 2
//!   stays the default. The codec id in every envelope keeps one from misreading the other.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod breaker;
pub mod bus;
pub mod cache;
pub mod codec;
pub mod counter;
pub mod error;
pub mod key;
pub mod l1;
#[cfg(all(test, authcache_loom))]
mod model;
mod pending;
mod sync;
#[cfg(any(test, feature = "test-support"))]
#[cfg_attr(docsrs, doc(cfg(feature = "test-support")))]
pub mod test_support;
#[cfg(test)]
mod testkit;
pub mod tiered;
pub mod ttl;
pub mod versioned;

pub use breaker::{
    BreakerConfig, BreakerPermit, BreakerState, BreakerStats, CircuitBreaker, GuardedCache,
    with_l2_budget,
};

#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub use bus::MockInvalidationPublisher;
pub use bus::{BusEvent, InvalidationPublisher};
pub use cache::Cache;
#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub use cache::MockCache;
pub use codec::{CodecError, CodecId, DecodeError, EnvelopeCodec, SigningKey};
pub use error::{CacheError, KeyError, Result};
pub use key::{Fingerprint, Key, KeyKind, Keyspace, validate_id};
pub use l1::{L1Cache, L1Entry};
pub use tiered::{
    Fetched, LoadError, ReloadFuture, Reloader, TierStats, TierStatsSnapshot, Tiered, TieredBuilder,
};
pub use ttl::Ttls;
pub use versioned::{Generations, Version, VersionedL1};
