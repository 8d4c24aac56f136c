//! Counters of the whole run: answers by kind, mutations by outcome, and the first
//! unexpected results in full.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::judge::Seen;
use crate::model::lock;

/// Unexpected results described in full in the report.
const DETAILS_KEPT: usize = 20;

/// What the mutator does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mutation {
    Logout,
    LogoutAll,
    UserRoles,
    RolePermissions,
    RetriedInvalidation,
}

impl Mutation {
    pub(crate) const ALL: [Self; 5] = [
        Self::Logout,
        Self::LogoutAll,
        Self::UserRoles,
        Self::RolePermissions,
        Self::RetriedInvalidation,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::LogoutAll => "logout_all",
            Self::UserRoles => "user role change",
            Self::RolePermissions => "role permission change",
            Self::RetriedInvalidation => "invalidation retried",
        }
    }
}

/// How a mutation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    Confirmed,
    /// Refused by the shared cache (503, or a revocation left pending) between the kill
    /// and Redis being used again.
    RefusedInOutage,
    /// Refused by the shared cache elsewhere: an L2 timeout under load.
    RefusedOutside,
    Failed,
}

impl Effect {
    const COUNT: usize = 4;

    pub(crate) fn index(self) -> usize {
        match self {
            Self::Confirmed => 0,
            Self::RefusedInOutage => 1,
            Self::RefusedOutside => 2,
            Self::Failed => 3,
        }
    }

    pub(crate) fn is_refusal(self) -> bool {
        matches!(self, Self::RefusedInOutage | Self::RefusedOutside)
    }
}

/// Counters of the whole run.
#[derive(Debug)]
pub(crate) struct Tally {
    pub(crate) seen: [AtomicU64; Seen::ALL.len()],
    pub(crate) mutations: [[AtomicU64; Effect::COUNT]; Mutation::ALL.len()],
    /// Unexpected findings of the final checks.
    pub(crate) final_failures: AtomicU64,
    pub(crate) details: Mutex<Vec<String>>,
}

impl Tally {
    pub(crate) fn new() -> Self {
        Self {
            seen: std::array::from_fn(|_| AtomicU64::new(0)),
            mutations: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            final_failures: AtomicU64::new(0),
            details: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn see(&self, seen: Seen, detail: impl FnOnce() -> String) {
        self.seen[seen.index()].fetch_add(1, Ordering::Relaxed);
        if !seen.is_expected() {
            self.note(format!("{}: {}", seen.label(), detail()));
        }
    }

    pub(crate) fn mutation(
        &self,
        mutation: Mutation,
        effect: Effect,
        detail: impl FnOnce() -> String,
    ) {
        let index = Mutation::ALL
            .iter()
            .position(|&m| m == mutation)
            .unwrap_or(0);
        self.mutations[index][effect.index()].fetch_add(1, Ordering::Relaxed);
        if effect == Effect::Failed {
            self.note(format!("{} failed: {}", mutation.label(), detail()));
        }
    }

    pub(crate) fn final_failure(&self, detail: String) {
        self.final_failures.fetch_add(1, Ordering::Relaxed);
        self.note(detail);
    }

    fn note(&self, detail: String) {
        let mut details = lock(&self.details);
        if details.len() < DETAILS_KEPT {
            details.push(detail);
        }
    }

    pub(crate) fn count(&self, seen: Seen) -> u64 {
        self.seen[seen.index()].load(Ordering::Relaxed)
    }

    pub(crate) fn effects(&self, mutation: Mutation) -> [u64; Effect::COUNT] {
        let index = Mutation::ALL
            .iter()
            .position(|&m| m == mutation)
            .unwrap_or(0);
        std::array::from_fn(|effect| self.mutations[index][effect].load(Ordering::Relaxed))
    }

    pub(crate) fn authentications(&self) -> u64 {
        Seen::ALL.iter().map(|&seen| self.count(seen)).sum()
    }

    pub(crate) fn unexpected(&self) -> u64 {
        let answers: u64 = Seen::ALL
            .iter()
            .filter(|seen| !seen.is_expected())
            .map(|&seen| self.count(seen))
            .sum();
        let mutations: u64 = Mutation::ALL
            .iter()
            .map(|&m| self.effects(m)[Effect::Failed.index()])
            .sum();
        answers + mutations + self.final_failures.load(Ordering::Relaxed)
    }
}
