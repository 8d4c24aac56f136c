//! The service's end of a running watcher ([`WatcherLink`]: its counters, and the task,
//! aborted on drop) and the live [`Status`] the task and the link share.

use std::fmt::Display;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use authcache_core::counter;
use tokio::task::AbortHandle;

use crate::stats::{WatcherFault, WatcherState, WatcherStats};

/// The service's end of a running watcher: its counters, and the task, aborted on drop.
pub(crate) struct WatcherLink {
    pub(super) status: Arc<Status>,
    pub(super) task: AbortHandle,
}

impl WatcherLink {
    pub(crate) fn stats(&self) -> WatcherStats {
        self.status.snapshot()
    }
}

impl Drop for WatcherLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Live counters behind [`WatcherStats`] (bumped and read through [`counter`]; the state
/// and the last fault are relaxed atomics too: statistics, not synchronisation).
#[derive(Debug, Default)]
pub(super) struct Status {
    state: AtomicU8,
    last_error: AtomicU8,
    pub(super) events: AtomicU64,
    pub(super) invalidations: AtomicU64,
    pub(super) coalesced: AtomicU64,
    pub(super) everything: AtomicU64,
    pub(super) pending: AtomicU64,
    pub(super) max_pending: AtomicU64,
    pub(super) resumes: AtomicU64,
    pub(super) full_clears: AtomicU64,
    pub(super) checkpoints: AtomicU64,
    pub(super) errors: AtomicU64,
}

impl Status {
    fn snapshot(&self) -> WatcherStats {
        WatcherStats {
            state: match self.state.load(Ordering::Relaxed) {
                0 => WatcherState::Starting,
                1 => WatcherState::Running,
                _ => WatcherState::Down,
            },
            events: counter::read(&self.events),
            invalidations: counter::read(&self.invalidations),
            coalesced: counter::read(&self.coalesced),
            everything: counter::read(&self.everything),
            pending: counter::read(&self.pending),
            max_pending: counter::read(&self.max_pending),
            resumes: counter::read(&self.resumes),
            full_clears: counter::read(&self.full_clears),
            checkpoints: counter::read(&self.checkpoints),
            errors: counter::read(&self.errors),
            last_error: match self.last_error.load(Ordering::Relaxed) {
                0 => None,
                1 => Some(WatcherFault::Feed),
                2 => Some(WatcherFault::HistoryLost),
                _ => Some(WatcherFault::Cache),
            },
        }
    }

    pub(super) fn set_state(&self, state: WatcherState) {
        let code = match state {
            WatcherState::Starting => 0,
            WatcherState::Running => 1,
            _ => 2,
        };
        self.state.store(code, Ordering::Relaxed);
    }

    pub(super) fn fault(&self, fault: WatcherFault, error: &dyn Display) {
        let code = match fault {
            WatcherFault::Feed => 1,
            WatcherFault::HistoryLost => 2,
            _ => 3,
        };
        self.last_error.store(code, Ordering::Relaxed);
        counter::bump(&self.errors);
        tracing::warn!(%error, ?fault, "repository watcher");
    }

    pub(super) fn set_pending(&self, pending: usize) {
        let pending = pending as u64;
        self.pending.store(pending, Ordering::Relaxed);
        self.max_pending.fetch_max(pending, Ordering::Relaxed);
    }
}
