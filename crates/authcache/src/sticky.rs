//! The sticky table: every mark this instance wrote, held in force here until its deadline,
//! and which of them the L2 has not accepted yet. [`crate::tokens::Marks`] is its only user;
//! the protocol it serves is described there.
//!
//! # What it promises
//!
//! - **Never evicted early.** A mark is a revocation: it stays until its `until`, whatever
//!   the number of marks. There is no capacity bound; the bound is time. Memory grows with
//!   the marks written in the last max token lifetime (plus leeway and skew) and is given
//!   back as they expire (a shard's maps shrink once three quarters of their room is
//!   unused); each entry is about 185 bytes plus its id — a revocation id is 64
//!   hex bytes, and a million revocation marks grow the resident set by about 250 MB (`cargo
//!   bench -p authcache-benches --features facade --bench marks` prints it) — and a raise that extends a deadline adds one 32-byte heap item until
//!   the old deadline passes.
//! - **Only ever raised.** A mark's value and its deadline are each the largest ever put.
//! - **Settled by the very write that stored it.** [`StickyMarks::raise`] hands out a
//!   [`Ticket`]; [`StickyMarks::settle`] clears the pending flag only if no raise (nor a
//!   [`StickyMarks::reassert`]) came after that ticket. An older write that lands after a
//!   newer one failed leaves the newer value pending, so it is retried.
//!
//! # Cost
//!
//! - 64 shards by id hash, each its own mutex: the request path locks one shard, never the
//!   table; [`StickyMarks::is_empty`] is one atomic load, so the warm path skips an empty
//!   table without locking.
//! - Expiry in deadline order: each shard keeps a min-heap of `(until, id)`; a lookup or a
//!   raise pops only the heads that have expired (O(log n) each, amortised over the
//!   marks), and [`StickyMarks::sweep`] (the retry task, every round) does the same for every
//!   shard. Nothing ever scans the entries.
//! - Pending ids are a set per shard beside the entries, counted atomically: a retry round
//!   visits the pending marks, not the table. [`StickyMarks::reassert`] (a bus reconnect, rare)
//!   is the one walk over every entry, shard by shard.
//!
//! Nothing here reads the clock: every method that needs the time takes `now`, so tests
//! move the clock instead of sleeping.

use std::cmp::Reverse;
use std::collections::hash_map::{Entry as Slot, RandomState};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// 64 shards: far more than the cores that take them at once, few enough that a sweep of
/// every shard's heap heads costs nothing.
const SHARDS: usize = 64;

/// Room a shard's collections keep however empty: below it, shrinking saves nothing.
const MIN_ROOM: usize = 16;

/// A lifetime too long to represent is as good as forever: a century.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The deadline of a mark put at `now` for `ttl`, saturating at [`FOREVER`] — never at
/// `now`, which would end a revocation at once.
pub(crate) fn deadline(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl.min(FOREVER))
        .or_else(|| now.checked_add(FOREVER))
        .unwrap_or(now)
}

/// A mark's value and deadline as one raise left them, and which raise that was: what to
/// write to the L2, and the receipt [`StickyMarks::settle`] asks for once it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    /// The value in force after the raise (the largest ever put for the id).
    pub(crate) value: u64,
    /// The deadline in force after the raise (the latest ever put for the id).
    pub(crate) until: Instant,
    /// Which write this is, within the id's shard; 0 when nothing was held.
    write: u64,
}

impl Ticket {
    /// How long the mark has left at `now`: the TTL to write it to the L2 with.
    pub(crate) fn ttl(&self, now: Instant) -> Duration {
        self.until.saturating_duration_since(now)
    }
}

/// Every mark this instance wrote and still holds. See the module docs.
#[derive(Debug)]
pub(crate) struct StickyMarks {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    /// Entries over all shards (expired ones included until popped), without a lock.
    len: AtomicUsize,
    /// Pending entries over all shards, without a lock.
    pending: AtomicUsize,
}

#[derive(Debug, Default)]
struct Shard {
    entries: HashMap<Arc<str>, Held>,
    /// `(until, id)` of every deadline an entry was given, earliest on top. An item whose
    /// entry has since moved its deadline on (or gone) is dropped when it comes up.
    deadlines: BinaryHeap<Reverse<(Instant, Arc<str>)>>,
    /// Ids whose entry is pending: those a retry round visits.
    pending: HashSet<Arc<str>>,
    /// The last write number handed out in this shard.
    writes: u64,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    value: u64,
    until: Instant,
    /// The write the L2 has yet to accept, if any: only that write settles it.
    pending: Option<u64>,
}

impl Default for StickyMarks {
    fn default() -> Self {
        Self::with_shards(SHARDS)
    }
}

impl StickyMarks {
    /// A table of `shards` shards (at least one); tests use one to see a shard whole.
    fn with_shards(shards: usize) -> Self {
        Self {
            shards: (0..shards.max(1)).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            len: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
        }
    }

    /// No entry at all: one atomic load, no lock.
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::Acquire) == 0
    }

    /// Entries held (expired ones not yet popped included), without a lock.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Entries the L2 has not accepted yet, without a lock.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    fn shard(&self, id: &str) -> MutexGuard<'_, Shard> {
        let at = self.hasher.hash_one(id) as usize % self.shards.len();
        self.lock(at)
    }

    fn lock(&self, at: usize) -> MutexGuard<'_, Shard> {
        // Every update keeps the shard consistent at each panic point that matters (the
        // counters are fixed up as entries go), so a poisoned lock is still usable.
        self.shards[at]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The value of `id`'s mark if it is in force at `now`.
    pub(crate) fn get(&self, id: &str, now: Instant) -> Option<u64> {
        let mut shard = self.shard(id);
        self.expire(&mut shard, now);
        shard.entries.get(id).map(|held| held.value)
    }

    /// Raises `id`'s mark to at least `value` and `until` (a mark is never lowered or
    /// shortened), pending until [`StickyMarks::settle`] gets the returned ticket back.
    /// A mark whose `until` has passed is not held.
    pub(crate) fn raise(&self, id: &str, value: u64, until: Instant, now: Instant) -> Ticket {
        let mut shard = self.shard(id);
        self.expire(&mut shard, now);
        let shard = &mut *shard;
        // The map's own key is shared with the pending set and the heap: one copy of the id.
        let (key, held, deadline_moved) = match shard.entries.entry(Arc::from(id)) {
            Slot::Occupied(slot) => {
                let key = Arc::clone(slot.key());
                let held = slot.into_mut();
                let moved = until > held.until;
                held.value = held.value.max(value);
                held.until = held.until.max(until);
                (key, held, moved)
            }
            Slot::Vacant(_) if until <= now => {
                return Ticket {
                    value,
                    until,
                    write: 0,
                };
            }
            Slot::Vacant(slot) => {
                let key = Arc::clone(slot.key());
                self.len.fetch_add(1, Ordering::AcqRel);
                let held = slot.insert(Held {
                    value,
                    until,
                    pending: None,
                });
                (key, held, true)
            }
        };
        shard.writes += 1;
        if held.pending.replace(shard.writes).is_none() {
            shard.pending.insert(Arc::clone(&key));
            self.pending.fetch_add(1, Ordering::AcqRel);
        }
        let ticket = Ticket {
            value: held.value,
            until: held.until,
            write: shard.writes,
        };
        if deadline_moved {
            shard.deadlines.push(Reverse((until, key)));
        }
        ticket
    }

    /// The L2 accepted the write of `ticket`: `id` is no longer pending — unless a raise
    /// or a reassert came after that ticket, whose value is still to be written. Returns
    /// whether it settled.
    pub(crate) fn settle(&self, id: &str, ticket: &Ticket) -> bool {
        let mut shard = self.shard(id);
        let Some(held) = shard.entries.get_mut(id) else {
            return false;
        };
        if ticket.write == 0 || held.pending != Some(ticket.write) {
            return false;
        }
        held.pending = None;
        shard.pending.remove(id);
        self.pending.fetch_sub(1, Ordering::AcqRel);
        shard.compact();
        true
    }

    /// Every pending mark in force at `now`, with the ticket its retry settles with.
    /// Visits the pending sets, never the whole table.
    pub(crate) fn pending(&self, now: Instant) -> Vec<(String, Ticket)> {
        let mut found = Vec::new();
        for at in 0..self.shards.len() {
            let shard = self.lock(at);
            for id in &shard.pending {
                if let Some(held) = shard.entries.get(id)
                    && held.until > now
                    && let Some(write) = held.pending
                {
                    let ticket = Ticket {
                        value: held.value,
                        until: held.until,
                        write,
                    };
                    found.push((id.to_string(), ticket));
                }
            }
        }
        found
    }

    /// Makes every mark in force at `now` pending again (the L2 may have lost them); a
    /// write already in flight no longer settles it. Walks every entry, one shard at a time.
    pub(crate) fn reassert(&self, now: Instant) {
        for at in 0..self.shards.len() {
            let mut shard = self.lock(at);
            self.expire(&mut shard, now);
            let shard = &mut *shard;
            for (id, held) in &mut shard.entries {
                shard.writes += 1;
                if held.pending.replace(shard.writes).is_none() {
                    shard.pending.insert(Arc::clone(id));
                    self.pending.fetch_add(1, Ordering::AcqRel);
                }
            }
        }
    }

    /// Drops the marks expired at `now` in every shard — also those of shards no lookup
    /// touches, so that a quiet table empties; returns how many heap items it popped (each
    /// an expired entry, or a deadline its entry had moved past).
    pub(crate) fn sweep(&self, now: Instant) -> usize {
        (0..self.shards.len())
            .map(|at| self.expire(&mut self.lock(at), now))
            .sum()
    }

    /// Pops the deadlines of `shard` that have passed at `now`, dropping their entries
    /// unless a later raise moved them on; returns how many heap items it popped.
    fn expire(&self, shard: &mut Shard, now: Instant) -> usize {
        let mut popped = 0;
        while shard
            .deadlines
            .peek()
            .is_some_and(|Reverse((until, _))| *until <= now)
        {
            let Some(Reverse((_, id))) = shard.deadlines.pop() else {
                break;
            };
            popped += 1;
            let Slot::Occupied(slot) = shard.entries.entry(id) else {
                continue;
            };
            if slot.get().until > now {
                continue; // Raised since: its own, later deadline is in the heap.
            }
            let (id, held) = slot.remove_entry();
            self.len.fetch_sub(1, Ordering::AcqRel);
            if held.pending.is_some() {
                shard.pending.remove(&id);
                self.pending.fetch_sub(1, Ordering::AcqRel);
            }
        }
        if popped > 0 {
            shard.compact();
        }
        popped
    }
}

impl Shard {
    /// Gives memory back once three quarters of a collection's room is unused (after a
    /// burst of logouts expired, or an outage's pending marks were written): the
    /// collection is rebuilt at twice its length, so each removal pays O(1) amortised.
    fn compact(&mut self) {
        let wasteful = |len: usize, capacity: usize| capacity > 4 * len.max(MIN_ROOM);
        if wasteful(self.entries.len(), self.entries.capacity()) {
            self.entries.shrink_to(2 * self.entries.len());
        }
        if wasteful(self.deadlines.len(), self.deadlines.capacity()) {
            self.deadlines.shrink_to(2 * self.deadlines.len());
        }
        if wasteful(self.pending.len(), self.pending.capacity()) {
            self.pending.shrink_to(2 * self.pending.len());
        }
    }
}

#[cfg(test)]
mod tests;
