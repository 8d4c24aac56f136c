//! Invalidations that have not landed yet: the ids of one tier whose tombstone the shared
//! tier refused, or whose announcement the bus did not carry, kept until a retry lands
//! them.
//!
//! A Redis that refuses writes but still serves reads (`OOM` under `noeviction`,
//! `MISCONF`, `READONLY`, an ACL without `@write`) keeps the very entry an invalidation
//! meant to replace. Without this table the next read on the instance that invalidated
//! would read that entry back and serve it; and since a request that paid for one L2
//! failure skips the rest of L2, the publish after it would be skipped too, so the other
//! instances would never hear of the invalidation at all.
//!
//! # The protocol
//!
//! - **Writers** ([`Tiered::delete`](crate::Tiered::delete) and the write-throughs,
//!   [`Tiered::set`](crate::Tiered::set)) read the id's [`Ticket`] before their L2
//!   write. When that write fails they [`owe`](Pending::owe) a [`Debt::Tombstone`],
//!   *before* their second version bump. When only the announcement fails they owe a
//!   [`Debt::Announcement`]. When both land they [`settle`](Pending::settle) whatever was
//!   owed when they began: their write replaced it.
//! - **Readers** read the id's version first, then ask [`Pending::bars_l2`]. While a
//!   tombstone is owed they neither read nor fill the L2 entry: they go to the loader and
//!   keep its answer in L1 only, tagged with that version as usual. A reader that read the
//!   version after the writer's second bump is sure to see the debt (recorded before that
//!   bump); one that read it before is tagged behind and never served
//!   ([`crate::versioned`]). So once a failed invalidation has returned, nothing from
//!   before it is served on this instance, from either tier.
//! - **The retry** ([`Tiered::retry_pending`](crate::Tiered::retry_pending)) takes each
//!   debt with its ticket, writes the tombstone unconditionally (over anything a fill
//!   stored meanwhile: a fill is conditional, so one that comes after the tombstone is
//!   refused), then publishes. It settles the debt only if the ticket is still the id's: a
//!   failure recorded while the retry ran is a newer debt and stays. A tombstone is right
//!   for a failed write-through too: it reads as a miss, and the next read loads the value
//!   the write-through was for.
//!
//! # Bound
//!
//! Ids only, with a debt and a ticket each: one entry per id however often it fails. An
//! id leaves when a retry (or a later write of its own) lands, so the table grows only
//! while the shared tier refuses writes, by the distinct ids invalidated meanwhile.
//!
//! Tested by `tiered::tests::a_failed_invalidation_is_in_force_here_at_once_and_retried`,
//! `…::a_failed_write_through_is_served_here_and_its_l2_entry_is_never_read_back`,
//! `…::a_failed_announcement_alone_is_retried_without_barring_l2`,
//! `…::a_fill_racing_a_failed_invalidation_never_lands`, the unit tests below, and the
//! loom model `model::a_failed_invalidation_is_in_force_at_once`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// What an id's invalidation still owes, least first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Debt {
    /// The L2 holds the change; the other instances may not have heard of it.
    Announcement,
    /// The L2 may still hold what the change replaced: a tombstone is owed, then the
    /// announcement.
    Tombstone,
}

/// Which recording of a debt a writer or a retry saw: it settles only that one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket(u64);

/// The debts of one tier. See the [module docs](self) for the protocol.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    debts: Mutex<Debts>,
    /// `debts.by_id.len()`, readable without the lock: the read path skips an empty table.
    count: AtomicUsize,
}

#[derive(Debug, Default)]
struct Debts {
    by_id: HashMap<Arc<str>, (Debt, Ticket)>,
    /// The last ticket handed out.
    issued: u64,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, Debts> {
        // Every update is one insert or remove followed by a store of the count: a panic
        // cannot leave the map half-updated.
        self.debts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many ids owe something.
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// The ticket of what `id` owes now, if anything: read it before a write that may
    /// settle it.
    pub(crate) fn ticket(&self, id: &str) -> Option<Ticket> {
        if self.len() == 0 {
            return None;
        }
        self.lock().by_id.get(id).map(|&(_, ticket)| ticket)
    }

    /// Whether the L2 entry of `id` may predate an invalidation made here: it is then
    /// neither read nor filled on this instance. Read the id's version *before* asking.
    pub(crate) fn bars_l2(&self, id: &str) -> bool {
        self.len() > 0
            && self
                .lock()
                .by_id
                .get(id)
                .is_some_and(|&(debt, _)| debt == Debt::Tombstone)
    }

    /// Records that `id` owes `debt`, under a new ticket. `since` is the ticket the
    /// caller read before its write: if nothing was recorded since, `debt` replaces what
    /// was owed (the caller's write landed after it); otherwise the debt only grows.
    pub(crate) fn owe(&self, id: &str, debt: Debt, since: Option<Ticket>) {
        let mut debts = self.lock();
        debts.issued += 1;
        let ticket = Ticket(debts.issued);
        match debts.by_id.get_mut(id) {
            Some(owed) => {
                let debt = if Some(owed.1) == since {
                    debt
                } else {
                    debt.max(owed.0)
                };
                *owed = (debt, ticket);
            }
            None => {
                debts.by_id.insert(Arc::from(id), (debt, ticket));
            }
        }
        self.count.store(debts.by_id.len(), Ordering::Release);
    }

    /// Drops the debt of `id` if it is still the one recorded under `since`; `true` when
    /// it was.
    pub(crate) fn settle(&self, id: &str, since: Option<Ticket>) -> bool {
        let Some(since) = since else { return false };
        let mut debts = self.lock();
        let current = debts.by_id.get(id).map(|&(_, ticket)| ticket);
        if current != Some(since) {
            return false;
        }
        debts.by_id.remove(id);
        self.count.store(debts.by_id.len(), Ordering::Release);
        true
    }

    /// Every debt now, with its ticket: what a retry works through.
    pub(crate) fn owed(&self) -> Vec<(Arc<str>, Debt, Ticket)> {
        if self.len() == 0 {
            return Vec::new();
        }
        self.lock()
            .by_id
            .iter()
            .map(|(id, &(debt, ticket))| (Arc::clone(id), debt, ticket))
            .collect()
    }
}

#[cfg(test)]
mod tests;
