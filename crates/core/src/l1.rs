//! The in-process tier: decoded values behind a small synchronous trait.
//!
//! An L1 hit is the hot path of every request, so the trait is synchronous (no boxed
//! future) and hands out [`L1Entry`] clones, which are one reference-count increment
//! (no decoding, no HMAC, no allocation). `authcache-memory` implements it on
//! `quick_cache` (S3-FIFO, expiry checked on read).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// What the L1 holds for an id: a value, or the knowledge that there is none.
pub enum L1Entry<T> {
    /// The decoded value.
    Present(Arc<T>),
    /// "Known absent": the loader said there is no such value (a negative entry).
    Absent,
}

impl<T> L1Entry<T> {
    /// The value, `None` for a negative entry.
    pub fn into_value(self) -> Option<Arc<T>> {
        match self {
            Self::Present(value) => Some(value),
            Self::Absent => None,
        }
    }

    /// `true` for a value, `false` for a negative entry.
    pub fn is_present(&self) -> bool {
        matches!(self, Self::Present(_))
    }
}

impl<T> From<Option<Arc<T>>> for L1Entry<T> {
    fn from(value: Option<Arc<T>>) -> Self {
        value.map_or(Self::Absent, Self::Present)
    }
}

// Manual impls: deriving would require `T: Clone`/`T: Debug` although only the `Arc` is
// cloned.
impl<T> Clone for L1Entry<T> {
    fn clone(&self) -> Self {
        match self {
            Self::Present(value) => Self::Present(Arc::clone(value)),
            Self::Absent => Self::Absent,
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for L1Entry<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Present(value) => f.debug_tuple("Present").field(value).finish(),
            Self::Absent => f.write_str("Absent"),
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
mod tests {
    use super::*;

    #[test]
    fn entries_clone_the_arc_only_and_convert_from_options() {
        let value = Arc::new(String::from("v"));
        let entry = L1Entry::from(Some(Arc::clone(&value)));
        let copy = entry.clone();
        assert!(copy.is_present());
        assert!(Arc::ptr_eq(&copy.into_value().unwrap(), &value));
        let absent: L1Entry<String> = L1Entry::from(None);
        assert!(!absent.is_present());
        assert!(absent.clone().into_value().is_none());
        assert_eq!(format!("{absent:?}"), "Absent");
        assert_eq!(format!("{entry:?}"), "Present(\"v\")");
    }
}
