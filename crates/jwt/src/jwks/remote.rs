//! [`RemoteKeys`]: the current key set, swapped lock-free, and the single-flight,
//! rate-limited refresh behind it (the protocol is in the [module docs](super)).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use arc_swap::{ArcSwap, Guard};
use tokio::runtime::Handle;
use tokio::sync::Mutex;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::document::parse_key_set;
use super::stats::JwksStats;
use crate::error::{Result, TokenError};
use crate::keys::KeySet;

/// A fetch's outcome: the raw document, or why there is none (no credentials in it):
/// [`TokenError::KeySetUnavailable`], or [`TokenError::RedirectRefused`].
pub(crate) type Fetched<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>>> + Send + 'a>>;

/// Where a key set comes from: the HTTP endpoint, or a script in tests.
pub(crate) trait KeySource: Send + Sync + 'static {
    /// The key-set document, bounded in time and size by the source.
    fn fetch(&self) -> Fetched<'_>;
    /// Where the keys come from, for logs and `Debug`.
    fn location(&self) -> &str;
}

/// The two intervals of [`super::RemoteJwks`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Intervals {
    pub(crate) refresh: Duration,
    pub(crate) min_refresh: Duration,
}

impl Intervals {
    /// After a failed periodic refresh: sooner than the full interval, never in a busy loop.
    fn retry(self) -> Duration {
        if self.min_refresh.is_zero() {
            self.refresh
        } else {
            self.min_refresh.min(self.refresh)
        }
    }
}

/// State only a fetcher touches; the mutex around it is the single flight.
#[derive(Debug, Default)]
struct Flight {
    /// When the last fetch caused by an unknown `kid` began.
    last_kid_fetch: Option<Instant>,
}

#[derive(Debug, Default)]
struct Counters {
    fetches: AtomicU64,
    fetch_failures: AtomicU64,
    unknown_kid_fetches: AtomicU64,
    unknown_kid_rejections: AtomicU64,
    keys_skipped: AtomicU64,
}

/// A key set fetched from a [`KeySource`] and kept current. Shared by every clone of its
/// verifier; the periodic refresh task is aborted when it is dropped.
pub(crate) struct RemoteKeys {
    source: Box<dyn KeySource>,
    intervals: Intervals,
    current: ArcSwap<KeySet>,
    /// Rises after each swap that loses a key: see `JwtVerifier::key_set_version`.
    version: AtomicU64,
    /// Held across a fetch by whoever fetches; the verification path never takes it.
    flight: Mutex<Flight>,
    /// Fetches finished, successful or not: a caller that queued behind a fetch sees that it
    /// happened and looks at its result instead of fetching again.
    finished: AtomicU64,
    counters: Counters,
    background: OnceLock<AbortHandle>,
}

impl RemoteKeys {
    /// Fetches the set once (a verifier never starts without keys), then starts the periodic
    /// refresh on `runtime`.
    pub(crate) async fn start(
        source: Box<dyn KeySource>,
        intervals: Intervals,
        runtime: &Handle,
    ) -> Result<Arc<Self>> {
        let keys = Arc::new(Self {
            source,
            intervals,
            current: ArcSwap::from_pointee(KeySet::default()),
            version: AtomicU64::new(0),
            flight: Mutex::new(Flight::default()),
            finished: AtomicU64::new(0),
            counters: Counters::default(),
            background: OnceLock::new(),
        });
        keys.refresh_now()
            .await
            .map_err(|error| at_location(keys.source.location(), error))?;
        let task = runtime.spawn(refresh_periodically(Arc::downgrade(&keys), intervals));
        // Cannot be set twice: `keys` is not shared yet.
        let _ = keys.background.set(task.abort_handle());
        Ok(keys)
    }

    /// The current set: one lock-free load, no reference count taken.
    pub(crate) fn current(&self) -> Guard<Arc<KeySet>> {
        self.current.load()
    }

    /// Called for a token whose `kid` the current set lacks: joins the fetch in flight, or
    /// starts one unless an unknown `kid` caused one less than the minimum interval ago.
    /// `true` when the set now holds `kid`.
    pub(crate) async fn refresh_for_kid(&self, kid: &str) -> bool {
        // Read before looking at the set, so a fetch finishing in between is noticed below.
        let seen = self.finished.load(Ordering::Acquire);
        if self.current().contains(kid) {
            return true;
        }
        let mut flight = self.flight.lock().await;
        if self.finished.load(Ordering::Acquire) != seen {
            // A fetch ran while we waited: its set is as fresh as ours would be.
            return self.current().contains(kid);
        }
        let now = Instant::now();
        let due = flight
            .last_kid_fetch
            .is_none_or(|at| now.duration_since(at) >= self.intervals.min_refresh);
        if !due {
            return false;
        }
        flight.last_kid_fetch = Some(now);
        self.counters
            .unknown_kid_fetches
            .fetch_add(1, Ordering::Relaxed);
        // A failure is counted and logged by `fetch`; the previous keys stay.
        let _ = self.fetch(&mut flight).await;
        self.current().contains(kid)
    }

    /// The number of swaps so far that lost a key. Acquire: whoever sees a new number sees
    /// the set swapped in before it rose.
    pub(crate) fn key_set_version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Fetches now, after any fetch in flight.
    pub(crate) async fn refresh_now(&self) -> Result<()> {
        let mut flight = self.flight.lock().await;
        self.fetch(&mut flight).await
    }

    /// One fetch; `_flight` proves the caller holds the single flight. The new set is swapped
    /// in whole, or not at all.
    async fn fetch(&self, _flight: &mut Flight) -> Result<()> {
        self.counters.fetches.fetch_add(1, Ordering::Relaxed);
        let outcome = self
            .source
            .fetch()
            .await
            .and_then(|body| parse_key_set(&body).map_err(TokenError::KeySetUnavailable));
        let result = match outcome {
            Ok((set, skipped)) => {
                // Only fetchers swap, and the caller holds the single flight: `current` is
                // the set being replaced.
                let loses_a_key = !set.covers(&self.current());
                self.current.store(Arc::new(set));
                if loses_a_key {
                    // After the swap (Release): a reader that sees the new number sees the
                    // new set, so nothing is ever stamped newer than the keys it met.
                    self.version.fetch_add(1, Ordering::Release);
                }
                self.counters.keys_skipped.store(skipped, Ordering::Relaxed);
                Ok(())
            }
            Err(error) => {
                self.counters.fetch_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    location = self.source.location(),
                    %error,
                    "JWKS fetch failed; the previous keys stay in use"
                );
                Err(error)
            }
        };
        // After the swap: whoever sees the new count sees the new set.
        self.finished.fetch_add(1, Ordering::Release);
        result
    }

    /// Counts a token refused because its `kid` stayed unknown.
    pub(crate) fn count_unknown_kid_rejection(&self) {
        self.counters
            .unknown_kid_rejections
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> JwksStats {
        let c = &self.counters;
        JwksStats {
            fetches: c.fetches.load(Ordering::Relaxed),
            fetch_failures: c.fetch_failures.load(Ordering::Relaxed),
            unknown_kid_fetches: c.unknown_kid_fetches.load(Ordering::Relaxed),
            unknown_kid_rejections: c.unknown_kid_rejections.load(Ordering::Relaxed),
            keys: self.current().len() as u64,
            keys_skipped: c.keys_skipped.load(Ordering::Relaxed),
        }
    }
}

/// `error` for a caller that does not know where the keys come from: a bare
/// [`TokenError::KeySetUnavailable`] reason gets the location in front.
pub(crate) fn at_location(location: &str, error: TokenError) -> TokenError {
    match error {
        TokenError::KeySetUnavailable(reason) => {
            TokenError::KeySetUnavailable(format!("{location}: {reason}"))
        }
        other => other,
    }
}

/// The periodic refresh. Holds the keys only while refreshing, so dropping the last
/// verifier drops them, whose `Drop` aborts this task.
async fn refresh_periodically(keys: Weak<RemoteKeys>, intervals: Intervals) {
    let mut wait = intervals.refresh;
    loop {
        tokio::time::sleep(wait).await;
        let Some(keys) = keys.upgrade() else {
            return;
        };
        wait = match keys.refresh_now().await {
            Ok(()) => intervals.refresh,
            Err(_) => intervals.retry(),
        };
    }
}

impl Drop for RemoteKeys {
    fn drop(&mut self) {
        if let Some(task) = self.background.get() {
            task.abort();
        }
    }
}

impl fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("location", &self.source.location())
            .field("intervals", &self.intervals)
            .field("keys", &self.current().len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
