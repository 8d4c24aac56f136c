//! Coalescing: the changes read but not invalidated yet, as a bounded set of distinct ids
//! (a burst costs one invalidation per distinct id, never a queue).

use std::collections::HashSet;

use authcache_users::{Change, ResumePoint};

/// 4,096 distinct ids at most wait to be invalidated (at most 1 MiB of ids): past it, the
/// watcher invalidates before it reads on.
pub(crate) const PENDING_CAPACITY: usize = 4096;

/// Changes read but not invalidated yet: distinct ids, whether whole collections changed,
/// and the resume point after the last change read.
#[derive(Default)]
pub(super) struct Pending {
    pub(super) ids: HashSet<Change>,
    everything: bool,
    point: Option<ResumePoint>,
}

/// What [`Pending::add`] did with a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Added {
    New,
    Coalesced,
    Everything,
}

impl Pending {
    pub(super) fn add(&mut self, change: Change, point: Option<ResumePoint>) -> Added {
        self.advance(point);
        match change {
            Change::User(_) | Change::Role(_) => {
                if self.ids.insert(change) {
                    Added::New
                } else {
                    Added::Coalesced
                }
            }
            // `Everything`, and whatever a newer feed reports that this build cannot
            // tell apart: the safe reading is that anything changed.
            _ => {
                self.everything = true;
                Added::Everything
            }
        }
    }

    pub(super) fn advance(&mut self, point: Option<ResumePoint>) {
        if point.is_some() {
            self.point = point;
        }
    }

    pub(super) fn is_full(&self) -> bool {
        self.ids.len() >= PENDING_CAPACITY
    }

    pub(super) fn take(&mut self) -> Batch {
        Batch {
            changes: self.ids.drain().collect(),
            everything: std::mem::take(&mut self.everything),
            point: self.point.take(),
        }
    }
}

/// Changes to settle, and the point that is safe to save once they are.
pub(super) struct Batch {
    pub(super) changes: Vec<Change>,
    pub(super) everything: bool,
    pub(super) point: Option<ResumePoint>,
}
