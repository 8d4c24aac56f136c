//! The in-process tier: decoded values behind a small synchronous trait.
//!
//! An L1 hit is the hot path of every request, so the trait is synchronous (no boxed
//! future) and hands out [`L1Entry`] clones, which are one reference-count increment
//! (no decoding, no HMAC, no allocation). `authcache-memory` implements it on
//! `quick_cache` (S3-FIFO, expiry checked on read).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::versioned::Version;

/// What the L1 holds for an id: a value, or the knowledge that there is none, tagged with
/// the [`Version`] of its source it was filled under (see [`crate::versioned`]; caches
/// that serve by no version leave it at the default) and, when known, the deadline it
/// was stored until ([`crate::VersionedL1::insert`] records it), so that a hit can say
/// how long its value may still be served by reading a field.
pub struct L1Entry<T> {
    value: Option<Arc<T>>,
    version: Version,
    expires_at: Option<Instant>,
}

impl<T> L1Entry<T> {
    /// A value.
    pub fn present(value: Arc<T>) -> Self {
        Self::from(Some(value))
    }

    /// "Known absent": the loader said there is no such value (a negative entry).
    pub fn absent() -> Self {
        Self::from(None)
    }

    /// The same entry, tagged with `version`.
    #[must_use]
    pub fn at(self, version: Version) -> Self {
        Self { version, ..self }
    }

    /// The same entry, stored until `deadline`.
    #[must_use]
    pub fn expiring_at(self, deadline: Instant) -> Self {
        Self {
            expires_at: Some(deadline),
            ..self
        }
    }

    /// The version the entry was filled under.
    pub fn version(&self) -> Version {
        self.version
    }

    /// When the entry ends (tokio's clock), if whoever stored it said so; `None` for an
    /// entry built without [`L1Entry::expiring_at`].
    pub fn expires_at(&self) -> Option<Instant> {
        self.expires_at
    }

    /// The value, `None` for a negative entry.
    pub fn value(&self) -> Option<&Arc<T>> {
        self.value.as_ref()
    }

    /// The value, `None` for a negative entry.
    pub fn into_value(self) -> Option<Arc<T>> {
        self.value
    }

    /// `true` for a value, `false` for a negative entry.
    pub fn is_present(&self) -> bool {
        self.value.is_some()
    }
}

impl<T> From<Option<Arc<T>>> for L1Entry<T> {
    fn from(value: Option<Arc<T>>) -> Self {
        Self {
            value,
            version: Version::default(),
            expires_at: None,
        }
    }
}

// Manual impls: deriving would require `T: Clone`/`T: Debug` although only the `Arc` is
// cloned.
impl<T> Clone for L1Entry<T> {
    fn clone(&self) -> Self {
        Self {
            value: self.value.clone(),
            version: self.version,
            expires_at: self.expires_at,
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for L1Entry<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => f.debug_tuple("Present").field(value).finish(),
            None => f.write_str("Absent"),
        }
    }
}

/// An in-process cache of decoded values, keyed by id (one instance per value kind).
///
/// Implementations must be bounded and must honour the per-entry TTL given to
/// [`L1Cache::insert`]; [`crate::Tiered`] relies on it to keep L1 entries from outliving
/// their L2 counterpart.
pub trait L1Cache<T>: Send + Sync + fmt::Debug {
    /// The entry for `id`, if present and not expired. Must not allocate.
    fn get(&self, id: &str) -> Option<L1Entry<T>>;

    /// Stores `entry` for `id` for at most `ttl`, replacing any previous entry.
    fn insert(&self, id: &str, entry: L1Entry<T>, ttl: Duration);

    /// Drops the entry for `id`, if any.
    fn remove(&self, id: &str);

    /// Drops every entry.
    fn clear(&self);
}

#[cfg(test)]
mod tests;
