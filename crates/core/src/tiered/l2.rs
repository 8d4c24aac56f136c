//! The shared-tier protocol (ARCHITECTURE.md, *Coherence*): what a tier reads from, fills
//! into and writes to its L2, and what it announces on the bus.
//!
//! - **Readers** ([`Core::l2_read`]) decode the envelope under its key and treat
//!   tombstones, expired, undecodable, unverifiable and foreign entries as misses, keeping
//!   the exact bytes they saw. They never delete anything.
//! - **Fillers** ([`Core::fill`]) store with [`Cache::set_if_unchanged`] on those bytes:
//!   if any writer touched the key since the read, the fill is refused. A load slower than
//!   [`FILL_WINDOW`] is not filled at all.
//! - **Writers** ([`Core::write`], [`Core::delete`]) overwrite the key unconditionally —
//!   with the value, or a [`tombstone`] for [`TOMBSTONE_TTL`] — moving the id's version
//!   before and after, then publish the key.
//! - **Refused writes** make the id pending ([`crate::pending`]): its L2 entry is neither
//!   read nor filled here until [`Core::retry_pending`] has written the owed tombstone and
//!   published the key.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::Core;
use super::load::Loaded;
use crate::breaker::with_l2_budget;
use crate::codec::{is_tombstone, tombstone};
use crate::counter::bump;
use crate::pending::{Debt, Ticket};
use crate::versioned::Version;
use crate::{Cache, CacheError, Key};

/// 60 s: how long an invalidation's tombstone guards its key against older fills. Twice
/// [`FILL_WINDOW`], so a fill allowed to write always meets the tombstone of any
/// invalidation that happened after its read.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(60);

/// 30 s: a fill whose load took longer than this is served but not cached (its guarding
/// tombstones might have expired). Far above any sane repository timeout.
pub const FILL_WINDOW: Duration = Duration::from_secs(30);

/// What an L2 lookup found.
pub(super) enum L2Read<T> {
    Hit(L2Hit<T>),
    /// A value past its expiry but within its stale grace: not served unless the loader
    /// fails. Holds the exact bytes, the expectation of the conditional fill.
    Expired(Bytes, Arc<T>),
    /// Nothing usable; holds exactly what was there (`None`: absent), the expectation of
    /// the conditional fill. Absent, expired, tombstoned, undecodable and foreign entries
    /// all land here: a fill overwrites them only if they are still there, unchanged.
    Miss(Option<Bytes>),
    /// The backend failed, timed out or was skipped.
    Failed,
    /// Not read: the entry may predate a change made here that L2 refused
    /// ([`crate::pending`]). Nothing is filled either.
    Barred,
}

/// A decoded L2 entry, with the bytes it was decoded from.
pub(super) struct L2Hit<T> {
    pub(super) value: Option<Arc<T>>,
    pub(super) remaining: Duration,
    pub(super) bytes: Bytes,
}

/// Readers and fillers.
impl<T> Core<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// [`Core::l2_read`], unless the id's L2 entry may predate a change made here that L2
    /// refused ([`crate::pending`]): then [`L2Read::Barred`]. Read the version first.
    pub(super) async fn l2_read_unless_pending(&self, key: &Key, id: &str) -> L2Read<T> {
        if self.pending.bars_l2(id) {
            return L2Read::Barred;
        }
        self.l2_read(key, id).await
    }

    /// Reads and decodes the L2 entry; every failure is a miss. Nothing is deleted: a
    /// reader that deleted what it could not read would erase other instances'
    /// tombstones and, during a key rotation, their entries. A later fill overwrites a
    /// bad entry conditionally instead.
    async fn l2_read(&self, key: &Key, id: &str) -> L2Read<T> {
        let Some(l2) = &self.l2 else {
            return L2Read::Miss(None);
        };
        let bytes = match l2.get(key).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return L2Read::Miss(None),
            Err(error) => {
                self.note_l2_error(key, &error);
                return L2Read::Failed;
            }
        };
        if is_tombstone(&bytes) {
            return L2Read::Miss(Some(bytes));
        }
        let Some((expires_at, value)) = self.decode(key, id, &bytes) else {
            return L2Read::Miss(Some(bytes));
        };
        let now = unix_ms();
        if expires_at <= now {
            return match value {
                Some(value) if now - expires_at < millis(self.ttls.stale_grace) => {
                    L2Read::Expired(bytes, Arc::new(value))
                }
                _ => L2Read::Miss(Some(bytes)),
            };
        }
        bump(&self.stats.l2_hits);
        self.answered_by("l2");
        L2Read::Hit(L2Hit {
            value: value.map(Arc::new),
            remaining: Duration::from_millis(expires_at - now),
            bytes,
        })
    }

    /// The entry's expiry and value, if it decodes, verifies under `key` and passes the
    /// validator for `id`.
    fn decode(&self, key: &Key, id: &str, bytes: &[u8]) -> Option<(u64, Option<T>)> {
        let rejected = match self.codec.decode::<(u64, Option<T>)>(key, bytes) {
            Ok((expires_at, value)) => {
                let foreign =
                    matches!((&value, self.validate), (Some(v), Some(valid)) if !valid(id, v));
                if !foreign {
                    return Some((expires_at, value));
                }
                String::from("value does not belong to the key it was read under")
            }
            Err(error) => error.to_string(),
        };
        bump(&self.stats.decode_failures);
        tracing::warn!(key = %key, error = %rejected, "unusable cache entry, read as a miss");
        None
    }

    /// The L2 entry of `value`, expiring `ttl` from now; failures are counted and logged.
    fn encode(
        &self,
        key: &Key,
        value: Option<&Arc<T>>,
        ttl: Duration,
    ) -> Result<Bytes, crate::CodecError> {
        let expires_at = unix_ms().saturating_add(millis(ttl));
        self.codec
            .encode(key, &(expires_at, value.map(|value| &**value)))
            .inspect_err(|error| {
                bump(&self.stats.encode_failures);
                tracing::warn!(key = %key, %error, "value not cached: cannot encode it");
            })
    }

    /// How long L2 keeps an entry that expires in `ttl`: past it by the stale grace when
    /// the value may be served stale.
    fn l2_ttl(&self, ttl: Duration, graced: bool) -> Duration {
        if graced {
            ttl.saturating_add(self.ttls.stale_grace)
        } else {
            ttl
        }
    }

    /// Stores a loaded value in L2 only if the key still holds what the load's read saw,
    /// then in L1 if nothing changed locally either. Best effort: the answer is good
    /// whether or not it was cached. Returns the L1 deadline it was kept with, `None` when
    /// the key changed since the load began (the answer may predate that change).
    pub(super) async fn fill(
        &self,
        key: &Key,
        id: &str,
        seen: Option<Bytes>,
        loaded: &Loaded<T>,
        since: Version,
    ) -> Option<Instant> {
        let keep = || self.l1_insert(id, loaded.value.clone(), loaded.ttl, since);
        let Some(l2) = &self.l2 else {
            return Some(keep());
        };
        let Ok(entry) = self.encode(key, loaded.value.as_ref(), loaded.ttl) else {
            return Some(keep());
        };
        let l2_ttl = self.l2_ttl(loaded.ttl, loaded.graced && loaded.value.is_some());
        match l2.set_if_unchanged(key, seen, entry, l2_ttl).await {
            Ok(true) => Some(keep()),
            Ok(false) => {
                bump(&self.stats.stale_fills);
                tracing::debug!(key = %key, "fill dropped: the key changed since the load began");
                None
            }
            // L2 refused or died after the read: the answer is still good, and without it
            // in L1 every request would reach the loader until L2 is back. The L1 cap
            // bounds its staleness, as it does for missed bus messages.
            Err(error) => {
                if !matches!(error, CacheError::Unsupported(_)) {
                    self.note_l2_error(key, &error);
                }
                Some(keep())
            }
        }
    }
}

/// Writers, and the retries of what L2 refused them.
impl<T> Core<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    pub(super) async fn delete(&self, id: &str) -> Result<(), CacheError> {
        let key = self.key(id)?;
        let owed = self.pending.ticket(id);
        self.invalidate_local(id);
        let result = match &self.l2 {
            Some(l2) => l2
                .set(&key, tombstone(), TOMBSTONE_TTL)
                .await
                .inspect_err(|error| self.note_l2_error(&key, error)),
            None => Ok(()),
        };
        self.owe_if_refused(id, &key, &result);
        // Again: a read on this instance that ran while the tombstone was on its way may
        // have filled L1 from the old L2 entry.
        self.invalidate_local(id);
        self.announce(id, &key, owed, result.is_ok()).await;
        result
    }

    pub(super) async fn write(
        &self,
        id: &str,
        value: Option<Arc<T>>,
        ttl: Duration,
        graced: bool,
    ) -> Result<(), CacheError> {
        if ttl.is_zero() {
            return self.delete(id).await;
        }
        let key = self.key(id)?;
        let owed = self.pending.ticket(id);
        self.invalidate_local(id);
        let result = self.store(&key, value.as_ref(), ttl, graced).await;
        self.owe_if_refused(id, &key, &result);
        // Again after the L2 write: a read on this instance that ran while it was on its way
        // may have filled L1 from the old entry; only then may the new value go in. It goes
        // in even when L2 refused it: it is this instance's answer, and the id is pending.
        self.invalidate_local(id);
        let since = self.l1.version(id);
        self.l1_insert(id, value, ttl, since);
        self.announce(id, &key, owed, result.is_ok()).await;
        result
    }

    /// Writes the entry to L2 unconditionally.
    async fn store(
        &self,
        key: &Key,
        value: Option<&Arc<T>>,
        ttl: Duration,
        graced: bool,
    ) -> Result<(), CacheError> {
        let Some(l2) = &self.l2 else { return Ok(()) };
        let entry = self.encode(key, value, ttl)?;
        let l2_ttl = self.l2_ttl(ttl, graced && value.is_some());
        l2.set(key, entry, l2_ttl)
            .await
            .inspect_err(|error| self.note_l2_error(key, error))
    }

    /// After a refused L2 write of `id`: the tombstone is owed. Recorded before the
    /// writer's second version bump, so that every read that begins after the bump
    /// passes L2 by (see [`crate::pending`]).
    fn owe_if_refused(&self, id: &str, key: &Key, result: &Result<(), CacheError>) {
        if let Err(error) = result {
            self.pending.owe(id, Debt::Tombstone, None);
            tracing::warn!(key = %key, %error, "change not stored in L2: in force on this instance, L2 bypassed for it until a retry lands");
        }
    }

    /// Publishes the change of `id` made by a writer that began when `owed` was owed, and
    /// settles what its write replaced, or records what is still owed.
    async fn announce(&self, id: &str, key: &Key, owed: Option<Ticket>, stored: bool) {
        let announced = self.publish(key).await.is_ok();
        match (stored, announced) {
            (true, true) => {
                self.pending.settle(id, owed);
            }
            (true, false) => self.pending.owe(id, Debt::Announcement, owed),
            // The tombstone is owed; its retry announces after it.
            (false, _) => {}
        }
    }

    pub(super) async fn retry_pending(&self) -> usize {
        for (id, debt, ticket) in self.pending.owed() {
            let Ok(key) = self.key(&id) else {
                // Only ids that made keys are ever owed.
                self.pending.settle(&id, Some(ticket));
                continue;
            };
            if with_l2_budget(self.repay(&id, &key, debt, ticket))
                .await
                .is_err()
            {
                break;
            }
        }
        self.pending.len()
    }

    /// Writes the tombstone `id` owes (unconditionally: over anything filled meanwhile),
    /// then announces it; settles the debt under `ticket` when both landed.
    async fn repay(
        &self,
        id: &str,
        key: &Key,
        debt: Debt,
        ticket: Ticket,
    ) -> Result<(), CacheError> {
        if let (Debt::Tombstone, Some(l2)) = (debt, &self.l2) {
            l2.set(key, tombstone(), TOMBSTONE_TTL)
                .await
                .inspect_err(|error| self.note_l2_error(key, error))?;
        }
        match self.publish(key).await {
            Ok(()) => {
                self.pending.settle(id, Some(ticket));
                tracing::info!(key = %key, "pending invalidation landed");
                Ok(())
            }
            Err(error) => {
                self.pending.owe(id, Debt::Announcement, Some(ticket));
                Err(error)
            }
        }
    }
}

impl<T> Core<T> {
    /// Announces `key` on the bus, through the L2's breaker and the request's budget: a
    /// dead Redis costs a logout no timeout beyond the one its write already paid.
    async fn publish(&self, key: &Key) -> Result<(), CacheError> {
        let Some(publisher) = &self.publisher else {
            return Ok(());
        };
        let result = match &self.l2 {
            Some(l2) => l2.run(publisher.publish(key)).await,
            None => publisher.publish(key).await,
        };
        result.inspect_err(|error| {
            bump(&self.stats.publish_errors);
            tracing::warn!(key = %key, %error, "invalidation not published; retried");
        })
    }

    /// Counted, and logged at `debug` only: the breaker logs its transitions at `warn`, so
    /// a dead L2 is one log line, not one per request.
    fn note_l2_error(&self, key: &Key, error: &CacheError) {
        bump(&self.stats.l2_errors);
        tracing::debug!(key = %key, %error, "L2 call failed or skipped; serving without it");
    }
}

pub(super) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

pub(super) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
