//! The read path: L1, else (the version first) L2, else the loader, run once per flight,
//! and the loader contract every `get_or_load…` method takes ([`Load`]).
//!
//! The order is the protocol: the version of the id is read before the key is built and
//! before L2 is read, so whatever this path inserts is tagged with a version that every
//! later change moves (see `generations.rs`); the L2 read keeps the bytes it saw, which the
//! fill is conditional on (see `l2.rs`).

use std::error::Error;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::l2::{FILL_WINDOW, L2Read};
use super::{Core, Fetched, LoadError, Outcome};
use crate::counter::bump;
use crate::versioned::Version;
use crate::{Key, KeyError};

/// A loader's error, boxed: what [`LoadError::Loader`] keeps.
type BoxError = Box<dyn Error + Send + Sync>;

/// A caller's loader: any `FnOnce() -> Fut` whose `Fut` answers `Result<Option<V>, E>`,
/// with `E` convertible into a boxed error (the one impl below). The bound every
/// `get_or_load…` method and the read path below take, written once.
///
/// `pub` in a private module: it bounds public methods, yet callers never name it — they
/// pass a closure (module docs of [`super`], *Loaders*). `Fut` and `E` are parameters, not
/// associated types, so that the futures of the methods it bounds hold `Fut` itself: an
/// associated type would be normalized through the impl below whenever such a future is
/// checked for `Send`, and there rustc cannot prove `E: Into<BoxError>` for an `E` that is
/// itself a boxed error (its lifetimes are erased), which callers' loaders often are.
pub trait Load<V, Fut, E>: FnOnce() -> Fut {
    /// Polls the started load; its error, if any, boxed.
    fn poll_answer(
        started: Pin<&mut Fut>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<V>, BoxError>>;
}

impl<V, F, Fut, E> Load<V, Fut, E> for F
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Option<V>, E>>,
    E: Into<BoxError>,
{
    fn poll_answer(
        started: Pin<&mut Fut>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<V>, BoxError>> {
        started.poll(cx).map(|answer| answer.map_err(Into::into))
    }
}

/// Starts `load` and waits for its answer.
async fn answer<V, F, Fut, E>(load: F) -> Result<Option<V>, BoxError>
where
    F: Load<V, Fut, E>,
{
    let mut started = pin!(load());
    poll_fn(|cx| F::poll_answer(started.as_mut(), cx)).await
}

/// What a load produced and for how long to keep it.
pub(super) struct Loaded<T> {
    pub(super) value: Option<Arc<T>>,
    pub(super) ttl: Duration,
    /// The TTL is the kind's own (not a per-entry bound from
    /// [`Tiered::get_or_load_with_ttl`](super::Tiered::get_or_load_with_ttl)): the value
    /// may be kept for the stale grace past it.
    pub(super) graced: bool,
}

/// How a load's answer may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trust {
    /// The id came from a verified source: cache absence everywhere.
    Verified,
    /// The id is caller input: absence is remembered in L1 only, so made-up ids cannot
    /// grow the shared tier.
    Untrusted,
}

impl<T> Core<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// A load whose values take the kind's TTL.
    pub(super) async fn load_plain<F, Fut, E>(
        self: &Arc<Self>,
        id: &str,
        trust: Trust,
        load: F,
    ) -> Outcome<T>
    where
        F: Load<T, Fut, E>,
    {
        self.load_through(id, trust, move || async move {
            answer(load)
                .await
                .map(|found| found.map(|value| (value, None)))
        })
        .await
    }

    /// A load whose values come with their own TTL.
    pub(super) async fn load_with_ttl<F, Fut, E>(
        self: &Arc<Self>,
        id: &str,
        trust: Trust,
        load: F,
    ) -> Outcome<T>
    where
        F: Load<(T, Duration), Fut, E>,
    {
        self.load_through(id, trust, move || async move {
            answer(load)
                .await
                .map(|found| found.map(|(value, ttl)| (value, Some(ttl))))
        })
        .await
    }

    pub(super) async fn get(self: &Arc<Self>, id: &str) -> Result<Option<Arc<T>>, KeyError> {
        if let Some(entry) = self.l1_get(id) {
            return Ok(entry.into_value());
        }
        // The version before the key: a keyspace epoch adopted in between moves the
        // version, so an entry read under the old epoch's key is never served.
        let since = self.l1.version(id);
        let key = self.key(id)?;
        match self.l2_read_unless_pending(&key, id).await {
            L2Read::Hit(hit) => {
                self.l1_insert(id, hit.value.clone(), hit.remaining, since);
                self.refresh_if_due(id, &key, &hit, since);
                Ok(hit.value)
            }
            L2Read::Expired(..) | L2Read::Miss(_) | L2Read::Failed | L2Read::Barred => {
                bump(&self.stats.misses);
                Ok(None)
            }
        }
    }

    async fn load_through<F, Fut, E>(
        self: &Arc<Self>,
        id: &str,
        trust: Trust,
        load: F,
    ) -> Outcome<T>
    where
        F: Load<(T, Option<Duration>), Fut, E>,
    {
        if let Some(entry) = self.l1_get(id) {
            return Ok(Fetched::from_entry(entry));
        }
        // Boxed: the rest of the read path (L2, the loader, the fill) is an ~800-byte state
        // machine, which every caller's future would otherwise hold and move even when the
        // L1 answers — most of what an L1 hit cost over the map it reads. A miss pays one
        // allocation beside a round trip.
        Box::pin(async move {
            // The version before the key (see `get`).
            let since = self.l1.version(id);
            let key = self.key(id)?;
            self.fly(id, || self.fetch(id, &key, since, trust, load))
                .await
        })
        .await
    }

    /// The L2 read, the load and the conditional fill, run once per flight.
    async fn fetch<F, Fut, E>(
        self: &Arc<Self>,
        id: &str,
        key: &Key,
        since: Version,
        trust: Trust,
        load: F,
    ) -> Outcome<T>
    where
        F: Load<(T, Option<Duration>), Fut, E>,
    {
        let (expected, stale) = match self.l2_read_unless_pending(key, id).await {
            L2Read::Hit(hit) => {
                let until = self.l1_insert(id, hit.value.clone(), hit.remaining, since);
                self.refresh_if_due(id, key, &hit, since);
                return Ok(Fetched::new(hit.value, until));
            }
            // The loader failed for this id moments ago: serve its last value at once
            // rather than make every caller wait for it to fail again, and retry behind it.
            L2Read::Expired(bytes, stale)
                if self.failures.recent(id) && self.reloader.is_some() =>
            {
                self.spawn_refresh(id, key, bytes, since);
                return Ok(self.serve_stale(id, stale, since));
            }
            L2Read::Expired(bytes, stale) => (Some(Some(bytes)), Some(stale)),
            L2Read::Miss(seen) => (Some(seen), None),
            // A backend that just failed (or hung) is not written to in the same call:
            // a request pays for at most one L2 timeout. An entry that may predate a
            // change made here is not written to either: L1 only.
            L2Read::Failed | L2Read::Barred => (None, None),
        };
        bump(&self.stats.misses);
        self.answered_by("repository");
        let started = Instant::now();
        let loaded = match (self.run_loader(id, load).await, stale) {
            (Ok(loaded), _) => loaded,
            (Err(_), Some(stale)) => return Ok(self.serve_stale(id, stale, since)),
            (Err(error), None) => return Err(error),
        };
        if self.changed_since(id, since) {
            // Changed here (or announced by another instance) while loading: the answer
            // is good for this caller, but may predate the change.
            bump(&self.stats.stale_fills);
            return Ok(Fetched::new(loaded.value, Instant::now()));
        }
        let shared = trust == Trust::Verified || loaded.value.is_some();
        let until = match expected {
            Some(seen) if shared && self.l2.is_some() => {
                if started.elapsed() < FILL_WINDOW {
                    self.fill(key, id, seen, &loaded, since).await
                } else {
                    None
                }
            }
            _ => Some(self.l1_insert(id, loaded.value.clone(), loaded.ttl, since)),
        };
        Ok(Fetched::new(
            loaded.value,
            until.unwrap_or_else(Instant::now),
        ))
    }

    /// Calls the loader of `id` under the load timeout; counts loads and their failures,
    /// and remembers the failures per id (see [`FAILURE_MEMORY`](super::FAILURE_MEMORY)).
    pub(super) async fn run_loader<F, Fut, E>(
        &self,
        id: &str,
        load: F,
    ) -> Result<Loaded<T>, LoadError>
    where
        F: Load<(T, Option<Duration>), Fut, E>,
    {
        bump(&self.stats.loads);
        let mut started = pin!(load());
        let answer = poll_fn(|cx| F::poll_answer(started.as_mut(), cx));
        let result = if self.load_timeout.is_zero() {
            Ok(answer.await)
        } else {
            tokio::time::timeout(self.load_timeout, answer).await
        };
        let failure = match result {
            Ok(Ok(found)) => {
                if self.failures.forget(id) {
                    tracing::debug!(kind = %self.kind, "loader answers again for an id that failed");
                }
                return Ok(self.loaded(found));
            }
            Ok(Err(error)) => LoadError::Loader(Arc::from(error)),
            Err(_) => LoadError::Timeout(self.load_timeout),
        };
        bump(&self.stats.load_errors);
        // Logged at `warn` at most once per FAILURE_MEMORY, not on every failure of
        // every id.
        if self.failures.record(id) {
            tracing::warn!(kind = %self.kind, error = %failure, "loader failing");
        }
        Err(failure)
    }

    fn loaded(&self, found: Option<(T, Option<Duration>)>) -> Loaded<T> {
        match found {
            Some((value, ttl)) => Loaded {
                value: Some(Arc::new(value)),
                graced: ttl.is_none(),
                ttl: ttl.unwrap_or_else(|| self.ttls.jittered_for(self.kind)),
            },
            None => Loaded {
                value: None,
                ttl: self.ttls.jittered(self.ttls.negative),
                graced: false,
            },
        }
    }
}
