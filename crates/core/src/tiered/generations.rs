//! The tier's side of the L1 rule of [`crate::versioned`]: every fill is tagged with the
//! version of its id read *before* its L2 read, every change moves that version, and an
//! entry is served only while its tag is the version now.
//!
//! So a fill that lost a race with a change is never served, however late its insert
//! lands: there is no check-then-insert window and nothing to undo. Writers move the
//! version before and after their L2 write ([`Core::invalidate_local`], twice); readers
//! read it before they build the key, so an entry read under an older keyspace epoch is
//! behind too.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Core;
use crate::counter::bump;
use crate::l1::L1Entry;
use crate::versioned::Version;

impl<T> Core<T> {
    /// The L1 entry of `id`, if it is current (counted as an L1 hit).
    pub(super) fn l1_get(&self, id: &str) -> Option<L1Entry<T>> {
        let entry = self.l1.get(id)?;
        bump(&self.stats.l1_hits);
        self.answered_by("l1");
        Some(entry)
    }

    /// Whether `id` changed here (or was announced changed by another instance) since
    /// `since` was read: then what was read after `since` may predate the change.
    pub(super) fn changed_since(&self, id: &str, since: Version) -> bool {
        self.l1.version(id) != since
    }

    /// Puts an entry whose L2 copy expires in `remaining` into L1, tagged with `since`, the
    /// version read before the value was: if anything changed the id since, the entry is
    /// never served (see [`crate::versioned`]). A value leaves L1 when its refresh-ahead
    /// window begins, so the reads in that window reach L2 and one of them starts the
    /// reload. Returns the entry's deadline (what it would be, when it is not kept): until
    /// then the value may be served.
    pub(super) fn l1_insert(
        &self,
        id: &str,
        value: Option<Arc<T>>,
        remaining: Duration,
        since: Version,
    ) -> Instant {
        let window = if value.is_some() {
            self.refresh_window()
        } else {
            Duration::ZERO
        };
        let until_refresh = remaining.checked_sub(window).filter(|left| !left.is_zero());
        let ttl = self.ttls.l1_ttl(until_refresh.unwrap_or(remaining));
        self.l1.insert(id, value, ttl, since);
        let now = Instant::now();
        now.checked_add(ttl).unwrap_or(now)
    }

    /// Moves the version of `id` and drops its L1 entry.
    pub(super) fn invalidate_local(&self, id: &str) {
        self.l1.forget(id);
        // Later callers must not join a load that started before the change.
        self.lock_flights().remove(id);
    }

    /// Moves every version of the tier and drops the whole L1.
    pub(super) fn invalidate_all_local(&self) {
        self.l1.forget_all();
        self.lock_flights().clear();
    }
}
