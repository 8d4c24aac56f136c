//! Serving past the soft expiry: stale-if-error, the per-id memory of loader failures, and
//! refresh-ahead (module docs of [`super`], *Stale-if-error and refresh-ahead*).
//!
//! Three durations, each with its own job:
//!
//! - [`STALE_RETRY`]: how long a value served stale stays in L1, so the failing loader is
//!   asked about once a second per hot id, not on every request;
//! - [`FAILURE_MEMORY`]: how long after a failure of an id its expired value is served at
//!   once, the loader being retried behind it by a background reload (with a reloader),
//!   instead of in front of the request;
//! - [`FAILURE_MEMORY_CAP`]: how many failing ids are remembered.
//!
//! Every background reload (refresh-ahead, or a retry behind a stale value) runs one at a
//! time per id and fills conditionally, like any fill: an invalidation during it wins.

use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::l2::{FILL_WINDOW, L2Hit};
use super::{Core, Fetched};
use crate::Key;
use crate::counter::bump;
use crate::versioned::Version;

/// 1 s: how long a value served stale (the loader failed) stays in L1. Past it, the next
/// request reaches L2 again and the loader is asked again: behind the stale value, by a
/// background reload, within [`FAILURE_MEMORY`] of the failure (when the tier has a
/// reloader); in front of the request otherwise. Either way a failing loader is asked
/// about once a second per hot id.
pub const STALE_RETRY: Duration = Duration::from_secs(1);

/// 10 s: after the loader failed for an id, that id's expired value within its grace is
/// served at once (and reloaded in the background) for this long, instead of each request
/// waiting for the loader to fail again. Every failed reload renews it; a success ends it.
/// Only a tier with a [`TieredBuilder::reloader`](super::TieredBuilder::reloader) serves
/// at once: without one, nothing would retry behind the value.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(10);

/// 10,000 ids: how many loader failures a tier remembers (see [`FAILURE_MEMORY`]). Past
/// it, failures older than [`FAILURE_MEMORY`] are forgotten first, then the oldest: that
/// id's next read waits for its loader once more, as its first one did. Ten thousand ids
/// failing at once is a repository that is down, not one bad record.
pub const FAILURE_MEMORY_CAP: usize = 10_000;

/// The future a [`Reloader`] returns.
pub type ReloadFuture<T> =
    Pin<Box<dyn Future<Output = Result<Option<T>, Box<dyn Error + Send + Sync>>> + Send>>;

/// Loads the value of an id on its own, without a caller: what background refreshes run
/// (see [`TieredBuilder::reloader`](super::TieredBuilder::reloader)).
pub type Reloader<T> = Arc<dyn Fn(&str) -> ReloadFuture<T> + Send + Sync>;

/// When the loader last failed, per id: for [`FAILURE_MEMORY`] after it, that id's expired
/// value within its grace is served at once and reloaded behind. Per id, so that a record
/// that fails to load (a document that no longer decodes) never makes another id's expired
/// value be served stale while the loader answers for it. At most [`FAILURE_MEMORY_CAP`]
/// ids.
#[derive(Debug, Default)]
pub(super) struct Failures {
    log: Mutex<FailureLog>,
    /// `log.at.len()`, readable without the lock: a load skips an empty log.
    pub(super) count: AtomicUsize,
}

#[derive(Debug, Default)]
pub(super) struct FailureLog {
    pub(super) at: HashMap<Arc<str>, Instant>,
    /// When a failing loader was last logged at `warn`: once per [`FAILURE_MEMORY`].
    warned: Option<Instant>,
}

impl Failures {
    pub(super) fn lock(&self) -> MutexGuard<'_, FailureLog> {
        // Plain inserts, removes and assignments: a panic cannot leave it half-updated.
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the loader failed for `id` within the last [`FAILURE_MEMORY`].
    pub(super) fn recent(&self, id: &str) -> bool {
        self.count.load(Ordering::Acquire) > 0
            && self
                .lock()
                .at
                .get(id)
                .is_some_and(|at| at.elapsed() < FAILURE_MEMORY)
    }

    /// Remembers that the loader failed for `id` now; `true` when no failure was logged
    /// within the last [`FAILURE_MEMORY`] (log this one).
    pub(super) fn record(&self, id: &str) -> bool {
        let now = Instant::now();
        let mut log = self.lock();
        if let Some(at) = log.at.get_mut(id) {
            *at = now;
        } else {
            if log.at.len() >= FAILURE_MEMORY_CAP {
                log.at
                    .retain(|_, at| now.duration_since(*at) < FAILURE_MEMORY);
            }
            if log.at.len() >= FAILURE_MEMORY_CAP {
                let oldest = log.at.iter().min_by_key(|(_, at)| **at);
                if let Some(oldest) = oldest.map(|(id, _)| Arc::clone(id)) {
                    log.at.remove(&oldest);
                }
            }
            log.at.insert(Arc::from(id), now);
        }
        self.count.store(log.at.len(), Ordering::Release);
        let warn = log
            .warned
            .is_none_or(|warned| now.duration_since(warned) >= FAILURE_MEMORY);
        if warn {
            log.warned = Some(now);
        }
        warn
    }

    /// The loader answered for `id`: its failure is over. `true` when one was remembered.
    pub(super) fn forget(&self, id: &str) -> bool {
        if self.count.load(Ordering::Acquire) == 0 {
            return false;
        }
        let mut log = self.lock();
        let remembered = log.at.remove(id).is_some();
        self.count.store(log.at.len(), Ordering::Release);
        remembered
    }
}

impl<T> Core<T> {
    /// The part at the end of a value's TTL in which a read reloads it in the background;
    /// zero without a reloader.
    pub(super) fn refresh_window(&self) -> Duration {
        if self.reloader.is_none() {
            return Duration::ZERO;
        }
        self.ttls.refresh_window(self.ttls.for_kind(self.kind))
    }

    fn lock_refreshing(&self) -> MutexGuard<'_, HashSet<Arc<str>>> {
        // Only ever inserted into or removed from, as the flights.
        self.refreshing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> Core<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Serves a value past its expiry, within its grace, because the loader failed; keeps
    /// it in L1 for [`STALE_RETRY`] so the failing loader is not asked on every request.
    pub(super) fn serve_stale(&self, id: &str, stale: Arc<T>, since: Version) -> Fetched<T> {
        bump(&self.stats.stale_served);
        self.answered_by("stale");
        tracing::debug!(kind = %self.kind, "loader failing: serving the last value within its grace");
        let until = self.l1_insert(id, Some(Arc::clone(&stale)), STALE_RETRY, since);
        Fetched::new(Some(stale), until)
    }

    /// Starts the reload of an L2 hit read in its refresh-ahead window.
    pub(super) fn refresh_if_due(
        self: &Arc<Self>,
        id: &str,
        key: &Key,
        hit: &L2Hit<T>,
        since: Version,
    ) {
        if hit.value.is_some() && hit.remaining <= self.refresh_window() {
            self.spawn_refresh(id, key, hit.bytes.clone(), since);
        }
    }

    /// Reloads `id` in a background task, unless one is already doing so. The reload fills
    /// the tiers only if the L2 entry is still exactly `seen` and nothing invalidated the
    /// id since `since`, like any fill.
    pub(super) fn spawn_refresh(
        self: &Arc<Self>,
        id: &str,
        key: &Key,
        seen: Bytes,
        since: Version,
    ) {
        let Some(reloader) = self.reloader.clone() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let id: Arc<str> = Arc::from(id);
        if !self.lock_refreshing().insert(Arc::clone(&id)) {
            return;
        }
        bump(&self.stats.refreshes);
        let core = Arc::clone(self);
        let key = key.clone();
        runtime.spawn(async move {
            let _done = RefreshGuard {
                core: &core,
                id: &id,
            };
            core.refresh(&id, &key, seen, since, &reloader).await;
        });
    }

    async fn refresh(
        &self,
        id: &str,
        key: &Key,
        seen: Bytes,
        since: Version,
        reload: &Reloader<T>,
    ) {
        let started = Instant::now();
        let load = || async move {
            reload(id)
                .await
                .map(|found| found.map(|value| (value, None)))
        };
        let Ok(loaded) = self.run_loader(id, load).await else {
            tracing::debug!(kind = %self.kind, "background refresh failed; the current value stays");
            return;
        };
        if self.changed_since(id, since) || started.elapsed() >= FILL_WINDOW {
            bump(&self.stats.stale_fills);
            return;
        }
        self.fill(key, id, Some(seen), &loaded, since).await;
    }
}

/// Frees an id for the next background refresh when the current one ends, however it ends.
struct RefreshGuard<'t, T> {
    core: &'t Core<T>,
    id: &'t Arc<str>,
}

impl<T> Drop for RefreshGuard<'_, T> {
    fn drop(&mut self) {
        self.core.lock_refreshing().remove(self.id);
    }
}
