//! The keyspace epoch across instances: one number in the shared cache, only ever raised,
//! under which every instance builds its versioned keys (`authcache_core::key`, *Keyspace
//! epochs*). Raising it drops every user, role, permission and token entry — of every
//! instance's in-process tiers and of the shared tier — at once and without a scan: what
//! was cached before is kept under keys nobody reads any more, and expires with its TTL.
//! Revocations and cutoffs live outside epochs and are never dropped.
//!
//! # Protocol
//! 1. **Kept** at `{prefix}:keyspace_epoch` in an envelope signed with the service's key
//!    and bound to that key, for [`EPOCH_TTL`]. Written only by compare-and-set
//!    (`Cache::set_if_unchanged`), and only upward, as the revocation marks are.
//! 2. **Raised** by [`SharedEpoch::raise`] (`AuthService::clear_everywhere`, and the
//!    repository watcher when history is lost or a collection is dropped or renamed): read
//!    the shared value `s`, write `max(s, local) + 1` if the entry still holds what was
//!    read (else read again), *then* adopt it here (step 3) and announce the epoch key on
//!    the bus. When the shared cache refuses, nothing was raised and the caller retries;
//!    this instance's own tiers are cleared regardless.
//! 3. **Adopted** by every instance: at build, when the epoch key (or a key of a later
//!    epoch) arrives on the bus, after every bus resubscription, and every
//!    [`RECHECK_INTERVAL`] ([`FIRST_READ_RETRY`] until a first read succeeds). A higher
//!    shared value is stored in the keyspace *first* and the local tiers are cleared
//!    *after* (`BusEvent::EpochRaised`), so a fill that read an old key before the clear
//!    holds a version the clear moved past and is never served.
//! 4. **Never lowered.** The local epoch only rises (`Keyspace::adopt_epoch`). A shared
//!    value lower than the local one, or missing (Redis restarted empty, the key evicted),
//!    is written back from the local one, raise-only, and announced, so an instance that
//!    started meanwhile catches up. An unreadable value (another signing key, tampering)
//!    is neither adopted nor written over by a re-check; a raise does write over it, since
//!    a raise cannot wait for a value it cannot read — and instances holding a higher epoch
//!    then write theirs back.
//!
//! **Bound.** On the raising instance: none — once `raise` returns it serves nothing cached
//! before. Elsewhere: the bus delay and one read of the shared cache; if the announcement
//! is lost, [`RECHECK_INTERVAL`]. An instance that could not read the epoch at start-up
//! (Redis unreachable) reads the shared tier under the epoch it has until its first read
//! succeeds, within [`FIRST_READ_RETRY`] of Redis answering again. In memory mode there is
//! one instance and the bound is zero.
//!
//! `Tiered` reads the version that guards an L1 insert *before* it builds the L2 key, so a
//! fill that built its key under the old epoch holds a version the adoption's clear moved
//! past, however it was preempted.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use authcache_core::{
    BusEvent, Cache, CacheError, EnvelopeCodec, GuardedCache, InvalidationPublisher, Key, Keyspace,
};
use bytes::Bytes;
use tokio::sync::Notify;

/// A year (the longest TTL accepted anywhere): the value must outlive every entry it
/// orphans. Should it expire all the same, any running instance writes it back (step 4).
pub(crate) const EPOCH_TTL: Duration = authcache_core::ttl::MAX_TTL;

/// 5 s: how late an instance may adopt a raise whose announcement it missed. One read of
/// one small key per instance per interval.
pub(crate) const RECHECK_INTERVAL: Duration = Duration::from_secs(5);

/// 500 ms: how often the epoch is read until a first read succeeds (Redis unreachable at
/// start-up); until then the shared tier may be read under an epoch already left.
pub(crate) const FIRST_READ_RETRY: Duration = Duration::from_millis(500);

/// Compare-and-set rounds a raise tries before giving up (the caller retries).
const RAISE_ATTEMPTS: usize = 8;

/// The shared keyspace epoch, as one instance follows and raises it. See the module docs.
pub(crate) struct SharedEpoch {
    keyspace: Keyspace,
    key: Key,
    codec: EnvelopeCodec,
    l2: Arc<GuardedCache>,
    publisher: Option<Arc<dyn InvalidationPublisher>>,
    /// Drops everything the instance holds in process under the old keys.
    clear: Box<dyn Fn() + Send + Sync>,
    /// Wakes the follower task for a re-check (a bus hint).
    wake: Arc<Notify>,
    /// A read of the shared value has succeeded.
    known: AtomicBool,
    /// The last read found an unreadable value (logged once per run of them).
    unreadable: AtomicBool,
}

impl fmt::Debug for SharedEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedEpoch")
            .field("key", &self.key)
            .field("epoch", &self.keyspace.epoch())
            .finish_non_exhaustive()
    }
}

impl SharedEpoch {
    /// Reads the shared epoch once (adopting it), and — with a shared L2 — starts the
    /// task that re-checks it for as long as the returned handle lives. `clear` drops
    /// everything the instance holds in process under the old keys.
    pub(crate) async fn start(
        keyspace: &Keyspace,
        codec: &EnvelopeCodec,
        l2: &Arc<GuardedCache>,
        publisher: Option<Arc<dyn InvalidationPublisher>>,
        clear: impl Fn() + Send + Sync + 'static,
        shared: bool,
    ) -> Arc<Self> {
        let epoch = Arc::new(Self {
            keyspace: keyspace.clone(),
            key: keyspace.epoch_key(),
            codec: codec.clone(),
            l2: Arc::clone(l2),
            publisher,
            clear: Box::new(clear),
            wake: Arc::new(Notify::new()),
            known: AtomicBool::new(false),
            unreadable: AtomicBool::new(false),
        });
        epoch.recheck().await;
        if shared {
            spawn_follower(Arc::downgrade(&epoch), Arc::clone(&epoch.wake));
        }
        epoch
    }

    /// The epoch this instance builds its keys under.
    pub(crate) fn current(&self) -> u64 {
        self.keyspace.epoch()
    }

    /// Raises the shared epoch above both the shared and the local one, adopts it here,
    /// and announces it; returns the new epoch.
    ///
    /// # Errors
    /// The shared cache's error when it could not record the raise (nothing was raised;
    /// this instance's tiers are cleared all the same).
    pub(crate) async fn raise(&self) -> Result<u64, CacheError> {
        let raised = self.try_raise().await;
        match &raised {
            Ok(epoch) => {
                tracing::warn!(
                    epoch,
                    "keyspace epoch raised: every cached user, role and permission dropped everywhere"
                );
            }
            Err(error) => {
                (self.clear)();
                tracing::warn!(%error, "keyspace epoch not raised: only this instance was cleared");
            }
        }
        raised
    }

    async fn try_raise(&self) -> Result<u64, CacheError> {
        for _ in 0..RAISE_ATTEMPTS {
            let seen = self.l2.get(&self.key).await?;
            let shared = seen.as_deref().and_then(|bytes| self.read(bytes));
            let next = shared
                .unwrap_or(0)
                .max(self.keyspace.epoch())
                .saturating_add(1);
            if self.write(seen, next).await? {
                self.known.store(true, Ordering::Release);
                self.adopt(next);
                self.announce().await;
                return Ok(next);
            }
        }
        Err(CacheError::unavailable(
            "the keyspace epoch kept changing under concurrent raises",
        ))
    }

    /// A bus event: a sign that the shared epoch may have moved — the epoch key
    /// announced, a key of a later epoch than ours, or a gap in the subscription — wakes
    /// the re-check. Quick: it runs on the subscriber task.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn on_bus_event(&self, event: &BusEvent) {
        let moved = match event {
            BusEvent::Resubscribed => true,
            BusEvent::Invalidated(key) => {
                self.keyspace.is_epoch_key(key)
                    || self
                        .keyspace
                        .parse_any_epoch(key)
                        .and_then(|(_, _, epoch)| epoch)
                        .is_some_and(|epoch| epoch > self.keyspace.epoch())
            }
            _ => false,
        };
        if moved {
            self.wake.notify_one();
        }
    }

    /// Reads the shared epoch: adopts a higher one, writes ours back over a lower or
    /// missing one. Failures are logged; the next re-check tries again.
    async fn recheck(&self) {
        if let Err(error) = self.try_recheck().await {
            tracing::debug!(%error, "keyspace epoch not checked: the shared cache cannot answer");
        }
    }

    async fn try_recheck(&self) -> Result<(), CacheError> {
        let seen = self.l2.get(&self.key).await?;
        self.known.store(true, Ordering::Release);
        let local = self.keyspace.epoch();
        let shared = match seen.as_deref() {
            None => 0,
            Some(bytes) => match self.read(bytes) {
                Some(shared) => shared,
                None => return Ok(()),
            },
        };
        if shared > local {
            self.adopt(shared);
        } else if shared < local && self.write(seen, local).await? {
            tracing::info!(
                epoch = local,
                shared,
                "keyspace epoch written back to the shared cache"
            );
            self.announce().await;
        }
        Ok(())
    }

    /// Moves the keyspace to `epoch` if it is higher, then clears the local tiers.
    fn adopt(&self, epoch: u64) {
        if self.keyspace.adopt_epoch(epoch) {
            (self.clear)();
            tracing::info!(epoch, "keyspace epoch adopted: local tiers cleared");
        }
    }

    /// The epoch in `bytes`; `None` (logged once per run) when they do not decode or verify.
    fn read(&self, bytes: &[u8]) -> Option<u64> {
        match self.codec.decode::<u64>(&self.key, bytes) {
            Ok(epoch) => {
                self.unreadable.store(false, Ordering::Relaxed);
                Some(epoch)
            }
            Err(error) => {
                if !self.unreadable.swap(true, Ordering::Relaxed) {
                    tracing::warn!(key = %self.key, %error, "unreadable keyspace epoch: not adopted");
                }
                None
            }
        }
    }

    /// Writes `epoch` if the entry still holds `seen`; whether it wrote.
    async fn write(&self, seen: Option<Bytes>, epoch: u64) -> Result<bool, CacheError> {
        let entry = self.codec.encode(&self.key, &epoch)?;
        match self
            .l2
            .set_if_unchanged(&self.key, seen, entry.clone(), EPOCH_TTL)
            .await
        {
            // A backend without compare-and-set: the plain write. A raise that loses a race
            // there can lower the shared value; step 4 writes the higher one back.
            Err(CacheError::Unsupported(_)) => {
                self.l2.set(&self.key, entry, EPOCH_TTL).await?;
                Ok(true)
            }
            other => other,
        }
    }

    /// Tells the other instances to re-check. Best effort: they re-check on their own
    /// within [`RECHECK_INTERVAL`].
    async fn announce(&self) {
        if let Some(publisher) = &self.publisher
            && let Err(error) = self.l2.run(publisher.publish(&self.key)).await
        {
            tracing::warn!(%error, "keyspace epoch raised but not announced; others re-check within {RECHECK_INTERVAL:?}");
        }
    }

    fn next_check(&self) -> Duration {
        if self.known.load(Ordering::Acquire) {
            RECHECK_INTERVAL
        } else {
            FIRST_READ_RETRY
        }
    }
}

/// Re-checks the epoch when woken, or every [`SharedEpoch::next_check`], until the epoch's
/// owner is dropped.
fn spawn_follower(epoch: Weak<SharedEpoch>, wake: Arc<Notify>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        loop {
            let Some(interval) = epoch.upgrade().map(|epoch| epoch.next_check()) else {
                return;
            };
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(interval) => {}
            }
            let Some(epoch) = epoch.upgrade() else {
                return;
            };
            epoch.recheck().await;
        }
    });
}

#[cfg(test)]
mod tests;
