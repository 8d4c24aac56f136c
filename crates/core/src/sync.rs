//! The atomics the coherence protocol ([`crate::versioned`]) is built on: std's, or loom's
//! when the protocol is model-checked (`RUSTFLAGS="--cfg authcache_loom"`, see
//! `crate::model`).

#[cfg(authcache_loom)]
pub(crate) use loom::sync::atomic::AtomicU64;
#[cfg(not(authcache_loom))]
pub(crate) use std::sync::atomic::AtomicU64;
