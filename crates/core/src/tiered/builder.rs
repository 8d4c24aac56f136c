//! [`TieredBuilder`]: what a [`Tiered`] is made of, each part with its default.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::refresh::{Failures, ReloadFuture, Reloader};
use super::{Core, TierStats, Tiered};
use crate::breaker::GuardedCache;
use crate::codec::EnvelopeCodec;
use crate::l1::L1Cache;
use crate::pending::Pending;
use crate::ttl::Ttls;
use crate::versioned::VersionedL1;
use crate::{InvalidationPublisher, KeyKind, Keyspace};

/// 5 s: the default bound on one loader call. A hung repository then costs its waiters
/// 5 s and an `Unavailable`, not their whole request budget, and the flight is freed.
pub const DEFAULT_LOAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks a decoded entry against the id it was read for (see [`TieredBuilder::validate`]).
pub type Validator<T> = fn(id: &str, value: &T) -> bool;

/// Builds a [`Tiered`]; see [`Tiered::builder`].
pub struct TieredBuilder<T> {
    kind: KeyKind,
    keyspace: Keyspace,
    ttls: Ttls,
    l1: Option<Arc<dyn L1Cache<T>>>,
    l2: Option<Arc<GuardedCache>>,
    codec: EnvelopeCodec,
    publisher: Option<Arc<dyn InvalidationPublisher>>,
    load_timeout: Duration,
    validate: Option<Validator<T>>,
    reloader: Option<Reloader<T>>,
}

impl<T> fmt::Debug for TieredBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TieredBuilder")
            .field("kind", &self.kind)
            .field("keyspace", &self.keyspace)
            .finish_non_exhaustive()
    }
}

impl<T> TieredBuilder<T> {
    /// The tier of `kind` with every default: no L1, no L2, no publisher.
    pub(super) fn new(kind: KeyKind) -> Self {
        Self {
            kind,
            keyspace: Keyspace::default(),
            ttls: Ttls::default(),
            l1: None,
            l2: None,
            codec: EnvelopeCodec::default(),
            publisher: None,
            load_timeout: DEFAULT_LOAD_TIMEOUT,
            validate: None,
            reloader: None,
        }
    }

    /// The keyspace of L2 keys (default: [`Keyspace::default`]).
    pub fn keyspace(mut self, keyspace: Keyspace) -> Self {
        self.keyspace = keyspace;
        self
    }

    /// The TTL policy (default: [`Ttls::default`]).
    pub fn ttls(mut self, ttls: &Ttls) -> Self {
        self.ttls = ttls.clone();
        self
    }

    /// The in-process tier (default: none).
    pub fn l1(mut self, l1: Arc<dyn L1Cache<T>>) -> Self {
        self.l1 = Some(l1);
        self
    }

    /// The shared tier, behind its breaker (default: none). Share one [`GuardedCache`]
    /// between all tiers on the same backend.
    pub fn l2(mut self, l2: Arc<GuardedCache>) -> Self {
        self.l2 = Some(l2);
        self
    }

    /// The envelope codec for L2 entries (default: bincode, unsigned).
    pub fn codec(mut self, codec: EnvelopeCodec) -> Self {
        self.codec = codec;
        self
    }

    /// Where writes and deletes announce their key (default: nowhere).
    pub fn publisher(mut self, publisher: Arc<dyn InvalidationPublisher>) -> Self {
        self.publisher = Some(publisher);
        self
    }

    /// Bound on one loader call (default [`DEFAULT_LOAD_TIMEOUT`]); past it every waiter
    /// gets [`LoadError::Timeout`](super::LoadError::Timeout) and the flight is freed. Zero
    /// means no bound.
    pub fn load_timeout(mut self, timeout: Duration) -> Self {
        self.load_timeout = timeout;
        self
    }

    /// A check of every value read from L2 against the id it was read for: a value that
    /// fails it (a user record whose own id is another) is a miss, counted in
    /// `decode_failures`, and never served.
    pub fn validate(mut self, validate: Validator<T>) -> Self {
        self.validate = Some(validate);
        self
    }

    /// How to load a value without a caller, which turns on refresh-ahead (a value read
    /// in the last [`Ttls::refresh_ahead`] part of its TTL is reloaded in the background,
    /// once) and background retries behind stale values. Without one, values are only
    /// loaded by callers.
    pub fn reloader(
        mut self,
        reload: impl Fn(&str) -> ReloadFuture<T> + Send + Sync + 'static,
    ) -> Self {
        self.reloader = Some(Arc::new(reload));
        self
    }

    /// The tier.
    pub fn build(self) -> Tiered<T> {
        let core = Core {
            kind: self.kind,
            keyspace: self.keyspace,
            ttls: self.ttls,
            l1: VersionedL1::new(self.l1),
            l2: self.l2,
            codec: self.codec,
            publisher: self.publisher,
            load_timeout: self.load_timeout,
            validate: self.validate,
            reloader: self.reloader,
            flights: Mutex::default(),
            refreshing: Mutex::default(),
            failures: Failures::default(),
            pending: Pending::default(),
            stats: TierStats::default(),
        };
        Tiered {
            core: Arc::new(core),
        }
    }
}
