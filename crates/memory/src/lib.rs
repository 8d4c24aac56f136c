//! In-process backends of authcache.
//!
//! - [`MemoryCache`]: a byte-level [`Cache`] (envelopes), bounded by total bytes, with a
//!   TTL per entry, on [moka](https://docs.rs/moka). It stands in as the L2 when there is
//!   no Redis (single-instance mode) and serves tests.
//! - [`MemoryL1`]: the typed in-process tier, an [`L1Cache`] of decoded `Arc<T>` values
//!   bounded by entry count, with a TTL per entry, on
//!   [quick_cache](https://docs.rs/quick_cache) (S3-FIFO eviction). A hit is one hash
//!   lookup under a shard read lock, one clock read against the entry's deadline and one
//!   reference-count increment, without the access-time bookkeeping a moka `get` does
//!   (`cargo xtask bench core_l1_hit` times a hit against a bare moka `get`).
//!
//! ```
//! use std::sync::Arc;
//! use authcache_core::{BreakerConfig, GuardedCache, KeyKind, Tiered};
//! use authcache_memory::{MemoryCache, MemoryL1};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let l2 = Arc::new(GuardedCache::new(Arc::new(MemoryCache::new(1 << 20)), BreakerConfig::default()));
//! let names: Tiered<String> = Tiered::builder(KeyKind::User)
//!     .l1(Arc::new(MemoryL1::new(1_000)))
//!     .l2(l2)
//!     .build();
//! let load = || async { Ok::<_, std::io::Error>(Some(String::from("Ada"))) };
//! let name = names.get_or_load("42", load).await.unwrap();
//! assert_eq!(name.as_deref().map(String::as_str), Some("Ada"));
//! // The second read is an L1 hit: the loader is not called again.
//! names.get_or_load("42", || async { unreachable!() as Result<Option<String>, std::io::Error> }).await.unwrap();
//! assert_eq!(names.stats().l1_hits, 1);
//! # });
//! ```

mod bytes_cache;
mod l1;

pub use bytes_cache::{DEFAULT_MAX_BYTES, MemoryCache};
pub use l1::{DEFAULT_MAX_ENTRIES, MemoryL1};

#[doc(no_inline)]
pub use authcache_core::{Cache, L1Cache};

#[cfg(test)]
mod tests;
