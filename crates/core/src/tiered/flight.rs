//! Single-flight: however many callers miss the same id at once, one of them runs the L2
//! read, the loader and the fill, and every other waits for its outcome.
//!
//! A per-id `tokio::sync::OnceCell` rather than moka's `try_get_with`, because the flight
//! must cover the L2 read as well as the loader, because moka's sync cache would block the
//! thread while an async loader runs, and because the L1 is any
//! [`L1Cache`](crate::L1Cache) (or none). A cell whose initialising caller is cancelled is
//! initialised by the next waiter, so cancellation never strands anyone.
//!
//! A flight leaves the map when its answer is known or its last member leaves, and when
//! the id changes here ([`Core::invalidate_local`]): later callers never join a load that
//! started before the change.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, MutexGuard, PoisonError};

use tokio::sync::OnceCell;

use super::{Core, Outcome};
use crate::counter::bump;

/// One in-flight load of one id; every caller that finds it waits on the same cell.
pub(super) type Flight<T> = OnceCell<Outcome<T>>;

impl<T> Core<T> {
    pub(super) fn lock_flights(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<Flight<T>>>> {
        // The map is only ever inserted into or removed from; a panic cannot leave it
        // half-updated.
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the flight of `id`, starting it with `fetch` when none is in the air, and
    /// returns its outcome: the same for every member.
    pub(super) async fn fly<F, Fut>(&self, id: &str, fetch: F) -> Outcome<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Outcome<T>>,
    {
        let (membership, cell) = self.join_flight(id);
        let outcome = cell.get_or_init(fetch).await.clone();
        // Our working reference goes first, so the membership sees an exact count.
        drop(cell);
        drop(membership);
        outcome
    }

    fn join_flight<'t>(&'t self, id: &'t str) -> (FlightGuard<'t, T>, Arc<Flight<T>>) {
        let mut flights = self.lock_flights();
        let cell = match flights.get(id) {
            Some(cell) => {
                bump(&self.stats.coalesced);
                Arc::clone(cell)
            }
            None => {
                let cell = Arc::new(OnceCell::new());
                flights.insert(Arc::from(id), Arc::clone(&cell));
                cell
            }
        };
        drop(flights);
        let membership = FlightGuard {
            tier: self,
            id,
            cell: Some(Arc::clone(&cell)),
        };
        (membership, cell)
    }
}

/// A caller's membership in a flight; the last one out (or the first after the answer
/// is known) removes the flight, unless it was already replaced.
struct FlightGuard<'t, T> {
    tier: &'t Core<T>,
    id: &'t str,
    /// `Some` until dropped: the reference is released under the map's lock, so the
    /// last of several members leaving at once always sees itself as the last.
    cell: Option<Arc<Flight<T>>>,
}

impl<T> Drop for FlightGuard<'_, T> {
    fn drop(&mut self) {
        let Some(cell) = self.cell.take() else { return };
        let mut flights = self.tier.lock_flights();
        let ours = flights
            .get(self.id)
            .is_some_and(|entry| Arc::ptr_eq(entry, &cell));
        let answered = cell.initialized();
        // Released while the lock is held: every member drops its reference under the
        // same lock, so the count below is exact — no two members can both see the other.
        drop(cell);
        if ours {
            let nobody_else = flights
                .get(self.id)
                .is_some_and(|entry| Arc::strong_count(entry) == 1);
            if answered || nobody_else {
                flights.remove(self.id);
            }
        }
    }
}
