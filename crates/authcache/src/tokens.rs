//! The token-scoped state: [`Validations`] (this process only: "this exact token was
//! verified, here are its claims") and [`Marks`] (shared: revocations keyed by what a
//! token asserts, and per-user "log out everywhere" cutoffs).
//!
//! # The revocation protocol
//!
//! - **Keyed by assertion.** A logout marks the token's [`revocation_id`]: its `iss`+`jti`
//!   when it has one, else its signed part — never its signature bytes, so no re-encoding
//!   of the same assertion escapes (and the verifier refuses ECDSA high-S twins too).
//! - **Outside the schema.** Marks live at `{prefix}:revoked:{id}` and
//!   `{prefix}:cutoff:{user}`, unversioned; any bytes at a mark's key count as a mark
//!   (an unreadable cutoff counts as "everything before now"), and no reader ever deletes
//!   one. A schema bump, a rolling deploy or a signing-key rotation un-revokes nothing.
//!   A mark is only ever raised: writes are compare-and-set against what L2 holds, so an
//!   earlier cutoff from another instance landing late never lowers a later one.
//! - **Sticky locally.** Every mark this instance wrote is kept in a local table
//!   ([`crate::sticky`]) until it expires — not cleared when the bus reconnects, not
//!   evicted by capacity — so a logout made while Redis was down stays in force here; a
//!   background task retries the L2 write (and then publishes) until Redis accepts it.
//!   The table is bounded by time, not size: it holds the marks written here in the last
//!   max token lifetime (plus leeway and skew), about 250 bytes per logout.
//! - **Pending until its own write lands.** A put raises the sticky mark and takes a
//!   ticket for it, writes the value in force to L2, and settles the mark with that
//!   ticket. A later put (or a reassert after a reconnect) takes a new ticket, so an
//!   earlier put whose write lands after the later one failed settles nothing: the later,
//!   larger value stays pending and is retried.
//! - **Cheap on the warm path.** Lookups are remembered ("no mark", or the mark) in a memo
//!   for at most the L1 cap; the bus drops a memo entry when another instance marks it,
//!   and a reconnect clears the memo (never the sticky table). A lookup that raced with
//!   such a drop does not record its answer.
//! - **When L2 cannot answer**, the lookup is [`Lookup::Unknown`]: the service then serves
//!   the request (`RevocationCheck::FailOpen`, counted as `unchecked`) or refuses it with
//!   503 (`FailClosed`).
//!
//! [`revocation_id`]: authcache_jwt::revocation_id

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use authcache_core::{
    Cache, CacheError, EnvelopeCodec, GuardedCache, InvalidationPublisher, Key, KeyKind, Keyspace,
    L1Cache, L1Entry, Version, VersionedL1,
};
use authcache_jwt::Claims;
use authcache_memory::MemoryL1;

use crate::sticky::{self, StickyMarks, Ticket};

/// What the validation cache remembers of a token it verified.
#[derive(Debug)]
pub(crate) struct Validated {
    pub(crate) claims: Arc<Claims>,
    /// [`authcache_jwt::revocation_id`] of the token, computed once.
    pub(crate) revocation_id: String,
    /// [`authcache_jwt::JwtVerifier::key_set_version`] read before the token was verified:
    /// once the key set has lost a key since, the token is verified again.
    pub(crate) key_set: u64,
}

/// Verified tokens by fingerprint, in this process only.
///
/// Deliberately never written to the shared L2: an entry there would let anyone able to
/// write to Redis mark a forged token as verified. In-process, an entry can only have been
/// written by this process after it checked the signature, so a hit is as good as a
/// verification. Entries live at most `validation_ttl(exp, now, cap)`: never beyond `exp`.
#[derive(Debug)]
pub(crate) struct Validations {
    l1: MemoryL1<Validated>,
}

impl Validations {
    pub(crate) fn new(max_entries: u64) -> Self {
        Self {
            l1: MemoryL1::new(max_entries),
        }
    }

    pub(crate) fn get(&self, fingerprint: &str) -> Option<Arc<Validated>> {
        self.l1.get(fingerprint)?.into_value()
    }

    pub(crate) fn insert(&self, fingerprint: &str, validated: Arc<Validated>, ttl: Duration) {
        self.l1
            .insert(fingerprint, L1Entry::present(validated), ttl);
    }

    pub(crate) fn remove(&self, fingerprint: &str) {
        self.l1.remove(fingerprint);
    }
}

/// The answer of a mark lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// A mark, with its value (a revocation's `exp`; a user cutoff's instant in
    /// microseconds, see [`crate::cutoff`]; an issuer cutoff's unix second).
    Mark(u64),
    /// Checked: no mark.
    None,
    /// The L2 could not answer (down, hung, breaker open).
    Unknown,
}

/// Counters of the marks, for [`crate::Stats`].
#[derive(Debug, Default)]
struct MarkCounters {
    l1_hits: AtomicU64,
    l2_hits: AtomicU64,
    misses: AtomicU64,
    l2_errors: AtomicU64,
    unreadable: AtomicU64,
}

/// Revocation marks or logout-all cutoffs: one kind of shared, sticky, never-deleted
/// mark. See the module docs for the protocol.
#[derive(Debug)]
pub(crate) struct Marks {
    kind: KeyKind,
    keyspace: Keyspace,
    codec: EnvelopeCodec,
    l2: Arc<GuardedCache>,
    publisher: Option<Arc<dyn InvalidationPublisher>>,
    /// A value `v`: the mark is `v`; absent: checked, no mark. Served by the versions
    /// of [`authcache_core::versioned`]: every mark put here and every memo drop bumps them,
    /// so an answer looked up before either is never served after it.
    memo: VersionedL1<u64>,
    memo_ttl: Duration,
    /// The marks written here, in force until they expire; pending until L2 accepts them.
    sticky: StickyMarks,
    counters: MarkCounters,
}

/// Compare-and-set rounds a mark write tries before leaving the mark pending.
const MERGE_ATTEMPTS: usize = 8;

/// How often pending marks are retried to the L2.
pub(crate) const RETRY_INTERVAL: Duration = Duration::from_millis(500);

impl Marks {
    pub(crate) fn new(
        kind: KeyKind,
        keyspace: &Keyspace,
        codec: &EnvelopeCodec,
        l2: &Arc<GuardedCache>,
        publisher: Option<Arc<dyn InvalidationPublisher>>,
        max_entries: u64,
        memo_ttl: Duration,
    ) -> Self {
        Self {
            kind,
            keyspace: keyspace.clone(),
            codec: codec.clone(),
            l2: Arc::clone(l2),
            publisher,
            memo: VersionedL1::new(Some(Arc::new(MemoryL1::new(max_entries)))),
            memo_ttl,
            sticky: StickyMarks::default(),
            counters: MarkCounters::default(),
        }
    }

    /// The mark of `id`, if any: the memo, else the larger of this instance's own (sticky)
    /// mark and the shared one in L2 — or the own mark alone when L2 cannot answer.
    pub(crate) async fn lookup(&self, id: &str) -> Lookup {
        if let Some(entry) = self.memo.get(id) {
            let found = entry
                .value()
                .map_or(Lookup::None, |value| Lookup::Mark(**value));
            return self.hit(found);
        }
        // Read before the sticky table: a mark put after this read moves the version, so
        // this lookup's answer is never served over it.
        let since = self.memo.version(id);
        let sticky = self.sticky_value(id);
        let Ok(key) = self.keyspace.key(self.kind, id) else {
            // Cannot be keyed, so cannot be shared: only this instance's own mark counts.
            return sticky.map_or(Lookup::None, Lookup::Mark);
        };
        let shared = match self.l2.get(&key).await {
            Ok(found) => found.map(|bytes| self.read_mark(&key, &bytes)),
            Err(error) => {
                self.counters.l2_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%error, kind = %self.kind, "mark not checked: L2 cannot answer");
                // This instance's own mark holds whatever Redis does.
                return sticky.map_or(Lookup::Unknown, |value| self.hit(Lookup::Mark(value)));
            }
        };
        // The larger of ours and the shared one: another instance's later cutoff wins.
        let found = sticky.max(shared);
        let counter = match found {
            Some(_) => &self.counters.l2_hits,
            None => &self.counters.misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.memo
            .insert(id, found.map(Arc::new), self.memo_ttl, since);
        found.map_or(Lookup::None, Lookup::Mark)
    }

    fn hit(&self, lookup: Lookup) -> Lookup {
        self.counters.l1_hits.fetch_add(1, Ordering::Relaxed);
        lookup
    }

    /// The value of a mark's bytes. A mark that does not decode (another build, a rotated
    /// key, tampering) is still a mark: `u64::MAX` — revoked, and "everything before now"
    /// for a cutoff. Refusing is the only safe reading of an unreadable revocation.
    fn read_mark(&self, key: &Key, bytes: &[u8]) -> u64 {
        match self.codec.decode::<u64>(key, bytes) {
            Ok(value) => value,
            Err(error) => {
                self.counters.unreadable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(key = %key, %error, "unreadable mark: treated as in force");
                u64::MAX
            }
        }
    }

    fn sticky_value(&self, id: &str) -> Option<u64> {
        if self.sticky.is_empty() {
            return None;
        }
        self.sticky.get(id, Instant::now())
    }

    /// Marks `id` with `value` for `ttl`: at once in this instance (sticky until `ttl`),
    /// then in L2 and on the bus. A larger value or a later deadline already marked here
    /// wins, and is what L2 is given.
    ///
    /// # Errors
    /// The L2's error: the mark is then pending, retried in the background until the L2
    /// accepts it, and in force here meanwhile.
    pub(crate) async fn put(&self, id: &str, value: u64, ttl: Duration) -> Result<(), CacheError> {
        let key = self.keyspace.key(self.kind, id)?;
        let ticket = self.remember(id, value, ttl);
        let ttl = ticket.ttl(Instant::now()).max(ttl);
        let stored = self.store(&key, ticket.value, ttl).await;
        if stored.is_ok() {
            // Settles only if no later put or reassert came since: theirs is still to write.
            self.sticky.settle(id, &ticket);
        }
        stored
    }

    /// Records the mark in the sticky table and the memo; returns the ticket of the value
    /// in force.
    fn remember(&self, id: &str, value: u64, ttl: Duration) -> Ticket {
        let now = Instant::now();
        let ticket = self
            .sticky
            .raise(id, value, sticky::deadline(now, ttl), now);
        // After the sticky table: a lookup that reads the moved version sees the mark there.
        self.memo.forget(id);
        let since = self.memo.version(id);
        self.memo
            .insert(id, Some(Arc::new(ticket.value)), self.memo_ttl, since);
        ticket
    }

    /// Writes the mark to L2 (never lowering one already there) and announces it.
    async fn store(&self, key: &Key, value: u64, ttl: Duration) -> Result<(), CacheError> {
        self.write_max(key, value, ttl).await?;
        if let Some(publisher) = &self.publisher
            && let Err(error) = self.l2.run(publisher.publish(key)).await
        {
            tracing::warn!(key = %key, %error, "mark stored but not published; the memo TTL bounds the delay");
        }
        Ok(())
    }

    /// Writes `value` unless L2 holds a mark at least as large, as a compare-and-set: a
    /// smaller mark from another instance (an earlier `logout_all`) that lands between the
    /// read and the write can never replace a larger one, nor the other way round.
    async fn write_max(&self, key: &Key, value: u64, ttl: Duration) -> Result<(), CacheError> {
        let entry = self.codec.encode(key, &value)?;
        for _ in 0..MERGE_ATTEMPTS {
            let current = self.l2.get(key).await?;
            if let Some(bytes) = &current
                && self.read_mark(key, bytes) >= value
            {
                return Ok(());
            }
            match self
                .l2
                .set_if_unchanged(key, current, entry.clone(), ttl)
                .await
            {
                Ok(true) => return Ok(()),
                Ok(false) => continue,
                // A backend without compare-and-set: the plain write, last writer wins.
                Err(CacheError::Unsupported(_)) => return self.l2.set(key, entry, ttl).await,
                Err(error) => return Err(error),
            }
        }
        Err(CacheError::unavailable(
            "mark kept changing under concurrent writers; retried later",
        ))
    }

    /// Marks written here that the L2 has not accepted yet (a counter: no lock).
    pub(crate) fn pending(&self) -> u64 {
        self.sticky.pending_len() as u64
    }

    /// Marks written here and held in force (expired ones not yet dropped included; a
    /// counter: no lock). Bounded by time: those of the last max token lifetime.
    pub(crate) fn held(&self) -> u64 {
        self.sticky.len() as u64
    }

    /// Drops expired sticky marks, then tries every pending one once more. Visits the
    /// expired and the pending marks only, never the whole table.
    async fn retry_pending(&self) {
        let now = Instant::now();
        self.sticky.sweep(now);
        let pending = self.sticky.pending(now);
        for (id, ticket) in pending {
            let Ok(key) = self.keyspace.key(self.kind, &id) else {
                continue;
            };
            let ttl = ticket.ttl(Instant::now());
            if ttl.is_zero() {
                continue;
            }
            match authcache_core::with_l2_budget(self.store(&key, ticket.value, ttl)).await {
                Ok(()) => {
                    self.sticky.settle(&id, &ticket);
                }
                Err(_) => return, // Still down: try again next round.
            }
        }
    }

    /// Moved by every mark put and every memo drop: answers built on lookups stay good
    /// while it reads the same.
    pub(crate) fn epoch(&self) -> Version {
        self.memo.epoch()
    }

    /// Another instance marked `id`: forget what the memo says about it.
    pub(crate) fn evict_memo(&self, id: &str) {
        self.memo.forget(id);
    }

    /// The bus reconnected: the memo may be stale. The sticky table stays.
    pub(crate) fn clear_memo(&self) {
        self.memo.forget_all();
    }

    /// The bus reconnected, perhaps to a Redis that restarted empty: every unexpired mark
    /// written here is pending again, so the retry loop writes it back (raise-only, so a
    /// mark Redis kept is unchanged) and announces it — other instances then see the
    /// logouts made here even if Redis lost them.
    ///
    /// The one walk over the whole table (shard by shard, never under one lock): a
    /// reconnect is rare. A write in flight meanwhile no longer settles its mark.
    pub(crate) fn reassert(&self) {
        self.sticky.reassert(Instant::now());
    }

    /// Counters as a tier snapshot: memo and sticky hits as L1, L2 reads that found a mark
    /// as L2, unreadable marks as decode failures.
    pub(crate) fn stats(&self) -> authcache_core::TierStatsSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        authcache_core::TierStatsSnapshot {
            l1_hits: get(&self.counters.l1_hits),
            l2_hits: get(&self.counters.l2_hits),
            misses: get(&self.counters.misses),
            l2_errors: get(&self.counters.l2_errors),
            decode_failures: get(&self.counters.unreadable),
            breaker: Some(self.l2.stats()),
            ..Default::default()
        }
    }
}

/// Retries pending marks every [`RETRY_INTERVAL`] for as long as any of `marks` lives.
pub(crate) fn spawn_retries(marks: Vec<Weak<Marks>>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut interval = tokio::time::interval(RETRY_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let alive: Vec<Arc<Marks>> = marks.iter().filter_map(Weak::upgrade).collect();
            if alive.is_empty() {
                return;
            }
            for marks in alive {
                if !marks.sticky.is_empty() {
                    marks.retry_pending().await;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests;
