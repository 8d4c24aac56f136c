//! Statistics counters: one home for the relaxed atomic operations every stats struct in
//! the workspace uses.
//!
//! Counters are monotonic tallies read for reporting; no decision is ever ordered by them,
//! so every operation is `Relaxed`.
//!
//! ```
//! use std::sync::atomic::AtomicU64;
//! use authcache_core::counter;
//!
//! let hits = AtomicU64::new(0);
//! counter::bump(&hits);
//! counter::add(&hits, 2);
//! assert_eq!(counter::read(&hits), 3);
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

/// Adds one to `counter`.
pub fn bump(counter: &AtomicU64) {
    add(counter, 1);
}

/// Adds `by` to `counter`.
pub fn add(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// The current value of `counter`.
#[must_use]
pub fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}
